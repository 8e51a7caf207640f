// `signals_orm::connect` is for custom signals: connecting a model-signal closure there points at the
// model signal's own `connect`.
use signals_orm::model_signals::PostSaveSignal;
use signals_orm::{Model, PostSave};

#[derive(Model, sqlx::FromRow)]
#[model(table = "users")]
struct User {
    #[model(primary_key)]
    id: Option<i64>,
}

fn main() {
    let _a = signals_orm::connect(|_ev: &PostSaveSignal| {});
    let _b = signals_orm::connect::<PostSaveSignal, _>(|_ev: PostSave<'_, User>| {});
}
