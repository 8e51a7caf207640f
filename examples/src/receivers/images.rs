//! Use case 3: delete a product's image file once the product's delete is committed
//! (`post_delete`, `on_commit`: a rolled-back delete keeps its file).

use signals_orm::{Committed, receiver};

use crate::models::Product;

#[receiver(post_delete, sender = Product, on_commit)]
fn delete_image_file(ev: Committed<Product>) -> std::io::Result<()> {
    match std::fs::remove_file(&ev.instance.image_path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}
