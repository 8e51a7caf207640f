//! A custom signal, `PaymentSuccessful`, defined as a struct, received at link time and at
//! runtime, sent, and disconnected. Like Django's `payment_successful = Signal()`.

use signals_orm::{ConnectOptions, Sender, Signal, receiver};

/// Sent when a payment clears.
#[derive(Signal, Debug)]
struct PaymentSuccessful {
    order_id: i64,
    amount_cents: i64,
}

/// The sender of payment signals.
struct PaymentGateway;

#[receiver(PaymentSuccessful, sender = PaymentGateway)]
fn mark_order_paid(ev: &PaymentSuccessful) {
    println!("[link-time] order {} marked paid", ev.order_id);
}

#[receiver(PaymentSuccessful, priority = 10)]
async fn notify_accounting(ev: &PaymentSuccessful) -> Result<(), std::io::Error> {
    println!(
        "[link-time, async, priority 10] accounting told of {} cents",
        ev.amount_cents
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), signals_orm::SendError> {
    let guard = signals_orm::connect_with(
        ConnectOptions::new().sender::<PaymentGateway>(),
        |ev: &PaymentSuccessful| {
            println!("[runtime] receipt printed for order {}", ev.order_id);
        },
    );
    signals_orm::send(
        Sender::of::<PaymentGateway>(),
        &PaymentSuccessful {
            order_id: 1,
            amount_cents: 1250,
        },
    )
    .await?;
    println!("disconnecting the runtime receiver: {}", guard.disconnect());
    signals_orm::send(
        Sender::of::<PaymentGateway>(),
        &PaymentSuccessful {
            order_id: 2,
            amount_cents: 800,
        },
    )
    .await?;
    println!("\n{}", signals_orm::receivers());
    Ok(())
}
