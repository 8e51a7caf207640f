use signals_orm::Model;

#[derive(Model, sqlx::FromRow)]
#[model(tabel = "x")]
struct User {
    #[model(primary_key)]
    id: Option<i64>,
}

fn main() {}
