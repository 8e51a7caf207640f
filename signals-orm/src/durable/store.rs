//! The job store of each backend: apalis-sqlite's `Jobs` table and apalis-postgres's
//! `apalis.jobs`, reached through apalis's own public API where it has one (the INSERT, the
//! worker) and through a few statements of our own where it has none (backoff, release, the
//! listing, re-running a dead job), pinned to apalis 1.0.0 and covered by
//! `tests/tests/durable.rs`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::Stream;
use signals_core::BoxError;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::admin::{JobFilter, JobRow, QueueCount};
use super::error::DurableError;
use super::options::JobOptions;
use crate::tx::AnyTx;
use crate::{Backend, Tx};

/// One job ready to be inserted: its id (also the event id), its document, its options.
#[doc(hidden)]
#[derive(Debug)]
pub struct Prepared {
    pub(crate) id: ulid::Ulid,
    pub(crate) bytes: Vec<u8>,
    pub(crate) options: JobOptions,
}

mod sealed {
    pub trait Sealed {}
    #[cfg(feature = "durable-sqlite")]
    impl Sealed for sqlx::Sqlite {}
    #[cfg(feature = "durable-postgres")]
    impl Sealed for sqlx::Postgres {}
}

/// A backend with a durable job store in this build: `sqlx::Sqlite` with signals-orm's
/// `durable-sqlite` feature, `sqlx::Postgres` with `durable-postgres`. Sealed.
#[diagnostic::on_unimplemented(
    message = "`{Self}` has no durable job store in this build of signals-orm",
    label = "no job store for this backend",
    note = "turn on signals-orm's `durable-sqlite` feature (for `sqlx::Sqlite`) or `durable-postgres` (for `sqlx::Postgres`)"
)]
pub trait DurableBackend: Backend + sealed::Sealed {
    /// Creates or upgrades apalis's tables.
    #[doc(hidden)]
    fn setup(pool: &sqlx::Pool<Self>) -> BoxFuture<'_, Result<(), DurableError>>;

    /// Inserts `jobs` on `conn` (the write's transaction) with apalis's own `push_tasks`.
    #[doc(hidden)]
    fn push<'c>(
        conn: &'c mut Self::Connection,
        queue: &'c str,
        jobs: Vec<Prepared>,
    ) -> BoxFuture<'c, Result<(), BoxError>>;

    /// Runs one apalis worker of `queue` named `name` until `stop` says so (then lets it finish
    /// its jobs for `settings.shutdown_timeout`, and releases what is left) or it fails.
    #[doc(hidden)]
    fn run_once(
        worker: super::worker::QueueWorker<Self>,
    ) -> BoxFuture<'static, Result<(), BoxError>>;

    /// Sets the job's next run `delay` from now (its backoff).
    #[doc(hidden)]
    fn defer<'a>(
        pool: &'a sqlx::Pool<Self>,
        id: &'a str,
        delay: Duration,
    ) -> BoxFuture<'a, Result<(), sqlx::Error>>;

    /// Puts the jobs `worker` holds back to pending, each with one more attempt counted: a job
    /// may have started before its row said so (apalis writes `Running` after the fact), and
    /// apalis counts one when it puts back a stopping worker's jobs too. A job whose counted
    /// attempt was its last is kept dead instead (`Failed` with its attempts used up), as after
    /// a failure, so that `max_attempts` bounds its runs.
    #[doc(hidden)]
    fn release<'a>(
        pool: &'a sqlx::Pool<Self>,
        worker: &'a str,
    ) -> BoxFuture<'a, Result<u64, sqlx::Error>>;

    /// The jobs `filter` selects.
    #[doc(hidden)]
    fn list<'a>(
        pool: &'a sqlx::Pool<Self>,
        filter: &'a JobFilter,
    ) -> BoxFuture<'a, Result<Vec<JobRow>, sqlx::Error>>;

    /// Makes a dead job pending again with fresh attempts; whether there was one.
    #[doc(hidden)]
    fn retry<'a>(
        pool: &'a sqlx::Pool<Self>,
        id: &'a str,
    ) -> BoxFuture<'a, Result<bool, sqlx::Error>>;

    /// Jobs per queue and state.
    #[doc(hidden)]
    fn counts(pool: &sqlx::Pool<Self>) -> BoxFuture<'_, Result<Vec<QueueCount>, sqlx::Error>>;
}

/// Inserts `jobs` through the write's transaction, whichever backend it runs on, and wakes
/// this process's workers of `queue` once it commits.
pub(crate) fn push_any<'t>(
    tx: AnyTx<'t>,
    queue: &'static str,
    jobs: Vec<Prepared>,
) -> BoxFuture<'t, Result<(), BoxError>> {
    match tx {
        #[cfg(feature = "sqlite")]
        AnyTx::Sqlite(tx) => {
            #[cfg(feature = "durable-sqlite")]
            return push_in(tx, queue, jobs);
            #[cfg(not(feature = "durable-sqlite"))]
            return no_store(tx, jobs, "durable-sqlite");
        }
        #[cfg(feature = "postgres")]
        AnyTx::Postgres(tx) => {
            #[cfg(feature = "durable-postgres")]
            return push_in(tx, queue, jobs);
            #[cfg(not(feature = "durable-postgres"))]
            return no_store(tx, jobs, "durable-postgres");
        }
    }
}

#[allow(dead_code, reason = "used by the builds lacking one backend's store")]
fn no_store<'t, DB: Backend>(
    tx: &'t mut Tx<DB>,
    jobs: Vec<Prepared>,
    feature: &'static str,
) -> BoxFuture<'t, Result<(), BoxError>> {
    drop((tx, jobs));
    let backend = <DB as Backend>::NAME;
    Box::pin(std::future::ready(Err(format!(
        "this build has no durable job store for {backend}: turn on signals-orm's `{feature}` feature"
    )
    .into())))
}

/// Inserts `jobs` in `tx` and, when this process runs a worker of `queue`, wakes it after
/// the COMMIT.
pub(crate) fn push_in<'t, DB: DurableBackend>(
    tx: &'t mut Tx<DB>,
    queue: &'static str,
    jobs: Vec<Prepared>,
) -> BoxFuture<'t, Result<(), BoxError>> {
    Box::pin(async move {
        // The ORM's own connection accessor: the INSERT's failure is returned (it fails the
        // write), so the transaction needs no check at COMMIT for unseen failures.
        DB::push(tx.own_conn(), queue, jobs).await?;
        if wake::listening(queue) {
            tx.on_commit_named("signals_orm::durable::wake_workers", move || async move {
                wake::wake(queue);
            });
        }
        Ok(())
    })
}

/// Wakes this process's workers of a queue when a transaction that enqueued on it commits,
/// rather than at their next poll.
pub(crate) mod wake {
    use super::{
        AtomicUsize, Mutex, Ordering, PoisonError, UnboundedReceiver, UnboundedSender,
        unbounded_channel,
    };

    static WAKERS: Mutex<Vec<(&'static str, UnboundedSender<()>)>> = Mutex::new(Vec::new());
    /// How many workers listen, so that a write with none pays one atomic load.
    static LISTENERS: AtomicUsize = AtomicUsize::new(0);

    /// A new listener of `queue`: the stream a worker polls on.
    pub(crate) fn listen(queue: &'static str) -> super::WakeStream {
        let (tx, rx) = unbounded_channel();
        let mut wakers = WAKERS.lock().unwrap_or_else(PoisonError::into_inner);
        wakers.push((queue, tx));
        LISTENERS.store(wakers.len(), Ordering::Release);
        super::WakeStream(Mutex::new(rx))
    }

    /// Whether a worker of this process listens on `queue`.
    pub(crate) fn listening(queue: &str) -> bool {
        LISTENERS.load(Ordering::Acquire) > 0
            && WAKERS
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .any(|(q, tx)| *q == queue && !tx.is_closed())
    }

    /// Wakes every listener of `queue`, and forgets those that are gone.
    pub(crate) fn wake(queue: &str) {
        let mut wakers = WAKERS.lock().unwrap_or_else(PoisonError::into_inner);
        wakers.retain(|(q, tx)| *q != queue || tx.send(()).is_ok());
        LISTENERS.store(wakers.len(), Ordering::Release);
    }

    /// Forgets the listeners whose worker stopped.
    pub(crate) fn forget_closed() {
        let mut wakers = WAKERS.lock().unwrap_or_else(PoisonError::into_inner);
        wakers.retain(|(_, tx)| !tx.is_closed());
        LISTENERS.store(wakers.len(), Ordering::Release);
    }

    #[allow(dead_code, reason = "the receiver type, named for the stream")]
    type Rx = UnboundedReceiver<()>;
}

/// What a worker polls on besides its interval: a COMMIT in this process that enqueued on its
/// queue. (`Sync` as apalis's poll strategies want, hence the mutex.)
pub(crate) struct WakeStream(Mutex<UnboundedReceiver<()>>);

impl Stream for WakeStream {
    type Item = ();

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.get_mut()
            .0
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .poll_recv(cx)
    }
}

/// The Unix time `delay` from now, in whole seconds rounded up (SQLite's `run_at`), so that a
/// job is never due before its delay ended.
#[cfg(any(feature = "durable-sqlite", feature = "durable-postgres"))]
fn due_in(delay: Duration) -> u64 {
    let at = std::time::SystemTime::now() + delay;
    let since = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    since.as_secs() + u64::from(since.subsec_nanos() > 0)
}

/// The apalis task of a prepared job.
#[cfg(any(feature = "durable-sqlite", feature = "durable-postgres"))]
fn task(job: Prepared) -> apalis::prelude::Task<Vec<u8>> {
    use apalis::prelude::{TaskBuilder, TaskId};
    let options = job.options;
    let mut builder = TaskBuilder::new(job.bytes)
        .task_id(TaskId::from_ulid(job.id))
        .max_attempts(options.attempts() as usize)
        .priority(usize::from(options.priority_value()));
    let delay = options.first_delay();
    if !delay.is_zero() {
        builder = builder.run_at_timestamp(due_in(delay));
    }
    builder.build()
}

/// The message a released job keeps as its last result.
#[cfg(any(feature = "durable-sqlite", feature = "durable-postgres"))]
fn released(worker: &str) -> String {
    serde_json::json!({ "Err": format!("released by worker {worker} when it stopped") }).to_string()
}

/// Runs an apalis worker (`run`, with context `ctx`) until `stop`; then stops it gracefully
/// within `timeout`, and releases what it still holds after that.
///
/// The stop is in two steps. First the worker is paused: it takes no new job, and it keeps
/// driving its own statements (heartbeats, and the acknowledgements it writes in batches)
/// while the running jobs finish. Only then is it stopped, which flushes the last
/// acknowledgements and puts back the jobs it fetched but did not start. Stopping at once
/// would leave a batch it had begun unfinished until every running job ended: on SQLite that
/// batch holds the write lock, and a job that writes would wait for it forever.
#[cfg(any(feature = "durable-sqlite", feature = "durable-postgres"))]
async fn drive<Fut, Rel>(
    ctx: apalis::prelude::WorkerContext,
    run: Fut,
    mut stop: tokio::sync::watch::Receiver<bool>,
    timeout: Duration,
    release: impl FnOnce() -> Rel,
) -> Result<(), BoxError>
where
    Fut: Future<Output = Result<(), apalis::prelude::WorkerError>>,
    Rel: Future<Output = Result<u64, sqlx::Error>>,
{
    let mut run = Box::pin(run);
    tokio::select! {
        result = &mut run => return result.map_err(Into::into),
        _ = stop.wait_for(|stop| *stop) => {}
    }
    let deadline = tokio::time::Instant::now() + timeout;
    let mut finished = true;
    if ctx.pause().is_ok() {
        while ctx.task_count() > 0 {
            if tokio::time::Instant::now() >= deadline {
                finished = false;
                break;
            }
            tokio::select! {
                result = &mut run => return result.map_err(Into::into),
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    }
    if finished && ctx.stop().is_ok() {
        // What is left is quick (a flush, putting back fetched jobs): a little past the
        // deadline if need be.
        let close = deadline
            .saturating_duration_since(tokio::time::Instant::now())
            .max(Duration::from_secs(5));
        if let Ok(result) = tokio::time::timeout(close, &mut run).await {
            return result.map_err(Into::into);
        }
    }
    tracing::warn!(
        worker = ctx.name(),
        timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        "durable worker: jobs still running at the shutdown timeout are released"
    );
    drop(run);
    let released = release().await?;
    if released > 0 {
        tracing::info!(
            worker = ctx.name(),
            released,
            "durable worker: jobs released for other workers"
        );
    }
    Ok(())
}

#[cfg(feature = "durable-sqlite")]
mod sqlite {
    use super::{
        BoxFuture, DurableBackend, DurableError, Duration, JobFilter, JobRow, Prepared, QueueCount,
        drive, due_in, released, task, wake,
    };
    use crate::durable::admin::{RawRow, state_sql};
    use crate::durable::worker::{QueueWorker, handle};
    use apalis::prelude::{BackendExt as _, Strategy, WorkerBuilder, WorkerBuilderExt as _};
    use apalis_sqlite::SqliteStorage;
    use signals_core::BoxError;
    use sqlx::{Row as _, Sqlite, SqlitePool};

    impl DurableBackend for Sqlite {
        fn setup(pool: &SqlitePool) -> BoxFuture<'_, Result<(), DurableError>> {
            Box::pin(async move {
                // apalis's migrations, with their history in a table of their own: in sqlx's
                // default `_sqlx_migrations` the application's own migrator would see them
                // as unknown and refuse. (`SqliteStorage::setup` also sets PRAGMAs such as
                // `synchronous = OFF` on the connection it gets: not ours to choose.)
                let mut migrator = SqliteStorage::<()>::migrations();
                migrator.dangerous_set_table_name("_apalis_migrations");
                migrator
                    .run(pool)
                    .await
                    .map_err(|e| DurableError::store("creating apalis's tables (SQLite)", e))
            })
        }

        fn push<'c>(
            conn: &'c mut sqlx::SqliteConnection,
            queue: &'c str,
            jobs: Vec<Prepared>,
        ) -> BoxFuture<'c, Result<(), BoxError>> {
            Box::pin(async move {
                let tasks: Vec<_> = jobs.into_iter().map(task).collect();
                apalis_sqlite::queries::push_tasks(conn, queue, &tasks).await?;
                Ok(())
            })
        }

        fn run_once(worker: QueueWorker<Sqlite>) -> BoxFuture<'static, Result<(), BoxError>> {
            Box::pin(async move {
                let settings = worker.settings.clone();
                let config = apalis_sqlite::Config::default()
                    .queue(worker.queue)
                    .batch_size(settings.concurrency)
                    .heartbeat_interval(settings.heartbeat)
                    .missed_heartbeats(settings.missed_heartbeats);
                let strategy = Strategy::new()
                    .stream(wake::listen(worker.queue))
                    .interval(settings.poll_interval);
                let backend = SqliteStorage::<serde_json::Value>::new(&worker.pool)
                    .with_config(config)
                    .poll_with_strategy(strategy);
                let ctx = apalis::prelude::WorkerContext::new(&worker.name);
                let pool = worker.pool.clone();
                let name = worker.name.clone();
                let stop = worker.stop.clone();
                let running = WorkerBuilder::new(&ctx)
                    .backend(backend)
                    .concurrency(settings.concurrency)
                    .data(std::sync::Arc::new(worker))
                    .build(handle::<Sqlite>)
                    .run();
                let result = drive(
                    ctx,
                    running,
                    stop,
                    settings.shutdown_timeout,
                    || async move { <Sqlite as DurableBackend>::release(&pool, &name).await },
                )
                .await;
                wake::forget_closed();
                result
            })
        }

        fn defer<'a>(
            pool: &'a SqlitePool,
            id: &'a str,
            delay: Duration,
        ) -> BoxFuture<'a, Result<(), sqlx::Error>> {
            Box::pin(async move {
                // The worker compares `run_at` with its own clock (apalis binds the time of
                // its fetch), so the time is computed here too, not by SQLite.
                sqlx::query("UPDATE Jobs SET run_at = ?2 WHERE id = ?1")
                    .bind(id)
                    .bind(i64::try_from(due_in(delay)).unwrap_or(i64::MAX))
                    .execute(pool)
                    .await?;
                Ok(())
            })
        }

        fn release<'a>(
            pool: &'a SqlitePool,
            worker: &'a str,
        ) -> BoxFuture<'a, Result<u64, sqlx::Error>> {
            Box::pin(async move {
                let done = sqlx::query(
                    "UPDATE Jobs SET attempts = attempts + 1, \
                       status = CASE WHEN attempts + 1 >= max_attempts THEN 'Failed' ELSE 'Pending' END, \
                       lock_by = NULL, lock_at = NULL, last_result = ?2 \
                     WHERE lock_by = ?1 AND status IN ('Queued', 'Running')",
                )
                .bind(worker)
                .bind(released(worker))
                .execute(pool)
                .await?;
                Ok(done.rows_affected())
            })
        }

        fn list<'a>(
            pool: &'a SqlitePool,
            filter: &'a JobFilter,
        ) -> BoxFuture<'a, Result<Vec<JobRow>, sqlx::Error>> {
            Box::pin(async move {
                let sql = format!(
                    "SELECT id, job_type, status, attempts, max_attempts, run_at, last_result, lock_by, \
                       CAST(job AS TEXT) AS job \
                     FROM Jobs WHERE (?1 IS NULL OR job_type = ?1) AND {} \
                     ORDER BY run_at, id LIMIT ?2",
                    state_sql(filter.state_filter())
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(filter.queue_filter())
                    .bind(i64::from(filter.limit_value()))
                    .fetch_all(pool)
                    .await?;
                rows.iter()
                    .map(|row| {
                        Ok(RawRow {
                            id: row.try_get("id")?,
                            queue: row.try_get("job_type")?,
                            status: row.try_get("status")?,
                            attempts: row.try_get("attempts")?,
                            max_attempts: row.try_get("max_attempts")?,
                            run_at: row.try_get("run_at")?,
                            last_result: row.try_get("last_result")?,
                            lock_by: row.try_get("lock_by")?,
                            job: row.try_get("job")?,
                        }
                        .into_row())
                    })
                    .collect()
            })
        }

        fn retry<'a>(
            pool: &'a SqlitePool,
            id: &'a str,
        ) -> BoxFuture<'a, Result<bool, sqlx::Error>> {
            Box::pin(async move {
                let done = sqlx::query(
                    "UPDATE Jobs SET status = 'Pending', attempts = 0, \
                       run_at = CAST(strftime('%s', 'now') AS INTEGER), \
                       lock_by = NULL, lock_at = NULL, done_at = NULL, last_result = NULL \
                     WHERE id = ?1 AND (status = 'Killed' OR (status = 'Failed' AND attempts >= max_attempts))",
                )
                .bind(id)
                .execute(pool)
                .await?;
                Ok(done.rows_affected() == 1)
            })
        }

        fn counts(pool: &SqlitePool) -> BoxFuture<'_, Result<Vec<QueueCount>, sqlx::Error>> {
            Box::pin(async move {
                let rows = sqlx::query(
                    "SELECT job_type, status, CAST(attempts >= max_attempts AS INTEGER) AS exhausted, \
                       COUNT(*) AS n FROM Jobs GROUP BY 1, 2, 3",
                )
                .fetch_all(pool)
                .await?;
                let mut counts = Vec::new();
                for row in rows {
                    let queue: String = row.try_get("job_type")?;
                    let status: String = row.try_get("status")?;
                    let exhausted: i64 = row.try_get("exhausted")?;
                    let n: i64 = row.try_get("n")?;
                    QueueCount::add(&mut counts, queue, &status, exhausted != 0, n);
                }
                Ok(counts)
            })
        }
    }
}

#[cfg(feature = "durable-postgres")]
mod postgres {
    use super::{
        BoxFuture, DurableBackend, DurableError, Duration, JobFilter, JobRow, Prepared, QueueCount,
        drive, released, task, wake,
    };
    use crate::durable::admin::{RawRow, state_sql};
    use crate::durable::worker::{QueueWorker, handle};
    use apalis::prelude::{BackendExt as _, Strategy, WorkerBuilder, WorkerBuilderExt as _};
    use apalis_postgres::{PostgresStorage, Pubsub};
    use signals_core::BoxError;
    use sqlx::{PgPool, Postgres, Row as _};

    impl DurableBackend for Postgres {
        fn setup(pool: &PgPool) -> BoxFuture<'_, Result<(), DurableError>> {
            Box::pin(async move {
                // apalis's migrations create `hstore` in the first schema of the search path
                // when it is missing, where connections with another search path would not
                // find it: create it in `public` first.
                sqlx::query("CREATE EXTENSION IF NOT EXISTS hstore WITH SCHEMA public")
                    .execute(pool)
                    .await
                    .map_err(|e| DurableError::store("creating the hstore extension", e))?;
                PostgresStorage::setup(pool)
                    .await
                    .map_err(|e| DurableError::store("creating apalis's tables (PostgreSQL)", e))
            })
        }

        fn push<'c>(
            conn: &'c mut sqlx::PgConnection,
            queue: &'c str,
            jobs: Vec<Prepared>,
        ) -> BoxFuture<'c, Result<(), BoxError>> {
            Box::pin(async move {
                let tasks: Vec<_> = jobs.into_iter().map(task).collect();
                apalis_postgres::queries::push_tasks(conn, queue, tasks).await?;
                Ok(())
            })
        }

        fn run_once(worker: QueueWorker<Postgres>) -> BoxFuture<'static, Result<(), BoxError>> {
            Box::pin(async move {
                let settings = worker.settings.clone();
                let config = apalis_postgres::Config::default()
                    .queue(worker.queue)
                    .batch_size(settings.concurrency)
                    .heartbeat_interval(settings.heartbeat)
                    .missed_heartbeats(settings.missed_heartbeats);
                // NOTIFY wakes workers of every process at COMMIT; the interval finds what it
                // missed (a job whose transaction began in an earlier second than its INSERT is
                // not notified, see docs/durable.md) and jobs whose backoff ended.
                let strategy = Strategy::new()
                    .stream(wake::listen(worker.queue))
                    .stream(Pubsub::new(worker.pool.clone(), worker.queue.to_owned()))
                    .interval(settings.poll_interval);
                let backend = PostgresStorage::<serde_json::Value>::new(&worker.pool)
                    .with_config(config)
                    .poll_with_strategy(strategy);
                let ctx = apalis::prelude::WorkerContext::new(&worker.name);
                let pool = worker.pool.clone();
                let name = worker.name.clone();
                let stop = worker.stop.clone();
                let running = WorkerBuilder::new(&ctx)
                    .backend(backend)
                    .concurrency(settings.concurrency)
                    .data(std::sync::Arc::new(worker))
                    .build(handle::<Postgres>)
                    .run();
                let result = drive(
                    ctx,
                    running,
                    stop,
                    settings.shutdown_timeout,
                    || async move { <Postgres as DurableBackend>::release(&pool, &name).await },
                )
                .await;
                wake::forget_closed();
                result
            })
        }

        fn defer<'a>(
            pool: &'a PgPool,
            id: &'a str,
            delay: Duration,
        ) -> BoxFuture<'a, Result<(), sqlx::Error>> {
            Box::pin(async move {
                sqlx::query(
                    "UPDATE apalis.jobs SET run_at = now() + make_interval(secs => $2) WHERE id = $1",
                )
                .bind(id)
                .bind(delay.as_secs_f64())
                .execute(pool)
                .await?;
                Ok(())
            })
        }

        fn release<'a>(
            pool: &'a PgPool,
            worker: &'a str,
        ) -> BoxFuture<'a, Result<u64, sqlx::Error>> {
            Box::pin(async move {
                let done = sqlx::query(
                    "UPDATE apalis.jobs SET attempts = attempts + 1, \
                       status = CASE WHEN attempts + 1 >= max_attempts THEN 'Failed' ELSE 'Pending' END, \
                       lock_by = NULL, lock_at = NULL, last_result = $2::jsonb \
                     WHERE lock_by = $1 AND status IN ('Queued', 'Running')",
                )
                .bind(worker)
                .bind(released(worker))
                .execute(pool)
                .await?;
                Ok(done.rows_affected())
            })
        }

        fn list<'a>(
            pool: &'a PgPool,
            filter: &'a JobFilter,
        ) -> BoxFuture<'a, Result<Vec<JobRow>, sqlx::Error>> {
            Box::pin(async move {
                let sql = format!(
                    "SELECT id, job_type, status, attempts::int8 AS attempts, max_attempts::int8 AS max_attempts, \
                       EXTRACT(EPOCH FROM run_at)::int8 AS run_at, last_result::text AS last_result, lock_by, \
                       convert_from(job, 'UTF8') AS job \
                     FROM apalis.jobs WHERE ($1::text IS NULL OR job_type = $1) AND {} \
                     ORDER BY run_at, id LIMIT $2",
                    state_sql(filter.state_filter())
                );
                let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(filter.queue_filter())
                    .bind(i64::from(filter.limit_value()))
                    .fetch_all(pool)
                    .await?;
                rows.iter()
                    .map(|row| {
                        Ok(RawRow {
                            id: row.try_get("id")?,
                            queue: row.try_get("job_type")?,
                            status: row.try_get("status")?,
                            attempts: row.try_get("attempts")?,
                            max_attempts: row.try_get("max_attempts")?,
                            run_at: row.try_get("run_at")?,
                            last_result: row.try_get("last_result")?,
                            lock_by: row.try_get("lock_by")?,
                            job: row.try_get("job")?,
                        }
                        .into_row())
                    })
                    .collect()
            })
        }

        fn retry<'a>(pool: &'a PgPool, id: &'a str) -> BoxFuture<'a, Result<bool, sqlx::Error>> {
            Box::pin(async move {
                let done = sqlx::query(
                    "UPDATE apalis.jobs SET status = 'Pending', attempts = 0, run_at = now(), \
                       lock_by = NULL, lock_at = NULL, done_at = NULL, last_result = NULL \
                     WHERE id = $1 AND (status = 'Killed' OR (status = 'Failed' AND attempts >= max_attempts))",
                )
                .bind(id)
                .execute(pool)
                .await?;
                Ok(done.rows_affected() == 1)
            })
        }

        fn counts(pool: &PgPool) -> BoxFuture<'_, Result<Vec<QueueCount>, sqlx::Error>> {
            Box::pin(async move {
                let rows = sqlx::query(
                    "SELECT job_type, status, attempts >= max_attempts AS exhausted, COUNT(*) AS n \
                     FROM apalis.jobs GROUP BY 1, 2, 3",
                )
                .fetch_all(pool)
                .await?;
                let mut counts = Vec::new();
                for row in rows {
                    let queue: String = row.try_get("job_type")?;
                    let status: String = row.try_get("status")?;
                    let exhausted: bool = row.try_get("exhausted")?;
                    let n: i64 = row.try_get("n")?;
                    QueueCount::add(&mut counts, queue, &status, exhausted, n);
                }
                Ok(counts)
            })
        }
    }
}
