//! The durable receivers a process knows, by name: declared with `#[receiver(.., durable)]`
//! (collected at link time) or connected at runtime ([`connect`](super::connect)). The
//! enqueuing side writes a receiver's name into each job; a worker finds the receiver by it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};

use futures_util::future::BoxFuture;
use signals_core::Connection;

use super::job::{JobError, RawJob};
use super::options::JobOptions;

/// A durable receiver declared with `#[receiver(.., durable)]`, collected at link time. Built
/// only by the macro.
#[doc(hidden)]
pub struct DurableDef {
    /// The name its jobs carry: the function's path, or the attribute's `name = ".."`.
    pub name: &'static str,
    /// The function's path: two functions of one `name` are refused.
    pub function: &'static str,
    /// The signal's name.
    pub signal: &'static str,
    /// The sender's name (`-` for every sender).
    pub sender: fn() -> &'static str,
    /// The payload type's name.
    pub payload: fn() -> &'static str,
    /// How its jobs are enqueued.
    pub options: JobOptions,
    /// Reads a job as the function's payload and runs the function.
    pub run: fn(RawJob) -> BoxFuture<'static, Result<(), JobError>>,
}

inventory::collect!(DurableDef);

/// Runs a job: a linked receiver's function, or a connected closure.
type SharedRun = Arc<dyn Fn(RawJob) -> BoxFuture<'static, Result<(), JobError>> + Send + Sync>;

#[derive(Clone)]
enum Run {
    Linked(fn(RawJob) -> BoxFuture<'static, Result<(), JobError>>),
    Connected(SharedRun),
}

/// One durable receiver, as the registry keeps it.
#[derive(Clone)]
pub(crate) struct Entry {
    info: DurableReceiver,
    run: Run,
}

impl Entry {
    /// Runs `job`.
    pub(crate) fn run(&self, job: RawJob) -> BoxFuture<'static, Result<(), JobError>> {
        match &self.run {
            Run::Linked(run) => run(job),
            Run::Connected(run) => run(job),
        }
    }
}

/// The linked receivers by name, built on first use. One function declared for several
/// signals (`#[receiver([pre_save, post_save], .., durable)]`) has a definition per signal,
/// with one payload type: the first is kept, as any runs its jobs.
///
/// # Panics
///
/// When two linked functions have one name: their jobs would be ambiguous (rename one with
/// `name = ".."`).
fn linked() -> &'static HashMap<&'static str, Entry> {
    static LINKED: OnceLock<HashMap<&'static str, Entry>> = OnceLock::new();
    LINKED.get_or_init(|| {
        let mut map: HashMap<&'static str, Entry> = HashMap::new();
        // The function of each name, to tell one function declared for several signals from
        // two functions given one name.
        let mut functions: HashMap<&'static str, &'static str> = HashMap::new();
        for def in inventory::iter::<DurableDef> {
            let function = *functions.entry(def.name).or_insert(def.function);
            assert!(
                function == def.function,
                "two durable receivers are named `{}`: `{function}` and `{}`; each needs a name of its own (its jobs carry it): set one with `name = \"..\"`",
                def.name,
                def.function,
            );
            if map.contains_key(def.name) {
                continue;
            }
            map.entry(def.name).or_insert_with(|| Entry {
                info: DurableReceiver {
                    name: def.name,
                    signal: def.signal,
                    sender: (def.sender)(),
                    payload: (def.payload)(),
                    options: def.options,
                    linked: true,
                },
                run: Run::Linked(def.run),
            });
        }
        map
    })
}

/// The receivers connected at runtime, by name.
static CONNECTED: RwLock<Option<HashMap<&'static str, Entry>>> = RwLock::new(None);

/// The receiver named `name`, if this process has one.
pub(crate) fn find(name: &str) -> Option<Entry> {
    if let Some(entry) = linked().get(name) {
        return Some(entry.clone());
    }
    CONNECTED
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .and_then(|map| map.get(name).cloned())
}

/// Adds a runtime receiver.
///
/// # Panics
///
/// When a receiver of that name exists: a job names its receiver, so two would be ambiguous.
pub(crate) fn add(
    info: DurableReceiver,
    run: impl Fn(RawJob) -> BoxFuture<'static, Result<(), JobError>> + Send + Sync + 'static,
) {
    let name = info.name;
    let taken = || {
        panic!(
            "a durable receiver named `{name}` exists already: each durable receiver needs a name of its own (its jobs carry it)"
        )
    };
    if linked().contains_key(name) {
        taken();
    }
    let mut connected = CONNECTED.write().unwrap_or_else(PoisonError::into_inner);
    let map = connected.get_or_insert_with(HashMap::new);
    if map.contains_key(name) {
        drop(connected);
        taken();
    }
    map.insert(
        name,
        Entry {
            info,
            run: Run::Connected(Arc::new(run)),
        },
    );
}

fn remove(name: &str) {
    if let Some(map) = CONNECTED
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .as_mut()
    {
        map.remove(name);
    }
}

/// A durable receiver, as [`receivers`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DurableReceiver {
    /// Its name, which its jobs carry (a `#[receiver]` function's path).
    pub name: &'static str,
    /// The signal it follows.
    pub signal: &'static str,
    /// The sender's name (`-` for every sender).
    pub sender: &'static str,
    /// The type its jobs' instance is read as.
    pub payload: &'static str,
    /// Queue, attempts, backoff, delay and priority of its jobs.
    pub options: JobOptions,
    /// Declared with `#[receiver(.., durable)]` (true) or connected at runtime.
    pub linked: bool,
}

/// Every durable receiver this process knows, by queue then name: what workers of this
/// program can run, and what writes enqueue.
///
/// Its `Display` is one line per receiver:
/// `queue mail  post_save[Order] shop::send_confirmation  (5 attempts, Exponential ..)`.
#[must_use]
pub fn receivers() -> DurableReceivers {
    let mut all: Vec<DurableReceiver> = linked().values().map(|e| e.info.clone()).collect();
    if let Some(map) = CONNECTED
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
    {
        all.extend(map.values().map(|e| e.info.clone()));
    }
    all.sort_by(|a, b| (a.options.queue_name(), a.name).cmp(&(b.options.queue_name(), b.name)));
    DurableReceivers(all)
}

/// The list [`receivers`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurableReceivers(pub Vec<DurableReceiver>);

impl DurableReceivers {
    /// The distinct queues, sorted.
    #[must_use]
    pub fn queues(&self) -> Vec<&'static str> {
        let mut queues: Vec<&'static str> = self.0.iter().map(|r| r.options.queue_name()).collect();
        queues.dedup();
        queues
    }
}

impl fmt::Display for DurableReceivers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.0 {
            let sender = r.sender.rsplit("::").next().unwrap_or(r.sender);
            writeln!(
                f,
                "queue {}  {}[{sender}] {}  ({} attempts, backoff {:?}, priority {}{})",
                r.options.queue_name(),
                r.signal,
                r.name,
                r.options.attempts(),
                r.options.backoff_policy(),
                r.options.priority_value(),
                if r.linked {
                    ""
                } else {
                    ", connected at runtime"
                },
            )?;
        }
        Ok(())
    }
}

/// A durable receiver connected at runtime: dropping it disconnects the receiver (writes stop
/// enqueuing its jobs, and this process's workers stop running them), as a
/// [`Connection`] does. [`forever`](Registration::forever) keeps it.
#[must_use = "dropping a Registration disconnects the durable receiver at once; call `.forever()` to keep it"]
#[derive(Debug)]
pub struct Registration {
    name: &'static str,
    connection: Option<Connection>,
}

impl Registration {
    pub(crate) fn new(name: &'static str, connection: Connection) -> Self {
        Registration {
            name,
            connection: Some(connection),
        }
    }

    /// The receiver's name.
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Keeps the receiver for the rest of the program.
    pub fn forever(mut self) {
        if let Some(connection) = self.connection.take() {
            connection.forever();
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(connection) = self.connection.take() {
            drop(connection);
            remove(self.name);
        }
    }
}
