//! Use case 5: saving an order takes its units from stock in the same transaction (failing if
//! there are too few, which undoes the order), and the confirmation email goes out only after
//! COMMIT.

use signals_orm::{AnyTx, BoxError, Committed, PostSave, receiver};

use crate::db;
use crate::mail::{self, MailError};
use crate::models::{Order, euros};

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

#[receiver(post_save, sender = Order, on_commit)]
async fn send_order_confirmation(ev: Committed<Order>) -> Result<(), MailError> {
    if !ev.created {
        return Ok(());
    }
    let order = ev.instance;
    let body = format!(
        "Order {} confirmed: {} unit(s) of product {}, {} EUR.
",
        order.id.unwrap_or_default(),
        order.quantity,
        order.product_id,
        euros(order.total_cents)
    );
    mail::send(&order.email, "Your order is confirmed", body).await
}
