//! Receiver results: a signal declares its reply type (`#[signal(reply = T)]`), its receivers
//! return it (or a `Result` of it), and `send_collect` gives the caller each receiver's name
//! and reply in dispatch order, as Django's `send` returns `[(receiver, response), ..]`.
//! Rules: `docs/dispatch.md` (Receiver results).
//!
//! Runtime connections are process-wide and tests run in parallel, so each test has signals of
//! its own.

use std::sync::Mutex;

use signals_core::testing::Fake;
use signals_core::{ConnectOptions, Mute, SendError, Sender, Signal, receiver};

/// Which payment processor handles a payment: Django's "which plugins handle this" vote.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Handles {
    processor: &'static str,
    fee_cents: u32,
}

#[derive(Signal, Debug)]
#[signal(reply = Option<Handles>)]
struct PaymentRequested {
    method: &'static str,
}

struct Checkout;
struct Refunds;

#[receiver(PaymentRequested)]
fn cards(ev: &PaymentRequested) -> Option<Handles> {
    (ev.method == "card").then_some(Handles {
        processor: "stripe",
        fee_cents: 30,
    })
}

#[receiver(PaymentRequested, priority = 10)]
async fn fraud_check(ev: &PaymentRequested) -> Result<Option<Handles>, String> {
    if ev.method == "stolen-card" {
        return Err("card reported stolen".to_owned());
    }
    Ok(None)
}

#[receiver(PaymentRequested, sender = Checkout)]
fn checkout_only(ev: &PaymentRequested, sender: Sender) -> Option<Handles> {
    // The sender is passed as to any receiver; only sends from `Checkout` get here.
    assert_eq!(sender, Sender::of::<Checkout>());
    (ev.method != "cash").then_some(Handles {
        processor: "in-house",
        fee_cents: 0,
    })
}

/// The receivers' last path segments and their replies' processors.
fn shown(replies: &[(&'static str, Option<Handles>)]) -> Vec<(String, Option<&'static str>)> {
    replies
        .iter()
        .map(|(name, reply)| {
            let short = name.rsplit("::").next().unwrap_or(name).to_owned();
            (short, reply.as_ref().map(|h| h.processor))
        })
        .collect()
}

#[tokio::test]
async fn replies_come_back_with_their_receivers_in_dispatch_order() {
    let _wallets = signals_core::connect_with(
        ConnectOptions::new().name("wallets").priority(-5),
        |ev: &PaymentRequested| -> Result<Option<Handles>, String> {
            Ok((ev.method == "wallet").then_some(Handles {
                processor: "paypal",
                fee_cents: 35,
            }))
        },
    );
    let replies = signals_core::send_collect(
        Sender::of::<Checkout>(),
        &PaymentRequested { method: "card" },
    )
    .await
    .unwrap();
    // Priority 10 first; then link-time receivers by declaration; then runtime ones.
    assert_eq!(
        shown(&replies),
        [
            ("fraud_check".to_owned(), None),
            ("cards".to_owned(), Some("stripe")),
            ("checkout_only".to_owned(), Some("in-house")),
            ("wallets".to_owned(), None),
        ]
    );
    assert_eq!(replies[0].0, "receiver_results::fraud_check");
    // Another sender: the receiver of `Checkout` only is not asked.
    let replies = signals_core::send_collect(
        Sender::of::<Refunds>(),
        &PaymentRequested { method: "wallet" },
    )
    .await
    .unwrap();
    assert_eq!(
        shown(&replies),
        [
            ("fraud_check".to_owned(), None),
            ("cards".to_owned(), None),
            ("wallets".to_owned(), Some("paypal")),
        ]
    );
    // The voting pattern: who handles it, and the cheapest.
    let cheapest = replies
        .into_iter()
        .filter_map(|(_, reply)| reply)
        .min_by_key(|h| h.fee_cents);
    assert_eq!(cheapest.map(|h| h.processor), Some("paypal"));
}

#[tokio::test]
async fn a_failing_receiver_stops_the_collect_and_is_named() {
    let error = signals_core::send_collect(
        Sender::of::<Checkout>(),
        &PaymentRequested {
            method: "stolen-card",
        },
    )
    .await
    .unwrap_err();
    let SendError::Receiver {
        signal,
        sender,
        receiver,
        source,
    } = &error
    else {
        panic!("not a receiver error: {error}");
    };
    assert_eq!(
        (*signal, *sender, *receiver, source.to_string().as_str()),
        (
            "PaymentRequested",
            "receiver_results::Checkout",
            "receiver_results::fraud_check",
            "card reported stolen"
        )
    );
    // A plain send fails the same way and ignores the replies when it succeeds.
    assert!(
        signals_core::send(
            Sender::NONE,
            &PaymentRequested {
                method: "stolen-card"
            }
        )
        .await
        .is_err()
    );
    signals_core::send(Sender::NONE, &PaymentRequested { method: "card" })
        .await
        .unwrap();
}

#[tokio::test]
async fn the_sync_form_refuses_async_receivers_before_running_any() {
    let error = signals_core::send_collect_sync(
        Sender::of::<Checkout>(),
        &PaymentRequested { method: "card" },
    )
    .unwrap_err();
    assert!(
        matches!(
            error,
            SendError::AsyncReceiverInSyncSend { receiver, .. }
                if receiver == "receiver_results::fraud_check"
        ),
        "{error}"
    );
}

// ---- sync collect, runtime closures of every shape, panics ---------------------------------------

#[derive(Signal)]
#[signal(reply = u32)]
struct Quote {
    items: u32,
}

static QUOTED: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

#[receiver(Quote)]
fn flat_rate(_: &Quote) -> u32 {
    QUOTED.lock().unwrap().push("flat_rate");
    500
}

#[test]
fn sync_receivers_reply_to_a_sync_collect() {
    let _plain =
        signals_core::connect_with(ConnectOptions::new().name("by_weight"), |ev: &Quote| {
            ev.items * 120
        });
    let _with_sender = signals_core::connect_with(
        ConnectOptions::new().name("by_sender"),
        |ev: &Quote, sender: Sender| -> Result<u32, String> {
            if sender == Sender::of::<Checkout>() {
                Ok(ev.items)
            } else {
                Err(format!("unknown sender {sender}"))
            }
        },
    );
    let replies =
        signals_core::send_collect_sync(Sender::of::<Checkout>(), &Quote { items: 3 }).unwrap();
    assert_eq!(
        replies,
        [
            ("receiver_results::flat_rate", 500),
            ("by_weight", 360),
            ("by_sender", 3)
        ]
    );
    let error = signals_core::send_collect_sync(Sender::NONE, &Quote { items: 3 }).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("receiver `by_sender` of signal `Quote` (sender `-`) failed"),
        "{error}"
    );
    assert!(QUOTED.lock().unwrap().contains(&"flat_rate"));
}

#[derive(Signal)]
#[signal(reply = u32)]
struct AsyncQuote {
    items: u32,
}

#[tokio::test]
async fn runtime_async_fns_reply_with_or_without_the_sender() {
    // A closure's future cannot borrow the payload: it copies what it needs first.
    let _one = signals_core::connect(|ev: &AsyncQuote| {
        let items = ev.items;
        async move { items }
    });
    let _two = signals_core::connect_with(ConnectOptions::new().name("per_item"), per_item_of);
    let _three = signals_core::connect_with(
        ConnectOptions::new().name("per_item_from"),
        per_item_from_of,
    );
    let replies = signals_core::send_collect(Sender::of::<Checkout>(), &AsyncQuote { items: 2 })
        .await
        .unwrap();
    let values: Vec<u32> = replies.iter().map(|(_, v)| *v).collect();
    assert_eq!(values, [2, 200, 180]);
    assert_eq!(replies[1].0, "per_item");
    let error = signals_core::send_collect(Sender::NONE, &AsyncQuote { items: 2 })
        .await
        .unwrap_err();
    assert!(error.to_string().contains("`per_item_from`"), "{error}");
}

/// Replies after a real suspension: the reply survives the await.
async fn per_item_of(ev: &AsyncQuote) -> u32 {
    tokio::task::yield_now().await;
    ev.items * 100
}

async fn per_item_from_of(ev: &AsyncQuote, sender: Sender) -> Result<u32, String> {
    tokio::task::yield_now().await;
    if sender == Sender::NONE {
        return Err("no sender to quote for".to_owned());
    }
    Ok(ev.items * 90)
}

#[derive(Signal)]
#[signal(reply = u32)]
struct Fragile;

#[test]
fn a_panicking_receiver_is_reported_as_for_send() {
    let _guard =
        signals_core::connect_with(ConnectOptions::new().name("breaks"), |_: &Fragile| -> u32 {
            panic!("no reply today")
        });
    let error = signals_core::send_collect_sync(Sender::NONE, &Fragile).unwrap_err();
    assert!(
        matches!(&error, SendError::Panicked { receiver: "breaks", message, .. } if message == "no reply today"),
        "{error}"
    );
}

// ---- signals without a declared reply, muting, fakes ---------------------------------------------

#[derive(Signal)]
struct Pinged;

#[receiver(Pinged)]
fn pong(_: &Pinged) {}

#[test]
fn a_signal_without_a_reply_collects_one_unit_per_receiver() {
    let _guard =
        signals_core::connect_with(ConnectOptions::new().name("also_pong"), |_: &Pinged| {
            Ok::<(), String>(())
        });
    let replies = signals_core::send_collect_sync(Sender::NONE, &Pinged).unwrap();
    assert_eq!(replies, [("receiver_results::pong", ()), ("also_pong", ())]);
}

#[derive(Signal, Debug)]
#[signal(reply = &'static str)]
struct Greeting;

#[receiver(Greeting)]
fn hello(_: &Greeting) -> &'static str {
    "hello"
}

#[receiver(Greeting, priority = -1)]
fn bonjour(_: &Greeting) -> &'static str {
    "bonjour"
}

#[tokio::test]
async fn muted_sends_collect_nothing_and_fakes_reply_in_their_receivers_place() {
    let muted = Mute::new()
        .signal::<Greeting>()
        .scope(signals_core::send_collect(Sender::NONE, &Greeting))
        .await
        .unwrap();
    assert!(muted.is_empty());
    // A fake running a closure replies for the receiver it replaces, in its place.
    let fake = Fake::<Greeting>::receiver(hello, Sender::NONE).with(|_: &Greeting| "hi");
    let replies = fake
        .scope(signals_core::send_collect(Sender::NONE, &Greeting))
        .await
        .unwrap();
    assert_eq!(
        replies,
        [
            ("receiver_results::hello", "hi"),
            ("receiver_results::bonjour", "bonjour")
        ]
    );
    assert_eq!(fake.calls().len(), 1);
    // A plain stub gives no reply: the receiver it replaces is left out.
    let stub = Fake::<Greeting>::receiver(hello, Sender::NONE);
    let replies = stub.sync_scope(|| signals_core::send_collect_sync(Sender::NONE, &Greeting));
    assert_eq!(replies.unwrap(), [("receiver_results::bonjour", "bonjour")]);
}
