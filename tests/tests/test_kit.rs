//! The test kit (`signals_orm::testing`): a recorder that sees its own task's sends only, the
//! diff it panics with, `on_commit` callbacks listed and run without COMMIT (savepoints
//! followed), fakes scoped to one task, and muting everything but the signals under test. ORM
//! scenarios run on every backend; the tests without a database use custom signals.

mod support;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use signals_orm::dispatch::has_listeners;
use signals_orm::model_signals::{PostSaveSignal, PreSaveSignal};
use signals_orm::testing::{Fake, FakeModel, Recorder, Sent, assert_lines};
use signals_orm::{
    Committed, Model, ModelExt, Mute, OrmError, Persist, PostSave, PreSave, SendError, Sender,
    Signal, Tx, receiver,
};
use sqlx::Pool;
use support::TestBackend;

const SCHEMA: &str = "
CREATE TABLE accounts (id {serial}, name TEXT NOT NULL);
CREATE TABLE members (id {serial}, email TEXT NOT NULL);
CREATE TABLE invoices (id {serial}, customer TEXT NOT NULL);
CREATE TABLE notes (id {serial}, body TEXT NOT NULL);
";

every_backend!(
    the_recorder_sees_its_own_tasks_sends_only,
    on_commit_callbacks_are_listed_and_run_without_commit,
    a_rolled_back_savepoint_leaves_nothing_listed,
    a_fake_replaces_a_receiver_in_its_scope_only,
    mute_all_but_delivers_only_the_signals_under_test,
);

/// A tag unique to one run of a scenario: the backends' runs share the statics below.
fn unique(what: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    // Closed by `x`, so that no tag is the start of another (`sp1x`, `sp13x`).
    format!("{what}{}x", N.fetch_add(1, Ordering::SeqCst))
}

/// What a panic said.
fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    match payload.downcast::<String>() {
        Ok(text) => *text,
        Err(payload) => payload
            .downcast_ref::<&str>()
            .map(ToString::to_string)
            .unwrap_or_default(),
    }
}

fn entries(log: &Mutex<Vec<String>>, tag: &str) -> Vec<String> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|e| e.contains(tag))
        .cloned()
        .collect()
}

// ---- the recorder ---------------------------------------------------------------------------

/// No receiver listens to accounts: only a recorder makes their writes send.
#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "accounts")]
struct Account {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

async fn the_recorder_sees_its_own_tasks_sends_only<DB: TestBackend>(pool: Pool<DB>)
where
    Account: Persist<DB>,
{
    // Another task saves accounts all along, outside any scope.
    let stop = Arc::new(AtomicBool::new(false));
    let saved_elsewhere = Arc::new(AtomicUsize::new(0));
    let elsewhere = tokio::spawn({
        let (pool, stop, saved) = (pool.clone(), stop.clone(), saved_elsewhere.clone());
        async move {
            while !stop.load(Ordering::SeqCst) {
                let mut other = Account {
                    id: None,
                    name: "elsewhere".into(),
                };
                other.save(&pool).await.unwrap();
                other.name = "elsewhere again".into();
                other.save(&pool).await.unwrap();
                saved.fetch_add(1, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        }
    });
    let saved_before = saved_elsewhere.load(Ordering::SeqCst);
    let sender = Sender::of::<Account>();
    assert!(!has_listeners::<PreSaveSignal>(sender));

    let rec = Recorder::new();
    let mut account = Account {
        id: None,
        name: "mine".into(),
    };
    let pk = rec
        .scope(async {
            assert!(
                has_listeners::<PreSaveSignal>(sender),
                "a recorder in scope listens to every model"
            );
            account.save(&pool).await.unwrap();
            let pk = account.id.unwrap();
            // The other task saves while this scope is alive.
            while saved_elsewhere.load(Ordering::SeqCst) < saved_before + 2 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            account.name = "renamed".into();
            account.save_fields(&["name"], &pool).await.unwrap();
            account.delete(&pool).await.unwrap();
            pk
        })
        .await;
    stop.store(true, Ordering::SeqCst);
    elsewhere.await.unwrap();
    assert!(
        !has_listeners::<PreSaveSignal>(sender),
        "the scope is over: nobody listens"
    );

    let expected = [
        "pre_save[Account] pk=- adding=true update_fields=-".to_owned(),
        format!("post_save[Account] pk={pk} created=true update_fields=-"),
        format!("pre_save[Account] pk={pk} adding=false update_fields=[name]"),
        format!("post_save[Account] pk={pk} created=false update_fields=[name]"),
        format!("pre_delete[Account] pk={pk} origin=self"),
        format!("post_delete[Account] pk={pk} origin=self"),
    ];
    let expected: Vec<&str> = expected.iter().map(String::as_str).collect();
    rec.assert_sent(&expected);
    rec.assert_sent_matching(Sent::is::<PostSaveSignal>, &[expected[1], expected[3]]);
    assert_eq!(rec.sent()[1].field("created"), Some("true"));
    assert!(rec.sent().iter().all(Sent::is_from::<Account>));

    // A mismatch panics with both sequences as a diff.
    let wrong = [
        expected[0],
        "post_save[Account] pk=- created=false update_fields=-",
    ];
    let message =
        panic_text(catch_unwind(AssertUnwindSafe(|| rec.assert_sent(&wrong))).unwrap_err());
    assert!(
        message.starts_with("the signals sent differ from the expected ones (2 expected, 6 actual; -expected +actual):\n"),
        "{message}"
    );
    for line in [
        format!(" {}", expected[0]),
        "-post_save[Account] pk=- created=false update_fields=-".to_owned(),
        format!("+{}", expected[1]),
        format!("+{}", expected[5]),
    ] {
        assert!(
            message.lines().any(|l| l == line),
            "no line {line:?} in:\n{message}"
        );
    }
}

// ---- on_commit callbacks, without COMMIT -----------------------------------------------------

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "members")]
struct Member {
    #[model(primary_key)]
    id: Option<i64>,
    email: String,
}

static WELCOMED: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[receiver(post_save, sender = Member, on_commit)]
async fn welcome_member(ev: Committed<Member>) -> Result<(), String> {
    if ev.instance.email.ends_with("@nowhere") {
        return Err(format!("no mailbox for {}", ev.instance.email));
    }
    WELCOMED.lock().unwrap().push(ev.instance.email);
    Ok(())
}

fn member(email: String) -> Member {
    Member { id: None, email }
}

const WELCOME: &str = "post_save[Member] test_kit::welcome_member";

async fn on_commit_callbacks_are_listed_and_run_without_commit<DB: TestBackend>(pool: Pool<DB>)
where
    Member: Persist<DB>,
{
    let tag = unique("oc");
    let mut tx = Tx::begin(&pool).await.unwrap();
    member(format!("ada-{tag}@example.com"))
        .save(&mut tx)
        .await
        .unwrap();
    member(format!("bob-{tag}@nowhere"))
        .save(&mut tx)
        .await
        .unwrap();
    let flag = Arc::new(AtomicBool::new(false));
    tx.on_commit({
        let flag = flag.clone();
        move || async move { flag.store(true, Ordering::SeqCst) }
    });
    let queued = tx.on_commit_queue();
    assert_lines(&queued[..2], &[WELCOME, WELCOME]);
    assert_eq!((queued[2].signal, queued[2].sender), ("on_commit", "-"));
    assert!(entries(&WELCOMED, &tag).is_empty(), "nothing ran yet");

    // Django's captureOnCommitCallbacks(execute=True): run them, then roll back.
    let report = tx.run_on_commit_queue().await;
    assert_eq!(report.ran, 3);
    assert_eq!(report.failures.len(), 1);
    let failure = format!("{:#}", report.failures[0]);
    assert!(
        failure.contains("test_kit::welcome_member") && failure.contains("no mailbox"),
        "{failure}"
    );
    assert_eq!(entries(&WELCOMED, &tag), [format!("ada-{tag}@example.com")]);
    assert!(flag.load(Ordering::SeqCst));
    assert!(tx.on_commit_queue().is_empty(), "the queue was emptied");
    tx.rollback().await.unwrap();
    assert_eq!(
        DB::scalar(&pool, "SELECT COUNT(*) FROM members").await,
        0,
        "rolled back: no row, but the callbacks ran"
    );

    // What ran is not run again at COMMIT; what was queued after it is.
    let mut tx = Tx::begin(&pool).await.unwrap();
    member(format!("cid-{tag}@example.com"))
        .save(&mut tx)
        .await
        .unwrap();
    assert_eq!(tx.run_on_commit_queue().await.ran, 1);
    member(format!("dee-{tag}@example.com"))
        .save(&mut tx)
        .await
        .unwrap();
    let report = tx.commit().await.unwrap();
    assert_eq!((report.ran, report.failures.len()), (1, 0));
    assert_eq!(
        entries(&WELCOMED, &tag),
        [
            format!("ada-{tag}@example.com"),
            format!("cid-{tag}@example.com"),
            format!("dee-{tag}@example.com"),
        ]
    );
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM members").await, 2);
}

async fn a_rolled_back_savepoint_leaves_nothing_listed<DB: TestBackend>(pool: Pool<DB>)
where
    Member: Persist<DB>,
{
    let tag = unique("sp");
    let mut tx = Tx::begin(&pool).await.unwrap();
    tx.savepoint().await.unwrap();
    member(format!("a-{tag}")).save(&mut tx).await.unwrap();
    assert_lines(&tx.on_commit_queue(), &[WELCOME]);
    tx.rollback_to_savepoint().await.unwrap();
    assert_lines(&tx.on_commit_queue(), &[]);

    // A failed `atomic` block: rolled back to its savepoint, its callback with it.
    let email = format!("b-{tag}");
    let failed: Result<(), OrmError> = tx
        .atomic(|tx| {
            Box::pin(async move {
                member(email).save(tx).await?;
                Err(OrmError::NoSavepoint)
            })
        })
        .await;
    assert!(failed.is_err());
    assert_lines(&tx.on_commit_queue(), &[]);

    // A released savepoint hands its callback to the transaction.
    tx.savepoint().await.unwrap();
    member(format!("c-{tag}")).save(&mut tx).await.unwrap();
    tx.release_savepoint().await.unwrap();
    assert_lines(&tx.on_commit_queue(), &[WELCOME]);

    // Run inside a savepoint, which is then rolled back: what ran is gone from the queue, and
    // what was queued after the run is discarded with the savepoint.
    tx.savepoint().await.unwrap();
    member(format!("d-{tag}")).save(&mut tx).await.unwrap();
    assert_eq!(tx.run_on_commit_queue().await.ran, 2);
    member(format!("e-{tag}")).save(&mut tx).await.unwrap();
    assert_lines(&tx.on_commit_queue(), &[WELCOME]);
    tx.rollback_to_savepoint().await.unwrap();
    assert_lines(&tx.on_commit_queue(), &[]);
    assert_eq!(
        entries(&WELCOMED, &tag),
        [format!("c-{tag}"), format!("d-{tag}")]
    );
    assert_eq!(tx.commit().await.unwrap().ran, 0);
    assert_eq!(
        entries(&WELCOMED, &tag).len(),
        2,
        "the COMMIT ran nothing again"
    );
}

// ---- fakes ----------------------------------------------------------------------------------

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "invoices")]
struct Invoice {
    #[model(primary_key)]
    id: Option<i64>,
    customer: String,
}

static CHARGED: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[receiver(post_save, sender = Invoice)]
fn charge_card(ev: PostSave<'_, Invoice>) {
    CHARGED
        .lock()
        .unwrap()
        .push(format!("charged {}", ev.instance.customer));
}

fn invoice(customer: String) -> Invoice {
    Invoice { id: None, customer }
}

async fn a_fake_replaces_a_receiver_in_its_scope_only<DB: TestBackend>(pool: Pool<DB>)
where
    Invoice: Persist<DB>,
{
    let tag = unique("fake");
    let fake = Fake::<PostSaveSignal>::receiver(charge_card, Sender::of::<Invoice>());
    let mut faked = invoice(format!("faked-{tag}"));
    fake.scope(async {
        faked.save(&pool).await.unwrap();
        // A task spawned now is outside the scope: it gets the real receiver, while the fake
        // is alive.
        let (pool, customer) = (pool.clone(), format!("real-{tag}"));
        tokio::spawn(async move { invoice(customer).save(&pool).await.unwrap() })
            .await
            .unwrap();
    })
    .await;
    assert_eq!(entries(&CHARGED, &tag), [format!("charged real-{tag}")]);
    let pk = faked.id.unwrap();
    assert_lines(
        &fake.calls(),
        &[&format!(
            "post_save[Invoice] pk={pk} created=true update_fields=-"
        )],
    );

    // Out of the scope, the real receiver runs again.
    faked.save(&pool).await.unwrap();
    assert_eq!(
        entries(&CHARGED, &tag),
        [
            format!("charged real-{tag}"),
            format!("charged faked-{tag}")
        ]
    );

    // A failing stub: the write is rolled back, the error names the real receiver.
    let declined =
        Fake::<PostSaveSignal>::receiver(charge_card, Sender::of::<Invoice>()).failing("declined");
    let error = declined
        .scope(invoice(format!("refused-{tag}")).save(&pool))
        .await
        .unwrap_err();
    let text = format!("{error:#}");
    assert!(
        text.contains("test_kit::charge_card") && text.contains("declined"),
        "{text}"
    );
    assert_eq!(declined.calls().len(), 1);
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM invoices").await, 2);

    // A typed stub gets the payload, in the receiver's place.
    let typed = Fake::<PostSaveSignal>::receiver(charge_card, Sender::of::<Invoice>()).with_model(
        |ev: PostSave<'_, Invoice>| {
            CHARGED.lock().unwrap().push(format!(
                "stub {} created={}",
                ev.instance.customer, ev.created
            ));
        },
    );
    typed
        .scope(invoice(format!("typed-{tag}")).save(&pool))
        .await
        .unwrap();
    assert_eq!(
        entries(&CHARGED, &tag)[2..],
        [format!("stub typed-{tag} created=true")]
    );
}

// ---- muting everything but the signals under test --------------------------------------------

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "notes")]
struct Note {
    #[model(primary_key)]
    id: Option<i64>,
    body: String,
}

#[receiver(pre_save, sender = Note)]
fn shout(ev: PreSave<'_, Note>) {
    ev.instance.body = ev.instance.body.to_uppercase();
}

static NOTED: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[receiver(post_save, sender = Note)]
fn note_saved(ev: PostSave<'_, Note>) {
    NOTED.lock().unwrap().push(ev.instance.body.to_lowercase());
}

fn note(body: String) -> Note {
    Note { id: None, body }
}

async fn mute_all_but_delivers_only_the_signals_under_test<DB: TestBackend>(pool: Pool<DB>)
where
    Note: Persist<DB>,
    Invoice: Persist<DB>,
{
    let tag = unique("mute");
    let rec = Recorder::new();
    let mut quiet = note(format!("quiet-{tag}"));
    rec.scope(
        Mute::all()
            .except::<PostSaveSignal>()
            .scope(quiet.save(&pool)),
    )
    .await
    .unwrap();
    assert_eq!(quiet.body, format!("quiet-{tag}"), "pre_save was muted");
    assert_eq!(entries(&NOTED, &tag), [format!("quiet-{tag}")]);
    let pk = quiet.id.unwrap();
    rec.assert_sent(&[&format!(
        "post_save[Note] pk={pk} created=true update_fields=-"
    )]);

    // Kept for another sender only: the note's post_save is muted too.
    let mut other = note(format!("other-{tag}"));
    Mute::all()
        .except_from::<PostSaveSignal, Invoice>()
        .scope(other.save(&pool))
        .await
        .unwrap();
    assert_eq!(other.body, format!("other-{tag}"));
    assert_eq!(entries(&NOTED, &tag).len(), 1);

    // Another task meanwhile is not muted; nor is this one after the scope.
    let mut loud = note(format!("loud-{tag}"));
    Mute::all()
        .scope(async {
            let (pool, body) = (pool.clone(), format!("spawned-{tag}"));
            let spawned = tokio::spawn(async move {
                let mut n = note(body);
                n.save(&pool).await.unwrap();
                n.body
            });
            assert_eq!(
                spawned.await.unwrap(),
                format!("SPAWNED-{}", tag.to_uppercase())
            );
        })
        .await;
    loud.save(&pool).await.unwrap();
    assert_eq!(loud.body, format!("LOUD-{}", tag.to_uppercase()));
    assert_eq!(
        entries(&NOTED, &tag),
        [
            format!("quiet-{tag}"),
            format!("spawned-{tag}"),
            format!("loud-{tag}")
        ]
    );
}

// ---- custom signals, no database --------------------------------------------------------------

struct Shop;

#[derive(Signal, Debug)]
struct Paid {
    #[expect(dead_code, reason = "shown by `Debug`, which the recorder reads")]
    order_id: i64,
}

/// No `Debug`: described by nothing.
#[derive(Signal)]
struct Opaque(#[expect(dead_code, reason = "a payload nobody reads")] u8);

#[derive(Signal, Debug)]
struct Tick;

#[test]
fn custom_signals_are_described_by_their_debug_text() {
    let rec = Recorder::new();
    rec.sync_scope(|| {
        assert!(has_listeners::<Opaque>(Sender::NONE), "a recorder listens");
        signals_orm::send_sync(Sender::of::<Shop>(), &Paid { order_id: 7 }).unwrap();
        signals_orm::send_sync(Sender::NONE, &Opaque(1)).unwrap();
        signals_orm::send_sync(Sender::NONE, &Tick).unwrap();
    });
    assert!(!has_listeners::<Opaque>(Sender::NONE));
    rec.assert_sent(&["Paid[Shop] { order_id: 7 }", "Opaque[-]", "Tick[-]"]);
    let sent = rec.sent();
    assert!(sent[0].is::<Paid>() && sent[0].is_from::<Shop>() && !sent[1].is::<Paid>());
    assert_eq!(sent[0].field(""), Some("{ order_id: 7 }"));
    assert_eq!(sent[0].sender, std::any::type_name::<Shop>());
}

#[test]
fn recorders_on_parallel_threads_see_their_own_sends() {
    let threads: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let rec = Recorder::new();
                rec.sync_scope(|| {
                    for _ in 0..200 {
                        signals_orm::send_sync(Sender::NONE, &Paid { order_id: i }).unwrap();
                        std::thread::yield_now();
                    }
                });
                (i, rec.lines())
            })
        })
        .collect();
    for thread in threads {
        let (i, lines) = thread.join().unwrap();
        assert_eq!(lines.len(), 200);
        let mine = format!("Paid[-] {{ order_id: {i} }}");
        assert!(lines.iter().all(|l| *l == mine), "{lines:?}");
    }
}

#[tokio::test]
async fn nested_recorders_both_record_and_a_muted_send_is_not_recorded() {
    let (outer, inner) = (Recorder::new(), Recorder::new());
    outer
        .scope(async {
            signals_orm::send(Sender::NONE, &Paid { order_id: 1 })
                .await
                .unwrap();
            inner
                .scope(Mute::new().signal::<Tick>().scope(async {
                    signals_orm::send(Sender::NONE, &Paid { order_id: 2 })
                        .await
                        .unwrap();
                    signals_orm::send(Sender::NONE, &Tick).await.unwrap();
                }))
                .await;
        })
        .await;
    outer.assert_sent(&["Paid[-] { order_id: 1 }", "Paid[-] { order_id: 2 }"]);
    inner.assert_sent(&["Paid[-] { order_id: 2 }"]);
}

#[derive(Signal, Debug)]
struct Charge {
    cents: i64,
}

static CHARGES: AtomicUsize = AtomicUsize::new(0);

#[receiver(Charge)]
fn book_charge(ev: &Charge) -> Result<(), String> {
    CHARGES.fetch_add(1, Ordering::SeqCst);
    if ev.cents < 0 {
        return Err("negative".into());
    }
    Ok(())
}

#[receiver(Charge)]
async fn audit_charge(_: &Charge) {}

#[tokio::test]
async fn a_fake_of_a_custom_receiver_runs_its_stub_and_names_it_in_errors() {
    static STUBBED: AtomicUsize = AtomicUsize::new(0);
    let fake = Fake::<Charge>::receiver(book_charge, Sender::NONE).with(|ev: &Charge| {
        assert!(ev.cents != 0);
        STUBBED.fetch_add(1, Ordering::SeqCst);
    });
    fake.scope(async {
        signals_orm::send(Sender::NONE, &Charge { cents: 5 })
            .await
            .unwrap();
        // The stub stands in for a receiver that would fail.
        signals_orm::send(Sender::NONE, &Charge { cents: -1 })
            .await
            .unwrap();
    })
    .await;
    assert_eq!(STUBBED.load(Ordering::SeqCst), 2);
    // Only this test sends `Charge`.
    assert_eq!(
        CHARGES.load(Ordering::SeqCst),
        0,
        "the real receiver never ran"
    );
    assert_lines(
        &fake.calls(),
        &["Charge[-] { cents: 5 }", "Charge[-] { cents: -1 }"],
    );

    // A failing stub in a robust send: its outcome names the real receiver.
    let failing = Fake::<Charge>::receiver(book_charge, Sender::NONE).failing("stub says no");
    let outcomes = failing
        .scope(signals_orm::send_robust(Sender::NONE, &Charge { cents: 1 }))
        .await;
    let failed: Vec<_> = outcomes.iter().filter(|o| o.result.is_err()).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].receiver, "test_kit::book_charge");
    assert!(matches!(&failed[0].result, Err(SendError::Receiver { .. })));
    assert_eq!(CHARGES.load(Ordering::SeqCst), 0);
    signals_orm::send(Sender::NONE, &Charge { cents: 1 })
        .await
        .unwrap();
    assert_eq!(CHARGES.load(Ordering::SeqCst), 1, "outside the scopes");
}

#[test]
fn a_fake_of_a_receiver_not_connected_for_that_sender_panics() {
    let wrong_sender =
        catch_unwind(|| Fake::<Charge>::receiver(book_charge, Sender::of::<Shop>())).unwrap_err();
    let text = panic_text(wrong_sender);
    assert!(
        text.contains("cannot fake `test_kit::book_charge` for sender `test_kit::Shop`")
            && text.contains("connected for sender(s) -"),
        "{text}"
    );
    let not_a_receiver =
        catch_unwind(|| Fake::<Charge>::receiver(charge_card, Sender::NONE)).unwrap_err();
    assert!(
        panic_text(not_a_receiver).contains("not a connected receiver of `Charge`"),
        "a receiver of another signal"
    );
}
