//! Transaction promises at the edges, on SQLite (memory and WAL file) and PostgreSQL: a write
//! or an `atomic` block whose future is dropped halfway never commits half done; PostgreSQL's
//! silent ROLLBACK of an aborted transaction is never reported as a commit; a failed save gives
//! a generated key back; callbacks run once COMMIT is sent even if the caller stops waiting;
//! Django's `atomic` rule for a block that caught a write's error.

mod support;

use std::sync::Mutex;
use std::time::Duration;

use signals_orm::{Committed, Model, ModelExt, OrmError, PostSave, Tx, receiver};
use sqlx::Pool;
use support::TestBackend;

const SCHEMA: &str = "
CREATE TABLE log (id {serial}, entry TEXT NOT NULL);
CREATE TABLE slow_items (id {serial}, name TEXT NOT NULL);
CREATE TABLE uniq_items (id {serial}, name TEXT NOT NULL);
CREATE TABLE names (name TEXT PRIMARY KEY);
CREATE TABLE keyed (id {serial}, name TEXT NOT NULL);
CREATE TABLE celebrated (id {serial}, name TEXT NOT NULL);
CREATE TABLE careless (id {serial}, name TEXT NOT NULL);
CREATE TABLE unheard (id {serial}, name TEXT NOT NULL);
";

/// Its `post_save` receiver writes a log row, then sleeps: a timeout drops the save halfway.
#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "slow_items")]
struct SlowItem {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

#[receiver(post_save, sender = SlowItem)]
async fn log_then_sleep(
    ev: PostSave<'_, SlowItem>,
    tx: signals_orm::AnyTx<'_>,
) -> Result<(), OrmError> {
    support::log(tx, format!("slow {}", ev.instance.name)).await?;
    tokio::time::sleep(Duration::from_secs(30)).await;
    Ok(())
}

/// Its `post_save` receiver inserts a duplicate name and ignores the failure, as a careless
/// receiver would: on PostgreSQL that aborts the transaction.
#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "uniq_items")]
struct UniqItem {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

#[receiver(post_save, sender = UniqItem)]
async fn insert_name_twice(ev: PostSave<'_, UniqItem>, mut tx: signals_orm::AnyTx<'_>) {
    for _ in 0..2 {
        let sql = "INSERT INTO names (name) VALUES ($1)";
        let _ignored = match tx {
            signals_orm::AnyTx::Sqlite(ref mut tx) => sqlx::query(sql)
                .bind(&ev.instance.name)
                .execute(tx.conn())
                .await
                .map(drop),
            signals_orm::AnyTx::Postgres(ref mut tx) => sqlx::query(sql)
                .bind(&ev.instance.name)
                .execute(tx.conn())
                .await
                .map(drop),
        };
    }
}

/// Refused by its `post_save` receiver when named "late", after the INSERT assigned the key.
#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "keyed")]
struct Keyed {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

#[receiver(post_save, sender = Keyed)]
fn refuse_late(ev: PostSave<'_, Keyed>) -> Result<(), String> {
    if ev.instance.name == "late" {
        return Err("refused after the INSERT".into());
    }
    Ok(())
}

/// Two `on_commit` receivers, the first slow: a caller that stops waiting after COMMIT must not
/// lose either.
#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "celebrated")]
struct Celebrated {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

static CELEBRATIONS: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// The names whose first callback started: their COMMIT is done.
static STARTED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Resolves once the first callback of `name` started, that is after its COMMIT.
async fn committed(name: &str) {
    while !STARTED.lock().unwrap().iter().any(|n| n == name) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[receiver(post_save, sender = Celebrated, on_commit, priority = 1)]
async fn first_celebration(ev: Committed<Celebrated>) {
    STARTED.lock().unwrap().push(ev.instance.name.clone());
    tokio::time::sleep(Duration::from_millis(200)).await;
    CELEBRATIONS
        .lock()
        .unwrap()
        .push(format!("first {}", ev.instance.name));
}

#[receiver(post_save, sender = Celebrated, on_commit)]
async fn second_celebration(ev: Committed<Celebrated>) {
    CELEBRATIONS
        .lock()
        .unwrap()
        .push(format!("second {}", ev.instance.name));
}

fn celebrations(name: &str) -> Vec<String> {
    CELEBRATIONS
        .lock()
        .unwrap()
        .iter()
        .filter(|c| c.ends_with(&format!(" {name}")))
        .cloned()
        .collect()
}

fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!("{prefix}{}", NEXT.fetch_add(1, Ordering::SeqCst))
}

async fn a_cancelled_write_in_a_callers_transaction_never_commits<DB: TestBackend>(pool: Pool<DB>)
where
    SlowItem: signals_orm::Persist<DB>,
{
    let mut tx = Tx::begin(&pool).await.unwrap();
    let mut item = SlowItem {
        id: None,
        name: "a".into(),
    };
    let cancelled = tokio::time::timeout(Duration::from_millis(300), item.save(&mut tx)).await;
    assert!(
        cancelled.is_err(),
        "the receiver sleeps longer than the timeout"
    );
    assert!(
        tx.rollback_only().unwrap().contains("cancelled"),
        "{:?}",
        tx.rollback_only()
    );
    // Further writes and the commit refuse, saying why.
    let next = SlowItem {
        id: None,
        name: "b".into(),
    }
    .save(&mut tx)
    .await
    .unwrap_err();
    assert!(matches!(next, OrmError::RollbackOnly { .. }), "{next}");
    let error = tx.commit().await.unwrap_err();
    assert!(format!("{error}").contains("cancelled"), "{error}");
    assert_eq!(
        DB::scalar(&pool, "SELECT COUNT(*) FROM slow_items").await,
        0
    );
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM log").await, 0);
    assert_eq!(item.id, None, "the key of the undone INSERT is given back");
}

async fn a_cancelled_atomic_block_never_commits<DB: TestBackend>(pool: Pool<DB>)
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    let mut tx = Tx::begin(&pool).await.unwrap();
    sqlx::raw_sql("INSERT INTO log (entry) VALUES ('before the block')")
        .execute(tx.conn())
        .await
        .unwrap();
    let block = tx.atomic(|tx| {
        Box::pin(async move {
            sqlx::raw_sql("INSERT INTO log (entry) VALUES ('in the block')")
                .execute(tx.conn())
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<(), OrmError>(())
        })
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(200), block)
            .await
            .is_err()
    );
    assert_eq!(tx.depth(), 1, "the block's savepoint is still open");
    assert!(
        tx.rollback_only().unwrap().contains("`atomic` block"),
        "{:?}",
        tx.rollback_only()
    );
    // Rolling back to the block's savepoint recovers the transaction, as an error would have.
    tx.rollback_to_savepoint().await.unwrap();
    assert_eq!(tx.rollback_only(), None);
    tx.commit().await.unwrap();
    assert_eq!(
        DB::strings(&pool, "SELECT entry FROM log").await,
        ["before the block"],
        "the block's INSERT is undone"
    );
}

async fn postgres_never_reports_an_aborted_transaction_as_committed<DB: TestBackend>(pool: Pool<DB>)
where
    UniqItem: signals_orm::Persist<DB>,
{
    let mut item = UniqItem {
        id: None,
        name: "dup".into(),
    };
    let result = item.save(&pool).await;
    let stored = DB::scalar(&pool, "SELECT COUNT(*) FROM uniq_items").await;
    if <DB as signals_orm::Backend>::NAME == "postgres" {
        // The second INSERT failed and aborted the transaction; the COMMIT is refused.
        let error = result.unwrap_err();
        assert!(format!("{error:#}").contains("aborted"), "{error:#}");
        assert_eq!(stored, 0);
        assert_eq!(item.id, None, "no key for a row that is not there");
    } else {
        // SQLite keeps the transaction usable after a failed statement: the save stands.
        assert_eq!(result.unwrap(), signals_orm::Saved::Created);
        assert_eq!(stored, 1);
        assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM names").await, 1);
    }
}

async fn an_ignored_failed_statement_in_a_tx_is_never_committed_silently<DB: TestBackend>(
    pool: Pool<DB>,
) where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    let mut tx = Tx::begin(&pool).await.unwrap();
    sqlx::raw_sql("INSERT INTO names (name) VALUES ('x')")
        .execute(tx.conn())
        .await
        .unwrap();
    DB::fail_in(&mut tx).await;
    let committed = tx.commit().await;
    let stored = DB::scalar(&pool, "SELECT COUNT(*) FROM names").await;
    if <DB as signals_orm::Backend>::NAME == "postgres" {
        assert!(committed.is_err(), "a silent ROLLBACK is not a commit");
        assert_eq!(stored, 0);
    } else {
        committed.unwrap();
        assert_eq!(stored, 1);
    }
}

async fn a_failed_save_gives_the_generated_key_back<DB: TestBackend>(pool: Pool<DB>)
where
    Keyed: signals_orm::Persist<DB>,
{
    let mut other = Keyed {
        id: None,
        name: "other".into(),
    };
    other.save(&pool).await.unwrap();
    let mut late = Keyed {
        id: None,
        name: "late".into(),
    };
    late.save(&pool).await.unwrap_err();
    assert_eq!(
        late.id, None,
        "the INSERT that assigned the key was rolled back"
    );
    // Retried after fixing the name, it inserts a row of its own, never overwriting another.
    late.name = "fixed".into();
    assert_eq!(late.save(&pool).await.unwrap(), signals_orm::Saved::Created);
    assert_ne!(late.id, other.id);
    assert_eq!(
        DB::strings(&pool, "SELECT name FROM keyed ORDER BY id").await,
        ["other", "fixed"]
    );

    // In a caller's transaction too: the failed INSERT can only be rolled back.
    let mut tx = Tx::begin(&pool).await.unwrap();
    let mut again = Keyed {
        id: None,
        name: "late".into(),
    };
    again.save(&mut tx).await.unwrap_err();
    assert_eq!(again.id, None);
}

async fn callbacks_run_when_the_caller_stops_waiting_after_commit<DB: TestBackend>(pool: Pool<DB>)
where
    Celebrated: signals_orm::Persist<DB>,
{
    let name = unique("party");
    let mut row = Celebrated {
        id: None,
        name: name.clone(),
    };
    // The caller stops waiting (its future is dropped) once the first callback started,
    // that is after the COMMIT, while that callback sleeps.
    tokio::select! {
        _ = row.save(&pool) => panic!("the first callback sleeps 200 ms"),
        () = committed(&name) => {}
    }
    // Wait for the callbacks (a lost one would make this wait end at its bound, 10 s).
    for _ in 0..1000 {
        if celebrations(&name).len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        DB::scalar(&pool, "SELECT COUNT(*) FROM celebrated").await,
        1,
        "the row is committed"
    );
    assert_eq!(
        celebrations(&name),
        [format!("first {name}"), format!("second {name}")],
        "both callbacks ran, once, in order"
    );
    assert!(row.id.is_some(), "a committed row keeps its key");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(celebrations(&name).len(), 2, "and only once");
}

async fn a_block_that_caught_a_write_error_rolls_back_to_its_savepoint<DB: TestBackend>(
    pool: Pool<DB>,
) where
    Keyed: signals_orm::Persist<DB>,
{
    let mut tx = Tx::begin(&pool).await.unwrap();
    Keyed {
        id: None,
        name: "before".into(),
    }
    .save(&mut tx)
    .await
    .unwrap();
    let value = tx
        .atomic(|tx| {
            Box::pin(async move {
                let caught = Keyed {
                    id: None,
                    name: "late".into(),
                }
                .save(&mut *tx)
                .await;
                assert!(caught.is_err());
                Ok::<_, OrmError>("caught")
            })
        })
        .await
        .unwrap();
    assert_eq!(value, "caught");
    assert_eq!(
        tx.rollback_only(),
        None,
        "the outer transaction goes on (Django)"
    );
    assert_eq!(tx.depth(), 0);
    Keyed {
        id: None,
        name: "after".into(),
    }
    .save(&mut tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        DB::strings(&pool, "SELECT name FROM keyed ORDER BY id").await,
        ["before", "after"]
    );
}

every_backend!(
    a_cancelled_write_in_a_callers_transaction_never_commits,
    a_cancelled_atomic_block_never_commits,
    postgres_never_reports_an_aborted_transaction_as_committed,
    an_ignored_failed_statement_in_a_tx_is_never_committed_silently,
    a_failed_save_gives_the_generated_key_back,
    callbacks_run_when_the_caller_stops_waiting_after_commit,
    a_block_that_caught_a_write_error_rolls_back_to_its_savepoint,
);

/// Its `post_save` receiver saves a `Keyed` row through the pool the write runs on, instead of
/// through the transaction it is given: a deadlock (SQLite's write lock, a pool of one
/// connection, a row lock) that fails at once instead.
#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "careless")]
struct Careless {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

/// The pool each careless write runs on, by the row's name (tests run in parallel).
static POOLS: Mutex<Vec<(String, Box<dyn std::any::Any + Send>)>> = Mutex::new(Vec::new());

#[receiver(post_save, sender = Careless)]
async fn save_through_the_pool(ev: PostSave<'_, Careless>) -> Result<(), OrmError> {
    let pool = {
        let pools = POOLS.lock().unwrap();
        let (_, pool) = pools.iter().find(|(n, _)| *n == ev.instance.name).unwrap();
        pool.downcast_ref::<sqlx::SqlitePool>()
            .map(|p| AnyPool::Sqlite(p.clone()))
            .or_else(|| {
                pool.downcast_ref::<sqlx::PgPool>()
                    .map(|p| AnyPool::Postgres(p.clone()))
            })
            .unwrap()
    };
    let mut row = Keyed {
        id: None,
        name: "from the receiver".into(),
    };
    match pool {
        AnyPool::Sqlite(pool) => row.save(&pool).await.map(drop),
        AnyPool::Postgres(pool) => row.save(&pool).await.map(drop),
    }
}

enum AnyPool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

async fn a_receiver_writing_through_the_pool_fails_at_once<DB: TestBackend>(pool: Pool<DB>)
where
    Careless: signals_orm::Persist<DB>,
{
    let name = unique("careless");
    POOLS
        .lock()
        .unwrap()
        .push((name.clone(), Box::new(pool.clone())));
    let error = Careless {
        id: None,
        name: name.clone(),
    }
    .save(&pool)
    .await
    .unwrap_err();
    let text = format!("{error:#}");
    assert!(
        text.contains("save_through_the_pool")
            && text.contains("a receiver wrote through the pool")
            && text.contains("write through the transaction given to the receiver"),
        "{text}"
    );
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM keyed").await, 0);
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM careless").await, 0);
    // In a transaction of the caller's begun on that pool, the same.
    let mut tx = Tx::begin(&pool).await.unwrap();
    let error = Careless { id: None, name }.save(&mut tx).await.unwrap_err();
    assert!(format!("{error:#}").contains("a receiver wrote through the pool"));
}

every_backend!(a_receiver_writing_through_the_pool_fails_at_once);

/// A SQLite file of two connections whose writers wait only 100 ms for the lock, with an
/// empty `table` of ids and names; keep the directory alive while testing.
async fn impatient_sqlite(table: &str) -> (sqlx::SqlitePool, tempfile::TempDir) {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("impatient.db"))
        .create_if_missing(true)
        .busy_timeout(Duration::from_millis(100));
    let pool = SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .unwrap();
    let create = format!("CREATE TABLE {table} (id INTEGER PRIMARY KEY, name TEXT NOT NULL)");
    sqlx::raw_sql(sqlx::AssertSqlSafe(create))
        .execute(&pool)
        .await
        .unwrap();
    (pool, dir)
}

/// SQLite's busy timeout ends a wait for another connection's write lock; the error says so
/// and how to raise it.
#[tokio::test]
async fn a_sqlite_lock_wait_beyond_the_busy_timeout_says_so() {
    let (pool, _dir) = impatient_sqlite("keyed").await;
    let holder = Tx::begin(&pool).await.unwrap(); // BEGIN IMMEDIATE: holds the write lock
    let error = Keyed {
        id: None,
        name: "waits".into(),
    }
    .save(&pool)
    .await
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "BEGIN failed because another connection held SQLite's write lock; a writer waits for it only up to the busy timeout (sqlx's default is 5 s; raise it with `SqliteConnectOptions::busy_timeout`, or shorten the transactions that write)"
    );
    assert!(
        format!("{error:#}").ends_with("database is locked"),
        "{error:#}"
    );
    holder.rollback().await.unwrap();
}

/// No receiver hears its signals: given the pool, its writes run alone in autocommit.
#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "unheard")]
struct Unheard {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

async fn an_unheard_write_keeps_the_save_rules<DB: TestBackend>(pool: Pool<DB>)
where
    Unheard: signals_orm::Persist<DB>,
{
    let mut row = Unheard {
        id: None,
        name: "a".into(),
    };
    assert_eq!(row.save(&pool).await.unwrap(), signals_orm::Saved::Created);
    let id = row.id.unwrap();
    row.name = "b".into();
    assert_eq!(row.save(&pool).await.unwrap(), signals_orm::Saved::Updated);
    // A key no row has: UPDATE matches nothing, then INSERT (Django's created rule).
    let mut given = Unheard {
        id: Some(id + 100),
        name: "c".into(),
    };
    assert_eq!(
        given.save(&pool).await.unwrap(),
        signals_orm::Saved::Created
    );
    assert_eq!(
        DB::strings(&pool, "SELECT name FROM unheard ORDER BY id").await,
        ["b", "c"]
    );
    assert_eq!(row.delete(&pool).await.unwrap().total(), 1);
    assert_eq!(row.id, None);
    assert_eq!(DB::strings(&pool, "SELECT name FROM unheard").await, ["c"]);
    assert_eq!(
        Unheard::get(&pool, &(id + 100))
            .await
            .unwrap()
            .unwrap()
            .name,
        "c"
    );
}

every_backend!(an_unheard_write_keeps_the_save_rules);

/// Without receivers no transaction is opened: the write's own statement is what waits for
/// another connection's lock, so the error names the INSERT, not a BEGIN.
#[tokio::test]
async fn an_unheard_write_opens_no_transaction() {
    let (pool, _dir) = impatient_sqlite("unheard").await;
    let holder = Tx::begin(&pool).await.unwrap();
    let error = Unheard {
        id: None,
        name: "waits".into(),
    }
    .save(&pool)
    .await
    .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("insert of `Unheard` (table `unheard`) failed because"),
        "{error}"
    );
    holder.rollback().await.unwrap();
}

/// Not a table of any schema: its reads fail.
#[derive(Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "missing_table")]
struct Missing {
    #[model(primary_key)]
    id: Option<i64>,
    name: String,
}

async fn a_failed_read_in_a_callers_transaction_marks_it<DB: TestBackend>(pool: Pool<DB>)
where
    Keyed: signals_orm::Persist<DB>,
    Missing: signals_orm::Persist<DB>,
{
    let mut tx = Tx::begin(&pool).await.unwrap();
    Keyed {
        id: None,
        name: "kept?".into(),
    }
    .save(&mut tx)
    .await
    .unwrap();
    // A careless caller ignores the failed read; on PostgreSQL it aborted the transaction.
    assert!(Missing::get(&mut tx, &1).await.is_err());
    let error = tx.commit().await.unwrap_err();
    assert!(
        matches!(&error, OrmError::RollbackOnly { reason } if reason.contains("read")),
        "{error}"
    );
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM keyed").await, 0);
}

async fn a_released_savepoint_hands_its_mark_to_its_parent<DB: TestBackend>(pool: Pool<DB>)
where
    Keyed: signals_orm::Persist<DB>,
{
    let mut tx = Tx::begin(&pool).await.unwrap();
    tx.savepoint().await.unwrap();
    Keyed {
        id: None,
        name: "late".into(),
    }
    .save(&mut tx)
    .await
    .unwrap_err();
    tx.release_savepoint().await.unwrap();
    // A later savepoint rolled back must not clear what failed before it.
    tx.savepoint().await.unwrap();
    tx.rollback_to_savepoint().await.unwrap();
    assert!(tx.rollback_only().is_some());
    assert!(tx.commit().await.is_err());
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM keyed").await, 0);
}

async fn a_cancelled_outer_atomic_block_covers_its_inner_one<DB: TestBackend>(pool: Pool<DB>)
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    let mut tx = Tx::begin(&pool).await.unwrap();
    let outer = tx.atomic(|tx| {
        Box::pin(async move {
            sqlx::raw_sql("INSERT INTO log (entry) VALUES ('outer')")
                .execute(tx.conn())
                .await
                .unwrap();
            tx.atomic(|tx| {
                Box::pin(async move {
                    sqlx::raw_sql("INSERT INTO log (entry) VALUES ('inner')")
                        .execute(tx.conn())
                        .await
                        .unwrap();
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Ok::<(), OrmError>(())
                })
            })
            .await
        })
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(200), outer)
            .await
            .is_err()
    );
    assert_eq!(tx.depth(), 2);
    tx.rollback_to_savepoint().await.unwrap();
    assert!(
        tx.rollback_only().is_some(),
        "the outer block was cancelled too"
    );
    tx.rollback_to_savepoint().await.unwrap();
    assert_eq!(tx.rollback_only(), None);
    tx.commit().await.unwrap();
    assert_eq!(DB::scalar(&pool, "SELECT COUNT(*) FROM log").await, 0);
}

every_backend!(
    a_failed_read_in_a_callers_transaction_marks_it,
    a_released_savepoint_hands_its_mark_to_its_parent,
    a_cancelled_outer_atomic_block_covers_its_inner_one,
);
