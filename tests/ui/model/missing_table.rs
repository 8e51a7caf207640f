use signals_orm::Model;

#[derive(Model, sqlx::FromRow)]
struct User {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

fn main() {}
