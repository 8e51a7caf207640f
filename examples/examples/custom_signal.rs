//! Use case 7: a custom signal, `payment_successful`: a struct deriving `Signal`, a link-time
//! receiver that marks the order paid, a runtime receiver that prints a receipt, a send, a
//! disconnect, and a second send that no longer prints. The use case is
//! `examples/src/usecases/custom_signal.rs`.
//!
//! Only this use case's receivers run. Every receiver of the crate is linked into every
//! program, and saving the order's customer, its product and the order (and marking it paid)
//! sends `pre_save` and `post_save`, heard by `capitalize_name`, `create_profile`,
//! `welcome_email`, `order_creation`, `delete_customer` and `audit_log`; this program mutes
//! those two signals (a task-local `Mute`, [`custom_signal::mute_others`]), and says at the end
//! that nothing else ran.
//!
//! `cargo run -p examples --example custom_signal`

use examples::run::Run;
use examples::usecases::custom_signal;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), examples::Error> {
    let run = Run::program("custom_signal").await?;
    let muted = custom_signal::mute_others();
    let order = muted
        .clone()
        .scope(custom_signal::unpaid_order(&run))
        .await?;
    let (receipts, paid) = run
        .act(
            "payment-gateway",
            muted.scope(custom_signal::run(&run, &order)),
        )
        .await?;
    println!(
        "\nsent twice; receipts printed: {receipts} (disconnected after the first); order paid: {paid}"
    );
    run.print_others(
        "custom_signal",
        "the saves' pre_save and post_save are muted",
    );
    Ok(())
}
