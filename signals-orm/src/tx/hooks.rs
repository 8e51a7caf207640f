//! The `on_commit` queue's entries and how they run after COMMIT.

use std::panic::AssertUnwindSafe;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use signals_core::__private::{Report, receiver_outcome};
use signals_core::BoxError;

use super::CommitReport;

/// Who queued an `on_commit` callback: shown in errors and traces.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HookLabel {
    pub(crate) signal: &'static str,
    pub(crate) sender: &'static str,
    pub(crate) receiver: &'static str,
}

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
}

pub(crate) async fn run_hooks(hooks: Vec<Hook>) -> CommitReport {
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
        Report::error("on_commit callback failed after COMMIT", &error)
            .about(label.receiver, label.signal)
            .emit();
        report.failures.push(error);
    }
    report
}
