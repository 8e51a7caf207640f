use signals_orm::Model;

struct Address {
    street: String,
}

#[derive(Model, sqlx::FromRow)]
#[model(table = "users")]
struct User {
    #[model(primary_key)]
    id: Option<i64>,
    address: Address,
}

async fn store(pool: sqlx::SqlitePool) {
    let mut m = User {
        id: None,
        address: Address {
            street: String::new(),
        },
    };
    let _ = signals_orm::ModelExt::save(&mut m, &pool).await;
}

fn main() {}
