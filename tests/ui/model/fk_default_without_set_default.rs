use signals_orm::Model;

#[derive(Model, sqlx::FromRow)]
#[model(table = "customers")]
struct Customer {
    #[model(primary_key)]
    id: Option<i64>,
}

#[derive(Model, sqlx::FromRow)]
#[model(table = "orders")]
struct Order {
    #[model(primary_key)]
    id: Option<i64>,
    #[model(foreign_key = Customer, on_delete = cascade, default = 1)]
    customer_id: i64,
}

fn main() {}
