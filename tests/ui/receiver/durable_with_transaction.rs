// A durable receiver runs later, in a worker: it has no transaction to take.
use signals_orm::durable::Job;
use signals_orm::{Model, Tx, receiver};

#[derive(Model, sqlx::FromRow, serde::Serialize, serde::Deserialize, Clone)]
#[model(table = "orders")]
struct Order {
    #[model(primary_key)]
    id: Option<i64>,
}

#[receiver(post_save, sender = Order, durable)]
async fn confirm(_job: Job<Order>, _tx: &mut Tx<sqlx::Sqlite>) {}

fn main() {}
