//! What a durable receiver's jobs are enqueued with: queue, attempts, backoff, delay, priority.

use std::time::Duration;

/// How a durable receiver's jobs are enqueued and retried.
///
/// The defaults (`JobOptions::new()`): queue `"default"`, 5 attempts, exponential backoff from
/// 1 second doubling up to 5 minutes, no delay, priority 0. Every method is `const`, so options
/// can live in a `static`:
///
/// ```
/// use std::time::Duration;
/// use signals_orm::durable::{Backoff, JobOptions};
///
/// const MAIL: JobOptions = JobOptions::new()
///     .queue("mail")
///     .max_attempts(8)
///     .backoff(Backoff::Fixed(Duration::from_secs(30)))
///     .priority(10);
/// assert_eq!(MAIL.queue_name(), "mail");
/// assert_eq!(MAIL.retry_delay(1), Some(Duration::from_secs(30)));
/// assert_eq!(MAIL.retry_delay(8), None); // the 8th attempt was the last
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobOptions {
    queue: &'static str,
    max_attempts: u32,
    backoff: Backoff,
    delay: Duration,
    priority: u16,
}

/// How long a failed job waits before its next attempt. The wait is written to the job's row
/// (its `run_at`), so it survives a worker's restart and is shared by every worker.
///
/// SQLite stores `run_at` in whole seconds: a wait is rounded up to the next second there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backoff {
    /// Retry at once (the next poll of a worker of the queue).
    None,
    /// The same wait after every failure.
    Fixed(Duration),
    /// `first` after the first failure, doubled after each further one, at most `max`.
    Exponential {
        /// The wait after the first failure.
        first: Duration,
        /// The longest wait.
        max: Duration,
    },
}

impl Backoff {
    /// The wait after the `failed_attempt`-th attempt failed (1 for the first).
    #[must_use]
    pub fn after(&self, failed_attempt: u32) -> Duration {
        match *self {
            Backoff::None => Duration::ZERO,
            Backoff::Fixed(wait) => wait,
            Backoff::Exponential { first, max } => {
                let doublings = failed_attempt.saturating_sub(1).min(31);
                first
                    .checked_mul(1u32 << doublings)
                    .map_or(max, |wait| wait.min(max))
            }
        }
    }
}

impl Default for JobOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl JobOptions {
    /// The defaults: queue `"default"`, 5 attempts, exponential backoff from 1 s to 5 min, no
    /// delay, priority 0.
    #[must_use]
    pub const fn new() -> Self {
        JobOptions {
            queue: "default",
            max_attempts: 5,
            backoff: Backoff::Exponential {
                first: Duration::from_secs(1),
                max: Duration::from_mins(5),
            },
            delay: Duration::ZERO,
            priority: 0,
        }
    }

    /// The queue (apalis's `job_type`) the jobs go to: a worker runs the queues it is given,
    /// so slow receivers can have workers of their own.
    ///
    /// # Panics
    ///
    /// If `queue` is empty (at compile time in a `const`).
    #[must_use]
    pub const fn queue(mut self, queue: &'static str) -> Self {
        assert!(!queue.is_empty(), "a durable queue name cannot be empty");
        self.queue = queue;
        self
    }

    /// How many times a job runs at most, the first run included (at least 1). A job whose
    /// last attempt failed is kept as dead, with its last error, until
    /// [`retry`](crate::durable::retry) runs it again.
    ///
    /// # Panics
    ///
    /// If `attempts` is 0.
    #[must_use]
    pub const fn max_attempts(mut self, attempts: u32) -> Self {
        assert!(
            attempts > 0,
            "a durable job runs at least once: max_attempts >= 1"
        );
        self.max_attempts = attempts;
        self
    }

    /// The wait between a failed attempt and the next.
    #[must_use]
    pub const fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How long after the COMMIT the first attempt may run (rounded up to whole seconds).
    #[must_use]
    pub const fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Higher runs first among the jobs of a queue that are due (default 0).
    #[must_use]
    pub const fn priority(mut self, priority: u16) -> Self {
        self.priority = priority;
        self
    }

    /// The queue.
    #[must_use]
    pub const fn queue_name(&self) -> &'static str {
        self.queue
    }

    /// The most attempts a job gets.
    #[must_use]
    pub const fn attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The backoff.
    #[must_use]
    pub const fn backoff_policy(&self) -> Backoff {
        self.backoff
    }

    /// The delay before the first attempt.
    #[must_use]
    pub const fn first_delay(&self) -> Duration {
        self.delay
    }

    /// The priority.
    #[must_use]
    pub const fn priority_value(&self) -> u16 {
        self.priority
    }

    /// The wait before the attempt that follows failed attempt `failed_attempt` (1 for the
    /// first), or `None` when that was the last one.
    #[must_use]
    pub fn retry_delay(&self, failed_attempt: u32) -> Option<Duration> {
        (failed_attempt < self.max_attempts).then(|| self.backoff.after(failed_attempt))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_backoff_doubles_up_to_its_cap() {
        let backoff = Backoff::Exponential {
            first: Duration::from_secs(1),
            max: Duration::from_secs(10),
        };
        let waits: Vec<u64> = (1..=6).map(|n| backoff.after(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
        assert_eq!(backoff.after(200), Duration::from_secs(10));
    }

    #[test]
    fn the_last_attempt_has_no_retry() {
        let options = JobOptions::new().max_attempts(3).backoff(Backoff::None);
        assert_eq!(options.retry_delay(1), Some(Duration::ZERO));
        assert_eq!(options.retry_delay(2), Some(Duration::ZERO));
        assert_eq!(options.retry_delay(3), None);
    }
}
