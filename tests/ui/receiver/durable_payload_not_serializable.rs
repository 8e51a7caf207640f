// A durable receiver's job holds its payload as JSON: the model must derive serde's traits.
use signals_orm::durable::Job;
use signals_orm::{Model, receiver};

#[derive(Model, sqlx::FromRow, Clone)]
#[model(table = "orders")]
struct Order {
    #[model(primary_key)]
    id: Option<i64>,
}

#[receiver(post_save, sender = Order, durable)]
async fn confirm(_job: Job<Order>) {}

fn main() {}
