//! The nesting guard: sends inside receivers are counted, and a chain deeper than the limit
//! fails with an error naming the chain instead of overflowing the stack.
//!
//! A send that awaits nothing keeps its frame in a thread-local stack (it cannot move threads);
//! a send that awaits receivers keeps it in a task-local one, so nested sends in the same task
//! see it wherever the task runs. The depth is the sum of both.

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::SendError;

static MAX_DEPTH: AtomicUsize = AtomicUsize::new(32);

/// The deepest chain of nested sends allowed (default 32).
#[must_use]
pub fn max_depth() -> usize {
    MAX_DEPTH.load(Ordering::Relaxed)
}

/// Sets the deepest chain of nested sends allowed; a send beyond it fails with
/// [`SendError::TooDeep`]. Applies to every thread from the next send on.
///
/// # Panics
///
/// If `limit` is 0: no send could ever run.
pub fn set_max_depth(limit: usize) {
    assert!(limit > 0, "set_max_depth(0) would refuse every send");
    MAX_DEPTH.store(limit, Ordering::Relaxed);
}

pub(crate) struct Frame {
    signal: &'static str,
    sender: &'static str,
    receiver: Cell<&'static str>,
}

type Chain = RefCell<Vec<Frame>>;

thread_local! {
    static THREAD_CHAIN: Chain = const { RefCell::new(Vec::new()) };
    /// The receiver running in the innermost send of the thread stack. Written for every
    /// receiver, so it is a slot without destructor (a plain thread-local store); it is copied
    /// into that send's frame only when a nested send begins, the one time the chain is read.
    static THREAD_RUNNING: Cell<&'static str> = const { Cell::new("") };
}

tokio::task_local! {
    static TASK_CHAIN: Chain;
}

/// Which stack a send's frame lives on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stack {
    Thread,
    Task,
}

/// Whether a task-local chain is in scope (an async send is already running in this task).
pub(crate) fn in_task_chain() -> bool {
    TASK_CHAIN.try_with(|_| ()).is_ok()
}

/// Runs `fut` with a fresh task-local chain.
pub(crate) async fn with_task_chain<F: Future>(fut: F) -> F::Output {
    TASK_CHAIN.scope(RefCell::new(Vec::new()), fut).await
}

fn with_stack<R>(stack: Stack, f: impl FnOnce(&Chain) -> R) -> Option<R> {
    match stack {
        Stack::Thread => THREAD_CHAIN.try_with(f).ok(),
        Stack::Task => TASK_CHAIN.try_with(f).ok(),
    }
}

/// Pops its frame when dropped, also when a receiver panics through it.
pub(crate) struct FrameGuard {
    stack: Stack,
    /// `THREAD_RUNNING` when the send began: the enclosing send's receiver, restored at the end.
    outer_running: &'static str,
}

impl FrameGuard {
    /// Pushes a frame for a send, or fails if the chain is already at the limit.
    pub(crate) fn enter(
        stack: Stack,
        signal: &'static str,
        sender: &'static str,
    ) -> Result<Self, SendError> {
        // This send runs inside the receiver the innermost thread frame is running, if any.
        let outer_running = THREAD_RUNNING.get();
        THREAD_CHAIN.with(|c| {
            if let Some(frame) = c.borrow().last() {
                frame.receiver.set(outer_running);
            }
        });
        let task_depth = TASK_CHAIN.try_with(|c| c.borrow().len()).unwrap_or(0);
        let thread_depth = THREAD_CHAIN.with(|c| c.borrow().len());
        let limit = max_depth();
        if task_depth + thread_depth >= limit {
            let mut chain = String::new();
            TASK_CHAIN
                .try_with(|c| render(&c.borrow(), &mut chain))
                .ok();
            THREAD_CHAIN.with(|c| render(&c.borrow(), &mut chain));
            let _ = write!(chain, "{signal}[{sender}]");
            return Err(SendError::TooDeep { limit, chain });
        }
        with_stack(stack, |c| {
            c.borrow_mut().push(Frame {
                signal,
                sender,
                receiver: Cell::new(""),
            });
        });
        Ok(FrameGuard {
            stack,
            outer_running,
        })
    }

    /// Records the receiver now running, for the chain shown if a nested send is too deep.
    #[inline]
    pub(crate) fn running(&self, receiver: &'static str) {
        match self.stack {
            Stack::Thread => THREAD_RUNNING.set(receiver),
            Stack::Task => {
                let _ = TASK_CHAIN.try_with(|c| {
                    if let Some(frame) = c.borrow().last() {
                        frame.receiver.set(receiver);
                    }
                });
            }
        }
    }
}

impl Drop for FrameGuard {
    fn drop(&mut self) {
        with_stack(self.stack, |c| c.borrow_mut().pop());
        if self.stack == Stack::Thread {
            THREAD_RUNNING.set(self.outer_running);
        }
    }
}

fn render(frames: &[Frame], out: &mut String) {
    for frame in frames {
        let _ = write!(
            out,
            "{}[{}] -> {} -> ",
            frame.signal,
            frame.sender,
            frame.receiver.get()
        );
    }
}
