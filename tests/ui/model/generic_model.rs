use signals_orm::Model;

#[derive(Model, sqlx::FromRow)]
#[model(table = "users")]
struct User<T> {
    #[model(primary_key)]
    id: Option<i64>,
    extra: T,
}

fn main() {}
