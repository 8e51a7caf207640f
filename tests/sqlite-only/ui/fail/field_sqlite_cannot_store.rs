use signals_orm::Model;

#[derive(Model, sqlx::FromRow)]
#[model(table = "posts")]
struct Post {
    #[model(primary_key)]
    id: Option<i64>,
    title: String,
    tags: Vec<String>, // PostgreSQL stores arrays; SQLite does not
}

fn main() {}
