// The sender of m2m_changed is the through type `many_to_many!` declares, not a model.
use signals_orm::m2m::M2mChanged;
use signals_orm::{Model, receiver};

#[derive(Model, sqlx::FromRow)]
#[model(table = "posts")]
struct Post {
    #[model(primary_key)]
    id: Option<i64>,
}

#[derive(Model, sqlx::FromRow)]
#[model(table = "tags")]
struct Tag {
    #[model(primary_key)]
    id: Option<i64>,
}

signals_orm::many_to_many! {
    struct PostTags(Post => "post_id", Tag => "tag_id") in "post_tags";
}

#[receiver(m2m_changed, sender = Post)]
fn on_change(_ev: M2mChanged<'_, PostTags>) {}

fn main() {}
