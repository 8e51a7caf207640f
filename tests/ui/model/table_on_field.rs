use signals_orm::Model;

#[derive(Model, sqlx::FromRow)]
#[model(table = "users")]
struct User {
    #[model(table = "users", primary_key)]
    id: Option<i64>,
}

fn main() {}
