//! A send to sync receivers allocates nothing, also to receivers that reply, counted by a counting global allocator
//! (`allocation-counter`, per thread). Only this test binary links it.

use std::pin::pin;
use std::task::{Context, Poll, Waker};

use std::sync::atomic::{AtomicUsize, Ordering};

use signals_core::{Sender, Signal, receiver};

static CALLS: AtomicUsize = AtomicUsize::new(0);

struct Account;

#[derive(Signal)]
struct Unheard;

#[derive(Signal)]
struct OneReceiver {
    amount: u64,
}

#[receiver(OneReceiver, sender = Account)]
fn consume_one(ev: &OneReceiver) {
    std::hint::black_box(ev.amount);
    CALLS.fetch_add(1, Ordering::Relaxed);
}

#[derive(Signal)]
struct TenReceivers;

/// A signal whose receivers reply (`send_collect`): a plain send drops the replies and
/// allocates no more than for a signal without them.
#[derive(Signal)]
#[signal(reply = u64)]
struct Replying {
    amount: u64,
}

#[receiver(Replying)]
fn double(ev: &Replying) -> u64 {
    CALLS.fetch_add(1, Ordering::Relaxed);
    ev.amount * 2
}

#[test]
fn sends_to_sync_receivers_do_not_allocate() {
    // Ten runtime receivers; connecting allocates, sending must not.
    let guards: Vec<_> = (0..10u64)
        .map(|i| {
            signals_core::connect(move |_: &TenReceivers| {
                std::hint::black_box(i);
                CALLS.fetch_add(1, Ordering::Relaxed);
            })
        })
        .collect();
    let replying = signals_core::connect(|ev: &Replying| -> Result<u64, String> {
        CALLS.fetch_add(1, Ordering::Relaxed);
        Ok(ev.amount + 1)
    });
    let event = OneReceiver { amount: 7 };
    let reply = Replying { amount: 3 };
    let send_all = || {
        signals_core::send_sync(Sender::NONE, &Unheard).unwrap();
        signals_core::send_sync(Sender::of::<Account>(), &event).unwrap();
        signals_core::send_sync(Sender::NONE, &TenReceivers).unwrap();
        signals_core::send_sync(Sender::NONE, &reply).unwrap();
        let mut fut = pin!(signals_core::send(Sender::NONE, &reply));
        assert!(matches!(
            fut.as_mut().poll(&mut Context::from_waker(Waker::noop())),
            Poll::Ready(Ok(()))
        ));
        // The async send with only sync receivers completes on its first poll.
        let mut fut = pin!(signals_core::send(Sender::of::<Account>(), &event));
        assert!(matches!(
            fut.as_mut().poll(&mut Context::from_waker(Waker::noop())),
            Poll::Ready(Ok(()))
        ));
    };
    send_all(); // first use builds the registries and the thread's nesting stack
    let counted = allocation_counter::measure(|| {
        for _ in 0..1_000 {
            send_all();
        }
    });
    assert_eq!(counted.count_total, 0, "sends allocated: {counted:?}");
    // Every receiver ran each time: 1 + 10 + 2 + 2 + 1 calls per round, 1,001 rounds.
    assert_eq!(CALLS.load(Ordering::Relaxed), 16 * 1_001);
    // The replies were there to collect.
    let replies = signals_core::send_collect_sync(Sender::NONE, &reply).unwrap();
    assert_eq!(replies.iter().map(|(_, r)| *r).collect::<Vec<_>>(), [6, 4]);
    drop((guards, replying));
}
