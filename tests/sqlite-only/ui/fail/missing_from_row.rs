use signals_orm::Model;

#[derive(Model)]
#[model(table = "users")]
struct User {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

fn main() {}
