//! Errors of a send.

use crate::nesting::SendChain;
use crate::receiver::BoxError;

/// Why a send failed, naming the signal, the sender and the receiver.
///
/// [`send`](crate::send) returns the first one; [`send_robust`](crate::send_robust) returns
/// one per failed receiver. `Display` names what failed; a receiver's own error is the
/// [`source()`](std::error::Error::source), not repeated in the text, so chain printers show it
/// once. The alternate form `{:#}` prints the text followed by every cause.
#[derive(Debug)]
#[non_exhaustive]
pub enum SendError {
    /// A receiver returned an error (the source).
    Receiver {
        /// The signal's name.
        signal: &'static str,
        /// The sender's type path (`-` for none).
        sender: &'static str,
        /// The receiver's path.
        receiver: &'static str,
        /// The receiver's error.
        source: BoxError,
    },
    /// A receiver panicked; the panic was caught and the registry stays usable.
    Panicked {
        /// The signal's name.
        signal: &'static str,
        /// The sender's type path (`-` for none).
        sender: &'static str,
        /// The receiver's path.
        receiver: &'static str,
        /// The panic message.
        message: String,
        /// Where it panicked (`src/receivers.rs:12:9`), recorded by a panic hook the
        /// dispatcher chains in front of the program's at first use; `None` if the program
        /// replaced the hook after that.
        location: Option<String>,
    },
    /// A synchronous send met an async receiver it cannot await. Nothing ran.
    AsyncReceiverInSyncSend {
        /// The signal's name.
        signal: &'static str,
        /// The sender's type path (`-` for none).
        sender: &'static str,
        /// The async receiver's path.
        receiver: &'static str,
    },
    /// Sends nested deeper than [`max_depth`](crate::max_depth): a receiver probably triggers
    /// its own signal again. Nothing of the too-deep send ran.
    ///
    /// A receiver that returns it, as it is or as a cause
    /// ([`source()`](std::error::Error::source)) of its own error, does not get it wrapped in
    /// [`SendError::Receiver`]: its send returns this variant again with one more link in the
    /// chain. The caller of the outermost send gets it with every receiver named once, and a
    /// `Display` that shows the first and last links only (a few hundred bytes).
    TooDeep {
        /// The limit in force.
        limit: usize,
        /// The chain of sends, outermost first: `signal[sender] -> receiver -> ...`, the
        /// refused send last.
        chain: SendChain,
    },
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Receiver {
                signal,
                sender,
                receiver,
                ..
            } => write!(
                f,
                "receiver `{receiver}` of signal `{signal}` (sender `{sender}`) failed"
            )?,
            SendError::Panicked {
                signal,
                sender,
                receiver,
                message,
                location,
            } => {
                write!(
                    f,
                    "receiver `{receiver}` of signal `{signal}` (sender `{sender}`) panicked"
                )?;
                if let Some(location) = location {
                    write!(f, " at {location}")?;
                }
                write!(f, ": {message}")?;
            }
            SendError::AsyncReceiverInSyncSend {
                signal,
                sender,
                receiver,
            } => write!(
                f,
                "receiver `{receiver}` of signal `{signal}` (sender `{sender}`) is async and a synchronous send cannot await it: send with `.await` from async code, or make the receiver sync"
            )?,
            SendError::TooDeep { limit, chain } => write!(
                f,
                "signals nested deeper than {limit} sends, probably a receiver re-triggering its own signal: {chain}"
            )?,
        }
        if f.alternate() {
            write_causes(f, std::error::Error::source(self), ": ")?;
        }
        Ok(())
    }
}

/// Writes `first` and each of its sources, each after `separator`: the one way every error
/// and report of the framework prints its causes (`{:#}`, `Debug`, stderr lines).
///
/// # Errors
///
/// The formatter's.
pub fn write_causes(
    f: &mut std::fmt::Formatter<'_>,
    first: Option<&(dyn std::error::Error + 'static)>,
    separator: &str,
) -> std::fmt::Result {
    let mut cause = first;
    while let Some(error) = cause {
        write!(f, "{separator}{error}")?;
        cause = error.source();
    }
    Ok(())
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::Receiver { source, .. } => Some(&**source),
            _ => None,
        }
    }
}

impl SendError {
    /// The receiver's path, when the error is about one receiver.
    #[must_use]
    pub fn receiver(&self) -> Option<&'static str> {
        match self {
            SendError::Receiver { receiver, .. }
            | SendError::Panicked { receiver, .. }
            | SendError::AsyncReceiverInSyncSend { receiver, .. } => Some(receiver),
            SendError::TooDeep { .. } => None,
        }
    }
}

/// One receiver's result in [`send_robust`](crate::send_robust) (Django returns
/// `(receiver, response)` pairs).
#[derive(Debug)]
pub struct Outcome {
    /// The receiver's path.
    pub receiver: &'static str,
    /// `Ok` or the receiver's error.
    pub result: Result<(), SendError>,
}

/// The error, if any, of one receiver run: what it returned or the panic it raised. The
/// one place receiver outcomes become `SendError`s, for sends and for the ORM's `on_commit`
/// callbacks alike.
///
/// # Errors
///
/// [`SendError::Receiver`] for a returned error, [`SendError::Panicked`] for a panic.
pub fn receiver_outcome(
    signal: &'static str,
    sender: &'static str,
    receiver: &'static str,
    outcome: std::thread::Result<Result<(), BoxError>>,
) -> Result<(), SendError> {
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(source)) => Err(SendError::Receiver {
            signal,
            sender,
            receiver,
            source,
        }),
        Err(payload) => Err(SendError::Panicked {
            signal,
            sender,
            receiver,
            message: panic_message(&*payload),
            location: LAST_PANIC.with(std::cell::RefCell::take),
        }),
    }
}

/// The text of a panic payload (`panic!` with a literal or a formatted message).
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

thread_local! {
    /// Where the last panic of this thread happened, for the receiver that raised it.
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Chains a panic hook in front of the program's (once, at the first registry used) that
/// records where each panic happened, so [`SendError::Panicked`] can say where a receiver
/// panicked. The previous hook still runs: the program's panic output is unchanged.
pub(crate) fn record_panic_locations() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if let Some(at) = info.location() {
                let at = format!("{}:{}:{}", at.file(), at.line(), at.column());
                // `try_with`: a panic while the thread's locals are torn down records nothing.
                let _ = LAST_PANIC.try_with(|last| last.replace(Some(at)));
            }
            previous(info);
        }));
    });
}
