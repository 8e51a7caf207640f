//! Workers: apalis workers, one per queue, that run durable receivers' jobs; supervised
//! (restarted under a fresh name after a database error), stopped gracefully, observed through
//! tracing spans and [`metrics`].

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use apalis::prelude::{AbortError, Attempt, BoxDynError, Data, TaskId};
use futures_util::FutureExt as _;
use tokio::sync::watch;
use tracing::Instrument as _;

use super::error::DurableError;
use super::job::{Envelope, JobData, JobError, RawJob, WIRE_VERSION};
use super::options::Backoff;
use super::registry;
use super::store::DurableBackend;

/// How a worker polls, leases and stops.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub concurrency: usize,
    pub poll_interval: Duration,
    pub heartbeat: Duration,
    pub missed_heartbeats: usize,
    pub shutdown_timeout: Duration,
    pub restart_delay: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            concurrency: 4,
            poll_interval: Duration::from_secs(1),
            heartbeat: Duration::from_secs(5),
            missed_heartbeats: 3,
            shutdown_timeout: Duration::from_secs(30),
            restart_delay: Duration::from_secs(1),
        }
    }
}

/// One apalis worker of one queue, as the backend runs it, and what its jobs' handler needs.
#[doc(hidden)]
#[derive(Debug)]
pub struct QueueWorker<DB: DurableBackend> {
    pub(crate) pool: sqlx::Pool<DB>,
    pub(crate) queue: &'static str,
    pub(crate) name: String,
    pub(crate) settings: Settings,
    pub(crate) stop: watch::Receiver<bool>,
    /// What its jobs reach with [`Job::data`](super::Job::data).
    pub(crate) data: JobData,
}

/// A worker of durable receivers' jobs, on a pool of backend `DB`: built by [`worker`], run by
/// [`run_until`](Worker::run_until) or [`spawn`](Worker::spawn).
///
/// It runs one apalis worker per queue (every queue of the registered durable receivers
/// unless [`queue`](Worker::queue) names some), each taking up to
/// [`concurrency`](Worker::concurrency) jobs at a time. Any number of processes, on any
/// number of machines, may run workers of the same queues on the same database: a job is
/// taken by one worker at a time (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: one writer).
///
/// A worker that dies (SIGKILL, power loss) holds its jobs until its lease ends: after
/// `heartbeat × missed` without a heartbeat, a live worker of the queue puts them back, and
/// they run again (at least once). A worker whose database fails (SQLite busy past its
/// timeout, a lost PostgreSQL connection) is restarted under a fresh name, after releasing
/// its jobs.
///
/// Values given with [`data`](Worker::data) (the application's pool, mail client, settings)
/// are what its jobs reach besides their event ([`Job::data`](super::Job::data)).
#[derive(Debug)]
#[must_use = "a worker does nothing until it is run"]
pub struct Worker<DB: DurableBackend> {
    pool: sqlx::Pool<DB>,
    queues: Vec<&'static str>,
    name: Option<String>,
    settings: Settings,
    data: JobData,
}

/// A worker of the durable receivers' jobs on `pool`, with the defaults: every queue of the
/// registered receivers, 4 jobs at a time per queue, a poll every second (besides the wake-ups
/// of commits in this process, and PostgreSQL's NOTIFY), a heartbeat every 5 s and a lease of
/// 3 heartbeats (15 s), 30 s for running jobs to finish at shutdown.
///
/// ```no_run
/// # async fn run(pool: sqlx::SqlitePool) -> Result<(), signals_orm::durable::DurableError> {
/// use signals_orm::durable;
///
/// durable::setup(&pool).await?;
/// // In the application's process (SQLite: nothing else to run)...
/// let worker = durable::worker(&pool).spawn();
/// // ... serve requests; their writes enqueue jobs this worker runs ...
/// let report = worker.shutdown().await?; // running jobs finish first
/// # let _ = report; Ok(()) }
/// ```
pub fn worker<DB: DurableBackend>(pool: &sqlx::Pool<DB>) -> Worker<DB> {
    Worker {
        pool: pool.clone(),
        queues: Vec::new(),
        name: None,
        settings: Settings::default(),
        data: JobData::default(),
    }
}

impl<DB: DurableBackend> Worker<DB> {
    /// Runs the jobs of `queue` (call once per queue); without it, every queue of the durable
    /// receivers registered when it starts.
    pub fn queue(mut self, queue: &'static str) -> Self {
        if !self.queues.contains(&queue) {
            self.queues.push(queue);
        }
        self
    }

    /// The prefix of its apalis worker names (`{prefix}-{random}:{queue}:{restart}`), which
    /// the jobs it holds show in [`JobRow::locked_by`](super::JobRow::locked_by). Default: the
    /// host name and the process id. A random part is always added: a worker releases the jobs
    /// held under its name when it restarts, so two workers of one name (replicas given the
    /// same prefix) would hand each other's running jobs back.
    pub fn name(mut self, prefix: &str) -> Self {
        self.name = Some(prefix.to_owned());
        self
    }

    /// Gives its jobs `value`, which a receiver reads with [`Job::data`](super::Job::data)`::<D>()`:
    /// the application's state that a job needs besides its event (the pool to write to, a
    /// mail client, an outbox folder, settings), as axum's `State` or apalis's `Data` give it
    /// to handlers. Call it once per type; a second value of one type replaces the first.
    ///
    /// The value belongs to this worker, not to the process: two workers in one process (two
    /// tenants' databases, two tests) each give their jobs their own. It is kept in an `Arc`
    /// and shared by every job and queue of the worker, and by its restarts: it needs neither
    /// `Clone` nor `Default`, only to be `Send + Sync + 'static`. Give `Arc<Mutex<..>>` for a
    /// value jobs change.
    ///
    /// A job whose receiver asks for a type the worker was not given fails with
    /// [`MissingData`](super::MissingData), naming the receiver, the event and the type; it is
    /// retried with its backoff (another worker of the queue may have it) and ends dead after
    /// its last attempt.
    ///
    /// ```no_run
    /// use std::path::PathBuf;
    ///
    /// use signals_orm::durable::{self, Job};
    /// use signals_orm::{BoxError, receiver};
    ///
    /// # #[derive(signals_orm::Model, sqlx::FromRow, serde::Serialize, serde::Deserialize, Clone, Debug)]
    /// # #[model(table = "customers")]
    /// # struct Customer { #[model(primary_key)] id: Option<i64>, email: String }
    /// /// What the shop's mail jobs need: not in the job, which holds only the event.
    /// struct Mail {
    ///     outbox: PathBuf,
    /// }
    ///
    /// #[receiver(post_save, sender = Customer, durable, queue = "mail")]
    /// async fn send_welcome(job: Job<Customer>) -> Result<(), BoxError> {
    ///     let mail = job.data::<Mail>()?;
    ///     let pool = job.data::<sqlx::SqlitePool>()?;
    ///     // ... write `mail.outbox/{event id}.eml`, note it in `pool` ...
    ///     # let _ = (mail, pool);
    ///     Ok(())
    /// }
    ///
    /// # async fn run(pool: sqlx::SqlitePool) -> Result<(), durable::DurableError> {
    /// let worker = durable::worker(&pool)
    ///     .data(Mail { outbox: PathBuf::from("outbox") })
    ///     .data(pool.clone())
    ///     .spawn();
    /// // ...
    /// worker.shutdown().await?;
    /// # Ok(()) }
    /// ```
    pub fn data<D: Send + Sync + 'static>(mut self, value: D) -> Self {
        self.data.insert(value);
        self
    }

    /// How many jobs of a queue it runs at once (default 4).
    ///
    /// # Panics
    ///
    /// If `jobs` is 0.
    pub fn concurrency(mut self, jobs: usize) -> Self {
        assert!(jobs > 0, "a worker runs at least one job at a time");
        self.settings.concurrency = jobs;
        self
    }

    /// How often it looks for due jobs when nothing woke it (default 1 s). Commits in this
    /// process and PostgreSQL's NOTIFY wake it at once; a job enqueued by another process on
    /// SQLite, or one whose backoff ended, waits for this poll.
    pub fn poll_interval(mut self, every: Duration) -> Self {
        self.settings.poll_interval = every;
        self
    }

    /// Its heartbeat, and how many missed ones end its lease: the jobs of a worker silent for
    /// `every × missed` go back to pending, for another worker (default 5 s × 3). Shorter
    /// re-runs a dead worker's jobs sooner; long-running jobs need a worker whose heartbeat
    /// keeps going, which it does while they run.
    ///
    /// # Panics
    ///
    /// If `missed` is 0.
    pub fn heartbeat(mut self, every: Duration, missed: usize) -> Self {
        assert!(missed > 0, "a lease lasts at least one heartbeat");
        self.settings.heartbeat = every;
        self.settings.missed_heartbeats = missed;
        self
    }

    /// How long running jobs may take to finish once it is asked to stop (default 30 s);
    /// jobs still running then are released (pending again, their attempt counted) and run
    /// again by another worker.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.settings.shutdown_timeout = timeout;
        self
    }

    /// Runs until `shutdown` completes, then stops gracefully: no new job is taken, running
    /// ones get [`shutdown_timeout`](Worker::shutdown_timeout) to finish, jobs fetched but not
    /// started and jobs still running at the timeout are released for other workers.
    ///
    /// Pass [`shutdown_signal()`](super::shutdown_signal) to stop on SIGTERM or Ctrl-C.
    ///
    /// # Errors
    ///
    /// [`DurableError::Config`] when there is no queue to run (no durable receiver registered
    /// and none named). A database error does not end it: that queue's worker is restarted.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<WorkerReport, DurableError> {
        let (stop, running) = self.start()?;
        shutdown.await;
        let _ = stop.send(true);
        running.await
    }

    /// Runs it on the tokio runtime; the handle stops it.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    #[must_use = "dropping the handle leaves the worker running until the runtime ends; call `shutdown` to stop it"]
    pub fn spawn(self) -> WorkerHandle {
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut stop_rx = stop_rx;
            self.run_until(async move {
                let _ = stop_rx.wait_for(|stop| *stop).await;
            })
            .await
        });
        WorkerHandle {
            stop: stop_tx,
            task,
        }
    }

    /// Starts a supervisor per queue; returns the stop switch and what ends when all stopped.
    fn start(
        self,
    ) -> Result<
        (
            watch::Sender<bool>,
            impl Future<Output = Result<WorkerReport, DurableError>>,
        ),
        DurableError,
    > {
        let queues = if self.queues.is_empty() {
            registry::receivers().queues()
        } else {
            self.queues
        };
        if queues.is_empty() {
            return Err(DurableError::Config(
                "no queue to run: no durable receiver is registered in this program, and none was named with `.queue(..)`".to_owned(),
            ));
        }
        let prefix = format!(
            "{}-{}",
            self.name.unwrap_or_else(default_prefix),
            random_suffix()
        );
        let (stop_tx, stop_rx) = watch::channel(false);
        let supervisors: Vec<_> = queues
            .iter()
            .map(|&queue| {
                tokio::spawn(supervise::<DB>(
                    self.pool.clone(),
                    queue,
                    prefix.clone(),
                    self.settings.clone(),
                    stop_rx.clone(),
                    self.data.clone(),
                ))
            })
            .collect();
        // Each worker also moves committed jobs from the outbox into apalis's queue.
        let relay = tokio::spawn(supervise_relay(
            self.pool.clone(),
            self.settings.poll_interval,
            stop_rx.clone(),
        ));
        tracing::info!(worker = %prefix, queues = ?queues, "durable worker started");
        let running = async move {
            let mut restarts = 0;
            for supervisor in supervisors {
                restarts += supervisor
                    .await
                    .map_err(|e| DurableError::store("running a queue's worker", e.to_string()))?;
            }
            relay
                .await
                .map_err(|e| DurableError::store("running the outbox relay", e.to_string()))?;
            tracing::info!(worker = %prefix, restarts, "durable worker stopped");
            Ok(WorkerReport { queues, restarts })
        };
        Ok((stop_tx, running))
    }
}

/// Runs the worker's relay until `stop`, restarting it if it panics: a worker whose relay
/// stopped would run its queues while committed jobs wait in the outbox.
async fn supervise_relay<DB: DurableBackend>(
    pool: sqlx::Pool<DB>,
    every: Duration,
    stop: watch::Receiver<bool>,
) {
    loop {
        let run = tokio::spawn(super::outbox::run_relay(pool.clone(), every, stop.clone()));
        match run.await {
            Ok(()) => return,
            Err(error) => {
                tracing::error!(%error, "durable relay stopped unexpectedly; restarting it");
                tokio::time::sleep(every).await;
            }
        }
    }
}

/// A worker started by [`Worker::spawn`].
#[derive(Debug)]
pub struct WorkerHandle {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<WorkerReport, DurableError>>,
}

impl WorkerHandle {
    /// Stops it gracefully (as [`Worker::run_until`] does) and waits until it stopped.
    ///
    /// # Errors
    ///
    /// As [`Worker::run_until`], or when its task panicked.
    pub async fn shutdown(self) -> Result<WorkerReport, DurableError> {
        let _ = self.stop.send(true);
        self.task
            .await
            .map_err(|e| DurableError::store("stopping the worker", e.to_string()))?
    }
}

/// What a worker did, when it stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerReport {
    /// The queues it ran.
    pub queues: Vec<&'static str>,
    /// How many times a queue's worker was restarted after a database error.
    pub restarts: usize,
}

/// A future that completes on SIGTERM or Ctrl-C (SIGINT): what a worker program passes to
/// [`Worker::run_until`], so that `kill <pid>` (and an orchestrator's stop) lets running jobs
/// finish.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn default_prefix() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".to_owned());
    format!("{host}-{}", std::process::id())
}

/// Six random characters (the random end of a ULID), so that no two workers share a name.
fn random_suffix() -> String {
    let id = ulid::Ulid::generate().to_string();
    id[id.len() - 6..].to_owned()
}

/// Runs the worker of `queue`, restarting it under a fresh name when it fails, until `stop`.
/// Returns how many times it restarted.
async fn supervise<DB: DurableBackend>(
    pool: sqlx::Pool<DB>,
    queue: &'static str,
    prefix: String,
    settings: Settings,
    mut stop: watch::Receiver<bool>,
    data: JobData,
) -> usize {
    let mut restarts = 0;
    loop {
        let name = format!("{prefix}:{queue}:{restarts}");
        let worker = QueueWorker {
            pool: pool.clone(),
            queue,
            name: name.clone(),
            settings: settings.clone(),
            stop: stop.clone(),
            data: data.clone(),
        };
        match DB::run_once(worker).await {
            Ok(()) if *stop.borrow() => return restarts,
            Ok(()) => tracing::warn!(worker = %name, "durable worker ended by itself; restarting"),
            Err(error) => {
                tracing::error!(worker = %name, error = %error_text(&*error), "durable worker failed; its jobs are released and it restarts");
                // A row apalis cannot decode (not JSON) ends its worker; released, it would be
                // fetched first again, and the queue would stall in a restart loop (burning the
                // attempts of the jobs fetched with it). Kept dead instead; a failure here leaves
                // it to `release`, as before.
                match DB::kill_unreadable(&pool, &name).await {
                    Ok(ids) => {
                        for id in ids {
                            tracing::warn!(worker = %name, job_id = %id, "durable worker: a job whose document is not JSON (apalis cannot read it) is kept dead");
                        }
                    }
                    Err(error) => {
                        tracing::warn!(worker = %name, error = %error, "durable worker: looking for jobs that are not JSON failed");
                    }
                }
                if let Err(error) = DB::release(&pool, &name).await {
                    tracing::warn!(worker = %name, error = %error, "durable worker: releasing its jobs failed; they come back when its lease ends");
                }
            }
        }
        restarts += 1;
        tokio::select! {
            () = tokio::time::sleep(settings.restart_delay) => {}
            _ = stop.wait_for(|stop| *stop) => return restarts,
        }
    }
}

/// An error and its causes, on one line.
pub(crate) fn error_text(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

static SUCCEEDED: AtomicU64 = AtomicU64::new(0);
static RETRIED: AtomicU64 = AtomicU64::new(0);
static DEAD: AtomicU64 = AtomicU64::new(0);
static RUNNING: AtomicU64 = AtomicU64::new(0);

/// What this process's workers did since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metrics {
    /// Jobs that ran successfully.
    pub succeeded: u64,
    /// Attempts that failed with another attempt to come.
    pub retried: u64,
    /// Jobs kept as dead: failed on their last attempt, or unreadable.
    pub dead: u64,
    /// Jobs running now.
    pub running: u64,
}

/// This process's workers' counters (the database's view of every process is [`counts`](super::counts)).
#[must_use]
pub fn metrics() -> Metrics {
    Metrics {
        succeeded: SUCCEEDED.load(Ordering::Relaxed),
        retried: RETRIED.load(Ordering::Relaxed),
        dead: DEAD.load(Ordering::Relaxed),
        running: RUNNING.load(Ordering::Relaxed),
    }
}

/// An error that tells apalis not to retry: the job is kept, as `Killed`.
fn abort(message: String) -> BoxDynError {
    Box::new(AbortError::new(message))
}

/// Runs one job: apalis's handler of every durable queue. The job's document is read here,
/// not by apalis's codec, so that a document that does not read fails that job (kept, with
/// its error) instead of stopping the worker.
#[doc(hidden)]
pub async fn handle<DB: DurableBackend>(
    args: serde_json::Value,
    attempt: Attempt,
    id: TaskId,
    worker: Data<Arc<QueueWorker<DB>>>,
) -> Result<(), BoxDynError> {
    let attempt = u32::try_from(attempt.current()).unwrap_or(u32::MAX).max(1);
    let job_id = id.to_string();
    let envelope = match serde_json::from_value::<Envelope>(args) {
        Ok(envelope) if envelope.v == WIRE_VERSION => envelope,
        Ok(envelope) => {
            DEAD.fetch_add(1, Ordering::Relaxed);
            return Err(abort(format!(
                "job {job_id} of durable receiver `{}` is in format version {}; this worker reads version {WIRE_VERSION}",
                envelope.receiver, envelope.v
            )));
        }
        Err(error) => {
            DEAD.fetch_add(1, Ordering::Relaxed);
            tracing::error!(job_id, queue = worker.queue, error = %error, "durable job kept as dead: not a durable receiver's job");
            return Err(abort(format!(
                "job {job_id} on queue `{}` is not a durable receiver's job: {error}",
                worker.queue
            )));
        }
    };
    let span = tracing::info_span!(
        "durable_job",
        receiver = %envelope.receiver,
        event_id = %envelope.event_id,
        attempt,
        max_attempts = envelope.max_attempts,
        queue = worker.queue,
        signal = %envelope.signal,
        sender = %envelope.sender,
    );
    run(&worker, envelope, attempt, &job_id)
        .instrument(span)
        .await
}

async fn run<DB: DurableBackend>(
    worker: &QueueWorker<DB>,
    envelope: Envelope,
    attempt: u32,
    job_id: &str,
) -> Result<(), BoxDynError> {
    let failure = Failure {
        receiver: envelope.receiver.clone(),
        event_id: envelope.event_id.clone(),
        attempt,
        max_attempts: envelope.max_attempts,
        backoff: envelope.backoff.into(),
    };
    let Some(entry) = registry::find(&envelope.receiver) else {
        let why = format!(
            "no durable receiver `{}` is registered in this worker's program",
            envelope.receiver
        );
        return failure.handle(worker, job_id, why).await;
    };
    RUNNING.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let raw = RawJob {
        envelope,
        attempt,
        data: worker.data.clone(),
    };
    let outcome = AssertUnwindSafe(entry.run(raw)).catch_unwind().await;
    RUNNING.fetch_sub(1, Ordering::Relaxed);
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    match outcome {
        Ok(Ok(())) => {
            SUCCEEDED.fetch_add(1, Ordering::Relaxed);
            tracing::info!(elapsed_ms, "durable job done");
            Ok(())
        }
        Ok(Err(JobError::Decode(message))) => {
            DEAD.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %message, "durable job kept as dead: its payload does not read");
            Err(abort(message))
        }
        Ok(Err(JobError::Failed(error))) => {
            failure.handle(worker, job_id, error_text(&*error)).await
        }
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_owned());
            failure
                .handle(worker, job_id, format!("panicked: {message}"))
                .await
        }
    }
}

/// A failed attempt, and what follows it.
struct Failure {
    receiver: String,
    event_id: String,
    attempt: u32,
    max_attempts: u32,
    backoff: Backoff,
}

impl Failure {
    /// Schedules the next attempt after the backoff (the job's `run_at`), or leaves the job
    /// dead after its last one; returns the error apalis records as the job's last result.
    async fn handle<DB: DurableBackend>(
        self,
        worker: &QueueWorker<DB>,
        job_id: &str,
        why: String,
    ) -> Result<(), BoxDynError> {
        let message = format!(
            "durable receiver `{}` failed on attempt {} of {} (event {}): {why}",
            self.receiver, self.attempt, self.max_attempts, self.event_id
        );
        if self.attempt < self.max_attempts {
            let delay = self.backoff.after(self.attempt);
            if !delay.is_zero()
                && let Err(error) = DB::defer(&worker.pool, job_id, delay).await
            {
                tracing::warn!(error = %error, "durable job: delaying its retry failed; it is retried at once");
            }
            RETRIED.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                error = %message,
                retry_in_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "durable job failed; retried"
            );
        } else {
            DEAD.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %message, "durable job failed on its last attempt; kept as dead");
        }
        Err(message.into())
    }
}
