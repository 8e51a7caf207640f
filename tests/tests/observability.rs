//! Introspection and tracing: what a developer sees when asking "what runs, and what happened?".

mod support;

use signals_core::introspection::Phase;
use signals_core::{Sender, Signal, receiver};
use support::Captured;

struct Invoice;

#[derive(Signal)]
#[signal(name = "invoice_paid")]
struct InvoicePaid;

/// Documented, async, with every key.
#[receiver(InvoicePaid, sender = Invoice, priority = 3, dispatch_uid = "ledger")]
async fn write_ledger(_: &InvoicePaid) {}

#[receiver(InvoicePaid)]
fn email_customer(_: &InvoicePaid) -> Result<(), String> {
    Err("smtp down".into())
}

#[test]
fn receivers_lists_every_receiver_with_its_declaration() {
    let table = signals_core::receivers();
    let rows: Vec<_> = table
        .iter()
        .filter(|r| r.signal == "invoice_paid")
        .collect();
    assert_eq!(rows.len(), 2);
    let ledger = rows[0];
    assert_eq!(ledger.name, "observability::write_ledger");
    assert_eq!(ledger.module_path, "observability");
    assert_eq!(ledger.file, "tests/tests/observability.rs");
    assert_eq!(ledger.line, 17, "the line of the function name");
    assert_eq!(
        (ledger.priority, ledger.is_async, ledger.phase),
        (3, true, Phase::Immediate)
    );
    assert_eq!(ledger.sender, Some("observability::Invoice"));
    assert_eq!(ledger.dispatch_uid.as_deref(), Some("ledger"));
    assert_eq!(rows[1].name, "observability::email_customer");
    assert_eq!(rows[1].sender, None);
    let text = table.to_string();
    let header = text.lines().next().unwrap();
    assert!(
        header.starts_with("signal") && header.contains("receiver") && header.contains("priority"),
        "{text}"
    );
    let line = text.lines().find(|l| l.contains("write_ledger")).unwrap();
    for cell in [
        "invoice_paid",
        "observability::Invoice",
        "tests/tests/observability.rs:17",
        "3",
        "async",
        "immediate",
    ] {
        assert!(line.contains(cell), "{cell} missing from {line}");
    }
    assert!(
        text.lines()
            .any(|l| l.contains("email_customer") && l.contains("(any)") && l.contains("sync"))
    );
}

/// `on_commit` receivers of a model signal, one `async fn` and one `fn`.
mod on_commit_receivers {
    use signals_orm::{Committed, Model, receiver};

    #[derive(Model, sqlx::FromRow, Clone, Debug)]
    #[model(table = "ledgers")]
    pub struct Ledger {
        #[model(primary_key)]
        id: Option<i64>,
    }

    #[receiver(post_save, sender = Ledger, on_commit)]
    async fn notify_async(_: Committed<Ledger>) {}

    #[receiver(post_save, sender = Ledger, on_commit)]
    fn notify_sync(_: Committed<Ledger>) {}
}

#[test]
fn on_commit_receivers_are_listed_with_the_kind_of_their_function() {
    let table = signals_orm::receivers();
    let row = |name: &str| {
        table
            .iter()
            .find(|r| r.name == format!("observability::on_commit_receivers::{name}"))
            .unwrap_or_else(|| panic!("{name} missing from\n{table}"))
    };
    let kind = |name: &str| (row(name).is_async, row(name).phase);
    assert_eq!(kind("notify_async"), (true, Phase::OnCommit));
    assert_eq!(kind("notify_sync"), (false, Phase::OnCommit));
    let text = table.to_string();
    let line = text.lines().find(|l| l.contains("notify_async")).unwrap();
    let cells: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(cells[cells.len() - 2..], ["async", "on_commit"], "{line}");
}

#[test]
fn each_send_is_a_span_naming_receivers_and_outcomes_and_robust_errors_are_logged() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let outcomes = signals_core::send_robust_sync(Sender::NONE, &InvoicePaid);
        assert_eq!(
            outcomes.len(),
            1,
            "only the any-sender receiver gets a send without sender"
        );
    });
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let error_line = text
        .lines()
        .find(|l| l.contains("ERROR"))
        .unwrap_or_else(|| panic!("no ERROR line in:\n{text}"));
    assert!(
        error_line.contains("signal{signal=\"invoice_paid\" sender=\"-\"}"),
        "{error_line}"
    );
    assert!(
        error_line.contains("error calling receiver in send_robust"),
        "{error_line}"
    );
    assert!(
        error_line.contains("observability::email_customer") && error_line.contains("smtp down"),
        "{error_line}"
    );
}
