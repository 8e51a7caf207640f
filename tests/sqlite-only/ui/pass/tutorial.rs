// The README's tutorial, built with signals-orm on SQLite alone, and run.
use signals_orm::{Committed, Model, ModelExt, PostSave, PreSave, Tx, receiver};

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "users")]
struct User {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

#[receiver(pre_save, sender = User)]
fn capitalize(ev: PreSave<'_, User>) {
    ev.instance.name = ev.instance.name.to_uppercase();
}

#[receiver(post_save, sender = User)]
async fn audit(ev: PostSave<'_, User>, tx: &mut Tx<sqlx::Sqlite>) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO audit (what) VALUES ($1)")
        .bind(&ev.instance.name)
        .execute(tx.conn())
        .await?;
    Ok(())
}

#[receiver(post_save, sender = User, on_commit)]
async fn welcome(ev: Committed<User>) {
    assert!(ev.created);
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
    sqlx::raw_sql(
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
         CREATE TABLE audit (what TEXT NOT NULL)",
    )
    .execute(&pool)
    .await?;
    let mut user = User { id: None, name: "ada".into() };
    user.save(&pool).await?;
    let audited: String = sqlx::query_scalar("SELECT what FROM audit").fetch_one(&pool).await?;
    assert_eq!(audited, "ADA");
    Ok(())
}
