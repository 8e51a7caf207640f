// A custom signal's durable receiver gets the signal as JSON: it must derive serde's traits.
use signals_orm::durable::Job;
use signals_orm::{Signal, receiver};

#[derive(Signal)]
struct PaymentSucceeded {
    order_id: i64,
}

#[receiver(PaymentSucceeded, durable)]
async fn record(job: Job<PaymentSucceeded>) {
    let _ = job.instance.order_id;
}

fn main() {}
