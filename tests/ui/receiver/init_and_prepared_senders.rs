// `post_init` and `class_prepared` are sent by models: another sender is reported at
// `sender =`; `pre_init` is not sent at all (docs/django.md), so the ORM provides no such
// signal and rustc reports the name.
use signals_orm::registry::ClassPrepared;
use signals_orm::{Model, PostInit, receiver};

#[derive(Model, sqlx::FromRow)]
#[model(table = "users")]
struct User {
    #[model(primary_key)]
    id: Option<i64>,
}

#[receiver(post_init, sender = String)]
fn on_init(_ev: PostInit<'_, User>) {}

#[receiver(class_prepared, sender = String)]
fn on_prepared(_ev: &ClassPrepared) {}

#[receiver(pre_init, sender = User)]
fn before_init(_ev: PostInit<'_, User>) {}

fn main() {}
