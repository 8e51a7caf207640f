//! Use case 12: a product cache (moka) that `on_commit` receivers invalidate after a product's
//! row changes, and per-product sales counted by a durable receiver, run by the shop's worker
//! inside this program. Reads the lamp through the cache: a miss, a hit; after a committed
//! price change a miss with the new price; after a rolled-back one a hit with the committed
//! price; after two orders (whose transactions take the stock) a miss with the new stock. Then
//! the worker counts the two sales, once each. The use case, and why the invalidation comes
//! after COMMIT with a generation check, is `examples/src/usecases/product_cache.rs`.
//!
//! Receivers of other use cases run too, and the program names them at the end: every receiver
//! of the crate is linked into every program. The buyer's registration is heard by
//! `capitalize_name`, `create_profile`, `welcome_email` and `audit_log`; the product's and the
//! orders' saves by `audit_log`, and the orders' by `order_creation` (stock, confirmation) and
//! `delete_customer` (invoice). They hear the signals this use case listens to: nothing is
//! muted.
//!
//! `cargo run -p examples --example product_cache`

use examples::run::Run;
use examples::usecases::product_cache::{self, ProductCache};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), examples::Error> {
    let run = Run::program("product_cache").await?;
    let cache = ProductCache::new(1_000);
    let (done, jobs) = run
        .with_worker(run.act("admin", product_cache::run(&run, &cache)))
        .await?;
    done?;
    let stats = cache.stats();
    println!(
        "\ncache: {} hits, {} misses, {} invalidations after COMMIT, {} fills refused",
        stats.hits, stats.misses, stats.invalidations, stats.refused_fills
    );
    for (name, units, orders) in product_cache::sales(&run.db).await? {
        println!("sales counted: {name}, {units} units in {orders} orders");
    }
    println!(
        "jobs: {} enqueued, {} done, {} attempts retried, {} dead",
        jobs.enqueued, jobs.done, jobs.retried, jobs.dead
    );
    run.print_others(
        "product_cache",
        "they hear the buyer's registration, or the product's and the orders' saves as this \
         use case does (muting those would mute the cache's invalidation too)",
    );
    Ok(())
}
