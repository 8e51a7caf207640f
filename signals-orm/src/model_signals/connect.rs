//! Runtime receivers of the model signals: Django's `post_save.connect(handler, sender=User)`
//! as `post_save.connect(|ev: PostSave<'_, User>| ..)`, returning the [`Connection`] guard
//! custom signals return.
//!
//! The payload type chooses the sender, as it does for `#[receiver]`: `PostSave<'_, User>`
//! hears `User` only, `PostSave<'_, dyn AnyModel>` every model. Four shapes per signal: a
//! closure or function of the payload, or of the payload and the write's `&mut Tx<DB>`, sync
//! or `async fn`. An async closure's future cannot borrow the payload (a closure cannot name
//! the payload's lifetime in its return type): copy what it needs out first, or connect an
//! `async fn`, whose future may borrow.

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

use super::payload::ModelRef;
use super::{PostDeleteSignal, PostSaveSignal, PreDeleteSignal, PreSaveSignal};
use crate::model_signals::payload::{Changes, PostDelete, PostSave, PreDelete, PreSave};
use crate::{Backend, Tx};

/// A closure or function that [`post_save.connect`](PostSaveSignal::connect) (and the other
/// model signals' `connect`) can register as a receiver of `S`.
///
/// Implemented for `Fn(Payload<'_, T>) -> R`, `Fn(Payload<'_, T>, &mut Tx<DB>) -> R` and the
/// same as `async fn`, where `Payload` is the signal's payload (`PreSave`, `PostSave`,
/// `PreDelete`, `PostDelete`, and [`Changes`] for `pre_save` and `post_save`), `T` a model or
/// `dyn AnyModel`, and `R` is `()` or `Result<(), E>`. `M` only tells the shapes apart.
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
    /// The sender the payload type implies: its model, or `None` for `dyn AnyModel`.
    #[doc(hidden)]
    fn implied_sender() -> Option<Sender>;
    /// What the payload type needs the write to prepare (`FromEvent::NEEDS`).
    #[doc(hidden)]
    fn needs() -> u8;
}

/// The sender of a payload about `T`: `T` for a model, none for `dyn AnyModel`.
fn sender_of<T: ModelRef + ?Sized>() -> Option<Sender> {
    (TypeId::of::<T::Sender>() != TypeId::of::<AnySender>()).then(Sender::of::<T::Sender>)
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
    ($($(#[$doc:meta])* $signal:ident, $value:ident, $payload:ident;)*) => {$(
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
            /// payload's model, or every model for `dyn AnyModel`. Returns the guard that
            /// disconnects it when dropped ([`Connection::forever`] keeps it).
            ///
            /// # Panics
            ///
            /// If `options` names a sender other than the payload's model.
            #[track_caller]
            pub fn connect_with<M, F: ModelReceiver<Self, M>>(
                self,
                options: ConnectOptions,
                receiver: F,
            ) -> Connection {
                let identity = (size_of::<F>() == 0).then(TypeId::of::<F>);
                <Self as Signal>::registry().connect_runtime(
                    options,
                    receiver.into_handler(),
                    RuntimeReceiver {
                        identity,
                        type_name: std::any::type_name::<F>(),
                        implied_sender: F::implied_sender(),
                        needs: F::needs(),
                    },
                    Location::caller(),
                )
            }
        }

        shapes!($signal, $payload; Sync1, Sync2<DB>, Async1, Async2<DB>);
    )*};
}

/// The four closure shapes of payload `$payload` for signal `$signal`, told apart by the kinds
/// given (`DB` is the backend of the shapes with a transaction).
macro_rules! shapes {
    ($signal:ident, $payload:ident; $sync1:ty, $sync2:ty, $async1:ty, $async2:ty) => {
        impl<F, T, R> SyncHandler<$signal> for Closure<F, T, R, $sync1>
        where
            T: ModelRef + ?Sized,
            F: for<'e> Fn($payload<'e, T>) -> R + Send + Sync + 'static,
            R: ReceiverOutput + 'static,
            for<'e> $payload<'e, T>: FromEvent<'e, $signal, T::Sender>,
        {
            fn call<'e>(
                &self,
                _sender: Sender,
                event: <$signal as Signal>::Event<'e>,
            ) -> Result<(), BoxError> {
                let payload = <$payload<'e, T> as FromEvent<'e, $signal, T::Sender>>::from_event(event)?;
                (self.0)(payload).into_result()
            }
        }

        impl<F, T, R> ModelReceiver<$signal, Shape<T, R, $sync1>> for F
        where
            T: ModelRef + ?Sized,
            F: for<'e> Fn($payload<'e, T>) -> R + Send + Sync + 'static,
            R: ReceiverOutput + 'static,
            for<'e> $payload<'e, T>: FromEvent<'e, $signal, T::Sender>,
        {
            fn into_handler(self) -> Handler<$signal> {
                Handler::Sync(StaticOrShared::Shared(Closure::<F, T, R, $sync1>::new(self)))
            }
            fn implied_sender() -> Option<Sender> {
                sender_of::<T>()
            }
            fn needs() -> u8 {
                <$payload<'static, T> as FromEvent<'static, $signal, T::Sender>>::NEEDS
            }
        }

        impl<F, T, R, DB> SyncHandler<$signal> for Closure<F, T, R, $sync2>
        where
            T: ModelRef + ?Sized,
            DB: Backend,
            F: for<'e, 't> Fn($payload<'e, T>, &'t mut Tx<DB>) -> R + Send + Sync + 'static,
            R: ReceiverOutput + 'static,
            for<'e> ($payload<'e, T>, &'e mut Tx<DB>): FromEvent<'e, $signal, T::Sender>,
        {
            fn call<'e>(
                &self,
                _sender: Sender,
                event: <$signal as Signal>::Event<'e>,
            ) -> Result<(), BoxError> {
                let (payload, tx) =
                    <($payload<'e, T>, &'e mut Tx<DB>) as FromEvent<'e, $signal, T::Sender>>::from_event(event)?;
                (self.0)(payload, tx).into_result()
            }
        }

        impl<F, T, R, DB> ModelReceiver<$signal, Shape<T, R, $sync2>> for F
        where
            T: ModelRef + ?Sized,
            DB: Backend,
            F: for<'e, 't> Fn($payload<'e, T>, &'t mut Tx<DB>) -> R + Send + Sync + 'static,
            R: ReceiverOutput + 'static,
            for<'e> ($payload<'e, T>, &'e mut Tx<DB>): FromEvent<'e, $signal, T::Sender>,
        {
            fn into_handler(self) -> Handler<$signal> {
                Handler::Sync(StaticOrShared::Shared(Closure::<F, T, R, $sync2>::new(self)))
            }
            fn implied_sender() -> Option<Sender> {
                sender_of::<T>()
            }
            fn needs() -> u8 {
                <$payload<'static, T> as FromEvent<'static, $signal, T::Sender>>::NEEDS
            }
        }

        impl<F, T> AsyncHandler<$signal> for Closure<F, T, (), $async1>
        where
            T: ModelRef + ?Sized,
            F: for<'e> AsyncFn1<'e, $payload<'e, T>>,
            for<'e> $payload<'e, T>: FromEvent<'e, $signal, T::Sender>,
        {
            fn call<'e>(
                &self,
                _sender: Sender,
                event: <$signal as Signal>::Event<'e>,
            ) -> BoxFuture<'e, Result<(), BoxError>> {
                match <$payload<'e, T> as FromEvent<'e, $signal, T::Sender>>::from_event(event) {
                    Ok(payload) => {
                        let run = self.0.start(payload);
                        Box::pin(async move { run.await.into_result() })
                    }
                    Err(error) => Box::pin(std::future::ready(Err(error))),
                }
            }
        }

        impl<F, T> ModelReceiver<$signal, Shape<T, (), $async1>> for F
        where
            T: ModelRef + ?Sized,
            F: for<'e> AsyncFn1<'e, $payload<'e, T>>,
            for<'e> $payload<'e, T>: FromEvent<'e, $signal, T::Sender>,
        {
            fn into_handler(self) -> Handler<$signal> {
                Handler::Async(StaticOrShared::Shared(Closure::<F, T, (), $async1>::new(self)))
            }
            fn implied_sender() -> Option<Sender> {
                sender_of::<T>()
            }
            fn needs() -> u8 {
                <$payload<'static, T> as FromEvent<'static, $signal, T::Sender>>::NEEDS
            }
        }

        impl<F, T, DB> AsyncHandler<$signal> for Closure<F, T, (), $async2>
        where
            T: ModelRef + ?Sized,
            DB: Backend,
            F: for<'e> AsyncFn2<'e, $payload<'e, T>, &'e mut Tx<DB>>,
            for<'e> ($payload<'e, T>, &'e mut Tx<DB>): FromEvent<'e, $signal, T::Sender>,
        {
            fn call<'e>(
                &self,
                _sender: Sender,
                event: <$signal as Signal>::Event<'e>,
            ) -> BoxFuture<'e, Result<(), BoxError>> {
                match <($payload<'e, T>, &'e mut Tx<DB>) as FromEvent<'e, $signal, T::Sender>>::from_event(event) {
                    Ok((payload, tx)) => {
                        let run = self.0.start(payload, tx);
                        Box::pin(async move { run.await.into_result() })
                    }
                    Err(error) => Box::pin(std::future::ready(Err(error))),
                }
            }
        }

        impl<F, T, DB> ModelReceiver<$signal, Shape<T, (), $async2>> for F
        where
            T: ModelRef + ?Sized,
            DB: Backend,
            F: for<'e> AsyncFn2<'e, $payload<'e, T>, &'e mut Tx<DB>>,
            for<'e> ($payload<'e, T>, &'e mut Tx<DB>): FromEvent<'e, $signal, T::Sender>,
        {
            fn into_handler(self) -> Handler<$signal> {
                Handler::Async(StaticOrShared::Shared(Closure::<F, T, (), $async2>::new(self)))
            }
            fn implied_sender() -> Option<Sender> {
                sender_of::<T>()
            }
            fn needs() -> u8 {
                <$payload<'static, T> as FromEvent<'static, $signal, T::Sender>>::NEEDS
            }
        }
    };
}

connectable!(
    /// Django's `pre_save`, as a value to connect runtime receivers to:
    /// `pre_save.connect(|ev: PreSave<'_, User>| ..)`.
    PreSaveSignal, pre_save, PreSave;
    /// Django's `post_save`, as a value to connect runtime receivers to:
    /// `post_save.connect(|ev: PostSave<'_, User>| ..)`.
    PostSaveSignal, post_save, PostSave;
    /// Django's `pre_delete`, as a value to connect runtime receivers to:
    /// `pre_delete.connect(|ev: PreDelete<'_, User>| ..)`.
    PreDeleteSignal, pre_delete, PreDelete;
    /// Django's `post_delete`, as a value to connect runtime receivers to:
    /// `post_delete.connect(|ev: PostDelete<'_, User>| ..)`.
    PostDeleteSignal, post_delete, PostDelete;
);

shapes!(PreSaveSignal, Changes; WithChanges<Sync1>, WithChanges<Sync2<DB>>, WithChanges<Async1>, WithChanges<Async2<DB>>);
shapes!(PostSaveSignal, Changes; WithChanges<Sync1>, WithChanges<Sync2<DB>>, WithChanges<Async1>, WithChanges<Async2<DB>>);
