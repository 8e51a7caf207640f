//! The model signals: `pre_save`, `post_save`, `pre_delete`, `post_delete`, their typed
//! payloads, and the owned copies `on_commit` receivers get.
//!
//! Each signal carries one type-erased event; what a receiver gets depends on its parameter
//! types: `PostSave<'_, User>` for a receiver with `sender = User`, `PostSave<'_, dyn AnyModel>`
//! for one without sender, optionally followed by `&mut Tx<Sqlite>` (or `Postgres`) to write in
//! the same transaction, or `Committed<User>` for an `on_commit` receiver.

use std::any::Any;
use std::future::Future;

use signals_core::{AnySender, BoxError, FromEvent, Registry, Signal};

use sqlx::{Postgres, Sqlite};

use crate::backend::Backend;
use crate::model::{AnyModel, Model};
use crate::tx::{Hook, HookLabel, Tx, TxHandle};

/// The event behind `pre_save` and `post_save`.
#[doc(hidden)]
pub struct SaveEvent<'e> {
    pub(crate) instance: &'e mut dyn AnyModel,
    pub(crate) created: bool,
    pub(crate) raw: bool,
    pub(crate) update_fields: Option<&'e [&'static str]>,
    pub(crate) tx: &'e mut dyn TxHandle,
}

/// The event behind `pre_delete` and `post_delete`.
#[doc(hidden)]
pub struct DeleteEvent<'e> {
    pub(crate) instance: &'e dyn AnyModel,
    pub(crate) tx: &'e mut dyn TxHandle,
}

macro_rules! model_signal {
    ($(#[$doc:meta])* $signal:ident, $name:literal, $event:ident, |$ev:ident| $reborrow:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $signal;

        impl Signal for $signal {
            const NAME: &'static str = $name;
            type Event<'e> = $event<'e>;

            fn reborrow<'s>($ev: &'s mut $event<'_>) -> $event<'s> {
                $reborrow
            }

            fn registry() -> &'static Registry<Self> {
                static REGISTRY: Registry<$signal> = Registry::new();
                &REGISTRY
            }
        }
    };
}

model_signal!(
    /// Sent before a model row is written, inside the write's transaction (Django's
    /// `pre_save`, which Django sends before its transaction). Receivers may change the instance;
    /// the changed values are written. `#[receiver(pre_save, sender = User)]`.
    PreSaveSignal, "pre_save", SaveEvent,
    |ev| SaveEvent { instance: &mut *ev.instance, created: ev.created, raw: ev.raw, update_fields: ev.update_fields, tx: &mut *ev.tx }
);
model_signal!(
    /// Sent after a model row is written, in the same transaction; a failing receiver rolls the
    /// write back (Django's `post_save`, which runs after an autocommit write).
    PostSaveSignal, "post_save", SaveEvent,
    |ev| SaveEvent { instance: &mut *ev.instance, created: ev.created, raw: ev.raw, update_fields: ev.update_fields, tx: &mut *ev.tx }
);
model_signal!(
    /// Sent before a model row is deleted, inside the delete's transaction (Django's
    /// `pre_delete`).
    PreDeleteSignal, "pre_delete", DeleteEvent,
    |ev| DeleteEvent { instance: ev.instance, tx: &mut *ev.tx }
);
model_signal!(
    /// Sent after a model row is deleted, in the same transaction (Django's `post_delete`).
    PostDeleteSignal, "post_delete", DeleteEvent,
    |ev| DeleteEvent { instance: ev.instance, tx: &mut *ev.tx }
);

/// What a receiver's payload is about: one model type (with `sender = M`) or any model
/// (`dyn AnyModel`, without sender).
pub trait ModelRef: Send + Sync + 'static {
    /// The sender a receiver of this payload must be connected for.
    type Sender: ?Sized + 'static;
    #[doc(hidden)]
    fn narrow(instance: &dyn AnyModel) -> Option<&Self>;
    #[doc(hidden)]
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
    /// What `delete` was called on (the instance itself for a single delete).
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
    /// What `delete` was called on.
    pub origin: &'e dyn AnyModel,
    /// The backend.
    pub using: &'static str,
}

fn wrong_sender<T: ?Sized>(got: &dyn AnyModel) -> BoxError {
    format!(
        "the payload is a `{}`, not a `{}`",
        got.meta().name,
        std::any::type_name::<T>()
    )
    .into()
}

fn wrong_backend<DB: Backend>(tx: &dyn TxHandle) -> BoxError {
    format!(
        "the receiver takes a `Tx<{}>` but the write runs on {}",
        std::any::type_name::<DB>(),
        tx.backend()
    )
    .into()
}

pub(crate) fn tx_of<DB: Backend>(tx: &mut dyn TxHandle) -> Result<&mut Tx<DB>, BoxError> {
    if (tx as &dyn Any).is::<Tx<DB>>() {
        Ok((tx as &mut dyn Any)
            .downcast_mut::<Tx<DB>>()
            .expect("checked just above"))
    } else {
        Err(wrong_backend::<DB>(tx))
    }
}

fn pre_save<T: ModelRef + ?Sized>(
    SaveEvent {
        instance,
        raw,
        update_fields,
        tx,
        ..
    }: SaveEvent<'_>,
) -> Result<(PreSave<'_, T>, &mut dyn TxHandle), BoxError> {
    let using = tx.backend();
    let name = instance.meta().name;
    let instance = T::narrow_mut(instance).ok_or_else(|| {
        format!(
            "the payload is a `{name}`, not a `{}`",
            std::any::type_name::<T>()
        )
    })?;
    Ok((
        PreSave {
            instance,
            raw,
            update_fields,
            using,
        },
        tx,
    ))
}

fn post_save<T: ModelRef + ?Sized>(
    SaveEvent {
        instance,
        created,
        raw,
        update_fields,
        tx,
    }: SaveEvent<'_>,
) -> Result<(PostSave<'_, T>, &mut dyn TxHandle), BoxError> {
    let using = tx.backend();
    let instance: &dyn AnyModel = instance;
    let instance = T::narrow(instance).ok_or_else(|| wrong_sender::<T>(instance))?;
    Ok((
        PostSave {
            instance,
            created,
            raw,
            update_fields,
            using,
        },
        tx,
    ))
}

fn pre_delete<T: ModelRef + ?Sized>(
    DeleteEvent {
        instance: origin,
        tx,
    }: DeleteEvent<'_>,
) -> Result<(PreDelete<'_, T>, &mut dyn TxHandle), BoxError> {
    let using = tx.backend();
    let instance = T::narrow(origin).ok_or_else(|| wrong_sender::<T>(origin))?;
    Ok((
        PreDelete {
            instance,
            origin,
            using,
        },
        tx,
    ))
}

fn post_delete<T: ModelRef + ?Sized>(
    DeleteEvent {
        instance: origin,
        tx,
    }: DeleteEvent<'_>,
) -> Result<(PostDelete<'_, T>, &mut dyn TxHandle), BoxError> {
    let using = tx.backend();
    let instance = T::narrow(origin).ok_or_else(|| wrong_sender::<T>(origin))?;
    Ok((
        PostDelete {
            instance,
            origin,
            using,
        },
        tx,
    ))
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

macro_rules! payloads {
    ($($signal:ident => $payload:ident via $split:ident),* $(,)?) => {$(
        impl<'e, T: ModelRef + ?Sized> FromEvent<'e, $signal, T::Sender> for $payload<'e, T> {
            fn from_event(event: <$signal as Signal>::Event<'e>) -> Result<Self, BoxError> {
                Ok($split::<T>(event)?.0)
            }
        }

        impl<'e, T: ModelRef + ?Sized, DB: Backend> FromEvent<'e, $signal, T::Sender> for ($payload<'e, T>, &'e mut Tx<DB>) {
            fn from_event(event: <$signal as Signal>::Event<'e>) -> Result<Self, BoxError> {
                let (payload, tx) = $split::<T>(event)?;
                Ok((payload, tx_of::<DB>(tx)?))
            }
        }

        impl<'e, T: ModelRef + ?Sized> FromEvent<'e, $signal, T::Sender> for ($payload<'e, T>, AnyTx<'e>) {
            fn from_event(event: <$signal as Signal>::Event<'e>) -> Result<Self, BoxError> {
                let (payload, tx) = $split::<T>(event)?;
                Ok((payload, AnyTx::of(tx)?))
            }
        }
    )*};
}

/// The write's transaction for receivers that serve either backend: match on it to reach the
/// typed [`Tx`]. Take `&mut Tx<Sqlite>` (or `Postgres`) instead when the program uses one.
#[derive(Debug)]
pub enum AnyTx<'e> {
    /// A SQLite transaction.
    Sqlite(&'e mut Tx<Sqlite>),
    /// A PostgreSQL transaction.
    Postgres(&'e mut Tx<Postgres>),
}

impl<'e> AnyTx<'e> {
    pub(crate) fn of(tx: &'e mut dyn TxHandle) -> Result<Self, BoxError> {
        if (tx as &dyn Any).is::<Tx<Sqlite>>() {
            Ok(AnyTx::Sqlite(tx_of::<Sqlite>(tx)?))
        } else {
            Ok(AnyTx::Postgres(tx_of::<Postgres>(tx)?))
        }
    }

    /// Lends the transaction again, to use it more than once in a receiver.
    pub fn reborrow(&mut self) -> AnyTx<'_> {
        match self {
            AnyTx::Sqlite(tx) => AnyTx::Sqlite(tx),
            AnyTx::Postgres(tx) => AnyTx::Postgres(tx),
        }
    }

    /// The backend's name.
    #[must_use]
    pub fn backend(&self) -> &'static str {
        match self {
            AnyTx::Sqlite(_) => <Sqlite as Backend>::NAME,
            AnyTx::Postgres(_) => <Postgres as Backend>::NAME,
        }
    }
}

payloads! {
    PreSaveSignal => PreSave via pre_save,
    PostSaveSignal => PostSave via post_save,
    PreDeleteSignal => PreDelete via pre_delete,
    PostDeleteSignal => PostDelete via post_delete,
}

/// The owned payload an `on_commit` receiver gets after the outermost COMMIT.
///
/// `#[receiver(post_save, sender = User, on_commit)] async fn f(ev: Committed<User>)`; without a
/// sender, `Committed<ModelSnapshot>`. It is a copy taken when the signal was sent, so it never
/// sees later changes, and it is dropped unrun if the transaction rolls back.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Committed<M> {
    /// The signal's name (`post_save`, ...).
    pub signal: &'static str,
    /// The model's name (`User`), useful to receivers of every model.
    pub model: &'static str,
    /// A copy of the instance as it was when the signal was sent.
    pub instance: M,
    /// `post_save` only: whether the write was an INSERT.
    pub created: bool,
    /// Save signals only: fixture loading.
    pub raw: bool,
    /// Save signals only: the fields saved, `None` for all.
    pub update_fields: Option<Vec<&'static str>>,
    /// The backend.
    pub using: &'static str,
}

/// A model as plain data: what `on_commit` receivers without a sender get.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelSnapshot {
    /// The model's type name.
    pub model: &'static str,
    /// Its table.
    pub table: &'static str,
    /// The key as JSON.
    pub pk: serde_json::Value,
    /// Every saved field, key first.
    pub values: Vec<(&'static str, serde_json::Value)>,
}

/// What `Committed<T>` can hold: a model type (cloned) or a [`ModelSnapshot`] (any model).
pub trait OwnedModel: Send + Sized + 'static {
    /// The sender an `on_commit` receiver of `Committed<Self>` must be connected for.
    type Sender: ?Sized + 'static;
    #[doc(hidden)]
    fn own(instance: &dyn AnyModel) -> Option<Self>;
}

impl<M: Model + Clone> OwnedModel for M {
    type Sender = M;
    fn own(instance: &dyn AnyModel) -> Option<Self> {
        (instance as &dyn Any).downcast_ref::<M>().cloned()
    }
}

impl OwnedModel for ModelSnapshot {
    type Sender = AnySender;
    fn own(instance: &dyn AnyModel) -> Option<Self> {
        let meta = instance.meta();
        Some(ModelSnapshot {
            model: meta.name,
            table: meta.table,
            pk: instance.pk_value(),
            values: instance.field_values(),
        })
    }
}

/// Takes an owned copy of an event for a receiver that runs at commit.
#[diagnostic::on_unimplemented(
    message = "an `on_commit` receiver of `{S}` cannot take `{Self}`",
    label = "take `Committed<Model>` (with `sender = Model`) or `Committed<ModelSnapshot>` (without sender)",
    note = "on_commit receivers run after COMMIT with an owned copy of the payload; `Model` must be `Clone`"
)]
pub trait FromCommitted<'e, S: Signal, X: ?Sized>: Sized + Send + 'static {
    /// The copy, and the transaction to queue it on.
    ///
    /// # Errors
    ///
    /// When the payload's model is not the receiver's.
    fn split(event: S::Event<'e>) -> Result<(Self, &'e mut dyn TxHandle), BoxError>;

    /// The name of the copied instance's model, for errors and traces.
    fn model_name(&self) -> &'static str;
}

/// The `FromCommitted` impl of each model signal: which event fields fill `created`, `raw` and
/// `update_fields`.
macro_rules! committed_payloads {
    ($($signal:ident($event:ident) => |$ev:ident| ($created:expr, $raw:expr, $fields:expr)),* $(,)?) => {$(
        impl<'e, O: OwnedModel> FromCommitted<'e, $signal, O::Sender> for Committed<O> {
            fn split($ev: $event<'e>) -> Result<(Self, &'e mut dyn TxHandle), BoxError> {
                committed($signal::NAME, $ev.instance, $created, $raw, $fields, $ev.tx)
            }

            fn model_name(&self) -> &'static str {
                self.model
            }
        }
    )*};
}

committed_payloads! {
    PostSaveSignal(SaveEvent) => |ev| (ev.created, ev.raw, ev.update_fields),
    PreSaveSignal(SaveEvent) => |ev| (false, ev.raw, ev.update_fields),
    PreDeleteSignal(DeleteEvent) => |ev| (false, false, None),
    PostDeleteSignal(DeleteEvent) => |ev| (false, false, None),
}

fn committed<'e, O: OwnedModel>(
    signal: &'static str,
    instance: &dyn AnyModel,
    created: bool,
    raw: bool,
    update_fields: Option<&[&'static str]>,
    tx: &'e mut dyn TxHandle,
) -> Result<(Committed<O>, &'e mut dyn TxHandle), BoxError> {
    let owned = O::own(instance).ok_or_else(|| wrong_sender::<O>(instance))?;
    let using = tx.backend();
    Ok((
        Committed {
            signal,
            model: instance.meta().name,
            instance: owned,
            created,
            raw,
            update_fields: update_fields.map(<[_]>::to_vec),
            using,
        },
        tx,
    ))
}

/// Queues an `on_commit` receiver with its owned payload on the write's transaction. Called by
/// the handler `#[receiver(..., on_commit)]` generates.
#[doc(hidden)]
pub fn defer_on_commit<'e, S, X, P, F, Fut>(
    event: S::Event<'e>,
    receiver: &'static str,
    run: F,
) -> Result<(), BoxError>
where
    S: Signal,
    X: ?Sized + 'static,
    P: FromCommitted<'e, S, X>,
    F: FnOnce(P) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    let (payload, tx) = P::split(event)?;
    // A receiver of every model names the instance's model rather than `AnySender`.
    let sender = if std::any::TypeId::of::<X>() == std::any::TypeId::of::<AnySender>() {
        payload.model_name()
    } else {
        std::any::type_name::<X>()
    };
    let label = HookLabel {
        signal: S::NAME,
        sender,
        receiver,
    };
    tx.push_hook(Hook::new(label, Box::new(move || Box::pin(run(payload)))));
    Ok(())
}
