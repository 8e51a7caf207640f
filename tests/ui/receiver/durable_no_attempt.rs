// A job runs at least once: `max_attempts = 0` is refused when the options are evaluated.
use signals_orm::durable::Job;
use signals_orm::{Model, receiver};

#[derive(Model, sqlx::FromRow, serde::Serialize, serde::Deserialize, Clone)]
#[model(table = "orders")]
struct Order {
    #[model(primary_key)]
    id: Option<i64>,
}

#[receiver(post_save, sender = Order, durable, max_attempts = 0)]
async fn confirm(_job: Job<Order>) {}

fn main() {}
