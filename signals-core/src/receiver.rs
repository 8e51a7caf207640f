//! What a receiver is: its callable, its parameter and return adapters, and its metadata.

use std::borrow::Cow;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use crate::signal::{PlainSignal, Sender, Signal};

/// The error a receiver may return: any error, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The future an async receiver returns, boxed so receivers of one signal share a type.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A synchronous receiver of `S`, called with one event.
pub trait SyncHandler<S: Signal>: Send + Sync + 'static {
    /// Runs the receiver for a send from `sender` (Django passes `sender` to every receiver).
    ///
    /// # Errors
    ///
    /// Whatever the receiver returns.
    #[expect(
        clippy::elidable_lifetime_names,
        reason = "the name ties the event to what is built from it"
    )]
    fn call<'e>(&self, sender: Sender, event: S::Event<'e>) -> Result<(), BoxError>;

    /// Runs the receiver and gives its reply back, for
    /// [`send_collect`](crate::send_collect). `None` (the default, which runs
    /// [`call`](Self::call)) for a receiver that gives no reply now: a durable receiver, whose
    /// work runs later in a worker, or a test stub.
    ///
    /// # Errors
    ///
    /// Whatever the receiver returns.
    #[expect(
        clippy::elidable_lifetime_names,
        reason = "the name ties the event to what is built from it"
    )]
    fn call_reply<'e>(
        &self,
        sender: Sender,
        event: S::Event<'e>,
    ) -> Result<Option<S::Reply>, BoxError> {
        self.call(sender, event).map(|()| None)
    }
}

/// An asynchronous receiver of `S`: awaited in dispatch order, one after another.
pub trait AsyncHandler<S: Signal>: Send + Sync + 'static {
    /// Starts the receiver for a send from `sender`; the dispatcher awaits the future before
    /// calling the next one.
    fn call<'e>(&self, sender: Sender, event: S::Event<'e>) -> BoxFuture<'e, Result<(), BoxError>>;

    /// Starts the receiver and gives its reply back, for
    /// [`send_collect`](crate::send_collect); `None` (the default, which awaits
    /// [`call`](Self::call)) for a receiver that gives no reply now, as
    /// [`SyncHandler::call_reply`].
    fn call_reply<'e>(
        &self,
        sender: Sender,
        event: S::Event<'e>,
    ) -> BoxFuture<'e, Result<Option<S::Reply>, BoxError>> {
        let run = self.call(sender, event);
        Box::pin(async move { run.await.map(|()| None) })
    }
}

/// Turns a signal's event into one receiver parameter.
///
/// `X` is the sender the receiver was connected for ([`AnySender`](crate::extract::AnySender) when it
/// has none), so a signal can hand typed payloads to typed receivers and a type-erased view to
/// the others (the ORM's `PreSave<'_, User>` versus `PreSave<'_, dyn AnyModel>`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a receiver parameter for signal `{S}`",
    label = "receivers of `{S}` cannot take this type",
    note = "a receiver of a custom signal `S` takes `&S`; model signals document their payload types"
)]
pub trait FromEvent<'e, S: Signal, X: ?Sized>: Sized {
    /// What this parameter needs the sender to prepare before the send, as bit flags whose
    /// meaning the signal's crate defines (`0`, the default: nothing).
    ///
    /// Why: some payloads cost work that the sender should do only when a receiver asks for it
    /// (the ORM reads a row's previous values only for receivers taking its `Changes`
    /// payload). The registry keeps, per receiver, the flags of its first parameter type
    /// ([`ReceiverInfo::needs`]), and [`Registry::needs`](crate::__private::Registry::needs)
    /// ORs those of the receivers a send would reach, so the sender asks once per send, before
    /// it builds the event. A parameter built from several (a payload and the write's
    /// transaction) reports its payload's flags.
    const NEEDS: u8 = 0;

    /// Builds the parameter.
    ///
    /// # Errors
    ///
    /// When the event cannot give this parameter at runtime (a receiver asking for a SQLite
    /// transaction on a PostgreSQL write); the dispatcher reports it as the receiver's error.
    fn from_event(event: S::Event<'e>) -> Result<Self, BoxError>;
}

#[diagnostic::do_not_recommend]
impl<'e, S: PlainSignal, X: ?Sized> FromEvent<'e, S, X> for &'e S {
    #[inline]
    fn from_event(event: S::Event<'e>) -> Result<Self, BoxError> {
        Ok(S::from_event(event))
    }
}

/// What a receiver may return: its signal's reply `R` ([`Signal::Reply`], `()` for most
/// signals) or `Result<R, E>` with `E` convertible to [`BoxError`].
///
/// A signal whose reply is itself a `Result<T, X>` takes it as the reply: a receiver returning
/// `Err(x)` then replies `Err(x)`, it does not fail.
#[diagnostic::on_unimplemented(
    message = "a receiver cannot return `{Self}`",
    label = "return `{R}` or `Result<{R}, E>`",
    note = "`E` may be any error convertible into `Box<dyn Error + Send + Sync>` (a `String`, `std::io::Error`, `anyhow::Error` ...)",
    note = "a signal's receivers return its reply type, `()` unless the signal declares another (`#[signal(reply = T)]`)"
)]
pub trait ReceiverOutput<R = ()> {
    /// The receiver's outcome: its reply, or its error.
    ///
    /// # Errors
    ///
    /// The receiver's own error, boxed.
    fn into_result(self) -> Result<R, BoxError>;
}

#[diagnostic::do_not_recommend]
impl<R> ReceiverOutput<R> for R {
    #[inline]
    fn into_result(self) -> Result<R, BoxError> {
        Ok(self)
    }
}

#[diagnostic::do_not_recommend]
impl<R, E: Into<BoxError>> ReceiverOutput<R> for Result<R, E> {
    #[inline]
    fn into_result(self) -> Result<R, BoxError> {
        self.map_err(Into::into)
    }
}

/// A receiver's result without its reply: what a plain send keeps (for a reply `()`, the
/// result as it is).
#[doc(hidden)]
#[inline]
pub fn discard_reply<R>(result: Result<R, BoxError>) -> Result<(), BoxError> {
    result.map(|_reply| ())
}

/// A receiver's callable, link-time (`'static`) or runtime (shared).
pub enum Handler<S: Signal> {
    /// Called synchronously.
    Sync(StaticOrShared<dyn SyncHandler<S>>),
    /// Awaited.
    Async(StaticOrShared<dyn AsyncHandler<S>>),
}

impl<S: Signal> Clone for Handler<S> {
    fn clone(&self) -> Self {
        match self {
            Handler::Sync(h) => Handler::Sync(h.clone()),
            Handler::Async(h) => Handler::Async(h.clone()),
        }
    }
}

impl<S: Signal> Handler<S> {
    /// Whether the receiver must be awaited.
    #[must_use]
    pub fn is_async(&self) -> bool {
        matches!(self, Handler::Async(_))
    }
}

/// A handler reference: a `'static` one generated by `#[receiver]`, or one made by `connect`.
pub enum StaticOrShared<T: ?Sized + 'static> {
    /// Generated at compile time.
    Static(&'static T),
    /// Connected at runtime.
    Shared(Arc<T>),
}

impl<T: ?Sized> Clone for StaticOrShared<T> {
    fn clone(&self) -> Self {
        match self {
            StaticOrShared::Static(r) => StaticOrShared::Static(r),
            StaticOrShared::Shared(a) => StaticOrShared::Shared(Arc::clone(a)),
        }
    }
}

impl<T: ?Sized> std::ops::Deref for StaticOrShared<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        match self {
            StaticOrShared::Static(r) => r,
            StaticOrShared::Shared(a) => a,
        }
    }
}

/// Where and how a receiver was declared: what introspection, errors and traces show.
#[derive(Debug, Clone)]
pub struct ReceiverInfo {
    /// The function's path (`my_app::receivers::create_profile`) or, for a runtime closure,
    /// its type name.
    pub name: &'static str,
    /// The module the receiver was declared in (for runtime connections, the module of the
    /// `connect` call is not known, so this is the file).
    pub module_path: &'static str,
    /// Source file of the declaration or of the `connect` call.
    pub file: &'static str,
    /// Source line (1-based).
    pub line: u32,
    /// Source column (1-based).
    pub column: u32,
    /// Dispatch priority: higher runs first; default 0.
    pub priority: i32,
    /// Django's `dispatch_uid`: deduplicates per sender.
    pub dispatch_uid: Option<Cow<'static, str>>,
    /// When the receiver runs relative to the transaction of the write (for model signals).
    pub phase: Phase,
    /// What the receiver's parameter needs the sender to prepare: [`FromEvent::NEEDS`] of its
    /// first parameter type (`0` for receivers that need nothing, which is every receiver of
    /// a custom signal).
    pub needs: u8,
}

/// When a receiver runs relative to the write that sent the signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// During the send (for model signals, inside the write's transaction). The default.
    Immediate,
    /// After the outermost transaction commits (model signals only).
    OnCommit,
}

impl Phase {
    /// The name used by introspection and in `#[receiver(..., on_commit)]`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Immediate => "immediate",
            Phase::OnCommit => "on_commit",
        }
    }
}

/// Something [`connect`](crate::connect) can register as a receiver of `S`.
///
/// Implemented for `Fn(&S) -> R` and `Fn(&S, Sender) -> R` closures and functions (sync) and
/// for `async fn(&S) -> R` and `async fn(&S, Sender) -> R` functions (async), where `R` is the
/// signal's [`Reply`](Signal::Reply) (`()` unless the signal declares one) or `Result<Reply,
/// E>`, for every signal that lends itself as `&S` (every `derive(Signal)` type); the
/// [`Sender`] parameter is the sender of the send, as Django passes `sender` to every receiver.
/// `M` only tells the impls apart. Model signals take their own closures
/// (`signals_orm::model_signals::post_save.connect(..)`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be connected as a receiver of `{S}`",
    label = "expected `Fn(&{S})`, `Fn(&{S}, Sender)` or `async fn(&{S})` returning the signal's reply (`()` unless it declares one) or a `Result` of it",
    note = "closures must be `Send + Sync + 'static`: move owned data in",
    note = "model signals are connected through their own values: `signals_orm::model_signals::post_save.connect(|ev: PostSave<'_, User>| ..)`"
)]
pub trait IntoReceiver<S: Signal, M>: Send + Sync + Sized + 'static {
    /// The handler the registry stores.
    fn into_handler(self) -> Handler<S>;

    /// Whether every value of this type is the same receiver (functions, capture-free
    /// closures), so connecting it twice can be recognised as a duplicate.
    #[must_use]
    fn is_identity_type() -> bool {
        size_of::<Self>() == 0
    }
}

/// A signal whose receivers can be connected at runtime as closures of `&S`: one that lends
/// itself as `&S`.
///
/// A bound of its own on the [`IntoReceiver`] impls, so that connecting a closure to a model
/// signal through `signals_core::connect` is reported as what it is.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not connected through `signals_core::connect`: model signals have their own `connect`",
    label = "not a custom signal",
    note = "`use signals_orm::model_signals::post_save;` then `post_save.connect(|ev: PostSave<'_, User>| ..)` (or `pre_save`, `pre_delete`, `post_delete`, `m2m_changed`)"
)]
#[doc(hidden)]
pub trait RuntimeSignal: PlainSignal {}

// Not looked through by diagnostics: the error names `RuntimeSignal` and its message, not the
// `PlainSignal` bound behind it.
#[diagnostic::do_not_recommend]
impl<S: PlainSignal> RuntimeSignal for S {}

/// The closure shapes [`IntoReceiver`] accepts, told apart by `M`.
#[doc(hidden)]
pub trait ClosureReceiver<S: Signal, M>: Send + Sync + Sized + 'static {
    /// The handler the registry stores.
    fn handler(self) -> Handler<S>
    where
        S: PlainSignal;
}

impl<S, M, F> IntoReceiver<S, M> for F
where
    F: ClosureReceiver<S, M>,
    S: RuntimeSignal,
{
    fn into_handler(self) -> Handler<S> {
        self.handler()
    }
}

/// Marks the sync closure impls of [`IntoReceiver`]: `P` is the parameter list.
#[doc(hidden)]
pub enum SyncFn<R, P = ()> {
    #[doc(hidden)]
    __Never(std::convert::Infallible, PhantomData<(R, P)>),
}

/// Marks the async function impls of [`IntoReceiver`]: `P` is the parameter list.
#[doc(hidden)]
pub enum AsyncFn<R, P = ()> {
    #[doc(hidden)]
    __Never(std::convert::Infallible, PhantomData<(R, P)>),
}

/// Marks the shapes that also take the [`Sender`].
#[doc(hidden)]
pub enum WithSender {}

/// A closure or function of `&S` (and, with `P = WithSender`, of the [`Sender`]) called
/// synchronously: what [`Closure`] calls.
#[doc(hidden)]
pub trait SyncReceiverFn<S: Signal, P>: Send + Sync + 'static {
    /// What it returns: the signal's reply, or a `Result` of it.
    type Output: ReceiverOutput<S::Reply>;
    /// Calls it.
    fn run(&self, signal: &S, sender: Sender) -> Self::Output;
}

impl<S, F, R> SyncReceiverFn<S, ()> for F
where
    S: Signal,
    F: Fn(&S) -> R + Send + Sync + 'static,
    R: ReceiverOutput<S::Reply>,
{
    type Output = R;
    #[inline]
    fn run(&self, signal: &S, _sender: Sender) -> R {
        self(signal)
    }
}

impl<S, F, R> SyncReceiverFn<S, WithSender> for F
where
    S: Signal,
    F: Fn(&S, Sender) -> R + Send + Sync + 'static,
    R: ReceiverOutput<S::Reply>,
{
    type Output = R;
    #[inline]
    fn run(&self, signal: &S, sender: Sender) -> R {
        self(signal, sender)
    }
}

/// An `async fn(&'e S)` (and, with `P = WithSender`, `async fn(&'e S, Sender)`): the future
/// may borrow the event.
pub trait AsyncReceiverFn<'e, S: Signal, P = ()>: Send + Sync + 'static {
    /// The future's output: the signal's reply, or a `Result` of it.
    type Output: ReceiverOutput<S::Reply>;
    /// The future.
    type Future: Future<Output = Self::Output> + Send + 'e;
    /// Starts the receiver.
    fn start(&self, event: &'e S, sender: Sender) -> Self::Future;
}

impl<'e, S: Signal, F, Fut> AsyncReceiverFn<'e, S> for F
where
    F: Fn(&'e S) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'e,
    Fut::Output: ReceiverOutput<S::Reply>,
{
    type Output = Fut::Output;
    type Future = Fut;
    fn start(&self, event: &'e S, _sender: Sender) -> Fut {
        self(event)
    }
}

impl<'e, S: Signal, F, Fut> AsyncReceiverFn<'e, S, WithSender> for F
where
    F: Fn(&'e S, Sender) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'e,
    Fut::Output: ReceiverOutput<S::Reply>,
{
    type Output = Fut::Output;
    type Future = Fut;
    fn start(&self, event: &'e S, sender: Sender) -> Fut {
        self(event, sender)
    }
}

/// A connected closure: one wrapper for the four shapes, sync or async, with or without the
/// [`Sender`] (`P`: `()` or [`WithSender`]). What tells them apart is the trait its closure
/// implements ([`SyncReceiverFn`] or [`AsyncReceiverFn`] of `P`); each call is the closure's,
/// inlined, with nothing added.
struct Closure<F, P>(F, PhantomData<fn() -> P>);

impl<F, P> Closure<F, P> {
    fn shared(f: F) -> Arc<Self> {
        Arc::new(Closure(f, PhantomData))
    }
}

impl<S, F, P> SyncHandler<S> for Closure<F, P>
where
    S: PlainSignal,
    F: SyncReceiverFn<S, P>,
    P: 'static,
{
    #[inline]
    #[expect(
        clippy::elidable_lifetime_names,
        reason = "the name ties the event to what is built from it"
    )]
    fn call<'e>(&self, sender: Sender, event: S::Event<'e>) -> Result<(), BoxError> {
        discard_reply(self.0.run(S::from_event(event), sender).into_result())
    }

    #[expect(
        clippy::elidable_lifetime_names,
        reason = "the name ties the event to what is built from it"
    )]
    fn call_reply<'e>(
        &self,
        sender: Sender,
        event: S::Event<'e>,
    ) -> Result<Option<S::Reply>, BoxError> {
        self.0
            .run(S::from_event(event), sender)
            .into_result()
            .map(Some)
    }
}

impl<S, F, P> AsyncHandler<S> for Closure<F, P>
where
    S: PlainSignal,
    F: for<'e> AsyncReceiverFn<'e, S, P>,
    P: 'static,
{
    fn call<'e>(&self, sender: Sender, event: S::Event<'e>) -> BoxFuture<'e, Result<(), BoxError>> {
        let fut = self.0.start(S::from_event(event), sender);
        Box::pin(async move { discard_reply(fut.await.into_result()) })
    }

    fn call_reply<'e>(
        &self,
        sender: Sender,
        event: S::Event<'e>,
    ) -> BoxFuture<'e, Result<Option<S::Reply>, BoxError>> {
        let fut = self.0.start(S::from_event(event), sender);
        Box::pin(async move { fut.await.into_result().map(Some) })
    }
}

impl<S, F, R> ClosureReceiver<S, SyncFn<R>> for F
where
    S: Signal,
    F: Fn(&S) -> R + Send + Sync + 'static,
    R: ReceiverOutput<S::Reply> + 'static,
{
    fn handler(self) -> Handler<S>
    where
        S: PlainSignal,
    {
        Handler::Sync(StaticOrShared::Shared(Closure::<F, ()>::shared(self)))
    }
}

impl<S, F, R> ClosureReceiver<S, SyncFn<R, WithSender>> for F
where
    S: Signal,
    F: Fn(&S, Sender) -> R + Send + Sync + 'static,
    R: ReceiverOutput<S::Reply> + 'static,
{
    fn handler(self) -> Handler<S>
    where
        S: PlainSignal,
    {
        Handler::Sync(StaticOrShared::Shared(Closure::<F, WithSender>::shared(
            self,
        )))
    }
}

impl<S, F> ClosureReceiver<S, AsyncFn<()>> for F
where
    S: Signal,
    F: for<'e> AsyncReceiverFn<'e, S>,
{
    fn handler(self) -> Handler<S>
    where
        S: PlainSignal,
    {
        Handler::Async(StaticOrShared::Shared(Closure::<F, ()>::shared(self)))
    }
}

impl<S, F> ClosureReceiver<S, AsyncFn<(), WithSender>> for F
where
    S: Signal,
    F: for<'e> AsyncReceiverFn<'e, S, WithSender>,
{
    fn handler(self) -> Handler<S>
    where
        S: PlainSignal,
    {
        Handler::Async(StaticOrShared::Shared(Closure::<F, WithSender>::shared(
            self,
        )))
    }
}
