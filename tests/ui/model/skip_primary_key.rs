use signals_orm::Model;

#[derive(Model, sqlx::FromRow)]
#[model(table = "users")]
struct User {
    #[model(primary_key, skip)]
    #[sqlx(skip)]
    id: Option<i64>,
    name: String,
}

fn main() {}
