//! Use case 7: a custom signal, `PaymentSuccessful` (Django's `payment_successful = Signal()`):
//! a struct deriving `Signal`, a link-time receiver that marks the order paid, and a runtime
//! receiver that prints a receipt until it is disconnected.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use signals_orm::model_signals::{PostSaveSignal, PreSaveSignal};
use signals_orm::{ConnectOptions, ModelExt as _, Mute, OrmError, Sender, Signal, receiver};

use crate::db::ShopDb;
use crate::models::{Order, Product, euros};
use crate::run::Run;
use crate::usecases::register;
use crate::{Error, on_db};

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

/// Connects a receipt printer at runtime, sends a payment of `order`, disconnects the printer
/// and sends again. Returns the receipts printed (one) and whether the order is paid.
///
/// # Errors
///
/// A failed send or fetch.
pub async fn run(run: &Run, order: &Order) -> Result<(usize, bool), Error> {
    let receipts = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&receipts);
    let printer = signals_orm::connect_with(
        ConnectOptions::new().sender::<PaymentGateway>(),
        move |ev: &PaymentSuccessful| {
            counter.fetch_add(1, Ordering::SeqCst);
            println!(
                "    receipt: order {} paid {} EUR",
                ev.order_id,
                euros(ev.amount_cents)
            );
        },
    );
    let id = order.id.ok_or("no key")?;
    let payment = PaymentSuccessful {
        order_id: id,
        amount_cents: order.total_cents,
        db: run.db.clone(),
    };
    signals_orm::send(Sender::of::<PaymentGateway>(), &payment).await?;
    printer.disconnect();
    signals_orm::send(Sender::of::<PaymentGateway>(), &payment).await?;
    let paid = on_db!(&run.db, |pool| Order::get(pool, &id).await)?.is_some_and(|o| o.paid);
    Ok((receipts.load(Ordering::SeqCst), paid))
}

/// Saves an unpaid order of two chairs to pay in [`run`] (the shop pays the one its customer
/// placed instead), with its customer and product.
///
/// # Errors
///
/// A failed save.
pub async fn unpaid_order(run: &Run) -> Result<Order, Error> {
    let customer = register(&run.db, "alan turing", "alan@example.com").await?;
    let mut chair = Product {
        id: None,
        name: "Chair".into(),
        stock: 2,
        price_cents: 12_000,
        image_path: String::new(),
    };
    on_db!(&run.db, |pool| chair.save(pool).await)?;
    let mut order = Order {
        id: None,
        customer_id: customer.id.ok_or("no key")?,
        email: customer.email,
        product_id: chair.id.ok_or("no key")?,
        quantity: 2,
        total_cents: 24_000,
        paid: false,
    };
    on_db!(&run.db, |pool| order.save(pool).await)?;
    Ok(order)
}

/// What the `custom_signal` program mutes around [`unpaid_order`] and [`run`]: the save
/// signals, `pre_save` and `post_save` of every model (the customer's, the product's and the
/// order's INSERT, and the `paid` update by `mark_order_paid`), heard by the receivers of
/// `capitalize_name`, `create_profile`, `welcome_email`, `order_creation`, `delete_customer`
/// and `audit_log`. What is left is the payment signal and its two receivers.
pub fn mute_others() -> Mute {
    Mute::new()
        .signal::<PreSaveSignal>()
        .signal::<PostSaveSignal>()
}
