//! A program that sends signals while no `#[receiver]` is linked at all, the mark of a receivers
//! crate the binary never names, hears about it: once, at the first send, in debug builds; and
//! `receivers()` prints why its table is empty. This file declares no receiver, and the crates
//! it links hold none.
//!
//! The tests run this test binary again as a child (`--exact child --nocapture`, the mode in
//! `SIGNALS_UNLINKED_CHILD`) to read its real stderr.

mod child;

use std::process::Output;

use child::our_lines;

use signals_orm::{Model, ModelExt, Sender, Signal};

/// Selects what the child does; unset in a normal test run, where `child` does nothing.
const CHILD: &str = "SIGNALS_UNLINKED_CHILD";

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "notes")]
struct Note {
    #[model(primary_key)]
    id: Option<i64>,
    body: String,
}

#[derive(Signal)]
struct Ping;

const WARNING: &str = "signals: warning: `pre_save` (sender `unlinked_warning::Note`) was sent, but this program links no `#[receiver]` of any signal; if your receivers live in a library crate that nothing in the program names, it was left out: add `signals_orm::link!(your_receivers_crate);` (or `use your_receivers_crate as _;`) to the binary, and `#![warn(unused_crate_dependencies)]` to find such crates (checked once, in debug builds; ignore it if you connect receivers only at runtime)";

const EMPTY_TABLE: &str = "no receivers: none is declared with `#[receiver]` in what this program links, and none is connected at runtime. A library crate of receivers is linked only if the program names it: add `signals_orm::link!(your_receivers_crate);` (or `use your_receivers_crate as _;`) to the binary.";

/// Saves two notes and sends a custom signal (every send unheard), then prints the receiver
/// table on stdout; with `subscriber`, a tracing subscriber writes to stdout too.
#[test]
fn child() {
    let Ok(mode) = std::env::var(CHILD) else {
        return;
    };
    if mode == "subscriber" {
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(std::io::stdout)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
        sqlx::query("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        for body in ["one", "two"] {
            let mut note = Note {
                id: None,
                body: body.into(),
            };
            note.save(&pool).await.unwrap();
        }
        signals_orm::send(Sender::NONE, &Ping).await.unwrap();
    });
    signals_orm::send_sync(Sender::NONE, &Ping).unwrap();
    print!("{}", signals_orm::receivers());
}

fn run_child(mode: &str) -> Output {
    child::run_child(CHILD, mode)
}

#[test]
fn the_first_send_warns_once_in_debug_builds_when_nothing_is_linked() {
    let out = run_child("plain");
    let expected: &[&str] = if cfg!(debug_assertions) {
        &[WARNING]
    } else {
        &[]
    };
    assert_eq!(our_lines(&out), expected);
}

#[test]
fn an_empty_receiver_table_says_why_and_how_to_link() {
    let out = run_child("plain");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // `contains`: the harness' "test child ... " starts the same line.
    assert!(
        stdout.contains(&format!("{EMPTY_TABLE}\n")),
        "no explanation in:\n{stdout}"
    );
}

#[test]
fn with_a_subscriber_the_warning_is_only_its_event() {
    let out = run_child("subscriber");
    assert_eq!(our_lines(&out), Vec::<String>::new());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let warnings: Vec<_> = stdout.lines().filter(|l| l.contains(" WARN ")).collect();
    if cfg!(debug_assertions) {
        assert_eq!(warnings.len(), 1, "{stdout}");
        assert!(
            warnings[0].contains("signals_orm::link!(your_receivers_crate);"),
            "{}",
            warnings[0]
        );
    } else {
        assert_eq!(warnings, Vec::<&str>::new());
    }
}
