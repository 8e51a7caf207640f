use signals_orm::Model;

#[derive(Model, sqlx::FromRow)]
#[model(table = "users")]
struct User {
    #[model(primary_key)]
    id: Option<i64>,
    #[model(column = "")]
    name: String,
}

fn main() {}
