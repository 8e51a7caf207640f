use signals_orm::Model;

#[derive(Model, sqlx::FromRow)]
#[model(table = "users")]
struct User {
    id: Option<i64>,
    name: String,
}

fn main() {}
