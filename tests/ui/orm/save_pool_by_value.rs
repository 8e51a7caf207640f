use signals_orm::{Model, ModelExt};

#[derive(Model, sqlx::FromRow)]
#[model(table = "users")]
struct User {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

async fn store(pool: sqlx::SqlitePool) {
    let mut user = User { id: None, name: "ada".into() };
    let _ = user.save(pool).await;
}

fn main() {}
