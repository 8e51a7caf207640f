//! The depth guard: runaway recursion through receivers fails with an error naming the chain.
//! A binary of its own, because `set_max_depth` is global.

use std::sync::atomic::{AtomicUsize, Ordering};

use signals_core::{SendError, Sender, Signal, receiver};

struct Account;

#[derive(Signal)]
struct Recurse;
static SYNC_DEPTH: AtomicUsize = AtomicUsize::new(0);

#[receiver(Recurse, sender = Account)]
fn resend_sync(_: &Recurse) -> Result<(), SendError> {
    SYNC_DEPTH.fetch_add(1, Ordering::SeqCst);
    signals_core::send_sync(Sender::of::<Account>(), &Recurse)
}

#[derive(Signal)]
struct RecurseAsync;
static ASYNC_DEPTH: AtomicUsize = AtomicUsize::new(0);

#[receiver(RecurseAsync)]
async fn resend_async(_: &RecurseAsync) -> Result<(), SendError> {
    ASYNC_DEPTH.fetch_add(1, Ordering::SeqCst);
    tokio::task::yield_now().await;
    // Box the recursive future: an async fn cannot contain itself.
    Box::pin(signals_core::send(Sender::NONE, &RecurseAsync)).await
}

#[derive(Signal)]
struct Outer;
#[derive(Signal)]
struct Inner;
static INNER_DEPTH: AtomicUsize = AtomicUsize::new(0);

#[receiver(Outer)]
async fn outer_async(_: &Outer) -> Result<(), SendError> {
    tokio::task::yield_now().await;
    signals_core::send_sync(Sender::NONE, &Inner)
}

#[receiver(Inner)]
fn inner_sync(_: &Inner) -> Result<(), SendError> {
    INNER_DEPTH.fetch_add(1, Ordering::SeqCst);
    signals_core::send_sync(Sender::NONE, &Inner)
}

/// The innermost error of a chain of receiver errors.
fn innermost(error: &SendError) -> &SendError {
    match error {
        SendError::Receiver { source, .. } => {
            source.downcast_ref::<SendError>().map_or(error, innermost)
        }
        other => other,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recursion_fails_with_the_chain_instead_of_overflowing() {
    // Sync recursion at the default limit of 32.
    assert_eq!(signals_core::max_depth(), 32);
    let error = signals_core::send_sync(Sender::of::<Account>(), &Recurse).unwrap_err();
    assert_eq!(
        SYNC_DEPTH.load(Ordering::SeqCst),
        32,
        "32 nested sends ran, the 33rd was refused"
    );
    let SendError::TooDeep { limit, chain } = innermost(&error) else {
        panic!("{error}")
    };
    assert_eq!(*limit, 32);
    assert!(
        chain.starts_with("Recurse[nesting::Account] -> nesting::resend_sync -> Recurse"),
        "{chain}"
    );
    assert_eq!(chain.matches("resend_sync").count(), 32);

    // Async recursion, awaited in a task that may move between threads.
    signals_core::set_max_depth(8);
    let error = signals_core::send(Sender::NONE, &RecurseAsync)
        .await
        .unwrap_err();
    assert_eq!(ASYNC_DEPTH.load(Ordering::SeqCst), 8);
    assert!(
        matches!(innermost(&error), SendError::TooDeep { limit: 8, .. }),
        "{error}"
    );

    // Sync sends inside an async receiver count the async frame too: 1 + 7 = 8.
    let error = signals_core::send(Sender::NONE, &Outer).await.unwrap_err();
    assert_eq!(INNER_DEPTH.load(Ordering::SeqCst), 7);
    let SendError::TooDeep { chain, .. } = innermost(&error) else {
        panic!("{error}")
    };
    assert!(
        chain.starts_with(
            "Outer[-] -> nesting::outer_async -> Inner[-] -> nesting::inner_sync -> Inner"
        ),
        "{chain}"
    );

    // After the errors the frames are gone: a fresh send starts at depth 0 again.
    SYNC_DEPTH.store(0, Ordering::SeqCst);
    let _ = signals_core::send_sync(Sender::of::<Account>(), &Recurse);
    assert_eq!(SYNC_DEPTH.load(Ordering::SeqCst), 8);
}
