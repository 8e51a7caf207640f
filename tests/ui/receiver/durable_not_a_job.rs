// A durable receiver takes `Job<Order>`, not the payload of the write's receivers.
use signals_orm::{Model, PostSave, receiver};

#[derive(Model, sqlx::FromRow, serde::Serialize, serde::Deserialize, Clone)]
#[model(table = "orders")]
struct Order {
    #[model(primary_key)]
    id: Option<i64>,
}

#[receiver(post_save, sender = Order, durable)]
async fn confirm(_ev: PostSave<'_, Order>) {}

fn main() {}
