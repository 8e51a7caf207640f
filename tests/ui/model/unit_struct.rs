use signals_orm::Model;

#[derive(Model)]
#[model(table = "users")]
struct User;

fn main() {}
