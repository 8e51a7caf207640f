//! The product cache and the sales analytics (`examples/src/usecases/product_cache.rs`), on a
//! SQLite file and, when `DATABASE_URL` is set, on PostgreSQL (a schema of its own):
//!
//! - readers racing a writer never get a row older than the last write whose `save` returned;
//! - the interleavings behind it, forced step by step: a fill overtaken by an invalidation is
//!   refused, and a read inside the writer's open transaction caches the old row, which the
//!   invalidation after COMMIT removes;
//! - the sales counts after the shop's worker drained the queue: once per order, a rolled-back
//!   order not at all, a job run twice counting once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

use examples::db::ShopDb;
use examples::models::Product;
use examples::on_db;
use examples::run::Run;
use examples::trace::Trace;
use examples::usecases::product_cache::{self, ProductCache, Source};
use signals_orm::{ModelExt as _, Tx};

/// A fresh shop database: a SQLite file in `dir`, or a PostgreSQL schema of its own (`None`
/// without `DATABASE_URL`, announced on stderr).
async fn database(postgres: bool, dir: &std::path::Path, name: &str) -> Option<ShopDb> {
    if !postgres {
        return Some(ShopDb::sqlite_file(&dir.join("shop.db")).await.unwrap());
    }
    let Ok(url) = std::env::var("DATABASE_URL") else {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "NOTE: DATABASE_URL is not set: {name} on PostgreSQL is SKIPPED"
        );
        return None;
    };
    let schema = format!("cache_{name}_{}", std::process::id());
    Some(ShopDb::postgres(&url, Some(&schema)).await.unwrap())
}

/// Drops the PostgreSQL schema of a test (nothing for SQLite, whose folder goes).
async fn cleanup(db: &ShopDb) {
    if let ShopDb::Postgres(pool) = db {
        let schema: String = sqlx::query_scalar("SELECT current_schema()")
            .fetch_one(pool)
            .await
            .unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA \"{schema}\" CASCADE"
        )))
        .execute(pool)
        .await
        .unwrap();
    }
}

/// Saves a new product priced `price_cents`; returns it.
async fn product(db: &ShopDb, price_cents: i64) -> Product {
    let mut product = Product {
        id: None,
        name: "Lamp".into(),
        stock: 100,
        price_cents,
        image_path: String::new(),
    };
    on_db!(db, |pool| product.save(pool).await).unwrap();
    product
}

/// Held by each scenario while it runs. The caches' `on_commit` receivers hear every product
/// write of the process, and every test's database numbers its products from 1: one test's
/// saves would invalidate another test's cached product 1 (a miss, never a stale row, but the
/// scenarios assert what is cached).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Runs each scenario on SQLite and on PostgreSQL: `NAME::sqlite` and `NAME::postgres`.
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                let _alone = super::ONE_AT_A_TIME.lock().await;
                super::$scenario(false).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                let _alone = super::ONE_AT_A_TIME.lock().await;
                super::$scenario(true).await;
            }
        }
    )*};
}

on_both_backends!(
    readers_racing_a_writer_never_get_a_row_older_than_the_last_returned_save,
    a_fill_overtaken_by_an_invalidation_is_refused,
    a_read_inside_the_open_transaction_is_invalidated_after_commit,
    sales_are_counted_once_per_committed_order_after_the_worker_drained,
);

/// How many saves the writer makes in the race.
const WRITES: i64 = 150;

/// Four readers read the product through the cache in a loop while a writer saves it
/// [`WRITES`] times, raising its price by one cent each time. After each `save` returns (its
/// COMMIT done, its `on_commit` invalidation run) the writer publishes the price; a reader
/// takes the published price before each read, and the row it gets must be at least that
/// recent. Both the cache's paths are exercised: the readers' misses fill the cache between
/// writes, and their hits serve it.
async fn readers_racing_a_writer_never_get_a_row_older_than_the_last_returned_save(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = database(postgres, dir.path(), "race").await else {
        return;
    };
    let base = 10_000;
    let mut lamp = product(&db, base).await;
    let id = lamp.id.unwrap();
    let cache = ProductCache::new(100);
    let published = Arc::new(AtomicI64::new(base));
    let done = Arc::new(AtomicBool::new(false));

    let readers: Vec<_> = (0..4)
        .map(|_| {
            let (db, cache) = (db.clone(), Arc::clone(&cache));
            let (published, done) = (Arc::clone(&published), Arc::clone(&done));
            tokio::spawn(async move {
                let mut reads = 0u64;
                let mut stale = Vec::new();
                while !done.load(Ordering::SeqCst) {
                    let floor = published.load(Ordering::SeqCst);
                    let (row, source) = cache.read(&db, id).await.unwrap().unwrap();
                    if row.price_cents < floor {
                        stale.push((floor, row.price_cents, source));
                    }
                    reads += 1;
                    // A hit never waits: without this, four readers would keep the runtime's
                    // threads and the writer would never run.
                    tokio::task::yield_now().await;
                }
                (reads, stale)
            })
        })
        .collect();

    for write in 1..=WRITES {
        lamp.price_cents = base + write;
        on_db!(&db, |pool| lamp.save(pool).await).unwrap();
        published.store(lamp.price_cents, Ordering::SeqCst);
        // Let the readers run between writes, on a runtime whose threads they share.
        tokio::task::yield_now().await;
    }
    done.store(true, Ordering::SeqCst);

    let mut reads = 0;
    for reader in readers {
        let (n, stale) = reader.await.unwrap();
        assert!(
            stale.is_empty(),
            "rows older than the last returned save: (published, got, from) {stale:?}"
        );
        reads += n;
    }
    // After the race: the cache serves the last write, from the database then from the cache.
    let last = base + WRITES;
    let first = cache.read(&db, id).await.unwrap().unwrap();
    let again = cache.read(&db, id).await.unwrap().unwrap();
    assert_eq!((first.0.price_cents, again.0.price_cents), (last, last));
    let stats = cache.stats();
    assert!(
        stats.invalidations >= u64::try_from(WRITES).unwrap(),
        "each save invalidated: {stats:?}"
    );
    assert!(stats.misses > 0 && reads > 0, "{stats:?}, {reads} reads");
    eprintln!("race on {}: {reads} reads, {stats:?}", db.backend());
    cleanup(&db).await;
}

/// The interleaving the generation prevents, step by step: a reader takes its ticket and reads
/// the old row; the writer's save commits and invalidates; the reader's fill comes last. The
/// fill is refused (it would have cached the old row for good), and the next read gets the new
/// row.
async fn a_fill_overtaken_by_an_invalidation_is_refused(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = database(postgres, dir.path(), "overtaken").await else {
        return;
    };
    let mut lamp = product(&db, 100).await;
    let id = lamp.id.unwrap();
    let cache = ProductCache::new(100);

    let ticket = cache.ticket(id).await;
    let old = on_db!(&db, |pool| Product::get(pool, &id).await)
        .unwrap()
        .unwrap();
    lamp.price_cents = 200;
    on_db!(&db, |pool| lamp.save(pool).await).unwrap();
    assert!(
        !cache.fill(ticket, old).await,
        "the old row must not be cached"
    );
    assert_eq!(cache.peek(id).await, None);
    assert_eq!(cache.stats().refused_fills, 1);

    let (row, source) = cache.read(&db, id).await.unwrap().unwrap();
    assert_eq!((row.price_cents, source), (200, Source::Database));
    assert_eq!(cache.peek(id).await.map(|p| p.price_cents), Some(200));
    // A ticket taken after the write fills: nothing overtook it.
    let ticket = cache.ticket(id).await;
    assert!(cache.fill(ticket, row).await);
    cleanup(&db).await;
}

/// Why the invalidation waits for the COMMIT: a reader reading while the write's transaction is
/// open gets the old row (the new one is not committed) and caches it. Had the invalidation
/// run in the transaction, before that read, the old row would stay cached; run after the
/// COMMIT, it removes it, and the next read gets the new row.
async fn a_read_inside_the_open_transaction_is_invalidated_after_commit(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = database(postgres, dir.path(), "open_tx").await else {
        return;
    };
    let mut lamp = product(&db, 100).await;
    let id = lamp.id.unwrap();
    let cache = ProductCache::new(100);
    lamp.price_cents = 300;
    on_db!(&db, |pool| {
        let mut tx = Tx::begin(pool).await.unwrap();
        lamp.save(&mut tx).await.unwrap();
        // Another connection, during the open transaction: the committed (old) row, cached.
        let (during, source) = cache.read(&db, id).await.unwrap().unwrap();
        assert_eq!((during.price_cents, source), (100, Source::Database));
        assert_eq!(cache.peek(id).await.map(|p| p.price_cents), Some(100));
        let report = tx.commit().await.unwrap();
        assert!(
            report.ran >= 1,
            "the invalidation ran after COMMIT: {report:?}"
        );
    });
    assert_eq!(cache.peek(id).await, None, "invalidated after COMMIT");
    let (after, source) = cache.read(&db, id).await.unwrap().unwrap();
    assert_eq!((after.price_cents, source), (300, Source::Database));
    cleanup(&db).await;
}

/// The use case with the shop's worker: two orders of the lamp are counted once each, after the
/// queue drained; their confirmation emails exist; a sales job run again for the same event
/// changes nothing.
async fn sales_are_counted_once_per_committed_order_after_the_worker_drained(postgres: bool) {
    let dir = tempfile::tempdir().unwrap();
    let Some(db) = database(postgres, dir.path(), "sales").await else {
        return;
    };
    let run = Run::with_db(dir.path(), db, Trace::default()).unwrap();
    let cache = ProductCache::new(100);
    let (outcome, jobs) = run
        .with_worker(run.act("admin", product_cache::run(&run, &cache)))
        .await
        .unwrap();
    let outcome = outcome.unwrap();
    assert_eq!((jobs.waiting, jobs.dead), (0, 0), "every job ran: {jobs:?}");
    assert_eq!(
        product_cache::sales(&run.db).await.unwrap(),
        [("Lamp".to_owned(), 3, 2)],
        "1 + 2 units, 2 orders"
    );
    assert_eq!(
        run.emails().unwrap(),
        [
            "liskov@example.com",
            "liskov@example.com",
            "liskov@example.com"
        ],
        "a welcome and two confirmations, written by the worker"
    );
    // What the reads served (the values are the committed rows whatever else the process does).
    let served: Vec<(&str, i64, i64)> = outcome
        .reads
        .iter()
        .map(|(what, price, stock, _)| (what.as_str(), *price, *stock))
        .collect();
    assert_eq!(
        served,
        [
            ("first", 4_500, 5),
            ("again", 4_500, 5),
            ("after the price change", 3_900, 5),
            ("after a rolled-back change", 3_900, 5),
            ("after two orders", 3_900, 2),
        ]
    );
    // The reads that must have gone to the database: the first, and each after a committed
    // write (an invalidation). The others are hits unless another test of this process
    // invalidated the same key meanwhile (every cache hears every write).
    for at in [0, 2, 4] {
        assert_eq!(outcome.reads[at].3, Source::Database, "{:?}", outcome.reads);
    }

    // Idempotent by event id: the counted events, counted again, change nothing.
    let events = run
        .db
        .texts("SELECT event_id FROM sales_events ORDER BY event_id")
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    for event in &events {
        let counted = product_cache::record_sale(&run.db, event, outcome.lamp, 2)
            .await
            .unwrap();
        assert!(!counted, "event {event} counted twice");
    }
    assert_eq!(
        product_cache::sales(&run.db).await.unwrap(),
        [("Lamp".to_owned(), 3, 2)]
    );
    // The events are the analytics jobs' ids: one per order, none for anything else.
    let analytics = run
        .db
        .scalar("SELECT COUNT(*) FROM sales_events")
        .await
        .unwrap();
    assert_eq!(analytics, 2);
    cleanup(&run.db).await;
}
