//! Use case 5: saving an order takes its units from stock in the same transaction and enqueues
//! its confirmation email there (a durable receiver), which the shop's worker, running in this
//! program, sends after the COMMIT: the mail relay greylists the first attempt, the second
//! goes through 1 s later. An order beyond the stock fails, enqueues nothing and leaves the
//! stock as it was. The use case is `examples/src/usecases/order_creation.rs`.
//!
//! Receivers of other use cases run too, and the program names them at the end: every receiver
//! of the crate is linked into every program. Registering the buyer is heard by
//! `capitalize_name`, `create_profile`, `welcome_email` (the buyer's first email) and
//! `audit_log`; the audit log also hears the product's and the order's `post_save`, the signal
//! this use case listens to, and so do `delete_customer`, which opens an invoice for the
//! unpaid order (audited too), and `product_cache`, which invalidates the product's cache
//! entry after each COMMIT and counts the sale in a durable job, so it cannot be muted:
//! nothing is muted.
//!
//! `cargo run -p examples --example order_creation`

use examples::run::Run;
use examples::usecases::order_creation;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), examples::Error> {
    let run = Run::program("order_creation").await?;
    let (orders, jobs) = run
        .with_worker(run.act("alan", order_creation::run(&run)))
        .await?;
    let orders = orders?;
    println!(
        "\nplaced order {:?}; stock after it: {}",
        orders.placed.id, orders.stock_after_order
    );
    println!(
        "refused: {:#}\nstock after the refusal: {}",
        orders.refused, orders.stock_after_refusal
    );
    println!(
        "emails to {:?} (a welcome, then one confirmation); attempts retried: {}",
        run.emails()?,
        jobs.retried
    );
    run.print_others(
        "order_creation",
        "they hear the buyer's registration; the audit log and delete_customer's invoice also \
         hear the order's post_save, as this use case does (muting that would mute the \
         order's receivers too)",
    );
    Ok(())
}
