//! Muting: a scope in which chosen signals, optionally from one sender, are not delivered, or
//! in which every signal but chosen ones is not.
//!
//! The scope is task-local (and thread-local for [`Mute::sync_scope`]), so tests running in
//! parallel do not mute each other: the answer to Django's `mute_signals` and its cache pitfall.
//!
//! This module also owns the one counter of live scopes, mute and test-kit scopes alike
//! ([`any_scope`]): a send made while no scope is alive anywhere pays one relaxed atomic load
//! for all of them.

use std::any::TypeId;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::signal::{Sender, Signal};

tokio::task_local! {
    static MUTED: Muting;
}

/// How many mute and test-kit scopes are alive anywhere: zero keeps every scope check off the
/// send path.
static SCOPES: AtomicUsize = AtomicUsize::new(0);

/// Whether a mute or test-kit scope is alive anywhere (one relaxed atomic load). Only then is a
/// task-local looked at.
#[inline]
pub(crate) fn any_scope() -> bool {
    SCOPES.load(Ordering::Relaxed) != 0
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Rule {
    signal: TypeId,
    sender: Option<TypeId>,
}

impl Rule {
    fn of<S: Signal>(sender: Option<TypeId>) -> Self {
        Rule {
            signal: TypeId::of::<S>(),
            sender,
        }
    }

    fn covers(self, signal: TypeId, sender: Option<TypeId>) -> bool {
        self.signal == signal && (self.sender.is_none() || self.sender == sender)
    }
}

/// What the mute scopes around the current task say, merged.
#[derive(Clone, Debug, Default)]
struct Muting {
    /// Sends muted by name.
    rules: Vec<Rule>,
    /// One list per "everything but" scope: a send none of a list's rules covers is muted.
    all_but: Vec<Vec<Rule>>,
}

impl Muting {
    fn mutes(&self, signal: TypeId, sender: Option<TypeId>) -> bool {
        self.rules.iter().any(|r| r.covers(signal, sender))
            || self
                .all_but
                .iter()
                .any(|kept| !kept.iter().any(|r| r.covers(signal, sender)))
    }
}

/// Whether `S` from `sender` is muted in the current task or sync scope; asked only once
/// [`any_scope`] said that some scope is alive somewhere.
pub(crate) fn is_muted_here<S: Signal>(sender: Sender) -> bool {
    let signal = TypeId::of::<S>();
    MUTED
        .try_with(|muting| muting.mutes(signal, sender.type_id()))
        .unwrap_or(false)
}

/// A set of signals to silence inside a scope.
///
/// Sends of a muted signal return `Ok` without calling any receiver. Scopes nest (the inner
/// one adds to the outer one) and do not reach tasks spawned inside them.
///
/// Two ways to choose: name what to mute ([`signal`](Mute::signal),
/// [`signal_from`](Mute::signal_from)), or mute everything but what a test is about
/// ([`Mute::all`], then [`except`](Mute::except), [`except_from`](Mute::except_from)), as
/// `factory_boy`'s `mute_signals` is used around fixtures. A muted send is not seen by the test
/// kit's [`Recorder`](crate::testing::Recorder) either.
///
/// # Example
///
/// ```
/// use signals_core::{Mute, Signal, Sender};
///
/// #[derive(Signal)]
/// struct Ping;
///
/// let muted = Mute::new().signal::<Ping>().sync_scope(|| {
///     signals_core::send_sync(Sender::NONE, &Ping)
/// });
/// assert!(muted.is_ok());
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a Mute does nothing until `scope` or `sync_scope` runs code inside it"]
pub struct Mute {
    rules: Vec<Rule>,
    /// `Some`: every signal is muted but those these rules cover.
    all_but: Option<Vec<Rule>>,
}

impl Mute {
    /// Mutes nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Mutes every signal, the ORM's model signals included; [`except`](Mute::except) and
    /// [`except_from`](Mute::except_from) choose the ones still delivered.
    ///
    /// ```
    /// use signals_core::{Mute, Sender, Signal};
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    ///
    /// #[derive(Signal)]
    /// struct UnderTest;
    /// #[derive(Signal)]
    /// struct Noise;
    ///
    /// static HEARD: AtomicUsize = AtomicUsize::new(0);
    /// let _a = signals_core::connect(|_: &UnderTest| { HEARD.fetch_add(1, Ordering::SeqCst); });
    /// let _b = signals_core::connect(|_: &Noise| { HEARD.fetch_add(100, Ordering::SeqCst); });
    ///
    /// Mute::all().except::<UnderTest>().sync_scope(|| {
    ///     signals_core::send_sync(Sender::NONE, &Noise).unwrap(); // muted
    ///     signals_core::send_sync(Sender::NONE, &UnderTest).unwrap(); // delivered
    /// });
    /// assert_eq!(HEARD.load(Ordering::SeqCst), 1);
    /// ```
    pub fn all() -> Self {
        Mute {
            rules: Vec::new(),
            all_but: Some(Vec::new()),
        }
    }

    /// Mutes every send of `S`.
    pub fn signal<S: Signal>(mut self) -> Self {
        self.rules.push(Rule::of::<S>(None));
        self
    }

    /// Mutes sends of `S` from sender `T` only.
    pub fn signal_from<S: Signal, T: ?Sized + 'static>(mut self) -> Self {
        self.rules.push(Rule::of::<S>(Some(TypeId::of::<T>())));
        self
    }

    /// Keeps delivering every send of `S` while everything else is muted: after
    /// [`Mute::all`] (on a `Mute::new()` it turns "everything else is muted" on too). A signal
    /// also named by [`signal`](Mute::signal) stays muted.
    pub fn except<S: Signal>(mut self) -> Self {
        self.all_but
            .get_or_insert_with(Vec::new)
            .push(Rule::of::<S>(None));
        self
    }

    /// Keeps delivering sends of `S` from sender `T` only, everything else muted (see
    /// [`except`](Mute::except)).
    pub fn except_from<S: Signal, T: ?Sized + 'static>(mut self) -> Self {
        self.all_but
            .get_or_insert_with(Vec::new)
            .push(Rule::of::<S>(Some(TypeId::of::<T>())));
        self
    }

    fn merged(self) -> Muting {
        let mut muting = MUTED.try_with(Clone::clone).unwrap_or_default();
        muting.rules.extend(self.rules);
        muting.all_but.extend(self.all_but);
        muting
    }

    /// Runs `fut` with these signals muted in its task.
    pub async fn scope<F: Future>(self, fut: F) -> F::Output {
        let muting = self.merged();
        let _active = ScopeGuard::new();
        MUTED.scope(muting, fut).await
    }

    /// Runs `f` with these signals muted on this thread, for synchronous code.
    pub fn sync_scope<R>(self, f: impl FnOnce() -> R) -> R {
        let muting = self.merged();
        let _active = ScopeGuard::new();
        MUTED.sync_scope(muting, f)
    }
}

/// Counts one live scope (mute or test kit) for as long as it lives.
pub(crate) struct ScopeGuard;

impl ScopeGuard {
    pub(crate) fn new() -> Self {
        SCOPES.fetch_add(1, Ordering::Relaxed);
        ScopeGuard
    }
}

impl Drop for ScopeGuard {
    fn drop(&mut self) {
        SCOPES.fetch_sub(1, Ordering::Relaxed);
    }
}
