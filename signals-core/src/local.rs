//! Each thread's copy of the receiver lists it sends to, so that a send reads its registry's
//! current snapshot with plain loads and stores.
//!
//! Why: loading an `ArcSwap` costs two locked instructions (taking and paying back a debt slot),
//! about 13 ns here, more than the rest of a send to one receiver. Instead each registry
//! numbers its snapshots ([`Generation`]), and each signal has a thread-local ([`LocalCopy`],
//! declared beside its registry) holding the last snapshot this thread used and its number,
//! behind an `Rc`. A send compares the number (one load) and clones the `Rc` ([`Lent`]): a
//! plain increment, no locked instruction, no lock. A send that finds no copy (the first on
//! this thread, a thread being torn down) or an old one lets go of the old one first (its
//! closures' `Drop` may send, connect or disconnect), then loads the registry's snapshot as
//! before and keeps it for the next send. Sends nested in a receiver share the copy; one that
//! replaces it does not affect the sends below it, which hold their own `Rc`.
//!
//! Nothing here runs user code inside a borrow of the copy or under the registry's writer lock:
//! every list or closure let go of is dropped after both are released.
//!
//! What it keeps alive: one snapshot per thread and signal. A disconnected receiver is never
//! called again, but its callable is dropped only when no thread holds an old list: the thread
//! that changes the list lets go of its copy at once ([`Generation::forget_local`]), any other
//! at its next send that reaches a receiver, or when it exits. Snapshots stay immutable, so what
//! a send sees is still decided when it starts.

use std::cell::RefCell;
use std::ops::Deref;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::LocalKey;

use crate::registry::Snapshot;
use crate::signal::Signal;

/// One thread's copy of a signal's current receiver list; declared with `thread_local!` next
/// to the signal's registry by the code that declares the registry.
#[doc(hidden)]
pub struct LocalCopy<S: Signal> {
    held: RefCell<Option<Rc<Held<S>>>>,
}

impl<S: Signal> LocalCopy<S> {
    /// No copy yet.
    #[must_use]
    pub const fn new() -> Self {
        LocalCopy {
            held: RefCell::new(None),
        }
    }
}

impl<S: Signal> Default for LocalCopy<S> {
    fn default() -> Self {
        Self::new()
    }
}

struct Held<S: Signal> {
    generation: u64,
    snapshot: Arc<Snapshot<S>>,
}

/// The number of a registry's current snapshot, and where its threads keep their copies.
pub(crate) struct Generation<S: Signal + 'static> {
    current: AtomicU64,
    local: &'static LocalKey<LocalCopy<S>>,
}

impl<S: Signal> Generation<S> {
    pub(crate) fn new(local: &'static LocalKey<LocalCopy<S>>) -> Self {
        Generation {
            current: AtomicU64::new(0),
            local,
        }
    }

    /// Called by the writer, under its lock, after it stored a new snapshot: a send that reads
    /// the new number also finds the new snapshot (release here, acquire in [`Generation::lend`]).
    pub(crate) fn advance(&self) {
        self.current.fetch_add(1, Ordering::Release);
    }

    /// The current snapshot for one send: this thread's copy when it is current, else `load()`'s
    /// (then kept as this thread's copy).
    #[inline]
    pub(crate) fn lend(&self, load: impl FnOnce() -> Arc<Snapshot<S>>) -> Lent<S> {
        let generation = self.current.load(Ordering::Acquire);
        let held = self
            .local
            .try_with(|copy| match &*copy.held.borrow() {
                Some(held) if held.generation == generation => Some(Rc::clone(held)),
                _ => None,
            })
            .ok()
            .flatten();
        match held {
            Some(held) => Lent { held },
            None => self.refresh(load),
        }
    }

    /// Takes this thread's copy away (it is out of date), for the caller to drop: a thread
    /// that changes a list does not keep the old one alive, even if it never sends again.
    pub(crate) fn forget_local(&self) -> Option<impl Sized> {
        self.local
            .try_with(|copy| copy.held.borrow_mut().take())
            .ok()
            .flatten()
    }

    /// Lets go of this thread's old copy, then loads the current snapshot and keeps it.
    ///
    /// The old copy goes first, outside any borrow: it may hold the last reference to a
    /// disconnected receiver's closure, whose `Drop` is user code that may send this signal,
    /// connect or disconnect. The list this send uses is chosen after that code ran, so it is
    /// never older than a change that code made (nor than what a send it made used).
    #[cold]
    #[inline(never)]
    fn refresh(&self, load: impl FnOnce() -> Arc<Snapshot<S>>) -> Lent<S> {
        drop(self.forget_local());
        // Read before loading, so a copy is never filed under a newer number than its own.
        let generation = self.current.load(Ordering::Acquire);
        let held = Rc::new(Held {
            generation,
            snapshot: load(),
        });
        // A copy kept meanwhile (by a send made from that `Drop`) is dropped after the borrow
        // ends, for the same reason.
        let _replaced = self
            .local
            .try_with(|copy| copy.held.borrow_mut().replace(Rc::clone(&held)));
        Lent { held }
    }
}

/// The snapshot one send works on, shared with this thread's copy (not `Send`: it never
/// crosses an `.await`).
pub(crate) struct Lent<S: Signal> {
    held: Rc<Held<S>>,
}

impl<S: Signal> Lent<S> {
    /// A shared handle for a send that outlives this borrow (one awaiting async receivers).
    pub(crate) fn share(&self) -> Arc<Snapshot<S>> {
        Arc::clone(&self.held.snapshot)
    }
}

impl<S: Signal> Deref for Lent<S> {
    type Target = Snapshot<S>;

    #[inline]
    fn deref(&self) -> &Snapshot<S> {
        &self.held.snapshot
    }
}
