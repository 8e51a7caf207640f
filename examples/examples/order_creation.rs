//! Use case 5: saving an order takes its units from stock in the same transaction, writes an
//! audit entry, and sends the confirmation email only after COMMIT (`on_commit`); an order
//! beyond the stock fails, sends nothing and leaves the stock as it was.
//!
//! `cargo run -p examples --example order_creation`

use examples::run::Run;
use examples::usecases;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), examples::Error> {
    let run = Run::program("order_creation").await?;
    let orders = run.act("alan", usecases::order_creation(&run)).await?;
    println!(
        "\nplaced order {:?}; stock after it: {}",
        orders.placed.id, orders.stock_after_order
    );
    println!(
        "refused: {}\nstock after the refusal: {}",
        orders.refused, orders.stock_after_refusal
    );
    println!("emails to {:?}", run.emails()?);
    Ok(())
}
