//! Use case 3: delete a product's image file from disk when the product is deleted
//! (`post_delete`, `on_commit`): a real file is created, kept when a delete is rolled back, and
//! removed once a delete commits. The use case is
//! `examples/src/usecases/product_image_cleanup.rs`.
//!
//! `audit_log`'s and `product_cache`'s receivers run too, and the program names them at the
//! end: every receiver of the crate is linked into every program, the audit log hears every
//! model's `post_save` and `post_delete`, and the product cache's `on_commit` receivers
//! invalidate the product after its save and its delete. The image cleanup listens to the
//! product's `post_delete`, so it cannot be muted without keeping the file: nothing is muted.
//!
//! `cargo run -p examples --example product_image_cleanup`

use examples::run::Run;
use examples::usecases::product_image_cleanup;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), examples::Error> {
    let run = Run::program("product_image_cleanup").await?;
    let image = run.act("admin", product_image_cleanup::run(&run)).await?;
    println!("\nimage {}", image.path.display());
    println!(
        "kept after the rolled-back delete: {}",
        image.kept_after_rollback
    );
    println!(
        "exists after the committed delete: {}",
        image.exists_after_delete
    );
    run.print_others(
        "product_image_cleanup",
        "the audit log hears every model's post_save and post_delete, and the product cache \
         the product's, including the post_delete the image cleanup listens to (muting that \
         would keep the file)",
    );
    Ok(())
}
