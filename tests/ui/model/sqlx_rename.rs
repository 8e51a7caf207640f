use signals_orm::Model;

#[derive(Model, sqlx::FromRow)]
#[model(table = "users")]
#[sqlx(rename_all = "camelCase")]
struct User {
    #[model(primary_key)]
    id: Option<i64>,
    #[sqlx(rename = "full_name")]
    name: String,
}

fn main() {}
