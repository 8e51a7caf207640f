//! The dispatcher against Django's rules (`docs/django.md`, Dispatcher and Sending), one test
//! per rule or deliberate difference. Every test uses its own signal types: registries are
//! global.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use signals_core::introspection::Registration;
use signals_core::{ConnectOptions, Connection, SendError, Sender, Signal, receiver};

/// A shared, ordered record of which receiver ran.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    fn push(&self, entry: impl Into<String>) {
        self.0.lock().unwrap().push(entry.into());
    }
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// A runtime receiver of `S` that records `name`.
#[track_caller]
fn record<S: signals_core::PlainSignal<Reply = ()>>(
    log: &Log,
    options: ConnectOptions,
    name: &'static str,
) -> Connection {
    let log = log.clone();
    signals_core::connect_with(options, move |_: &S| log.push(name))
}

struct UserModel;
struct OrderModel;

// ---- identity and duplicate connections (docs/django.md#dispatcher) -----------------------

#[derive(Signal)]
struct Dup;
static DUP_CALLS: AtomicUsize = AtomicUsize::new(0);
fn dup_receiver(_: &Dup) {
    DUP_CALLS.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn connecting_the_same_function_twice_is_a_no_op() {
    let first = signals_core::connect(dup_receiver);
    let second = signals_core::connect(dup_receiver);
    assert!(first.is_new());
    assert!(!second.is_new(), "the duplicate connect must be inert");
    drop(second); // an inert guard must not disconnect the first connection
    signals_core::send_sync(Sender::NONE, &Dup).unwrap();
    assert_eq!(DUP_CALLS.load(Ordering::SeqCst), 1);
    assert!(first.disconnect());
    signals_core::send_sync(Sender::NONE, &Dup).unwrap();
    assert_eq!(DUP_CALLS.load(Ordering::SeqCst), 1);
}

#[derive(Signal)]
struct Captures;

#[test]
fn capturing_closures_are_distinct_receivers() {
    // Django: each lambda created in a loop is its own receiver.
    let log = Log::default();
    let guards: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|n| record::<Captures>(&log, ConnectOptions::new(), n))
        .collect();
    assert!(guards.iter().all(Connection::is_new));
    signals_core::send_sync(Sender::NONE, &Captures).unwrap();
    assert_eq!(log.take(), ["a", "b"]);
}

#[derive(Signal)]
struct AnyAndSpecific;
static ANY_AND_SPECIFIC: AtomicUsize = AtomicUsize::new(0);
fn any_and_specific(_: &AnyAndSpecific) {
    ANY_AND_SPECIFIC.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn same_function_for_any_sender_and_one_sender_runs_twice_for_that_sender() {
    let _any = signals_core::connect(any_and_specific);
    let _user = signals_core::connect_with(
        ConnectOptions::new().sender::<UserModel>(),
        any_and_specific,
    );
    signals_core::send_sync(Sender::of::<UserModel>(), &AnyAndSpecific).unwrap();
    assert_eq!(ANY_AND_SPECIFIC.load(Ordering::SeqCst), 2);
    signals_core::send_sync(Sender::of::<OrderModel>(), &AnyAndSpecific).unwrap();
    assert_eq!(ANY_AND_SPECIFIC.load(Ordering::SeqCst), 3);
}

// ---- dispatch_uid (docs/django.md#dispatcher) ---------------------------------------------

#[derive(Signal)]
struct Uid;

#[test]
fn dispatch_uid_deduplicates_per_sender() {
    let log = Log::default();
    let uid = |u: &'static str| ConnectOptions::new().dispatch_uid(u);
    let a = record::<Uid>(&log, uid("audit"), "first");
    let b = record::<Uid>(&log, uid("audit"), "second-same-uid");
    let c = record::<Uid>(
        &log,
        uid("audit").sender::<UserModel>(),
        "same-uid-other-sender",
    );
    let d = record::<Uid>(&log, uid(""), "empty-uid-is-no-uid");
    assert!(a.is_new() && !b.is_new() && c.is_new() && d.is_new());
    signals_core::send_sync(Sender::of::<UserModel>(), &Uid).unwrap();
    assert_eq!(
        log.take(),
        ["first", "same-uid-other-sender", "empty-uid-is-no-uid"]
    );
    // Disconnecting by uid needs the uid and the sender.
    assert!(!signals_core::disconnect_uid::<Uid>(
        "audit",
        Sender::of::<OrderModel>()
    ));
    assert!(signals_core::disconnect_uid::<Uid>(
        "audit",
        Sender::of::<UserModel>()
    ));
    assert!(!signals_core::disconnect_uid::<Uid>(
        "audit",
        Sender::of::<UserModel>()
    ));
    signals_core::send_sync(Sender::of::<UserModel>(), &Uid).unwrap();
    assert_eq!(log.take(), ["first", "empty-uid-is-no-uid"]);
    for guard in [a, c, d] {
        guard.forever();
    }
}

#[derive(Signal)]
struct UidAndPlain;
static UID_AND_PLAIN: AtomicUsize = AtomicUsize::new(0);
fn uid_and_plain(_: &UidAndPlain) {
    UID_AND_PLAIN.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn a_uid_entry_and_a_plain_entry_of_one_function_are_distinct() {
    let _plain = signals_core::connect(uid_and_plain);
    let _uid = signals_core::connect_with(ConnectOptions::new().dispatch_uid("x"), uid_and_plain);
    signals_core::send_sync(Sender::NONE, &UidAndPlain).unwrap();
    assert_eq!(UID_AND_PLAIN.load(Ordering::SeqCst), 2);
}

// Link-time receivers with the same dispatch_uid and sender: the first in dispatch order wins.
#[derive(Signal)]
struct LinkedUid;
static LINKED_UID: Mutex<Vec<&str>> = Mutex::new(Vec::new());

#[receiver(LinkedUid, dispatch_uid = "only-once")]
fn linked_uid_first(_: &LinkedUid) {
    LINKED_UID.lock().unwrap().push("first");
}

#[receiver(LinkedUid, dispatch_uid = "only-once")]
fn linked_uid_second(_: &LinkedUid) {
    LINKED_UID.lock().unwrap().push("second");
}

#[test]
fn link_time_duplicates_by_uid_keep_the_first() {
    signals_core::send_sync(Sender::NONE, &LinkedUid).unwrap();
    assert_eq!(*LINKED_UID.lock().unwrap(), ["first"]);
}

// ---- exact sender matching (docs/django.md#dispatcher) ------------------------------------

#[derive(Signal)]
struct Matching;

#[test]
fn sender_matching_is_exact_and_none_reaches_only_any_sender_receivers() {
    let log = Log::default();
    let _any = record::<Matching>(&log, ConnectOptions::new(), "any");
    let _user = record::<Matching>(&log, ConnectOptions::new().sender::<UserModel>(), "user");
    signals_core::send_sync(Sender::of::<UserModel>(), &Matching).unwrap();
    assert_eq!(log.take(), ["any", "user"]);
    signals_core::send_sync(Sender::of::<OrderModel>(), &Matching).unwrap();
    assert_eq!(log.take(), ["any"]);
    signals_core::send_sync(Sender::NONE, &Matching).unwrap();
    assert_eq!(log.take(), ["any"]);
    // A reference to the type is another type: no subclass-like matching.
    signals_core::send_sync(Sender::of::<&UserModel>(), &Matching).unwrap();
    assert_eq!(log.take(), ["any"]);
}

// ---- ordering: priority first, unlike Django (docs/django.md#dispatcher) ------------------

#[derive(Signal)]
struct Ordered;
static ORDERED: Mutex<Vec<&str>> = Mutex::new(Vec::new());

#[receiver(Ordered)]
fn ordered_linked_b(_: &Ordered) {
    ORDERED.lock().unwrap().push("linked-b (line order)");
}

#[receiver(Ordered, priority = 5)]
async fn ordered_linked_high(_: &Ordered) {
    tokio::task::yield_now().await;
    ORDERED
        .lock()
        .unwrap()
        .push("linked-high (async, priority 5)");
}

#[receiver(Ordered)]
fn ordered_linked_c(_: &Ordered) {
    ORDERED.lock().unwrap().push("linked-c (line order)");
}

#[receiver(Ordered, priority = -1)]
fn ordered_linked_low(_: &Ordered) {
    ORDERED.lock().unwrap().push("linked-low (priority -1)");
}

#[tokio::test]
async fn order_is_priority_then_link_time_then_connection_order_with_async_in_place() {
    let push = |name: &'static str| move |_: &Ordered| ORDERED.lock().unwrap().push(name);
    let runtime_first = signals_core::connect(push("runtime-1"));
    let runtime_high = signals_core::connect_with(
        ConnectOptions::new().priority(5),
        push("runtime-high (priority 5)"),
    );
    let runtime_second = signals_core::connect(push("runtime-2"));
    signals_core::send(Sender::NONE, &Ordered).await.unwrap();
    let expected = [
        "linked-high (async, priority 5)",
        "runtime-high (priority 5)",
        "linked-b (line order)",
        "linked-c (line order)",
        "runtime-1",
        "runtime-2",
        "linked-low (priority -1)",
    ];
    assert_eq!(std::mem::take(&mut *ORDERED.lock().unwrap()), expected);
    // Introspection lists the same order.
    let listed: Vec<_> = signals_core::receivers()
        .iter()
        .filter(|r| r.signal == "Ordered")
        .map(|r| r.registration)
        .collect();
    assert_eq!(
        listed,
        [
            Registration::Linked,
            Registration::Runtime,
            Registration::Linked,
            Registration::Linked,
            Registration::Runtime,
            Registration::Runtime,
            Registration::Linked
        ]
    );
    // Disconnect then connect moves a receiver to the end of its priority (in Django, of the
    // whole list).
    assert!(runtime_first.disconnect());
    let _again = signals_core::connect(push("runtime-1 again"));
    signals_core::send(Sender::NONE, &Ordered).await.unwrap();
    let got = std::mem::take(&mut *ORDERED.lock().unwrap());
    assert_eq!(got[4..6], ["runtime-2", "runtime-1 again"]);
    drop((runtime_high, runtime_second));
}

// ---- disconnect, and guards for weak references (docs/django.md#dispatcher) ---------------

#[derive(Signal)]
struct Disc;
static DISC: AtomicUsize = AtomicUsize::new(0);
fn disc_receiver(_: &Disc) {
    DISC.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn disconnect_needs_the_sender_used_to_connect_and_returns_whether_it_removed() {
    signals_core::connect_with(ConnectOptions::new().sender::<UserModel>(), disc_receiver)
        .forever();
    assert!(!signals_core::disconnect::<Disc, _>(
        disc_receiver,
        Sender::NONE
    ));
    assert!(signals_core::has_listeners::<Disc>(
        Sender::of::<UserModel>()
    ));
    assert!(signals_core::disconnect::<Disc, _>(
        disc_receiver,
        Sender::of::<UserModel>()
    ));
    assert!(!signals_core::disconnect::<Disc, _>(
        disc_receiver,
        Sender::of::<UserModel>()
    ));
    signals_core::send_sync(Sender::of::<UserModel>(), &Disc).unwrap();
    assert_eq!(DISC.load(Ordering::SeqCst), 0);
}

#[derive(Signal)]
struct LinkedDisc;
static LINKED_DISC: AtomicUsize = AtomicUsize::new(0);

#[receiver(LinkedDisc)]
fn linked_disc(_: &LinkedDisc) {
    LINKED_DISC.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn link_time_receivers_can_be_disconnected_and_runtime_duplicates_of_them_are_no_ops() {
    assert!(
        !signals_core::connect(linked_disc).is_new(),
        "#[receiver] already connected it"
    );
    signals_core::send_sync(Sender::NONE, &LinkedDisc).unwrap();
    assert_eq!(LINKED_DISC.load(Ordering::SeqCst), 1);
    assert!(signals_core::disconnect::<LinkedDisc, _>(
        linked_disc,
        Sender::NONE
    ));
    signals_core::send_sync(Sender::NONE, &LinkedDisc).unwrap();
    assert_eq!(LINKED_DISC.load(Ordering::SeqCst), 1);
}

#[derive(Signal)]
struct Guarded;

#[test]
fn a_dropped_guard_disconnects_and_forever_keeps_the_receiver() {
    let log = Log::default();
    let dropped = record::<Guarded>(&log, ConnectOptions::new(), "dropped");
    record::<Guarded>(&log, ConnectOptions::new(), "kept").forever();
    drop(dropped);
    signals_core::send_sync(Sender::NONE, &Guarded).unwrap();
    assert_eq!(log.take(), ["kept"]);
}

// ---- send and send_robust (docs/django.md#sending) ----------------------------------------

#[derive(Signal, Debug)]
struct Failing {
    fail: bool,
}

#[tokio::test]
async fn send_stops_at_the_first_error_and_names_receiver_signal_and_sender() {
    let log = Log::default();
    let _a = record::<Failing>(&log, ConnectOptions::new(), "before");
    let l = log.clone();
    let _b = signals_core::connect(move |ev: &Failing| -> Result<(), String> {
        l.push("failing");
        if ev.fail {
            Err("card declined".into())
        } else {
            Ok(())
        }
    });
    let _c = record::<Failing>(&log, ConnectOptions::new(), "after");
    let error = signals_core::send(Sender::of::<UserModel>(), &Failing { fail: true })
        .await
        .unwrap_err();
    assert_eq!(
        log.take(),
        ["before", "failing"],
        "receivers after the failing one must not run"
    );
    let SendError::Receiver {
        signal,
        sender,
        receiver,
        source,
    } = &error
    else {
        panic!("unexpected {error:?}")
    };
    assert_eq!(
        (*signal, source.to_string().as_str()),
        ("Failing", "card declined")
    );
    assert!(sender.ends_with("UserModel"), "{sender}");
    assert!(
        receiver.contains("send_stops_at_the_first_error"),
        "a closure is named by its type: {receiver}"
    );
    // Display names the receiver, signal and sender; the receiver's own error is the source,
    // not repeated in the text, so chain printers show it once.
    let text = error.to_string();
    assert!(!text.contains("card declined"), "{text}");
    let cause = std::error::Error::source(&error).map(ToString::to_string);
    assert_eq!(cause.as_deref(), Some("card declined"));
    assert!(
        text.contains("Failing") && text.contains("UserModel") && text.contains("failed"),
        "{text}"
    );
}

#[derive(Signal)]
struct Robust;

#[tokio::test]
async fn send_robust_runs_every_receiver_and_returns_each_result_in_order() {
    let _ok = signals_core::connect(|_: &Robust| {});
    let _err = signals_core::connect(|_: &Robust| -> Result<(), std::io::Error> {
        Err(std::io::Error::other("disk full"))
    });
    let _panics = signals_core::connect(|_: &Robust| -> Result<(), String> { panic!("boom") });
    let _last = signals_core::connect(|_: &Robust| {});
    for outcomes in [
        signals_core::send_robust(Sender::NONE, &Robust).await,
        signals_core::send_robust_sync(Sender::NONE, &Robust),
    ] {
        assert_eq!(outcomes.len(), 4);
        assert!(outcomes[0].result.is_ok());
        assert!(
            matches!(&outcomes[1].result, Err(SendError::Receiver { source, .. }) if source.to_string() == "disk full")
        );
        assert!(
            matches!(&outcomes[2].result, Err(SendError::Panicked { message, .. }) if message == "boom")
        );
        assert!(outcomes[3].result.is_ok());
        assert_eq!(
            outcomes[1].result.as_ref().unwrap_err().receiver(),
            Some(outcomes[1].receiver)
        );
    }
}

// ---- panics are caught and reported (docs/django.md#sending) ------------------------------

#[derive(Signal)]
struct Panicky;

#[tokio::test]
async fn a_panicking_receiver_is_reported_and_the_registry_stays_usable() {
    let log = Log::default();
    let sync_panic = signals_core::connect(|_: &Panicky| -> Result<(), String> {
        panic!("sync receiver exploded")
    });
    let error = signals_core::send_sync(Sender::NONE, &Panicky).unwrap_err();
    assert!(
        matches!(&error, SendError::Panicked { message, .. } if message == "sync receiver exploded"),
        "{error}"
    );
    drop(sync_panic);
    let async_panic = signals_core::connect(panicking_async);
    let error = signals_core::send(Sender::NONE, &Panicky)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, SendError::Panicked { message, receiver, .. } if message.contains("async receiver exploded") && receiver.contains("panicking_async")),
        "{error}"
    );
    drop(async_panic);
    let _fine = record::<Panicky>(&log, ConnectOptions::new(), "still works");
    signals_core::send(Sender::NONE, &Panicky).await.unwrap();
    assert_eq!(log.take(), ["still works"]);
}

async fn panicking_async(_: &Panicky) {
    tokio::task::yield_now().await;
    panic!("async receiver exploded with {}", 42);
}

// ---- async receivers and the sync send (docs/django.md#sending) ---------------------------

#[derive(Signal)]
struct Sequential;
static SEQUENTIAL: Mutex<Vec<&str>> = Mutex::new(Vec::new());

async fn slow_first(_: &Sequential) {
    SEQUENTIAL.lock().unwrap().push("slow:start");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    SEQUENTIAL.lock().unwrap().push("slow:end");
}

async fn fast_second(_: &Sequential) {
    SEQUENTIAL.lock().unwrap().push("fast");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_receivers_are_awaited_one_after_another_in_dispatch_order() {
    let _a = signals_core::connect(slow_first);
    let _b = signals_core::connect(|_: &Sequential| SEQUENTIAL.lock().unwrap().push("sync"));
    let _c = signals_core::connect(fast_second);
    // Sent from a spawned task: the send future is Send.
    tokio::spawn(async { signals_core::send(Sender::NONE, &Sequential).await })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        *SEQUENTIAL.lock().unwrap(),
        ["slow:start", "slow:end", "sync", "fast"]
    );
}

#[derive(Signal)]
struct SyncOnly;

#[test]
fn a_sync_send_refuses_async_receivers_before_running_anything() {
    let log = Log::default();
    let _sync = record::<SyncOnly>(&log, ConnectOptions::new(), "sync");
    let _async = signals_core::connect(async_only_receiver);
    let error = signals_core::send_sync(Sender::NONE, &SyncOnly).unwrap_err();
    assert!(
        matches!(&error, SendError::AsyncReceiverInSyncSend { receiver, .. } if receiver.contains("async_only_receiver"))
    );
    assert!(
        error.to_string().contains(".await"),
        "the message says how to fix it: {error}"
    );
    assert!(log.take().is_empty(), "nothing ran");
    let outcomes = signals_core::send_robust_sync(Sender::NONE, &SyncOnly);
    assert_eq!(log.take(), ["sync"]);
    assert!(matches!(
        outcomes[1].result,
        Err(SendError::AsyncReceiverInSyncSend { .. })
    ));
}

async fn async_only_receiver(_: &SyncOnly) {}

// ---- snapshots: changes apply to the next send (docs/django.md#dispatcher) ----------------

#[derive(Signal)]
struct Snap;
static SNAP_GUARDS: Mutex<Vec<Connection>> = Mutex::new(Vec::new());
static SNAP_LOG: Mutex<Vec<&str>> = Mutex::new(Vec::new());

#[test]
fn connect_and_disconnect_inside_a_receiver_affect_the_next_send_only() {
    signals_core::connect(|_: &Snap| {
        SNAP_LOG.lock().unwrap().push("mutator");
        // Disconnects the victim below and connects a newcomer, mid-send, without deadlock.
        SNAP_GUARDS.lock().unwrap().clear();
        let newcomer = signals_core::connect(|_: &Snap| SNAP_LOG.lock().unwrap().push("newcomer"));
        SNAP_GUARDS.lock().unwrap().push(newcomer);
    })
    .forever();
    let victim = signals_core::connect(|_: &Snap| SNAP_LOG.lock().unwrap().push("victim"));
    SNAP_GUARDS.lock().unwrap().push(victim);
    signals_core::send_sync(Sender::NONE, &Snap).unwrap();
    assert_eq!(
        std::mem::take(&mut *SNAP_LOG.lock().unwrap()),
        ["mutator", "victim"]
    );
    signals_core::send_sync(Sender::NONE, &Snap).unwrap();
    assert_eq!(
        std::mem::take(&mut *SNAP_LOG.lock().unwrap()),
        ["mutator", "newcomer"]
    );
}

// ---- has_listeners and late connections (docs/django.md#dispatcher) -----------------------

#[derive(Signal)]
struct Listeners;

#[test]
fn has_listeners_follows_django_and_a_late_connect_is_honoured() {
    let log = Log::default();
    assert!(!signals_core::has_listeners::<Listeners>(Sender::NONE));
    signals_core::send_sync(Sender::of::<UserModel>(), &Listeners).unwrap(); // cached "nobody"
    let user = record::<Listeners>(&log, ConnectOptions::new().sender::<UserModel>(), "user");
    assert!(
        !signals_core::has_listeners::<Listeners>(Sender::NONE),
        "no-sender counts only any-sender receivers"
    );
    assert!(signals_core::has_listeners::<Listeners>(Sender::of::<
        UserModel,
    >()));
    assert!(!signals_core::has_listeners::<Listeners>(Sender::of::<
        OrderModel,
    >()));
    signals_core::send_sync(Sender::of::<UserModel>(), &Listeners).unwrap();
    assert_eq!(log.take(), ["user"]);
    let _any = record::<Listeners>(&log, ConnectOptions::new(), "any");
    assert!(signals_core::has_listeners::<Listeners>(Sender::NONE));
    assert!(signals_core::has_listeners::<Listeners>(Sender::of::<
        OrderModel,
    >()));
    drop(user);
}

// ---- one function, several signals (docs/django.md#dispatcher) ----------------------------

#[derive(Signal)]
struct LoggedIn;
#[derive(Signal)]
struct LoggedOut;
static SESSION_EVENTS: AtomicUsize = AtomicUsize::new(0);

/// A parameter type that fits both signals.
struct SessionEvent;
impl<'e> signals_core::extract::FromEvent<'e, LoggedIn, signals_core::extract::AnySender>
    for SessionEvent
{
    fn from_event(_: &'e LoggedIn) -> Result<Self, signals_core::BoxError> {
        Ok(SessionEvent)
    }
}
impl<'e> signals_core::extract::FromEvent<'e, LoggedOut, signals_core::extract::AnySender>
    for SessionEvent
{
    fn from_event(_: &'e LoggedOut) -> Result<Self, signals_core::BoxError> {
        Ok(SessionEvent)
    }
}

#[receiver([LoggedIn, LoggedOut])]
fn count_session_events(_: SessionEvent) {
    SESSION_EVENTS.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn a_receiver_can_listen_to_a_list_of_signals() {
    signals_core::send_sync(Sender::NONE, &LoggedIn).unwrap();
    signals_core::send_sync(Sender::NONE, &LoggedOut).unwrap();
    assert_eq!(SESSION_EVENTS.load(Ordering::SeqCst), 2);
    let names: Vec<_> = signals_core::receivers()
        .iter()
        .filter(|r| r.name.ends_with("count_session_events"))
        .map(|r| r.signal)
        .collect();
    assert_eq!(names, ["LoggedIn", "LoggedOut"]);
}

// ---- thread safety (docs/django.md#dispatcher) --------------------------------------------

#[derive(Signal)]
struct Concurrent;

#[test]
fn sends_connects_and_disconnects_from_many_threads_lose_nothing() {
    static HITS: AtomicUsize = AtomicUsize::new(0);
    let _base = signals_core::connect(|_: &Concurrent| {
        HITS.fetch_add(1, Ordering::Relaxed);
    });
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..500 {
                    signals_core::send_sync(Sender::NONE, &Concurrent).unwrap();
                }
            });
            s.spawn(|| {
                for i in 0..200 {
                    let guard = signals_core::connect(move |_: &Concurrent| {
                        std::hint::black_box(i);
                    });
                    assert!(guard.is_new());
                }
            });
        }
    });
    assert_eq!(HITS.load(Ordering::Relaxed), 2000);
    assert_eq!(
        signals_core::receivers()
            .iter()
            .filter(|r| r.signal == "Concurrent")
            .count(),
        1,
        "every guard disconnected"
    );
}

// ---- each thread's copy of the receiver list (docs/dispatch.md, Snapshots and locks) -------

#[derive(Signal)]
struct CrossThread;

#[test]
fn a_thread_holding_a_copy_sees_connects_and_disconnects_made_on_another_thread() {
    use std::sync::mpsc;
    let log = Log::default();
    let _first = record::<CrossThread>(&log, ConnectOptions::new(), "first");
    let (go, wait) = mpsc::channel::<()>();
    let (done, sent) = mpsc::channel::<()>();
    let sender = std::thread::spawn(move || {
        for () in wait {
            signals_core::send_sync(Sender::NONE, &CrossThread).unwrap();
            done.send(()).unwrap();
        }
    });
    let send_there = || {
        go.send(()).unwrap();
        sent.recv().unwrap();
        log.take()
    };
    assert_eq!(send_there(), ["first"], "the other thread now holds a copy");
    let second = record::<CrossThread>(&log, ConnectOptions::new(), "second");
    assert_eq!(
        send_there(),
        ["first", "second"],
        "its copy was out of date"
    );
    assert!(second.disconnect());
    assert_eq!(send_there(), ["first"], "and again after the disconnect");
    drop(go);
    sender.join().unwrap();
}

#[derive(Signal)]
struct Refreshed;
static REFRESHED_LOG: Mutex<Vec<&str>> = Mutex::new(Vec::new());
static REFRESHED_GUARDS: Mutex<Vec<Connection>> = Mutex::new(Vec::new());

#[test]
fn a_nested_send_that_refreshes_the_copy_leaves_the_outer_send_on_its_list() {
    use std::sync::atomic::AtomicBool;
    static NESTED: AtomicBool = AtomicBool::new(false);
    signals_core::connect(|_: &Refreshed| {
        if NESTED.swap(true, Ordering::SeqCst) {
            REFRESHED_LOG.lock().unwrap().push("mutator (nested)");
            return;
        }
        REFRESHED_LOG.lock().unwrap().push("mutator");
        REFRESHED_GUARDS.lock().unwrap().clear(); // disconnects the victim
        let newcomer =
            signals_core::connect(|_: &Refreshed| REFRESHED_LOG.lock().unwrap().push("newcomer"));
        REFRESHED_GUARDS.lock().unwrap().push(newcomer);
        // This send finds this thread's copy out of date and replaces it, while the outer send
        // is still running on the old list.
        signals_core::send_sync(Sender::NONE, &Refreshed).unwrap();
    })
    .forever();
    let victim =
        signals_core::connect(|_: &Refreshed| REFRESHED_LOG.lock().unwrap().push("victim"));
    REFRESHED_GUARDS.lock().unwrap().push(victim);
    signals_core::send_sync(Sender::NONE, &Refreshed).unwrap();
    assert_eq!(
        std::mem::take(&mut *REFRESHED_LOG.lock().unwrap()),
        ["mutator", "mutator (nested)", "newcomer", "victim"],
        "the nested send saw the new list, the outer one finished its own"
    );
}

#[derive(Signal)]
struct Released;

#[test]
fn a_disconnected_closure_is_dropped_at_once_when_no_other_thread_sent_the_signal() {
    let captured = Arc::new(());
    let guard = {
        let captured = Arc::clone(&captured);
        signals_core::connect(move |_: &Released| {
            let _ = &captured;
        })
    };
    signals_core::send_sync(Sender::NONE, &Released).unwrap();
    // This thread holds a copy of the list; the disconnect lets go of it, and no other
    // thread sent `Released`.
    assert!(guard.disconnect());
    assert_eq!(
        Arc::strong_count(&captured),
        1,
        "the closure and what it captured are gone"
    );
}

// ---- built-in signals by their Django names ------------------------------------------------

static DJANGO_NAMED: Mutex<Vec<String>> = Mutex::new(Vec::new());

static CURRENCY: signals_core::settings::Setting<&str> =
    signals_core::settings::Setting::new("DISPATCH_TEST_CURRENCY", || "EUR");

/// `setting_changed` named as in Django, from `signals_core::receiver`.
#[receiver(setting_changed)]
fn currency_changed(ev: &signals_core::settings::SettingChanged) {
    if ev.setting == "DISPATCH_TEST_CURRENCY" {
        DJANGO_NAMED
            .lock()
            .unwrap()
            .push(format!("setting {} enter={}", ev.value, ev.enter));
    }
}

/// `request_started` named as in Django (the dispatcher's `http` feature).
#[receiver(request_started)]
fn request_seen(_: &signals_core::request::RequestStarted) {}

/// The ORM's other built-in signals, named as in Django, from `signals_orm::receiver`.
#[signals_orm::receiver(pre_migrate)]
fn before_migrations(ev: &signals_orm::migrate::PreMigrate) {
    DJANGO_NAMED
        .lock()
        .unwrap()
        .push(format!("pre_migrate {} pending", ev.pending.len()));
}

#[signals_orm::receiver(post_migrate)]
fn after_migrations(ev: signals_orm::migrate::PostMigrate<'_>) {
    DJANGO_NAMED
        .lock()
        .unwrap()
        .push(format!("post_migrate {} applied", ev.applied.len()));
}

#[signals_orm::receiver(connection_created, sender = sqlx::Sqlite)]
fn connected(ev: signals_orm::connection::ConnectionCreated<'_, sqlx::Sqlite>) {
    let _ = ev;
    DJANGO_NAMED
        .lock()
        .unwrap()
        .push("connection_created".to_owned());
}

/// `setting_changed` from the ORM's attribute too.
#[signals_orm::receiver(setting_changed, priority = -1)]
fn currency_changed_too(ev: &signals_core::settings::SettingChanged) {
    if ev.setting == "DISPATCH_TEST_CURRENCY" && ev.enter {
        DJANGO_NAMED
            .lock()
            .unwrap()
            .push("setting (orm)".to_owned());
    }
}

#[tokio::test]
async fn builtin_signals_are_received_by_their_django_names() {
    // Each name resolved to its signal: the receivers are listed under it.
    let listed: Vec<(&str, &str)> = signals_core::receivers()
        .iter()
        .filter(|r| r.module_path == "dispatch")
        .map(|r| (r.signal, r.name))
        .filter(|(_, name)| {
            [
                "currency_changed",
                "request_seen",
                "before_migrations",
                "after_migrations",
                "connected",
            ]
            .iter()
            .any(|n| name.ends_with(&format!("::{n}")))
        })
        .collect();
    let mut listed = listed;
    listed.sort_unstable();
    assert_eq!(
        listed,
        [
            ("connection_created", "dispatch::connected"),
            ("post_migrate", "dispatch::after_migrations"),
            ("pre_migrate", "dispatch::before_migrations"),
            ("request_started", "dispatch::request_seen"),
            ("setting_changed", "dispatch::currency_changed"),
        ]
    );

    // And they run when those signals are sent.
    CURRENCY
        .override_sync("USD", || assert_eq!(CURRENCY.get(), "USD"))
        .unwrap();
    let pool = signals_orm::connection::pool_options::<sqlx::Sqlite>()
        .max_connections(1)
        .connect("sqlite::memory:")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("1_things.sql"),
        "CREATE TABLE things (id INTEGER);",
    )
    .unwrap();
    let migrator = sqlx::migrate::Migrator::new(dir.path()).await.unwrap();
    signals_orm::migrate::migrate(&pool, &migrator)
        .await
        .unwrap();
    assert_eq!(
        *DJANGO_NAMED.lock().unwrap(),
        [
            "setting \"USD\" enter=true",
            "setting (orm)",
            "setting \"EUR\" enter=false",
            "connection_created",
            "pre_migrate 1 pending",
            "post_migrate 1 applied",
        ]
    );
}
