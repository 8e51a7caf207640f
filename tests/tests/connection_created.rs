//! `connection_created`: sent for each new connection of a pool made with
//! `signals_orm::connection::pool_options`, per backend; a failing receiver fails the
//! connection attempt, naming itself. Rules: `docs/orm.md`, "`connection_created`".

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use signals_orm::connection::{ConnectionCreated, ConnectionCreatedSignal, pool_options};
use signals_orm::receiver;
use sqlx::{Postgres, Sqlite};
use support::Captured;

static SQLITE_CONNECTIONS: AtomicUsize = AtomicUsize::new(0);

/// Sets a PRAGMA on every new SQLite connection; refuses databases whose file name says so.
#[receiver(ConnectionCreatedSignal, sender = Sqlite)]
async fn sqlite_pragmas(ev: ConnectionCreated<'_, Sqlite>) -> Result<(), String> {
    let file: String =
        sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
            .fetch_one(&mut *ev.conn)
            .await
            .map_err(|e| e.to_string())?;
    if file.contains("refused") {
        return Err(format!("no connections to {file}"));
    }
    sqlx::query("PRAGMA cache_size = -4321")
        .execute(&mut *ev.conn)
        .await
        .map_err(|e| e.to_string())?;
    SQLITE_CONNECTIONS.fetch_add(1, Ordering::SeqCst);
    Ok(())
}

/// Names every new PostgreSQL session.
#[receiver(ConnectionCreatedSignal, sender = Postgres)]
async fn postgres_session(ev: ConnectionCreated<'_, Postgres>) -> Result<(), sqlx::Error> {
    sqlx::query("SET application_name = 'signals-connection-test'")
        .execute(&mut *ev.conn)
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_new_sqlite_connection_is_configured_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("db.sqlite").display()
    );
    let before = SQLITE_CONNECTIONS.load(Ordering::SeqCst);
    let pool = pool_options::<Sqlite>()
        .max_connections(3)
        .min_connections(0)
        .connect(&url)
        .await
        .unwrap();
    // Three connections held at once: three new connections, each configured.
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut conn = pool.acquire().await.unwrap();
        let size: i64 = sqlx::query_scalar("PRAGMA cache_size")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(size, -4321);
        held.push(conn);
    }
    drop(held);
    // Reused connections are not new: no further sends.
    for _ in 0..5 {
        let mut conn = pool.acquire().await.unwrap();
        sqlx::query("SELECT 1").execute(&mut *conn).await.unwrap();
    }
    let sent = SQLITE_CONNECTIONS.load(Ordering::SeqCst) - before;
    assert!(sent >= 3, "{sent}");
    assert!(
        sent <= 3 + 1,
        "a reused connection was configured again: {sent}"
    );
}

#[test]
fn a_failing_receiver_fails_the_connection_and_is_reported_by_name() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("refused.sqlite").display()
    );
    // One thread, so that the connection attempt (and its report) runs under this subscriber.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let error = tracing::subscriber::with_default(subscriber, || {
        runtime.block_on(
            pool_options::<Sqlite>()
                .max_connections(1)
                .acquire_timeout(Duration::from_millis(300))
                .connect(&url),
        )
    })
    .unwrap_err();
    // sqlx retries and ends with its timeout; the cause is in the report.
    assert!(matches!(error, sqlx::Error::PoolTimedOut), "{error}");
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("ERROR"))
        .unwrap_or_else(|| panic!("no ERROR line in:\n{text}"));
    assert!(
        line.contains("sqlite_pragmas")
            && line.contains("connection_created")
            && line.contains("no connections to"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sessions_are_configured_and_sqlite_receivers_not_called_for_them() {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        eprintln!(
            "NOTE: DATABASE_URL is not set: the PostgreSQL connection_created test is SKIPPED"
        );
        return;
    };
    let pool = pool_options::<Postgres>()
        .max_connections(2)
        .connect(&url)
        .await
        .unwrap();
    let name: String = sqlx::query_scalar("SHOW application_name")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(name, "signals-connection-test");
}
