//! Sending: `send` stops at the first error, `send_robust` runs every receiver; both exist in
//! async and sync form.
//!
//! The hot path, in order: in debug builds only, one atomic load saying that the program's
//! first send already checked that receivers are linked; one atomic load says whether anybody
//! listens (for an unheard signal, one more says whether a test-kit scope is alive, and nothing
//! else happens); a scope check that is one more atomic load unless a mute or test-kit scope is
//! alive; a lock-free snapshot load; then each matching receiver in order. A send whose
//! matching receivers are all sync never awaits and never allocates, even from `send().await`.
//!
//! A send made while some scope is alive (anywhere) takes the `*_scoped` functions, out of
//! line: they ask the task's scopes whether it is muted, record it for the test kit's
//! recorders, and run fakes in place of the receivers they replace (`run_sync_recorded` and
//! `run_async` with `Some(fakes)`).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::FutureExt as _;
use tracing::Instrument as _;

use crate::error::{Outcome, SendError, receiver_outcome};
use crate::mute::any_scope;
use crate::nesting::{self, Nested};
use crate::receiver::{AsyncHandler, BoxError, BoxFuture, Handler, SyncHandler};
use crate::registry::{Entry, Inner, Registry, Snapshot, check_linked_once};
use crate::report::Report;
use crate::signal::{PlainSignal, Sender, Signal};
use crate::testing::{Fakes, Verdict, verdict};

/// Where results go: stop at the first error, keep every outcome, or stop at the first error
/// and keep every receiver's reply (`R`, the signal's [`Signal::Reply`]).
enum Sink<'a, R> {
    FirstError,
    Robust(&'a mut Vec<Outcome>),
    Collect(&'a mut Vec<(&'static str, R)>),
}

impl<R> Sink<'_, R> {
    /// Records one receiver's result; `Err` means stop the send. The usual case, a success in
    /// a send that stops at the first error with DEBUG off, is a check and nothing else.
    #[inline]
    fn record(
        &mut self,
        signal: &'static str,
        receiver: &'static str,
        result: Result<(), SendError>,
    ) -> Result<(), SendError> {
        if !matches!(self, Sink::Robust(_)) && result.is_ok() && !debug_enabled() {
            return Ok(());
        }
        self.record_traced(signal, receiver, result)
    }

    /// Calls a sync receiver: its reply kept when the sink collects them, else not asked for.
    #[inline]
    fn call_sync<S: Signal<Reply = R>>(
        &mut self,
        handler: &dyn SyncHandler<S>,
        event: S::Event<'_>,
        sender: Sender,
        receiver: &'static str,
    ) -> Result<(), SendError> {
        match self {
            Sink::Collect(out) => {
                let outcome = catch_unwind(AssertUnwindSafe(|| handler.call_reply(sender, event)));
                keep_reply(out, S::NAME, sender, receiver, outcome)
            }
            _ => call_sync(handler, event, sender, receiver),
        }
    }

    /// Awaits an async receiver: its reply kept when the sink collects them.
    async fn call_async<S: Signal<Reply = R>>(
        &mut self,
        handler: &dyn AsyncHandler<S>,
        event: S::Event<'_>,
        sender: Sender,
        receiver: &'static str,
    ) -> Result<(), SendError> {
        match self {
            Sink::Collect(out) => {
                let outcome =
                    match catch_unwind(AssertUnwindSafe(|| handler.call_reply(sender, event))) {
                        Ok(fut) => AssertUnwindSafe(fut).catch_unwind().await,
                        Err(payload) => Err(payload),
                    };
                keep_reply(out, S::NAME, sender, receiver, outcome)
            }
            _ => call_async(handler, event, sender, receiver).await,
        }
    }

    #[inline(never)]
    fn record_traced(
        &mut self,
        signal: &'static str,
        receiver: &'static str,
        result: Result<(), SendError>,
    ) -> Result<(), SendError> {
        match self {
            Sink::FirstError | Sink::Collect(_) => {
                if let Err(error) = &result {
                    // As `dyn Error`, so subscribers see its sources (the receiver's own error) too.
                    let error: &(dyn std::error::Error + 'static) = error;
                    tracing::debug!(receiver, outcome = "error", error);
                } else {
                    tracing::debug!(receiver, outcome = "ok");
                }
                result
            }
            Sink::Robust(out) => {
                if let Err(error) = &result {
                    // Like Django's send_robust, which logs at ERROR on "django.dispatch" (and
                    // so reaches stderr through Python's last-resort handler).
                    Report::error("error calling receiver in send_robust", error)
                        .about(receiver, signal)
                        .emit();
                } else if debug_enabled() {
                    tracing::debug!(receiver, outcome = "ok");
                }
                out.push(Outcome { receiver, result });
                Ok(())
            }
        }
    }

    /// The whole send is refused (too deep): every matching receiver gets the error.
    fn refuse<S: Signal>(
        self,
        snap: &Snapshot<S>,
        sender: Sender,
        error: SendError,
    ) -> Result<(), SendError> {
        match self {
            Sink::FirstError | Sink::Collect(_) => Err(error),
            Sink::Robust(out) => {
                let SendError::TooDeep { limit, chain } = error else {
                    unreachable!("only TooDeep refuses a whole send")
                };
                for entry in matching(snap, sender) {
                    let error = SendError::TooDeep {
                        limit,
                        chain: chain.clone(),
                    };
                    out.push(Outcome {
                        receiver: entry.info.name,
                        result: Err(error),
                    });
                }
                Ok(())
            }
        }
    }
}

#[inline]
fn matching<S: Signal>(snap: &Snapshot<S>, sender: Sender) -> impl Iterator<Item = &Entry<S>> {
    snap.entries
        .iter()
        .filter(move |e| sender.matches(e.sender))
}

#[cold]
#[inline(never)]
fn receiver_error(
    signal: &'static str,
    sender: Sender,
    receiver: &'static str,
    outcome: std::thread::Result<Result<(), BoxError>>,
) -> Result<(), SendError> {
    let outcome = match outcome {
        // A nested send that was too deep: its error goes out as it is, this send's link added,
        // instead of one more `Receiver` wrapper per level.
        Ok(Err(error)) => match nesting::pass_too_deep(error, signal, sender.name(), receiver) {
            Ok(too_deep) => return Err(too_deep),
            Err(error) => Ok(Err(error)),
        },
        outcome => outcome,
    };
    receiver_outcome(signal, sender.name(), receiver, outcome)
}

/// A collecting send's outcome of one receiver: its reply pushed after the others, or its
/// failure as [`call_sync`] reports it. A receiver that gives no reply now (a durable one, a
/// test stub) adds nothing.
fn keep_reply<R>(
    out: &mut Vec<(&'static str, R)>,
    signal: &'static str,
    sender: Sender,
    receiver: &'static str,
    outcome: std::thread::Result<Result<Option<R>, BoxError>>,
) -> Result<(), SendError> {
    match outcome {
        Ok(Ok(reply)) => {
            out.extend(reply.map(|reply| (receiver, reply)));
            Ok(())
        }
        Ok(Err(error)) => receiver_error(signal, sender, receiver, Ok(Err(error))),
        Err(panic) => receiver_error(signal, sender, receiver, Err(panic)),
    }
}

#[inline]
fn call_sync<S: Signal>(
    handler: &dyn SyncHandler<S>,
    event: S::Event<'_>,
    sender: Sender,
    receiver: &'static str,
) -> Result<(), SendError> {
    receiver_error(
        S::NAME,
        sender,
        receiver,
        catch_unwind(AssertUnwindSafe(|| handler.call(sender, event))),
    )
}

async fn call_async<S: Signal>(
    handler: &dyn AsyncHandler<S>,
    event: S::Event<'_>,
    sender: Sender,
    receiver: &'static str,
) -> Result<(), SendError> {
    let outcome = match catch_unwind(AssertUnwindSafe(|| handler.call(sender, event))) {
        Ok(fut) => AssertUnwindSafe(fut).catch_unwind().await,
        Err(payload) => Err(payload),
    };
    receiver_error(S::NAME, sender, receiver, outcome)
}

fn async_refused<S: Signal>(sender: Sender, receiver: &'static str) -> SendError {
    SendError::AsyncReceiverInSyncSend {
        signal: S::NAME,
        sender: sender.name(),
        receiver,
    }
}

/// Whether a subscriber may want the DEBUG spans and events of a send (one atomic load).
///
/// When none does, a send builds none: a disabled span is not free (with tracing's `log`
/// feature, which sqlx turns on, it calls into `log` when created, entered, exited and
/// dropped), and it would be paid per receiver.
#[inline]
fn debug_enabled() -> bool {
    use tracing::level_filters::{LevelFilter, STATIC_MAX_LEVEL};
    STATIC_MAX_LEVEL >= LevelFilter::DEBUG && LevelFilter::current() >= LevelFilter::DEBUG
}

/// The span of one send, if DEBUG is enabled.
fn signal_span<S: Signal>(sender: Sender) -> tracing::Span {
    if debug_enabled() {
        tracing::debug_span!("signal", signal = S::NAME, sender = sender.name())
    } else {
        tracing::Span::none()
    }
}

/// The span of one receiver, if DEBUG is enabled.
#[inline]
fn receiver_span(receiver: &'static str, phase: &'static str) -> tracing::Span {
    if debug_enabled() {
        tracing::debug_span!("receiver", receiver, phase)
    } else {
        tracing::Span::none()
    }
}

/// Runs the matching receivers without awaiting; async ones are refused.
///
/// The usual send (stop at the first error, no DEBUG subscriber) takes the plain loop below:
/// per receiver a sender check, the call, and a test of its result, with everything about
/// failures out of line. Traces and `send_robust`'s outcomes take [`run_sync_recorded`].
#[inline]
fn run_sync<S: Signal>(
    snap: &Snapshot<S>,
    sender: Sender,
    mut event: S::Event<'_>,
    sink: Sink<'_, S::Reply>,
) -> Result<(), SendError> {
    if !matches!(sink, Sink::FirstError) || debug_enabled() {
        return run_sync_recorded(snap, sender, event, sink, None);
    }
    let _level = nesting::enter_sync(S::NAME, sender.name())?;
    for entry in matching(snap, sender) {
        let Handler::Sync(handler) = &entry.handler else {
            return Err(async_refused::<S>(sender, entry.info.name));
        };
        let event = S::reborrow(&mut event);
        // Each failure moved out whole, so that success has nothing to drop.
        match catch_unwind(AssertUnwindSafe(|| handler.call(sender, event))) {
            Ok(Ok(())) => {}
            Ok(Err(error)) => {
                return receiver_error(S::NAME, sender, entry.info.name, Ok(Err(error)));
            }
            Err(panic) => return receiver_error(S::NAME, sender, entry.info.name, Err(panic)),
        }
    }
    Ok(())
}

/// [`run_sync`] with a span per send and per receiver when DEBUG is enabled, every outcome
/// handed to the sink, and the test kit's fakes run in place of the receivers they replace.
#[inline(never)]
fn run_sync_recorded<S: Signal>(
    snap: &Snapshot<S>,
    sender: Sender,
    mut event: S::Event<'_>,
    mut sink: Sink<'_, S::Reply>,
    fakes: Option<&Fakes>,
) -> Result<(), SendError> {
    let span = signal_span::<S>(sender);
    let _entered = span.enter();
    let _level = match nesting::enter_sync(S::NAME, sender.name()) {
        Ok(level) => level,
        Err(error) => return sink.refuse(snap, sender, error),
    };
    for entry in matching(snap, sender) {
        let receiver = entry.info.name;
        let handler = match fakes {
            None => &entry.handler,
            Some(fakes) => fakes.call(entry, sender, &event),
        };
        let result = match handler {
            Handler::Sync(handler) => {
                let event = S::reborrow(&mut event);
                if debug_enabled() {
                    let phase = entry.info.phase.as_str();
                    let _span = tracing::debug_span!("receiver", receiver, phase).entered();
                    sink.call_sync(&**handler, event, sender, receiver)
                } else {
                    sink.call_sync(&**handler, event, sender, receiver)
                }
            }
            Handler::Async(_) => Err(async_refused::<S>(sender, receiver)),
        };
        sink.record(S::NAME, receiver, result)?;
    }
    Ok(())
}

async fn run_async<S: Signal>(
    snap: Arc<Snapshot<S>>,
    sender: Sender,
    mut event: S::Event<'_>,
    mut sink: Sink<'_, S::Reply>,
    fakes: Option<Fakes>,
) -> Result<(), SendError> {
    // The depth was set by the `Nested` future that polls this one.
    if let Err(error) = nesting::check_async(S::NAME, sender.name()) {
        return sink.refuse(&snap, sender, error);
    }
    for entry in matching(&snap, sender) {
        let receiver = entry.info.name;
        let span = receiver_span(receiver, entry.info.phase.as_str());
        let handler = match &fakes {
            None => &entry.handler,
            Some(fakes) => fakes.call(entry, sender, &event),
        };
        let result = match handler {
            Handler::Sync(handler) => span
                .in_scope(|| sink.call_sync(&**handler, S::reborrow(&mut event), sender, receiver)),
            Handler::Async(handler) => {
                sink.call_async(&**handler, S::reborrow(&mut event), sender, receiver)
                    .instrument(span)
                    .await
            }
        };
        sink.record(S::NAME, receiver, result)?;
    }
    Ok(())
}

/// The receivers of an async send, boxed, so that the future of every send stays small (it would
/// hold this one inline, 1,200 bytes, moved on each send); only sends that reach an async
/// receiver get here, and those allocate for the receiver's future anyway.
///
/// A function of its own, not inline in `send_in`: a debug build gives every temporary of a
/// function its own stack slot, and `send_in`'s frame stays on the stack for as long as the
/// sends nested below it run, so the unboxed future must not be one of its temporaries.
fn boxed_run<'f, 'e: 'f, 's: 'f, S: Signal>(
    snap: Arc<Snapshot<S>>,
    sender: Sender,
    event: S::Event<'e>,
    sink: Sink<'s, S::Reply>,
    fakes: Option<Fakes>,
) -> BoxFuture<'f, Result<(), SendError>> {
    Box::pin(run_async(snap, sender, event, sink, fakes).instrument(signal_span::<S>(sender)))
}

/// What an async send does after the synchronous checks.
enum Plan<'e, S: Signal> {
    Done(Result<(), SendError>),
    Await(Arc<Snapshot<S>>, S::Event<'e>, Option<Fakes>),
}

/// Whether a send must be awaited: a matching receiver, or the fake in its place, is async.
fn needs_await<S: Signal>(snap: &Snapshot<S>, sender: Sender, fakes: Option<&Fakes>) -> bool {
    match fakes {
        None => snap.any_async && matching(snap, sender).any(|e| e.handler.is_async()),
        Some(fakes) => matching(snap, sender).any(|e| fakes.handler(e).is_async()),
    }
}

impl<S: Signal> Registry<S> {
    /// Sends synchronously if no matching receiver is async, else hands back what to await.
    #[inline]
    fn plan<'e>(
        &'static self,
        sender: Sender,
        event: S::Event<'e>,
        sink: Sink<'_, S::Reply>,
    ) -> Plan<'e, S> {
        let Some(inner) = self.live() else {
            return Plan::Done(Ok(()));
        };
        if any_scope() {
            return Self::plan_scoped(inner, sender, event, sink);
        }
        let snap = inner.lend();
        if snap.any_async && matching(&snap, sender).any(|e| e.handler.is_async()) {
            return Plan::Await(snap.share(), event, None);
        }
        Plan::Done(run_sync(&snap, sender, event, sink))
    }

    /// [`plan`](Registry::plan) while a mute or test-kit scope is alive somewhere: muted,
    /// recorded, faked.
    #[inline(never)]
    fn plan_scoped<'e>(
        inner: &Inner<S>,
        sender: Sender,
        event: S::Event<'e>,
        sink: Sink<'_, S::Reply>,
    ) -> Plan<'e, S> {
        let fakes = match verdict::<S>(sender, &event) {
            Verdict::Muted => return Plan::Done(Ok(())),
            Verdict::Deliver => None,
            Verdict::Faked(fakes) => Some(fakes),
        };
        let snap = inner.lend();
        if needs_await(&snap, sender, fakes.as_ref()) {
            return Plan::Await(snap.share(), event, fakes);
        }
        Plan::Done(match &fakes {
            None => run_sync(&snap, sender, event, sink),
            Some(fakes) => run_sync_recorded(&snap, sender, event, sink, Some(fakes)),
        })
    }

    async fn send_in(
        &'static self,
        sender: Sender,
        event: S::Event<'_>,
        mut sink: Sink<'_, S::Reply>,
    ) -> Result<(), SendError> {
        let (snap, event, fakes) = match self.plan(sender, event, reborrow_sink(&mut sink)) {
            Plan::Done(result) => return result,
            Plan::Await(snap, event, fakes) => (snap, event, fakes),
        };
        Nested::new(boxed_run(snap, sender, event, sink, fakes)).await
    }

    /// Sends `event` from `sender`, awaiting async receivers in dispatch order; stops at the
    /// first receiver error and returns it (Django's `send`).
    ///
    /// # Errors
    ///
    /// The first receiver's error or panic ([`SendError::Receiver`], [`SendError::Panicked`]),
    /// or [`SendError::TooDeep`] when sends nest beyond [`max_depth`](crate::max_depth).
    pub fn send<'e>(
        &'static self,
        sender: Sender,
        event: S::Event<'e>,
    ) -> impl Future<Output = Result<(), SendError>> + Send + 'e {
        check_linked_once::<S>(sender);
        // Checked when called, so that an unheard send does not build the send's future.
        Sending {
            state: if self.live().is_some() {
                State::Start {
                    registry: self,
                    sender,
                    event,
                }
            } else {
                State::Unheard
            },
        }
    }

    /// Sends `event` from `sender` to every receiver whatever fails, and returns each
    /// receiver's outcome in dispatch order (Django's `send_robust`). Errors are also logged
    /// through `tracing` at ERROR, or printed on stderr when no subscriber is installed.
    pub async fn send_robust(&'static self, sender: Sender, event: S::Event<'_>) -> Vec<Outcome> {
        check_linked_once::<S>(sender);
        let mut out = Vec::new();
        let _ = self.send_in(sender, event, Sink::Robust(&mut out)).await;
        out
    }

    /// Sends from synchronous code; refuses, before running anything, if a matching receiver
    /// is async.
    ///
    /// # Errors
    ///
    /// [`SendError::AsyncReceiverInSyncSend`] naming the first async receiver, else as
    /// [`Registry::send`].
    #[inline]
    pub fn send_sync(&'static self, sender: Sender, event: S::Event<'_>) -> Result<(), SendError> {
        check_linked_once::<S>(sender);
        match self.live() {
            None => Ok(()), // inlined: an unheard send is this check and nothing else
            Some(inner) => Self::send_sync_heard(inner, sender, event),
        }
    }

    #[inline(never)]
    fn send_sync_heard(
        inner: &Inner<S>,
        sender: Sender,
        event: S::Event<'_>,
    ) -> Result<(), SendError> {
        if any_scope() {
            return Self::run_sync_scoped(inner, sender, event, Sink::FirstError);
        }
        let snap = inner.lend();
        if snap.any_async
            && let Some(entry) = matching(&snap, sender).find(|e| e.handler.is_async())
        {
            return Err(async_refused::<S>(sender, entry.info.name));
        }
        run_sync(&snap, sender, event, Sink::FirstError)
    }

    /// A sync send while a mute or test-kit scope is alive somewhere: muted, recorded, faked.
    /// An async receiver (or fake) is refused before anything runs when the sink stops at the
    /// first error, and reported per receiver by `send_robust_sync`.
    #[inline(never)]
    fn run_sync_scoped(
        inner: &Inner<S>,
        sender: Sender,
        event: S::Event<'_>,
        sink: Sink<'_, S::Reply>,
    ) -> Result<(), SendError> {
        let fakes = match verdict::<S>(sender, &event) {
            Verdict::Muted => return Ok(()),
            Verdict::Deliver => None,
            Verdict::Faked(fakes) => Some(fakes),
        };
        let snap = inner.lend();
        if !matches!(sink, Sink::Robust(_))
            && let Some(entry) = matching(&snap, sender).find(|e| match &fakes {
                None => e.handler.is_async(),
                Some(fakes) => fakes.handler(e).is_async(),
            })
        {
            return Err(async_refused::<S>(sender, entry.info.name));
        }
        match &fakes {
            None => run_sync(&snap, sender, event, sink),
            Some(fakes) => run_sync_recorded(&snap, sender, event, sink, Some(fakes)),
        }
    }

    /// [`Registry::send_robust`] from synchronous code: sync receivers run, each async one is
    /// reported as [`SendError::AsyncReceiverInSyncSend`].
    pub fn send_robust_sync(&'static self, sender: Sender, event: S::Event<'_>) -> Vec<Outcome> {
        check_linked_once::<S>(sender);
        let mut out = Vec::new();
        let Some(inner) = self.live() else { return out };
        if any_scope() {
            let _ = Self::run_sync_scoped(inner, sender, event, Sink::Robust(&mut out));
            return out;
        }
        let _ = run_sync(&inner.lend(), sender, event, Sink::Robust(&mut out));
        out
    }

    /// Sends `event` from `sender` like [`Registry::send`] and returns each receiver's reply
    /// with its name, in dispatch order (Django's `send`, which returns `[(receiver,
    /// response), ..]`).
    ///
    /// # Errors
    ///
    /// As [`Registry::send`]: the first failing receiver stops the send, and the replies
    /// collected before it are dropped.
    pub async fn send_collect(
        &'static self,
        sender: Sender,
        event: S::Event<'_>,
    ) -> Result<Vec<(&'static str, S::Reply)>, SendError> {
        check_linked_once::<S>(sender);
        let mut out = Vec::new();
        self.send_in(sender, event, Sink::Collect(&mut out)).await?;
        Ok(out)
    }

    /// [`Registry::send_collect`] from synchronous code; refuses, before running anything, a
    /// send that would reach an async receiver.
    ///
    /// # Errors
    ///
    /// As [`Registry::send_sync`].
    pub fn send_collect_sync(
        &'static self,
        sender: Sender,
        event: S::Event<'_>,
    ) -> Result<Vec<(&'static str, S::Reply)>, SendError> {
        check_linked_once::<S>(sender);
        let mut out = Vec::new();
        let Some(inner) = self.live() else {
            return Ok(out);
        };
        if any_scope() {
            Self::run_sync_scoped(inner, sender, event, Sink::Collect(&mut out))?;
            return Ok(out);
        }
        let snap = inner.lend();
        if snap.any_async
            && let Some(entry) = matching(&snap, sender).find(|e| e.handler.is_async())
        {
            return Err(async_refused::<S>(sender, entry.info.name));
        }
        run_sync(&snap, sender, event, Sink::Collect(&mut out))?;
        Ok(out)
    }
}

/// The future of [`Registry::send`], written out rather than an `async` block: it is moved on
/// every send (returned, then pinned by the caller), and the generated one nested the send's
/// state twice, so an awaited send to sync receivers cost several times a `send_sync`. Its first
/// poll runs [`Registry::plan`]; only a send that reaches an async receiver goes on to a second
/// state, the boxed run.
struct Sending<'e, S: Signal> {
    state: State<'e, S>,
}

enum State<'e, S: Signal> {
    /// Nobody listened when `send` was called.
    Unheard,
    Start {
        registry: &'static Registry<S>,
        sender: Sender,
        event: S::Event<'e>,
    },
    Running(Nested<'e, Result<(), SendError>>),
    Finished,
}

impl<S: Signal> Future for Sending<'_, S> {
    type Output = Result<(), SendError>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut running = match std::mem::replace(&mut this.state, State::Finished) {
            State::Unheard => return Poll::Ready(Ok(())),
            State::Start {
                registry,
                sender,
                event,
            } => {
                // `plan`, with the sink known: the sync case returns `run_sync`'s result as the
                // poll's, with no `Plan` in between.
                let Some(inner) = registry.live() else {
                    return Poll::Ready(Ok(()));
                };
                if any_scope() {
                    match Registry::<S>::plan_scoped(inner, sender, event, Sink::FirstError) {
                        Plan::Done(result) => return Poll::Ready(result),
                        Plan::Await(snap, event, fakes) => {
                            Nested::new(boxed_run(snap, sender, event, Sink::FirstError, fakes))
                        }
                    }
                } else {
                    let snap = inner.lend();
                    if !(snap.any_async && matching(&snap, sender).any(|e| e.handler.is_async())) {
                        return Poll::Ready(run_sync(&snap, sender, event, Sink::FirstError));
                    }
                    Nested::new(boxed_run(
                        snap.share(),
                        sender,
                        event,
                        Sink::FirstError,
                        None,
                    ))
                }
            }
            State::Running(running) => running,
            State::Finished => panic!("a send's future was polled after it completed"),
        };
        match Pin::new(&mut running).poll(cx) {
            Poll::Ready(result) => Poll::Ready(result),
            Poll::Pending => {
                this.state = State::Running(running);
                Poll::Pending
            }
        }
    }
}

fn reborrow_sink<'a, R>(sink: &'a mut Sink<'_, R>) -> Sink<'a, R> {
    match sink {
        Sink::FirstError => Sink::FirstError,
        Sink::Robust(out) => Sink::Robust(out),
        Sink::Collect(out) => Sink::Collect(out),
    }
}

/// Sends a custom signal from `sender` and awaits its receivers in dispatch order; stops at
/// the first error. Like Django's `signal.send(sender=..., **kwargs)`.
///
/// # Errors
///
/// The first failing receiver's error, naming the receiver, the signal and the sender; see
/// [`SendError`].
///
/// # Example
///
/// ```
/// use signals_core::{receiver, Sender, Signal};
///
/// #[derive(Signal)]
/// struct PaymentSuccessful { amount_cents: i64 }
///
/// #[receiver(PaymentSuccessful)]
/// fn check(ev: &PaymentSuccessful) -> Result<(), String> {
///     if ev.amount_cents > 0 { Ok(()) } else { Err("refund sent as payment".into()) }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// signals_core::send(Sender::NONE, &PaymentSuccessful { amount_cents: 1200 }).await?;
/// let err = signals_core::send(Sender::NONE, &PaymentSuccessful { amount_cents: -1 }).await.unwrap_err();
/// assert!(err.to_string().contains("check"));
/// # Ok::<(), signals_core::SendError>(()) }).unwrap();
/// ```
pub fn send<S: PlainSignal>(
    sender: Sender,
    signal: &S,
) -> impl Future<Output = Result<(), SendError>> + Send + '_ {
    S::registry().send(sender, signal.as_event())
}

/// Sends a custom signal to every receiver whatever fails; returns each outcome in dispatch
/// order and logs errors through `tracing` (on stderr when no subscriber is installed, as
/// Python's logging does by default). Like Django's `send_robust`.
pub async fn send_robust<S: PlainSignal>(sender: Sender, signal: &S) -> Vec<Outcome> {
    S::registry().send_robust(sender, signal.as_event()).await
}

/// Sends a custom signal from synchronous code.
///
/// # Errors
///
/// [`SendError::AsyncReceiverInSyncSend`] (before running anything) if a matching receiver is
/// async; otherwise as [`send`].
pub fn send_sync<S: PlainSignal>(sender: Sender, signal: &S) -> Result<(), SendError> {
    S::registry().send_sync(sender, signal.as_event())
}

/// [`send_robust`] from synchronous code; async receivers are reported as errors.
pub fn send_robust_sync<S: PlainSignal>(sender: Sender, signal: &S) -> Vec<Outcome> {
    S::registry().send_robust_sync(sender, signal.as_event())
}

/// Sends a custom signal from `sender`, awaiting its receivers in dispatch order, and returns
/// each receiver's reply with the receiver's name, in that order: Django's
/// `signal.send(sender=..)`, which returns `[(receiver, response), ..]`, for voting and
/// collecting ("which plugins handle this payment").
///
/// The reply's type is the signal's [`Reply`](Signal::Reply), declared with
/// `#[signal(reply = T)]` (`()` by default, one `()` per receiver). A receiver that gives no
/// reply when it is called (a durable receiver, whose work runs later in a worker; a test-kit
/// stub) is not in the list. [`send`] of the same signal drops the replies.
///
/// # Errors
///
/// As [`send`]: the first failing receiver stops the send and is named with the signal and
/// the sender; the replies collected before it are dropped.
///
/// # Example
///
/// ```
/// use signals_core::{receiver, Sender, Signal};
///
/// #[derive(Signal)]
/// #[signal(reply = Option<&'static str>)]
/// struct Payment { method: &'static str }
///
/// #[receiver(Payment)]
/// fn cards(ev: &Payment) -> Option<&'static str> {
///     (ev.method == "card").then_some("stripe")
/// }
///
/// #[receiver(Payment, priority = -1)]
/// async fn wallets(ev: &Payment) -> Result<Option<&'static str>, String> {
///     Ok((ev.method == "wallet").then_some("paypal"))
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let replies = signals_core::send_collect(Sender::NONE, &Payment { method: "card" }).await?;
/// let handlers: Vec<_> = replies.iter().filter_map(|(_, handler)| *handler).collect();
/// assert_eq!(handlers, ["stripe"]);
/// assert!(replies[0].0.ends_with("::cards") && replies[1].0.ends_with("::wallets"));
/// # Ok::<(), signals_core::SendError>(()) }).unwrap();
/// ```
pub async fn send_collect<S: PlainSignal>(
    sender: Sender,
    signal: &S,
) -> Result<Vec<(&'static str, S::Reply)>, SendError> {
    S::registry().send_collect(sender, signal.as_event()).await
}

/// [`send_collect`] from synchronous code.
///
/// # Errors
///
/// [`SendError::AsyncReceiverInSyncSend`] (before running anything) if a matching receiver is
/// async; otherwise as [`send_collect`].
pub fn send_collect_sync<S: PlainSignal>(
    sender: Sender,
    signal: &S,
) -> Result<Vec<(&'static str, S::Reply)>, SendError> {
    S::registry().send_collect_sync(sender, signal.as_event())
}
