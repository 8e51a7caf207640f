//! The contract with apalis 1.0.0 that `signals_orm::durable` relies on, on a SQLite file and
//! on PostgreSQL: a job signals-orm wrote to its outbox in a write's transaction, then moved
//! into apalis's table by its relay (through apalis's own `queries::push_tasks`), is run by
//! apalis's own worker, with the document signals-orm wrote, and acknowledged by it; a
//! rolled-back write's job is not there to run. And the reverse: a row apalis's own sink wrote
//! that is not a durable job is kept dead by signals-orm's worker, which goes on with the next
//! job; so is a row whose document is not JSON, which fails apalis's worker (its supervisor keeps
//! the row dead before the restart). A later apalis whose tables or worker differ fails here
//! first (`docs/durable.md`, "Upgrading apalis").

mod durable_support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use apalis::prelude::{
    BackendExt as _, BoxDynError, Data, TaskId, TaskSink as _, WorkerBuilder, WorkerContext,
};
use durable_support::{Effect, Keyed, TestDb, drained, effects, record_job, test_worker, unique};
use signals_orm::durable::{self, Job, JobFilter, JobOptions, JobState};
use signals_orm::model_signals::post_save;
use signals_orm::{ModelExt, Persist, Tx};
use sqlx::Pool;

order_model!(ContractOrder);

type Seen = Arc<Mutex<Vec<(String, serde_json::Value)>>>;

/// apalis's handler: records the task and stops its worker.
async fn apalis_handler(
    args: serde_json::Value,
    id: TaskId,
    seen: Data<Seen>,
    worker: WorkerContext,
) -> Result<(), BoxDynError> {
    seen.lock().unwrap().push((id.to_string(), args));
    worker.stop()?;
    Ok(())
}

/// Enqueues through signals-orm: one committed write, one rolled back. Returns the queue, the
/// receiver's name and the committed job's id.
async fn enqueue_two<DB: TestDb>(pool: &Pool<DB>) -> (&'static str, &'static str, String)
where
    ContractOrder: Persist<DB>,
{
    let queue = unique("contract");
    let name = unique("durable_contract::receiver");
    durable::connect(
        post_save,
        name,
        JobOptions::new().queue(queue).max_attempts(4).priority(3),
        |_: Job<ContractOrder>| async { Ok::<(), String>(()) },
    )
    .forever();
    let mut tx = Tx::begin(pool).await.unwrap();
    ContractOrder::new("committed", 7)
        .save(&mut tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = Tx::begin(pool).await.unwrap();
    ContractOrder::new("rolled-back", 8)
        .save(&mut tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let jobs = durable::jobs(pool, &JobFilter::new().queue(queue))
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].state, JobState::Pending, "{jobs:?}");
    // Waiting in the outbox until a relay moves it into apalis's table (a worker's does).
    // (Each test of this file that runs `enqueue_two` adds a receiver of `ContractOrder`, so
    // other queues' jobs may be moved too.)
    assert!(durable::relay(pool).await.unwrap() >= 1);
    let moved = durable::jobs(pool, &JobFilter::new().queue(queue))
        .await
        .unwrap();
    assert_eq!(
        moved, jobs,
        "the relay keeps the job's id, queue and attempts"
    );
    (queue, name, jobs[0].id.clone())
}

/// What apalis's worker ran, checked against what signals-orm enqueued.
fn check_ran(seen: &Seen, name: &str, id: &str) {
    let seen = seen.lock().unwrap();
    let [(ran_id, doc)] = seen.as_slice() else {
        panic!("apalis's worker ran {seen:?}")
    };
    assert_eq!(ran_id, id);
    assert_eq!(doc["v"], 1);
    assert_eq!(doc["receiver"], name);
    assert_eq!(doc["event_id"], id, "the event id is the job's id");
    assert_eq!(doc["signal"], "post_save");
    assert_eq!(doc["created"], true);
    assert_eq!(doc["max_attempts"], 4);
    assert_eq!(doc["instance"]["key"], "committed");
    assert_eq!(doc["instance"]["total"], 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apalis_sqlite_runs_the_jobs_signals_orm_inserted() {
    let (pool, _dir) = durable_support::sqlite().await;
    let (queue, name, id) = enqueue_two(&pool).await;
    let seen = Seen::default();
    let backend = apalis_sqlite::SqliteStorage::<serde_json::Value>::new(&pool)
        .with_config(apalis_sqlite::Config::default().queue(queue))
        .poll_with_interval(Duration::from_millis(50));
    let worker = WorkerBuilder::new(unique("apalis-sqlite"))
        .backend(backend)
        .data(Arc::clone(&seen))
        .build(apalis_handler);
    tokio::time::timeout(Duration::from_secs(30), worker.run())
        .await
        .expect("apalis's worker ran the job")
        .unwrap();
    check_ran(&seen, name, &id);
    acknowledged(&pool, queue).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apalis_postgres_runs_the_jobs_signals_orm_inserted() {
    let Some((pool, schema)) = durable_support::postgres().await else {
        return;
    };
    let (queue, name, id) = enqueue_two(&pool).await;
    let seen = Seen::default();
    let backend = apalis_postgres::PostgresStorage::<serde_json::Value>::new(&pool)
        .with_config(apalis_postgres::Config::default().queue(queue))
        .poll_with_interval(Duration::from_millis(50));
    let worker = WorkerBuilder::new(unique("apalis-postgres"))
        .backend(backend)
        .data(Arc::clone(&seen))
        .build(apalis_handler);
    tokio::time::timeout(Duration::from_secs(30), worker.run())
        .await
        .expect("apalis's worker ran the job")
        .unwrap();
    check_ran(&seen, name, &id);
    acknowledged(&pool, queue).await;
    durable_support::postgres_cleanup(&pool, &schema, &[queue]).await;
}

/// apalis acknowledged the job: done, one attempt.
async fn acknowledged<DB: TestDb>(pool: &Pool<DB>, queue: &str) {
    durable_support::until("apalis's ack", Duration::from_secs(10), || async {
        let jobs = durable::jobs(pool, &JobFilter::new().queue(queue))
            .await
            .unwrap();
        jobs.len() == 1 && jobs[0].state == JobState::Done && jobs[0].attempts == 1
    })
    .await;
}

order_model!(ForeignOrder);
order_model!(AfterUnreadableOrder);

/// A row of `queue` that no durable receiver wrote, then `after`'s durable job: the row is kept
/// dead with an error saying `error_says` (and naming it), and does not stop the queue; the
/// durable job runs. `id`: the row's, when the test chose it.
async fn a_bad_row_is_kept_dead_and_the_queue_goes_on<DB: TestDb, M>(
    pool: &Pool<DB>,
    queue: &'static str,
    mut after: M,
    error_says: &str,
    id: Option<&str>,
) where
    M: Persist<DB> + Keyed + serde::de::DeserializeOwned + Send + 'static,
    signals_orm::model_signals::PostSaveSignal: durable::DurableSignal<M>,
    Effect: Persist<DB>,
{
    let p = pool.clone();
    let _receiver = durable::connect(
        post_save,
        unique("durable_contract::after_a_bad_row"),
        JobOptions::new().queue(queue),
        move |job: Job<M>| {
            let p = p.clone();
            async move { record_job(&p, &job, "").await }
        },
    );
    after.save(pool).await.unwrap();
    let worker = test_worker(pool, queue).spawn();
    drained(pool, queue, Duration::from_secs(30)).await;
    worker.shutdown().await.unwrap();
    let jobs = durable::jobs(pool, &JobFilter::new().queue(queue))
        .await
        .unwrap();
    let dead: Vec<_> = jobs.iter().filter(|j| j.state == JobState::Dead).collect();
    let [dead] = dead.as_slice() else {
        panic!("{jobs:?}")
    };
    if let Some(id) = id {
        assert_eq!(dead.id, id, "{jobs:?}");
    }
    assert_eq!(dead.receiver, None);
    let error = dead.last_error.as_deref().unwrap_or_default();
    assert!(
        error.contains(error_says) && error.contains(&dead.id),
        "{error}"
    );
    let ran: Vec<String> = effects(pool)
        .await
        .into_iter()
        .map(|e| e.order_key)
        .collect();
    assert_eq!(ran, ["after"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_foreign_job_is_kept_dead_and_the_worker_goes_on() {
    let (pool, _dir) = durable_support::sqlite().await;
    let queue = unique("foreign");
    let mut sink: apalis_sqlite::SqliteStorage<serde_json::Value> =
        apalis_sqlite::SqliteStorage::new(&pool)
            .with_config(apalis_sqlite::Config::default().queue(queue));
    sink.push(serde_json::json!({ "to": "someone else's job" }))
        .await
        .unwrap();
    let after = ForeignOrder::new("after", 1);
    let says = "is not a durable receiver's job";
    a_bad_row_is_kept_dead_and_the_queue_goes_on::<sqlx::Sqlite, _>(
        &pool, queue, after, says, None,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_foreign_job_is_kept_dead_and_the_worker_goes_on() {
    let Some((pool, schema)) = durable_support::postgres().await else {
        return;
    };
    let queue = unique("foreign");
    let mut sink: apalis_postgres::PostgresStorage<serde_json::Value> =
        apalis_postgres::PostgresStorage::new(&pool)
            .with_config(apalis_postgres::Config::default().queue(queue));
    sink.push(serde_json::json!({ "to": "someone else's job" }))
        .await
        .unwrap();
    let after = ForeignOrder::new("after", 1);
    let says = "is not a durable receiver's job";
    a_bad_row_is_kept_dead_and_the_queue_goes_on::<sqlx::Postgres, _>(
        &pool, queue, after, says, None,
    )
    .await;
    durable_support::postgres_cleanup(&pool, &schema, &[queue]).await;
}

/// An id in apalis's form (a ULID: 26 Crockford base32 characters), unique per call.
fn row_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("01{nanos:024}")
}

/// Bytes that are not JSON, as a foreign producer with another codec writes them: not even
/// UTF-8 text, and with a NUL (which PostgreSQL's text cannot hold).
const NOT_JSON: &[u8] = b"\xff\x00 not json {";

/// The row `id` of `queue`, not JSON, is kept dead and the queue goes on. Released, it would be
/// fetched first again by every restarted worker, which its bytes stop: the queue would stall.
async fn a_row_that_is_not_json_is_kept_dead<DB: TestDb>(
    pool: &Pool<DB>,
    queue: &'static str,
    id: &str,
) where
    AfterUnreadableOrder: Persist<DB>,
    Effect: Persist<DB>,
{
    let after = AfterUnreadableOrder::new("after", 1);
    a_bad_row_is_kept_dead_and_the_queue_goes_on::<DB, _>(
        pool,
        queue,
        after,
        "is not JSON",
        Some(id),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_row_that_is_not_json_is_kept_dead_and_the_queue_goes_on() {
    let (pool, _dir) = durable_support::sqlite().await;
    let queue = unique("not-json");
    let id = row_id();
    // apalis's own INSERT (`queries/task/sink.sql`), with bytes its codec cannot decode, due
    // long ago so that it is fetched first.
    sqlx::query(
        "INSERT INTO Jobs VALUES \
           (?1, ?2, ?3, 'Pending', 0, 25, 0, NULL, NULL, NULL, NULL, 0, '{}', NULL)",
    )
    .bind(NOT_JSON)
    .bind(&id)
    .bind(queue)
    .execute(&pool)
    .await
    .unwrap();
    a_row_that_is_not_json_is_kept_dead::<sqlx::Sqlite>(&pool, queue, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_row_that_is_not_json_is_kept_dead_and_the_queue_goes_on() {
    let Some((pool, schema)) = durable_support::postgres().await else {
        return;
    };
    let queue = unique("not-json");
    let id = row_id();
    // apalis's own INSERT's columns (`queries/task/sink.sql`), with bytes its codec cannot
    // decode, due long ago so that it is fetched first.
    sqlx::query(
        "INSERT INTO apalis.jobs \
           (id, job_type, job, status, attempts, max_attempts, run_at, priority, metadata, \
            idempotency_key) \
         VALUES ($1, $2, $3, 'Pending', 0, 25, to_timestamp(0), 0, ''::hstore, NULL)",
    )
    .bind(&id)
    .bind(queue)
    .bind(NOT_JSON)
    .execute(&pool)
    .await
    .unwrap();
    a_row_that_is_not_json_is_kept_dead::<sqlx::Postgres>(&pool, queue, &id).await;
    durable_support::postgres_cleanup(&pool, &schema, &[queue]).await;
}

#[path = "support/statements.rs"]
mod statements;

/// A statement-count test per backend, each with its own model (both run at once, and a
/// durable receiver hears every save of its model).
macro_rules! one_more_statement_test {
    ($model:ident, $name:ident, $setup:block, $insert:literal) => {
        order_model!($model);

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let queue = unique("cost");
            let setup = $setup;
            let Some((pool, cleanup)) = setup else {
                return;
            };
            // A save heard by a receiver that runs no statement, then by a durable one: one
            // statement more, the outbox INSERT, in the same transaction before its COMMIT
            // (and no check at COMMIT: the ORM's own connection ran it and returned its
            // outcome).
            let plain = {
                let _plain = post_save.connect(|ev: signals_orm::PostSave<'_, $model>| {
                    let _ = ev.instance.total;
                });
                statements::of($model::new("plain", 1).save(&pool)).await.1
            };
            let _durable = durable::connect(
                post_save,
                unique("durable_contract::cost"),
                JobOptions::new().queue(queue),
                |_: Job<$model>| async { Ok::<(), String>(()) },
            );
            // The first statements of a connection may look types up (one catalog query on
            // PostgreSQL, kept for the connection); the pool has one connection.
            $model::new("warm-up", 1).save(&pool).await.unwrap();
            let durable = statements::of($model::new("durable", 1).save(&pool))
                .await
                .1;
            assert_eq!(
                durable.len(),
                plain.len() + 1,
                "plain {plain:#?}\ndurable {durable:#?}"
            );
            let extra: Vec<&String> = durable.iter().filter(|s| !plain.contains(s)).collect();
            assert_eq!(extra.len(), 1, "{extra:#?}");
            assert!(extra[0].trim_start().starts_with($insert), "{extra:#?}");
            let at = |what: &str| {
                durable
                    .iter()
                    .position(|s| s.trim_start().starts_with(what))
            };
            // (sqlx logs PostgreSQL's COMMIT, not SQLite's.)
            assert!(
                at("COMMIT").is_none_or(|commit| at($insert) < Some(commit)),
                "before the COMMIT: {durable:#?}"
            );
            cleanup.await;
        }
    };
}

one_more_statement_test!(
    LiteCost,
    a_durable_receiver_adds_one_statement_to_the_write_on_sqlite,
    {
        let (pool, dir) = durable_support::sqlite().await;
        Some((pool, async move { drop(dir) }))
    },
    "INSERT INTO signals_orm_outbox"
);

one_more_statement_test!(
    PgCost,
    a_durable_receiver_adds_one_statement_to_the_write_on_postgres,
    {
        match durable_support::postgres().await {
            Some((setup, schema)) => {
                let pool = durable_support::postgres_in(&schema, 1).await.unwrap();
                let one = pool.clone();
                Some((pool, async move {
                    one.close().await;
                    durable_support::postgres_cleanup(&setup, &schema, &[]).await;
                }))
            }
            None => None,
        }
    },
    "WITH written AS ( INSERT INTO apalis.signals_orm_outbox"
);
