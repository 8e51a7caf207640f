use signals_orm::{Model, PostSave, Tx, receiver};

#[derive(Model, sqlx::FromRow)]
#[model(table = "users")]
struct User {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

#[receiver(post_save, sender = User)]
async fn audit(ev: PostSave<'_, User>, tx: &mut Tx<sqlx::Postgres>) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO audit (what) VALUES ($1)")
        .bind(&ev.instance.name)
        .execute(tx.conn())
        .await?;
    Ok(())
}

fn main() {}
