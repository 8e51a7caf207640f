//! The job store of each backend: our outbox table (`signals_orm_outbox`, written in the
//! write's transaction) and apalis-sqlite's `Jobs` table or apalis-postgres's `apalis.jobs`,
//! reached through apalis's own public API where it has one (the INSERT the relay runs, the
//! worker) and through a few statements of our own where it has none (backoff, release, the
//! listing, re-running a dead job), pinned to apalis 1.0.0 and covered by
//! `tests/tests/durable.rs` and `durable_contract.rs`.

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
use super::outbox::{self, Moved};
use crate::tx::AnyTx;
use crate::{Backend, Tx};

/// One job ready to be inserted: its id (also the event id), its document, its options, and
/// when it is due (Unix seconds).
#[doc(hidden)]
#[derive(Debug)]
pub struct Prepared {
    pub(crate) id: ulid::Ulid,
    pub(crate) bytes: Vec<u8>,
    pub(crate) options: JobOptions,
    pub(crate) run_at: i64,
}

impl Prepared {
    /// A job enqueued now: due now, or after its options' delay (rounded up to whole seconds,
    /// so never early). "Now" is rounded down: the job's `run_at` is never after the start of
    /// the relay's transaction, whose NOTIFY apalis sends only for jobs due by then.
    pub(crate) fn new(id: ulid::Ulid, bytes: Vec<u8>, options: JobOptions) -> Self {
        let delay = options.first_delay();
        let run_at = if delay.is_zero() {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
        } else {
            due_in(delay)
        };
        Prepared {
            id,
            bytes,
            options,
            run_at: i64::try_from(run_at).unwrap_or(i64::MAX),
        }
    }

    fn queue(&self) -> &'static str {
        self.options.queue_name()
    }
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
    /// Creates or upgrades apalis's tables and the outbox.
    #[doc(hidden)]
    fn setup(pool: &sqlx::Pool<Self>) -> BoxFuture<'_, Result<(), DurableError>>;

    /// Inserts `jobs` into the outbox on `conn` (the write's transaction).
    #[doc(hidden)]
    fn insert_outbox<'c>(
        conn: &'c mut Self::Connection,
        jobs: &'c [Prepared],
    ) -> BoxFuture<'c, Result<(), sqlx::Error>>;

    /// The outbox table's name.
    #[doc(hidden)]
    const OUTBOX: &'static str;

    /// Moves at most `limit` outbox rows into apalis's table (with apalis's own
    /// `push_tasks`), in one transaction of its own.
    #[doc(hidden)]
    fn relay(pool: &sqlx::Pool<Self>, limit: i64) -> BoxFuture<'_, Result<Moved, BoxError>>;

    /// What wakes the relay when another process enqueued (PostgreSQL's NOTIFY); never ends.
    #[doc(hidden)]
    fn listen_outbox(pool: &sqlx::Pool<Self>) -> BoxFuture<'_, WakeStream>;

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

    /// Keeps dead (`Killed`, with an error naming it) each job `worker` holds whose document is
    /// not JSON, and returns their ids. apalis's worker cannot decode such a row (a foreign
    /// producer's, on the same queue) and ends with an error; released, the row would be fetched
    /// first again by each restarted worker, which would fail the same way until the row's
    /// attempts ran out, and the jobs fetched with it would spend theirs without running. Called
    /// before [`release`](Self::release) after a worker failed. Each document is tested here, in
    /// Rust, not by the database (PostgreSQL's `IS JSON` is 16's, and 15 is supported).
    #[doc(hidden)]
    fn kill_unreadable<'a>(
        pool: &'a sqlx::Pool<Self>,
        worker: &'a str,
    ) -> BoxFuture<'a, Result<Vec<String>, sqlx::Error>>;

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

/// Stages `job` in the write's transaction, whichever backend it runs on.
pub(crate) fn stage_any(tx: AnyTx<'_>, job: Prepared) -> BoxFuture<'_, Result<(), BoxError>> {
    match tx {
        #[cfg(feature = "sqlite")]
        AnyTx::Sqlite(tx) => {
            #[cfg(feature = "durable-sqlite")]
            return stage_in(tx, job);
            #[cfg(not(feature = "durable-sqlite"))]
            return no_store(tx, job, "durable-sqlite");
        }
        #[cfg(feature = "postgres")]
        AnyTx::Postgres(tx) => {
            #[cfg(feature = "durable-postgres")]
            return stage_in(tx, job);
            #[cfg(not(feature = "durable-postgres"))]
            return no_store(tx, job, "durable-postgres");
        }
    }
}

#[allow(dead_code, reason = "used by the builds lacking one backend's store")]
fn no_store<'t, DB: Backend>(
    tx: &'t mut Tx<DB>,
    job: Prepared,
    feature: &'static str,
) -> BoxFuture<'t, Result<(), BoxError>> {
    drop((tx, job));
    let backend = <DB as Backend>::NAME;
    Box::pin(std::future::ready(Err(format!(
        "this build has no durable job store for {backend}: turn on signals-orm's `{feature}` feature"
    )
    .into())))
}

/// Stages `job` in `tx` (see `outbox.rs`).
fn stage_in<DB: DurableBackend>(
    tx: &mut Tx<DB>,
    job: Prepared,
) -> BoxFuture<'_, Result<(), BoxError>> {
    Box::pin(async move {
        outbox::stage(tx, job).await.map_err(|source| {
            DurableError::store(
                "writing a durable receiver's job to the outbox in the write's transaction",
                source,
            )
            .into()
        })
    })
}

/// Wakes this process's relays when a transaction that enqueued commits, and its workers of a
/// queue when the relay moved jobs to it, rather than at their next poll.
pub(crate) mod wake {
    use super::{
        AtomicUsize, Mutex, Ordering, PoisonError, UnboundedReceiver, UnboundedSender,
        unbounded_channel,
    };

    /// The key relays listen on (no queue has this name: queue names are printable).
    pub(crate) const RELAY: &str = "\0relay";

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

    /// Wakes every listener of `queue`, and forgets those that are gone.
    pub(crate) fn wake(queue: &str) {
        // A process without workers (an application writing for remote ones) pays one load.
        if LISTENERS.load(Ordering::Acquire) == 0 {
            return;
        }
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

/// What a worker polls on besides its interval: a relay of this process moved jobs to its
/// queue; what a relay waits on: a COMMIT that enqueued. (`Sync` as apalis's poll strategies
/// want, hence the mutex.)
#[doc(hidden)]
pub struct WakeStream(Mutex<UnboundedReceiver<()>>);

impl WakeStream {
    /// A stream that never wakes.
    fn never() -> Self {
        WakeStream::channel().1
    }

    /// A stream, and what wakes it.
    fn channel() -> (UnboundedSender<()>, Self) {
        let (tx, rx) = unbounded_channel();
        (tx, WakeStream(Mutex::new(rx)))
    }

    /// The next wake-up.
    /// The next wake-up; the ones that queued meanwhile are merged into it (the relay looks at
    /// everything each time, so N COMMITs during one pass ask for one more pass, not N).
    pub(crate) async fn next(&mut self) {
        if futures_util::StreamExt::next(self).await.is_none() {
            std::future::pending::<()>().await;
        }
        let rx = self.0.get_mut().unwrap_or_else(PoisonError::into_inner);
        while rx.try_recv().is_ok() {}
    }
}

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

/// An outbox row, as the relay reads it.
#[cfg(any(feature = "durable-sqlite", feature = "durable-postgres"))]
#[derive(sqlx::FromRow)]
struct OutboxRow {
    id: String,
    queue: String,
    job: Vec<u8>,
    max_attempts: i32,
    priority: i32,
    run_at: i64,
}

/// A job as apalis's `push_tasks` takes it.
#[cfg(any(feature = "durable-sqlite", feature = "durable-postgres"))]
type ApalisTask = apalis::prelude::Task<Vec<u8>>;

/// The apalis tasks of the rows one relay transaction took, grouped by queue (first seen
/// first).
#[cfg(any(feature = "durable-sqlite", feature = "durable-postgres"))]
fn tasks_by_queue(rows: Vec<OutboxRow>) -> Vec<(String, Vec<ApalisTask>)> {
    use apalis::prelude::{TaskBuilder, TaskId};
    let mut by_queue: Vec<(String, Vec<_>)> = Vec::new();
    for row in rows {
        // Ours are ULIDs. A row someone else wrote with another id gets a fresh one rather than
        // stopping the relay: it is taken first in every batch, and would stall every queue.
        let id: ulid::Ulid = row.id.parse().unwrap_or_else(|error| {
            let fresh = ulid::Ulid::generate();
            tracing::warn!(outbox_id = %row.id, job_id = %fresh, %error, "durable relay: an outbox row's id is not a ULID; relayed under a fresh one");
            fresh
        });
        let task = TaskBuilder::new(row.job)
            .task_id(TaskId::from_ulid(id))
            .max_attempts(usize::try_from(row.max_attempts).unwrap_or(1))
            .priority(usize::try_from(row.priority).unwrap_or(0))
            .run_at_timestamp(u64::try_from(row.run_at).unwrap_or(0))
            .build();
        match by_queue.iter_mut().find(|(q, _)| *q == row.queue) {
            Some((_, tasks)) => tasks.push(task),
            None => by_queue.push((row.queue, vec![task])),
        }
    }
    by_queue
}

/// apalis's `push_tasks` of a backend: `tasks` into `queue`, on the relay's connection.
#[cfg(any(feature = "durable-sqlite", feature = "durable-postgres"))]
type PushFn<DB> = for<'c> fn(
    &'c mut <DB as sqlx::Database>::Connection,
    &'c str,
    Vec<ApalisTask>,
) -> BoxFuture<'c, Result<(), BoxError>>;

/// `relay` on either backend: in one transaction (the ORM's `BEGIN`), `take` deletes and
/// returns at most `?1`/`$1` outbox rows, and `push` inserts them into apalis's table, queue by
/// queue; both commit together, so each job is moved once.
#[cfg(any(feature = "durable-sqlite", feature = "durable-postgres"))]
async fn relay_with<DB: DurableBackend>(
    pool: &sqlx::Pool<DB>,
    limit: i64,
    take: &'static str,
    push: PushFn<DB>,
) -> Result<Moved, BoxError>
where
    for<'r> OutboxRow: sqlx::FromRow<'r, DB::Row>,
{
    use sqlx::FromRow as _;
    let mut tx = pool.begin_with(DB::BEGIN).await?;
    let query = DB::bind_i64(DB::query_with_room(take.into(), 1), limit);
    let rows = DB::fetch_all(&mut tx, query)
        .await?
        .iter()
        .map(OutboxRow::from_row)
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    let count = rows.len() as u64;
    let mut queues = Vec::new();
    for (queue, tasks) in tasks_by_queue(rows) {
        push(&mut tx, &queue, tasks).await?;
        queues.push(queue);
    }
    tx.commit().await?;
    Ok(Moved {
        rows: count,
        queues,
    })
}

/// The message a released job keeps as its last result.
#[cfg(any(feature = "durable-sqlite", feature = "durable-postgres"))]
fn released(worker: &str) -> String {
    serde_json::json!({ "Err": format!("released by worker {worker} when it stopped") }).to_string()
}

/// The ids of the `(id, document)` rows whose document does not parse as JSON: the ones
/// apalis's JSON codec cannot decode.
#[cfg(any(feature = "durable-sqlite", feature = "durable-postgres"))]
fn not_json(rows: Vec<(String, Vec<u8>)>) -> Vec<String> {
    rows.into_iter()
        .filter(|(_, job)| serde_json::from_slice::<serde_json::Value>(job).is_err())
        .map(|(id, _)| id)
        .collect()
}

/// `kill_unreadable` on either backend, given its two statements: `held` selects `(id, job)` of
/// the rows worker `?1` holds, `kill` marks row `?1` of worker `?2` dead with message `?3`.
#[cfg(any(feature = "durable-sqlite", feature = "durable-postgres"))]
async fn kill_unreadable_with<DB: Backend>(
    pool: &sqlx::Pool<DB>,
    worker: &str,
    held: &'static str,
    kill: &'static str,
) -> Result<Vec<String>, sqlx::Error>
where
    for<'r> String: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> Vec<u8>: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    use sqlx::Row as _;
    let mut conn = pool.acquire().await?;
    let query = DB::bind_text(DB::query_with_room(held.into(), 1), worker);
    let rows = DB::fetch_all(&mut conn, query)
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<Vec<(String, Vec<u8>)>, sqlx::Error>>()?;
    let ids = not_json(rows);
    for id in &ids {
        // As apalis's own kill (`queries/task/kill.sql`): the row keeps its worker, and the
        // status check leaves a row that changed meanwhile alone.
        let message = unreadable(id);
        let query = DB::query_with_room(kill.into(), 3);
        let query = DB::bind_text(DB::bind_text(DB::bind_text(query, id), worker), &message);
        DB::execute(&mut conn, query).await?;
    }
    Ok(ids)
}

/// A job's document as text, for the listing; `None` when it is not UTF-8.
#[cfg(any(feature = "durable-sqlite", feature = "durable-postgres"))]
fn text_of(job: Option<Vec<u8>>) -> Option<String> {
    job.and_then(|bytes| String::from_utf8(bytes).ok())
}

/// The message a job whose document is not JSON keeps as its last result.
#[cfg(any(feature = "durable-sqlite", feature = "durable-postgres"))]
fn unreadable(id: &str) -> String {
    serde_json::json!({
        "Err": format!("job {id}: its document is not JSON, so apalis cannot read it; kept dead")
    })
    .to_string()
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
        BoxFuture, DurableBackend, DurableError, Duration, JobFilter, JobRow, Moved, Prepared,
        QueueCount, WakeStream, drive, due_in, kill_unreadable_with, relay_with, released, text_of,
        wake,
    };
    use crate::durable::admin::{RawRow, state_sql};
    use crate::durable::worker::{QueueWorker, handle};
    use apalis::prelude::{BackendExt as _, Strategy, WorkerBuilder, WorkerBuilderExt as _};
    use apalis_sqlite::SqliteStorage;
    use signals_core::BoxError;
    use sqlx::{Row as _, Sqlite, SqlitePool};
    use std::sync::LazyLock;

    impl DurableBackend for Sqlite {
        const OUTBOX: &'static str = "signals_orm_outbox";

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
                    .map_err(|e| DurableError::store("creating apalis's tables (SQLite)", e))?;
                // The outbox: one row per job and no index but its rowid, so that writing a
                // job costs the write little (see outbox.rs).
                sqlx::query(
                    "CREATE TABLE IF NOT EXISTS signals_orm_outbox (\
                       seq INTEGER PRIMARY KEY, id TEXT NOT NULL, queue TEXT NOT NULL, \
                       job BLOB NOT NULL, max_attempts INTEGER NOT NULL, \
                       priority INTEGER NOT NULL, run_at INTEGER NOT NULL)",
                )
                .execute(pool)
                .await
                .map_err(|e| DurableError::store("creating the outbox table (SQLite)", e))?;
                Ok(())
            })
        }

        fn insert_outbox<'c>(
            conn: &'c mut sqlx::SqliteConnection,
            jobs: &'c [Prepared],
        ) -> BoxFuture<'c, Result<(), sqlx::Error>> {
            Box::pin(async move {
                // A few statement sizes, so that each connection prepares a few statements
                // whatever the number of jobs.
                let mut rest = jobs;
                while !rest.is_empty() {
                    let (at, size) = INSERT_SIZES
                        .iter()
                        .copied()
                        .enumerate()
                        .find(|&(_, n)| n <= rest.len())
                        .unwrap_or((INSERT_SIZES.len() - 1, 1));
                    let (chunk, tail) = rest.split_at(size);
                    let mut query = sqlx::query(INSERTS[at].as_str());
                    for job in chunk {
                        query = query
                            .bind(job.id.to_string())
                            .bind(job.queue())
                            .bind(&job.bytes[..])
                            .bind(i64::from(job.options.attempts()))
                            .bind(i64::from(job.options.priority_value()))
                            .bind(job.run_at);
                    }
                    query.execute(&mut *conn).await?;
                    rest = tail;
                }
                Ok(())
            })
        }

        fn relay(pool: &SqlitePool, limit: i64) -> BoxFuture<'_, Result<Moved, BoxError>> {
            Box::pin(relay_with(
                pool,
                limit,
                // `BEGIN IMMEDIATE` (the ORM's): concurrent relays wait for the write lock.
                "DELETE FROM signals_orm_outbox WHERE seq IN \
                   (SELECT seq FROM signals_orm_outbox ORDER BY seq LIMIT ?1) \
                 RETURNING id, queue, job, max_attempts, priority, run_at",
                |conn, queue, tasks: Vec<_>| {
                    Box::pin(async move {
                        apalis_sqlite::queries::push_tasks(conn, queue, &tasks).await?;
                        Ok(())
                    })
                },
            ))
        }

        fn listen_outbox(_pool: &SqlitePool) -> BoxFuture<'_, WakeStream> {
            // Other processes' COMMITs are found by the poll.
            Box::pin(async { WakeStream::never() })
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

        fn kill_unreadable<'a>(
            pool: &'a SqlitePool,
            worker: &'a str,
        ) -> BoxFuture<'a, Result<Vec<String>, sqlx::Error>> {
            Box::pin(kill_unreadable_with(
                pool,
                worker,
                "SELECT id, job FROM Jobs WHERE lock_by = ?1 AND status IN ('Queued', 'Running')",
                "UPDATE Jobs SET status = 'Killed', done_at = strftime('%s', 'now'), \
                   last_result = ?3 \
                 WHERE id = ?1 AND lock_by = ?2 AND status IN ('Queued', 'Running')",
            ))
        }

        fn list<'a>(
            pool: &'a SqlitePool,
            filter: &'a JobFilter,
        ) -> BoxFuture<'a, Result<Vec<JobRow>, sqlx::Error>> {
            Box::pin(async move {
                let sql = format!(
                    "SELECT id, job_type, status, attempts, max_attempts, run_at, last_result, lock_by, job \
                     FROM (SELECT id, job_type, status, attempts, max_attempts, run_at, \
                             last_result, lock_by, job FROM Jobs \
                           UNION ALL SELECT id, queue, 'Pending', 0, max_attempts, run_at, \
                             NULL, NULL, job FROM signals_orm_outbox) \
                     WHERE (?1 IS NULL OR job_type = ?1) AND {} \
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
                            // Read as bytes: a foreign row's need not be text (a NUL or
                            // invalid UTF-8 would fail the whole listing); it is then no
                            // durable job's document.
                            job: text_of(row.try_get("job")?),
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
                       COUNT(*) AS n \
                     FROM (SELECT job_type, status, attempts, max_attempts FROM Jobs \
                       UNION ALL SELECT queue, 'Pending', 0, max_attempts FROM signals_orm_outbox) \
                     GROUP BY 1, 2, 3",
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

    /// The row counts of the outbox INSERTs, largest first: a flush of `n` jobs runs at most
    /// one statement per bit of `n`, and a connection prepares seven statements.
    const INSERT_SIZES: [usize; 7] = [64, 32, 16, 8, 4, 2, 1];
    const _: () = assert!(INSERT_SIZES[0] == crate::durable::outbox::CHUNK);

    /// The outbox INSERT of each of [`INSERT_SIZES`].
    static INSERTS: LazyLock<[String; 7]> = LazyLock::new(|| {
        INSERT_SIZES.map(|rows| {
            // Anonymous `?`s: SQLite looks a numbered one's name up by a linear search, for
            // each parameter bound (quadratic in a statement of 64 rows).
            let values = vec!["(?, ?, ?, ?, ?, ?)"; rows].join(", ");
            format!(
                "INSERT INTO signals_orm_outbox (id, queue, job, max_attempts, priority, run_at) VALUES {values}"
            )
        })
    });
}

#[cfg(feature = "durable-postgres")]
mod postgres {
    use super::{
        BoxFuture, DurableBackend, DurableError, Duration, JobFilter, JobRow, Moved, Prepared,
        QueueCount, WakeStream, drive, kill_unreadable_with, relay_with, released, text_of, wake,
    };
    use crate::durable::admin::{RawRow, state_sql};
    use crate::durable::worker::{QueueWorker, handle};
    use apalis::prelude::{BackendExt as _, Strategy, WorkerBuilder, WorkerBuilderExt as _};
    use apalis_postgres::{PostgresStorage, Pubsub};
    use signals_core::BoxError;
    use sqlx::{PgPool, Postgres, Row as _};

    impl DurableBackend for Postgres {
        const OUTBOX: &'static str = "apalis.signals_orm_outbox";

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
                    .map_err(|e| DurableError::store("creating apalis's tables (PostgreSQL)", e))?;
                // The outbox, next to apalis's tables: one row per job, no index but its key,
                // no trigger (see outbox.rs). Under a lock, as two processes starting at once
                // may both run this.
                let create = async {
                    let mut tx = pool.begin().await?;
                    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('signals_orm_outbox'))")
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query(
                        "CREATE TABLE IF NOT EXISTS apalis.signals_orm_outbox (\
                           seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
                           id TEXT NOT NULL, queue TEXT NOT NULL, job BYTEA NOT NULL, \
                           max_attempts INTEGER NOT NULL, priority INTEGER NOT NULL, \
                           run_at BIGINT NOT NULL)",
                    )
                    .execute(&mut *tx)
                    .await?;
                    tx.commit().await
                };
                create
                    .await
                    .map_err(|e| DurableError::store("creating the outbox table (PostgreSQL)", e))
            })
        }

        fn insert_outbox<'c>(
            conn: &'c mut sqlx::PgConnection,
            jobs: &'c [Prepared],
        ) -> BoxFuture<'c, Result<(), sqlx::Error>> {
            Box::pin(async move {
                let mut ids = Vec::with_capacity(jobs.len());
                let mut queues = Vec::with_capacity(jobs.len());
                let mut documents = Vec::with_capacity(jobs.len());
                let mut attempts = Vec::with_capacity(jobs.len());
                let mut priorities = Vec::with_capacity(jobs.len());
                let mut run_ats = Vec::with_capacity(jobs.len());
                for job in jobs {
                    ids.push(job.id.to_string());
                    queues.push(job.queue());
                    attempts.push(i32::try_from(job.options.attempts()).unwrap_or(i32::MAX));
                    priorities.push(i32::from(job.options.priority_value()));
                    run_ats.push(job.run_at);
                    documents.push(&job.bytes[..]);
                }
                // One statement for any number of jobs; its NOTIFY (sent at COMMIT, once per
                // transaction however many flushes) wakes the relays of every process.
                sqlx::query(
                    "WITH written AS ( \
                       INSERT INTO apalis.signals_orm_outbox \
                         (id, queue, job, max_attempts, priority, run_at) \
                       SELECT * FROM UNNEST($1::text[], $2::text[], $3::bytea[], $4::int4[], \
                         $5::int4[], $6::int8[]) \
                       RETURNING 1) \
                     SELECT pg_notify('signals_orm_outbox', '') \
                     FROM (SELECT 1 FROM written LIMIT 1) AS one",
                )
                .bind(ids)
                .bind(queues)
                .bind(documents)
                .bind(attempts)
                .bind(priorities)
                .bind(run_ats)
                .execute(conn)
                .await?;
                Ok(())
            })
        }

        fn relay(pool: &PgPool, limit: i64) -> BoxFuture<'_, Result<Moved, BoxError>> {
            Box::pin(relay_with(
                pool,
                limit,
                // Concurrent relays take disjoint rows (SKIP LOCKED).
                "DELETE FROM apalis.signals_orm_outbox WHERE seq IN \
                   (SELECT seq FROM apalis.signals_orm_outbox ORDER BY seq LIMIT $1 \
                    FOR UPDATE SKIP LOCKED) \
                 RETURNING id, queue, job, max_attempts, priority, run_at",
                |conn, queue, tasks| {
                    Box::pin(async move {
                        apalis_postgres::queries::push_tasks(conn, queue, tasks).await?;
                        Ok(())
                    })
                },
            ))
        }

        fn listen_outbox(pool: &PgPool) -> BoxFuture<'_, WakeStream> {
            Box::pin(async move {
                // On a pool of its own (one connection, opened now): a listener holds its
                // connection for the worker's life, which the application's pool should not
                // lose.
                let own = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect_lazy_with((*pool.connect_options()).clone());
                let mut listener = match sqlx::postgres::PgListener::connect_with(&own).await {
                    Ok(listener) => listener,
                    Err(error) => {
                        tracing::warn!(%error, "durable relay: no LISTEN connection; other processes' jobs are found by the poll");
                        return WakeStream::never();
                    }
                };
                if let Err(error) = listener.listen("signals_orm_outbox").await {
                    tracing::warn!(%error, "durable relay: LISTEN failed; other processes' jobs are found by the poll");
                    return WakeStream::never();
                }
                let (tx, stream) = WakeStream::channel();
                tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            () = tx.closed() => return,
                            received = listener.recv() => {
                                // A notification, or a lost connection (the listener
                                // reconnects at its next `recv`): either way the relay looks.
                                if tx.send(()).is_err() {
                                    return;
                                }
                                if received.is_err() {
                                    tokio::time::sleep(Duration::from_secs(1)).await;
                                }
                            }
                        }
                    }
                });
                stream
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

        fn kill_unreadable<'a>(
            pool: &'a PgPool,
            worker: &'a str,
        ) -> BoxFuture<'a, Result<Vec<String>, sqlx::Error>> {
            Box::pin(kill_unreadable_with(
                pool,
                worker,
                "SELECT id, job FROM apalis.jobs \
                 WHERE lock_by = $1 AND status IN ('Queued', 'Running')",
                "UPDATE apalis.jobs SET status = 'Killed', done_at = now(), \
                   last_result = $3::jsonb \
                 WHERE id = $1 AND lock_by = $2 AND status IN ('Queued', 'Running')",
            ))
        }

        fn list<'a>(
            pool: &'a PgPool,
            filter: &'a JobFilter,
        ) -> BoxFuture<'a, Result<Vec<JobRow>, sqlx::Error>> {
            Box::pin(async move {
                let sql = format!(
                    "SELECT id, job_type, status, attempts::int8 AS attempts, max_attempts::int8 AS max_attempts, \
                       EXTRACT(EPOCH FROM run_at)::int8 AS run_at, last_result::text AS last_result, lock_by, \
                       job \
                     FROM (SELECT id, job_type, status, attempts, max_attempts, run_at, \
                             last_result, lock_by, job FROM apalis.jobs \
                           UNION ALL SELECT id, queue, 'Pending', 0, max_attempts, to_timestamp(run_at), \
                             NULL, NULL, job FROM apalis.signals_orm_outbox) AS jobs \
                     WHERE ($1::text IS NULL OR job_type = $1) AND {} \
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
                            // Read as bytes: a foreign row's need not be text (a NUL or
                            // invalid UTF-8 would fail the whole listing); it is then no
                            // durable job's document.
                            job: text_of(row.try_get("job")?),
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
                     FROM (SELECT job_type, status, attempts, max_attempts FROM apalis.jobs \
                       UNION ALL SELECT queue, 'Pending', 0, max_attempts \
                       FROM apalis.signals_orm_outbox) AS jobs \
                     GROUP BY 1, 2, 3",
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
