//! Use case 5: saving an order takes its units from stock in the same transaction (failing if
//! there are too few, which undoes the order), and enqueues the confirmation email in that
//! transaction too: a durable receiver, whose job the shop's worker ([`crate::jobs`]) runs after
//! the COMMIT. The mail relay greylists: it refuses each confirmation's first attempt ("451 try
//! again later"), and the job is delivered on its second attempt, 1 s later.

use std::time::Duration;

use signals_orm::durable::{Backoff, Job};
use signals_orm::{AnyTx, BoxError, ModelExt as _, OrmError, PostSave, receiver};

use crate::db::{self, ShopDb};
use crate::jobs::{MAIL_QUEUE, Services};
use crate::mail::{self, MailError};
use crate::models::{Order, Product, euros};
use crate::run::Run;
use crate::usecases::register;
use crate::{Error, on_db};

/// Not enough units in stock.
#[derive(Debug, thiserror::Error)]
#[error("out of stock: product {product} has fewer than {quantity} units")]
pub struct OutOfStock {
    /// The product.
    pub product: i64,
    /// The units ordered.
    pub quantity: i64,
}

#[receiver(post_save, sender = Order)]
async fn take_from_stock(ev: PostSave<'_, Order>, mut tx: AnyTx<'_>) -> Result<(), BoxError> {
    if !ev.created {
        return Ok(());
    }
    let order = ev.instance;
    let updated = db::execute(
        &mut tx,
        "UPDATE products SET stock = stock - $1 WHERE id = $2 AND stock >= $1",
        &[order.quantity, order.product_id],
    )
    .await?;
    if updated == 0 {
        return Err(OutOfStock {
            product: order.product_id,
            quantity: order.quantity,
        }
        .into());
    }
    Ok(())
}

/// Idempotent by event id, as the welcome email is: [`mail::send_once`] names the `.eml` file
/// (and the SMTP `Message-ID`) after `job.event_id`, the same on every attempt, so a job run
/// twice (a crash between the mail and the job's acknowledgement) still leaves one mail.
#[receiver(
    post_save, sender = Order, durable, queue = MAIL_QUEUE, max_attempts = 5,
    backoff = Backoff::Fixed(Duration::from_secs(1))
)]
async fn send_order_confirmation(job: Job<Order>) -> Result<(), BoxError> {
    if !job.created {
        return Ok(());
    }
    // The relay greylists: a first attempt is refused, a retry goes through (what the durable
    // job's retries are for; the shop's summary counts the retried attempts).
    if job.attempt == 1 {
        return Err(MailError::Greylisted(job.attempt).into());
    }
    let outbox = &job.data::<Services>()?.outbox;
    let order = &job.instance;
    let body = format!(
        "Order {} confirmed: {} unit(s) of product {}, {} EUR.\n",
        order.id.unwrap_or_default(),
        order.quantity,
        order.product_id,
        euros(order.total_cents)
    );
    mail::send_once(
        outbox,
        &job.event_id,
        &order.email,
        "Your order is confirmed",
        body,
    )
    .await?;
    Ok(())
}

/// The outcome of the order use case.
#[derive(Debug)]
pub struct Orders {
    /// The order that went through.
    pub placed: Order,
    /// Why the second order failed.
    pub refused: OrmError,
    /// Stock of the product after the first order.
    pub stock_after_order: i64,
    /// Stock after the refused order (unchanged).
    pub stock_after_refusal: i64,
}

async fn stock(db: &ShopDb, product: i64) -> Result<i64, Error> {
    let found = on_db!(db, |pool| Product::get(pool, &product).await)?;
    Ok(found.ok_or("no such product")?.stock)
}

/// Registers a buyer and adds a product with two units; an order for both goes through, a
/// second order for one more is refused and changes nothing.
///
/// # Errors
///
/// When a step that should succeed fails.
pub async fn run(run: &Run) -> Result<Orders, Error> {
    let buyer = register(&run.db, "alan turing", "alan@example.com").await?;
    let mut chair = Product {
        id: None,
        name: "Chair".into(),
        stock: 2,
        price_cents: 12_000,
        image_path: String::new(),
    };
    on_db!(&run.db, |pool| chair.save(pool).await)?;
    let (buyer_id, chair_id) = (buyer.id.ok_or("no key")?, chair.id.ok_or("no key")?);
    let order = |quantity: i64| Order {
        id: None,
        customer_id: buyer_id,
        email: buyer.email.clone(),
        product_id: chair_id,
        quantity,
        total_cents: quantity * 12_000,
        paid: false,
    };
    let mut placed = order(2);
    on_db!(&run.db, |pool| placed.save(pool).await)?;
    let stock_after_order = stock(&run.db, chair_id).await?;
    let mut too_many = order(1);
    let refused = on_db!(&run.db, |pool| too_many.save(pool).await)
        .err()
        .ok_or("an order beyond the stock went through")?;
    Ok(Orders {
        placed,
        refused,
        stock_after_order,
        stock_after_refusal: stock(&run.db, chair_id).await?,
    })
}
