// With `sender`, the payload is typed by that sender; `dyn AnyModel` is for receivers of every
// model.
use signals_orm::{AnyModel, Model, PostSave, receiver};

#[derive(Model, sqlx::FromRow)]
#[model(table = "users")]
struct User {
    #[model(primary_key)]
    id: Option<i64>,
}

#[receiver(post_save, sender = User)]
fn on_save(_ev: PostSave<'_, dyn AnyModel>) {}

fn main() {}
