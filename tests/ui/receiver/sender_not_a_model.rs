// The sender of a model signal is a model: a type that is not is reported at `sender =`.
use signals_orm::{Model, PostSave, receiver};

#[derive(Model, sqlx::FromRow)]
#[model(table = "users")]
struct User {
    #[model(primary_key)]
    id: Option<i64>,
}

#[receiver(post_save, sender = String)]
fn on_save(_ev: PostSave<'_, User>) {}

#[receiver(pre_delete, sender = std::string::String)]
fn on_delete(_ev: signals_orm::PreDelete<'_, String>) {}

fn main() {}
