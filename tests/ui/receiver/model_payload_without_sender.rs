// Without `sender` a receiver gets every model: a payload about one model needs its sender.
use signals_orm::{Committed, Model, PostSave, receiver};

#[derive(Model, sqlx::FromRow, Clone)]
#[model(table = "users")]
struct User {
    #[model(primary_key)]
    id: Option<i64>,
}

#[receiver(post_save)]
fn on_save(_ev: PostSave<'_, User>) {}

#[receiver(post_save, on_commit)]
fn after_commit(_ev: Committed<User>) {}

fn main() {}
