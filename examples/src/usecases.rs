//! The ten use cases, each a function the example programs and the tests run.

use std::path::PathBuf;

use signals_orm::{ConnectOptions, ModelExt as _, OrmError, Sender, Through as _, Tx};

use crate::db::ShopDb;
use crate::models::{Customer, Order, Post, PostTags, Product, Tag, euros};
use crate::receivers::payments::{PaymentGateway, PaymentSuccessful};
use crate::receivers::sessions::{UserLoggedIn, UserLoggedOut};
use crate::run::Run;
use crate::{Error, on_db};

/// Saves a customer through the pool (its own transaction).
///
/// # Errors
///
/// The save's error (a receiver's included).
pub async fn register(db: &ShopDb, name: &str, email: &str) -> Result<Customer, OrmError> {
    let mut customer = Customer::new(name, email);
    on_db!(db, |pool| customer.save(pool).await)?;
    Ok(customer)
}

/// Use case 1: Registering customers sends each a welcome email after COMMIT; returns them.
///
/// # Errors
///
/// A failed registration.
pub async fn welcome_email(run: &Run) -> Result<Vec<Customer>, Error> {
    let ada = register(&run.db, "ada lovelace", "ada@example.com").await?;
    let grace = register(&run.db, "grace hopper", "grace@example.com").await?;
    Ok(vec![ada, grace])
}

/// Use case 2: A `pre_save` receiver normalises the name; returns the customer as stored.
///
/// # Errors
///
/// A failed save or fetch.
pub async fn capitalize_name(run: &Run) -> Result<Customer, Error> {
    let saved = register(&run.db, "  edsger   wybe DIJKSTRA ", "EWD@Example.com ").await?;
    let id = saved.id.ok_or("no key")?;
    let stored = on_db!(&run.db, |pool| Customer::get(pool, &id).await)?;
    stored.ok_or_else(|| "the customer vanished".into())
}

/// What happened to a product's image.
#[derive(Debug)]
pub struct ImageCleanup {
    /// The image file.
    pub path: PathBuf,
    /// Whether it existed after a delete that was rolled back.
    pub kept_after_rollback: bool,
    /// Whether it exists after the committed delete.
    pub exists_after_delete: bool,
}

/// Use case 3: Deleting a product removes its image file, only once the delete commits.
///
/// # Errors
///
/// A failed write or file operation.
pub async fn product_image_cleanup(run: &Run) -> Result<ImageCleanup, Error> {
    let path = run.media.join("lamp.png");
    std::fs::write(&path, b"\x89PNG\r\n\x1a\n a lamp")?;
    let mut lamp = Product {
        id: None,
        name: "Lamp".into(),
        stock: 3,
        price_cents: 4_500,
        image_path: path.display().to_string(),
    };
    on_db!(&run.db, |pool| lamp.save(pool).await)?;
    // Deleted inside a transaction that rolls back: the file must stay.
    on_db!(&run.db, |pool| {
        let mut tx = Tx::begin(pool).await?;
        lamp.clone().delete(&mut tx).await?;
        tx.rollback().await
    })?;
    let kept_after_rollback = path.exists();
    on_db!(&run.db, |pool| lamp.delete(pool).await)?;
    Ok(ImageCleanup {
        exists_after_delete: path.exists(),
        kept_after_rollback,
        path,
    })
}

/// Use case 4: A profile is created in the customer's transaction; a refused profile rolls both back.
/// Returns the registered customer and the refused registration's error.
///
/// # Errors
///
/// When the registration that should succeed fails.
pub async fn profile_in_same_transaction(run: &Run) -> Result<(Customer, OrmError), Error> {
    let barbara = register(&run.db, "barbara liskov", "barbara@example.com").await?;
    let refused = register(&run.db, "mallory", "mallory@blocked.example")
        .await
        .err()
        .ok_or("the blocked customer was saved")?;
    Ok((barbara, refused))
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

/// Use case 5: An order takes its units from stock in its transaction and the confirmation goes out
/// after COMMIT; an order for more than the stock fails and changes nothing.
///
/// # Errors
///
/// When a step that should succeed fails.
pub async fn order_creation(run: &Run) -> Result<Orders, Error> {
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

/// Use case 6: Every model change is audited with who/what/when; returns `actor action model` rows.
///
/// # Errors
///
/// A failed write.
pub async fn audit_log(run: &Run) -> Result<Vec<String>, Error> {
    let mut customer = register(&run.db, "niklaus wirth", "nw@example.com").await?;
    customer.email = "wirth@example.com".into();
    on_db!(&run.db, |pool| customer.save(pool).await)?;
    let mut post = Post {
        id: None,
        title: "Algorithms + Data Structures".into(),
    };
    on_db!(&run.db, |pool| post.save(pool).await)?;
    on_db!(&run.db, |pool| post.delete(pool).await)?;
    Ok(run
        .db
        .texts("SELECT actor || ' ' || action || ' ' || model FROM audit_log ORDER BY id")
        .await?)
}

/// Use case 7: A custom signal: a link-time receiver marks the order paid, a runtime one prints a
/// receipt until it is disconnected. Returns the receipts printed and whether the order is paid.
///
/// # Errors
///
/// A failed send or fetch.
pub async fn payment_signal(run: &Run, order: &Order) -> Result<(usize, bool), Error> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
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

/// Use case 8: Login and logout signals update the customer; returns it after login and after logout.
///
/// # Errors
///
/// A failed send or fetch.
pub async fn login_logout(run: &Run, customer: &Customer) -> Result<(Customer, Customer), Error> {
    let id = customer.id.ok_or("no key")?;
    let fetch = || async { on_db!(&run.db, |pool| Customer::get(pool, &id).await) };
    signals_orm::send(
        Sender::NONE,
        &UserLoggedIn {
            customer_id: id,
            db: run.db.clone(),
        },
    )
    .await?;
    let after_login = fetch().await?.ok_or("no customer")?;
    signals_orm::send(
        Sender::NONE,
        &UserLoggedOut {
            customer_id: id,
            db: run.db.clone(),
        },
    )
    .await?;
    Ok((after_login, fetch().await?.ok_or("no customer")?))
}

/// Use case 9: Tags keep their post counts through `m2m_changed`; returns `(tag, count)` by name.
///
/// # Errors
///
/// A failed write.
pub async fn tag_counts(run: &Run) -> Result<Vec<(String, i64)>, Error> {
    on_db!(&run.db, |pool| {
        let mut tags = Vec::new();
        for name in ["rust", "sql", "signals"] {
            let mut tag = Tag {
                id: None,
                name: name.into(),
                post_count: 0,
            };
            tag.save(pool).await?;
            tags.push(tag.id.ok_or("no key")?);
        }
        let [rust, sql, signals] = [tags[0], tags[1], tags[2]];
        let mut first = Post {
            id: None,
            title: "Typed signals".into(),
        };
        first.save(pool).await?;
        let mut second = Post {
            id: None,
            title: "Transactions".into(),
        };
        second.save(pool).await?;
        PostTags::of(&first).add(pool, [rust, signals]).await?;
        PostTags::of(&second)
            .add(pool, [rust, sql, signals])
            .await?;
        PostTags::of(&second).remove(pool, [signals, 9_999]).await?; // 9999 was never linked
        let sql_tag = Tag::get(pool, &sql).await?.ok_or("no tag")?;
        PostTags::of_target(&sql_tag)
            .add(pool, [first.id.ok_or("no key")?])
            .await?;
        PostTags::of(&first).clear(pool).await?;
        let counted = run
            .db
            .texts("SELECT name || '=' || CAST(post_count AS TEXT) FROM tags ORDER BY name")
            .await?;
        Ok::<_, Error>(
            counted
                .into_iter()
                .filter_map(|t| {
                    t.split_once('=')
                        .map(|(n, c)| (n.to_owned(), c.parse().unwrap_or(-1)))
                })
                .collect(),
        )
    })
}

/// Use case 10: Every receiver of the program, in dispatch order, with `file:line`.
#[must_use]
pub fn introspection() -> signals_orm::ReceiverTable {
    signals_orm::receivers()
}
