//! The outbox: how a durable receiver's job gets into the write's transaction cheaply, and
//! how it then reaches apalis's queue.
//!
//! A job is first *staged* in the [`Tx`](crate::Tx) (memory), then written to the outbox table
//! (`signals_orm_outbox`, a row per job and one primary key) by one INSERT for many jobs:
//! when [`CHUNK`] jobs are staged, and before the COMMIT. So the job commits with the write or
//! not at all, as before, and a transaction of many saves pays one statement per [`CHUNK`]
//! jobs instead of one apalis INSERT (ten indexes on SQLite, an `hstore` and a trigger on
//! PostgreSQL) per job. The *relay*, run by every worker, then moves committed rows into
//! apalis's table in a transaction of its own: DELETE from the outbox and INSERT into apalis
//! commit together, so each job is moved exactly once, whichever worker or crash intervenes.
//! The reasons and the failure modes are in `docs/durable.md`, "The engine".

use std::time::Duration;

use tokio::sync::watch;

use super::error::DurableError;
use super::store::{DurableBackend, Prepared, wake};
use crate::{Backend, Tx};

/// Staged jobs flushed to the outbox in one statement when this many wait, so that a long
/// transaction holds a bounded number of documents in memory.
pub(crate) const CHUNK: usize = 64;

/// How many outbox rows the relay moves per transaction.
const RELAY_BATCH: i64 = 500;

/// The outbox INSERT of a backend, as a plain function so that [`Tx`] (generic over any
/// backend) can call it at COMMIT without knowing about job stores.
pub(crate) type FlushFn<DB> =
    for<'c> fn(
        &'c mut <DB as sqlx::Database>::Connection,
        &'c [Prepared],
    ) -> futures_util::future::BoxFuture<'c, Result<(), sqlx::Error>>;

/// The jobs a transaction enqueued and has not yet written to the outbox.
pub(crate) struct Staged<DB: Backend> {
    jobs: Vec<Prepared>,
    flush: Option<FlushFn<DB>>,
    /// Whether any job was enqueued in the transaction (staged or written): its COMMIT wakes
    /// this process's relays.
    enqueued: bool,
}

impl<DB: Backend> Default for Staged<DB> {
    fn default() -> Self {
        Staged {
            jobs: Vec::new(),
            flush: None,
            enqueued: false,
        }
    }
}

impl<DB: Backend> Staged<DB> {
    /// Forgets the staged jobs (their savepoint was rolled back).
    pub(crate) fn clear(&mut self) {
        self.jobs.clear();
    }

    /// Writes the staged jobs to the outbox through `conn`, the transaction's connection. They
    /// are forgotten only once the INSERT succeeded: failed or cancelled, they stay staged (the
    /// failure fails the write or the COMMIT that flushed).
    pub(crate) async fn flush(&mut self, conn: &mut DB::Connection) -> Result<(), sqlx::Error> {
        if self.jobs.is_empty() {
            return Ok(());
        }
        let Some(flush) = self.flush else {
            unreachable!("jobs are staged only with their backend's INSERT")
        };
        flush(conn, &self.jobs).await?;
        self.jobs.clear();
        Ok(())
    }

    /// Called after the COMMIT: wakes this process's relays if a job was enqueued.
    pub(crate) fn committed(&self) {
        if self.enqueued {
            wake::wake(wake::RELAY);
        }
    }
}

/// Stages `job` in `tx`; writes the staged jobs to the outbox when [`CHUNK`] of them wait.
/// The write's failure is the caller's (the enqueueing write fails and the transaction is
/// marked as after any failed write).
pub(crate) async fn stage<DB: DurableBackend>(
    tx: &mut Tx<DB>,
    job: Prepared,
) -> Result<(), sqlx::Error> {
    let staged = tx.staged();
    staged.flush = Some(DB::insert_outbox);
    staged.enqueued = true;
    staged.jobs.push(job);
    if staged.jobs.len() >= CHUNK {
        tx.flush_staged().await?;
    }
    Ok(())
}

/// Moves the committed jobs waiting in the outbox into apalis's queue, where workers fetch
/// them; returns how many it moved.
///
/// Workers do this themselves (at each COMMIT of their process that enqueued, on PostgreSQL at
/// any COMMIT that enqueued, and at each poll), so an application rarely calls it: a test
/// that runs apalis's own worker, or a process that wants jobs queued before its workers
/// start. Safe to run concurrently with workers and with itself: each job is moved once.
///
/// # Errors
///
/// [`DurableError::Store`] with the database's error; the jobs stay in the outbox.
pub async fn relay<DB: DurableBackend>(pool: &sqlx::Pool<DB>) -> Result<u64, DurableError> {
    // A read first: an empty outbox (every poll of an idle worker) costs one cheap query and,
    // on SQLite, takes no write lock.
    if !waiting(pool)
        .await
        .map_err(|e| DurableError::store("reading the outbox", e))?
    {
        return Ok(0);
    }
    let mut moved = 0;
    loop {
        let batch = DB::relay(pool, RELAY_BATCH)
            .await
            .map_err(|e| DurableError::store("moving jobs from the outbox to apalis's queue", e))?;
        moved += batch.rows;
        for queue in &batch.queues {
            wake::wake(queue);
        }
        if batch.rows < u64::try_from(RELAY_BATCH).unwrap_or(u64::MAX) {
            return Ok(moved);
        }
    }
}

/// Whether the outbox has a row.
async fn waiting<DB: DurableBackend>(pool: &sqlx::Pool<DB>) -> Result<bool, sqlx::Error> {
    let sql = format!("SELECT 1 FROM {} LIMIT 1", DB::OUTBOX);
    let mut conn = pool.acquire().await?;
    let row = DB::fetch_optional(&mut conn, DB::query_with_room(sql.into(), 0)).await?;
    Ok(row.is_some())
}

/// What one relay transaction moved: how many rows, and to which queues.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct Moved {
    pub(crate) rows: u64,
    pub(crate) queues: Vec<String>,
}

/// A worker's relay: moves the outbox into apalis's queue at each wake-up (a COMMIT of this
/// process that enqueued; on PostgreSQL, a NOTIFY from any process's) and every `poll`, until
/// `stop`. Its failures are logged and retried at the next wake-up: the jobs wait in the
/// outbox meanwhile.
pub(crate) async fn run_relay<DB: DurableBackend>(
    pool: sqlx::Pool<DB>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut local = wake::listen(wake::RELAY);
    // Not waited for past a stop (connecting may take the pool's whole timeout).
    let mut remote = tokio::select! {
        remote = DB::listen_outbox(&pool) => remote,
        _ = stop.wait_for(|stop| *stop) => return,
    };
    let mut failures = 0_u32;
    loop {
        match relay(&pool).await {
            Ok(_) => failures = 0,
            Err(error) => {
                failures += 1;
                // One line per failure streak's start, then quiet: a database that is down
                // would otherwise log every poll.
                if failures == 1 {
                    tracing::warn!(%error, "durable relay: moving the outbox failed; retried at each poll");
                }
            }
        }
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return,
            () = local.next() => {}
            () = remote.next() => {}
            () = tokio::time::sleep(every) => {}
        }
    }
}
