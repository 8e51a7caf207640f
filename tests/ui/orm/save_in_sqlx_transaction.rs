use signals_orm::{Model, ModelExt};

#[derive(Model, sqlx::FromRow)]
#[model(table = "users")]
struct User {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

async fn store(pool: sqlx::SqlitePool) -> Result<(), Box<dyn std::error::Error>> {
    let mut tx = pool.begin().await?;
    let mut user = User { id: None, name: "ada".into() };
    user.save(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

fn main() {}
