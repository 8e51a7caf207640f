//! What `#[receiver]` and `derive(Signal)` generate passes strict rustc and clippy lints
//! (`cargo clippy --all-targets -- -D warnings` checks this file), at module level and inside a
//! function body, and the receivers run.
#![deny(
    warnings,
    missing_docs,
    missing_debug_implementations,
    unused_qualifications,
    unreachable_pub,
    unused_results,
    unused_lifetimes,
    single_use_lifetimes,
    trivial_casts,
    trivial_numeric_casts,
    rust_2018_idioms,
    unsafe_code
)]
#![deny(clippy::pedantic)]

use std::sync::Mutex;

use signals_core::{FromEvent, Sender, Signal, receiver};

/// Sent when an order is placed.
#[derive(Signal, Debug)]
#[signal(name = "order_placed")]
pub struct OrderPlaced {
    /// The order.
    pub id: u64,
}

/// Sent when an order is cancelled.
#[derive(Signal, Debug)]
pub struct OrderCancelled {
    /// The order.
    pub id: u64,
}

/// The sender of order signals.
#[derive(Debug)]
pub struct Shop;

/// The order an order signal is about: a receiver parameter that fits both order signals.
#[derive(Debug, Clone, Copy)]
pub struct OrderId(pub u64);

impl<'e, X: ?Sized> FromEvent<'e, OrderPlaced, X> for OrderId {
    fn from_event(event: &'e OrderPlaced) -> Result<Self, signals_core::BoxError> {
        Ok(OrderId(event.id))
    }
}

impl<'e, X: ?Sized> FromEvent<'e, OrderCancelled, X> for OrderId {
    fn from_event(event: &'e OrderCancelled) -> Result<Self, signals_core::BoxError> {
        Ok(OrderId(event.id))
    }
}

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn log(entry: String) {
    LOG.lock().unwrap().push(entry);
}

#[receiver(OrderPlaced, sender = Shop, dispatch_uid = "lints-test-record", priority = 10)]
fn record(ev: &OrderPlaced) {
    log(format!("record {}", ev.id));
}

#[receiver(OrderPlaced, priority = -5)]
async fn email(ev: &OrderPlaced) -> Result<(), std::io::Error> {
    tokio::task::yield_now().await;
    if ev.id == 0 {
        return Err(std::io::Error::other("no order"));
    }
    log(format!("email {}", ev.id));
    Ok(())
}

#[receiver([OrderPlaced, OrderCancelled])]
fn audit(id: OrderId) -> Result<(), String> {
    if id.0 == 0 {
        return Err("no order".to_owned());
    }
    log(format!("audit {}", id.0));
    Ok(())
}

#[receiver(OrderCancelled, sender = Shop, crate = signals_core)]
async fn refund(ev: &OrderCancelled) {
    tokio::task::yield_now().await;
    log(format!("refund {}", ev.id));
}

async fn run() {
    #[receiver(OrderCancelled)]
    fn nested(ev: &OrderCancelled) {
        log(format!("nested {}", ev.id));
    }

    signals_core::send(Sender::of::<Shop>(), &OrderPlaced { id: 1 })
        .await
        .unwrap();
    assert_eq!(
        std::mem::take(&mut *LOG.lock().unwrap()),
        ["record 1", "audit 1", "email 1"]
    );

    signals_core::send(Sender::NONE, &OrderCancelled { id: 2 })
        .await
        .unwrap();
    let mut cancelled = std::mem::take(&mut *LOG.lock().unwrap());
    cancelled.sort();
    assert_eq!(cancelled, ["audit 2", "nested 2"]);

    signals_core::send(Sender::of::<Shop>(), &OrderCancelled { id: 3 })
        .await
        .unwrap();
    let mut cancelled = std::mem::take(&mut *LOG.lock().unwrap());
    cancelled.sort();
    assert_eq!(cancelled, ["audit 3", "nested 3", "refund 3"]);

    assert_eq!(<OrderPlaced as Signal>::NAME, "order_placed");
    assert_eq!(<OrderCancelled as Signal>::NAME, "OrderCancelled");
}

#[test]
fn generated_code_passes_strict_lints_and_receivers_run() {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(run());
}
