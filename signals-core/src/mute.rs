//! Muting: a scope in which chosen signals, optionally from one sender, are not delivered.
//!
//! The scope is task-local (and thread-local for [`Mute::sync_scope`]), so tests running in
//! parallel do not mute each other: the answer to Django's `mute_signals` and its cache pitfall.

use std::any::TypeId;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::signal::{Sender, Signal};

tokio::task_local! {
    static MUTED: Vec<Rule>;
}

/// How many mute scopes are alive anywhere: zero keeps the check off the send path.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Rule {
    signal: TypeId,
    sender: Option<TypeId>,
}

/// Whether `S` from `sender` is muted in the current task or sync scope.
#[inline]
pub(crate) fn is_muted<S: Signal>(sender: Sender) -> bool {
    if ACTIVE.load(Ordering::Relaxed) == 0 {
        return false;
    }
    let signal = TypeId::of::<S>();
    MUTED
        .try_with(|rules| {
            rules
                .iter()
                .any(|r| r.signal == signal && (r.sender.is_none() || r.sender == sender.type_id()))
        })
        .unwrap_or(false)
}

/// A set of signals to silence inside a scope.
///
/// Sends of a muted signal return `Ok` without calling any receiver. Scopes nest (the inner
/// one adds to the outer one) and do not reach tasks spawned inside them.
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
}

impl Mute {
    /// Mutes nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Mutes every send of `S`.
    pub fn signal<S: Signal>(mut self) -> Self {
        self.rules.push(Rule {
            signal: TypeId::of::<S>(),
            sender: None,
        });
        self
    }

    /// Mutes sends of `S` from sender `T` only.
    pub fn signal_from<S: Signal, T: ?Sized + 'static>(mut self) -> Self {
        self.rules.push(Rule {
            signal: TypeId::of::<S>(),
            sender: Some(TypeId::of::<T>()),
        });
        self
    }

    fn merged(mut self) -> Vec<Rule> {
        let _ = MUTED.try_with(|outer| self.rules.extend_from_slice(outer));
        self.rules
    }

    /// Runs `fut` with these signals muted in its task.
    pub async fn scope<F: Future>(self, fut: F) -> F::Output {
        let rules = self.merged();
        let _active = Active::new();
        MUTED.scope(rules, fut).await
    }

    /// Runs `f` with these signals muted on this thread, for synchronous code.
    pub fn sync_scope<R>(self, f: impl FnOnce() -> R) -> R {
        let rules = self.merged();
        let _active = Active::new();
        MUTED.sync_scope(rules, f)
    }
}

struct Active;

impl Active {
    fn new() -> Self {
        ACTIVE.fetch_add(1, Ordering::Relaxed);
        Active
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        ACTIVE.fetch_sub(1, Ordering::Relaxed);
    }
}
