use signals_orm::Model;

#[derive(Model)]
#[model(table = "users")]
union User {
    id: i64,
    score: f64,
}

fn main() {}
