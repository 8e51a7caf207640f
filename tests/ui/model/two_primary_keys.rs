use signals_orm::Model;

#[derive(Model, sqlx::FromRow)]
#[model(table = "memberships")]
struct Membership {
    #[model(primary_key)]
    user_id: i64,
    #[model(primary_key)]
    group_id: i64,
}

fn main() {}
