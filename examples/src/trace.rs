//! A readable trace of every signal and receiver, built from the `tracing` spans and events
//! the dispatcher emits (one span per send, one event per receiver and outcome).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Collects trace lines (and prints them when `echo` is set), and the receivers that ran.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    lines: Arc<Mutex<Vec<String>>>,
    receivers: Arc<Mutex<Vec<String>>>,
    echo: bool,
}

impl Trace {
    /// A trace that also prints each line as it comes.
    #[must_use]
    pub fn printing() -> Self {
        Trace {
            echo: true,
            ..Trace::default()
        }
    }

    /// The lines so far.
    #[must_use]
    pub fn lines(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// The receivers that heard a signal so far (`on_commit` ones when queued), by their short
    /// path (`welcome_email::send_welcome_email`), each once, in the order they first ran.
    #[must_use]
    pub fn receivers(&self) -> Vec<String> {
        self.receivers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn ran(&self, receiver: &str) {
        let mut receivers = self
            .receivers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !receivers.iter().any(|r| r == receiver) {
            receivers.push(receiver.to_owned());
        }
    }

    fn push(&self, line: String) {
        if self.echo {
            println!("{line}");
        }
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(line);
    }

    /// Adds a line of narration.
    pub fn note(&self, line: &str) {
        self.push(line.to_owned());
    }
}

/// The fields of a span or event that the trace shows.
#[derive(Default)]
struct Fields {
    signal: String,
    sender: String,
    receiver: String,
    outcome: String,
    phase: String,
    error: String,
}

impl Visit for Fields {
    /// An error with its causes: a `SendError` keeps the receiver's own error as its source.
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let mut text = value.to_string();
        let mut cause = value.source();
        while let Some(error) = cause {
            text = format!("{text}: {error}");
            cause = error.source();
        }
        self.set(field.name(), text);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.set(field.name(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.set(field.name(), format!("{value:?}"));
    }
}

impl Fields {
    fn set(&mut self, name: &str, value: String) {
        match name {
            "signal" => self.signal = value,
            "sender" => self.sender = value,
            "receiver" => self.receiver = value,
            "outcome" => self.outcome = value,
            "phase" => self.phase = value,
            "error" => self.error = value,
            _ => {}
        }
    }
}

/// `examples::usecases::order_creation::x` -> `order_creation::x`, `examples::models::Order` ->
/// `models::Order`.
fn short(path: &str) -> &str {
    path.strip_prefix("examples::usecases::")
        .or_else(|| path.strip_prefix("examples::"))
        .unwrap_or(path)
}

/// How many `signal` spans enclose `span` (itself included), and the innermost one's label.
fn signal_scope<S: Subscriber + for<'a> LookupSpan<'a>>(
    span: &tracing_subscriber::registry::SpanRef<'_, S>,
) -> (usize, String) {
    let mut depth = 0;
    let mut label = String::new();
    for outer in span.scope() {
        if let Some(fields) = outer.extensions().get::<Fields>() {
            if depth == 0 {
                let _ = write!(label, "{}[{}]", fields.signal, short(&fields.sender));
            }
            depth += 1;
        }
    }
    (depth, label)
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Trace {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        let Some(span) = ctx.span(id) else { return };
        match attrs.metadata().name() {
            "signal" => {
                span.extensions_mut().insert(fields);
            }
            // A receiver starts: one line, indented by how deep the send is nested.
            "receiver" => {
                let (depth, label) = signal_scope(&span);
                let indent = "  ".repeat(depth.saturating_sub(1));
                self.ran(short(&fields.receiver));
                let queued = if fields.phase == "on_commit" {
                    " (queued until COMMIT)"
                } else {
                    ""
                };
                self.push(format!(
                    "{indent}{label} -> {}{queued}",
                    short(&fields.receiver)
                ));
            }
            _ => {}
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        if fields.receiver.is_empty() {
            return;
        }
        if fields.phase == "on_commit" {
            // The durable engine's own callback, waking this process's worker after a COMMIT
            // that enqueued: queued only while a worker of the queue listens (from a moment
            // after its start), so its lines would depend on timing. Not a receiver.
            if fields.receiver.starts_with("signals_orm::durable::") {
                return;
            }
            self.push(format!(
                "after COMMIT  {} -> {}",
                fields.signal,
                short(&fields.receiver)
            ));
        } else if fields.outcome == "error" || !fields.error.is_empty() {
            let depth = ctx
                .event_span(event)
                .map_or(1, |span| signal_scope(&span).0);
            let indent = "  ".repeat(depth);
            self.push(format!(
                "{indent}x {} failed: {}",
                short(&fields.receiver),
                fields.error
            ));
        }
    }
}
