//! Workload 1: sending a custom signal to 0, 1 and 10 no-op receivers, sync and async, against
//! calling the same functions directly. Measured by divan (in a child process of this binary,
//! whose output is parsed for the table), allocations counted by divan's `AllocProfiler` per
//! send and by the process-wide byte counter over many sends.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::pin::pin;
use std::process::{Command, Stdio};
use std::task::{Context, Poll, Waker};

use signals_orm::{Sender, Signal, receiver};

use crate::Config;

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

/// Sends each signal once, so that the one-time work of a first send (building the registry
/// from the link-time receivers) does not land in divan's first sample, from which divan sizes
/// its samples.
pub fn warm_up() {
    let _ = signals_orm::send_sync(Sender::NONE, &Unheard);
    let _ = signals_orm::send_sync(Sender::NONE, &SyncOne { value: 1 });
    let _ = signals_orm::send_sync(Sender::NONE, &SyncTen { value: 1 });
    let _ = ready(signals_orm::send(Sender::NONE, &AsyncOne { value: 1 }));
    let _ = ready(signals_orm::send(Sender::NONE, &AsyncTen { value: 1 }));
}

// Benchmark names are unique leaves: the parent reads the table rows by them. Each measures one
// call in divan's loop; the event is made once, outside it, and the send's result is dropped
// inside it (returned, divan would keep it to drop after the timing).

/// `send_sync` of `event`.
macro_rules! bench_send_sync {
    ($name:ident, $event:expr) => {
        #[divan::bench]
        fn $name(bencher: divan::Bencher) {
            let event = $event;
            bencher.bench_local(|| signals_orm::send_sync(Sender::NONE, black_box(&event)).is_ok());
        }
    };
}

/// `send(..).await` of `event`, polled once (no-op receivers never wait).
macro_rules! bench_send_await {
    ($name:ident, $event:expr) => {
        #[divan::bench]
        fn $name(bencher: divan::Bencher) {
            let event = $event;
            bencher
                .bench_local(|| ready(signals_orm::send(Sender::NONE, black_box(&event))).is_ok());
        }
    };
}

/// The receivers called directly: `$direct(&event)`, awaited if `$direct` is async.
macro_rules! bench_direct {
    ($name:ident, $event:expr, $direct:ident) => {
        #[divan::bench]
        fn $name(bencher: divan::Bencher) {
            let event = $event;
            bencher.bench_local(|| $direct(black_box(&event)));
        }
    };
    ($name:ident, $event:expr, async $direct:ident) => {
        #[divan::bench]
        fn $name(bencher: divan::Bencher) {
            let event = $event;
            bencher.bench_local(|| ready($direct(black_box(&event))));
        }
    };
}

bench_send_sync!(send_sync_0, Unheard);
bench_send_await!(send_await_0, Unheard);
bench_send_sync!(send_sync_sync_1, SyncOne { value: 1 });
bench_send_await!(send_await_sync_1, SyncOne { value: 1 });
bench_direct!(direct_sync_1, SyncOne { value: 1 }, direct_sync_one);
bench_send_sync!(send_sync_sync_10, SyncTen { value: 1 });
bench_send_await!(send_await_sync_10, SyncTen { value: 1 });
bench_direct!(direct_sync_10, SyncTen { value: 1 }, direct_sync_ten);
bench_send_await!(send_await_async_1, AsyncOne { value: 1 });
bench_direct!(direct_async_1, AsyncOne { value: 1 }, async direct_async_one);
bench_send_await!(send_await_async_10, AsyncTen { value: 1 });
bench_direct!(direct_async_10, AsyncTen { value: 1 }, async direct_async_ten);

/// One divan benchmark's median time and allocations per iteration.
#[derive(Debug, Clone, Copy, Default)]
pub struct Measured {
    /// Median nanoseconds per iteration.
    pub ns: f64,
    /// Median heap allocations per iteration (divan prints none when there are none).
    pub allocs: f64,
}

/// What the dispatch benchmarks measured, by benchmark name, plus the process-wide check.
#[derive(Debug, Default)]
pub struct DispatchResults {
    /// Divan's medians, by benchmark function name.
    pub benches: BTreeMap<String, Measured>,
    /// Bytes allocated (process-wide peak above the start) during many sends to sync
    /// receivers, `send_sync` and `send().await`, with 1 and 10 receivers.
    pub heap_bytes_in_sync_sends: usize,
    /// How many sends that check made.
    pub sync_sends_checked: usize,
}

impl DispatchResults {
    /// A benchmark's result, if divan ran it.
    pub fn get(&self, name: &str) -> Option<Measured> {
        self.benches.get(name).copied()
    }
}

/// Runs divan on the benchmarks above in a child process of this binary (divan prints, it does
/// not return results), echoes its output on stderr and reads the medians back.
pub fn run(config: &Config) -> DispatchResults {
    let exe = std::env::current_exe().expect("the benchmark's own path");
    let mut command = Command::new(exe);
    command
        .env(crate::CHILD_ENV, "divan")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if config.smoke {
        command.arg("--test");
    } else {
        command.args([
            "--bench",
            "--sample-count",
            &config.divan_samples.to_string(),
        ]);
    }
    // Collected whole, not echoed line by line: this process shares the child's core, and
    // must not wake up while divan measures.
    let output = command.output().expect("run divan in a child process");
    let output_text = String::from_utf8_lossy(&output.stdout);
    eprint!("{output_text}");
    assert!(output.status.success(), "divan failed: {}", output.status);
    let mut results = DispatchResults {
        benches: parse_divan(&output_text),
        ..DispatchResults::default()
    };
    let sends = if config.smoke { 1_000 } else { 100_000 };
    results.heap_bytes_in_sync_sends = heap_bytes_in_sync_sends(sends);
    results.sync_sends_checked = sends * 4;
    results
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

/// Reads divan's tree: a benchmark row is `├─ name  fastest │ slowest │ median │ mean │ ...`;
/// when it allocates, labelled rows follow (`alloc:`), each with its counts on the next row
/// and its bytes on the one after.
fn parse_divan(output: &str) -> BTreeMap<String, Measured> {
    let mut results: BTreeMap<String, Measured> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut label: Option<String> = None;
    for line in output.lines() {
        // Without the tree drawn on the left, every row's columns line up.
        let line = line.trim_start_matches(['├', '╰', '─', '│', ' ']);
        let cells: Vec<&str> = line.split('│').collect();
        if cells.len() < 4 {
            continue;
        }
        let first = cells[0].trim_end();
        if first.ends_with(':') {
            label = Some(first.to_owned());
            continue;
        }
        if let Some(label) = label.take() {
            if label == "alloc:" {
                let entry = current.as_ref().and_then(|name| results.get_mut(name));
                if let (Some(entry), Some(count)) = (entry, parse_number(cells[2])) {
                    entry.allocs = count;
                }
            }
            continue;
        }
        let Some(name) = first
            .split_whitespace()
            .next()
            .filter(|word| word.starts_with(|c: char| c.is_ascii_alphabetic()))
        else {
            continue; // a bytes row
        };
        current = parse_time(cells[2]).map(|ns| {
            results.insert(name.to_owned(), Measured { ns, allocs: 0.0 });
            name.to_owned()
        });
    }
    results
}

fn parse_number(cell: &str) -> Option<f64> {
    cell.split_whitespace().next()?.parse().ok()
}

/// `1.234 ns`, `5.6 µs`, `7 ms`, `1 s` as nanoseconds.
fn parse_time(cell: &str) -> Option<f64> {
    let mut parts = cell.split_whitespace();
    let value: f64 = parts.next()?.parse().ok()?;
    let scale = match parts.next()? {
        "ps" => 1e-3,
        "ns" => 1.0,
        "µs" | "us" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        _ => return None,
    };
    Some(value * scale)
}
