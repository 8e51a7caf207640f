use signals_orm::Model;

#[derive(Model, sqlx::FromRow)]
#[model(table = "users")]
struct User(Option<i64>, String);

fn main() {}
