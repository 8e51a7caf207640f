//! Use case 3: delete a product's image file from disk once the product's delete is committed
//! (`post_delete`, `on_commit`): a delete that rolls back keeps its file.

use std::path::PathBuf;

use signals_orm::{Committed, ModelExt as _, Tx, receiver};

use crate::models::Product;
use crate::run::Run;
use crate::{Error, on_db};

#[receiver(post_delete, sender = Product, on_commit)]
fn delete_image_file(ev: Committed<Product>) -> std::io::Result<()> {
    match std::fs::remove_file(&ev.instance.image_path) {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// What happened to a product's image.
#[derive(Debug)]
pub struct ImageCleanup {
    /// The image file.
    pub path: PathBuf,
    /// Whether it existed after a delete that was rolled back.
    pub kept_after_rollback: bool,
    /// Whether it exists after the committed delete.
    pub exists_after_delete: bool,
}

/// Adds a product with a real image file in the run's media folder, deletes it in a transaction
/// that rolls back (the file stays), then deletes it for good (the file goes after COMMIT).
///
/// # Errors
///
/// A failed write or file operation.
pub async fn run(run: &Run) -> Result<ImageCleanup, Error> {
    let path = run.media.join("lamp.png");
    std::fs::write(&path, b"\x89PNG\r\n\x1a\n a lamp")?;
    let mut lamp = Product {
        id: None,
        name: "Lamp".into(),
        stock: 3,
        price_cents: 4_500,
        image_path: path.display().to_string(),
    };
    on_db!(&run.db, |pool| lamp.save(pool).await)?;
    // Deleted inside a transaction that rolls back: the file must stay.
    on_db!(&run.db, |pool| {
        let mut tx = Tx::begin(pool).await?;
        lamp.clone().delete(&mut tx).await?;
        tx.rollback().await
    })?;
    let kept_after_rollback = path.exists();
    on_db!(&run.db, |pool| lamp.delete(pool).await)?;
    Ok(ImageCleanup {
        exists_after_delete: path.exists(),
        kept_after_rollback,
        path,
    })
}
