use signals_orm::Model;

#[derive(Model, sqlx::FromRow)]
#[model(table = "users")]
struct User {
    #[model(primary_ky)]
    id: Option<i64>,
}

fn main() {}
