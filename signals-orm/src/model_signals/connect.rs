//! Runtime receivers of the model signals and `m2m_changed`: Django's
//! `post_save.connect(handler, sender=User)` as `post_save.connect(|ev: PostSave<'_, User>| ..)`,
//! returning the [`Connection`] guard custom signals return.
//!
//! The payload type chooses the sender, as it does for `#[receiver]`: `PostSave<'_, User>`
//! hears `User` only, `PostSave<'_, dyn AnyModel>` every model; `M2mChanged<'_, PostTags>` the
//! relation `PostTags` only, `AnyM2mChanged<'_>` every relation. Four shapes per payload: a
//! closure or function of the payload, or of the payload and the write's `&mut Tx<DB>`, sync
//! or `async fn`. An async closure's future cannot borrow the payload (a closure cannot name
//! the payload's lifetime in its return type): copy what it needs out first, or connect an
//! `async fn`, whose future may borrow.
//!
//! `on_commit` receivers (`#[receiver(post_save, sender = User, on_commit)]`) are connected
//! with `post_save.connect_on_commit(|ev: Committed<User>| ..)`: a closure or `async fn` of
//! the owned payload, queued on the write's transaction and run after its COMMIT.

use std::any::TypeId;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::Location;
use std::sync::Arc;

use signals_core::__private::{
    AnySender, AsyncHandler, BoxFuture, FromEvent, Handler, ReceiverOutput, RuntimeReceiver,
    StaticOrShared, SyncHandler,
};
use signals_core::{BoxError, ConnectOptions, Connection, Sender, Signal};

use super::on_commit::{Committed, FromCommitted, OwnedModel, defer_on_commit};
use super::payload::ModelRef;
use super::{PostDeleteSignal, PostSaveSignal, PreDeleteSignal, PreSaveSignal};
use crate::m2m::{AnyM2mChanged, M2mChanged, M2mChangedSignal, Through};
use crate::model_signals::payload::{Changes, PostDelete, PostSave, PreDelete, PreSave};
use crate::{Backend, Tx};

/// A closure or function that [`post_save.connect`](PostSaveSignal::connect) (and the other
/// model signals' `connect`, and [`m2m_changed.connect`](M2mChangedSignal::connect)) can
/// register as a receiver of `S`.
///
/// Implemented for `Fn(Payload<'_, T>) -> R`, `Fn(Payload<'_, T>, &mut Tx<DB>) -> R` and the
/// same as `async fn`, where `Payload` is the signal's payload (`PreSave`, `PostSave`,
/// `PreDelete`, `PostDelete`, and [`Changes`] for `pre_save` and `post_save`, with `T` a model
/// or `dyn AnyModel`; for `m2m_changed`, [`M2mChanged<'_, T>`](M2mChanged) with `T` a
/// relation's through type, or [`AnyM2mChanged<'_>`](AnyM2mChanged)), and `R` is `()` or
/// `Result<(), E>`. `M` only tells the shapes apart.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be connected as a receiver of `{S}`",
    label = "expected `Fn(Payload<'_, Model>)` or `Fn(Payload<'_, Model>, &mut Tx<DB>)`, sync or `async fn`, returning `()` or `Result<(), E>`",
    note = "annotate the closure's parameters (`|ev: PostSave<'_, User>| ..`): the payload type chooses the sender",
    note = "an async closure's future cannot borrow the payload: copy what it needs first, or connect an `async fn`"
)]
pub trait ModelReceiver<S: Signal, M>: Send + Sync + Sized + 'static {
    /// The handler the registry stores.
    #[doc(hidden)]
    fn into_handler(self) -> Handler<S>;
    /// The sender the payload type implies: its model (or relation), or `None` for every one.
    #[doc(hidden)]
    fn implied_sender() -> Option<Sender>;
    /// What the payload type needs the write to prepare (`FromEvent::NEEDS`).
    #[doc(hidden)]
    fn needs() -> u8;
}

/// The sender a payload for receivers connected for `X` implies: `X`, or none for
/// [`AnySender`] (the payloads of every model or relation).
fn implied<X: ?Sized + 'static>() -> Option<Sender> {
    (TypeId::of::<X>() != TypeId::of::<AnySender>()).then(Sender::of::<X>)
}

/// The types a shape is about, held without owning them (and `Send + Sync` whatever they are).
type Marker<T, R, Kind> = PhantomData<(fn(&T) -> R, fn() -> Kind)>;

/// Marks the shapes of [`ModelReceiver`]; never built.
#[doc(hidden)]
pub enum Shape<T: ?Sized, R, Kind> {
    #[doc(hidden)]
    __Never(std::convert::Infallible, Marker<T, R, Kind>),
}

/// The payload alone, called synchronously.
#[doc(hidden)]
pub enum Sync1 {}
/// The payload and the transaction, called synchronously.
#[doc(hidden)]
pub struct Sync2<DB>(PhantomData<DB>);
/// The payload alone, awaited.
#[doc(hidden)]
pub enum Async1 {}
/// The payload and the transaction, awaited.
#[doc(hidden)]
pub struct Async2<DB>(PhantomData<DB>);
/// Shape `K` taking [`Changes`] instead of the signal's own payload.
#[doc(hidden)]
pub struct WithChanges<K>(PhantomData<K>);
/// Shape `K` taking [`AnyM2mChanged`], the payload of every relation.
#[doc(hidden)]
pub struct EveryRelation<K>(PhantomData<K>);

/// A connected closure, with the types its call needs.
struct Closure<F, T: ?Sized, R, Kind>(F, Marker<T, R, Kind>);

impl<F, T: ?Sized, R, Kind> Closure<F, T, R, Kind> {
    fn new(f: F) -> Arc<Self> {
        Arc::new(Closure(f, PhantomData))
    }
}

/// `Fn(P) -> Fut` whose future may borrow the payload: an `async fn` of one parameter.
#[doc(hidden)]
pub trait AsyncFn1<'e, P>: Send + Sync + 'static {
    /// The future's output.
    type Output: ReceiverOutput;
    /// The future.
    type Future: Future<Output = Self::Output> + Send + 'e;
    /// Starts the receiver.
    fn start(&self, payload: P) -> Self::Future;
}

impl<'e, P, F, Fut> AsyncFn1<'e, P> for F
where
    F: Fn(P) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'e,
    Fut::Output: ReceiverOutput,
{
    type Output = Fut::Output;
    type Future = Fut;
    fn start(&self, payload: P) -> Fut {
        self(payload)
    }
}

/// `Fn(P, Q) -> Fut` whose future may borrow both: an `async fn` of the payload and the
/// transaction.
#[doc(hidden)]
pub trait AsyncFn2<'e, P, Q>: Send + Sync + 'static {
    /// The future's output.
    type Output: ReceiverOutput;
    /// The future.
    type Future: Future<Output = Self::Output> + Send + 'e;
    /// Starts the receiver.
    fn start(&self, payload: P, tx: Q) -> Self::Future;
}

impl<'e, P, Q, F, Fut> AsyncFn2<'e, P, Q> for F
where
    F: Fn(P, Q) -> Fut + Send + Sync + 'static,
    Fut: Future + Send + 'e,
    Fut::Output: ReceiverOutput,
{
    type Output = Fut::Output;
    type Future = Fut;
    fn start(&self, payload: P, tx: Q) -> Fut {
        self(payload, tx)
    }
}

macro_rules! connectable {
    ($($(#[$doc:meta])* $signal:ident, $value:ident;)*) => {$(
        $(#[$doc])*
        #[allow(non_upper_case_globals, reason = "Django's name, as `#[receiver(..)]` writes it")]
        pub const $value: $signal = $signal;

        impl $signal {
            /// Connects a receiver at runtime; see [`connect_with`](Self::connect_with).
            ///
            /// # Panics
            ///
            /// Never; see [`connect_with`](Self::connect_with).
            #[track_caller]
            pub fn connect<M>(self, receiver: impl ModelReceiver<Self, M>) -> Connection {
                self.connect_with(ConnectOptions::new(), receiver)
            }

            /// Connects a receiver at runtime with a `dispatch_uid`, a priority or a name
            /// (Django's `connect(receiver, sender=.., dispatch_uid=..)`): the sender is the
            /// payload's model (or relation), or every one for the type-erased payload. Returns
            /// the guard that disconnects it when dropped ([`Connection::forever`] keeps it).
            ///
            /// # Panics
            ///
            /// If `options` names a sender other than the payload's.
            #[track_caller]
            pub fn connect_with<M, F: ModelReceiver<Self, M>>(
                self,
                options: ConnectOptions,
                receiver: F,
            ) -> Connection {
                connect_runtime::<Self, F>(
                    options,
                    receiver.into_handler(),
                    F::implied_sender(),
                    F::needs(),
                    Location::caller(),
                )
            }
        }
    )*};
}

/// Registers a runtime receiver's handler: `F`'s identity (functions and capture-free
/// closures are the same receiver each time) and type name, the sender its payload implies.
fn connect_runtime<S: Signal, F: 'static>(
    options: ConnectOptions,
    handler: Handler<S>,
    implied_sender: Option<Sender>,
    needs: u8,
    at: &'static Location<'static>,
) -> Connection {
    let identity = (size_of::<F>() == 0).then(TypeId::of::<F>);
    S::registry().connect_runtime(
        options,
        handler,
        RuntimeReceiver {
            identity,
            type_name: std::any::type_name::<F>(),
            implied_sender,
            needs,
        },
        at,
    )
}

/// The four closure shapes of one payload family for signal `$signal`, told apart by the
/// kinds given (`DB` is the backend of the shapes with a transaction). `[$generics]` are the
/// payload's type parameters (with a trailing comma), `$about` what the shapes are about (`T`,
/// or a marker for a type-erased payload), `$payload<'e, $($arg)?>` the payload with lifetime `'e`, and
/// `$sender` the sender a receiver taking it is connected for.
macro_rules! shapes {
    (
        $signal:ident, [$($generics:tt)*] $about:ty => $payload:ident<$($arg:ty)?>, sender $sender:ty;
        $sync1:ty, $sync2:ty, $async1:ty, $async2:ty
    ) => {
        impl<F, $($generics)* R> SyncHandler<$signal> for Closure<F, $about, R, $sync1>
        where
            F: for<'e> Fn($payload<'e, $($arg)?>) -> R + Send + Sync + 'static,
            R: ReceiverOutput + 'static,
            for<'e> $payload<'e, $($arg)?>: FromEvent<'e, $signal, $sender>,
        {
            fn call<'e>(
                &self,
                _sender: Sender,
                event: <$signal as Signal>::Event<'e>,
            ) -> Result<(), BoxError> {
                let payload = <$payload<'e, $($arg)?> as FromEvent<'e, $signal, $sender>>::from_event(event)?;
                (self.0)(payload).into_result()
            }
        }

        impl<F, $($generics)* R> ModelReceiver<$signal, Shape<$about, R, $sync1>> for F
        where
            F: for<'e> Fn($payload<'e, $($arg)?>) -> R + Send + Sync + 'static,
            R: ReceiverOutput + 'static,
            for<'e> $payload<'e, $($arg)?>: FromEvent<'e, $signal, $sender>,
        {
            fn into_handler(self) -> Handler<$signal> {
                Handler::Sync(StaticOrShared::Shared(Closure::<F, $about, R, $sync1>::new(self)))
            }
            fn implied_sender() -> Option<Sender> {
                implied::<$sender>()
            }
            fn needs() -> u8 {
                <$payload<'static, $($arg)?> as FromEvent<'static, $signal, $sender>>::NEEDS
            }
        }

        impl<F, $($generics)* R, DB> SyncHandler<$signal> for Closure<F, $about, R, $sync2>
        where
            DB: Backend,
            F: for<'e, 't> Fn($payload<'e, $($arg)?>, &'t mut Tx<DB>) -> R + Send + Sync + 'static,
            R: ReceiverOutput + 'static,
            for<'e> ($payload<'e, $($arg)?>, &'e mut Tx<DB>): FromEvent<'e, $signal, $sender>,
        {
            fn call<'e>(
                &self,
                _sender: Sender,
                event: <$signal as Signal>::Event<'e>,
            ) -> Result<(), BoxError> {
                let (payload, tx) =
                    <($payload<'e, $($arg)?>, &'e mut Tx<DB>) as FromEvent<'e, $signal, $sender>>::from_event(event)?;
                (self.0)(payload, tx).into_result()
            }
        }

        impl<F, $($generics)* R, DB> ModelReceiver<$signal, Shape<$about, R, $sync2>> for F
        where
            DB: Backend,
            F: for<'e, 't> Fn($payload<'e, $($arg)?>, &'t mut Tx<DB>) -> R + Send + Sync + 'static,
            R: ReceiverOutput + 'static,
            for<'e> ($payload<'e, $($arg)?>, &'e mut Tx<DB>): FromEvent<'e, $signal, $sender>,
        {
            fn into_handler(self) -> Handler<$signal> {
                Handler::Sync(StaticOrShared::Shared(Closure::<F, $about, R, $sync2>::new(self)))
            }
            fn implied_sender() -> Option<Sender> {
                implied::<$sender>()
            }
            fn needs() -> u8 {
                <$payload<'static, $($arg)?> as FromEvent<'static, $signal, $sender>>::NEEDS
            }
        }

        impl<F, $($generics)*> AsyncHandler<$signal> for Closure<F, $about, (), $async1>
        where
            F: for<'e> AsyncFn1<'e, $payload<'e, $($arg)?>>,
            for<'e> $payload<'e, $($arg)?>: FromEvent<'e, $signal, $sender>,
        {
            fn call<'e>(
                &self,
                _sender: Sender,
                event: <$signal as Signal>::Event<'e>,
            ) -> BoxFuture<'e, Result<(), BoxError>> {
                match <$payload<'e, $($arg)?> as FromEvent<'e, $signal, $sender>>::from_event(event) {
                    Ok(payload) => {
                        let run = self.0.start(payload);
                        Box::pin(async move { run.await.into_result() })
                    }
                    Err(error) => Box::pin(std::future::ready(Err(error))),
                }
            }
        }

        impl<F, $($generics)*> ModelReceiver<$signal, Shape<$about, (), $async1>> for F
        where
            F: for<'e> AsyncFn1<'e, $payload<'e, $($arg)?>>,
            for<'e> $payload<'e, $($arg)?>: FromEvent<'e, $signal, $sender>,
        {
            fn into_handler(self) -> Handler<$signal> {
                Handler::Async(StaticOrShared::Shared(Closure::<F, $about, (), $async1>::new(self)))
            }
            fn implied_sender() -> Option<Sender> {
                implied::<$sender>()
            }
            fn needs() -> u8 {
                <$payload<'static, $($arg)?> as FromEvent<'static, $signal, $sender>>::NEEDS
            }
        }

        impl<F, $($generics)* DB> AsyncHandler<$signal> for Closure<F, $about, (), $async2>
        where
            DB: Backend,
            F: for<'e> AsyncFn2<'e, $payload<'e, $($arg)?>, &'e mut Tx<DB>>,
            for<'e> ($payload<'e, $($arg)?>, &'e mut Tx<DB>): FromEvent<'e, $signal, $sender>,
        {
            fn call<'e>(
                &self,
                _sender: Sender,
                event: <$signal as Signal>::Event<'e>,
            ) -> BoxFuture<'e, Result<(), BoxError>> {
                match <($payload<'e, $($arg)?>, &'e mut Tx<DB>) as FromEvent<'e, $signal, $sender>>::from_event(event) {
                    Ok((payload, tx)) => {
                        let run = self.0.start(payload, tx);
                        Box::pin(async move { run.await.into_result() })
                    }
                    Err(error) => Box::pin(std::future::ready(Err(error))),
                }
            }
        }

        impl<F, $($generics)* DB> ModelReceiver<$signal, Shape<$about, (), $async2>> for F
        where
            DB: Backend,
            F: for<'e> AsyncFn2<'e, $payload<'e, $($arg)?>, &'e mut Tx<DB>>,
            for<'e> ($payload<'e, $($arg)?>, &'e mut Tx<DB>): FromEvent<'e, $signal, $sender>,
        {
            fn into_handler(self) -> Handler<$signal> {
                Handler::Async(StaticOrShared::Shared(Closure::<F, $about, (), $async2>::new(self)))
            }
            fn implied_sender() -> Option<Sender> {
                implied::<$sender>()
            }
            fn needs() -> u8 {
                <$payload<'static, $($arg)?> as FromEvent<'static, $signal, $sender>>::NEEDS
            }
        }
    };
}

/// A closure or function that [`post_save.connect_on_commit`](PostSaveSignal::connect_on_commit)
/// (and the other model signals' `connect_on_commit`) can register as an `on_commit` receiver of
/// `S`: what `#[receiver(post_save, sender = User, on_commit)]` declares at link time.
///
/// Implemented for `Fn(Committed<O>) -> R` and `Fn(Committed<O>) -> Fut` (an `async fn`, or a
/// closure returning a `'static` future) where `O` is a model (`Clone`) or [`ModelSnapshot`]
/// (every model), and `R` (or the future's output) is `()` or `Result<(), E>`. `M` only tells
/// the shapes apart.
///
/// [`ModelSnapshot`]: crate::ModelSnapshot
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be connected as an `on_commit` receiver of `{S}`",
    label = "expected `Fn(Committed<Model>)` or `async fn(Committed<Model>)` returning `()` or `Result<(), E>`",
    note = "an `on_commit` receiver gets an owned copy after COMMIT: `|ev: Committed<User>| ..` (`User: Clone`), or `Committed<ModelSnapshot>` for every model",
    note = "an async closure's future must own what it uses (`move`), since it runs after the write returned"
)]
pub trait CommitReceiver<S: Signal, M>: Send + Sync + Sized + 'static {
    /// The handler the registry stores, queueing the receiver under `name`.
    #[doc(hidden)]
    fn into_handler(self, name: &'static str) -> Handler<S>;
    /// The sender the payload type implies: its model, or `None` for `ModelSnapshot`.
    #[doc(hidden)]
    fn implied_sender() -> Option<Sender>;
}

/// A connected `on_commit` closure: its handler queues a call of it, with an owned copy of
/// the payload, on the write's transaction.
struct OnCommit<F, O, R, Kind> {
    run: Arc<F>,
    name: &'static str,
    marker: Marker<O, R, Kind>,
}

impl<F, O, R, Kind> OnCommit<F, O, R, Kind> {
    fn new(run: F, name: &'static str) -> Arc<Self> {
        Arc::new(OnCommit {
            run: Arc::new(run),
            name,
            marker: PhantomData,
        })
    }
}

/// The two `on_commit` shapes of a model signal, and its `connect_on_commit` methods.
macro_rules! on_commit {
    ($($signal:ident),*) => {$(
        impl $signal {
            /// Connects an `on_commit` receiver at runtime; see
            /// [`connect_on_commit_with`](Self::connect_on_commit_with).
            ///
            /// # Panics
            ///
            /// Never; see [`connect_on_commit_with`](Self::connect_on_commit_with).
            #[track_caller]
            pub fn connect_on_commit<M>(self, receiver: impl CommitReceiver<Self, M>) -> Connection {
                self.connect_on_commit_with(ConnectOptions::new(), receiver)
            }

            /// Connects a receiver that runs after the outermost COMMIT of the write's
            /// transaction, with an owned copy of the payload taken at the send
            /// ([`Committed`]), and never after a rollback: `#[receiver(.., on_commit)]` at
            /// runtime, Django's `transaction.on_commit(lambda: handler(..))` inside a
            /// receiver. The payload type chooses the sender (`Committed<User>`: `User` only,
            /// `Committed<ModelSnapshot>`: every model); `options` give a `dispatch_uid`, a
            /// priority (its place in the queue) or a name. Its failure after COMMIT is
            /// reported, as for link-time `on_commit` receivers; returns the guard that
            /// disconnects it when dropped (a call already queued still runs).
            ///
            /// # Panics
            ///
            /// If `options` names a sender other than the payload's model.
            #[track_caller]
            pub fn connect_on_commit_with<M, F: CommitReceiver<Self, M>>(
                self,
                options: ConnectOptions,
                receiver: F,
            ) -> Connection {
                let name = options.name_or(std::any::type_name::<F>());
                connect_runtime::<Self, F>(
                    options.after_commit(),
                    receiver.into_handler(name),
                    F::implied_sender(),
                    0,
                    Location::caller(),
                )
            }
        }

        impl<F, O, R> SyncHandler<$signal> for OnCommit<F, O, R, Sync1>
        where
            O: OwnedModel,
            F: Fn(Committed<O>) -> R + Send + Sync + 'static,
            R: ReceiverOutput + 'static,
            for<'e> Committed<O>: FromCommitted<'e, $signal, O::Sender>,
        {
            fn call(&self, _sender: Sender, event: <$signal as Signal>::Event<'_>) -> Result<(), BoxError> {
                let run = Arc::clone(&self.run);
                defer_on_commit::<$signal, O::Sender, Committed<O>, _, _>(event, self.name, move |ev| {
                    std::future::ready(run(ev).into_result())
                })
            }
        }

        impl<F, O, R> CommitReceiver<$signal, Shape<O, R, Sync1>> for F
        where
            O: OwnedModel,
            F: Fn(Committed<O>) -> R + Send + Sync + 'static,
            R: ReceiverOutput + 'static,
            for<'e> Committed<O>: FromCommitted<'e, $signal, O::Sender>,
        {
            fn into_handler(self, name: &'static str) -> Handler<$signal> {
                Handler::Sync(StaticOrShared::Shared(OnCommit::<F, O, R, Sync1>::new(self, name)))
            }
            fn implied_sender() -> Option<Sender> {
                implied::<O::Sender>()
            }
        }

        impl<F, O, Fut> AsyncHandler<$signal> for OnCommit<F, O, Fut, Async1>
        where
            O: OwnedModel,
            F: Fn(Committed<O>) -> Fut + Send + Sync + 'static,
            Fut: Future<Output: ReceiverOutput> + Send + 'static,
            for<'e> Committed<O>: FromCommitted<'e, $signal, O::Sender>,
        {
            // Queued at once all the same, as `#[receiver(.., on_commit)] async fn` is: an
            // async handler (a ready future) only so that introspection lists it as async.
            fn call<'e>(
                &self,
                _sender: Sender,
                event: <$signal as Signal>::Event<'e>,
            ) -> BoxFuture<'e, Result<(), BoxError>> {
                let run = Arc::clone(&self.run);
                Box::pin(std::future::ready(defer_on_commit::<$signal, O::Sender, Committed<O>, _, _>(
                    event,
                    self.name,
                    move |ev| {
                        let fut = run(ev);
                        async move { fut.await.into_result() }
                    },
                )))
            }
        }

        impl<F, O, Fut> CommitReceiver<$signal, Shape<O, Fut, Async1>> for F
        where
            O: OwnedModel,
            F: Fn(Committed<O>) -> Fut + Send + Sync + 'static,
            Fut: Future<Output: ReceiverOutput> + Send + 'static,
            for<'e> Committed<O>: FromCommitted<'e, $signal, O::Sender>,
        {
            fn into_handler(self, name: &'static str) -> Handler<$signal> {
                Handler::Async(StaticOrShared::Shared(OnCommit::<F, O, Fut, Async1>::new(self, name)))
            }
            fn implied_sender() -> Option<Sender> {
                implied::<O::Sender>()
            }
        }
    )*};
}

on_commit!(
    PreSaveSignal,
    PostSaveSignal,
    PreDeleteSignal,
    PostDeleteSignal
);

connectable!(
    /// Django's `pre_save`, as a value to connect runtime receivers to:
    /// `pre_save.connect(|ev: PreSave<'_, User>| ..)`.
    PreSaveSignal, pre_save;
    /// Django's `post_save`, as a value to connect runtime receivers to:
    /// `post_save.connect(|ev: PostSave<'_, User>| ..)`.
    PostSaveSignal, post_save;
    /// Django's `pre_delete`, as a value to connect runtime receivers to:
    /// `pre_delete.connect(|ev: PreDelete<'_, User>| ..)`.
    PreDeleteSignal, pre_delete;
    /// Django's `post_delete`, as a value to connect runtime receivers to:
    /// `post_delete.connect(|ev: PostDelete<'_, User>| ..)`.
    PostDeleteSignal, post_delete;
    /// Django's `m2m_changed`, as a value to connect runtime receivers to:
    /// `m2m_changed.connect(|ev: M2mChanged<'_, PostTags>| ..)` for one relation (its through
    /// type), `m2m_changed.connect(|ev: AnyM2mChanged<'_>| ..)` for every relation.
    M2mChangedSignal, m2m_changed;
);

shapes!(PreSaveSignal, [T: ModelRef + ?Sized,] T => PreSave<T>, sender T::Sender; Sync1, Sync2<DB>, Async1, Async2<DB>);
shapes!(PostSaveSignal, [T: ModelRef + ?Sized,] T => PostSave<T>, sender T::Sender; Sync1, Sync2<DB>, Async1, Async2<DB>);
shapes!(PreDeleteSignal, [T: ModelRef + ?Sized,] T => PreDelete<T>, sender T::Sender; Sync1, Sync2<DB>, Async1, Async2<DB>);
shapes!(PostDeleteSignal, [T: ModelRef + ?Sized,] T => PostDelete<T>, sender T::Sender; Sync1, Sync2<DB>, Async1, Async2<DB>);
shapes!(PreSaveSignal, [T: ModelRef + ?Sized,] T => Changes<T>, sender T::Sender; WithChanges<Sync1>, WithChanges<Sync2<DB>>, WithChanges<Async1>, WithChanges<Async2<DB>>);
shapes!(PostSaveSignal, [T: ModelRef + ?Sized,] T => Changes<T>, sender T::Sender; WithChanges<Sync1>, WithChanges<Sync2<DB>>, WithChanges<Async1>, WithChanges<Async2<DB>>);
shapes!(M2mChangedSignal, [T: Through,] T => M2mChanged<T>, sender T; Sync1, Sync2<DB>, Async1, Async2<DB>);
shapes!(M2mChangedSignal, [] AnySender => AnyM2mChanged<>, sender AnySender; EveryRelation<Sync1>, EveryRelation<Sync2<DB>>, EveryRelation<Async1>, EveryRelation<Async2<DB>>);
