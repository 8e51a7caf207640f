use signals_orm::Model;

#[derive(Model, sqlx::FromRow)]
#[model(table = "filters")]
struct Filter {
    #[model(primary_key)]
    id: Option<i64>,
}

#[derive(Model, sqlx::FromRow)]
#[model(table = "orders")]
struct Order {
    #[model(primary_key)]
    id: Option<i64>,
    #[model(foreign_key = Filter, on_delete = cascade)]
    filter_id: i64,
}

fn main() {}
