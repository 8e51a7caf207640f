//! Receivers connected at runtime: model-signal closures and `async fn`s (Django's
//! `post_save.connect(handler, sender=User)`), their guards, names and errors; reconnecting a
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

use signals_orm::model_signals::{post_delete, post_save, pre_delete, pre_save};
use signals_orm::{
    AnyModel, ConnectOptions, Model, ModelExt, OrmError, Persist, PostDelete, PostSave, PreDelete,
    PreSave, SendError, Sender, Signal, Tx, receiver,
};
use sqlx::Pool;
use support::{Log, TestBackend, logged};

const SCHEMA: &str = "
CREATE TABLE log (id {serial}, entry TEXT NOT NULL);
CREATE TABLE notes (id {serial}, body TEXT NOT NULL);
";

every_backend!(
    a_runtime_post_save_runs_until_its_guard_is_dropped,
    a_failing_runtime_receiver_rolls_the_save_back_and_is_named,
    an_async_fn_with_the_transaction_writes_in_it,
    runtime_delete_receivers_see_the_row_and_its_origin,
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
