//! Use case 7: a custom signal, `PaymentSuccessful` (Django's `payment_successful =
//! Signal()`), with a link-time receiver that marks the order paid.

use signals_orm::{ModelExt as _, OrmError, Signal, receiver};

use crate::db::ShopDb;
use crate::models::Order;
use crate::on_db;

/// Sent by the payment step when a payment clears.
#[derive(Signal, Debug, Clone)]
#[signal(name = "payment_successful")]
pub struct PaymentSuccessful {
    /// The order paid.
    pub order_id: i64,
    /// Amount, in cents.
    pub amount_cents: i64,
    /// Where the order lives.
    pub db: ShopDb,
}

/// The sender of payment signals.
#[derive(Debug)]
pub struct PaymentGateway;

#[receiver(PaymentSuccessful, sender = PaymentGateway)]
async fn mark_order_paid(ev: &PaymentSuccessful) -> Result<(), OrmError> {
    on_db!(&ev.db, |pool| {
        let Some(mut order) = Order::get(pool, &ev.order_id).await? else {
            return Ok(());
        };
        order.paid = true;
        order.save_fields(&["paid"], pool).await?;
        Ok(())
    })
}
