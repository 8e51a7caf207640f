// A link model's field named in `many_to_many! { impl .. }` must exist: a misspelt one is an
// error at the name.
use signals_orm::Model;

#[derive(Model, sqlx::FromRow)]
#[model(table = "people")]
struct Person {
    #[model(primary_key)]
    id: Option<i64>,
}

#[derive(Model, sqlx::FromRow)]
#[model(table = "clubs")]
struct Club {
    #[model(primary_key)]
    id: Option<i64>,
}

#[derive(Model, sqlx::FromRow)]
#[model(table = "memberships")]
struct Membership {
    #[model(primary_key)]
    id: Option<i64>,
    person_id: i64,
    club_id: i64,
}

signals_orm::many_to_many! { impl Membership => (Person => persn_id, Club => club_id); }

fn main() {}
