use signals_orm::Model;

#[derive(Model, sqlx::FromRow)]
#[model(table = "customers")]
struct Customer {
    #[model(primary_key)]
    id: Option<i64>,
}

// A one-to-one profile keyed by its customer.
#[derive(Model, sqlx::FromRow)]
#[model(table = "profiles")]
struct Profile {
    #[model(primary_key, foreign_key = Customer, on_delete = set_null)]
    customer: Option<i64>,
}

fn main() {}
