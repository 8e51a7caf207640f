// `Committed<M>` is what `on_commit` receivers get: the flag is needed.
use signals_orm::{Committed, Model, receiver};

#[derive(Model, sqlx::FromRow, Clone)]
#[model(table = "users")]
struct User {
    #[model(primary_key)]
    id: Option<i64>,
}

#[receiver(post_save, sender = User)]
async fn after_commit(_ev: Committed<User>) {}

fn main() {}
