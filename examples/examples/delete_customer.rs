//! Use case 11: deleting a customer with Django's delete collector: a customer with an unpaid
//! order is protected by its open invoice (`on_delete = protect`), and the delete is refused
//! before any signal; once the payment signal has marked the order paid (closing the invoice),
//! the delete takes their profile and order with it (`on_delete = cascade`), each row with its
//! `pre_delete` / `post_delete`, and the order's units go back to stock. The use case is
//! `examples/src/usecases/delete_customer.rs`.
//!
//! Receivers of other use cases run too, and the program names them at the end: every receiver
//! of the crate is linked into every program. Registering the buyer is heard by
//! `capitalize_name`, `create_profile`, `welcome_email` and `audit_log`; the order's `post_save`
//! by `order_creation` (stock, confirmation), `product_cache` (the product's cache entry, the
//! sales count) and `audit_log`, the payment by `custom_signal`; the audit log also hears the
//! `post_delete` of every row of the cascade, and `product_cache` the order's (its units went
//! back to stock). This use case's
//! receivers listen to the order's `post_save` and `pre_delete`, and the cascade is the point:
//! nothing is muted.
//!
//! `cargo run -p examples --example delete_customer`

use examples::run::Run;
use examples::usecases::delete_customer;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), examples::Error> {
    let run = Run::program("delete_customer").await?;
    let deletion = run.act("admin", delete_customer::run(&run)).await?;
    println!("\nwhile the order was unpaid: {}", deletion.refused);
    println!(
        "once it was paid, deleted {} rows:",
        deletion.deleted.total()
    );
    for (model, rows) in deletion.deleted.iter() {
        println!("  {model:<10} {rows}");
    }
    println!(
        "desks in stock: {} after the order, {} after the delete",
        deletion.stock.0, deletion.stock.1
    );
    run.print_others(
        "delete_customer",
        "they hear the buyer's registration, the order, the payment and the cascade's \
         post_delete; this use case listens to the order's signals too (muting them would \
         mute it as well)",
    );
    Ok(())
}
