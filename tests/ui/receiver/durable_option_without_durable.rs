// Job options belong to durable receivers.
use signals_orm::{Model, PostSave, receiver};

#[derive(Model, sqlx::FromRow, Clone)]
#[model(table = "orders")]
struct Order {
    #[model(primary_key)]
    id: Option<i64>,
}

#[receiver(post_save, sender = Order, queue = "mail", max_attempts = 3, name = "shop.confirm")]
async fn confirm(_ev: PostSave<'_, Order>) {}

fn main() {}
