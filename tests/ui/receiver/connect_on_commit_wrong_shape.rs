// `connect_on_commit` takes the owned payload of an `on_commit` receiver, `Committed<Model>`
// (of a `Clone` model): a payload of the write itself is reported at the closure.
use signals_orm::model_signals::post_save;
use signals_orm::{Committed, Model, PostSave};

#[derive(Model, sqlx::FromRow, Clone)]
#[model(table = "users")]
struct User {
    #[model(primary_key)]
    id: Option<i64>,
}

fn main() {
    let _a = post_save.connect_on_commit(|_ev: PostSave<'_, User>| {});
    let _b = post_save.connect_on_commit(|_ev: Committed<User>| -> Result<u8, String> { Ok(1) });
}
