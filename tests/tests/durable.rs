//! Durable receivers (`signals_orm::durable`), on a SQLite file and on PostgreSQL: the job is
//! enqueued in the write's own transaction, runs at least once in a worker, is retried with
//! backoff up to its limit, then kept dead with its last error until it is run again; every
//! signal kind; graceful shutdown; what introspection and tracing show. Crashes and several
//! worker processes: `durable_crash.rs`; apalis's own worker running our rows:
//! `durable_contract.rs`.

mod durable_support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use durable_support::{
    Effect, Keyed, TestDb, drained, effects, record, record_job, states, test_worker, unique,
    until, until_an_effect,
};
use signals_orm::durable::{
    self, Backoff, Job, JobFilter, JobOptions, JobRow, JobState, M2mChange,
};
use signals_orm::model_signals::{post_delete, post_save, pre_delete, pre_save};
use signals_orm::{ModelExt, OrmError, Persist, PostSave, Sender, Signal, Tx};
use sqlx::Pool;

durable_backends!(
    a_job_exists_if_and_only_if_its_write_committed,
    a_failing_job_is_retried_with_backoff_then_kept_dead_and_can_be_run_again,
    a_flaky_mail_server_succeeds_on_the_third_attempt,
    a_payload_that_no_longer_reads_is_kept_dead_naming_receiver_and_event,
    every_signal_kind_enqueues_a_job_with_its_event,
    a_custom_signal_enqueues_only_inside_a_transaction,
    a_failed_or_dropped_durable_send_leaves_its_transaction_rollback_only,
    shutdown_lets_running_jobs_finish,
    shutdown_releases_jobs_still_running_at_its_timeout,
    a_job_cut_at_its_last_attempt_is_kept_dead,
    each_run_is_a_span_with_receiver_event_and_attempt,
    a_job_whose_worker_lacks_its_data_fails_naming_receiver_event_and_type,
);

order_model!(TxOrder);

async fn a_job_exists_if_and_only_if_its_write_committed<DB: TestDb>(pool: Pool<DB>)
where
    TxOrder: Persist<DB>,
    Effect: Persist<DB>,
{
    let queue = unique("tx");
    let name = unique("durable::tx::record");
    let p = pool.clone();
    let _durable = durable::connect(
        post_save,
        name,
        JobOptions::new().queue(queue),
        move |job: Job<TxOrder>| {
            let p = p.clone();
            async move {
                assert!(
                    job.instance.id.is_some(),
                    "post_save's instance has its key"
                );
                let note = format!("created={} total={}", job.created, job.instance.total);
                record_job(&p, &job, &note).await
            }
        },
    );
    // Connected after the durable receiver, so it runs after it: its error rolls back a write
    // whose job was already inserted.
    let _refuse = post_save.connect(|ev: PostSave<'_, TxOrder>| {
        if ev.instance.total < 0 {
            Err("negative total")
        } else {
            Ok(())
        }
    });
    let jobs = |pool: Pool<DB>| async move {
        durable::jobs(&pool, &JobFilter::new().queue(queue))
            .await
            .unwrap()
    };

    // Committed: the job is there from the COMMIT on, not before (no window either way).
    let mut tx = Tx::begin(&pool).await.unwrap();
    TxOrder::new("a", 1).save(&mut tx).await.unwrap();
    assert!(
        jobs(pool.clone()).await.is_empty(),
        "another connection sees no job before the COMMIT"
    );
    tx.commit().await.unwrap();
    let committed = jobs(pool.clone()).await;
    assert_eq!(committed.len(), 1);
    assert_eq!(committed[0].state, JobState::Pending);
    assert_eq!(committed[0].receiver.as_deref(), Some(name));
    assert_eq!(committed[0].event.as_deref(), Some("post_save[TxOrder]"));

    // Rolled back: no job.
    let mut tx = Tx::begin(&pool).await.unwrap();
    TxOrder::new("b", 1).save(&mut tx).await.unwrap();
    tx.rollback().await.unwrap();
    // A later receiver's error rolls the write back, job included.
    let refused = TxOrder::new("c", -1).save(&pool).await;
    assert!(matches!(refused, Err(OrmError::Signal(_))), "{refused:?}");
    // A savepoint rolled back takes its write's job with it; the rest commits.
    let mut tx = Tx::begin(&pool).await.unwrap();
    let inner = tx
        .atomic(|tx| {
            Box::pin(async move {
                TxOrder::new("d", 1).save(&mut *tx).await?;
                TxOrder::new("d2", -1).save(tx).await.map(|_| ())
            })
        })
        .await;
    assert!(inner.is_err());
    TxOrder::new("e", 2).save(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(jobs(pool.clone()).await.len(), 2, "a and e");

    let worker = test_worker(&pool, queue).spawn();
    drained(&pool, queue, Duration::from_secs(30)).await;
    worker.shutdown().await.unwrap();
    let mut ran: Vec<(String, i64, String)> = effects(&pool)
        .await
        .into_iter()
        .map(|e| (e.order_key, e.attempt, e.note))
        .collect();
    ran.sort();
    assert_eq!(
        ran,
        [
            ("a".to_owned(), 1, "created=true total=1".to_owned()),
            ("e".to_owned(), 1, "created=true total=2".to_owned())
        ],
        "exactly the committed writes' jobs ran, once"
    );
    assert_eq!(states(&pool, queue).await, [JobState::Done, JobState::Done]);
}

order_model!(FailOrder);

async fn a_failing_job_is_retried_with_backoff_then_kept_dead_and_can_be_run_again<DB: TestDb>(
    pool: Pool<DB>,
) where
    FailOrder: Persist<DB>,
    Effect: Persist<DB>,
{
    let queue = unique("fail");
    let name = unique("durable::fail::mail");
    let healthy = Arc::new(AtomicBool::new(false));
    let runs = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let (p, h, r) = (pool.clone(), Arc::clone(&healthy), Arc::clone(&runs));
    let _durable = durable::connect(
        post_save,
        name,
        JobOptions::new()
            .queue(queue)
            .max_attempts(3)
            .backoff(Backoff::Fixed(Duration::from_secs(1))),
        move |job: Job<FailOrder>| {
            let (p, h, r) = (p.clone(), Arc::clone(&h), Arc::clone(&r));
            async move {
                r.lock().unwrap().push(Instant::now());
                let ok = h.load(Ordering::SeqCst);
                let note = if ok { "sent" } else { "down" };
                record_job(&p, &job, note).await?;
                if ok {
                    Ok::<(), signals_orm::BoxError>(())
                } else {
                    Err("mail server down".into())
                }
            }
        },
    );
    FailOrder::new("x", 1).save(&pool).await.unwrap();
    let worker = test_worker(&pool, queue).spawn();
    until("the job is dead", Duration::from_secs(30), || {
        let pool = pool.clone();
        async move { states(&pool, queue).await == [JobState::Dead] }
    })
    .await;
    let dead = durable::jobs(&pool, &JobFilter::new().queue(queue).state(JobState::Dead))
        .await
        .unwrap();
    let [dead] = dead.as_slice() else {
        panic!("{dead:?}")
    };
    assert_eq!((dead.attempts, dead.max_attempts), (3, 3));
    let error = dead.last_error.as_deref().unwrap_or_default();
    for part in [name, "attempt 3 of 3", "mail server down", dead.id.as_str()] {
        assert!(
            error.contains(part),
            "`{part}` missing from the last error: {error}"
        );
    }
    let tried: Vec<(i64, String)> = effects(&pool)
        .await
        .into_iter()
        .map(|e| (e.attempt, e.event_id))
        .collect();
    assert_eq!(
        tried,
        (1..=3).map(|a| (a, dead.id.clone())).collect::<Vec<_>>(),
        "three attempts of the same event"
    );
    let at = runs.lock().unwrap().clone();
    for pair in at.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(950),
            "an attempt came {gap:?} after the previous one: the 1 s backoff was not kept"
        );
    }

    // Kept, visible, and run again on demand.
    healthy.store(true, Ordering::SeqCst);
    assert!(durable::retry(&pool, &dead.id).await.unwrap());
    drained(&pool, queue, Duration::from_secs(30)).await;
    assert_eq!(states(&pool, queue).await, [JobState::Done]);
    let last = effects(&pool).await.pop().unwrap();
    assert_eq!((last.attempt, last.note.as_str()), (1, "sent"));
    assert!(
        !durable::retry(&pool, &dead.id).await.unwrap(),
        "only a dead job is run again"
    );
    worker.shutdown().await.unwrap();
}

order_model!(FlakyOrder);

async fn a_flaky_mail_server_succeeds_on_the_third_attempt<DB: TestDb>(pool: Pool<DB>)
where
    FlakyOrder: Persist<DB>,
    Effect: Persist<DB>,
{
    let queue = unique("flaky");
    let name = unique("durable::flaky::mail");
    let p = pool.clone();
    let _durable = durable::connect(
        post_save,
        name,
        JobOptions::new().queue(queue).backoff(Backoff::None),
        move |job: Job<FlakyOrder>| {
            let p = p.clone();
            async move {
                record_job(&p, &job, "").await?;
                if job.attempt < 3 {
                    return Err(format!("421 try again later (attempt {})", job.attempt).into());
                }
                Ok::<(), signals_orm::BoxError>(())
            }
        },
    );
    FlakyOrder::new("f", 1).save(&pool).await.unwrap();
    let worker = test_worker(&pool, queue).spawn();
    drained(&pool, queue, Duration::from_secs(30)).await;
    worker.shutdown().await.unwrap();
    let jobs = durable::jobs(&pool, &JobFilter::new().queue(queue))
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!((jobs[0].state, jobs[0].attempts), (JobState::Done, 3));
    let attempts: Vec<i64> = effects(&pool).await.iter().map(|e| e.attempt).collect();
    assert_eq!(attempts, [1, 2, 3]);
}

order_model!(OldOrder);

/// `OldOrder` after a field was added: jobs enqueued before no longer read as it.
#[derive(signals_orm::Model, sqlx::FromRow, serde::Serialize, serde::Deserialize, Clone, Debug)]
#[model(table = "orders")]
struct NewOrder {
    #[model(primary_key)]
    id: Option<i64>,
    key: String,
    total: i64,
    currency: String,
}

async fn a_payload_that_no_longer_reads_is_kept_dead_naming_receiver_and_event<DB: TestDb>(
    pool: Pool<DB>,
) where
    OldOrder: Persist<DB>,
    Effect: Persist<DB>,
{
    let queue = unique("schema");
    let name = unique("durable::schema::invoice");
    let old = durable::connect(
        post_save,
        name,
        JobOptions::new().queue(queue),
        |_: Job<OldOrder>| async { Ok::<(), String>(()) },
    );
    OldOrder::new("o", 1).save(&pool).await.unwrap();
    // A new deployment: the receiver's payload type changed, its name did not.
    drop(old);
    let _new = durable::connect(
        post_save,
        name,
        JobOptions::new().queue(queue),
        |_: Job<NewOrder>| async { Ok::<(), String>(()) },
    );
    // Another receiver of the queue, whose job comes after: the worker goes on.
    let other = unique("durable::schema::other");
    let p = pool.clone();
    let _other = durable::connect(
        post_save,
        other,
        JobOptions::new().queue(queue),
        move |job: Job<OldOrder>| {
            let p = p.clone();
            async move { record_job(&p, &job, "").await }
        },
    );
    OldOrder::new("p", 1).save(&pool).await.unwrap();
    let worker = test_worker(&pool, queue).spawn();
    drained(&pool, queue, Duration::from_secs(30)).await;
    worker.shutdown().await.unwrap();
    let jobs = durable::jobs(&pool, &JobFilter::new().queue(queue))
        .await
        .unwrap();
    let dead: Vec<_> = jobs.iter().filter(|j| j.state == JobState::Dead).collect();
    let [dead] = dead.as_slice() else {
        panic!("{jobs:?}")
    };
    assert_eq!(dead.receiver.as_deref(), Some(name));
    assert_eq!(
        dead.attempts, 1,
        "not retried: reading it again cannot help"
    );
    let error = dead.last_error.as_deref().unwrap_or_default();
    for part in [name, dead.id.as_str(), "NewOrder", "currency"] {
        assert!(error.contains(part), "`{part}` missing from: {error}");
    }
    let ran: Vec<String> = effects(&pool)
        .await
        .into_iter()
        .map(|e| e.order_key)
        .collect();
    assert!(ran.contains(&"p".to_owned()), "{ran:?}");
}

order_model!(KindOrder);

/// A tag of orders.
#[derive(signals_orm::Model, sqlx::FromRow, serde::Serialize, serde::Deserialize, Clone, Debug)]
#[model(table = "tags")]
struct KindTag {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

signals_orm::many_to_many! {
    /// Tags of orders.
    struct OrderTags(KindOrder => "order_id", KindTag => "tag_id") in "order_tags";
}

async fn every_signal_kind_enqueues_a_job_with_its_event<DB: TestDb>(pool: Pool<DB>)
where
    KindOrder: Persist<DB>,
    KindTag: Persist<DB>,
{
    DB::exec(
        &pool,
        format!(
            "CREATE TABLE tags (id {}, name TEXT NOT NULL);
             CREATE TABLE order_tags (order_id BIGINT NOT NULL, tag_id BIGINT NOT NULL,
                                      PRIMARY KEY (order_id, tag_id));",
            DB::SERIAL
        ),
    )
    .await;
    let queue = unique("kinds");
    let seen = Arc::new(Mutex::new(BTreeSet::<String>::new()));
    let _receivers = kind_receivers(queue, &seen);
    let mut order = KindOrder::new("k", 1);
    order.save(&pool).await.unwrap();
    let id = order.id.unwrap();
    order.total = 5;
    order.save_fields(&["total"], &pool).await.unwrap();
    let mut tag = KindTag {
        id: None,
        name: "red".into(),
    };
    tag.save(&pool).await.unwrap();
    OrderTags::of(&order)
        .add(&pool, [tag.id.unwrap()])
        .await
        .unwrap();
    order.delete(&pool).await.unwrap();

    let worker = test_worker(&pool, queue).spawn();
    drained(&pool, queue, Duration::from_secs(30)).await;
    worker.shutdown().await.unwrap();
    let using = <DB as signals_orm::Backend>::NAME;
    let seen: Vec<String> = seen.lock().unwrap().iter().cloned().collect();
    let mut expected = vec![
        "pre_save k id=None created=false fields=None".to_owned(),
        format!("pre_save k id=Some({id}) created=false fields=Some([\"total\"])"),
        "post_save k id=true created=true fields=None total=1".to_owned(),
        "post_save k id=true created=false fields=Some([\"total\"]) total=5".to_owned(),
        "pre_delete k sender=KindOrder".to_owned(),
        format!("post_delete k using={using}"),
        format!("m2m_changed pre_add reverse=false order=[{id}] tags=1 sender=OrderTags"),
        format!("m2m_changed post_add reverse=false order=[{id}] tags=1 sender=OrderTags"),
    ];
    expected.sort();
    assert_eq!(seen, expected);
}

/// The durable receivers of `KindOrder`'s four signals and of `OrderTags`' `m2m_changed`, each
/// adding a line about its job to `seen`.
fn kind_receivers(
    queue: &'static str,
    seen: &Arc<Mutex<BTreeSet<String>>>,
) -> Vec<durable::Registration> {
    let mut registrations = Vec::new();
    let options = JobOptions::new().queue(queue);
    let see = |seen: &Arc<Mutex<BTreeSet<String>>>, line: String| {
        seen.lock().unwrap().insert(line);
        async { Ok::<(), String>(()) }
    };
    let s = Arc::clone(seen);
    registrations.push(durable::connect(
        pre_save,
        unique("kinds::pre_save"),
        options,
        move |j: Job<KindOrder>| {
            see(
                &s,
                format!(
                    "{} {} id={:?} created={} fields={:?}",
                    j.signal, j.instance.key, j.instance.id, j.created, j.update_fields
                ),
            )
        },
    ));
    let s = Arc::clone(seen);
    registrations.push(durable::connect(
        post_save,
        unique("kinds::post_save"),
        options,
        move |j: Job<KindOrder>| {
            see(
                &s,
                format!(
                    "{} {} id={:?} created={} fields={:?} total={}",
                    j.signal,
                    j.instance.key,
                    j.instance.id.is_some(),
                    j.created,
                    j.update_fields,
                    j.instance.total
                ),
            )
        },
    ));
    let s = Arc::clone(seen);
    registrations.push(durable::connect(
        pre_delete,
        unique("kinds::pre_delete"),
        options,
        move |j: Job<KindOrder>| {
            see(
                &s,
                format!("{} {} sender={}", j.signal, j.instance.key, j.sender),
            )
        },
    ));
    let s = Arc::clone(seen);
    registrations.push(durable::connect(
        post_delete,
        unique("kinds::post_delete"),
        options,
        move |j: Job<KindOrder>| {
            see(
                &s,
                format!("{} {} using={}", j.signal, j.instance.key, j.using),
            )
        },
    ));
    let s = Arc::clone(seen);
    registrations.push(durable::connect(
        signals_orm::m2m::M2mChangedSignal,
        unique("kinds::m2m"),
        options,
        move |j: Job<M2mChange<OrderTags>>| {
            let change = &j.instance;
            let line = format!(
                "{} {} reverse={} order={:?} tags={:?} sender={}",
                j.signal,
                change.action,
                change.reverse,
                change.source_keys().unwrap(),
                change.target_keys().unwrap().len(),
                j.sender
            );
            see(&s, line)
        },
    ));

    registrations
}

/// A custom signal, with durable receivers.
#[derive(Signal, serde::Serialize, serde::Deserialize, Debug, Clone)]
struct PaymentSucceeded {
    order_key: String,
    cents: i64,
}

/// The sender of the payments (one per backend: the backends' tests run at once, and a
/// durable receiver hears its sender only).
struct Payments<DB>(std::marker::PhantomData<DB>);

async fn a_custom_signal_enqueues_only_inside_a_transaction<DB: TestDb>(pool: Pool<DB>)
where
    Effect: Persist<DB>,
{
    let queue = unique("custom");
    let name = unique("durable::custom::ledger");
    let p = pool.clone();
    let _durable = durable::connect_signal(
        Some(Sender::of::<Payments<DB>>()),
        name,
        JobOptions::new().queue(queue),
        move |job: Job<PaymentSucceeded>| {
            let p = p.clone();
            async move {
                let note = format!(
                    "{} cents from {} on {}",
                    job.instance.cents, job.sender, job.using
                );
                record(
                    &p,
                    &job.receiver,
                    &job.event_id,
                    &job.instance.order_key,
                    job.attempt,
                    &note,
                )
                .await
            }
        },
    );
    let paid = |key: &str| PaymentSucceeded {
        order_key: key.to_owned(),
        cents: 1200,
    };

    // Outside a transaction the job would have none: refused, naming the receiver.
    let error = signals_orm::send(Sender::of::<Payments<DB>>(), &paid("lost"))
        .await
        .unwrap_err();
    let text = format!("{error:#}");
    assert!(
        text.contains(name) && text.contains("outside a transaction"),
        "{text}"
    );
    // Another sender's send does not reach it.
    signals_orm::send(Sender::NONE, &paid("other"))
        .await
        .unwrap();

    let mut tx = Tx::begin(&pool).await.unwrap();
    durable::send(&mut tx, Sender::of::<Payments<DB>>(), &paid("kept"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = Tx::begin(&pool).await.unwrap();
    durable::send(&mut tx, Sender::of::<Payments<DB>>(), &paid("rolled-back"))
        .await
        .unwrap();
    tx.rollback().await.unwrap();

    let worker = test_worker(&pool, queue).spawn();
    drained(&pool, queue, Duration::from_secs(30)).await;
    worker.shutdown().await.unwrap();
    let ran: Vec<(String, String)> = effects(&pool)
        .await
        .into_iter()
        .map(|e| (e.order_key, e.note))
        .collect();
    assert_eq!(
        ran,
        [(
            "kept".to_owned(),
            format!(
                "1200 cents from {} on {}",
                std::any::type_name::<Payments<DB>>(),
                <DB as signals_orm::Backend>::NAME
            )
        )]
    );
}

/// The sender of `a_failed_or_dropped_durable_send_leaves_its_transaction_rollback_only`.
struct Refusals<DB>(std::marker::PhantomData<DB>);

/// An ordinary receiver of payments from `Refusals`: fails for "fail", never ends for "hang".
async fn refuse(ev: &PaymentSucceeded) -> Result<(), String> {
    match ev.order_key.as_str() {
        "fail" => Err("the ledger refused it".to_owned()),
        "hang" => std::future::pending().await,
        _ => Ok(()),
    }
}

async fn a_failed_or_dropped_durable_send_leaves_its_transaction_rollback_only<DB: TestDb>(
    pool: Pool<DB>,
) {
    let queue = unique("refused");
    let _durable = durable::connect_signal(
        Some(Sender::of::<Refusals<DB>>()),
        unique("durable::refused::ledger"),
        JobOptions::new().queue(queue),
        |_: Job<PaymentSucceeded>| async { Ok::<(), String>(()) },
    );
    let _refuse = signals_orm::connect_with(
        signals_orm::ConnectOptions::new().sender::<Refusals<DB>>(),
        refuse,
    );
    let paid = |key: &str| PaymentSucceeded {
        order_key: key.to_owned(),
        cents: 5,
    };
    let sender = Sender::of::<Refusals<DB>>();

    // A receiver fails: no job, and the transaction cannot commit without the signal's jobs.
    let mut tx = Tx::begin(&pool).await.unwrap();
    let error = durable::send(&mut tx, sender, &paid("fail"))
        .await
        .unwrap_err();
    assert!(
        format!("{error:#}").contains("the ledger refused it")
            && format!("{error}")
                .contains("receiver `durable::refuse` of signal `PaymentSucceeded`"),
        "{error:#}"
    );
    assert!(
        tx.rollback_only().is_some(),
        "a failed send marks its transaction"
    );
    assert!(tx.commit().await.is_err(), "commit refuses");

    // The send's future is dropped halfway (a timeout): the same.
    let mut tx = Tx::begin(&pool).await.unwrap();
    let hang = paid("hang");
    let send = durable::send(&mut tx, sender, &hang);
    assert!(
        tokio::time::timeout(Duration::from_millis(50), send)
            .await
            .is_err(),
        "the send hangs in its receiver"
    );
    let why = tx
        .rollback_only()
        .expect("a dropped send marks its transaction");
    assert!(why.contains("durable send"), "{why}");
    assert!(tx.commit().await.is_err(), "commit refuses");

    // A send that ran to its end leaves the transaction as it was.
    let mut tx = Tx::begin(&pool).await.unwrap();
    durable::send(&mut tx, sender, &paid("ok")).await.unwrap();
    assert_eq!(tx.rollback_only(), None);
    tx.commit().await.unwrap();
    assert_eq!(states(&pool, queue).await, [JobState::Pending]);
}

order_model!(SlowOrder);

async fn shutdown_lets_running_jobs_finish<DB: TestDb>(pool: Pool<DB>)
where
    SlowOrder: Persist<DB>,
    Effect: Persist<DB>,
{
    let queue = unique("slow");
    let name = unique("durable::slow::resize");
    let p = pool.clone();
    let _durable = durable::connect(
        post_save,
        name,
        JobOptions::new().queue(queue),
        move |job: Job<SlowOrder>| {
            let p = p.clone();
            async move {
                record_job(&p, &job, "start").await?;
                tokio::time::sleep(Duration::from_millis(800)).await;
                record_job(&p, &job, "end").await
            }
        },
    );
    SlowOrder::new("s", 1).save(&pool).await.unwrap();
    let worker = test_worker(&pool, queue).spawn();
    until_an_effect(&pool, "the job started", Duration::from_secs(30)).await;
    worker.shutdown().await.unwrap();
    let notes: Vec<(String, i64)> = effects(&pool)
        .await
        .into_iter()
        .map(|e| (e.note, e.attempt))
        .collect();
    assert_eq!(notes, [("start".to_owned(), 1), ("end".to_owned(), 1)]);
    assert_eq!(states(&pool, queue).await, [JobState::Done]);
}

order_model!(StuckOrder);

/// Saves `order`, whose durable receiver on a new queue (`max_attempts` attempts) records each
/// run and hangs on its first, and stops a worker (300 ms shutdown timeout) during that first
/// run, which is thus cut. Returns the queue, the receiver (keep it connected) and the job.
async fn cut_at_shutdown<DB: TestDb, M>(
    pool: &Pool<DB>,
    what: &str,
    max_attempts: u32,
    mut order: M,
) -> (&'static str, durable::Registration, JobRow)
where
    M: Persist<DB> + Keyed + serde::de::DeserializeOwned + Send + 'static,
    signals_orm::model_signals::PostSaveSignal: durable::DurableSignal<M>,
    Effect: Persist<DB>,
{
    let queue = unique(what);
    let p = pool.clone();
    let first = Arc::new(AtomicBool::new(true));
    let receiver = durable::connect(
        post_save,
        unique("durable::cut::export"),
        JobOptions::new().queue(queue).max_attempts(max_attempts),
        move |job: Job<M>| {
            let p = p.clone();
            let first = first.swap(false, Ordering::SeqCst);
            async move {
                record_job(&p, &job, "start").await?;
                if first {
                    tokio::time::sleep(Duration::from_mins(1)).await;
                }
                Ok::<(), OrmError>(())
            }
        },
    );
    order.save(pool).await.unwrap();
    let worker = test_worker(pool, queue)
        .shutdown_timeout(Duration::from_millis(300))
        .spawn();
    until_an_effect(pool, "the job started", Duration::from_secs(30)).await;
    worker.shutdown().await.unwrap();
    let mut jobs = durable::jobs(pool, &JobFilter::new().queue(queue))
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    let job = jobs.remove(0);
    assert!(
        job.last_error
            .as_deref()
            .is_some_and(|e| e.contains("released by worker")),
        "{job:?}"
    );
    (queue, receiver, job)
}

async fn shutdown_releases_jobs_still_running_at_its_timeout<DB: TestDb>(pool: Pool<DB>)
where
    StuckOrder: Persist<DB>,
    Effect: Persist<DB>,
{
    let (queue, _receiver, job) = cut_at_shutdown(&pool, "stuck", 5, StuckOrder::new("t", 1)).await;
    assert_eq!(
        (job.state, job.attempts),
        (JobState::Pending, 1),
        "released, its cut attempt counted: {job:?}"
    );
    // Another worker takes it: attempt 2.
    let worker = test_worker(&pool, queue).spawn();
    drained(&pool, queue, Duration::from_secs(30)).await;
    worker.shutdown().await.unwrap();
    let attempts: Vec<i64> = effects(&pool).await.iter().map(|e| e.attempt).collect();
    assert_eq!(attempts, [1, 2]);
    assert_eq!(states(&pool, queue).await, [JobState::Done]);
}

order_model!(LastOrder);

async fn a_job_cut_at_its_last_attempt_is_kept_dead<DB: TestDb>(pool: Pool<DB>)
where
    LastOrder: Persist<DB>,
    Effect: Persist<DB>,
{
    let (queue, _receiver, job) = cut_at_shutdown(&pool, "last", 1, LastOrder::new("l", 1)).await;
    // Its one attempt was used: dead, with why, rather than run a second time.
    assert_eq!((job.state, job.attempts), (JobState::Dead, 1), "{job:?}");
    let worker = test_worker(&pool, queue).spawn();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(effects(&pool).await.len(), 1, "a dead job is not run again");
    // Until it is retried.
    assert!(durable::retry(&pool, &job.id).await.unwrap());
    drained(&pool, queue, Duration::from_secs(30)).await;
    worker.shutdown().await.unwrap();
    assert_eq!(effects(&pool).await.len(), 2);
    assert_eq!(states(&pool, queue).await, [JobState::Done]);
}

order_model!(TracedOrder);

/// The spans named `durable_job` this process made, as `field=value` lines.
fn spans() -> &'static Mutex<Vec<String>> {
    static SPANS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    SPANS.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt as _;

        struct Capture;
        struct Fields(String);
        impl tracing::field::Visit for Fields {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                use std::fmt::Write as _;
                let _ = write!(self.0, " {}={value:?}", field.name());
            }
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                use std::fmt::Write as _;
                let _ = write!(self.0, " {}={value}", field.name());
            }
        }
        impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
            fn on_new_span(
                &self,
                attrs: &tracing::span::Attributes<'_>,
                _: &tracing::span::Id,
                _: tracing_subscriber::layer::Context<'_, S>,
            ) {
                if attrs.metadata().name() == "durable_job" {
                    let mut fields = Fields(String::new());
                    attrs.record(&mut fields);
                    spans().lock().unwrap().push(fields.0);
                }
            }
        }
        let _ =
            tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Capture));
        Mutex::new(Vec::new())
    })
}

async fn each_run_is_a_span_with_receiver_event_and_attempt<DB: TestDb>(pool: Pool<DB>)
where
    TracedOrder: Persist<DB>,
{
    let _ = spans();
    let queue = unique("traced");
    let name = unique("durable::traced::notify");
    let _durable = durable::connect(
        post_save,
        name,
        JobOptions::new()
            .queue(queue)
            .max_attempts(2)
            .backoff(Backoff::None),
        |job: Job<TracedOrder>| async move {
            if job.attempt == 1 {
                Err("first attempt fails")
            } else {
                Ok(())
            }
        },
    );
    let listed = durable::receivers();
    let line = listed.to_string();
    let row = line.lines().find(|l| l.contains(name)).expect("listed");
    assert!(
        row.contains(&format!("queue {queue}")) && row.contains("post_save[TracedOrder]"),
        "{row}"
    );
    assert!(listed.queues().contains(&queue));

    TracedOrder::new("r", 1).save(&pool).await.unwrap();
    let worker = test_worker(&pool, queue).spawn();
    drained(&pool, queue, Duration::from_secs(30)).await;
    worker.shutdown().await.unwrap();
    let id = durable::jobs(&pool, &JobFilter::new().queue(queue))
        .await
        .unwrap()
        .remove(0)
        .id;
    let mine: Vec<String> = spans()
        .lock()
        .unwrap()
        .iter()
        .filter(|s| s.contains(name))
        .cloned()
        .collect();
    assert_eq!(mine.len(), 2, "{mine:?}");
    for (span, attempt) in mine.iter().zip(1..) {
        for part in [
            format!("receiver={name}"),
            format!("event_id={id}"),
            format!("attempt={attempt}"),
            format!("queue={queue}"),
            "signal=post_save".to_owned(),
        ] {
            assert!(span.contains(&part), "`{part}` missing from span{span}");
        }
    }
    let counts = durable::counts(&pool).await.unwrap();
    let mine = counts.iter().find(|c| c.queue == queue).unwrap();
    assert_eq!((mine.done, mine.dead, mine.pending), (1, 0, 0), "{mine}");
    let metrics = durable::metrics();
    assert!(
        metrics.succeeded >= 1 && metrics.retried >= 1,
        "{metrics:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_without_queues_runs_every_registered_receivers_queue() {
    order_model!(EmbeddedOrder);
    let (pool, _dir) = durable_support::sqlite().await;
    let queue = unique("embedded");
    let done = Arc::new(AtomicBool::new(false));
    let d = Arc::clone(&done);
    let _durable = durable::connect(
        post_save,
        unique("durable::embedded::welcome"),
        JobOptions::new().queue(queue),
        move |_: Job<EmbeddedOrder>| {
            d.store(true, Ordering::SeqCst);
            async { Ok::<(), String>(()) }
        },
    );
    EmbeddedOrder::new("w", 1).save(&pool).await.unwrap();
    // The embedded default: `durable::worker(&pool)` and nothing else.
    let worker = durable::worker(&pool)
        .poll_interval(Duration::from_millis(100))
        .spawn();
    drained(&pool, queue, Duration::from_secs(30)).await;
    let report = worker.shutdown().await.unwrap();
    assert!(done.load(Ordering::SeqCst));
    assert!(report.queues.contains(&queue), "{report:?}");
}

/// Link-time durable receivers (`#[receiver(.., durable)]`), one model per backend (both
/// tests run at once, and a receiver hears every save of its model).
macro_rules! macro_receivers {
    ($model:ident, $signal:ident, $receiver:ident, $ledger:ident, $ledger_name:literal, $queue:literal, $runs:ident) => {
        order_model!($model);

        /// A custom signal with a durable receiver declared at link time.
        #[derive(Signal, serde::Serialize, serde::Deserialize, Debug)]
        struct $signal {
            amount: i64,
        }

        static $runs: Mutex<Vec<String>> = Mutex::new(Vec::new());

        /// Fails its first attempt.
        #[signals_orm::receiver(post_save, sender = $model, durable, queue = $queue, max_attempts = 3, backoff = Backoff::None, job_priority = 2)]
        async fn $receiver(job: Job<$model>) -> Result<(), String> {
            $runs.lock().unwrap().push(format!(
                "{} {} created={} attempt={}",
                job.signal, job.instance.key, job.created, job.attempt
            ));
            if job.attempt == 1 {
                return Err("first attempt fails".to_owned());
            }
            Ok(())
        }

        /// A sync durable receiver of a custom signal, with a name of its own.
        #[signals_orm::receiver($signal, durable, queue = $queue, name = $ledger_name)]
        fn $ledger(job: Job<$signal>) {
            $runs.lock().unwrap().push(format!("{} amount={}", job.signal, job.instance.amount));
        }
    };
}

macro_receivers!(
    LiteMacro,
    LitePaid,
    lite_welcome,
    lite_ledger,
    "ledger.lite",
    "durable-macro-lite",
    LITE_RUNS
);
macro_receivers!(
    PgMacro,
    PgPaid,
    pg_welcome,
    pg_ledger,
    "ledger.pg",
    "durable-macro-pg",
    PG_RUNS
);

/// Runs the link-time receivers: a save's job (retried once) and a custom signal's.
async fn link_time_receivers_run<
    DB: TestDb,
    M: Persist<DB> + ModelExt,
    S: signals_orm::dispatch::PlainSignal,
>(
    pool: Pool<DB>,
    queue: &'static str,
    order: M,
    paid: S,
    runs: &Mutex<Vec<String>>,
    name: &str,
    ledger: &str,
) {
    let listed = durable::receivers();
    let row = listed
        .0
        .iter()
        .find(|r| r.name.ends_with(name))
        .expect("listed");
    assert!(row.linked);
    assert_eq!(
        (
            row.options.queue_name(),
            row.options.attempts(),
            row.options.priority_value()
        ),
        (queue, 3, 2)
    );
    assert!(
        listed
            .0
            .iter()
            .any(|r| r.name == ledger && r.signal == S::NAME),
        "{listed}"
    );
    let mut order = order;
    order.save(&pool).await.unwrap();
    let mut tx = Tx::begin(&pool).await.unwrap();
    durable::send(&mut tx, Sender::NONE, &paid).await.unwrap();
    tx.commit().await.unwrap();
    let worker = test_worker(&pool, queue).spawn();
    drained(&pool, queue, Duration::from_secs(30)).await;
    worker.shutdown().await.unwrap();
    let mut ran = runs.lock().unwrap().clone();
    ran.sort();
    let signal = S::NAME;
    assert_eq!(
        ran,
        [
            format!("{signal} amount=12"),
            "post_save m created=true attempt=1".to_owned(),
            "post_save m created=true attempt=2".to_owned(),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_time_durable_receivers_on_sqlite() {
    let (pool, _dir) = durable_support::sqlite().await;
    link_time_receivers_run(
        pool,
        "durable-macro-lite",
        LiteMacro::new("m", 1),
        LitePaid { amount: 12 },
        &LITE_RUNS,
        "::lite_welcome",
        "ledger.lite",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_time_durable_receivers_on_postgres() {
    let Some((pool, schema)) = durable_support::postgres().await else {
        return;
    };
    sqlx::raw_sql(
        "DELETE FROM apalis.signals_orm_outbox WHERE queue = 'durable-macro-pg'; \
         DELETE FROM apalis.jobs WHERE job_type = 'durable-macro-pg'",
    )
    .execute(&pool)
    .await
    .unwrap();
    link_time_receivers_run(
        pool.clone(),
        "durable-macro-pg",
        PgMacro::new("m", 1),
        PgPaid { amount: 12 },
        &PG_RUNS,
        "::pg_welcome",
        "ledger.pg",
    )
    .await;
    durable_support::postgres_cleanup(&pool, &schema, &["durable-macro-pg"]).await;
}

/// What the data tests' workers give their jobs besides their pool: whose worker it is.
#[derive(Debug)]
struct WorkerTag(&'static str);

/// A durable receiver with nothing of its own (a function, no captures): the pool it records
/// its run in and the note it writes are its worker's data (`Worker::data`, `Job::data`).
async fn note_worker<DB: TestDb, M: Keyed>(job: Job<M>) -> Result<(), signals_orm::BoxError>
where
    Effect: Persist<DB>,
{
    let pool = job.data::<Pool<DB>>()?;
    let tag = job.data::<WorkerTag>()?;
    record_job(pool, &job, tag.0).await?;
    Ok(())
}

order_model!(DataOrderOne);
order_model!(DataOrderTwo);

/// Two workers run at once in one process, each on its own pool and queue with its own `data`
/// (a pool and a `WorkerTag`, two types given to one worker): every job records its run in its
/// own worker's pool with its own worker's tag. Data kept per process (the last worker's, or
/// the first's) would put one side's runs in the other's database.
async fn two_workers_in_one_process_give_each_job_their_own_data<DB: TestDb>(
    one: Pool<DB>,
    two: Pool<DB>,
) where
    DataOrderOne: Persist<DB>,
    DataOrderTwo: Persist<DB>,
    Effect: Persist<DB>,
{
    let (queue_one, queue_two) = (unique("data-one"), unique("data-two"));
    let (name_one, name_two) = (unique("durable::data::one"), unique("durable::data::two"));
    let _one = durable::connect(
        post_save,
        name_one,
        JobOptions::new().queue(queue_one),
        note_worker::<DB, DataOrderOne>,
    );
    let _two = durable::connect(
        post_save,
        name_two,
        JobOptions::new().queue(queue_two),
        note_worker::<DB, DataOrderTwo>,
    );
    let worker_one = test_worker(&one, queue_one)
        .data(one.clone())
        .data(WorkerTag("one"))
        .spawn();
    let worker_two = test_worker(&two, queue_two)
        .data(WorkerTag("two"))
        .data(two.clone())
        .spawn();
    for n in 0..3 {
        DataOrderOne::new(&format!("one-{n}"), 1)
            .save(&one)
            .await
            .unwrap();
        DataOrderTwo::new(&format!("two-{n}"), 2)
            .save(&two)
            .await
            .unwrap();
    }
    drained(&one, queue_one, Duration::from_secs(30)).await;
    drained(&two, queue_two, Duration::from_secs(30)).await;
    worker_one.shutdown().await.unwrap();
    worker_two.shutdown().await.unwrap();
    assert_eq!(states(&one, queue_one).await, [JobState::Done; 3]);
    assert_eq!(states(&two, queue_two).await, [JobState::Done; 3]);
    let ran = |effects: Vec<Effect>| -> BTreeSet<(String, String, String)> {
        effects
            .into_iter()
            .map(|e| (e.receiver, e.order_key, e.note))
            .collect()
    };
    let expected = |name: &str, side: &str| -> BTreeSet<(String, String, String)> {
        (0..3)
            .map(|n| (name.to_owned(), format!("{side}-{n}"), side.to_owned()))
            .collect()
    };
    assert_eq!(
        ran(effects(&one).await),
        expected(name_one, "one"),
        "worker one's jobs, in worker one's pool, with worker one's tag"
    );
    assert_eq!(
        ran(effects(&two).await),
        expected(name_two, "two"),
        "worker two's jobs, in worker two's pool, with worker two's tag"
    );
}

mod two_workers_in_one_process_give_each_job_their_own_data {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_file() {
        let (one, _dir_one) = crate::durable_support::sqlite().await;
        let (two, _dir_two) = crate::durable_support::sqlite().await;
        super::two_workers_in_one_process_give_each_job_their_own_data(one, two).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let Some((one, schema_one)) = crate::durable_support::postgres().await else {
            return;
        };
        let (two, schema_two) = crate::durable_support::postgres()
            .await
            .expect("a second schema");
        super::two_workers_in_one_process_give_each_job_their_own_data(one.clone(), two.clone())
            .await;
        crate::durable_support::postgres_cleanup(&one, &schema_one, &[]).await;
        crate::durable_support::postgres_cleanup(&two, &schema_two, &[]).await;
    }
}

order_model!(NoDataOrder);

/// A job whose worker was not given the data its receiver reads fails with an error naming the
/// receiver, the event and the missing type (and what the worker has); it is retried per its
/// options (here 2 attempts, no backoff), then kept dead, and runs once a worker has the data.
async fn a_job_whose_worker_lacks_its_data_fails_naming_receiver_event_and_type<DB: TestDb>(
    pool: Pool<DB>,
) where
    NoDataOrder: Persist<DB>,
    Effect: Persist<DB>,
{
    let queue = unique("nodata");
    let name = unique("durable::nodata::mail");
    let _durable = durable::connect(
        post_save,
        name,
        JobOptions::new()
            .queue(queue)
            .max_attempts(2)
            .backoff(Backoff::None),
        note_worker::<DB, NoDataOrder>,
    );
    NoDataOrder::new("n", 1).save(&pool).await.unwrap();
    // Given its pool, not the `WorkerTag` the receiver reads next.
    let worker = test_worker(&pool, queue).data(pool.clone()).spawn();
    until("the job is dead", Duration::from_secs(30), || {
        let pool = pool.clone();
        async move { states(&pool, queue).await == [JobState::Dead] }
    })
    .await;
    worker.shutdown().await.unwrap();
    let dead = durable::jobs(&pool, &JobFilter::new().queue(queue).state(JobState::Dead))
        .await
        .unwrap();
    let [dead] = dead.as_slice() else {
        panic!("{dead:?}")
    };
    assert_eq!(
        (dead.attempts, dead.max_attempts),
        (2, 2),
        "retried per its options, then dead"
    );
    let error = dead.last_error.as_deref().unwrap_or_default();
    for part in [
        name,
        &format!("event {}", dead.id),
        "attempt 2 of 2",
        "this worker has no `data` of type `durable::WorkerTag`",
        "(it has: `", // the pool's type, as `std::any::type_name` spells it
        "Pool<",
        "add it with `durable::worker(&pool).data(..)`",
    ] {
        assert!(
            error.contains(part),
            "`{part}` missing from the last error: {error}"
        );
    }
    assert!(effects(&pool).await.is_empty(), "the receiver did nothing");

    // A worker given the tag runs it.
    let worker = test_worker(&pool, queue)
        .data(pool.clone())
        .data(WorkerTag("given"))
        .spawn();
    assert!(durable::retry(&pool, &dead.id).await.unwrap());
    drained(&pool, queue, Duration::from_secs(30)).await;
    worker.shutdown().await.unwrap();
    assert_eq!(states(&pool, queue).await, [JobState::Done]);
    let ran: Vec<(String, String, String)> = effects(&pool)
        .await
        .into_iter()
        .map(|e| (e.event_id, e.order_key, e.note))
        .collect();
    assert_eq!(ran, [(dead.id.clone(), "n".to_owned(), "given".to_owned())]);
}
