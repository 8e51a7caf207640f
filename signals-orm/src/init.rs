//! Django's `post_init`: sent for every instance the ORM builds from a row, and what `pre_init`
//! would be here (nothing: see `docs/django.md`, "Other built-in signals").
//!
//! Every fetch asks once whether anybody listens for its model's `post_init`; when nobody
//! does, each row is decoded and nothing else happens. Rules: `docs/orm.md`, "`post_init`".

use std::marker::PhantomData;

use signals_core::__private::Registry;
use signals_core::extract::FromEvent;
use signals_core::{BoxError, Sender, Signal};

use crate::backend::Backend;
use crate::error::{Context as _, Operation, OrmError};
use crate::model::{AnyModel, Model, Persist};
use crate::model_signals::payload::{ModelRef, wrong_sender};
use crate::model_signals::senders::SenderOf;

/// `post_init` as a type: what [`Mute`](crate::Mute) and
/// [`has_listeners`](crate::dispatch::has_listeners) take; receivers name it `post_init`.
///
/// Sent after an instance is built from a row by any of the ORM's fetches (Django's
/// `post_init`, sent at the end of `Model.__init__`), with the model as sender: the rows of
/// [`Query::all`](crate::query::Query::all), `first`, [`get`](crate::ModelExt::get),
/// `get_or_create` and `update_or_create` when they find the row, the parent and children
/// accessors of relations, `Related::all` of many-to-many relations, the rows the delete
/// collector reads whole, the rows a set-based write reads or gets back from `RETURNING`, and
/// the previous rows a save reads for [`Changes`](crate::Changes). An instance built in code
/// (`User { .. }`) gets none, nor does a key read alone.
///
/// Receivers take [`PostInit<'_, User>`](PostInit) with `sender = User` (or
/// `PostInit<'_, dyn AnyModel>` for every model) and may change the instance before the fetch
/// returns it: fill a field that is not stored (`#[model(skip)]`), keep a copy of a value to
/// compare later. They are sync, as Django's; an `async` receiver, or one that fails or
/// panics, fails the fetch with [`OrmError::Signal`] naming it.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use signals_orm::{receiver, Model, ModelExt, PostInit};
///
/// #[derive(Model, sqlx::FromRow, Debug)]
/// #[model(table = "users")]
/// struct User {
///     #[model(primary_key)]
///     id: Option<i64>,
///     name: String,
///     /// Not stored: filled in when the user is loaded.
///     #[model(skip)]
///     #[sqlx(skip)]
///     initials: String,
/// }
///
/// #[receiver(post_init, sender = User)]
/// fn fill_initials(ev: PostInit<'_, User>) {
///     ev.instance.initials = ev.instance.name.split(' ').filter_map(|w| w.chars().next()).collect();
/// }
///
/// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
/// sqlx::raw_sql("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)").execute(&pool).await?;
/// let mut ada = User { id: None, name: "Ada Lovelace".into(), initials: String::new() };
/// ada.save(&pool).await?;
/// assert_eq!(ada.initials, "", "built in code: no post_init");
/// let loaded = User::get(&pool, &ada.id.unwrap()).await?.unwrap();
/// assert_eq!(loaded.initials, "AL");
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[derive(Debug, Clone, Copy)]
pub struct PostInitSignal;

/// The event behind `post_init`: the instance, type-erased.
pub struct InitEvent<'e> {
    instance: &'e mut dyn AnyModel,
    using: &'static str,
}

impl Signal for PostInitSignal {
    const NAME: &'static str = "post_init";
    type Event<'e> = InitEvent<'e>;
    type Reply = ();

    fn reborrow<'s>(event: &'s mut InitEvent<'_>) -> InitEvent<'s> {
        InitEvent {
            instance: &mut *event.instance,
            using: event.using,
        }
    }

    fn describe(event: &InitEvent<'_>) -> Vec<(&'static str, String)> {
        vec![("pk", crate::model_signals::pk_text(&*event.instance))]
    }

    fn registry() -> &'static Registry<Self> {
        signals_core::__signal_registry!(PostInitSignal)
    }
}

/// `post_init`'s payload: Django's `instance`, and the backend it was read from.
///
/// Built by the ORM for its receivers, and by [`PostInit::new`] for a unit test that calls a
/// receiver directly, without a database. `M` is a model, with `sender = M`, or
/// `dyn AnyModel` for a receiver of every model:
///
/// ```standalone_crate
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use std::sync::Mutex;
///
/// use signals_orm::{receiver, AnyModel, Model, ModelExt, PostInit};
///
/// #[derive(Model, sqlx::FromRow, Debug)]
/// #[model(table = "notes")]
/// struct Note {
///     #[model(primary_key)]
///     id: Option<i64>,
///     body: String,
/// }
///
/// static LOADED: Mutex<Vec<String>> = Mutex::new(Vec::new());
///
/// // Every model: what was loaded, by key.
/// #[receiver(post_init)]
/// fn count_loads(ev: PostInit<'_, dyn AnyModel>) {
///     let line = format!("{} {} from {}", ev.instance.meta().name, ev.instance.pk_value(), ev.using);
///     LOADED.lock().unwrap().push(line);
/// }
///
/// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
/// sqlx::raw_sql("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)").execute(&pool).await?;
/// for body in ["one", "two"] {
///     Note { id: None, body: body.into() }.save(&pool).await?;
/// }
/// assert_eq!(Note::objects().all(&pool).await?.len(), 2);
/// assert_eq!(*LOADED.lock().unwrap(), ["Note 1 from sqlite", "Note 2 from sqlite"]);
///
/// // A unit test calls a receiver with a payload it builds:
/// let mut note = Note { id: Some(9), body: String::new() };
/// count_loads(PostInit::<dyn AnyModel>::new(&mut note));
/// assert_eq!(LOADED.lock().unwrap()[2], "Note 9 from sqlite");
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub struct PostInit<'e, M: ?Sized> {
    /// The instance just built from its row; what a receiver changes here is what the fetch
    /// returns.
    pub instance: &'e mut M,
    /// The backend (`"sqlite"` or `"postgres"`); Django's `post_init` has no `using`.
    pub using: &'static str,
}

impl<'e, M: ModelRef + ?Sized> PostInit<'e, M> {
    /// A `post_init` payload for `instance`, to call a receiver directly (a unit test), with
    /// `using = "sqlite"`. `M` is a model, or `dyn AnyModel`.
    #[must_use]
    pub fn new(instance: &'e mut M) -> Self {
        PostInit {
            instance,
            using: "sqlite",
        }
    }
}

impl<M: ?Sized> PostInit<'_, M> {
    /// Sets `using`, the backend's name (`"sqlite"` or `"postgres"`).
    #[must_use]
    pub fn with_using(mut self, using: &'static str) -> Self {
        self.using = using;
        self
    }
}

impl<'e, T: ModelRef + ?Sized> FromEvent<'e, PostInitSignal, T::Sender> for PostInit<'e, T> {
    fn from_event(event: InitEvent<'e>) -> Result<Self, BoxError> {
        let model = event.instance.meta().name;
        let instance = T::narrow_mut(event.instance).ok_or_else(|| wrong_sender::<T>(model))?;
        Ok(PostInit {
            instance,
            using: event.using,
        })
    }
}

/// A sender of `post_init`: a model.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a model: the sender of post_init must be a `#[derive(Model)]` type",
    label = "not a model",
    note = "`#[receiver(post_init, sender = User)]` takes `PostInit<'_, User>`, where `User` derives `Model` and `sqlx::FromRow`",
    note = "a receiver of every model leaves `sender` out"
)]
pub trait PostInitSender {}

impl<M: Model> PostInitSender for M {}

impl<X: ?Sized + PostInitSender> SenderOf<X> for PostInitSignal {
    type Sender = X;
}

/// How one fetch builds its instances of `M` from rows of `DB`: whether `post_init` is heard
/// for `M` is asked once, when the fetch begins; each row is then decoded, and sent only if it
/// is.
pub(crate) struct Init<M, DB> {
    heard: bool,
    marker: PhantomData<fn() -> (M, DB)>,
}

impl<M, DB> Clone for Init<M, DB> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M, DB> Copy for Init<M, DB> {}

impl<M: Persist<DB>, DB: Backend> Init<M, DB> {
    /// Asks the registry whether anybody listens for `M`'s `post_init` (a few atomic loads
    /// when nobody does).
    #[inline]
    pub(crate) fn new() -> Self {
        Init {
            heard: PostInitSignal::registry().has_listeners(Sender::of::<M>()),
            marker: PhantomData,
        }
    }

    /// The instance of `row`, after its `post_init` when heard.
    ///
    /// # Errors
    ///
    /// A column that does not decode (during `operation`), or a `post_init` receiver's error.
    #[inline]
    pub(crate) fn decode(self, row: &DB::Row, operation: Operation) -> Result<M, OrmError> {
        let mut instance = M::from_row(row).during(operation)?;
        if self.heard {
            send(&mut instance, <DB as Backend>::NAME)?;
        }
        Ok(instance)
    }
}

/// Sends `post_init` for `instance`.
fn send<M: Model>(instance: &mut M, using: &'static str) -> Result<(), OrmError> {
    PostInitSignal::registry().send_sync(Sender::of::<M>(), InitEvent { instance, using })?;
    Ok(())
}
