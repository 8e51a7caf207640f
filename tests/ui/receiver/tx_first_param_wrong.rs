// With two parameters, a payload that does not fit is reported at its own type, not at the
// transaction's.
use signals_orm::{AnyTx, Model, PostSave, Tx, receiver};

#[derive(Model, sqlx::FromRow)]
#[model(table = "users")]
struct User {
    #[model(primary_key)]
    id: Option<i64>,
}

#[derive(Model, sqlx::FromRow)]
#[model(table = "posts")]
struct Post {
    #[model(primary_key)]
    id: Option<i64>,
}

#[receiver(post_save, sender = User)]
fn other_model(_ev: PostSave<'_, Post>, _tx: &mut Tx<sqlx::Sqlite>) {}

#[receiver(post_save, sender = User)]
async fn not_a_payload(_ev: &User, _tx: AnyTx<'_>) {}

fn main() {}
