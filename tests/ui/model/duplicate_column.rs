use signals_orm::Model;

#[derive(Model, sqlx::FromRow)]
#[model(table = "users")]
struct User {
    #[model(primary_key)]
    id: Option<i64>,
    #[model(column = "full_name")]
    #[model(column = "display_name")]
    name: String,
}

fn main() {}
