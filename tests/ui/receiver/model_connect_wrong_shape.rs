// A model signal's `connect` takes the signal's payload (and optionally the transaction): a
// closure of another shape is reported at the closure, with the shapes it accepts.
use signals_orm::model_signals::post_save;
use signals_orm::{Model, PreSave};

#[derive(Model, sqlx::FromRow)]
#[model(table = "users")]
struct User {
    #[model(primary_key)]
    id: Option<i64>,
}

fn main() {
    let _a = post_save.connect(|_ev: &User| {});
    let _b = post_save.connect(|_ev: PreSave<'_, User>| {});
}
