//! What the ORM's errors say, on SQLite (memory and file) and PostgreSQL: each names the
//! operation, the model and the table once; `Display` is that text and `source()` the cause,
//! never both, so a chain printer shows every cause once. Also the ways into a transaction a
//! sqlx user already has: adopting a `sqlx::Transaction`, and `Tx::conn` for their own queries.

mod support;

use std::error::Error;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use signals_orm::{Model, ModelExt, Operation, OrmError, PostSave, Tx, receiver};
use sqlx::Pool;
use support::TestBackend;

const SCHEMA: &str = "
CREATE TABLE log (id {serial}, entry TEXT NOT NULL);
CREATE TABLE widgets (id {serial}, name TEXT NOT NULL);
CREATE TABLE gadgets (id {serial}, name TEXT NOT NULL);
";

/// A model whose table no schema creates.
#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "ghosts")]
struct Ghost {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "widgets")]
struct Widget {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "gadgets")]
struct Gadget {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

#[receiver(post_save, sender = Gadget)]
fn refuse_broken_gadgets(ev: PostSave<'_, Gadget>) -> Result<(), std::io::Error> {
    if ev.instance.name == "broken" {
        return Err(std::io::Error::other("gadget is broken"));
    }
    Ok(())
}

/// The names of the widgets whose save was committed (tests run in parallel: each looks for
/// its own name).
static COMMITTED_WIDGETS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static NEXT_NAME: AtomicUsize = AtomicUsize::new(0);

#[receiver(post_save, sender = Widget, on_commit)]
fn remember_committed_widgets(ev: signals_orm::Committed<Widget>) {
    COMMITTED_WIDGETS
        .lock()
        .unwrap()
        .push(ev.instance.name.clone());
}

fn committed(name: &str) -> bool {
    COMMITTED_WIDGETS.lock().unwrap().iter().any(|n| n == name)
}

/// Every message in the chain of `error`, outermost first.
fn chain(error: &(dyn Error + 'static)) -> Vec<String> {
    let mut out = vec![error.to_string()];
    let mut cause = error.source();
    while let Some(error) = cause {
        out.push(error.to_string());
        cause = error.source();
    }
    out
}

/// The database's own words for a missing `ghosts` table.
fn missing_table_text<DB: TestBackend>() -> &'static str {
    if <DB as signals_orm::Backend>::NAME == "postgres" {
        "relation \"ghosts\" does not exist"
    } else {
        "no such table: ghosts"
    }
}

async fn a_missing_table_names_the_model_and_operation_once<DB: TestBackend>(pool: Pool<DB>)
where
    Ghost: signals_orm::Persist<DB>,
{
    let mut ghost = Ghost {
        id: None,
        name: "boo".into(),
    };
    let error = ghost.save(&pool).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "insert of `Ghost` (table `ghosts`) failed"
    );
    assert!(
        matches!(
            &error,
            OrmError::Database {
                operation: Operation {
                    action: "insert",
                    model: Some("Ghost"),
                    table: Some("ghosts"),
                    ..
                },
                ..
            }
        ),
        "{error:?}"
    );
    let links = chain(&error);
    assert_eq!(
        links.len(),
        2,
        "the text, then the database's error: {links:?}"
    );
    let everything = links.join("\n");
    assert_eq!(
        everything.matches(missing_table_text::<DB>()).count(),
        1,
        "the database's message appears once: {everything}"
    );
    assert!(
        !everything.contains("error returned from database"),
        "{everything}"
    );
    // `{:#}` is the same chain on one line; Debug (what `main` prints) one cause per line.
    assert_eq!(format!("{error:#}"), links.join(": "));
    assert_eq!(
        format!("{error:?}"),
        format!("{}\n\nCaused by:\n    {}", links[0], links[1])
    );

    let error = Ghost::get(&pool, &1).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "fetch of `Ghost` (table `ghosts`) failed"
    );
    ghost.id = Some(1);
    let error = ghost.delete(&pool).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "delete of `Ghost` (table `ghosts`) failed"
    );
    let error = ghost.save(&pool).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        "update of `Ghost` (table `ghosts`) failed"
    );
}

async fn a_receiver_error_is_the_source_not_the_text<DB: TestBackend>(pool: Pool<DB>)
where
    Gadget: signals_orm::Persist<DB>,
{
    let error = Gadget {
        id: None,
        name: "broken".into(),
    }
    .save(&pool)
    .await
    .unwrap_err();
    let links = chain(&error);
    assert_eq!(
        links,
        [
            "receiver `errors::refuse_broken_gadgets` of signal `post_save` (sender `errors::Gadget`) failed",
            "gadget is broken",
        ]
    );
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM gadgets").await, 0);
}

async fn a_sqlx_transaction_is_adopted<DB: TestBackend>(pool: Pool<DB>)
where
    Widget: signals_orm::Persist<DB>,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    let name = format!("adopted-{}", NEXT_NAME.fetch_add(1, Ordering::SeqCst));
    // Begun with sqlx, as an existing application does; adopted to run writes with signals.
    let mut tx = Tx::from(pool.begin().await.unwrap());
    sqlx::raw_sql("INSERT INTO log (entry) VALUES ('own query')")
        .execute(tx.conn())
        .await
        .unwrap();
    Widget {
        id: None,
        name: name.clone(),
    }
    .save(&mut tx)
    .await
    .unwrap();
    assert!(!committed(&name), "on_commit waits for the COMMIT");
    tx.commit().await.unwrap();
    assert!(committed(&name));
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM widgets").await, 1);
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM log").await, 1);

    // Dropped without commit: the adopted transaction rolls back like any `Tx`.
    let mut tx = Tx::from(pool.begin().await.unwrap());
    Widget {
        id: None,
        name: "dropped".into(),
    }
    .save(&mut tx)
    .await
    .unwrap();
    drop(tx);
    assert_eq!(
        DB::scalar(&pool, "SELECT COUNT(*) FROM widgets WHERE name = 'dropped'").await,
        0
    );
}

every_backend!(
    a_missing_table_names_the_model_and_operation_once,
    a_receiver_error_is_the_source_not_the_text,
    a_sqlx_transaction_is_adopted,
);

#[tokio::test]
async fn a_transaction_step_names_itself() {
    let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
    let mut tx = Tx::begin(&pool).await.unwrap();
    assert_eq!(
        tx.release_savepoint().await.unwrap_err().to_string(),
        "no savepoint is open in this transaction"
    );
    drop(tx);
    pool.close().await;
    let error = Tx::begin(&pool).await.unwrap_err();
    assert_eq!(error.to_string(), "BEGIN failed");
    assert_eq!(chain(&error).len(), 2, "{error:?}");
}
