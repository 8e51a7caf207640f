//! Use case 11: deleting a customer, with Django's delete collector. Their profile and orders
//! go with them (`on_delete = cascade`), each row with its own `pre_delete` / `post_delete` in
//! the delete's transaction, and the delete reports the rows per model. An unpaid order has an
//! open invoice, and an invoice protects its customer (`on_delete = protect`): until the order
//! is paid, the delete is refused before any signal and changes nothing.

use signals_orm::query::Deleted;
use signals_orm::{
    AnyTx, Model as _, ModelExt as _, OrmError, PostSave, PreDelete, Sender, receiver,
};

use crate::db;
use crate::models::{Customer, Invoice, Order, Product};
use crate::run::Run;
use crate::usecases::custom_signal::{PaymentGateway, PaymentSuccessful};
use crate::usecases::register;
use crate::{Error, on_db, on_tx};

/// An order placed unpaid opens an invoice; once the order is saved paid, its invoice goes.
#[receiver(post_save, sender = Order)]
async fn keep_invoice(ev: PostSave<'_, Order>, tx: AnyTx<'_>) -> Result<(), OrmError> {
    let order = ev.instance;
    let Some(order_id) = order.id else {
        return Ok(());
    };
    on_tx!(tx, |t| {
        if ev.created && !order.paid {
            let mut invoice = Invoice {
                id: None,
                customer_id: order.customer_id,
                order_id,
            };
            invoice.save(t).await?;
        } else if order.paid {
            Invoice::of(order).delete(t).await?;
        }
        Ok(())
    })
}

/// A deleted order (a cascade from its customer included) gives its units back to stock, in the
/// delete's transaction.
#[receiver(pre_delete, sender = Order)]
async fn return_to_stock(ev: PreDelete<'_, Order>, mut tx: AnyTx<'_>) -> Result<(), sqlx::Error> {
    let order = ev.instance;
    db::execute(
        &mut tx,
        "UPDATE products SET stock = stock + $1 WHERE id = $2",
        &[order.quantity, order.product_id],
    )
    .await?;
    Ok(())
}

/// Deletes `customer` and every row that cascades from them; the rows deleted per model.
///
/// # Errors
///
/// [`OrmError::Protected`] while they have an open invoice; a receiver's or the database's error.
pub async fn delete(run: &Run, customer: &mut Customer) -> Result<Deleted, OrmError> {
    on_db!(&run.db, |pool| customer.delete(pool).await)
}

/// Tries to delete `customer`, who has an unpaid order; returns the refusal.
///
/// # Errors
///
/// When the delete goes through, or fails otherwise.
pub async fn refused(run: &Run, customer: &mut Customer) -> Result<OrmError, Error> {
    match delete(run, customer).await {
        Ok(deleted) => {
            Err(format!("a customer with an unpaid order was deleted: {deleted:?}").into())
        }
        Err(error @ OrmError::Protected { .. }) => Ok(error),
        Err(other) => Err(other.into()),
    }
}

/// What deleting a customer did.
#[derive(Debug)]
pub struct Deletion {
    /// Why the delete was refused while the order was unpaid.
    pub refused: OrmError,
    /// The rows deleted per model once it was paid.
    pub deleted: Deleted,
    /// Stock of the product: after the order, then after the delete (the units are back).
    pub stock: (i64, i64),
}

/// Registers a customer (who gets a profile), who orders one desk of three in stock; deleting
/// them is refused while the order is unpaid; once the payment signal has marked it paid, their
/// delete takes their profile and order with it and the desk is back in stock.
///
/// # Errors
///
/// When a step that should succeed fails, or the refused delete goes through.
pub async fn run(run: &Run) -> Result<Deletion, Error> {
    let mut buyer = register(&run.db, "donald knuth", "knuth@example.com").await?;
    let mut desk = Product {
        id: None,
        name: "Desk".into(),
        stock: 3,
        price_cents: 30_000,
        image_path: String::new(),
    };
    on_db!(&run.db, |pool| desk.save(pool).await)?;
    let desk_id = desk.id.ok_or("no key")?;
    let mut order = Order {
        id: None,
        customer_id: buyer.id.ok_or("no key")?,
        email: buyer.email.clone(),
        product_id: desk_id,
        quantity: 1,
        total_cents: 30_000,
        paid: false,
    };
    on_db!(&run.db, |pool| order.save(pool).await)?;
    let stock = || async {
        let found = on_db!(&run.db, |pool| Product::get(pool, &desk_id).await)?;
        Ok::<_, Error>(found.ok_or("no such product")?.stock)
    };
    let after_order = stock().await?;
    let refused = refused(run, &mut buyer).await?;
    let payment = PaymentSuccessful {
        order_id: order.id.ok_or("no key")?,
        amount_cents: order.total_cents,
        db: run.db.clone(),
    };
    signals_orm::send(Sender::of::<PaymentGateway>(), &payment).await?;
    let deleted = delete(run, &mut buyer).await?;
    Ok(Deletion {
        refused,
        deleted,
        stock: (after_order, stock().await?),
    })
}
