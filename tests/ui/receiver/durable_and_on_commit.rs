// A receiver runs after COMMIT in this process (`on_commit`) or as a job (`durable`), not both.
use signals_orm::durable::Job;
use signals_orm::{Model, receiver};

#[derive(Model, sqlx::FromRow, serde::Serialize, serde::Deserialize, Clone)]
#[model(table = "orders")]
struct Order {
    #[model(primary_key)]
    id: Option<i64>,
}

#[receiver(post_save, sender = Order, durable, on_commit)]
async fn confirm(_job: Job<Order>) {}

fn main() {}
