//! Use case 7: a custom signal, `payment_successful`: a struct deriving `Signal`, a link-time
//! receiver that marks the order paid, a runtime receiver that prints a receipt, a send, a
//! disconnect, and a second send that no longer prints.
//!
//! `cargo run -p examples --example custom_signal`

use examples::run::Run;
use examples::usecases;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), examples::Error> {
    let run = Run::program("custom_signal").await?;
    let orders = run.act("alan", usecases::order_creation(&run)).await?;
    let (receipts, paid) = run
        .act(
            "payment-gateway",
            usecases::payment_signal(&run, &orders.placed),
        )
        .await?;
    println!(
        "\nsent twice; receipts printed: {receipts} (disconnected after the first); order paid: {paid}"
    );
    Ok(())
}
