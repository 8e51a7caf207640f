//! Failures and warnings that no caller gets back as a `Result`: a failed `on_commit` callback
//! after `save(&pool)`, a failed ROLLBACK, a receiver error inside `send_robust`, a program that
//! links no receiver at all. One rule says where they go, here and nowhere else.
//!
//! The rule is Python logging's "last resort" handler, which is why a Django newcomer sees
//! `send_robust` errors without configuring anything: when the program installed a `tracing`
//! subscriber, the report is a `tracing` event and nothing else (the program chose where its
//! logs go); when it installed none, the event would vanish, so the report is also one line on
//! stderr.

use std::error::Error;
use std::fmt;

/// The `tracing` target of every report, whichever crate makes it: one name to filter on
/// (`RUST_LOG=signals=warn`), like Django's `django.dispatch` logger.
const TARGET: &str = "signals";

/// How serious a report is: the `tracing` level, and the word the stderr line starts with.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Something failed (`tracing` ERROR).
    Error,
    /// Something is probably wrong (`tracing` WARN).
    Warning,
}

/// One report: a fixed message, the receiver and signal it concerns if any, and the error.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct Report<'a> {
    /// ERROR or WARN.
    pub severity: Severity,
    /// What happened, as one sentence without a final period.
    pub message: &'a str,
    /// The receiver concerned, a `tracing` field.
    pub receiver: Option<&'static str>,
    /// The signal concerned, a `tracing` field.
    pub signal: Option<&'static str>,
    /// The error, appended to the stderr line with its sources, each after `": "`.
    pub error: Option<&'a (dyn Error + 'static)>,
}

impl<'a> Report<'a> {
    /// An ERROR report of `error` with `message`.
    #[must_use]
    pub fn error(message: &'a str, error: &'a (dyn Error + 'static)) -> Self {
        Report {
            severity: Severity::Error,
            message,
            receiver: None,
            signal: None,
            error: Some(error),
        }
    }

    /// A WARN report.
    #[must_use]
    pub fn warning(message: &'a str) -> Self {
        Report {
            severity: Severity::Warning,
            message,
            receiver: None,
            signal: None,
            error: None,
        }
    }

    /// Adds the error that caused a warning.
    #[must_use]
    pub fn caused_by(mut self, error: &'a (dyn Error + 'static)) -> Self {
        self.error = Some(error);
        self
    }

    /// Names the receiver and the signal as `tracing` fields (the error's text names them on
    /// stderr).
    #[must_use]
    pub fn about(mut self, receiver: &'static str, signal: &'static str) -> Self {
        self.receiver = Some(receiver);
        self.signal = Some(signal);
        self
    }

    /// Sends the report where the rule says: a `tracing` event, and the stderr line when no
    /// subscriber is installed.
    pub fn emit(self) {
        let Report {
            severity,
            message,
            receiver,
            signal,
            error,
        } = self;
        match severity {
            Severity::Error => {
                tracing::error!(target: TARGET, receiver, signal, error, "{message}");
            }
            Severity::Warning => {
                tracing::warn!(target: TARGET, receiver, signal, error, "{message}");
            }
        }
        if no_subscriber() {
            // `eprintln!`, not a write to `io::stderr()`: the test harness captures it.
            eprintln!("{self}");
        }
    }
}

/// The stderr line: `signals: error: <message>: <error>: <its source>...` (or
/// `signals: warning: ...`): `SendError` keeps the receiver's own error as its source.
impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "signals: {word}: {}", self.message)?;
        crate::error::write_causes(f, self.error, ": ")
    }
}

impl fmt::Debug for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Report").field(&self.to_string()).finish()
    }
}

/// Whether the current thread sees no `tracing` subscriber, neither a global one nor a scoped
/// one (`tracing::subscriber::with_default`).
fn no_subscriber() -> bool {
    tracing::dispatcher::get_default(tracing::Dispatch::is::<tracing::subscriber::NoSubscriber>)
}

#[cfg(test)]
mod tests {
    use super::Report;

    #[test]
    fn the_stderr_line_names_severity_message_and_error() {
        let error = std::io::Error::other("smtp down");
        assert_eq!(
            Report::error("on_commit callback failed after COMMIT", &error).to_string(),
            "signals: error: on_commit callback failed after COMMIT: smtp down"
        );
        let chained = crate::SendError::Receiver {
            signal: "post_save",
            sender: "app::User",
            receiver: "app::welcome",
            source: "smtp down".into(),
        };
        assert_eq!(
            Report::error("on_commit callback failed after COMMIT", &chained).to_string(),
            "signals: error: on_commit callback failed after COMMIT: receiver `app::welcome` of \
             signal `post_save` (sender `app::User`) failed: smtp down"
        );
        assert_eq!(
            Report::warning("nothing linked").to_string(),
            "signals: warning: nothing linked"
        );
    }

    /// A subscriber that wants nothing: installed all the same.
    struct Quiet;

    impl tracing::Subscriber for Quiet {
        fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
            false
        }
        fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
            tracing::span::Id::from_u64(1)
        }
        fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
        fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
        fn event(&self, _: &tracing::Event<'_>) {}
        fn enter(&self, _: &tracing::span::Id) {}
        fn exit(&self, _: &tracing::span::Id) {}
    }

    #[test]
    fn a_scoped_subscriber_counts_as_installed() {
        assert!(super::no_subscriber(), "no test of this crate installs one");
        tracing::subscriber::with_default(Quiet, || assert!(!super::no_subscriber()));
        assert!(super::no_subscriber(), "the scope ended");
    }
}
