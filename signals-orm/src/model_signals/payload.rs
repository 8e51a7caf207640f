//! What receivers of the model signals get during the write: `PreSave<'_, User>` with
//! `sender = User`, `PreSave<'_, dyn AnyModel>` without a sender, optionally followed by the
//! write's transaction (`&mut Tx<Sqlite>`, `&mut Tx<Postgres>` or `AnyTx`).

use std::any::Any;

use signals_core::__private::AnySender;
use signals_core::BoxError;

use super::{
    DeleteEvent, PostDeleteSignal, PostSaveSignal, PreDeleteSignal, PreSaveSignal, SaveEvent,
};
use crate::model::{AnyModel, Model};
use crate::tx::TxHandle;

/// What a receiver's payload is about: one model type (with `sender = M`) or any model
/// (`dyn AnyModel`, without sender).
#[doc(hidden)]
pub trait ModelRef: Send + Sync + 'static {
    /// The sender a receiver of this payload must be connected for.
    type Sender: ?Sized + 'static;
    /// The instance as this type, if it is one.
    fn narrow(instance: &dyn AnyModel) -> Option<&Self>;
    /// The instance as this type, if it is one.
    fn narrow_mut(instance: &mut dyn AnyModel) -> Option<&mut Self>;
}

impl<M: Model> ModelRef for M {
    type Sender = M;
    fn narrow(instance: &dyn AnyModel) -> Option<&Self> {
        (instance as &dyn Any).downcast_ref()
    }
    fn narrow_mut(instance: &mut dyn AnyModel) -> Option<&mut Self> {
        (instance as &mut dyn Any).downcast_mut()
    }
}

impl ModelRef for dyn AnyModel {
    type Sender = AnySender;
    fn narrow(instance: &dyn AnyModel) -> Option<&Self> {
        Some(instance)
    }
    fn narrow_mut(instance: &mut dyn AnyModel) -> Option<&mut Self> {
        Some(instance)
    }
}

/// The error of a receiver whose payload type is not the event's model. The registry only
/// calls a receiver for its own sender, so this means a receiver was connected by hand for
/// the wrong sender.
pub(crate) fn wrong_sender<T: ?Sized>(model: &str) -> BoxError {
    format!(
        "the payload is a `{model}`, not a `{}`",
        std::any::type_name::<T>()
    )
    .into()
}

/// `instance` as a `T`, or the error saying what it is.
pub(crate) fn narrow<T: ModelRef + ?Sized>(instance: &dyn AnyModel) -> Result<&T, BoxError> {
    T::narrow(instance).ok_or_else(|| wrong_sender::<T>(instance.meta().name))
}

/// `pre_save`'s payload: Django's `instance`, `raw`, `update_fields`, `using`.
#[derive(Debug)]
#[non_exhaustive]
pub struct PreSave<'e, M: ?Sized> {
    /// The instance about to be written; changes made here are saved.
    pub instance: &'e mut M,
    /// `true` for fixture loading (`save_raw`), like Django's `loaddata`.
    pub raw: bool,
    /// The fields being saved, `None` for all of them.
    pub update_fields: Option<&'e [&'static str]>,
    /// The backend (`"sqlite"` or `"postgres"`), Django's `using`.
    pub using: &'static str,
}

/// `post_save`'s payload: Django's `instance`, `created`, `raw`, `update_fields`, `using`.
#[derive(Debug)]
#[non_exhaustive]
pub struct PostSave<'e, M: ?Sized> {
    /// The written instance (with its generated key).
    pub instance: &'e M,
    /// Whether the write was an INSERT.
    pub created: bool,
    /// `true` for fixture loading.
    pub raw: bool,
    /// The fields saved, `None` for all of them.
    pub update_fields: Option<&'e [&'static str]>,
    /// The backend.
    pub using: &'static str,
}

/// `pre_delete`'s payload: Django's `instance`, `origin`, `using`.
#[derive(Debug)]
#[non_exhaustive]
pub struct PreDelete<'e, M: ?Sized> {
    /// The instance about to be deleted.
    pub instance: &'e M,
    /// What `delete` was called on (the instance itself for a single delete), Django's
    /// `origin`.
    pub origin: &'e dyn AnyModel,
    /// The backend.
    pub using: &'static str,
}

/// `post_delete`'s payload: Django's `instance`, `origin`, `using`.
#[derive(Debug)]
#[non_exhaustive]
pub struct PostDelete<'e, M: ?Sized> {
    /// The deleted instance (its key is still set).
    pub instance: &'e M,
    /// What `delete` was called on, Django's `origin`.
    pub origin: &'e dyn AnyModel,
    /// The backend.
    pub using: &'static str,
}

/// Read-only payloads are `Copy`, whatever the model.
macro_rules! copy_payloads {
    ($($payload:ident),*) => {$(
        impl<M: ?Sized> Clone for $payload<'_, M> {
            fn clone(&self) -> Self {
                *self
            }
        }
        impl<M: ?Sized> Copy for $payload<'_, M> {}
    )*};
}

copy_payloads!(PostSave, PreDelete, PostDelete);

/// The `FromEvent` impls of one payload: alone, with `&mut Tx<DB>`, and with `AnyTx`. `$split`
/// turns the event into the payload and the write's transaction. Used by every ORM signal.
macro_rules! tx_payloads {
    ($([$($generics:tt)*] $signal:ty, $sender:ty => $payload:ty = $split:expr;)*) => {$(
        impl<'e, $($generics)*> ::signals_core::extract::FromEvent<'e, $signal, $sender> for $payload {
            fn from_event(
                event: <$signal as ::signals_core::Signal>::Event<'e>,
            ) -> Result<Self, ::signals_core::BoxError> {
                Ok(($split)(event)?.0)
            }
        }

        impl<'e, $($generics)* DB: $crate::Backend> ::signals_core::extract::FromEvent<'e, $signal, $sender>
            for ($payload, &'e mut $crate::Tx<DB>)
        {
            fn from_event(
                event: <$signal as ::signals_core::Signal>::Event<'e>,
            ) -> Result<Self, ::signals_core::BoxError> {
                let (payload, tx) = ($split)(event)?;
                Ok((payload, $crate::tx::tx_of::<DB>(tx)?))
            }
        }

        impl<'e, $($generics)*> ::signals_core::extract::FromEvent<'e, $signal, $sender>
            for ($payload, $crate::AnyTx<'e>)
        {
            fn from_event(
                event: <$signal as ::signals_core::Signal>::Event<'e>,
            ) -> Result<Self, ::signals_core::BoxError> {
                let (payload, tx) = ($split)(event)?;
                Ok((payload, $crate::AnyTx::of(tx)?))
            }
        }
    )*};
}
pub(crate) use tx_payloads;

type Split<'e, P> = Result<(P, &'e mut dyn TxHandle), BoxError>;

fn pre_save<T: ModelRef + ?Sized>(ev: SaveEvent<'_>) -> Split<'_, PreSave<'_, T>> {
    let SaveEvent {
        instance,
        raw,
        update_fields,
        tx,
        ..
    } = ev;
    let model = instance.meta().name;
    let instance = T::narrow_mut(instance).ok_or_else(|| wrong_sender::<T>(model))?;
    let using = tx.backend();
    let payload = PreSave {
        instance,
        raw,
        update_fields,
        using,
    };
    Ok((payload, tx))
}

fn post_save<T: ModelRef + ?Sized>(ev: SaveEvent<'_>) -> Split<'_, PostSave<'_, T>> {
    let SaveEvent {
        instance,
        created,
        raw,
        update_fields,
        tx,
    } = ev;
    let payload = PostSave {
        instance: narrow::<T>(instance)?,
        created,
        raw,
        update_fields,
        using: tx.backend(),
    };
    Ok((payload, tx))
}

/// The parts of both delete payloads: the typed instance, Django's `origin`, `using`.
type DeleteParts<'e, T> = (&'e T, &'e dyn AnyModel, &'static str);

fn delete_parts<T: ModelRef + ?Sized>(
    ev: DeleteEvent<'_>,
) -> Result<(DeleteParts<'_, T>, &mut dyn TxHandle), BoxError> {
    let DeleteEvent { instance, tx } = ev;
    Ok(((narrow::<T>(instance)?, instance, tx.backend()), tx))
}

fn pre_delete<T: ModelRef + ?Sized>(ev: DeleteEvent<'_>) -> Split<'_, PreDelete<'_, T>> {
    let ((instance, origin, using), tx) = delete_parts::<T>(ev)?;
    Ok((
        PreDelete {
            instance,
            origin,
            using,
        },
        tx,
    ))
}

fn post_delete<T: ModelRef + ?Sized>(ev: DeleteEvent<'_>) -> Split<'_, PostDelete<'_, T>> {
    let ((instance, origin, using), tx) = delete_parts::<T>(ev)?;
    Ok((
        PostDelete {
            instance,
            origin,
            using,
        },
        tx,
    ))
}

tx_payloads! {
    [T: ModelRef + ?Sized,] PreSaveSignal, T::Sender => PreSave<'e, T> = pre_save::<T>;
    [T: ModelRef + ?Sized,] PostSaveSignal, T::Sender => PostSave<'e, T> = post_save::<T>;
    [T: ModelRef + ?Sized,] PreDeleteSignal, T::Sender => PreDelete<'e, T> = pre_delete::<T>;
    [T: ModelRef + ?Sized,] PostDeleteSignal, T::Sender => PostDelete<'e, T> = post_delete::<T>;
}
