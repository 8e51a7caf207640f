//! The benchmark's models and receivers.
//!
//! Model-signal receivers are registered at link time, so each receiver configuration of
//! workload 2 has its own model type, all on the `users` table: `User` (no save receivers),
//! `NoopUser` (a no-op `post_save`), `ProfiledUser` (a `post_save` that creates a `Profile` in
//! the same transaction) and `CapitalizedUser` (a `pre_save` that capitalizes the name). Every
//! receiver lives in the `pre_save`/`post_save` registries of this binary, so a save of a model
//! without receivers still filters the others out, as it would in an application. Likewise
//! workload 5 has two relations on the `post_tags` table: `PostTags` (a no-op `m2m_changed`)
//! and `QuietPostTags` (no receiver).
//!
//! Workload 7 (set-based writes) uses, on the same `users` table: `PlainUser` (no receiver of any
//! model signal: its rows without receivers), `NoopUser` (its one no-op `post_save`: the
//! `bulk_insert`, `bulk_update` and filtered `update` rows with a receiver), `User` (its one
//! no-op `post_delete`: the filtered `delete` row with a receiver) and `PreDeleteUser` (one no-op
//! `pre_delete`: the peak heap of a large filtered delete).
//!
//! Workload 9 (a save with a durable receiver against the same save with an `on_commit` one)
//! has `OnCommitUser` (one no-op `on_commit` `post_save`) and `DurableUser` (one `durable`
//! `post_save` on [`DURABLE_QUEUE`], whose jobs workload 10's workers run: it records each
//! event id it gets). Workload 11 (fetches) has `InitUser` (one no-op `post_init`) next to
//! `PlainUser`, which nothing listens to.
//!
//! Workload 8 (cascading delete) has `Parent` (no receiver) and `Child`, whose foreign key to
//! `Parent` cascades and whose `post_delete` has one no-op receiver: the only relation of the
//! binary, so no other workload's delete goes through the collector.

use std::collections::HashSet;
use std::hint::black_box;
use std::sync::Mutex;

use signals_orm::durable::Job;
use signals_orm::m2m::M2mChanged;
use signals_orm::query::Column;
use signals_orm::{
    AnyTx, BoxError, Committed, Model, ModelExt, PostDelete, PostInit, PostSave, PreDelete,
    PreSave, receiver,
};

/// A user with no save receivers; its `post_delete` has a no-op receiver (workloads 4 and 7).
#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "users")]
pub struct User {
    #[model(primary_key)]
    pub id: Option<i64>,
    pub name: String,
}

/// A user whose `post_save` has one no-op receiver.
#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "users")]
pub struct NoopUser {
    #[model(primary_key)]
    pub id: Option<i64>,
    pub name: String,
}

/// A user whose `post_save` receiver creates its `Profile` in the same transaction.
#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "users")]
pub struct ProfiledUser {
    #[model(primary_key)]
    pub id: Option<i64>,
    pub name: String,
}

/// A user whose `pre_save` receiver capitalizes the name.
#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "users")]
pub struct CapitalizedUser {
    #[model(primary_key)]
    pub id: Option<i64>,
    pub name: String,
}

/// A user no model-signal receiver listens to (workload 7 without receivers).
#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "users")]
pub struct PlainUser {
    #[model(primary_key)]
    pub id: Option<i64>,
    pub name: String,
}

/// A user whose `pre_delete` has one no-op receiver (workload 7's peak heap of a large delete).
#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "users")]
pub struct PreDeleteUser {
    #[model(primary_key)]
    pub id: Option<i64>,
    pub name: String,
}

/// A user whose `post_save` has one no-op `on_commit` receiver (workload 9's baseline).
#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "users")]
pub struct OnCommitUser {
    #[model(primary_key)]
    pub id: Option<i64>,
    pub name: String,
}

/// A user whose `post_save` has one durable receiver (workloads 9 and 10).
#[derive(Model, sqlx::FromRow, Clone, Debug, serde::Serialize, serde::Deserialize)]
#[model(table = "users")]
pub struct DurableUser {
    #[model(primary_key)]
    pub id: Option<i64>,
    pub name: String,
}

/// A user whose `post_init` has one no-op receiver (workload 11).
#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "users")]
pub struct InitUser {
    #[model(primary_key)]
    pub id: Option<i64>,
    pub name: String,
}

/// The queue of `durable_noop`'s jobs (the attribute's `queue`, which takes a literal).
pub const DURABLE_QUEUE: &str = "signals-bench";

/// The event ids `durable_noop` ran, and how many ran again (at least once: a run cut by a
/// stopping worker runs again).
#[derive(Debug, Default)]
pub struct DurableRuns {
    /// Each event id run.
    pub events: HashSet<String>,
    /// Runs of an event id that had run already.
    pub again: usize,
}

/// What `durable_noop` ran since the last `take`.
pub static DURABLE_RUNS: Mutex<Option<DurableRuns>> = Mutex::new(None);

/// `DURABLE_RUNS`, emptied.
pub fn take_durable_runs() -> DurableRuns {
    DURABLE_RUNS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
        .unwrap_or_default()
}

/// How many jobs `durable_noop` ran since the last `take`.
pub fn durable_runs() -> usize {
    DURABLE_RUNS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .as_ref()
        .map_or(0, |runs| runs.events.len())
}

/// One profile per user, created by `create_profile`.
#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "profiles")]
pub struct Profile {
    #[model(primary_key)]
    pub id: Option<i64>,
    pub user_id: i64,
    pub bio: String,
}

/// A post, tagged in workload 5.
#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "posts")]
pub struct Post {
    #[model(primary_key)]
    pub id: Option<i64>,
    pub title: String,
}

/// A tag.
#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "tags")]
pub struct Tag {
    #[model(primary_key)]
    pub id: Option<i64>,
    pub name: String,
}

signals_orm::many_to_many! {
    /// Tags of posts, through `post_tags` (Django's auto-created through table: `id`,
    /// `post_id`, `tag_id`, unique pair).
    pub struct PostTags(Post => "post_id", Tag => "tag_id") in "post_tags";
}

signals_orm::many_to_many! {
    /// The same link table as `PostTags`, with no `m2m_changed` receiver.
    pub struct QuietPostTags(Post => "post_id", Tag => "tag_id") in "post_tags";
}

/// A parent of workload 8; nothing listens to its signals.
#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "parents")]
pub struct Parent {
    #[model(primary_key)]
    pub id: Option<i64>,
    pub name: String,
}

/// A child of workload 8: deleted with its parent (Django's `on_delete=CASCADE`), one no-op
/// `post_delete` receiver. The raw side decodes the rows its `DELETE .. RETURNING` returns into
/// it, as sqlx's `FromRow`.
#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "children")]
pub struct Child {
    #[model(primary_key)]
    pub id: Option<i64>,
    #[model(foreign_key = Parent, on_delete = cascade)]
    pub parent_id: i64,
    pub label: String,
}

/// The user types of workloads 2 and 7, built the same way.
pub trait NewUser: Model + Send + Sync {
    /// An unsaved user.
    fn named(name: String) -> Self;
    /// Its key column, `id`.
    fn id_column() -> Column<Self, i64>;
    /// Its `name` column.
    fn name_column() -> Column<Self, String>;
}

macro_rules! new_user {
    ($($ty:ident),*) => {$(
        impl NewUser for $ty {
            fn named(name: String) -> Self {
                $ty { id: None, name }
            }
            fn id_column() -> Column<Self, i64> {
                $ty::columns().id
            }
            fn name_column() -> Column<Self, String> {
                $ty::columns().name
            }
        }
    )*};
}

new_user!(
    User,
    NoopUser,
    ProfiledUser,
    CapitalizedUser,
    PlainUser,
    PreDeleteUser,
    OnCommitUser,
    DurableUser,
    InitUser
);

/// Python's `str.capitalize` (what the Django receiver calls): first character upper case,
/// the rest lower case.
pub fn capitalize(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => first
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
        None => String::new(),
    }
}

#[receiver(post_save, sender = NoopUser)]
fn noop_post_save(ev: PostSave<'_, NoopUser>) {
    black_box(ev.created);
}

#[receiver(post_save, sender = ProfiledUser)]
async fn create_profile(ev: PostSave<'_, ProfiledUser>, tx: AnyTx<'_>) -> Result<(), BoxError> {
    if !ev.created {
        return Ok(());
    }
    let mut profile = Profile {
        id: None,
        user_id: ev.instance.id.ok_or("a created user has a key")?,
        bio: String::new(),
    };
    match tx {
        AnyTx::Sqlite(tx) => profile.save(tx).await?,
        AnyTx::Postgres(tx) => profile.save(tx).await?,
    };
    Ok(())
}

#[receiver(pre_save, sender = CapitalizedUser)]
fn capitalize_name(ev: PreSave<'_, CapitalizedUser>) {
    ev.instance.name = capitalize(&ev.instance.name);
}

#[receiver(post_delete, sender = User)]
fn noop_post_delete(ev: PostDelete<'_, User>) {
    black_box(ev.instance.id);
}

#[receiver(post_delete, sender = Child)]
fn noop_child_post_delete(ev: PostDelete<'_, Child>) {
    black_box(ev.instance.id);
}

#[receiver(pre_delete, sender = PreDeleteUser)]
fn noop_pre_delete(ev: PreDelete<'_, PreDeleteUser>) {
    black_box(ev.instance.id);
}

#[receiver(m2m_changed, sender = PostTags)]
fn noop_m2m_changed(ev: M2mChanged<'_, PostTags>) {
    black_box(ev.action);
}

#[receiver(post_save, sender = OnCommitUser, on_commit)]
async fn noop_on_commit(ev: Committed<OnCommitUser>) {
    black_box(ev.created);
}

/// Enqueued by each save of a `DurableUser` (workload 9); run by workload 10's workers, where
/// it records the event id.
#[receiver(
    post_save,
    sender = DurableUser,
    durable,
    queue = "signals-bench",
    name = "signals_bench::durable_noop"
)]
fn durable_noop(job: Job<DurableUser>) {
    let mut runs = DURABLE_RUNS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let runs = runs.get_or_insert_with(DurableRuns::default);
    if !runs.events.insert(job.event_id) {
        runs.again += 1;
    }
}

#[receiver(post_init, sender = InitUser)]
fn noop_post_init(ev: PostInit<'_, InitUser>) {
    black_box(ev.instance.id);
}
