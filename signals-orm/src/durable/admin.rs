//! Looking at the queue: jobs by state ([`jobs`]), counts per queue ([`counts`]), and running a
//! dead job again ([`retry`]).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::error::DurableError;
use super::store::DurableBackend;

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum JobState {
    /// Waiting for a worker (possibly for its delay).
    Pending,
    /// Taken by a worker (fetched or running).
    Running,
    /// Failed, and waiting for its next attempt (after its backoff).
    Retrying,
    /// Failed on its last attempt, or could not be read: kept with its last error until
    /// [`retry`] runs it again.
    Dead,
    /// Ran successfully.
    Done,
}

impl JobState {
    /// Every state, in the order above.
    pub const ALL: [JobState; 5] = [
        JobState::Pending,
        JobState::Running,
        JobState::Retrying,
        JobState::Dead,
        JobState::Done,
    ];

    /// Its lowercase name (`dead`).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Retrying => "retrying",
            JobState::Dead => "dead",
            JobState::Done => "done",
        }
    }

    /// The state of an apalis row with `status`, and whether its attempts are used up.
    fn of(status: &str, exhausted: bool) -> JobState {
        match status {
            "Pending" => JobState::Pending,
            "Queued" | "Running" => JobState::Running,
            "Failed" if !exhausted => JobState::Retrying,
            "Done" => JobState::Done,
            // `Failed` with no attempt left, `Killed` (a job that cannot be read).
            _ => JobState::Dead,
        }
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The SQL condition (on apalis's columns, the same on both backends) of a state.
pub(crate) fn state_sql(state: Option<JobState>) -> &'static str {
    match state {
        None => "TRUE",
        Some(JobState::Pending) => "status = 'Pending'",
        Some(JobState::Running) => "status IN ('Queued', 'Running')",
        Some(JobState::Retrying) => "(status = 'Failed' AND attempts < max_attempts)",
        Some(JobState::Dead) => {
            "(status = 'Killed' OR (status = 'Failed' AND attempts >= max_attempts))"
        }
        Some(JobState::Done) => "status = 'Done'",
    }
}

/// Which jobs [`jobs`] lists: every queue and state by default, at most 100, oldest due first.
///
/// ```
/// use signals_orm::durable::{JobFilter, JobState};
///
/// let dead_mail = JobFilter::new().queue("mail").state(JobState::Dead).limit(20);
/// # let _ = dead_mail;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFilter {
    queue: Option<String>,
    state: Option<JobState>,
    limit: u32,
}

impl Default for JobFilter {
    fn default() -> Self {
        Self::new()
    }
}

impl JobFilter {
    /// Every queue and state, 100 jobs at most.
    #[must_use]
    pub fn new() -> Self {
        JobFilter {
            queue: None,
            state: None,
            limit: 100,
        }
    }

    /// Only the jobs of `queue`.
    #[must_use]
    pub fn queue(mut self, queue: &str) -> Self {
        self.queue = Some(queue.to_owned());
        self
    }

    /// Only the jobs in `state`.
    #[must_use]
    pub fn state(mut self, state: JobState) -> Self {
        self.state = Some(state);
        self
    }

    /// At most `limit` jobs.
    #[must_use]
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = limit;
        self
    }

    pub(crate) fn queue_filter(&self) -> Option<&str> {
        self.queue.as_deref()
    }

    pub(crate) fn state_filter(&self) -> Option<JobState> {
        self.state
    }

    pub(crate) fn limit_value(&self) -> u32 {
        self.limit
    }
}

/// One job, as [`jobs`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobRow {
    /// The job's id, also its event id (the `event_id` its receiver gets).
    pub id: String,
    /// Its queue.
    pub queue: String,
    /// Where it is.
    pub state: JobState,
    /// Attempts made so far (a run cut by a crash or a shutdown counts).
    pub attempts: u32,
    /// The most attempts it gets.
    pub max_attempts: u32,
    /// When it is (or was) due.
    pub run_at: SystemTime,
    /// Its last error, for a job that failed (`Retrying`, `Dead`, or released).
    pub last_error: Option<String>,
    /// The worker holding it, while `Running`.
    pub locked_by: Option<String>,
    /// The durable receiver it is for; `None` for a job that is not a durable receiver's.
    pub receiver: Option<String>,
    /// The signal and sender of its event (`post_save[Order]`).
    pub event: Option<String>,
}

impl fmt::Display for JobRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:<8} {} {} attempts {}/{}",
            self.id,
            self.state.as_str(),
            self.queue,
            self.receiver.as_deref().unwrap_or("?"),
            self.attempts,
            self.max_attempts
        )?;
        if let Some(event) = &self.event {
            write!(f, " {event}")?;
        }
        if let Some(error) = &self.last_error {
            write!(f, " last error: {error}")?;
        }
        Ok(())
    }
}

/// A job row as both backends read it.
pub(crate) struct RawRow {
    pub id: String,
    pub queue: String,
    pub status: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_at: i64,
    pub last_result: Option<String>,
    pub lock_by: Option<String>,
    pub job: Option<String>,
}

impl RawRow {
    pub(crate) fn into_row(self) -> JobRow {
        let exhausted = self.attempts >= self.max_attempts;
        let doc: Option<serde_json::Value> = self
            .job
            .as_deref()
            .and_then(|j| serde_json::from_str(j).ok());
        let text = |key: &str| {
            doc.as_ref()
                .and_then(|d| d.get(key))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        };
        let receiver = text("receiver");
        let event = text("signal").map(|signal| {
            let sender = text("sender").unwrap_or_default();
            format!("{signal}[{sender}]")
        });
        let last_error = self
            .last_result
            .as_deref()
            .and_then(|r| serde_json::from_str::<serde_json::Value>(r).ok())
            .and_then(|r| r.get("Err").cloned())
            .map(|e| e.as_str().map_or_else(|| e.to_string(), str::to_owned));
        JobRow {
            id: self.id,
            queue: self.queue,
            state: JobState::of(&self.status, exhausted),
            attempts: u32::try_from(self.attempts).unwrap_or(0),
            max_attempts: u32::try_from(self.max_attempts).unwrap_or(0),
            run_at: UNIX_EPOCH + Duration::from_secs(u64::try_from(self.run_at).unwrap_or(0)),
            last_error,
            locked_by: self.lock_by,
            receiver,
            event,
        }
    }
}

/// How many jobs a queue has in each state, as [`counts`] gives them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueCount {
    /// The queue.
    pub queue: String,
    /// Waiting for a worker.
    pub pending: u64,
    /// Taken by a worker.
    pub running: u64,
    /// Waiting for another attempt.
    pub retrying: u64,
    /// Kept after their last attempt failed.
    pub dead: u64,
    /// Ran successfully.
    pub done: u64,
}

impl QueueCount {
    pub(crate) fn add(
        counts: &mut Vec<QueueCount>,
        queue: String,
        status: &str,
        exhausted: bool,
        n: i64,
    ) {
        let at = if let Some(at) = counts.iter().position(|c| c.queue == queue) {
            at
        } else {
            counts.push(QueueCount {
                queue,
                ..QueueCount::default()
            });
            counts.len() - 1
        };
        let count = &mut counts[at];
        let n = u64::try_from(n).unwrap_or(0);
        match JobState::of(status, exhausted) {
            JobState::Pending => count.pending += n,
            JobState::Running => count.running += n,
            JobState::Retrying => count.retrying += n,
            JobState::Dead => count.dead += n,
            JobState::Done => count.done += n,
        }
    }
}

impl fmt::Display for QueueCount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "queue {}: {} pending, {} running, {} retrying, {} dead, {} done",
            self.queue, self.pending, self.running, self.retrying, self.dead, self.done
        )
    }
}

/// The jobs `filter` selects, oldest due first: what is pending, running, waiting for a retry,
/// dead (with its last error), or done.
///
/// # Errors
///
/// The database's, as [`DurableError::Store`].
///
/// # Example
///
/// ```no_run
/// # async fn show(pool: &sqlx::SqlitePool) -> Result<(), signals_orm::durable::DurableError> {
/// use signals_orm::durable::{self, JobFilter, JobState};
///
/// for job in durable::jobs(pool, &JobFilter::new().state(JobState::Dead)).await? {
///     println!("{job}"); // id, state, queue, receiver, attempts, last error
/// }
/// # Ok(()) }
/// ```
pub async fn jobs<DB: DurableBackend>(
    pool: &sqlx::Pool<DB>,
    filter: &JobFilter,
) -> Result<Vec<JobRow>, DurableError> {
    DB::list(pool, filter)
        .await
        .map_err(|e| DurableError::store("listing jobs", e))
}

/// Jobs per queue and state, queues in the order the database gives them.
///
/// # Errors
///
/// The database's, as [`DurableError::Store`].
pub async fn counts<DB: DurableBackend>(
    pool: &sqlx::Pool<DB>,
) -> Result<Vec<QueueCount>, DurableError> {
    let mut counts = DB::counts(pool)
        .await
        .map_err(|e| DurableError::store("counting jobs", e))?;
    counts.sort_by(|a, b| a.queue.cmp(&b.queue));
    Ok(counts)
}

/// Runs a dead job again: it becomes pending, due now, with all its attempts. Returns `false`
/// when no dead job has that id (it is not dead, or does not exist).
///
/// # Errors
///
/// The database's, as [`DurableError::Store`].
pub async fn retry<DB: DurableBackend>(
    pool: &sqlx::Pool<DB>,
    job_id: &str,
) -> Result<bool, DurableError> {
    DB::retry(pool, job_id)
        .await
        .map_err(|e| DurableError::store("re-running a dead job", e))
}
