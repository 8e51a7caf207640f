//! Use case 3: delete a product's image file from disk when the product is deleted
//! (`post_delete`, `on_commit`): a real file is created, kept when a delete is rolled back, and
//! removed once a delete commits.
//!
//! `cargo run -p examples --example product_image_cleanup`

use examples::run::Run;
use examples::usecases;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), examples::Error> {
    let run = Run::program("product_image_cleanup").await?;
    let image = run
        .act("admin", usecases::product_image_cleanup(&run))
        .await?;
    println!("\nimage {}", image.path.display());
    println!(
        "kept after the rolled-back delete: {}",
        image.kept_after_rollback
    );
    println!(
        "exists after the committed delete: {}",
        image.exists_after_delete
    );
    Ok(())
}
