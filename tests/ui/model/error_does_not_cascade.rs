// A mistake in the derive is reported once, at the mistake: the model still gets stand-in
// impls, so its uses below (`save`, `delete`, a receiver with it as sender) add no errors.
use signals_orm::{ModelExt as _, PostSave, receiver};

#[derive(signals_orm::Model, sqlx::FromRow)]
#[model(table = "users")]
struct User {
    #[model(primary_key)]
    id: Option<i64>,
    #[model(colum = "full_name")]
    name: String,
}

#[receiver(post_save, sender = User)]
fn on_save(ev: PostSave<'_, User>) {
    let _ = &ev.instance.name;
}

async fn store(pool: sqlx::SqlitePool) {
    let mut user = User {
        id: None,
        name: String::new(),
    };
    let _ = user.save(&pool).await;
    let _ = user.delete(&pool).await;
}

fn main() {
    let _ = store;
}
