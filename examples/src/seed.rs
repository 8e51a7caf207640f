//! The shop's default rows, seeded after every migration run by a `post_migrate` receiver (as
//! a Django app seeds its defaults), so a fresh database and a migrated old one both have them.

use signals_orm::AnyTx;
use signals_orm::migrate::{PostMigrate, PostMigrateSignal};
use signals_orm::receiver;

use crate::on_tx;

/// The shipping methods every shop offers: code, name, price in cents.
pub const SHIPPING_METHODS: [(&str, &str, i64); 2] = [
    ("standard", "Standard (3-5 days)", 490),
    ("express", "Express (next day)", 1_490),
];

/// Seeds [`SHIPPING_METHODS`] in `post_migrate`'s transaction. Idempotent: `post_migrate` comes
/// with every run of `migrate`, and a row that exists (perhaps edited since) is left alone.
#[receiver(PostMigrateSignal)]
async fn seed_shipping_methods(_ev: PostMigrate<'_>, mut tx: AnyTx<'_>) -> Result<(), sqlx::Error> {
    for (code, name, price_cents) in SHIPPING_METHODS {
        on_tx!(tx.reborrow(), |t| sqlx::query(
            "INSERT INTO shipping_methods (code, name, price_cents) VALUES ($1, $2, $3) \
             ON CONFLICT (code) DO NOTHING"
        )
        .bind(code)
        .bind(name)
        .bind(price_cents)
        .execute(t.conn())
        .await
        .map(drop))?;
    }
    Ok(())
}
