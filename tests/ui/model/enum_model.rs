use signals_orm::Model;

#[derive(Model)]
#[model(table = "users")]
enum User {
    Admin { id: Option<i64> },
    Guest { id: Option<i64> },
}

fn main() {}
