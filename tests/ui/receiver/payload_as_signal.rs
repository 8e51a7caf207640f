// A payload type in place of the signal: the message names the signal to write.
use signals_orm::m2m::M2mChanged;
use signals_orm::{Committed, Model, PostDelete, PostSave, PreDelete, PreSave, receiver};

#[derive(Model, sqlx::FromRow, Clone)]
#[model(table = "users")]
struct User {
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
    struct UserTags(User => "user_id", Tag => "tag_id") in "user_tags";
}

#[receiver(PreSave, sender = User)]
fn before_save(_ev: PreSave<'_, User>) {}

#[receiver(PostSave, sender = User)]
fn after_save(_ev: PostSave<'_, User>) {}

#[receiver(signals_orm::PreDelete, sender = User)]
fn before_delete(_ev: PreDelete<'_, User>) {}

#[receiver(PostDelete, sender = User)]
fn after_delete(_ev: PostDelete<'_, User>) {}

#[receiver(M2mChanged, sender = UserTags)]
fn tags_changed(_ev: M2mChanged<'_, UserTags>) {}

#[receiver(Committed, sender = User, on_commit)]
fn after_commit(_ev: Committed<User>) {}

fn main() {}
