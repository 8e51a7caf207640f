//! The main job: a whole session of the shop, with every use case, a signal trace and a
//! summary. Nothing is muted: every receiver hears every signal it listens to, as in a real
//! application. The shop's durable worker ([`crate::jobs`]) runs in the session's process from
//! its start, writing the emails and counting the sales as their jobs commit; the session ends
//! when its queues are empty.

use std::fmt;

use crate::jobs::{DRAIN_TIMEOUT, JobStats, ShopWorker};
use crate::on_db;
use crate::run::Run;
use crate::usecases::product_cache::{self, CacheStats, ProductCache};
use crate::usecases::{
    audit_log, capitalize_name, create_profile, custom_signal, delete_customer, login_logout,
    order_creation, product_image_cleanup, tag_counts, welcome_email,
};
use crate::{Error, jobs};

/// What a shop session left behind.
#[derive(Debug)]
pub struct Summary {
    /// Rows per table.
    pub rows: Vec<(&'static str, i64)>,
    /// Recipients of the emails written, sorted.
    pub emails: Vec<String>,
    /// Image files removed after their product was deleted.
    pub files_removed: usize,
    /// The shop's durable jobs once its queues drained.
    pub jobs: JobStats,
    /// What the product cache did.
    pub cache: CacheStats,
    /// Sales counted by the analytics jobs: product name, units, orders.
    pub sales: Vec<(String, i64, i64)>,
    /// Lines of the signal trace.
    pub trace_lines: usize,
}

impl fmt::Display for Summary {
    /// Thirteen lines, the same on every run of the same backend.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (at, tables) in self.rows.chunks(4).enumerate() {
            let tables: Vec<String> = tables.iter().map(|(t, n)| format!("{t} {n}")).collect();
            let label = if at == 0 { "rows:" } else { "" };
            writeln!(f, "{label:<6}{}", tables.join(", "))?;
        }
        writeln!(
            f,
            "emails written: {} ({})",
            self.emails.len(),
            self.emails.join(", ")
        )?;
        writeln!(f, "image files removed: {}", self.files_removed)?;
        let jobs = &self.jobs;
        writeln!(
            f,
            "jobs enqueued: {} (mail {}, analytics {})",
            jobs.enqueued, jobs.mail, jobs.analytics
        )?;
        writeln!(f, "jobs run: {} done, {} waiting", jobs.done, jobs.waiting)?;
        writeln!(
            f,
            "attempts retried: {} (the mail relay greylists each confirmation's first attempt)",
            jobs.retried
        )?;
        writeln!(f, "jobs failed: {} dead", jobs.dead)?;
        let cache = &self.cache;
        writeln!(
            f,
            "product cache: {} reads, {} hits, {} from the database",
            cache.hits + cache.misses,
            cache.hits,
            cache.misses
        )?;
        writeln!(
            f,
            "cache invalidations after COMMIT: {}, fills refused: {}",
            cache.invalidations, cache.refused_fills
        )?;
        let sales: Vec<String> = self
            .sales
            .iter()
            .map(|(name, units, orders)| {
                let s = if *orders == 1 { "" } else { "s" };
                format!("{name} {units} units in {orders} order{s}")
            })
            .collect();
        writeln!(f, "sales counted: {}", sales.join(", "))?;
        write!(f, "signal trace: {} lines", self.trace_lines)
    }
}

/// Runs the session: the shop's worker starts; registrations, products, orders, a customer's
/// delete refused then cascading, payments, logins, tags, the product cache and the sales
/// counts, audit; then the worker finishes the jobs (at most [`DRAIN_TIMEOUT`]) and stops.
///
/// # Errors
///
/// When a step that should succeed fails (the refused ones are part of the session), or the
/// jobs do not finish in time.
pub async fn run(run: &Run) -> Result<Summary, Error> {
    let t = &run.trace;
    // Before the first write: it clears what an earlier session left in the shop's queues.
    let worker = ShopWorker::start(&run.db, &run.outbox).await?;
    let cache = ProductCache::new(1_000);
    t.note("== customers register (names normalised, profiles created, welcome emails enqueued)");
    let customers = run.act("signup-form", welcome_email::run(run)).await?;
    let _ = run.act("signup-form", capitalize_name::run(run)).await?;
    t.note("\n== a registration whose profile is refused: nothing is kept, no email");
    let (_, refused) = run.act("signup-form", create_profile::run(run)).await?;
    t.note(&format!("   refused: {refused:#}"));
    t.note("\n== a product with an image is added, then removed (file deleted after COMMIT)");
    let image = run.act("admin", product_image_cleanup::run(run)).await?;
    let files_removed = usize::from(!image.exists_after_delete);
    t.note("\n== orders: one placed, one beyond the stock refused");
    let orders = run
        .act(&customers[0].name, order_creation::run(run))
        .await?;
    t.note(&format!("   refused: {:#}", orders.refused));
    t.note(
        "\n== the buyer cannot be deleted while the order is unpaid (its invoice protects them)",
    );
    let mut buyer = on_db!(&run.db, |pool| orders.placed.customer(pool).await)?;
    let refused = run
        .act("admin", delete_customer::refused(run, &mut buyer))
        .await?;
    t.note(&format!("   refused: {refused}"));
    t.note("\n== payment succeeds (custom signal), which closes the invoice");
    let (receipts, paid) = run
        .act("payment-gateway", custom_signal::run(run, &orders.placed))
        .await?;
    t.note(&format!(
        "   receipts printed: {receipts}, order paid: {paid}"
    ));
    t.note(
        "\n== the buyer is deleted: their profile and order go too (cascade), with their signals",
    );
    let deleted = run
        .act("admin", delete_customer::delete(run, &mut buyer))
        .await?;
    let per_model: Vec<String> = deleted
        .iter()
        .map(|(model, rows)| format!("{model} {rows}"))
        .collect();
    let product = on_db!(&run.db, |pool| orders.placed.product(pool).await)?;
    t.note(&format!(
        "   deleted {} rows: {}; {} in stock again: {}",
        deleted.total(),
        per_model.join(", "),
        product.name,
        product.stock
    ));
    t.note("\n== login and logout (custom signals)");
    run.act(&customers[1].name, login_logout::run(run, &customers[1]))
        .await?;
    t.note("\n== tags change on posts (m2m_changed keeps counts)");
    let counts = run.act("editor", tag_counts::run(run)).await?;
    t.note(&format!("   post counts: {counts:?}"));
    t.note(
        "\n== a product cache, invalidated after COMMIT; sales counted by a durable job per order",
    );
    run.act("admin", product_cache::run(run, &cache)).await?;
    t.note("\n== audit log");
    let audit = run.act("auditor", audit_log::run(run)).await?;
    t.note(&format!(
        "   {} audit rows, e.g. {:?}",
        run.db.scalar("SELECT COUNT(*) FROM audit_log").await?,
        audit.last()
    ));
    t.note("\n== the worker finishes the jobs: emails written, sales counted");
    let jobs = worker.drain(DRAIN_TIMEOUT).await?;
    worker.stop().await?;
    for line in jobs::listing(&run.db).await? {
        t.note(&format!("   {line}"));
    }
    Ok(Summary {
        rows: run.db.row_counts().await?,
        emails: run.emails()?,
        files_removed,
        jobs,
        cache: cache.stats(),
        sales: product_cache::sales(&run.db).await?,
        trace_lines: t.lines().len(),
    })
}
