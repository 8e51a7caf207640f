//! The errors of the durable API.

use std::error::Error;
use std::fmt;

use signals_core::{BoxError, SendError};

/// What went wrong in the durable API (enqueueing from [`send`](super::send), running workers,
/// reading the queue).
///
/// Its `Display` says what was being done (for a failed receiver, as the dispatcher says it:
/// the receiver, the signal and the sender); the cause is its [`source`](Error::source).
#[derive(Debug)]
#[non_exhaustive]
pub enum DurableError {
    /// A receiver of the custom signal failed during [`send`](super::send); nothing was
    /// enqueued.
    Send(SendError),
    /// The job store (apalis's tables, the database) failed.
    Store {
        /// What was being done.
        what: &'static str,
        /// The cause.
        source: BoxError,
    },
    /// The worker cannot run as configured (no queue to run).
    Config(String),
}

impl DurableError {
    pub(crate) fn store(what: &'static str, source: impl Into<BoxError>) -> Self {
        DurableError::Store {
            what,
            source: source.into(),
        }
    }
}

impl fmt::Display for DurableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The send's error names the receiver, the signal and the sender.
            DurableError::Send(error) => fmt::Display::fmt(error, f),
            DurableError::Store { what, .. } => write!(f, "durable job store: {what} failed"),
            DurableError::Config(why) => write!(f, "durable worker: {why}"),
        }
    }
}

impl Error for DurableError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            DurableError::Send(error) => error.source(),
            DurableError::Store { source, .. } => Some(&**source),
            DurableError::Config(_) => None,
        }
    }
}
