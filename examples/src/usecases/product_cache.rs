//! Use case 12: a product cache and sales analytics, "updating a cache or analytics
//! asynchronously".
//!
//! - **The cache** ([`ProductCache`], moka's `future::Cache`) serves product rows without a
//!   query; `on_commit` receivers invalidate a product's entry once a write of its row is
//!   committed: its save or delete, and an order's save or delete (an order takes its units
//!   from the product's stock with an `UPDATE` in the order's transaction, and a deleted order
//!   gives them back: those writes send `Order`'s signals, not `Product`'s).
//! - **The analytics** (`product_sales`) count units and orders per product, in a durable
//!   receiver of `Order`'s `post_save`: its job is enqueued in the order's transaction (a
//!   refused order has none), and the shop's worker ([`crate::jobs`]) counts it after the
//!   COMMIT, once per event id however often the job runs.
//!
//! # Why after COMMIT, and why a generation
//!
//! A cache invalidated *before* the COMMIT (in `post_save`, in the transaction) is refilled
//! with the old row by any reader that misses between the invalidation and the COMMIT: the
//! database still shows that reader the old row, and the cache keeps it until the next write.
//! After the COMMIT a reader can only read the new row, so the entry invalidated then is
//! refilled with the new one.
//!
//! One reader is still too slow for that: it misses, reads the old row, the write commits and
//! invalidates, and only then does it insert what it read. Invalidating first cannot prevent
//! it, nor can moka's `get_with` (which inserts whatever its loader returns, invalidated or
//! not). So each key has a **generation**, bumped by every invalidation: a reader takes a
//! [`Ticket`] (the key's generation) before it reads the database, and [`ProductCache::fill`]
//! inserts the row only if the generation has not moved since; the check and the insert hold
//! the same lock as the bump and the invalidation, so no invalidation falls between them. A
//! reader whose fill is refused still returns the row it read: it read it after taking its
//! ticket, so after every write committed before then.
//!
//! The promise (checked by `examples/tests/product_cache.rs`): a read that starts after a
//! write's `save` returned (its COMMIT done and its `on_commit` receivers run) never gets an
//! older row, from the cache or the database. Between a COMMIT and its `on_commit`
//! invalidation (microseconds, in the writer's task), a read may still get the previous row, as
//! it would have got it a moment earlier: the write is not "returned" yet.
//!
//! Every cache of the process hears every product's writes (the receivers are linked at build
//! time, and the events carry no database): a test process with several shops invalidates the
//! same key in each, which costs a miss, never a stale row.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use moka::future::Cache;
use signals_orm::durable::{Backoff, Job};
use signals_orm::{Committed, ModelExt as _, Tx, receiver};

use crate::db::ShopDb;
use crate::jobs::{ANALYTICS_QUEUE, Services};
use crate::models::{Customer, Order, Product};
use crate::run::Run;
use crate::{Error, on_db};

/// Every live [`ProductCache`] of the process, which the `on_commit` receivers invalidate.
static CACHES: Mutex<Vec<Weak<ProductCache>>> = Mutex::new(Vec::new());

/// A cache of product rows by key, invalidated after COMMIT by this module's `on_commit`
/// receivers, and refusing fills that an invalidation overtook (see the module's
/// documentation).
#[derive(Debug)]
pub struct ProductCache {
    entries: Cache<i64, Product>,
    /// Each key's generation: bumped by every invalidation. Held across a fill's check and
    /// insert, and across an invalidation's bump and removal.
    generations: tokio::sync::Mutex<HashMap<i64, u64>>,
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
    refused: AtomicU64,
}

/// A key's generation, taken by a reader before it reads the database ([`ProductCache::ticket`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    id: i64,
    generation: u64,
}

/// What a [`ProductCache`] did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Reads served from the cache.
    pub hits: u64,
    /// Reads that went to the database.
    pub misses: u64,
    /// Keys invalidated after a COMMIT (every cache of the process hears every write).
    pub invalidations: u64,
    /// Fills refused because an invalidation came after their ticket.
    pub refused_fills: u64,
}

/// Where a [`ProductCache::read`] found its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A cache hit.
    Cache,
    /// A miss: read from the database.
    Database,
}

impl ProductCache {
    /// An empty cache of at most `capacity` products, registered with the `on_commit`
    /// receivers for as long as it lives.
    #[must_use]
    pub fn new(capacity: u64) -> Arc<Self> {
        let cache = Arc::new(ProductCache {
            entries: Cache::new(capacity),
            generations: tokio::sync::Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        });
        let mut caches = CACHES.lock().unwrap_or_else(PoisonError::into_inner);
        caches.retain(|c| c.strong_count() > 0);
        caches.push(Arc::downgrade(&cache));
        cache
    }

    /// The product `id`: from the cache, or read from `db` and cached (unless an invalidation
    /// overtook the read). `None` for no such product (not cached).
    ///
    /// # Errors
    ///
    /// The database's.
    pub async fn get(&self, db: &ShopDb, id: i64) -> Result<Option<Product>, Error> {
        Ok(self.read(db, id).await?.map(|(product, _)| product))
    }

    /// [`get`](Self::get), also saying where the row came from.
    ///
    /// # Errors
    ///
    /// The database's.
    pub async fn read(&self, db: &ShopDb, id: i64) -> Result<Option<(Product, Source)>, Error> {
        if let Some(hit) = self.entries.get(&id).await {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(Some((hit, Source::Cache)));
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        // The ticket before the read: an invalidation after it refuses the fill below.
        let ticket = self.ticket(id).await;
        let Some(product) = on_db!(db, |pool| Product::get(pool, &id).await)? else {
            return Ok(None);
        };
        self.fill(ticket, product.clone()).await;
        Ok(Some((product, Source::Database)))
    }

    /// The generation of `id` now: take it before reading the row that [`fill`](Self::fill)
    /// will insert.
    pub async fn ticket(&self, id: i64) -> Ticket {
        let generations = self.generations.lock().await;
        Ticket {
            id,
            generation: generations.get(&id).copied().unwrap_or(0),
        }
    }

    /// Caches `product` (read after taking `ticket`) unless its key was invalidated since the
    /// ticket: then the row may be older than a committed write, and is dropped. Returns
    /// whether it was cached.
    pub async fn fill(&self, ticket: Ticket, product: Product) -> bool {
        let generations = self.generations.lock().await;
        if generations.get(&ticket.id).copied().unwrap_or(0) != ticket.generation {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        self.entries.insert(ticket.id, product).await;
        true
    }

    /// Removes `id` and bumps its generation: fills whose ticket came before are refused.
    pub async fn invalidate(&self, id: i64) {
        let mut generations = self.generations.lock().await;
        *generations.entry(id).or_insert(0) += 1;
        self.entries.invalidate(&id).await;
        self.invalidations.fetch_add(1, Ordering::Relaxed);
    }

    /// The cached row of `id`, if any, without counting a hit or reading the database.
    pub async fn peek(&self, id: i64) -> Option<Product> {
        self.entries.get(&id).await
    }

    /// What it did so far.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Relaxed),
            refused_fills: self.refused.load(Ordering::Relaxed),
        }
    }
}

/// Invalidates `id` in every live cache of the process.
async fn invalidate_everywhere(id: i64) {
    let caches: Vec<Arc<ProductCache>> = CACHES
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .filter_map(Weak::upgrade)
        .collect();
    for cache in caches {
        cache.invalidate(id).await;
    }
}

/// After a product's save commits (never before: see the module's documentation).
#[receiver(post_save, sender = Product, on_commit)]
async fn invalidate_saved_product(ev: Committed<Product>) {
    if let Some(id) = ev.instance.id {
        invalidate_everywhere(id).await;
    }
}

/// After a product's delete commits.
#[receiver(post_delete, sender = Product, on_commit)]
async fn invalidate_deleted_product(ev: Committed<Product>) {
    if let Some(id) = ev.instance.id {
        invalidate_everywhere(id).await;
    }
}

/// After an order's save commits: a new order took units from its product's stock (an
/// `UPDATE products` in the order's transaction, which sends no signal of `Product`).
#[receiver(post_save, sender = Order, on_commit)]
async fn invalidate_ordered_product(ev: Committed<Order>) {
    invalidate_everywhere(ev.instance.product_id).await;
}

/// After an order's delete commits: its units went back to the product's stock.
#[receiver(post_delete, sender = Order, on_commit)]
async fn invalidate_returned_product(ev: Committed<Order>) {
    invalidate_everywhere(ev.instance.product_id).await;
}

/// Counts a new order's units and the order in `product_sales`, after its COMMIT, in the shop's
/// worker.
///
/// Idempotent by event id: a job runs at least once, so possibly twice (a worker killed after
/// the count's COMMIT, before the job was marked done). [`record_sale`] inserts the event id
/// into `sales_events` (its key) and adds to the counts in the same transaction only when that
/// insert added a row: a second run finds the id and changes nothing.
#[receiver(
    post_save, sender = Order, durable, queue = ANALYTICS_QUEUE, max_attempts = 5,
    backoff = Backoff::Fixed(Duration::from_secs(1))
)]
async fn count_sale(job: Job<Order>) -> Result<(), Error> {
    if !job.created {
        return Ok(());
    }
    let db = &job.data::<Services>()?.db;
    record_sale(
        db,
        &job.event_id,
        job.instance.product_id,
        job.instance.quantity,
    )
    .await?;
    Ok(())
}

/// Counts a sale of `units` of `product` for the event `event_id`, once: returns `false`
/// (and changes nothing) when that event was counted already. One transaction.
///
/// # Errors
///
/// The database's.
pub async fn record_sale(
    db: &ShopDb,
    event_id: &str,
    product: i64,
    units: i64,
) -> Result<bool, sqlx::Error> {
    on_db!(db, |pool| {
        let mut tx = pool.begin().await?;
        let new = sqlx::query(
            "INSERT INTO sales_events (event_id, product_id, units) VALUES ($1, $2, $3) \
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event_id)
        .bind(product)
        .bind(units)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if new {
            sqlx::query(
                "INSERT INTO product_sales (product_id, units, orders) VALUES ($1, $2, 1) \
                 ON CONFLICT (product_id) DO UPDATE SET \
                 units = product_sales.units + excluded.units, orders = product_sales.orders + 1",
            )
            .bind(product)
            .bind(units)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(new)
    })
}

/// Units and orders counted per product: `(product name, units, orders)`, by name.
///
/// # Errors
///
/// The database's.
pub async fn sales(db: &ShopDb) -> Result<Vec<(String, i64, i64)>, sqlx::Error> {
    let sql = "SELECT p.name, s.units, s.orders FROM product_sales s \
               JOIN products p ON p.id = s.product_id ORDER BY p.name";
    on_db!(db, |pool| sqlx::query_as(sql).fetch_all(pool).await)
}

/// What the use case did.
#[derive(Debug)]
pub struct CacheRun {
    /// Each read: what was asked, the price and stock served, and from where.
    pub reads: Vec<(String, i64, i64, Source)>,
    /// The lamp's key.
    pub lamp: i64,
}

/// Reads `id` through `cache` and records the read as `what`.
async fn read(
    run: &Run,
    cache: &ProductCache,
    reads: &mut Vec<(String, i64, i64, Source)>,
    what: &str,
    id: i64,
) -> Result<(), Error> {
    let (product, source) = cache
        .read(&run.db, id)
        .await?
        .ok_or("the lamp is missing")?;
    run.trace.note(&format!(
        "   read ({what}): {} at {} cents, {} in stock, from the {}",
        product.name,
        product.price_cents,
        product.stock,
        match source {
            Source::Cache => "cache",
            Source::Database => "database",
        }
    ));
    reads.push((what.to_owned(), product.price_cents, product.stock, source));
    Ok(())
}

/// Adds a lamp and reads it through `cache` (a miss, then a hit); changes its price (the
/// entry is invalidated after COMMIT: the next read is a miss with the new price); changes it in
/// a transaction rolled back (nothing invalidated: a hit with the committed price); a
/// customer orders one lamp, then two (each order invalidates the lamp, whose stock changed,
/// and enqueues its sales count).
///
/// # Errors
///
/// When a step fails.
pub async fn run(run: &Run, cache: &ProductCache) -> Result<CacheRun, Error> {
    let mut reads = Vec::new();
    let mut lamp = Product {
        id: None,
        name: "Lamp".into(),
        stock: 5,
        price_cents: 4_500,
        image_path: String::new(),
    };
    on_db!(&run.db, |pool| lamp.save(pool).await)?;
    let id = lamp.id.ok_or("no key")?;
    read(run, cache, &mut reads, "first", id).await?;
    read(run, cache, &mut reads, "again", id).await?;

    lamp.price_cents = 3_900;
    on_db!(&run.db, |pool| lamp.save(pool).await)?;
    read(run, cache, &mut reads, "after the price change", id).await?;

    let mut rolled_back = lamp.clone();
    rolled_back.price_cents = 1;
    on_db!(&run.db, |pool| {
        let mut tx = Tx::begin(pool).await?;
        rolled_back.save(&mut tx).await?;
        tx.rollback().await
    })?;
    read(run, cache, &mut reads, "after a rolled-back change", id).await?;

    let mut buyer = Customer::new("barbara liskov", "liskov@example.com");
    on_db!(&run.db, |pool| buyer.save(pool).await)?;
    for quantity in [1, 2] {
        let mut order = Order {
            id: None,
            customer_id: buyer.id.ok_or("no key")?,
            email: buyer.email.clone(),
            product_id: id,
            quantity,
            total_cents: quantity * lamp.price_cents,
            paid: false,
        };
        on_db!(&run.db, |pool| order.save(pool).await)?;
    }
    read(run, cache, &mut reads, "after two orders", id).await?;
    Ok(CacheRun { reads, lamp: id })
}
