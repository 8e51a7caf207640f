// A durable receiver with `sender = Order` takes `Job<Order>`.
use signals_orm::durable::Job;
use signals_orm::{Model, receiver};

#[derive(Model, sqlx::FromRow, serde::Serialize, serde::Deserialize, Clone)]
#[model(table = "orders")]
struct Order {
    #[model(primary_key)]
    id: Option<i64>,
}

#[derive(Model, sqlx::FromRow, serde::Serialize, serde::Deserialize, Clone)]
#[model(table = "customers")]
struct Customer {
    #[model(primary_key)]
    id: Option<i64>,
}

#[receiver(post_save, sender = Order, durable)]
async fn confirm(_job: Job<Customer>) {}

fn main() {}
