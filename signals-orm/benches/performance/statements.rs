//! The statements sqlx runs, as its query log reports them: how the smoke test checks that
//! workload 7's raw side runs the ORM's statements (the ORM builds those texts per call and
//! does not expose them, as it does the fixed texts of workloads 2-5).
//!
//! sqlx reports every statement it executes as a DEBUG event of target `sqlx::query` (its
//! first four words as `summary`, the whole text as `db.statement` when longer), from the
//! thread that runs it (sqlx's SQLite worker threads too). [`install`] makes a subscriber that
//! keeps those texts, and only those, the process's global one. Only the smoke test installs it:
//! once a subscriber wants DEBUG events, every send of a signal pays for its tracing spans, so a
//! measuring run never does.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};

/// sqlx's target for its statement log.
const TARGET: &str = "sqlx::query";

/// Keeps the text of each statement sqlx reports while recording.
struct Recorder {
    recording: AtomicBool,
    statements: Mutex<Vec<String>>,
    next_span: AtomicU64,
}

static RECORDER: Recorder = Recorder {
    recording: AtomicBool::new(false),
    statements: Mutex::new(Vec::new()),
    next_span: AtomicU64::new(1),
};

/// A statement's text from the fields of its event.
#[derive(Default)]
struct Text {
    summary: String,
    statement: String,
}

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => value.clone_into(&mut self.summary),
            "db.statement" => value.clone_into(&mut self.statement),
            _ => {}
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        // Text fields normally arrive through `record_str`; this is the fallback.
        if matches!(field.name(), "summary" | "db.statement") {
            let text = format!("{value:?}");
            let text = text
                .strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .unwrap_or(&text)
                .to_owned();
            self.record_str(field, &text);
        }
    }
}

/// The process's subscriber: sqlx's statement events only.
struct Statements;

impl Subscriber for Statements {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if metadata.target() == TARGET {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == TARGET
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(RECORDER.next_span.fetch_add(1, Ordering::Relaxed))
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        if !RECORDER.recording.load(Ordering::Relaxed) {
            return;
        }
        let mut text = Text::default();
        event.record(&mut text);
        let statement = text.statement.trim();
        let statement = if statement.is_empty() {
            text.summary
        } else {
            statement.to_owned()
        };
        RECORDER
            .statements
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(statement);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Makes the statement recorder the process's global subscriber; false if another one was set
/// first (then nothing is recorded).
pub fn install() -> bool {
    tracing::subscriber::set_global_default(Statements).is_ok()
}

/// Runs `fut` and returns the statements sqlx ran meanwhile (on every thread), in order.
///
/// A SQLite worker reports a statement once it has handed over its last row, so the caller can
/// be done before the report: the recording starts and stops after a pause that lets earlier
/// and last reports arrive (a worker runs one statement at a time, so they keep their order).
pub async fn recorded<F: Future>(fut: F) -> (F::Output, Vec<String>) {
    const SETTLE: Duration = Duration::from_millis(50);
    tokio::time::sleep(SETTLE).await;
    take();
    RECORDER.recording.store(true, Ordering::SeqCst);
    let output = fut.await;
    tokio::time::sleep(SETTLE).await;
    RECORDER.recording.store(false, Ordering::SeqCst);
    (output, take())
}

fn take() -> Vec<String> {
    std::mem::take(
        &mut *RECORDER
            .statements
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    )
}
