//! What receivers of the model signals get during the write: `PreSave<'_, User>` with
//! `sender = User`, `PreSave<'_, dyn AnyModel>` without a sender, optionally followed by the
//! write's transaction (`&mut Tx<Sqlite>`, `&mut Tx<Postgres>` or `AnyTx`).

use std::any::Any;
use std::fmt;

use signals_core::__private::AnySender;
use signals_core::BoxError;

use super::{
    DeleteEvent, PostDeleteSignal, PostSaveSignal, PreDeleteSignal, PreSaveSignal, SaveEvent,
};
use crate::model::{AnyModel, Model, ModelMeta};
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
    /// The instance type-erased, for Django's `origin`.
    fn erased(&self) -> &dyn AnyModel;
    /// Whether `save` would INSERT without trying an UPDATE: the generated key is unset.
    fn key_unset(&self) -> bool;
}

impl<M: Model> ModelRef for M {
    type Sender = M;
    fn narrow(instance: &dyn AnyModel) -> Option<&Self> {
        (instance as &dyn Any).downcast_ref()
    }
    fn narrow_mut(instance: &mut dyn AnyModel) -> Option<&mut Self> {
        (instance as &mut dyn Any).downcast_mut()
    }
    fn erased(&self) -> &dyn AnyModel {
        self
    }
    fn key_unset(&self) -> bool {
        // Only a generated key can be unset; checking the flag first spares cloning other keys.
        M::META.pk_generated && self.pk().is_none()
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
    fn erased(&self) -> &dyn AnyModel {
        self
    }
    fn key_unset(&self) -> bool {
        self.meta().pk_generated && self.pk_value().is_null()
    }
}

/// The backend the payload constructors put in `using`: the default one, the one examples and
/// tests run on first.
const DEFAULT_USING: &str = "sqlite";

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

/// `pre_save`'s payload: Django's `instance`, `raw`, `update_fields`, `using`, and
/// `instance._state.adding` as `adding`.
///
/// Built by the ORM for its receivers, and by [`PreSave::new`] for a unit test that calls one
/// receiver directly, without a database:
///
/// ```
/// use signals_orm::{receiver, Model, PreSave};
///
/// #[derive(Model, sqlx::FromRow, Clone, Debug)]
/// #[model(table = "users")]
/// struct User {
///     #[model(primary_key)]
///     id: Option<i64>,
///     name: String,
/// }
///
/// // Capitalises new users only, as Django code testing `instance._state.adding` would.
/// #[receiver(pre_save, sender = User)]
/// fn capitalize_new(ev: PreSave<'_, User>) {
///     if ev.adding {
///         ev.instance.name = ev.instance.name.to_uppercase();
///     }
/// }
///
/// let mut new = User { id: None, name: "ada".into() };
/// capitalize_new(PreSave::new(&mut new)); // adding: the generated key is unset
/// assert_eq!(new.name, "ADA");
///
/// let mut loaded = User { id: Some(7), name: "bob".into() };
/// capitalize_new(PreSave::new(&mut loaded)); // not adding: it has its key
/// assert_eq!(loaded.name, "bob");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct PreSave<'e, M: ?Sized> {
    /// The instance about to be written; changes made here are saved.
    pub instance: &'e mut M,
    /// Whether this save will INSERT (Django's `instance._state.adding`): `true` for a model
    /// whose generated key is unset and for [`insert`](crate::ModelExt::insert); `false` for a
    /// save of an instance with its key, which UPDATEs (a `save` of an application-given key
    /// that matches no row still INSERTs: `post_save`'s `created` says so).
    pub adding: bool,
    /// `true` for fixture loading (`save_raw`), like Django's `loaddata`.
    pub raw: bool,
    /// The fields being saved, `None` for all of them.
    pub update_fields: Option<&'e [&'static str]>,
    /// The backend (`"sqlite"` or `"postgres"`), Django's `using`.
    pub using: &'static str,
}

impl<'e, M: ModelRef + ?Sized> PreSave<'e, M> {
    /// A `pre_save` payload for `instance`, to call a receiver directly (a unit test).
    ///
    /// `M` is a model, or `dyn AnyModel` for receivers of every model. The rest is what
    /// `instance.save(&pool)` on SQLite would send: `adding` when the generated key is unset,
    /// `raw = false`, every field (`update_fields = None`), `using = "sqlite"`; the `with_*`
    /// methods change them. Where a Django test calls `handler(sender=User, instance=user)`,
    /// this is that payload.
    #[must_use]
    pub fn new(instance: &'e mut M) -> Self {
        let adding = instance.key_unset();
        PreSave {
            instance,
            adding,
            raw: false,
            update_fields: None,
            using: DEFAULT_USING,
        }
    }
}

impl<M: ?Sized> PreSave<'_, M> {
    /// Sets `adding` (as [`insert`](crate::ModelExt::insert) of an application-given key
    /// would: `true`).
    #[must_use]
    pub fn with_adding(mut self, adding: bool) -> Self {
        self.adding = adding;
        self
    }
}

/// `post_save`'s payload: Django's `instance`, `created`, `raw`, `update_fields`, `using`.
///
/// Built by the ORM for its receivers, and by [`PostSave::new`] for a unit test:
///
/// ```
/// use signals_orm::{receiver, Model, PostSave};
///
/// #[derive(Model, sqlx::FromRow, Clone, Debug)]
/// #[model(table = "users")]
/// struct User {
///     #[model(primary_key)]
///     id: Option<i64>,
///     name: String,
/// }
///
/// #[receiver(post_save, sender = User)]
/// fn check_name(ev: PostSave<'_, User>) -> Result<(), String> {
///     if ev.created && ev.instance.name.is_empty() {
///         return Err(format!("user {:?} created without a name", ev.instance.id));
///     }
///     Ok(())
/// }
///
/// let user = User { id: Some(1), name: String::new() };
/// assert!(check_name(PostSave::new(&user, true)).is_err());
/// assert!(check_name(PostSave::new(&user, false)).is_ok());
/// assert!(check_name(PostSave::new(&user, true).with_raw(true).with_update_fields(&["name"])).is_err());
/// ```
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

impl<'e, M: ?Sized> PostSave<'e, M> {
    /// A `post_save` payload for `instance`, to call a receiver directly (a unit test):
    /// `created` as given, `raw = false`, every field (`update_fields = None`),
    /// `using = "sqlite"`; the `with_*` methods change them. `M` is a model, or `dyn AnyModel`.
    /// Where a Django test calls `handler(sender=User, instance=user, created=True)`, this is
    /// that payload.
    #[must_use]
    pub fn new(instance: &'e M, created: bool) -> Self {
        PostSave {
            instance,
            created,
            raw: false,
            update_fields: None,
            using: DEFAULT_USING,
        }
    }
}

/// What `delete` was called on: Django's `origin`, given to `pre_delete` and `post_delete`.
///
/// An instance's [`delete`](crate::ModelExt::delete) sends the instance itself; a query's
/// [`delete`](crate::query::Query::delete) sends the query, for every row it deletes.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum Origin<'e> {
    /// `instance.delete(..)` was called on this instance.
    Instance(&'e dyn AnyModel),
    /// A query's `delete(..)`: its model and condition.
    Query(&'e dyn QueryOrigin),
}

impl<'e> Origin<'e> {
    /// The model of the instance or of the query.
    #[must_use]
    pub fn meta(&self) -> &'static ModelMeta {
        match self {
            Origin::Instance(instance) => instance.meta(),
            Origin::Query(query) => query.meta(),
        }
    }

    /// The instance whose `delete` was called, if it was an instance's.
    #[must_use]
    pub fn instance(&self) -> Option<&'e dyn AnyModel> {
        match self {
            Origin::Instance(instance) => Some(*instance),
            Origin::Query(_) => None,
        }
    }

    /// Whether the delete was called on `instance` itself (the same object, not an equal one).
    #[must_use]
    pub fn is(&self, instance: &dyn AnyModel) -> bool {
        self.instance()
            .is_some_and(|origin| std::ptr::addr_eq(origin, instance))
    }
}

impl<'e> From<&'e dyn AnyModel> for Origin<'e> {
    fn from(instance: &'e dyn AnyModel) -> Self {
        Origin::Instance(instance)
    }
}

impl<'e, M: Model> From<&'e M> for Origin<'e> {
    fn from(instance: &'e M) -> Self {
        Origin::Instance(instance)
    }
}

impl fmt::Debug for Origin<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Instance(instance) => f.debug_tuple("Instance").field(instance).finish(),
            Origin::Query(query) => f.debug_tuple("Query").field(query).finish(),
        }
    }
}

/// A query as an `origin`: its model, and `Debug` showing its condition without values.
pub trait QueryOrigin: fmt::Debug + Send + Sync {
    /// The query's model.
    fn meta(&self) -> &'static ModelMeta;
}

/// `pre_delete`'s payload: Django's `instance`, `origin`, `using`.
///
/// Built by the ORM for its receivers, and by [`PreDelete::new`] for a unit test:
///
/// ```
/// use signals_orm::{receiver, Model, PreDelete};
///
/// #[derive(Model, sqlx::FromRow, Clone, Debug)]
/// #[model(table = "users")]
/// struct User {
///     #[model(primary_key)]
///     id: Option<i64>,
///     name: String,
/// }
///
/// #[receiver(pre_delete, sender = User)]
/// fn keep_admin(ev: PreDelete<'_, User>) -> Result<(), String> {
///     if ev.instance.name == "admin" { Err("the admin stays".into()) } else { Ok(()) }
/// }
///
/// let admin = User { id: Some(1), name: "admin".into() };
/// assert_eq!(keep_admin(PreDelete::new(&admin)).unwrap_err(), "the admin stays");
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct PreDelete<'e, M: ?Sized> {
    /// The instance about to be deleted.
    pub instance: &'e M,
    /// What `delete` was called on (the instance itself for a single delete, the query for a
    /// filtered one), Django's `origin`.
    pub origin: Origin<'e>,
    /// The backend.
    pub using: &'static str,
}

/// `post_delete`'s payload: Django's `instance`, `origin`, `using`.
///
/// Built by the ORM for its receivers, and by [`PostDelete::new`] for a unit test (as
/// [`PreDelete::new`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct PostDelete<'e, M: ?Sized> {
    /// The deleted instance (its key is still set).
    pub instance: &'e M,
    /// What `delete` was called on, Django's `origin`.
    pub origin: Origin<'e>,
    /// The backend.
    pub using: &'static str,
}

/// The constructor and setters of both delete payloads.
macro_rules! delete_payload_constructors {
    ($($payload:ident $signal:literal),*) => {$(
        impl<'e, M: ModelRef + ?Sized> $payload<'e, M> {
            #[doc = concat!("A `", $signal, "` payload for `instance`, to call a receiver directly (a unit")]
            /// test): `origin` is the instance itself, as `delete` sends, and `using = "sqlite"`;
            /// the `with_*` methods change them. `M` is a model, or `dyn AnyModel`. Where a Django
            /// test calls `handler(sender=User, instance=user, origin=user)`, this is that payload.
            #[must_use]
            pub fn new(instance: &'e M) -> Self {
                $payload {
                    instance,
                    origin: Origin::Instance(instance.erased()),
                    using: DEFAULT_USING,
                }
            }
        }

        impl<'e, M: ?Sized> $payload<'e, M> {
            /// Sets Django's `origin`, what `delete` was called on: an instance
            /// (`&dyn AnyModel`) or an [`Origin`].
            #[must_use]
            pub fn with_origin(mut self, origin: impl Into<Origin<'e>>) -> Self {
                self.origin = origin.into();
                self
            }

            /// Sets `using`, the backend's name (`"sqlite"` or `"postgres"`).
            #[must_use]
            pub fn with_using(mut self, using: &'static str) -> Self {
                self.using = using;
                self
            }
        }
    )*};
}

delete_payload_constructors!(PreDelete "pre_delete", PostDelete "post_delete");

/// The setters both save payloads share.
macro_rules! save_payload_setters {
    ($($payload:ident),*) => {$(
        impl<'e, M: ?Sized> $payload<'e, M> {
            /// Sets `raw` (`true`: fixture loading, as `save_raw` sends).
            #[must_use]
            pub fn with_raw(mut self, raw: bool) -> Self {
                self.raw = raw;
                self
            }

            /// Sets `update_fields` (as `save_fields(fields, ..)` sends).
            #[must_use]
            pub fn with_update_fields(mut self, fields: &'e [&'static str]) -> Self {
                self.update_fields = Some(fields);
                self
            }

            /// Sets `using`, the backend's name (`"sqlite"` or `"postgres"`).
            #[must_use]
            pub fn with_using(mut self, using: &'static str) -> Self {
                self.using = using;
                self
            }
        }
    )*};
}

save_payload_setters!(PreSave, PostSave);

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
    // A save event sent before the write carries in `created` whether it will INSERT.
    let SaveEvent {
        instance,
        created: adding,
        raw,
        update_fields,
        tx,
    } = ev;
    let model = instance.meta().name;
    let instance = T::narrow_mut(instance).ok_or_else(|| wrong_sender::<T>(model))?;
    let using = tx.backend();
    let payload = PreSave {
        instance,
        adding,
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
type DeleteParts<'e, T> = (&'e T, Origin<'e>, &'static str);

fn delete_parts<T: ModelRef + ?Sized>(
    ev: DeleteEvent<'_>,
) -> Result<(DeleteParts<'_, T>, &mut dyn TxHandle), BoxError> {
    let DeleteEvent {
        instance,
        origin,
        tx,
    } = ev;
    Ok(((narrow::<T>(instance)?, origin, tx.backend()), tx))
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
