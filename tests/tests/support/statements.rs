//! A global `tracing` subscriber keeping the statements sqlx logs inside a `probe` span,
//! per probe. Global, because sqlx runs SQLite statements on a worker thread of its own,
//! which enters the caller's span but not the caller's thread-local subscriber. sqlx logs
//! neither backend's BEGIN, and only PostgreSQL's COMMIT.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Instrument as _, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

static RAN: Mutex<BTreeMap<u64, Vec<String>>> = Mutex::new(BTreeMap::new());
static PROBES: AtomicU64 = AtomicU64::new(1);
static INSTALL: Once = Once::new();

/// A span's probe number.
struct Probe(u64);

#[derive(Default)]
struct Fields {
    probe: Option<u64>,
    summary: String,
    statement: String,
}

impl Visit for Fields {
    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "probe" {
            self.probe = Some(value);
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "summary" => value.clone_into(&mut self.summary),
            "db.statement" => value.trim().clone_into(&mut self.statement),
            _ => {}
        }
    }
    fn record_debug(&mut self, _: &Field, _: &dyn fmt::Debug) {}
}

struct Statements;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Statements {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let (Some(probe), Some(span)) = (fields.probe, ctx.span(id)) {
            span.extensions_mut().insert(Probe(probe));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" {
            return;
        }
        let Some(probe) = ctx.event_scope(event).and_then(|scope| {
            scope
                .from_root()
                .find_map(|span| span.extensions().get::<Probe>().map(|p| p.0))
        }) else {
            return;
        };
        let mut fields = Fields::default();
        event.record(&mut fields);
        // sqlx logs the whole text when its summary (the first words) is not all of it.
        let text = if fields.statement.is_empty() {
            fields.summary
        } else {
            fields.statement
        };
        // A connection the pool opened during the probe (one returned a moment ago may
        // still be on its way back): the PostgreSQL fixture's `after_connect`, sqlx's own
        // `PRAGMA`s for a SQLite file; not the operation's.
        let text_start = text.trim_start();
        if text_start.starts_with("SET search_path") || text_start.starts_with("PRAGMA ") {
            return;
        }
        RAN.lock().unwrap().entry(probe).or_default().push(text);
    }
}

/// Runs `operation` and returns what it returned and the statements it ran, in order.
pub async fn of<T>(operation: impl Future<Output = T>) -> (T, Vec<String>) {
    INSTALL.call_once(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Statements))
            .expect("no other global subscriber in this test binary");
    });
    let probe = PROBES.fetch_add(1, Ordering::SeqCst);
    let out = operation
        .instrument(tracing::info_span!("probe", probe))
        .await;
    let ran = RAN.lock().unwrap().remove(&probe).unwrap_or_default();
    (out, ran)
}
