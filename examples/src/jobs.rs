//! The shop's durable jobs: its queues, the worker that runs them inside the program
//! ([`ShopWorker`]), what the jobs reach ([`Services`]), and their statistics ([`JobStats`]).
//!
//! The welcome email, the order confirmation and the sales analytics are durable receivers
//! (`#[receiver(.., durable)]`): each write inserts their jobs in its own transaction, and a
//! worker runs them after the COMMIT, at least once, retrying failures. The shop runs that
//! worker in its own process, on its own database (SQLite by default, PostgreSQL with
//! `DATABASE_URL`), as `signals_orm::durable::worker` allows; `cargo run -p examples --example
//! worker` shows a worker process of its own.
//!
//! # What the jobs reach
//!
//! A job carries the event (the customer, the order) and nothing of the process that wrote it:
//! it may run in another process, after a restart. What it needs besides (the database to count
//! sales in, the folder to write `.eml` files to) is the worker's: [`ShopWorker::start`] gives
//! its worker the shop's [`Services`] (`durable::worker(&pool).data(services)`), and a job reads
//! them with `job.data::<Services>()`. A job run by a worker without them (a worker program
//! that is not the shop's) fails, naming the missing type, and is retried.
//!
//! The services are the worker's, not the process's: several shops on SQLite (each its own
//! file) run their workers side by side in one process, each job with its own shop's database
//! and outbox (the tests do). On PostgreSQL, apalis's tables are in the schema `apalis`,
//! shared by every schema of the database, so two shops in two schemas of one database would
//! share the queues, and one shop's worker would run the other's jobs with its own services:
//! the shops of one PostgreSQL database take turns in a process ([`ShopWorker::start`] waits
//! until the previous one stopped); run shops in separate databases to run them at once.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, PoisonError};
use std::time::{Duration, Instant};

use signals_orm::durable::{self, JobFilter, JobState, WorkerHandle};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::db::ShopDb;
use crate::{Error, on_db};

/// The queue of the shop's emails (welcome, order confirmation).
pub const MAIL_QUEUE: &str = "shop-mail";
/// The queue of the sales analytics.
pub const ANALYTICS_QUEUE: &str = "shop-analytics";
/// Every queue of the shop, as its worker runs them.
pub const QUEUES: [&str; 2] = [MAIL_QUEUE, ANALYTICS_QUEUE];
/// How long [`ShopWorker::drain`] waits by default for the queues to empty: generous, for a
/// machine under load (a job retried after its 1 s backoff takes about 2 s).
pub const DRAIN_TIMEOUT: Duration = Duration::from_mins(1);

/// What the shop's jobs reach besides their event: the database of the worker running them
/// and its mail outbox. [`ShopWorker::start`] gives them to its worker; a receiver reads them
/// with `job.data::<Services>()`.
#[derive(Clone, Debug)]
pub struct Services {
    /// The shop's database (the sales analytics are written there).
    pub db: ShopDb,
    /// Where `.eml` files are written.
    pub outbox: PathBuf,
}

/// One turn per PostgreSQL database (`host:port/database`): the shops of one database share
/// apalis's queues, so their workers in this process take turns.
static TURNS: LazyLock<std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>> =
    LazyLock::new(Default::default);

/// Waits for the turn of `db`'s shops when they share their queues with other shops (a
/// PostgreSQL database); `None` for SQLite, whose file holds its own queues.
async fn turn(db: &ShopDb) -> Option<OwnedMutexGuard<()>> {
    let ShopDb::Postgres(pool) = db else {
        return None;
    };
    let options = pool.connect_options();
    let key = format!(
        "{}:{}/{}",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or_default()
    );
    let turn = Arc::clone(
        TURNS
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(key)
            .or_default(),
    );
    Some(turn.lock_owned().await)
}

/// The shop's durable worker, running in this process on the shop's database with the shop's
/// [`Services`] as its jobs' data: started by [`ShopWorker::start`], stopped by
/// [`ShopWorker::stop`] (dropped, the worker ends with the runtime).
#[derive(Debug)]
pub struct ShopWorker {
    handle: Option<WorkerHandle>,
    db: ShopDb,
    _turn: Option<OwnedMutexGuard<()>>,
}

impl ShopWorker {
    /// Clears the shop's queues (jobs an earlier session left, stopped before its queues
    /// drained) and starts a worker of [`QUEUES`] polling every 100 ms (commits in this
    /// process wake it at once), giving its jobs `db` and `outbox` as their [`Services`]
    /// (`durable::worker(..).data(..)`). Shops on SQLite files start at once, side by side;
    /// on PostgreSQL it first waits until no other shop worker of the same database runs in
    /// this process (they would share the queues).
    ///
    /// Start it before the session writes anything: clearing the queues would drop the jobs
    /// of earlier writes.
    ///
    /// # Errors
    ///
    /// When the queues cannot be cleared.
    pub async fn start(db: &ShopDb, outbox: &Path) -> Result<Self, Error> {
        let turn = turn(db).await;
        // The queues' jobs wherever they wait: the outbox (a job an earlier session committed
        // but no worker moved yet), then apalis's table (where a relay may just have moved
        // one).
        let statements = match db {
            ShopDb::Sqlite(_) => [
                "DELETE FROM signals_orm_outbox WHERE queue IN ($1, $2)",
                "DELETE FROM Jobs WHERE job_type IN ($1, $2)",
            ],
            ShopDb::Postgres(_) => [
                "DELETE FROM apalis.signals_orm_outbox WHERE queue IN ($1, $2)",
                "DELETE FROM apalis.jobs WHERE job_type IN ($1, $2)",
            ],
        };
        for sql in statements {
            on_db!(db, |pool| sqlx::query(sql)
                .bind(MAIL_QUEUE)
                .bind(ANALYTICS_QUEUE)
                .execute(pool)
                .await
                .map(drop))?;
        }
        let services = Services {
            db: db.clone(),
            outbox: outbox.to_path_buf(),
        };
        let handle = on_db!(db, |pool| {
            let mut worker = durable::worker(pool)
                .poll_interval(Duration::from_millis(100))
                .data(services);
            for queue in QUEUES {
                worker = worker.queue(queue);
            }
            worker.spawn()
        });
        Ok(ShopWorker {
            handle: Some(handle),
            db: db.clone(),
            _turn: turn,
        })
    }

    /// Waits until the shop's queues have no pending, running or retrying job (every job ran,
    /// or is dead), at most `limit`; returns the statistics.
    ///
    /// # Errors
    ///
    /// When jobs are still waiting after `limit` (the error lists them), or the database fails.
    pub async fn drain(&self, limit: Duration) -> Result<JobStats, Error> {
        drain(&self.db, limit).await
    }

    /// Stops the worker gracefully (a running job finishes first) and returns the statistics.
    /// It does not wait for the queues: [`drain`](Self::drain) first.
    ///
    /// # Errors
    ///
    /// When the worker fails to stop, or the database fails.
    pub async fn stop(mut self) -> Result<JobStats, Error> {
        if let Some(handle) = self.handle.take() {
            handle.shutdown().await?;
        }
        JobStats::of(&self.db).await
    }
}

/// Waits until the shop's queues on `db` have no pending, running or retrying job, at most
/// `limit`, polling every 50 ms; returns the statistics. A worker must be running (in this
/// process or another).
///
/// # Errors
///
/// When jobs are still waiting after `limit` (the error lists them), or the database fails.
pub async fn drain(db: &ShopDb, limit: Duration) -> Result<JobStats, Error> {
    let start = Instant::now();
    loop {
        let stats = JobStats::of(db).await?;
        if stats.waiting == 0 {
            return Ok(stats);
        }
        if start.elapsed() >= limit {
            let waiting = on_db!(db, |pool| {
                let mut lines = Vec::new();
                for queue in QUEUES {
                    for job in durable::jobs(pool, &JobFilter::new().queue(queue)).await? {
                        if matches!(
                            job.state,
                            JobState::Pending | JobState::Running | JobState::Retrying
                        ) {
                            lines.push(format!("  {job}"));
                        }
                    }
                }
                Ok::<_, durable::DurableError>(lines)
            })?;
            return Err(format!(
                "the shop's jobs did not finish within {limit:?}: {} still waiting\n{}",
                stats.waiting,
                waiting.join("\n")
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The shop's jobs, counted from apalis's tables (`signals_orm::durable::jobs`): every job of
/// [`QUEUES`] on the database, whichever process enqueued or ran it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobStats {
    /// Jobs enqueued (in the writes' transactions), in any state.
    pub enqueued: u64,
    /// Of which on [`MAIL_QUEUE`].
    pub mail: u64,
    /// Of which on [`ANALYTICS_QUEUE`].
    pub analytics: u64,
    /// Jobs that ran successfully.
    pub done: u64,
    /// Attempts that failed and were tried again (a job done on its third attempt counts 2).
    pub retried: u64,
    /// Jobs kept dead: failed on their last attempt.
    pub dead: u64,
    /// Jobs pending, running or waiting for a retry.
    pub waiting: u64,
}

impl JobStats {
    /// The statistics of the shop's queues on `db`.
    ///
    /// # Errors
    ///
    /// The database's.
    pub async fn of(db: &ShopDb) -> Result<Self, Error> {
        let mut stats = JobStats::default();
        for queue in QUEUES {
            let filter = JobFilter::new().queue(queue).limit(100_000);
            let jobs = on_db!(db, |pool| durable::jobs(pool, &filter).await)?;
            for job in jobs {
                stats.enqueued += 1;
                if queue == MAIL_QUEUE {
                    stats.mail += 1;
                } else {
                    stats.analytics += 1;
                }
                stats.retried += u64::from(job.attempts.saturating_sub(1));
                match job.state {
                    JobState::Done => stats.done += 1,
                    JobState::Dead => stats.dead += 1,
                    _ => stats.waiting += 1,
                }
            }
        }
        Ok(stats)
    }
}

/// The shop's jobs grouped by queue, receiver and state, one line each, with how many and
/// their attempts (`shop-mail  order_creation::send_order_confirmation  3 done, 6 attempts`),
/// sorted. The jobs themselves: `cargo run -p examples --example worker -- jobs` on a durable
/// application's database, or `signals_orm::durable::jobs`.
///
/// # Errors
///
/// The database's.
pub async fn listing(db: &ShopDb) -> Result<Vec<String>, Error> {
    let mut groups: std::collections::BTreeMap<(String, String, String), (u64, u64)> =
        std::collections::BTreeMap::new();
    for queue in QUEUES {
        let filter = JobFilter::new().queue(queue).limit(100_000);
        for job in on_db!(db, |pool| durable::jobs(pool, &filter).await)? {
            let receiver = job.receiver.unwrap_or_default();
            let receiver = receiver
                .strip_prefix("examples::usecases::")
                .unwrap_or(&receiver)
                .to_owned();
            let group = groups
                .entry((job.queue, receiver, job.state.as_str().to_owned()))
                .or_default();
            group.0 += 1;
            group.1 += u64::from(job.attempts);
        }
    }
    Ok(groups
        .into_iter()
        .map(|((queue, receiver, state), (jobs, attempts))| {
            format!("{queue:<15} {receiver:<42} {jobs} {state}, {attempts} attempts")
        })
        .collect())
}
