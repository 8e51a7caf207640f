//! The outbox between a write and apalis's queue (`docs/durable.md`, "The engine"), on a SQLite
//! file and on PostgreSQL: staged jobs follow the transaction (savepoints, the mid-transaction
//! flush of 64, a failed INSERT at COMMIT), a savepoint rolled back never takes the enclosing
//! writes' jobs along, and racing relays move each committed job once.

mod durable_support;

use std::time::Duration;

use durable_support::{Keyed, TestDb, effects, record_job, test_worker, unique, until};
use signals_orm::durable::{self, Job, JobFilter, JobOptions};
use signals_orm::model_signals::post_save;
use signals_orm::{Backend, ModelExt, OrmError, Persist, Tx};
use sqlx::Pool;

/// Each scenario on a SQLite file and on PostgreSQL, each backend with models of its own: a
/// durable receiver hears every save of its model in the process, and these scenarios count
/// what one transaction stages.
macro_rules! on_both_backends {
    ($($scenario:ident($lite:ident, $pg:ident);)*) => {$(
        order_model!($lite);
        order_model!($pg);

        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_file() {
                let (pool, _dir) = $crate::durable_support::sqlite().await;
                super::$scenario::<sqlx::Sqlite, super::$lite>(pool).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some((pool, schema)) = $crate::durable_support::postgres().await {
                    super::$scenario::<sqlx::Postgres, super::$pg>(pool.clone()).await;
                    $crate::durable_support::postgres_cleanup(&pool, &schema, &[]).await;
                }
            }
        }
    )*};
}

on_both_backends! {
    staged_jobs_follow_savepoints_chunks_and_a_failed_commit(StagedLite, StagedPg);
    concurrent_relays_move_each_job_once(RelayedLite, RelayedPg);
    a_savepoint_keeps_the_enclosing_writes_jobs(EnclosingLite, EnclosingPg);
}

/// An order model of a scenario's own.
trait Order: Keyed + serde::Serialize + serde::de::DeserializeOwned + Send + 'static {
    fn new(key: &str, total: i64) -> Self;
}

macro_rules! order {
    ($($model:ident),*) => {$(
        impl Order for $model {
            fn new(key: &str, total: i64) -> Self {
                $model::new(key, total)
            }
        }
    )*};
}

order!(
    StagedLite,
    StagedPg,
    RelayedLite,
    RelayedPg,
    EnclosingLite,
    EnclosingPg
);

/// apalis's table and the outbox, with their queue columns, on `DB`.
fn tables<DB: TestDb>() -> [(&'static str, &'static str); 2] {
    if <DB as Backend>::NAME == "sqlite" {
        [("Jobs", "job_type"), ("signals_orm_outbox", "queue")]
    } else {
        [
            ("apalis.jobs", "job_type"),
            ("apalis.signals_orm_outbox", "queue"),
        ]
    }
}

/// Jobs of `queue` in apalis's table and in the outbox.
async fn where_jobs_are<DB: TestDb>(pool: &Pool<DB>, queue: &str) -> (i64, i64) {
    let [(jobs, jobs_queue), (outbox, outbox_queue)] = tables::<DB>();
    let count = |table: &str, column: &str| {
        format!("SELECT COUNT(*) FROM {table} WHERE {column} = '{queue}'")
    };
    (
        DB::int(pool, count(jobs, jobs_queue)).await,
        DB::int(pool, count(outbox, outbox_queue)).await,
    )
}

async fn pending<DB: TestDb>(pool: &Pool<DB>, queue: &str) -> usize {
    durable::jobs(pool, &JobFilter::new().queue(queue).limit(10_000))
        .await
        .unwrap()
        .len()
}

async fn staged_jobs_follow_savepoints_chunks_and_a_failed_commit<DB: TestDb, StagedOrder>(
    pool: Pool<DB>,
) where
    StagedOrder: Order + Persist<DB>,
    signals_orm::model_signals::PostSaveSignal: durable::DurableSignal<StagedOrder>,
    durable_support::Effect: Persist<DB>,
{
    let queue = unique("staged");
    let p = pool.clone();
    let _receiver = durable::connect(
        post_save,
        unique("durable_outbox::staged"),
        JobOptions::new().queue(queue),
        move |job: Job<StagedOrder>| {
            let p = p.clone();
            async move { record_job(&p, &job, "").await }
        },
    );

    // A savepoint rolled back drops the job staged inside it; the others commit.
    let mut tx = Tx::begin(&pool).await.unwrap();
    StagedOrder::new("a", 1).save(&mut tx).await.unwrap();
    tx.savepoint().await.unwrap();
    StagedOrder::new("b", 1).save(&mut tx).await.unwrap();
    tx.rollback_to_savepoint().await.unwrap();
    StagedOrder::new("c", 1).save(&mut tx).await.unwrap();
    assert_eq!(
        pending(&pool, queue).await,
        0,
        "nothing is visible before the COMMIT"
    );
    tx.commit().await.unwrap();
    assert_eq!(where_jobs_are(&pool, queue).await, (0, 2), "in the outbox");
    assert_eq!(pending(&pool, queue).await, 2, "listed as pending");

    // 70 saves in a savepoint: 64 jobs are written to the outbox mid-way (rows, rolled back
    // with the savepoint), 6 are staged (dropped with it).
    let mut tx = Tx::begin(&pool).await.unwrap();
    tx.savepoint().await.unwrap();
    for i in 0..70 {
        StagedOrder::new(&format!("undone {i}"), 1)
            .save(&mut tx)
            .await
            .unwrap();
    }
    tx.rollback_to_savepoint().await.unwrap();
    // And 70 that stay: 64 written mid-way, 6 at the COMMIT.
    for i in 0..70 {
        StagedOrder::new(&format!("kept {i}"), 1)
            .save(&mut tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    assert_eq!(where_jobs_are(&pool, queue).await, (0, 72));

    refused_outbox_rows_fail_the_write_or_its_commit::<DB, StagedOrder>(&pool, queue).await;
    assert_eq!(where_jobs_are(&pool, queue).await, (0, 72));

    // A worker relays and runs exactly the committed ones.
    let worker = test_worker(&pool, queue).spawn();
    durable_support::drained(&pool, queue, Duration::from_mins(1)).await;
    worker.shutdown().await.unwrap();
    let mut ran: Vec<String> = effects(&pool)
        .await
        .into_iter()
        .map(|e| e.order_key)
        .collect();
    ran.sort();
    let mut expected: Vec<String> = ["a", "c"].map(str::to_owned).to_vec();
    expected.extend((0..70).map(|i| format!("kept {i}")));
    expected.sort();
    assert_eq!(ran, expected);
    assert_eq!(where_jobs_are(&pool, queue).await, (72, 0));
}

/// With an outbox that refuses the rows of `queue`: a write whose job is only staged succeeds
/// and its transaction's COMMIT fails, rolls back and says why; a save given the pool fails; a
/// transaction whose 64th job is written mid-way fails that save and can only roll back.
async fn refused_outbox_rows_fail_the_write_or_its_commit<DB: TestDb, StagedOrder>(
    pool: &Pool<DB>,
    queue: &str,
) where
    StagedOrder: Order + Persist<DB>,
{
    let pool = pool.clone();
    refuse_outbox_rows_of::<DB>(&pool, queue, true).await;
    let mut tx = Tx::begin(&pool).await.unwrap();
    StagedOrder::new("refused", 1)
        .save(&mut tx)
        .await
        .expect("the job is only staged");
    let error = tx.commit().await.expect_err("the outbox INSERT fails");
    assert!(
        matches!(&error, OrmError::Database { .. })
            && error
                .to_string()
                .contains("INSERT of the durable jobs before COMMIT"),
        "{error}"
    );
    let error = StagedOrder::new("refused too", 1)
        .save(&pool)
        .await
        .expect_err("its COMMIT fails");
    assert!(error.to_string().contains("durable jobs"), "{error}");
    let mut tx = Tx::begin(&pool).await.unwrap();
    for i in 0..63 {
        StagedOrder::new(&format!("refused {i}"), 1)
            .save(&mut tx)
            .await
            .unwrap();
    }
    let error = StagedOrder::new("the 64th", 1)
        .save(&mut tx)
        .await
        .expect_err("the outbox INSERT fails inside the save");
    assert!(error.to_string().contains("outbox"), "{error:#}");
    assert!(tx.rollback_only().is_some());
    assert!(matches!(
        tx.commit().await,
        Err(OrmError::RollbackOnly { .. })
    ));
    refuse_outbox_rows_of::<DB>(&pool, queue, false).await;
    let refused = DB::int(
        &pool,
        "SELECT COUNT(*) FROM orders WHERE key LIKE 'refused%' OR key = 'the 64th'".to_owned(),
    )
    .await;
    assert_eq!(refused, 0, "no write of a failed commit stays");
}

/// Makes the outbox refuse (or accept again) the rows of `queue`, with a trigger.
async fn refuse_outbox_rows_of<DB: TestDb>(pool: &Pool<DB>, queue: &str, refuse: bool) {
    let name = format!("refuse_{}", queue.replace('-', "_"));
    let sql = match (<DB as Backend>::NAME == "sqlite", refuse) {
        (true, true) => format!(
            "CREATE TRIGGER {name} BEFORE INSERT ON signals_orm_outbox \
             WHEN NEW.queue = '{queue}' BEGIN SELECT RAISE(ABORT, 'the outbox refuses'); END"
        ),
        (true, false) => format!("DROP TRIGGER {name}"),
        // The function lives in the test's schema (first on the search path), the trigger on
        // the shared outbox only acts on this test's queue.
        (false, true) => format!(
            "CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               IF NEW.queue = '{queue}' THEN RAISE EXCEPTION 'the outbox refuses'; END IF; \
               RETURN NEW; END $$; \
             CREATE TRIGGER {name} BEFORE INSERT ON apalis.signals_orm_outbox \
               FOR EACH ROW EXECUTE FUNCTION {name}();"
        ),
        (false, false) => format!("DROP TRIGGER {name} ON apalis.signals_orm_outbox"),
    };
    DB::exec(pool, sql).await;
}

async fn concurrent_relays_move_each_job_once<DB: TestDb, RelayedOrder>(pool: Pool<DB>)
where
    RelayedOrder: Order + Persist<DB>,
    signals_orm::model_signals::PostSaveSignal: durable::DurableSignal<RelayedOrder>,
{
    let queue = unique("relayed");
    let _receiver = durable::connect(
        post_save,
        unique("durable_outbox::relayed"),
        JobOptions::new().queue(queue),
        |_: Job<RelayedOrder>| async { Ok::<(), String>(()) },
    );
    // More than two relay batches (500 rows each), so that the relays overlap.
    let jobs = 1_200;
    let mut tx = Tx::begin(&pool).await.unwrap();
    for i in 0..jobs {
        RelayedOrder::new(&format!("relayed {i}"), 1)
            .save(&mut tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    assert_eq!(where_jobs_are(&pool, queue).await, (0, jobs));
    let relays: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            tokio::spawn(async move { durable::relay(&pool).await })
        })
        .collect();
    let mut moved = 0;
    for relay in relays {
        // Each relay succeeds: a job inserted twice into apalis's table would fail on its key.
        moved += relay.await.unwrap().expect("a relay pass");
    }
    // (On PostgreSQL the outbox is shared with the other tests: they may have moved some of
    // these, and these relays some of theirs.)
    until(
        "the other tests' relays",
        Duration::from_secs(30),
        || async { where_jobs_are(&pool, queue).await.1 == 0 },
    )
    .await;
    assert_eq!(where_jobs_are(&pool, queue).await, (jobs, 0));
    if <DB as Backend>::NAME == "sqlite" {
        // The database is this test's alone: the relays moved exactly its jobs.
        assert_eq!(moved, u64::try_from(jobs).unwrap(), "moved once");
    }
    assert_eq!(
        pending(&pool, queue).await,
        usize::try_from(jobs).unwrap(),
        "listed once each"
    );
}

async fn outer_orders<DB: TestDb>(pool: &Pool<DB>) -> i64 {
    DB::int(
        pool,
        "SELECT COUNT(*) FROM orders WHERE key LIKE 'outer%'".to_owned(),
    )
    .await
}

/// Jobs staged before a savepoint stay with the enclosing transaction when the savepoint is
/// rolled back: after a flush of 64 inside it (whose INSERT the rollback undoes), and after a
/// flush that failed inside an `atomic` block (the ORM's own savepoints, as `get_or_create`'s,
/// are such blocks).
async fn a_savepoint_keeps_the_enclosing_writes_jobs<DB: TestDb, EnclosingOrder>(pool: Pool<DB>)
where
    EnclosingOrder: Order + Persist<DB>,
    signals_orm::model_signals::PostSaveSignal: durable::DurableSignal<EnclosingOrder>,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    let queue = unique("enclosing");
    let _receiver = durable::connect(
        post_save,
        unique("durable_outbox::enclosing"),
        JobOptions::new().queue(queue),
        |_: Job<EnclosingOrder>| async { Ok::<(), String>(()) },
    );
    // 10 jobs staged, then 70 saves in a savepoint (64 of them flushed inside it), undone.
    let mut tx = Tx::begin(&pool).await.unwrap();
    for i in 0..10 {
        EnclosingOrder::new(&format!("outer {i}"), 1)
            .save(&mut tx)
            .await
            .unwrap();
    }
    tx.savepoint().await.unwrap();
    for i in 0..70 {
        EnclosingOrder::new(&format!("inner {i}"), 1)
            .save(&mut tx)
            .await
            .unwrap();
    }
    tx.rollback_to_savepoint().await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(outer_orders(&pool).await, 10);
    assert_eq!(
        where_jobs_are(&pool, queue).await,
        (0, 10),
        "each write's job"
    );

    // 10 more staged, then a block whose 64th save fails at the flush (the outbox refuses
    // rows while a marker row, written in the block, exists); the block is rolled back.
    let marker = refuse_while_marked::<DB>(&pool, queue).await;
    let mut tx = Tx::begin(&pool).await.unwrap();
    for i in 10..20 {
        EnclosingOrder::new(&format!("outer {i}"), 1)
            .save(&mut tx)
            .await
            .unwrap();
    }
    let block: Result<(), Box<dyn std::error::Error + Send + Sync>> = tx
        .atomic(|tx| {
            let mark = format!("INSERT INTO {marker} VALUES (1)");
            Box::pin(async move {
                sqlx::raw_sql(sqlx::AssertSqlSafe(mark))
                    .execute(tx.conn())
                    .await?;
                for i in 0..64 {
                    EnclosingOrder::new(&format!("inner {i}"), 1)
                        .save(&mut *tx)
                        .await?;
                }
                Ok(())
            })
        })
        .await;
    let error = block.expect_err("the 64th save's flush is refused");
    assert!(error.to_string().contains("outbox"), "{error:#}");
    tx.commit().await.unwrap();
    assert_eq!(outer_orders(&pool).await, 20);
    assert_eq!(
        where_jobs_are(&pool, queue).await,
        (0, 20),
        "each write's job"
    );
}

/// Makes the outbox refuse the rows of `queue` while the returned table has a row.
async fn refuse_while_marked<DB: TestDb>(pool: &Pool<DB>, queue: &str) -> String {
    let name = format!("marked_{}", queue.replace('-', "_"));
    if <DB as Backend>::NAME == "sqlite" {
        DB::exec(
            pool,
            format!(
                "CREATE TABLE {name} (x INTEGER); \
                 CREATE TRIGGER {name}_refuses BEFORE INSERT ON signals_orm_outbox \
                 WHEN NEW.queue = '{queue}' AND EXISTS (SELECT 1 FROM {name}) \
                 BEGIN SELECT RAISE(ABORT, 'the outbox refuses'); END"
            ),
        )
        .await;
        return name;
    }
    // The trigger is on the outbox every test shares: the marker table is named with its
    // schema, and looked at only for this test's queue.
    let schema = DB::strings(pool, "SELECT current_schema()::text".to_owned())
        .await
        .remove(0);
    let table = format!("\"{schema}\".{name}");
    DB::exec(
        pool,
        format!(
            "CREATE TABLE {table} (x INTEGER); \
             CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               IF NEW.queue = '{queue}' THEN \
                 IF EXISTS (SELECT 1 FROM {table}) THEN \
                   RAISE EXCEPTION 'the outbox refuses'; \
                 END IF; \
               END IF; \
               RETURN NEW; END $$; \
             CREATE TRIGGER {name} BEFORE INSERT ON apalis.signals_orm_outbox \
               FOR EACH ROW EXECUTE FUNCTION {name}();"
        ),
    )
    .await;
    table
}
