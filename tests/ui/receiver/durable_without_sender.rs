// A durable receiver of a model signal names its model.
use signals_orm::durable::Job;
use signals_orm::{Model, receiver};

#[derive(Model, sqlx::FromRow, serde::Serialize, serde::Deserialize, Clone)]
#[model(table = "orders")]
struct Order {
    #[model(primary_key)]
    id: Option<i64>,
}

#[receiver(post_save, durable)]
async fn confirm(_job: Job<Order>) {}

fn main() {}
