use signals_orm::Model;

#[derive(Model, sqlx::FromRow)]
#[model(table = "orders")]
struct Order {
    #[model(primary_key)]
    id: Option<i64>,
    #[model(on_delete = cascade)]
    customer_id: i64,
    #[model(default = 0)]
    seller_id: i64,
}

fn main() {}
