//! The `on_commit` queue's entries and how they run after COMMIT.

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use signals_core::__private::{Report, receiver_outcome};
use signals_core::BoxError;

use super::CommitReport;

/// An `on_commit` callback queued in a transaction, as [`Tx::on_commit_queue`] lists it: who
/// queued it. Also what errors and traces name.
///
/// Its `Display` is one line, `signal[Sender] receiver`, the sender without its module path
/// (`post_save[User] app::send_welcome`; `on_commit[-] app::checkout::{{closure}}` for a
/// callback queued with [`Tx::on_commit`]), for
/// [`assert_lines`](crate::testing::assert_lines).
///
/// [`Tx::on_commit_queue`]: crate::Tx::on_commit_queue
/// [`Tx::on_commit`]: crate::Tx::on_commit
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct OnCommitCallback {
    /// The signal whose `on_commit` receiver queued it (`post_save`), or `on_commit` for
    /// [`Tx::on_commit`](crate::Tx::on_commit).
    pub signal: &'static str,
    /// The sender's type path (the model, or the relation for `m2m_changed`), `-` for
    /// [`Tx::on_commit`](crate::Tx::on_commit).
    pub sender: &'static str,
    /// The receiver's path, or the closure's type name.
    pub receiver: &'static str,
}

impl std::fmt::Display for OnCommitCallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sender = self.sender.rsplit("::").next().unwrap_or(self.sender);
        write!(f, "{}[{sender}] {}", self.signal, self.receiver)
    }
}

/// The name the crate's own code uses.
pub(crate) type HookLabel = OnCommitCallback;

type HookFn = Box<dyn FnOnce() -> BoxFuture<'static, Result<(), BoxError>> + Send>;

/// A queued `on_commit` callback.
#[doc(hidden)]
pub struct Hook {
    label: HookLabel,
    run: HookFn,
}

impl Hook {
    pub(crate) fn new(label: HookLabel, run: HookFn) -> Self {
        Hook { label, run }
    }

    pub(crate) fn label(&self) -> HookLabel {
        self.label
    }
}

/// Runs `hooks` in order; `when` says when in the report of a failure ("after COMMIT").
pub(crate) async fn run_hooks(hooks: Vec<Hook>, when: &'static str) -> CommitReport {
    let mut report = CommitReport {
        ran: hooks.len(),
        failures: Vec::new(),
    };
    for Hook { label, run } in hooks {
        let outcome = AssertUnwindSafe(async move { run().await })
            .catch_unwind()
            .await;
        let Err(error) = receiver_outcome(label.signal, label.sender, label.receiver, outcome)
        else {
            tracing::debug!(
                receiver = label.receiver,
                signal = label.signal,
                phase = "on_commit",
                outcome = "ok"
            );
            continue;
        };
        // `save(&pool)` commits for the caller and cannot return this: the report is the only
        // trace, so it reaches stderr when no tracing subscriber is installed.
        Report::error(when, &error)
            .about(label.receiver, label.signal)
            .emit();
        report.failures.push(error);
    }
    report
}
