// With two parameters, a second one that is not the write's transaction is reported at its type.
use signals_orm::{Model, PostSave, receiver};

#[derive(Model, sqlx::FromRow)]
#[model(table = "users")]
struct User {
    #[model(primary_key)]
    id: Option<i64>,
}

#[receiver(post_save, sender = User)]
fn audit(_ev: PostSave<'_, User>, _tx: &mut sqlx::SqliteConnection) {}

fn main() {}
