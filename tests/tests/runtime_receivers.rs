//! Receivers connected at runtime: model-signal closures and `async fn`s (Django's
//! `post_save.connect(handler, sender=User)`), `m2m_changed` ones, `on_commit` ones
//! (`post_save.connect_on_commit`), their guards, names and errors; reconnecting a
//! disconnected `#[receiver]`; the sender parameter of custom receivers; where a receiver
//! panicked. Rules: `docs/dispatch.md` (Runtime receivers).
//!
//! Runtime receivers are process-wide and the backends of one scenario run in parallel, so
//! each scenario's receivers act only on instances carrying that run's own token; and the
//! scenarios run one backend at a time (`ONE_BACKEND_AT_A_TIME`), since some receivers take
//! `&mut Tx<DB>`: one typed for SQLite's transaction refuses a PostgreSQL write, as it should.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use signals_orm::dispatch::Phase;
use signals_orm::m2m::{AnyM2mChanged, M2mAction, M2mChanged, M2mSide};
use signals_orm::model_signals::{m2m_changed, post_delete, post_save, pre_delete, pre_save};
use signals_orm::{
    AnyModel, Committed, ConnectOptions, Model, ModelExt, ModelSnapshot, OrmError, Persist,
    PostDelete, PostSave, PreDelete, PreSave, SendError, Sender, Signal, Tx, receiver,
};
use sqlx::Pool;
use support::{Log, TestBackend, logged};

const SCHEMA: &str = "
CREATE TABLE log (id {serial}, entry TEXT NOT NULL);
CREATE TABLE notes (id {serial}, body TEXT NOT NULL);
CREATE TABLE posts (id {serial}, title TEXT NOT NULL);
CREATE TABLE tags (id {serial}, name TEXT NOT NULL);
CREATE TABLE post_tags (
    post_id BIGINT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    tag_id BIGINT NOT NULL REFERENCES tags (id) ON DELETE CASCADE,
    PRIMARY KEY (post_id, tag_id));
";

every_backend!(
    a_runtime_post_save_runs_until_its_guard_is_dropped,
    a_failing_runtime_receiver_rolls_the_save_back_and_is_named,
    an_async_fn_with_the_transaction_writes_in_it,
    runtime_delete_receivers_see_the_row_and_its_origin,
    runtime_m2m_changed_receivers_hear_their_relation_until_dropped,
    a_failing_runtime_m2m_receiver_undoes_the_add_and_is_named,
    runtime_on_commit_receivers_run_after_commit_only,
    a_failing_runtime_on_commit_receiver_is_reported_after_commit,
);

#[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
#[model(table = "notes")]
struct Note {
    #[model(primary_key)]
    id: Option<i64>,
    body: String,
}

/// Held by the scenarios whose receivers take one backend's transaction.
static ONE_BACKEND_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A token unique to one scenario on one backend.
fn token<DB: TestBackend>(scenario: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{scenario}-{}-{}",
        <DB as signals_orm::Backend>::NAME,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn note(body: &str) -> Note {
    Note {
        id: None,
        body: body.to_owned(),
    }
}

async fn a_runtime_post_save_runs_until_its_guard_is_dropped<DB: TestBackend>(pool: Pool<DB>)
where
    Note: Persist<DB>,
    Log: Persist<DB>,
{
    let _one = ONE_BACKEND_AT_A_TIME.lock().await;
    let mine = token::<DB>("guard");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (m, s) = (mine.clone(), Arc::clone(&seen));
    // Typed payload: only `Note` reaches it, with `created`.
    let typed = post_save.connect(move |ev: PostSave<'_, Note>| {
        if ev.instance.body.starts_with(&m) {
            s.lock()
                .unwrap()
                .push(format!("typed {} created={}", ev.instance.body, ev.created));
        }
    });
    let (m, s) = (mine.clone(), Arc::clone(&seen));
    // Every model, with the write's transaction: writes a log row in it.
    let any = post_save.connect(move |ev: PostSave<'_, dyn AnyModel>, tx: &mut Tx<DB>| {
        let _ = tx;
        if ev.instance.meta().name == "Note" && format!("{:?}", ev.instance).contains(&m) {
            s.lock()
                .unwrap()
                .push(format!("any {}", ev.instance.meta().name));
        }
    });
    assert!(typed.is_new() && any.is_new());

    let mut first = note(&format!("{mine} one"));
    first.save(&pool).await.unwrap();
    first.save(&pool).await.unwrap();
    drop(typed);
    note(&format!("{mine} two")).save(&pool).await.unwrap();
    any.disconnect();
    note(&format!("{mine} three")).save(&pool).await.unwrap();

    assert_eq!(
        *seen.lock().unwrap(),
        [
            format!("typed {mine} one created=true"),
            "any Note".to_owned(),
            format!("typed {mine} one created=false"),
            "any Note".to_owned(),
            "any Note".to_owned(),
        ]
    );
    let _ = logged(&pool).await;
}

async fn a_failing_runtime_receiver_rolls_the_save_back_and_is_named<DB: TestBackend>(
    pool: Pool<DB>,
) where
    Note: Persist<DB>,
    Log: Persist<DB>,
{
    let _one = ONE_BACKEND_AT_A_TIME.lock().await;
    let mine = token::<DB>("fails");
    let m = mine.clone();
    let _guard = pre_save.connect_with(
        ConnectOptions::new().name("refuse_forbidden_notes"),
        move |ev: PreSave<'_, Note>| -> Result<(), String> {
            if ev.instance.body.starts_with(&m) && ev.instance.body.contains("forbidden") {
                return Err("forbidden word".to_owned());
            }
            Ok(())
        },
    );
    let error = note(&format!("{mine} forbidden"))
        .save(&pool)
        .await
        .unwrap_err();
    let text = format!("{error:#}");
    assert!(
        text.contains("receiver `refuse_forbidden_notes` of signal `pre_save`")
            && text.contains("forbidden word"),
        "{text}"
    );
    let bodies = DB::strings(&pool, "SELECT body FROM notes").await;
    assert!(!bodies.iter().any(|b| b.starts_with(&mine)), "{bodies:?}");
    // The same receiver lets the others through.
    note(&format!("{mine} fine")).save(&pool).await.unwrap();
    let bodies = DB::strings(&pool, "SELECT body FROM notes").await;
    assert!(bodies.contains(&format!("{mine} fine")), "{bodies:?}");
}

/// Mine: logs the notes of the scenario whose token the body starts with.
async fn log_note<DB: TestBackend>(ev: PostSave<'_, Note>, tx: &mut Tx<DB>) -> Result<(), OrmError>
where
    Log: Persist<DB>,
{
    if ev.instance.body.starts_with("async-fn-") {
        let mut row = Log {
            id: None,
            entry: format!("saved {}", ev.instance.body),
        };
        row.save(tx).await?;
    }
    Ok(())
}

async fn an_async_fn_with_the_transaction_writes_in_it<DB: TestBackend>(pool: Pool<DB>)
where
    Note: Persist<DB>,
    Log: Persist<DB>,
{
    let _one = ONE_BACKEND_AT_A_TIME.lock().await;
    let mine = token::<DB>("async-fn");
    let guard = post_save.connect(log_note::<DB>);
    assert!(guard.is_new());
    // A second connection of the same function is Django's duplicate: a no-op.
    let again = post_save.connect(log_note::<DB>);
    assert!(!again.is_new());
    note(&format!("{mine} kept")).save(&pool).await.unwrap();
    // A write that fails after the receiver ran takes the receiver's row with it.
    let mut tx = Tx::begin(&pool).await.unwrap();
    note(&format!("{mine} undone")).save(&mut tx).await.unwrap();
    tx.rollback().await.unwrap();
    drop(guard);
    note(&format!("{mine} unheard")).save(&pool).await.unwrap();
    let mine_logged: Vec<String> = logged(&pool)
        .await
        .into_iter()
        .filter(|e| e.contains(&mine))
        .collect();
    assert_eq!(mine_logged, [format!("saved {mine} kept")]);
}

async fn runtime_delete_receivers_see_the_row_and_its_origin<DB: TestBackend>(pool: Pool<DB>)
where
    Note: Persist<DB>,
    Log: Persist<DB>,
{
    let _one = ONE_BACKEND_AT_A_TIME.lock().await;
    let mine = token::<DB>("delete");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (m, s) = (mine.clone(), Arc::clone(&seen));
    let _pre = pre_delete.connect(move |ev: PreDelete<'_, Note>| {
        if ev.instance.body.starts_with(&m) {
            let from_instance = ev.origin.instance().is_some();
            s.lock()
                .unwrap()
                .push(format!("pre {} instance={from_instance}", ev.instance.body));
        }
    });
    let (m, s) = (mine.clone(), Arc::clone(&seen));
    let _post = post_delete.connect(move |ev: PostDelete<'_, Note>| {
        if ev.instance.body.starts_with(&m) {
            s.lock().unwrap().push(format!("post {}", ev.instance.body));
        }
    });
    let mut one = note(&format!("{mine} a"));
    one.save(&pool).await.unwrap();
    one.delete(&pool).await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [
            format!("pre {mine} a instance=true"),
            format!("post {mine} a")
        ]
    );
}

// ---- m2m_changed at runtime ------------------------------------------------------------------

#[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
#[model(table = "posts")]
struct Post {
    #[model(primary_key)]
    id: Option<i64>,
    title: String,
}

#[derive(Model, sqlx::FromRow, Clone, Debug, PartialEq)]
#[model(table = "tags")]
struct Tag {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

signals_orm::many_to_many! {
    /// Tags of posts.
    struct PostTags(Post => "post_id", Tag => "tag_id") in "post_tags";
}

/// A saved post titled `title` and saved tags named `names`, with their keys.
async fn post_and_tags<DB: TestBackend>(
    pool: &Pool<DB>,
    title: &str,
    names: &[&str],
) -> (Post, Vec<i64>)
where
    Post: Persist<DB>,
    Tag: Persist<DB>,
{
    let mut post = Post {
        id: None,
        title: title.to_owned(),
    };
    post.save(pool).await.unwrap();
    let mut keys = Vec::new();
    for name in names {
        let mut tag = Tag {
            id: None,
            name: (*name).to_owned(),
        };
        tag.save(pool).await.unwrap();
        keys.push(tag.id.unwrap());
    }
    (post, keys)
}

/// The title of a post reached through a type-erased `m2m_changed` payload.
fn title_of(instance: &dyn AnyModel) -> String {
    instance
        .field_values()
        .into_iter()
        .find(|(name, _)| *name == "title")
        .and_then(|(_, value)| value.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Mine: logs, in the operation's transaction, each `post_add` of a post whose title starts
/// with `m2m-tx-`.
async fn log_tags<DB: TestBackend>(
    ev: M2mChanged<'_, PostTags>,
    tx: &mut Tx<DB>,
) -> Result<(), OrmError>
where
    Log: Persist<DB>,
{
    if let M2mSide::Forward {
        instance,
        pk_set: Some(keys),
    } = &ev.side
        && ev.action == M2mAction::PostAdd
        && instance.title.starts_with("m2m-tx-")
    {
        let mut row = Log {
            id: None,
            entry: format!("{} tagged {}", instance.title, keys.len()),
        };
        row.save(tx).await?;
    }
    Ok(())
}

async fn runtime_m2m_changed_receivers_hear_their_relation_until_dropped<DB: TestBackend>(
    pool: Pool<DB>,
) where
    Post: Persist<DB>,
    Tag: Persist<DB>,
    Log: Persist<DB>,
{
    let _one = ONE_BACKEND_AT_A_TIME.lock().await;
    let mine = token::<DB>("m2m");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (m, s) = (mine.clone(), Arc::clone(&seen));
    // Typed for one relation: a `pre_add` receiver may change the keys, as a link-time one may.
    let typed = m2m_changed.connect(move |ev: M2mChanged<'_, PostTags>| {
        if let M2mSide::Forward { instance, pk_set } = ev.side
            && instance.title.starts_with(&m)
        {
            let keys = pk_set.map(|keys| {
                if ev.action == M2mAction::PreAdd {
                    keys.pop_last();
                }
                keys.len()
            });
            s.lock()
                .unwrap()
                .push(format!("typed {} {keys:?}", ev.action));
        }
    });
    let (m, s) = (mine.clone(), Arc::clone(&seen));
    // Every relation, named, with a priority that puts it first.
    let every = m2m_changed.connect_with(
        ConnectOptions::new().name("every_relation").priority(1),
        move |ev: AnyM2mChanged<'_>| {
            if title_of(ev.instance).starts_with(&m) {
                s.lock()
                    .unwrap()
                    .push(format!("any {} {}", ev.through, ev.action));
            }
        },
    );
    // An `async fn` with the operation's transaction.
    let with_tx = m2m_changed.connect(log_tags::<DB>);
    let listed: Vec<_> = signals_orm::receivers()
        .iter()
        .filter(|r| r.signal == "m2m_changed" && r.name == "every_relation")
        .map(|r| (r.sender, r.priority))
        .collect();
    assert_eq!(listed, [(None, 1)]);

    let (post, tags) = post_and_tags(&pool, &format!("{mine} a"), &["x", "y", "z"]).await;
    // The typed receiver drops the last key of three before they are written.
    assert_eq!(
        PostTags::of(&post).add(&pool, tags.clone()).await.unwrap(),
        2
    );
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "any PostTags pre_add".to_owned(),
            "typed pre_add Some(2)".to_owned(),
            "any PostTags post_add".to_owned(),
            "typed post_add Some(2)".to_owned(),
        ]
    );
    let (tx_post, tx_tags) = post_and_tags(&pool, &format!("m2m-tx-{mine}"), &["t"]).await;
    PostTags::of(&tx_post).add(&pool, tx_tags).await.unwrap();
    let mine_logged: Vec<String> = logged(&pool)
        .await
        .into_iter()
        .filter(|e| e.contains(&mine))
        .collect();
    assert_eq!(mine_logged, [format!("m2m-tx-{mine} tagged 1")]);

    drop((typed, every, with_tx));
    seen.lock().unwrap().clear();
    PostTags::of(&post).clear(&pool).await.unwrap();
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );
}

async fn a_failing_runtime_m2m_receiver_undoes_the_add_and_is_named<DB: TestBackend>(pool: Pool<DB>)
where
    Post: Persist<DB>,
    Tag: Persist<DB>,
{
    let _one = ONE_BACKEND_AT_A_TIME.lock().await;
    let mine = token::<DB>("m2m-fails");
    let m = mine.clone();
    let _guard = m2m_changed.connect_with(
        ConnectOptions::new().name("no_links_after_the_fact"),
        move |ev: M2mChanged<'_, PostTags>| -> Result<(), String> {
            match ev.side {
                M2mSide::Forward { instance, .. }
                    if ev.action == M2mAction::PostAdd && instance.title.starts_with(&m) =>
                {
                    Err("refused".to_owned())
                }
                _ => Ok(()),
            }
        },
    );
    let (post, tags) = post_and_tags(&pool, &format!("{mine} p"), &["x"]).await;
    let error = PostTags::of(&post).add(&pool, tags).await.unwrap_err();
    let text = format!("{error:#}");
    assert!(
        text.contains("receiver `no_links_after_the_fact` of signal `m2m_changed`")
            && text.contains("sender `runtime_receivers::PostTags`")
            && text.contains("refused"),
        "{text}"
    );
    assert!(PostTags::of(&post).keys(&pool).await.unwrap().is_empty());
}

// ---- on_commit at runtime --------------------------------------------------------------------

async fn runtime_on_commit_receivers_run_after_commit_only<DB: TestBackend>(pool: Pool<DB>)
where
    Note: Persist<DB>,
    Log: Persist<DB>,
{
    let _one = ONE_BACKEND_AT_A_TIME.lock().await;
    let mine = token::<DB>("commit");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (m, s) = (mine.clone(), Arc::clone(&seen));
    let sync = post_save.connect_on_commit(move |ev: Committed<Note>| {
        if ev.instance.body.starts_with(&m) {
            s.lock().unwrap().push(format!(
                "sync {} created={} using={}",
                ev.instance.body, ev.created, ev.using
            ));
        }
    });
    let (m, s) = (mine.clone(), Arc::clone(&seen));
    // Every model, async, named: its future owns what it uses.
    let every = post_save.connect_on_commit_with(
        ConnectOptions::new().name("note_committed"),
        move |ev: Committed<ModelSnapshot>| {
            let (m, s) = (m.clone(), Arc::clone(&s));
            async move {
                let body = ev.instance.values.iter().find(|(n, _)| *n == "body");
                if let Some((_, body)) = body
                    && body.as_str().is_some_and(|b| b.starts_with(&m))
                {
                    s.lock()
                        .unwrap()
                        .push(format!("async {} {}", ev.model, body));
                }
            }
        },
    );
    let rows: Vec<_> = signals_orm::receivers()
        .iter()
        .filter(|r| r.signal == "post_save" && r.name == "note_committed")
        .map(|r| (r.phase, r.is_async, r.sender))
        .collect();
    assert_eq!(rows, [(Phase::OnCommit, true, None)]);

    let mut tx = Tx::begin(&pool).await.unwrap();
    note(&format!("{mine} kept")).save(&mut tx).await.unwrap();
    assert!(seen.lock().unwrap().is_empty(), "ran before COMMIT");
    let queued: Vec<_> = tx.on_commit_queue().iter().map(|c| c.receiver).collect();
    assert!(queued.contains(&"note_committed"), "{queued:?}");
    let report = tx.commit().await.unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(
        *seen.lock().unwrap(),
        [
            format!(
                "sync {mine} kept created=true using={}",
                <DB as signals_orm::Backend>::NAME
            ),
            format!("async Note \"{mine} kept\""),
        ]
    );

    // Rolled back: never run.
    seen.lock().unwrap().clear();
    let mut tx = Tx::begin(&pool).await.unwrap();
    note(&format!("{mine} undone")).save(&mut tx).await.unwrap();
    tx.rollback().await.unwrap();
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );

    // Disconnected: a pool write commits and runs nothing of theirs.
    drop((sync, every));
    note(&format!("{mine} unheard")).save(&pool).await.unwrap();
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );
}

async fn a_failing_runtime_on_commit_receiver_is_reported_after_commit<DB: TestBackend>(
    pool: Pool<DB>,
) where
    Note: Persist<DB>,
{
    let _one = ONE_BACKEND_AT_A_TIME.lock().await;
    let mine = token::<DB>("commit-fails");
    let m = mine.clone();
    let _guard = post_delete.connect_on_commit_with(
        ConnectOptions::new().name("remove_the_file"),
        move |ev: Committed<Note>| -> Result<(), String> {
            if ev.instance.body.starts_with(&m) {
                return Err(format!("no file for {}", ev.instance.body));
            }
            Ok(())
        },
    );
    let mut one = note(&format!("{mine} gone"));
    one.save(&pool).await.unwrap();
    let mut tx = Tx::begin(&pool).await.unwrap();
    one.delete(&mut tx).await.unwrap();
    let report = tx.commit().await.unwrap();
    let failures: Vec<String> = report.failures.iter().map(|f| format!("{f:#}")).collect();
    assert_eq!(
        failures,
        [format!(
            "receiver `remove_the_file` of signal `post_delete` (sender `runtime_receivers::Note`) failed: no file for {mine} gone"
        )]
    );
    // The delete committed all the same.
    let bodies = DB::strings(&pool, "SELECT body FROM notes").await;
    assert!(!bodies.iter().any(|b| b.starts_with(&mine)), "{bodies:?}");
}

// ---- custom signals: the sender parameter, names, reconnecting, panics ------------------------

#[derive(Signal)]
struct Shipped {
    parcel: u32,
}

struct Warehouse;

static SHIPPED_FROM: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[receiver(Shipped)]
fn note_sender(ev: &Shipped, sender: Sender) {
    SHIPPED_FROM
        .lock()
        .unwrap()
        .push(format!("{} from {}", ev.parcel, sender.name()));
}

#[test]
fn a_receiver_may_take_the_sender_of_the_send() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let _closure = signals_orm::connect(move |ev: &Shipped, sender: Sender| {
        s.lock().unwrap().push((ev.parcel, sender.name()));
    });
    signals_orm::send_sync(Sender::of::<Warehouse>(), &Shipped { parcel: 7 }).unwrap();
    signals_orm::send_sync(Sender::NONE, &Shipped { parcel: 8 }).unwrap();
    let from = SHIPPED_FROM.lock().unwrap().clone();
    assert!(
        from.contains(&"7 from runtime_receivers::Warehouse".to_owned()),
        "{from:?}"
    );
    assert!(from.contains(&"8 from -".to_owned()), "{from:?}");
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.contains(&(7, "runtime_receivers::Warehouse")),
        "{seen:?}"
    );
    assert!(seen.contains(&(8, "-")), "{seen:?}");
}

#[derive(Signal)]
struct Audited;

static AUDITED: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

#[receiver(Audited, priority = 5)]
fn audit_first(_: &Audited) {
    AUDITED.lock().unwrap().push("first");
}

#[receiver(Audited)]
fn audit_second(_: &Audited) {
    AUDITED.lock().unwrap().push("second");
}

#[test]
fn a_disconnected_link_time_receiver_can_be_reconnected_in_its_place() {
    let send = || {
        AUDITED.lock().unwrap().clear();
        signals_orm::send_sync(Sender::NONE, &Audited).unwrap();
        AUDITED.lock().unwrap().clone()
    };
    assert_eq!(send(), ["first", "second"]);
    assert!(signals_orm::disconnect::<Audited, _>(
        audit_first,
        Sender::NONE
    ));
    assert_eq!(send(), ["second"]);
    // Reconnecting goes back to its declared place (priority 5, first), not to the end.
    assert!(signals_core::reconnect::<Audited, _>(
        audit_first,
        Sender::NONE
    ));
    assert!(!signals_core::reconnect::<Audited, _>(
        audit_first,
        Sender::NONE
    ));
    assert_eq!(send(), ["first", "second"]);
    // Not a receiver of this signal for that sender: nothing to reconnect.
    assert!(!signals_core::reconnect::<Audited, _>(
        audit_first,
        Sender::of::<Warehouse>()
    ));
}

#[derive(Signal)]
struct Exploding;

#[test]
fn a_named_runtime_receiver_is_named_in_errors_and_its_panic_location_travels() {
    let line = line!() + 3;
    let _guard = signals_orm::connect_with(
        ConnectOptions::new().name("explode_on_purpose"),
        |_: &Exploding| -> Result<(), String> { panic!("boom") },
    );
    let error = signals_orm::send_sync(Sender::NONE, &Exploding).unwrap_err();
    let SendError::Panicked {
        receiver,
        message,
        location,
        ..
    } = &error
    else {
        panic!("not a panic: {error}");
    };
    assert_eq!(
        (*receiver, message.as_str()),
        ("explode_on_purpose", "boom")
    );
    let location = location.as_deref().expect("the location was recorded");
    assert!(
        location.ends_with(&format!("runtime_receivers.rs:{line}:49")),
        "{location}"
    );
    assert!(error.to_string().contains(location), "{error}");
    let listed = signals_orm::receivers().to_string();
    assert!(listed.contains("explode_on_purpose"), "{listed}");
}

#[test]
#[should_panic(expected = "leave the sender out, its payload type chooses it")]
fn a_sender_other_than_the_payloads_model_is_refused() {
    struct Other;
    let _guard = post_save.connect_with(
        ConnectOptions::new().sender::<Other>(),
        |_: PostSave<'_, Note>| {},
    );
}
