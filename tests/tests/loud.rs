//! Failures no caller gets back are seen without configuring anything: with no `tracing`
//! subscriber they are printed on stderr (as Python's logging does by default); with one, they
//! are only its events.
//!
//! Each test runs this test binary again as a child (`--exact child --nocapture`, the mode in
//! `SIGNALS_LOUD_CHILD`), so it reads the child's real stderr, which the test harness would
//! otherwise capture.

mod child;

use std::process::Output;

use child::our_lines;

use signals_orm::{Committed, Model, ModelExt, Saved, Sender, Signal, receiver};

/// Selects what the child does; unset in a normal test run, where `child` does nothing.
const CHILD: &str = "SIGNALS_LOUD_CHILD";

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "users")]
struct User {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

#[receiver(post_save, sender = User, on_commit)]
async fn send_welcome(ev: Committed<User>) -> Result<(), String> {
    Err(format!("mail server down for {}", ev.instance.name))
}

#[derive(Signal)]
struct Refund;

#[receiver(Refund)]
fn refuse_refund(_: &Refund) -> Result<(), String> {
    Err("refunds are closed".into())
}

/// What the child prints when the `on_commit` receiver fails and no subscriber is installed.
const ON_COMMIT_LINE: &str = "signals: error: on_commit callback failed after COMMIT: receiver `loud::send_welcome` of signal `post_save` (sender `loud::User`) failed: mail server down for ada";

/// What it prints for a failing receiver in `send_robust`.
const ROBUST_LINE: &str = "signals: error: error calling receiver in send_robust: receiver `loud::refuse_refund` of signal `Refund` (sender `-`) failed: refunds are closed";

/// The child's work, by mode: `save` (a save whose `on_commit` receiver fails), `save+subscriber`
/// (the same with a tracing subscriber writing to stdout), `robust` (`send_robust`).
#[test]
fn child() {
    let Ok(mode) = std::env::var(CHILD) else {
        return;
    };
    if mode.ends_with("+subscriber") {
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(std::io::stdout)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
    }
    if mode.starts_with("robust") {
        let outcomes = signals_orm::dispatch::send_robust_sync(Sender::NONE, &Refund);
        assert!(outcomes[0].result.is_err(), "and returned as well");
        return;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        sqlx::query("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        let mut user = User {
            id: None,
            name: "ada".into(),
        };
        // The receiver's failure does not undo the commit, so `save` succeeds.
        assert_eq!(user.save(&pool).await.unwrap(), Saved::Created);
    });
}

fn run_child(mode: &str) -> Output {
    child::run_child(CHILD, mode)
}

#[test]
fn without_a_subscriber_a_failed_on_commit_receiver_is_printed_on_stderr() {
    let out = run_child("save");
    assert_eq!(our_lines(&out), [ON_COMMIT_LINE]);
}

#[test]
fn without_a_subscriber_a_send_robust_error_is_printed_on_stderr() {
    let out = run_child("robust");
    assert_eq!(our_lines(&out), [ROBUST_LINE]);
}

#[test]
fn with_a_subscriber_failures_are_only_its_events() {
    for mode in ["save+subscriber", "robust+subscriber"] {
        let out = run_child(mode);
        assert_eq!(our_lines(&out), Vec::<String>::new(), "{mode}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let event = stdout
            .lines()
            .find(|l| l.contains("ERROR"))
            .unwrap_or_else(|| panic!("{mode}: no ERROR event in:\n{stdout}"));
        let expected = if mode.starts_with("save") {
            [
                "on_commit callback failed after COMMIT",
                "receiver=\"loud::send_welcome\"",
                "mail server down for ada",
            ]
        } else {
            [
                "error calling receiver in send_robust",
                "receiver=\"loud::refuse_refund\"",
                "refunds are closed",
            ]
        };
        for text in expected {
            assert!(
                event.contains(text),
                "{mode}: `{text}` missing from {event}"
            );
        }
    }
}
