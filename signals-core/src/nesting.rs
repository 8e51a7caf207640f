//! The nesting guard: a send made while a receiver runs is one level below the send that called
//! that receiver, and a chain deeper than [`max_depth`] fails with [`SendError::TooDeep`]
//! instead of overflowing the stack.
//!
//! The depth follows the call chain, not the thread or the task. A thread-local holds the depth
//! of the send whose code runs now (0 outside any send):
//! - a sync send never awaits, so it raises the depth for as long as it runs ([`enter_sync`]);
//! - an async send's future ([`Nested`]) takes its depth from the value it finds at its first
//!   poll, the depth of the send whose receiver polls it, and sets its own around each of its
//!   polls. Sends that one receiver polls at once (`join_all`) are each polled inside that
//!   receiver's poll, so each is one level below it: siblings, not a chain. A task spawned from
//!   a receiver starts again at 0, as it runs on a stack of its own.
//!
//! Nothing is recorded on the way in: the chain that [`SendError::TooDeep`] names is built on
//! the way out, each send adding its link as the error returns through its receiver
//! ([`pass_too_deep`]). A send costs a thread-local read and write, no allocation, no lock.

use std::cell::Cell;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use crate::error::SendError;
use crate::receiver::{BoxError, BoxFuture};

/// The highest limit [`set_max_depth`] accepts.
///
/// A nested send runs on top of its caller's frames, so the deepest chain accepted must fit in
/// the 2 MiB stack that tokio gives each worker thread and Rust each spawned thread, in a debug
/// build, where frames are largest. Measured per level in a debug build (x86-64, rustc 1.95):
/// about 4 KiB for a sync receiver sending its own signal again, 7 KiB for an async one, and
/// 35 KiB for an async `post_save` receiver of signals-orm saving a model of its sender (the
/// ORM's write and sqlx's statement are part of each level); the last overflows a 2 MiB stack
/// at 57 levels. At 40 levels it uses 1.4 MiB, which leaves a third of the stack to the code
/// below the first send and to receivers with larger frames. An optimized build needs a
/// fourth to a seventh as much (1 KiB, 1 KiB, 5.5 KiB).
///
/// The limit counts sends, not bytes: a receiver whose own frames are much larger needs a
/// lower limit. Work that must go deeper should not recurse through signals: a task spawned
/// from a receiver starts at depth 0 on a stack of its own.
pub const MAX_DEPTH_CEILING: usize = 40;

/// The limit until [`set_max_depth`] changes it.
const DEFAULT_MAX_DEPTH: usize = 32;

static MAX_DEPTH: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_DEPTH);

/// The deepest chain of nested sends allowed (default 32, at most [`MAX_DEPTH_CEILING`]).
#[must_use]
#[inline]
pub fn max_depth() -> usize {
    MAX_DEPTH.load(Ordering::Relaxed)
}

/// Sets the deepest chain of nested sends allowed; a send beyond it fails with
/// [`SendError::TooDeep`]. Applies to every thread from the next send on.
///
/// # Panics
///
/// If `limit` is 0 (no send could ever run) or above [`MAX_DEPTH_CEILING`] (a chain that
/// deep could overflow a 2 MiB stack, aborting the process, before the limit stops it).
pub fn set_max_depth(limit: usize) {
    assert!(limit > 0, "set_max_depth(0) would refuse every send");
    assert!(
        limit <= MAX_DEPTH_CEILING,
        "set_max_depth({limit}) is above MAX_DEPTH_CEILING ({MAX_DEPTH_CEILING}): a chain of \
         sends that deep could overflow the stack before the limit stops it"
    );
    MAX_DEPTH.store(limit, Ordering::Relaxed);
}

thread_local! {
    /// The depth of the send whose code runs on this thread now; 0 outside any send. A slot
    /// without destructor, so reading and writing it is a plain thread-local access.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Restores the depth of the enclosing send when dropped, also when a panic unwinds through.
pub(crate) struct Level {
    outer: usize,
}

impl Drop for Level {
    #[inline]
    fn drop(&mut self) {
        DEPTH.set(self.outer);
    }
}

/// Enters a sync send one level below the running one, or refuses it if that is too deep.
#[inline]
pub(crate) fn enter_sync(signal: &'static str, sender: &'static str) -> Result<Level, SendError> {
    let outer = DEPTH.get();
    let limit = max_depth();
    if outer >= limit {
        return Err(too_deep(limit, signal, sender));
    }
    DEPTH.set(outer + 1);
    Ok(Level { outer })
}

/// Refuses an async send that is too deep; called at its start, inside its [`Nested`] poll.
#[inline]
pub(crate) fn check_async(signal: &'static str, sender: &'static str) -> Result<(), SendError> {
    let limit = max_depth();
    if DEPTH.get() > limit {
        return Err(too_deep(limit, signal, sender));
    }
    Ok(())
}

/// An async send's future, with its depth set around each poll.
///
/// The depth is taken at the first poll rather than when the future is built, so that it is
/// the depth of whoever polls it (its parent send's receiver); the inner future is boxed (the
/// send boxes it anyway), which keeps this wrapper `Unpin` without unsafe pin projection.
pub(crate) struct Nested<'a, T> {
    /// 0 until the first poll.
    depth: usize,
    run: BoxFuture<'a, T>,
}

impl<'a, T> Nested<'a, T> {
    pub(crate) fn new(run: BoxFuture<'a, T>) -> Self {
        Nested { depth: 0, run }
    }
}

impl<T> Future for Nested<'_, T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = self.get_mut();
        let outer = DEPTH.get();
        if this.depth == 0 {
            this.depth = outer + 1;
        }
        DEPTH.set(this.depth);
        let _restore = Level { outer };
        this.run.as_mut().poll(cx)
    }
}

#[cold]
fn too_deep(limit: usize, signal: &'static str, sender: &'static str) -> SendError {
    SendError::TooDeep {
        limit,
        chain: SendChain {
            links: vec![ChainLink {
                signal,
                sender,
                receiver: None,
            }],
        },
    }
}

/// A receiver's error that is, or is caused by, a [`SendError::TooDeep`] becomes that error
/// with this send's link added; any other error comes back untouched as `Err`.
///
/// Wrapping it in [`SendError::Receiver`] instead would repeat, at every level of the chain,
/// a line the chain already names: 32 of them at the default limit. A receiver's own error
/// that carries the `TooDeep` among its causes is dropped for the same reason (the `TooDeep`
/// is cloned out of it).
#[cold]
#[inline(never)]
pub(crate) fn pass_too_deep(
    error: BoxError,
    signal: &'static str,
    sender: &'static str,
    receiver: &'static str,
) -> Result<SendError, BoxError> {
    let (limit, mut chain) = match error.downcast::<SendError>() {
        // The receiver returned it as it is: moved out, not cloned.
        Ok(error) if matches!(*error, SendError::TooDeep { .. }) => match *error {
            SendError::TooDeep { limit, chain } => (limit, chain),
            _ => unreachable!("matched above"),
        },
        Ok(error) => match find_too_deep(&*error) {
            Some((limit, chain)) => (limit, chain.clone()),
            None => return Err(error),
        },
        Err(error) => match find_too_deep(&*error) {
            Some((limit, chain)) => (limit, chain.clone()),
            None => return Err(error),
        },
    };
    chain.links.push(ChainLink {
        signal,
        sender,
        receiver: Some(receiver),
    });
    Ok(SendError::TooDeep { limit, chain })
}

/// The first [`SendError::TooDeep`] among `error` and its sources.
fn find_too_deep<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<(usize, &'a SendChain)> {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(SendError::TooDeep { limit, chain }) = error.downcast_ref::<SendError>() {
            return Some((*limit, chain));
        }
        cause = error.source();
    }
    None
}

/// The chain of nested sends that a [`SendError::TooDeep`] names: each send that ran with the
/// receiver of it that made the next send, then the send refused.
///
/// `Display` writes it once, outermost first: `Signal[sender] -> receiver -> Signal[sender]`.
/// A chain of more than seven links shows its first three and last three with
/// `... (N more) ...` between them, so the error stays a few hundred bytes whatever the
/// limit; [`SendChain::links`] gives every link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendChain {
    /// Innermost first (the refused send, then each enclosing one): the order in which the
    /// error collects them on its way out.
    links: Vec<ChainLink>,
}

/// How many links [`SendChain`]'s `Display` shows at each end of a long chain.
const SHOWN_AT_EACH_END: usize = 3;

impl SendChain {
    /// Every send of the chain, outermost first; the last one is the send refused.
    #[must_use]
    pub fn links(&self) -> impl DoubleEndedIterator<Item = &ChainLink> + ExactSizeIterator {
        self.links.iter().rev()
    }
}

impl fmt::Display for SendChain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.links.len();
        let omitted = count.saturating_sub(2 * SHOWN_AT_EACH_END);
        // Leaving out a single link would save nothing.
        let (head, tail) = if omitted > 1 {
            (SHOWN_AT_EACH_END, SHOWN_AT_EACH_END)
        } else {
            (count, 0)
        };
        for (i, link) in self.links().take(head).enumerate() {
            if i > 0 {
                f.write_str(" -> ")?;
            }
            write!(f, "{link}")?;
        }
        if tail > 0 {
            write!(f, " -> ... ({omitted} more) ...")?;
            for link in self.links().skip(count - tail) {
                write!(f, " -> {link}")?;
            }
        }
        Ok(())
    }
}

/// One send of a [`SendChain`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChainLink {
    /// The signal's name.
    pub signal: &'static str,
    /// The sender's type path (`-` for none).
    pub sender: &'static str,
    /// The receiver that made the next send; `None` for the send refused, whose receivers did
    /// not run.
    pub receiver: Option<&'static str>,
}

impl fmt::Display for ChainLink {
    /// `Signal[sender] -> receiver`, or `Signal[sender]` for the send refused.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.signal, self.sender)?;
        if let Some(receiver) = self.receiver {
            write!(f, " -> {receiver}")?;
        }
        Ok(())
    }
}
