//! Workload 1: sending a custom signal to 0, 1 and 10 no-op receivers, sync and async, against
//! calling the same functions directly. Timed here with `Instant` around loops of calls (the
//! median of repetitions); heap measured by the process-wide byte counter.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use signals_orm::{Sender, Signal, receiver};

use crate::Config;
use crate::workloads::median;

/// No receivers at all.
#[derive(Signal)]
pub struct Unheard;

/// One sync receiver.
#[derive(Signal)]
pub struct SyncOne {
    value: u64,
}

/// Ten sync receivers.
#[derive(Signal)]
pub struct SyncTen {
    value: u64,
}

/// One async receiver.
#[derive(Signal)]
pub struct AsyncOne {
    value: u64,
}

/// Ten async receivers.
#[derive(Signal)]
pub struct AsyncTen {
    value: u64,
}

macro_rules! sync_receivers {
    ($signal:ident, $direct:ident: $($name:ident),*) => {
        $(
            #[receiver($signal)]
            fn $name(ev: &$signal) {
                black_box(ev.value);
            }
        )*
        /// The same receivers, called directly.
        #[inline]
        fn $direct(ev: &$signal) {
            $($name(ev);)*
        }
    };
}

macro_rules! async_receivers {
    ($signal:ident, $direct:ident: $($name:ident),*) => {
        $(
            #[receiver($signal)]
            async fn $name(ev: &$signal) {
                black_box(ev.value);
            }
        )*
        /// The same receivers, awaited directly.
        async fn $direct(ev: &$signal) {
            $($name(ev).await;)*
        }
    };
}

sync_receivers!(SyncOne, direct_sync_one: sync_one);
sync_receivers!(SyncTen, direct_sync_ten: s0, s1, s2, s3, s4, s5, s6, s7, s8, s9);
async_receivers!(AsyncOne, direct_async_one: async_one);
async_receivers!(AsyncTen, direct_async_ten: a0, a1, a2, a3, a4, a5, a6, a7, a8, a9);

/// Polls a future that never waits (no-op receivers) to completion, without a runtime.
#[inline]
fn ready<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("no-op receivers never wait"),
    }
}

/// One dispatch workload's median time and heap per call.
#[derive(Debug, Clone, Copy, Default)]
pub struct Measured {
    /// Median nanoseconds per call.
    pub ns: f64,
    /// Heap peak above the start during the timed calls, bytes: 0 if no call allocated.
    pub heap_bytes: usize,
}

/// What the dispatch workloads measured, by name, plus the process-wide check.
#[derive(Debug, Default)]
pub struct DispatchResults {
    /// Each workload's result, by name (`send_sync_sync_1`, `direct_sync_1`, ...).
    pub benches: BTreeMap<String, Measured>,
    /// Bytes allocated (process-wide peak above the start) during many sends to sync
    /// receivers, `send_sync` and `send().await`, with 1 and 10 receivers.
    pub heap_bytes_in_sync_sends: usize,
    /// How many sends that check made.
    pub sync_sends_checked: usize,
}

impl DispatchResults {
    /// A workload's result, if it ran.
    pub fn get(&self, name: &str) -> Option<Measured> {
        self.benches.get(name).copied()
    }
}

/// Times `op`: one untimed repetition to warm up (the first send also builds the registry),
/// then `dispatch_reps` repetitions of `dispatch_iters` calls each.
fn measure<T>(config: &Config, mut op: impl FnMut() -> T) -> Measured {
    let iters = config.dispatch_iters;
    let mut ns = Vec::with_capacity(config.dispatch_reps);
    let mut heap_bytes = 0;
    for rep in 0..=config.dispatch_reps {
        let (elapsed, peak) = crate::peak_bytes(|| {
            let start = Instant::now();
            for _ in 0..iters {
                black_box(op());
            }
            start.elapsed()
        });
        if rep > 0 {
            ns.push(elapsed.as_secs_f64() * 1e9 / f64::from(iters));
            heap_bytes = heap_bytes.max(peak);
        }
    }
    Measured {
        ns: median(&ns),
        heap_bytes,
    }
}

/// `send_sync` of `event`, as a closure for [`measure`]; the result is dropped inside the loop.
macro_rules! send_sync {
    ($event:expr) => {
        || signals_orm::send_sync(Sender::NONE, black_box($event)).is_ok()
    };
}

/// `send(..).await` of `event`, polled once (no-op receivers never wait).
macro_rules! send_await {
    ($event:expr) => {
        || ready(signals_orm::send(Sender::NONE, black_box($event))).is_ok()
    };
}

/// Times every dispatch workload, echoing each on stderr, then checks the heap over many sends.
pub fn run(config: &Config) -> DispatchResults {
    let (one, ten) = (SyncOne { value: 1 }, SyncTen { value: 1 });
    let (async_one, async_ten) = (AsyncOne { value: 1 }, AsyncTen { value: 1 });
    let measured = [
        ("send_sync_0", measure(config, send_sync!(&Unheard))),
        ("send_await_0", measure(config, send_await!(&Unheard))),
        ("send_sync_sync_1", measure(config, send_sync!(&one))),
        ("send_await_sync_1", measure(config, send_await!(&one))),
        (
            "direct_sync_1",
            measure(config, || direct_sync_one(black_box(&one))),
        ),
        ("send_sync_sync_10", measure(config, send_sync!(&ten))),
        ("send_await_sync_10", measure(config, send_await!(&ten))),
        (
            "direct_sync_10",
            measure(config, || direct_sync_ten(black_box(&ten))),
        ),
        (
            "send_await_async_1",
            measure(config, send_await!(&async_one)),
        ),
        (
            "direct_async_1",
            measure(config, || ready(direct_async_one(black_box(&async_one)))),
        ),
        (
            "send_await_async_10",
            measure(config, send_await!(&async_ten)),
        ),
        (
            "direct_async_10",
            measure(config, || ready(direct_async_ten(black_box(&async_ten)))),
        ),
    ];
    eprintln!(
        "{} x {} calls each, median:",
        config.dispatch_reps, config.dispatch_iters
    );
    for (name, m) in &measured {
        eprintln!("  {name:<20} {:>9.3} ns  heap +{} B", m.ns, m.heap_bytes);
    }
    let sends = if config.smoke { 1_000 } else { 100_000 };
    DispatchResults {
        benches: measured
            .into_iter()
            .map(|(name, m)| (name.to_owned(), m))
            .collect(),
        heap_bytes_in_sync_sends: heap_bytes_in_sync_sends(sends),
        sync_sends_checked: sends * 4,
    }
}

/// Process-wide bytes allocated while sending `n` times each way to sync receivers.
fn heap_bytes_in_sync_sends(n: usize) -> usize {
    let one = SyncOne { value: 1 };
    let ten = SyncTen { value: 1 };
    let send_all = || {
        signals_orm::send_sync(Sender::NONE, &one).expect("no-op receivers");
        signals_orm::send_sync(Sender::NONE, &ten).expect("no-op receivers");
        ready(signals_orm::send(Sender::NONE, &one)).expect("no-op receivers");
        ready(signals_orm::send(Sender::NONE, &ten)).expect("no-op receivers");
    };
    send_all(); // the first send builds the registries
    let ((), peak) = crate::peak_bytes(|| {
        for _ in 0..n {
            send_all();
        }
    });
    peak
}
