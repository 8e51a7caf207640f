//! Attacks on each thread's copy of a signal's receiver list (`signals-core/src/local.rs`,
//! docs/dispatch.md "Snapshots and locks"): what a send sees, when a disconnected receiver's
//! closure is dropped, and what that closure's `Drop` may do (send, connect, disconnect) from
//! wherever it runs: a send refreshing its copy, a writer, a thread exiting.
//!
//! Every test uses its own signal types: registries are global.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use signals_core::{ConnectOptions, Connection, SendError, Sender, Signal, receiver};

/// Linked only so that the first send does not warn that nothing is linked.
#[derive(Signal)]
struct NeverSent;
#[receiver(NeverSent)]
fn never_called(_: &NeverSent) {}

/// Runs `f` on a thread of its own and fails if it does not finish in time (a deadlock would
/// otherwise hang the test binary).
fn within(seconds: u64, what: &str, f: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    let worker = std::thread::spawn(move || {
        f();
        let _ = done.send(());
    });
    match finished.recv_timeout(Duration::from_secs(seconds)) {
        Ok(()) => worker.join().unwrap(),
        // The thread panicked: rethrow its panic.
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            std::panic::resume_unwind(worker.join().unwrap_err())
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: still running after {seconds} s"),
    }
}

/// Runs `on_drop` when dropped: captured by a receiver closure, it runs when the closure is.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

// ---- the writer lock and a closure's Drop ----------------------------------------------------

#[derive(Signal)]
struct DupDrop;
static DUP_DROP_RAN: AtomicBool = AtomicBool::new(false);

/// A duplicate connect (same `dispatch_uid`) drops the closure it was given. That closure's
/// `Drop` is user code, which may connect or disconnect on the same signal: it must not run
/// while the writer's lock is held (std's `Mutex` is not reentrant: the thread deadlocks).
#[test]
fn a_duplicate_connect_drops_its_closure_outside_the_writer_lock() {
    within(
        10,
        "a duplicate connect whose closure connects when dropped",
        || {
            let first = signals_core::connect_with(
                ConnectOptions::new().dispatch_uid("dup-drop"),
                |_: &DupDrop| {},
            );
            let bomb = OnDrop(|| {
                let guard = signals_core::connect(|_: &DupDrop| {});
                assert!(guard.disconnect());
                DUP_DROP_RAN.store(true, Ordering::SeqCst);
            });
            let second = signals_core::connect_with(
                ConnectOptions::new().dispatch_uid("dup-drop"),
                move |_: &DupDrop| {
                    let _ = &bomb;
                },
            );
            assert!(first.is_new() && !second.is_new());
            assert!(
                DUP_DROP_RAN.load(Ordering::SeqCst),
                "the duplicate's closure was dropped"
            );
            assert!(first.disconnect());
        },
    );
}

// ---- a stale copy released by a send -----------------------------------------------------

#[derive(Signal)]
struct StaleDrop;
static STALE_DROP_LOG: Mutex<Vec<&str>> = Mutex::new(Vec::new());
static STALE_DROP_GUARDS: Mutex<Vec<Connection>> = Mutex::new(Vec::new());

fn stale_log(entry: &'static str) {
    STALE_DROP_LOG.lock().unwrap().push(entry);
}

/// Another thread holds the only copy of a list whose closure, when dropped, sends the same
/// signal, connects a receiver and disconnects one (a `Connection` it captured). The next send
/// of that thread releases the copy: the closure's `Drop` runs there, re-entering the copy and
/// the writer; the send then works on the list as it is after that `Drop`, so it calls neither
/// the receiver the `Drop` disconnected nor, of course, the one disconnected before.
#[test]
fn a_closure_dropped_by_a_send_refreshing_its_copy_may_send_connect_and_disconnect() {
    within(
        10,
        "a stale closure's Drop re-entering the registry",
        || {
            let victim = signals_core::connect(|_: &StaleDrop| stale_log("victim"));
            let mut victim = Some(victim);
            let dropped = OnDrop(move || {
                stale_log("dropped: nested send");
                signals_core::send_sync(Sender::NONE, &StaleDrop).unwrap();
                let newcomer = signals_core::connect(|_: &StaleDrop| stale_log("newcomer"));
                STALE_DROP_GUARDS.lock().unwrap().push(newcomer);
                // The receiver it owned goes with it.
                assert!(victim.take().unwrap().disconnect());
                stale_log("dropped: done");
            });
            let doomed = signals_core::connect(move |_: &StaleDrop| {
                let _ = &dropped;
                stale_log("doomed");
            });

            let (go, wait) = mpsc::channel::<()>();
            let (sent, done) = mpsc::channel::<()>();
            let other = std::thread::spawn(move || {
                for () in wait {
                    signals_core::send_sync(Sender::NONE, &StaleDrop).unwrap();
                    sent.send(()).unwrap();
                }
            });
            go.send(()).unwrap();
            done.recv().unwrap();
            assert_eq!(
                std::mem::take(&mut *STALE_DROP_LOG.lock().unwrap()),
                ["victim", "doomed"]
            );
            // Only the other thread holds the old list now.
            assert!(doomed.disconnect());
            go.send(()).unwrap();
            done.recv().unwrap();
            drop(go);
            other.join().unwrap();
            assert_eq!(
                std::mem::take(&mut *STALE_DROP_LOG.lock().unwrap()),
                [
                    "dropped: nested send",
                    "victim",
                    "dropped: done",
                    "newcomer"
                ],
                "the Drop ran first, then the send, on the list the Drop left"
            );
            STALE_DROP_GUARDS.lock().unwrap().clear();
        },
    );
}

// ---- a connect that cannot finish --------------------------------------------------------

#[derive(Signal)]
struct PanickyDrop;
static PANICKY_CALLS: AtomicUsize = AtomicUsize::new(0);

/// A connect lets go of this thread's copy of the old list; if that drops a closure whose
/// `Drop` panics, the connect panics: the receiver it connected must not stay connected with
/// nobody holding its guard.
#[test]
fn a_connect_that_panics_while_releasing_the_old_list_leaves_nothing_connected() {
    let panicky = signals_core::connect(|_: &PanickyDrop| {});
    let bomb = OnDrop(|| panic!("a closure's Drop panicked"));
    let bombed = signals_core::connect(move |_: &PanickyDrop| {
        let _ = &bomb;
    });
    // This thread's copy holds both closures; another thread drops `bombed` from the list.
    signals_core::send_sync(Sender::NONE, &PanickyDrop).unwrap();
    std::thread::spawn(move || assert!(bombed.disconnect()))
        .join()
        .unwrap();
    let outcome = std::panic::catch_unwind(|| {
        signals_core::connect(|_: &PanickyDrop| {
            PANICKY_CALLS.fetch_add(1, Ordering::SeqCst);
        })
    });
    if let Ok(guard) = outcome {
        // The drop happened elsewhere after all: nothing to check.
        drop(guard);
    }
    signals_core::send_sync(Sender::NONE, &PanickyDrop).unwrap();
    assert_eq!(
        PANICKY_CALLS.load(Ordering::SeqCst),
        0,
        "a receiver whose guard was never returned is still connected"
    );
    drop(panicky);
}

// ---- thread exit ---------------------------------------------------------------------------

#[derive(Signal)]
struct AtExit;
static AT_EXIT_CALLS: AtomicUsize = AtomicUsize::new(0);

/// A thread-local whose destructor sends.
struct SendsOnDrop;
impl Drop for SendsOnDrop {
    fn drop(&mut self) {
        signals_core::send_sync(Sender::NONE, &AtExit).unwrap();
    }
}
thread_local! {
    static SENDS_ON_DROP: SendsOnDrop = const { SendsOnDrop };
}

/// Sends from a thread-local's destructor, before and after the signal's own copy of the list
/// is destroyed (destructors run in reverse order of first use), reach the receivers.
#[test]
fn sends_from_thread_local_destructors_reach_the_receivers() {
    let _counting = signals_core::connect(|_: &AtExit| {
        AT_EXIT_CALLS.fetch_add(1, Ordering::SeqCst);
    });
    // The copy first, the sender second: the sender is destroyed first, the copy still there.
    std::thread::spawn(|| {
        signals_core::send_sync(Sender::NONE, &AtExit).unwrap();
        SENDS_ON_DROP.with(|_| {});
    })
    .join()
    .unwrap();
    assert_eq!(AT_EXIT_CALLS.swap(0, Ordering::SeqCst), 2);
    // The sender first: the copy is destroyed before the sender's destructor sends.
    std::thread::spawn(|| {
        SENDS_ON_DROP.with(|_| {});
        signals_core::send_sync(Sender::NONE, &AtExit).unwrap();
    })
    .join()
    .unwrap();
    assert_eq!(AT_EXIT_CALLS.swap(0, Ordering::SeqCst), 2);
}

#[derive(Signal)]
struct ExitDrop;
static EXIT_DROP_LOG: Mutex<Vec<&str>> = Mutex::new(Vec::new());

/// A thread exits holding the last copy of a list: the closure dropped then (inside the
/// thread-local's destructor) may send the signal, connect and disconnect.
#[test]
fn a_closure_dropped_when_its_thread_exits_may_send_connect_and_disconnect() {
    within(10, "a closure dropped at thread exit", || {
        let _listening =
            signals_core::connect(|_: &ExitDrop| EXIT_DROP_LOG.lock().unwrap().push("listening"));
        let dropped = OnDrop(|| {
            EXIT_DROP_LOG.lock().unwrap().push("dropped");
            signals_core::send_sync(Sender::NONE, &ExitDrop).unwrap();
            let guard = signals_core::connect(|_: &ExitDrop| {});
            assert!(guard.disconnect());
        });
        let doomed = signals_core::connect(move |_: &ExitDrop| {
            let _ = &dropped;
        });
        let (sent, was_sent) = mpsc::channel::<()>();
        let (exit, may_exit) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            signals_core::send_sync(Sender::NONE, &ExitDrop).unwrap();
            sent.send(()).unwrap();
            may_exit.recv().unwrap();
        });
        was_sent.recv().unwrap();
        assert!(doomed.disconnect());
        assert_eq!(
            std::mem::take(&mut *EXIT_DROP_LOG.lock().unwrap()),
            ["listening"],
            "the exiting thread still holds the closure"
        );
        exit.send(()).unwrap();
        thread.join().unwrap();
        assert_eq!(
            std::mem::take(&mut *EXIT_DROP_LOG.lock().unwrap()),
            ["dropped", "listening"]
        );
    });
}

// ---- many threads ----------------------------------------------------------------------------

#[derive(Signal)]
struct Racing;

thread_local! {
    /// What each sending thread saw its probe receivers do during its current send.
    static PROBE_CALLS: [Cell<u32>; PROBES] = const { [const { Cell::new(0) }; PROBES] };
}
const PROBES: usize = 3;

/// Per probe: `4 * round + phase`, phases 0 connecting, 1 connected (`connect` returned),
/// 2 disconnecting, 3 disconnected (`disconnect` returned).
static PROBE_STATE: [AtomicU64; PROBES] = [const { AtomicU64::new(0) }; PROBES];
static SENDS: AtomicUsize = AtomicUsize::new(0);
/// Sends checked not to call a probe, and to call it.
static CHECKED: [AtomicUsize; 2] = [const { AtomicUsize::new(0) }; 2];

/// Threads send while others connect and disconnect: a send that starts after a `connect`
/// returned, and ends before the `disconnect` began, calls the receiver exactly once; a send
/// that starts after a `disconnect` returned, and ends before the next `connect` began, never
/// calls it. Checked per send, from a state each toggling thread publishes around its calls.
#[test]
fn racing_sends_see_every_connect_and_disconnect_that_returned_before_they_started() {
    let stop = Arc::new(AtomicBool::new(false));
    let violations = Arc::new(Mutex::new(Vec::<String>::new()));
    std::thread::scope(|s| {
        for probe in 0..PROBES {
            let stop = Arc::clone(&stop);
            s.spawn(move || {
                let state = &PROBE_STATE[probe];
                let mut round = 1;
                while !stop.load(Ordering::Relaxed) {
                    state.store(4 * round, Ordering::SeqCst);
                    let guard = signals_core::connect(move |_: &Racing| {
                        PROBE_CALLS.with(|calls| calls[probe].set(calls[probe].get() + 1));
                    });
                    state.store(4 * round + 1, Ordering::SeqCst);
                    std::thread::yield_now();
                    state.store(4 * round + 2, Ordering::SeqCst);
                    assert!(guard.disconnect());
                    state.store(4 * round + 3, Ordering::SeqCst);
                    std::thread::yield_now();
                    round += 1;
                }
            });
        }
        // A receiver that is always there, so that sends never find the signal unheard.
        let _always = signals_core::connect(|_: &Racing| {});
        for _ in 0..4 {
            let violations = Arc::clone(&violations);
            s.spawn(move || {
                for _ in 0..20_000 {
                    let before: [u64; PROBES] =
                        std::array::from_fn(|p| PROBE_STATE[p].load(Ordering::SeqCst));
                    PROBE_CALLS.with(|calls| calls.iter().for_each(|c| c.set(0)));
                    signals_core::send_sync(Sender::NONE, &Racing).unwrap();
                    let after: [u64; PROBES] =
                        std::array::from_fn(|p| PROBE_STATE[p].load(Ordering::SeqCst));
                    let calls: [u32; PROBES] =
                        PROBE_CALLS.with(|c| std::array::from_fn(|p| c[p].get()));
                    SENDS.fetch_add(1, Ordering::Relaxed);
                    for p in 0..PROBES {
                        assert!(calls[p] <= 1, "probe {p} called {} times", calls[p]);
                        if before[p] != after[p] || before[p] == 0 {
                            continue;
                        }
                        let expected = match before[p] % 4 {
                            1 => 1,
                            3 => 0,
                            _ => continue,
                        };
                        CHECKED[expected as usize].fetch_add(1, Ordering::Relaxed);
                        if calls[p] != expected {
                            violations.lock().unwrap().push(format!(
                                "probe {p} in state {} called {} times",
                                before[p], calls[p]
                            ));
                        }
                    }
                }
            });
        }
        // Stop the togglers once the senders are done.
        let stop = Arc::clone(&stop);
        s.spawn(move || {
            while SENDS.load(Ordering::Relaxed) < 80_000 {
                std::thread::sleep(Duration::from_millis(5));
            }
            stop.store(true, Ordering::Relaxed);
        });
    });
    let checked = CHECKED.each_ref().map(|c| c.load(Ordering::Relaxed));
    eprintln!(
        "checked {} sends not to call a probe, {} to call one",
        checked[0], checked[1]
    );
    let violations = violations.lock().unwrap();
    assert!(
        violations.is_empty(),
        "{:#?}",
        &violations[..violations.len().min(10)]
    );
    assert_eq!(
        signals_core::receivers()
            .iter()
            .filter(|r| r.signal == "Racing")
            .count(),
        0,
        "every probe disconnected"
    );
}

// ---- panics --------------------------------------------------------------------------------

#[derive(Signal)]
struct Panicky;
static PANICKY_LOG: Mutex<Vec<&str>> = Mutex::new(Vec::new());
static PANICKY_GUARDS: Mutex<Vec<Connection>> = Mutex::new(Vec::new());

/// A receiver that changes the list and then panics, while the send holds its list: the send
/// reports the panic, and the next send sees the change, with no borrow left behind.
#[test]
fn a_receiver_that_changes_the_list_then_panics_leaves_the_copy_usable() {
    let captured = Arc::new(());
    let victim = {
        let captured = Arc::clone(&captured);
        signals_core::connect_with(ConnectOptions::new().priority(-1), move |_: &Panicky| {
            let _ = &captured;
            PANICKY_LOG.lock().unwrap().push("victim");
        })
    };
    PANICKY_GUARDS.lock().unwrap().push(victim);
    let _panics = signals_core::connect_with(ConnectOptions::new().priority(1), |_: &Panicky| {
        if PANICKY_LOG.lock().unwrap().contains(&"panicked") {
            return;
        }
        PANICKY_LOG.lock().unwrap().push("panicked");
        PANICKY_GUARDS.lock().unwrap().clear();
        let late = signals_core::connect(|_: &Panicky| PANICKY_LOG.lock().unwrap().push("late"));
        PANICKY_GUARDS.lock().unwrap().push(late);
        panic!("receiver panics");
    });
    let error = signals_core::send_sync(Sender::NONE, &Panicky).unwrap_err();
    assert!(matches!(error, SendError::Panicked { .. }), "{error}");
    assert_eq!(
        Arc::strong_count(&captured),
        1,
        "the victim's closure is gone"
    );
    signals_core::send_sync(Sender::NONE, &Panicky).unwrap();
    assert_eq!(*PANICKY_LOG.lock().unwrap(), ["panicked", "late"]);
    PANICKY_GUARDS.lock().unwrap().clear();
}

// ---- nesting -------------------------------------------------------------------------------

#[derive(Signal)]
struct Deep {
    level: usize,
}
const LEVELS: usize = 30;
static DEEP_LOG: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());
static DEEP_GUARDS: Mutex<Vec<Connection>> = Mutex::new(Vec::new());

/// 30 nested sends of one signal, each connecting a receiver before sending the next: each send
/// calls exactly the receivers connected before it started, even though every nested send
/// replaces the thread's copy.
#[test]
fn thirty_nested_sends_each_connecting_a_receiver_keep_their_own_lists() {
    let _base = signals_core::connect_with(ConnectOptions::new().priority(1), |ev: &Deep| {
        if ev.level + 1 < LEVELS {
            let added_at = ev.level;
            let guard = signals_core::connect(move |ev: &Deep| {
                DEEP_LOG.lock().unwrap().push((ev.level, added_at));
            });
            DEEP_GUARDS.lock().unwrap().push(guard);
            signals_core::send_sync(
                Sender::NONE,
                &Deep {
                    level: ev.level + 1,
                },
            )?;
        }
        Ok::<(), SendError>(())
    });
    signals_core::send_sync(Sender::NONE, &Deep { level: 0 }).unwrap();
    let mut log = std::mem::take(&mut *DEEP_LOG.lock().unwrap());
    log.sort_unstable();
    let expected: Vec<(usize, usize)> = (0..LEVELS)
        .flat_map(|level| (0..level).map(move |added| (level, added)))
        .collect();
    assert_eq!(log, expected);
    DEEP_GUARDS.lock().unwrap().clear();
    signals_core::send_sync(Sender::NONE, &Deep { level: LEVELS }).unwrap();
    assert!(DEEP_LOG.lock().unwrap().is_empty());
}

// ---- async sends across threads ------------------------------------------------------------

#[derive(Signal)]
struct Migrating {
    id: usize,
}
static MIGRATING_LOG: Mutex<Vec<(usize, &str)>> = Mutex::new(Vec::new());
static MIGRATING_STARTED: AtomicUsize = AtomicUsize::new(0);
static MIGRATING_MOVED: AtomicUsize = AtomicUsize::new(0);

async fn migrating_async(ev: &Migrating) {
    MIGRATING_STARTED.fetch_add(1, Ordering::SeqCst);
    let first = std::thread::current().id();
    for _ in 0..8 {
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_micros(50)).await;
    }
    if std::thread::current().id() != first {
        MIGRATING_MOVED.fetch_add(1, Ordering::SeqCst);
    }
    MIGRATING_LOG.lock().unwrap().push((ev.id, "async"));
}

/// Async sends on a multi-thread runtime, whose tasks move between workers while awaiting
/// their async receiver, and whose sync receiver after it is disconnected on another thread
/// meanwhile: each send runs the list it started with, to its end, and sends that start after
/// the disconnect never call it.
#[test]
fn async_sends_moving_between_threads_keep_their_list() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let _async = signals_core::connect(migrating_async);
        let tail = signals_core::connect(move |ev: &Migrating| {
            MIGRATING_LOG.lock().unwrap().push((ev.id, "tail"));
        });
        let mut sends = tokio::task::JoinSet::new();
        for id in 0..32 {
            sends.spawn(async move { signals_core::send(Sender::NONE, &Migrating { id }).await });
        }
        // Let the sends start (each picks its list at its first poll), then disconnect the
        // tail from another thread while they await.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let started = MIGRATING_STARTED.load(Ordering::SeqCst);
        std::thread::spawn(move || assert!(tail.disconnect()))
            .join()
            .unwrap();
        for result in sends.join_all().await {
            result.unwrap();
        }
        let log = std::mem::take(&mut *MIGRATING_LOG.lock().unwrap());
        let tails = log.iter().filter(|(_, what)| *what == "tail").count();
        assert_eq!(log.len() - tails, 32, "every async receiver finished");
        assert!(
            tails >= started,
            "{started} sends had started before the disconnect, {tails} ran the tail"
        );
        let mut again = tokio::task::JoinSet::new();
        for id in 100..164 {
            again.spawn(async move { signals_core::send(Sender::NONE, &Migrating { id }).await });
        }
        for result in again.join_all().await {
            result.unwrap();
        }
        assert!(
            MIGRATING_LOG
                .lock()
                .unwrap()
                .iter()
                .all(|(_, what)| *what == "async"),
            "sends started after the disconnect never ran the tail"
        );
    });
    // Not an assertion about the scheduler, only a sign that the test exercises what it says.
    eprintln!(
        "{} of 96 async receivers resumed on another worker",
        MIGRATING_MOVED.load(Ordering::SeqCst)
    );
}
