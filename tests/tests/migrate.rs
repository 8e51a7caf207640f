//! `pre_migrate` and `post_migrate` around sqlx's migrator (`signals_orm::migrate::migrate`),
//! on every backend: what each signal carries, seeding in `post_migrate`'s transaction, reruns,
//! and failing receivers. Rules: `docs/orm.md`, "Migration signals".
//!
//! Receivers are process-wide and the tests run in parallel, each on a database of its own:
//! the receivers act only where the tables of their scenario exist.

mod support;

use std::path::Path;
use std::sync::Mutex;

use signals_orm::migrate::{PostMigrate, PostMigrateSignal, PreMigrate, migrate};
use signals_orm::{AnyTx, OrmError, receiver};
use sqlx::Pool;
use sqlx::migrate::Migrator;
use support::TestBackend;

/// The tests' own tables come from migrations, so the schema every scenario starts with is
/// empty.
const SCHEMA: &str = "";

every_backend!(
    post_migrate_seeds_once_and_sees_what_was_applied,
    a_failing_post_migrate_receiver_fails_the_call_and_a_rerun_is_safe,
    a_failing_pre_migrate_receiver_applies_nothing,
);

/// `pre_migrate`'s pending lists, by the description of their first migration.
static PENDING: Mutex<Vec<Vec<String>>> = Mutex::new(Vec::new());

#[receiver(PreMigrate)]
fn remember_pending(ev: &PreMigrate) -> Result<(), String> {
    let names: Vec<String> = ev
        .pending
        .iter()
        .map(|m| m.description.to_string())
        .collect();
    if names.iter().any(|n| n.contains("refused")) {
        return Err(format!("refusing {names:?}"));
    }
    PENDING.lock().unwrap().push(names);
    Ok(())
}

/// Whether `table` exists in the transaction's database (each scenario has its own).
async fn has_table(tx: &mut AnyTx<'_>, table: &str) -> Result<bool, sqlx::Error> {
    let count: i64 = match tx {
        AnyTx::Sqlite(tx) => {
            sqlx::query_scalar("SELECT count(*) FROM sqlite_master WHERE name = ?")
                .bind(table)
                .fetch_one(tx.conn())
                .await?
        }
        AnyTx::Postgres(tx) => {
            sqlx::query_scalar(
                "SELECT count(*) FROM information_schema.tables \
                 WHERE table_name = $1 AND table_schema = current_schema()",
            )
            .bind(table)
            .fetch_one(tx.conn())
            .await?
        }
    };
    Ok(count > 0)
}

/// Seeds the default setting, idempotently; fails while a `poison` row exists.
#[receiver(PostMigrateSignal)]
async fn seed_settings(ev: PostMigrate<'_>, mut tx: AnyTx<'_>) -> Result<(), sqlx::Error> {
    if !has_table(&mut tx, "settings").await? {
        return Ok(());
    }
    let applied = ev.applied.len().to_string();
    let sql =
        "INSERT INTO settings (name, note) VALUES ('default', 'seeded') ON CONFLICT DO NOTHING";
    let runs = "INSERT INTO runs (applied) VALUES ($1)";
    match &mut tx {
        AnyTx::Sqlite(tx) => {
            sqlx::query(sql).execute(tx.conn()).await?;
            sqlx::query(runs).bind(&applied).execute(tx.conn()).await?;
        }
        AnyTx::Postgres(tx) => {
            sqlx::query(sql).execute(tx.conn()).await?;
            sqlx::query(runs).bind(&applied).execute(tx.conn()).await?;
        }
    }
    if has_table(&mut tx, "poison").await? {
        let poisoned: i64 = match &mut tx {
            AnyTx::Sqlite(tx) => {
                sqlx::query_scalar("SELECT count(*) FROM poison")
                    .fetch_one(tx.conn())
                    .await?
            }
            AnyTx::Postgres(tx) => {
                sqlx::query_scalar("SELECT count(*) FROM poison")
                    .fetch_one(tx.conn())
                    .await?
            }
        };
        if poisoned > 0 {
            return Err(sqlx::Error::Protocol("poisoned".to_owned()));
        }
    }
    Ok(())
}

/// A migrator over `files` (name, SQL) written to a new directory.
async fn migrator(dir: &Path, files: &[(&str, String)]) -> Migrator {
    for (name, sql) in files {
        std::fs::write(dir.join(name), sql).unwrap();
    }
    Migrator::new(dir).await.unwrap()
}

fn settings_migrations<DB: TestBackend>(token: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "1_settings.sql",
            format!(
                "CREATE TABLE settings (name TEXT PRIMARY KEY, note TEXT NOT NULL); -- {token}"
            ),
        ),
        (
            "2_runs.sql",
            format!(
                "CREATE TABLE runs (id {}, applied TEXT NOT NULL);",
                DB::SERIAL_KEY
            ),
        ),
    ]
}

async fn post_migrate_seeds_once_and_sees_what_was_applied<DB: TestBackend>(pool: Pool<DB>)
where
    DB::Connection: sqlx::migrate::Migrate,
{
    let dir = tempfile::tempdir().unwrap();
    let files = settings_migrations::<DB>("seed");
    let migrator = migrator(dir.path(), &files).await;

    let first = migrate(&pool, &migrator).await.unwrap();
    let versions: Vec<i64> = first.applied.iter().map(|m| m.version).collect();
    assert_eq!(versions, [1, 2]);
    assert_eq!(first.applied[0].description, "settings");
    assert!(
        PENDING
            .lock()
            .unwrap()
            .iter()
            .any(|p| p == &["settings".to_owned(), "runs".to_owned()]),
        "pre_migrate saw the two pending migrations"
    );

    // A second run applies nothing, still sends post_migrate, and the seed stays single.
    let again = migrate(&pool, &migrator).await.unwrap();
    assert!(again.applied.is_empty());
    assert_eq!(
        DB::strings(&pool, "SELECT name || ':' || note FROM settings").await,
        ["default:seeded"]
    );
    assert_eq!(
        DB::strings(&pool, "SELECT applied FROM runs ORDER BY id").await,
        ["2", "0"]
    );
}

async fn a_failing_post_migrate_receiver_fails_the_call_and_a_rerun_is_safe<DB: TestBackend>(
    pool: Pool<DB>,
) where
    DB::Connection: sqlx::migrate::Migrate,
{
    let dir = tempfile::tempdir().unwrap();
    let mut files = settings_migrations::<DB>("poison");
    files.push((
        "3_poison.sql",
        "CREATE TABLE poison (why TEXT NOT NULL); INSERT INTO poison (why) VALUES ('test');"
            .to_owned(),
    ));
    let migrator = migrator(dir.path(), &files).await;

    let error = migrate(&pool, &migrator).await.unwrap_err();
    let text = format!("{error:#}");
    assert!(matches!(error, OrmError::Signal(_)), "{text}");
    assert!(
        text.contains("seed_settings")
            && text.contains("post_migrate")
            && text.contains("poisoned"),
        "{text}"
    );
    // The migrations are applied; the receiver's rows were rolled back with its transaction.
    assert_eq!(DB::scalar(&pool, "SELECT count(*) FROM settings").await, 0);
    assert_eq!(DB::scalar(&pool, "SELECT count(*) FROM poison").await, 1);

    DB::exec(&pool, "DELETE FROM poison").await;
    let rerun = migrate(&pool, &migrator).await.unwrap();
    assert!(rerun.applied.is_empty());
    assert_eq!(DB::scalar(&pool, "SELECT count(*) FROM settings").await, 1);
}

async fn a_failing_pre_migrate_receiver_applies_nothing<DB: TestBackend>(pool: Pool<DB>)
where
    DB::Connection: sqlx::migrate::Migrate,
{
    let dir = tempfile::tempdir().unwrap();
    let files = vec![(
        "1_refused.sql",
        "CREATE TABLE refused_table (id INTEGER);".to_owned(),
    )];
    let migrator = migrator(dir.path(), &files).await;
    let error = migrate(&pool, &migrator).await.unwrap_err();
    let text = format!("{error:#}");
    assert!(
        text.contains("remember_pending") && text.contains("pre_migrate"),
        "{text}"
    );
    // Nothing applied: the table does not exist and no migration is recorded.
    assert_eq!(
        DB::scalar(&pool, "SELECT count(*) FROM _sqlx_migrations").await,
        0
    );
}
