//! The depth guard: runaway recursion through receivers fails with an error naming the chain.
//! A binary of its own, because `set_max_depth` is global: the tests run in-process keep the
//! default limit, and the one that raises it runs in a child process.

#[expect(
    dead_code,
    reason = "`our_lines` reads stderr lines this binary does not look at"
)]
mod child;

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;

use signals_core::{SendError, Sender, Signal, receiver};

/// Selects what the child does; unset in a normal test run, where `child` does nothing.
const CHILD: &str = "SIGNALS_NESTING_CHILD";

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
    signals_core::send(Sender::NONE, &RecurseAsync).await
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
    // The outer levels do not wrap it: the caller gets the `TooDeep` itself.
    let SendError::TooDeep { limit, chain } = &error else {
        panic!("{error}")
    };
    assert_eq!(*limit, 32);
    let links: Vec<_> = chain.links().collect();
    assert_eq!(links.len(), 33, "{chain}");
    let refused = links[32];
    assert_eq!(
        (refused.signal, refused.sender, refused.receiver),
        ("Recurse", "nesting::Account", None)
    );
    assert!(
        links[..32].iter().all(|link| link.signal == "Recurse"
            && link.sender == "nesting::Account"
            && link.receiver == Some("nesting::resend_sync")),
        "{links:?}"
    );
    assert!(
        chain
            .to_string()
            .starts_with("Recurse[nesting::Account] -> nesting::resend_sync -> Recurse"),
        "{chain}"
    );

    // Async recursion, awaited in a task that may move between threads.
    let error = signals_core::send(Sender::NONE, &RecurseAsync)
        .await
        .unwrap_err();
    assert_eq!(ASYNC_DEPTH.load(Ordering::SeqCst), 32);
    assert!(
        matches!(&error, SendError::TooDeep { limit: 32, chain } if chain.links().len() == 33),
        "{error}"
    );

    // Sync sends inside an async receiver count the async send too: 1 + 31 = 32.
    let error = signals_core::send(Sender::NONE, &Outer).await.unwrap_err();
    assert_eq!(INNER_DEPTH.load(Ordering::SeqCst), 31);
    let SendError::TooDeep { chain, .. } = &error else {
        panic!("{error}")
    };
    assert!(
        chain.to_string().starts_with(
            "Outer[-] -> nesting::outer_async -> Inner[-] -> nesting::inner_sync -> Inner"
        ),
        "{chain}"
    );

    // After the errors nothing of them remains: a fresh send starts at depth 0 again.
    SYNC_DEPTH.store(0, Ordering::SeqCst);
    let _ = signals_core::send_sync(Sender::of::<Account>(), &Recurse);
    assert_eq!(SYNC_DEPTH.load(Ordering::SeqCst), 32);
}

// ---- concurrent sends are siblings, not nesting ---------------------------------------------

#[derive(Signal)]
struct FanOut;
#[derive(Signal)]
struct Ping;
static PONGS: AtomicUsize = AtomicUsize::new(0);

/// How many sends `fan_out` polls at once: more than the default limit of 32.
const SIBLINGS: usize = 40;

#[receiver(FanOut)]
async fn fan_out(_: &FanOut) -> Result<(), SendError> {
    let sends = (0..SIBLINGS).map(|_| signals_core::send(Sender::NONE, &Ping));
    let failed: Vec<String> = join_all(sends)
        .await
        .into_iter()
        .filter_map(|result| result.err().map(|error| format!("{error:#}")))
        .collect();
    assert!(failed.is_empty(), "{} failed: {failed:#?}", failed.len());
    Ok(())
}

#[receiver(Ping)]
async fn pong(_: &Ping) {
    // Pending once, so that every sibling is in flight at the same time.
    tokio::task::yield_now().await;
    PONGS.fetch_add(1, Ordering::SeqCst);
}

/// Polls every future in the current task until all are done (`futures::future::join_all`,
/// which this crate does not depend on).
async fn join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut done: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        for (future, output) in pending.iter_mut().zip(done.iter_mut()) {
            if output.is_none()
                && let Poll::Ready(value) = future.as_mut().poll(cx)
            {
                *output = Some(value);
            }
        }
        if done.iter().all(Option::is_some) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    done.into_iter().map(Option::unwrap).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_from_one_receiver_are_siblings_not_nesting() {
    // The same sends from top level, one task each: none is nested.
    let sends = (0..SIBLINGS).map(|_| signals_core::send(Sender::NONE, &Ping));
    assert!(join_all(sends).await.into_iter().all(|r| r.is_ok()));
    // From one receiver, polled at once: each is one level below the FanOut send, 2 deep.
    signals_core::send(Sender::NONE, &FanOut).await.unwrap();
    assert_eq!(PONGS.load(Ordering::SeqCst), 2 * SIBLINGS);
}

// ---- the error is readable ------------------------------------------------------------------

#[derive(Signal)]
struct Loop;

#[receiver(Loop)]
fn reloop(_: &Loop) -> Result<(), SendError> {
    signals_core::send_sync(Sender::NONE, &Loop)
}

#[derive(Signal)]
struct LoopAsync;

#[receiver(LoopAsync)]
async fn reloop_async(_: &LoopAsync) -> Result<(), SendError> {
    signals_core::send(Sender::NONE, &LoopAsync).await
}

/// A receiver's own error type, with the nested send's error as its source.
#[derive(Debug)]
struct Resend(SendError);

impl std::fmt::Display for Resend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("could not resend")
    }
}

impl std::error::Error for Resend {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[derive(Signal)]
struct LoopWrapped;

#[receiver(LoopWrapped)]
fn reloop_wrapped(_: &LoopWrapped) -> Result<(), Resend> {
    signals_core::send_sync(Sender::NONE, &LoopWrapped).map_err(Resend)
}

/// Longest `{:#}` accepted for a depth failure of these receivers: the limit and the first and
/// last three links of the chain (about 300 bytes here).
const READABLE: usize = 400;

#[tokio::test]
async fn too_deep_names_the_chain_once_and_briefly() {
    let sync = signals_core::send_sync(Sender::NONE, &Loop).unwrap_err();
    let awaited = signals_core::send(Sender::NONE, &LoopAsync)
        .await
        .unwrap_err();
    // Each level wraps the error in its own type: the `TooDeep` among the causes still goes
    // out alone.
    let wrapped = signals_core::send_sync(Sender::NONE, &LoopWrapped).unwrap_err();
    for error in [sync, awaited, wrapped] {
        let text = format!("{error:#}");
        assert!(text.len() <= READABLE, "{} bytes: {text}", text.len());
        assert_eq!(text.matches("nested deeper than 32").count(), 1, "{text}");
        assert!(text.contains("... (27 more) ..."), "{text}");
        let SendError::TooDeep { chain, .. } = &error else {
            panic!("{text}")
        };
        assert_eq!(chain.links().len(), 33, "{text}");
    }
    // `send_robust` reports it for its one receiver the same way.
    let outcomes = signals_core::send_robust(Sender::NONE, &LoopAsync).await;
    assert_eq!(outcomes.len(), 1);
    let text = format!("{:#}", outcomes[0].result.as_ref().unwrap_err());
    assert!(text.len() <= READABLE, "{} bytes: {text}", text.len());
}

// ---- the highest limit accepted fails cleanly ------------------------------------------------

#[test]
#[should_panic(expected = "above MAX_DEPTH_CEILING")]
fn a_limit_above_the_ceiling_is_refused() {
    // Refused before it is stored, so the other tests keep the default.
    signals_core::set_max_depth(signals_core::MAX_DEPTH_CEILING + 1);
}

#[derive(Signal)]
struct Deep;
static DEEP_DEPTH: AtomicUsize = AtomicUsize::new(0);

#[receiver(Deep)]
async fn redeep(_: &Deep) -> Result<(), SendError> {
    DEEP_DEPTH.fetch_add(1, Ordering::SeqCst);
    signals_core::send(Sender::NONE, &Deep).await
}

#[derive(Signal)]
struct DeepSync;
static DEEP_SYNC_DEPTH: AtomicUsize = AtomicUsize::new(0);

#[receiver(DeepSync)]
fn redeep_sync(_: &DeepSync) -> Result<(), SendError> {
    DEEP_SYNC_DEPTH.fetch_add(1, Ordering::SeqCst);
    signals_core::send_sync(Sender::NONE, &DeepSync)
}

/// A model whose `post_save` receiver saves another one: the costliest level measured.
#[derive(signals_orm::Model, sqlx::FromRow, Clone, Debug)]
#[model(table = "nodes")]
struct Node {
    #[model(primary_key)]
    id: Option<i64>,
    n: i64,
}

static NODES: AtomicUsize = AtomicUsize::new(0);

#[signals_orm::receiver(post_save, sender = Node)]
async fn save_next(
    ev: signals_orm::PostSave<'_, Node>,
    tx: &mut signals_orm::Tx<sqlx::Sqlite>,
) -> Result<(), signals_orm::OrmError> {
    use signals_orm::ModelExt as _;
    NODES.fetch_add(1, Ordering::SeqCst);
    let mut next = Node {
        id: None,
        n: ev.instance.n + 1,
    };
    next.save(tx).await?;
    Ok(())
}

/// Tokio's default stack for a worker thread, and Rust's for a spawned one: set explicitly,
/// so that `RUST_MIN_STACK` in the environment cannot make the test easier.
const DEFAULT_STACK: usize = 2 * 1024 * 1024;

/// The child's work, by mode: `deepest` (sends at the highest limit accepted, each on a 2 MiB
/// stack: a self-re-sending sync receiver on a thread, a self-re-sending async receiver and a
/// self-re-saving `post_save` receiver on workers of a multi-thread runtime).
#[test]
fn child() {
    let Ok(mode) = std::env::var(CHILD) else {
        return;
    };
    assert_eq!(mode, "deepest", "unknown child mode");
    let deepest = signals_core::MAX_DEPTH_CEILING;
    signals_core::set_max_depth(deepest);

    let sync = std::thread::Builder::new()
        .stack_size(DEFAULT_STACK)
        .spawn(|| signals_core::send_sync(Sender::NONE, &DeepSync))
        .unwrap()
        .join()
        .unwrap();
    assert!(matches!(&sync, Err(SendError::TooDeep { .. })), "{sync:?}");
    assert_eq!(DEEP_SYNC_DEPTH.load(Ordering::SeqCst), deepest);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_stack_size(DEFAULT_STACK)
        .enable_all()
        .build()
        .unwrap();
    let sent = runtime.spawn(signals_core::send(Sender::NONE, &Deep));
    let error = runtime.block_on(sent).unwrap().unwrap_err();
    assert!(matches!(&error, SendError::TooDeep { .. }), "{error}");
    assert_eq!(DEEP_DEPTH.load(Ordering::SeqCst), deepest);

    let saved = runtime.spawn(async {
        use signals_orm::ModelExt as _;
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::query("CREATE TABLE nodes (id INTEGER PRIMARY KEY, n BIGINT NOT NULL)")
            .execute(&pool)
            .await
            .unwrap();
        Node { id: None, n: 0 }.save(&pool).await.map(|_| ())
    });
    let error = runtime.block_on(saved).unwrap().unwrap_err();
    let text = format!("{error:#}");
    assert_eq!(
        text.matches(&format!("nested deeper than {deepest}"))
            .count(),
        1,
        "{text}"
    );
    // The ORM passes the depth error up whole instead of wrapping it at every level (6.4 KB
    // before): one line of the ORM's, the limit, six links of a longer path.
    assert!(text.len() <= 600, "{} bytes: {text}", text.len());
    assert_eq!(NODES.load(Ordering::SeqCst), deepest);
}

#[test]
fn the_highest_limit_accepted_fails_cleanly_on_2_mib_stacks() {
    // In a child: a stack overflow aborts the whole process.
    child::run_child(CHILD, "deepest");
}
