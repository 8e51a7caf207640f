// A custom signal's durable receiver takes `Job<TheSignal>`.
use signals_orm::durable::Job;
use signals_orm::{Signal, receiver};

#[derive(Signal, serde::Serialize, serde::Deserialize)]
struct PaymentSucceeded {
    order_id: i64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Refund {
    order_id: i64,
}

#[receiver(PaymentSucceeded, durable)]
async fn record(_job: Job<Refund>) {}

fn main() {}
