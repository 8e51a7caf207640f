//! The program's models, known at link time, and Django's `class_prepared`.
//!
//! Every `derive(Model)` type puts one [`RegisteredModel`] into `inventory`: its
//! [`ModelMeta`] (name, table, and each column with its Rust type, whether it may be `NULL` and
//! which is the key) and, for each enabled backend, whether the model is stored there. The
//! registry is *prepared* once per process, at the ORM's first use (the first write or fetch of
//! any model, through `&pool` or `&mut tx`) or at an explicit [`prepare`]: `class_prepared` is
//! then sent once for each model, the model as sender. [`check`](crate::check) compares the
//! registry with a database. Rules: `docs/orm.md`, "Model registry and checks".
//!
//! Django sends `class_prepared` when each model class is created, while its module is
//! imported. A Rust type has no moment of creation at run time, so here the moment is the
//! registry's preparation: before any model is used, or when the program asks.

use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::{Once, OnceLock};

use signals_core::__private::Registry;
use signals_core::{PlainSignal, Sender, Signal};

use crate::backend::Backend;
use crate::model::{Model, ModelMeta, Persist};
use crate::model_signals::senders::SenderOf;

/// Django's `class_prepared`: sent once for each model of the program, with the model as
/// sender, when the model registry is prepared (the first write or fetch of any model, or
/// [`prepare`]).
///
/// Receivers take `&ClassPrepared`: `#[receiver(class_prepared)] fn f(ev: &ClassPrepared)` for
/// every model, `#[receiver(class_prepared, sender = User)]` for one, or a closure
/// `signals_orm::connect(|ev: &ClassPrepared| ..)` connected before the first use.
///
/// ```
/// use std::sync::Mutex;
///
/// use signals_orm::registry::ClassPrepared;
/// use signals_orm::{receiver, Model};
///
/// #[derive(Model, sqlx::FromRow, Debug)]
/// #[model(table = "users")]
/// struct User {
///     #[model(primary_key)]
///     id: Option<i64>,
///     #[model(column = "email_address")]
///     email: Option<String>,
/// }
///
/// static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
///
/// #[receiver(class_prepared, sender = User)]
/// fn describe(ev: &ClassPrepared) {
///     for column in ev.meta.schema {
///         SEEN.lock().unwrap().push(format!("{}: {}", column.column, column.rust_type));
///     }
/// }
///
/// signals_orm::prepare(); // or the first write or fetch of any model
/// signals_orm::prepare(); // sent once per process: nothing more
/// assert_eq!(*SEEN.lock().unwrap(), ["id: Option<i64>", "email_address: Option<String>"]);
/// ```
///
/// Sent with [`send_robust_sync`](crate::dispatch::send_robust_sync) rules: every receiver runs
/// whatever the others do; one that fails or panics is reported through `tracing` (stderr
/// when no subscriber is installed) and fails nothing, since the send happens inside whichever
/// write or fetch came first. Receivers are sync, as Django's: an `async` one is reported as
/// [`SendError::AsyncReceiverInSyncSend`](crate::SendError::AsyncReceiverInSyncSend).
#[derive(Debug)]
#[non_exhaustive]
pub struct ClassPrepared {
    /// The model: name, table and columns (Django's `sender._meta`).
    pub meta: &'static ModelMeta,
}

impl Signal for ClassPrepared {
    const NAME: &'static str = "class_prepared";
    type Event<'e> = &'e ClassPrepared;
    type Reply = ();

    fn reborrow<'s>(event: &'s mut &ClassPrepared) -> &'s ClassPrepared {
        event
    }

    fn describe(event: &&ClassPrepared) -> Vec<(&'static str, String)> {
        vec![("table", event.meta.table.to_owned())]
    }

    fn registry() -> &'static Registry<Self> {
        signals_core::__signal_registry!(ClassPrepared)
    }
}

impl PlainSignal for ClassPrepared {
    fn as_event(&self) -> &Self {
        self
    }

    #[expect(
        clippy::elidable_lifetime_names,
        reason = "the name ties the event to what is built from it"
    )]
    fn from_event<'e>(event: <Self as Signal>::Event<'e>) -> &'e Self {
        event
    }
}

/// A sender of `class_prepared`: a model.
#[doc(hidden)]
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a model: the sender of class_prepared must be a `#[derive(Model)]` type",
    label = "not a model",
    note = "`#[receiver(class_prepared, sender = User)]` takes `&ClassPrepared`, where `User` derives `Model`",
    note = "a receiver of every model leaves `sender` out"
)]
pub trait ClassPreparedSender {}

impl<M: Model> ClassPreparedSender for M {}

impl<X: ?Sized + ClassPreparedSender> SenderOf<X> for ClassPrepared {
    type Sender = X;
}

/// One model of the program, submitted to `inventory` by `derive(Model)`.
#[doc(hidden)]
pub struct RegisteredModel {
    /// Its name, table and columns.
    pub meta: &'static ModelMeta,
    /// The model as a sender (`Sender::of::<Model>`).
    pub sender: fn() -> Sender,
    /// What each enabled backend knows of its columns, if it stores the model.
    pub backends: ModelBackends,
}

inventory::collect!(RegisteredModel);

/// A model's column types on each enabled backend (`model_backends!` fills it in).
#[doc(hidden)]
pub struct ModelBackends {
    /// On SQLite, if the model's types fit it.
    #[cfg(feature = "sqlite")]
    pub sqlite: fn() -> Option<&'static dyn Stored<sqlx::Sqlite>>,
    /// On PostgreSQL, if the model's types fit it.
    #[cfg(feature = "postgres")]
    pub postgres: fn() -> Option<&'static dyn Stored<sqlx::Postgres>>,
}

/// A model stored on backend `DB`: its columns' SQL types, asked without knowing the model's
/// type (the schema check walks the registry).
#[doc(hidden)]
pub trait Stored<DB: Backend>: Sync {
    /// The SQL type name sqlx binds column `column` as (0: the key, `i + 1`: field `i`).
    fn expected_type(&self, column: usize) -> Option<String>;
    /// Whether a value of SQL type `found` decodes into column `column`'s field.
    fn accepts(&self, column: usize, found: &DB::TypeInfo) -> bool;
}

/// The [`Stored`] view of model `M`.
struct Typed<M>(PhantomData<fn() -> M>);

impl<M: Persist<DB>, DB: Backend> Stored<DB> for Typed<M> {
    fn expected_type(&self, column: usize) -> Option<String> {
        M::column_type(column).map(|info| sqlx::TypeInfo::name(&info).to_owned())
    }

    fn accepts(&self, column: usize, found: &DB::TypeInfo) -> bool {
        M::column_accepts(column, found)
    }
}

/// Stands for "model `M` on backend `DB`" in `model_backends!`, where method lookup picks
/// [`StoredOn`] when `M` is `Persist<DB>` and [`NotStoredOn`] otherwise.
#[doc(hidden)]
pub struct ModelProbe<M, DB>(PhantomData<fn() -> (M, DB)>);

impl<M, DB> ModelProbe<M, DB> {
    /// The probe.
    pub const NEW: Self = ModelProbe(PhantomData);
}

/// The column types, for a model the backend stores.
#[doc(hidden)]
pub trait StoredOn<DB: Backend> {
    /// `Some` view.
    fn stored(&self) -> Option<&'static dyn Stored<DB>>;
}

impl<M: Persist<DB>, DB: Backend> StoredOn<DB> for &ModelProbe<M, DB> {
    fn stored(&self) -> Option<&'static dyn Stored<DB>> {
        Some(&Typed::<M>(PhantomData))
    }
}

/// Nothing, for a model whose field types the backend cannot store.
#[doc(hidden)]
pub trait NotStoredOn<DB: Backend> {
    /// `None`.
    fn stored(&self) -> Option<&'static dyn Stored<DB>>;
}

impl<M, DB: Backend> NotStoredOn<DB> for ModelProbe<M, DB> {
    fn stored(&self) -> Option<&'static dyn Stored<DB>> {
        None
    }
}

/// The [`Stored`] view of model `$model` on backend `$db`, or `None`.
#[doc(hidden)]
#[macro_export]
macro_rules! __probe_stored {
    ($model:ty, $db:ty) => {
        || {
            #[allow(unused_imports)]
            use $crate::__private::{NotStoredOn as _, StoredOn as _};
            (&&$crate::__private::ModelProbe::<$model, $db>::NEW).stored()
        }
    };
}

/// The [`ModelBackends`] of `$model`.
#[doc(hidden)]
#[cfg(all(feature = "sqlite", feature = "postgres"))]
#[macro_export]
macro_rules! __model_backends {
    ($model:ty) => {
        $crate::__private::ModelBackends {
            sqlite: $crate::__probe_stored!($model, $crate::__private::sqlx::Sqlite),
            postgres: $crate::__probe_stored!($model, $crate::__private::sqlx::Postgres),
        }
    };
}

/// The [`ModelBackends`] of `$model` (SQLite only).
#[doc(hidden)]
#[cfg(all(feature = "sqlite", not(feature = "postgres")))]
#[macro_export]
macro_rules! __model_backends {
    ($model:ty) => {
        $crate::__private::ModelBackends {
            sqlite: $crate::__probe_stored!($model, $crate::__private::sqlx::Sqlite),
        }
    };
}

/// The [`ModelBackends`] of `$model` (PostgreSQL only).
#[doc(hidden)]
#[cfg(all(feature = "postgres", not(feature = "sqlite")))]
#[macro_export]
macro_rules! __model_backends {
    ($model:ty) => {
        $crate::__private::ModelBackends {
            postgres: $crate::__probe_stored!($model, $crate::__private::sqlx::Postgres),
        }
    };
}

/// The registered models, sorted by name then table (link order is the linker's; a fixed order
/// keeps the sends and the check's report the same from build to build).
pub(crate) fn entries() -> &'static [&'static RegisteredModel] {
    static ENTRIES: OnceLock<Vec<&'static RegisteredModel>> = OnceLock::new();
    ENTRIES.get_or_init(|| {
        let mut entries: Vec<&'static RegisteredModel> =
            inventory::iter::<RegisteredModel>.into_iter().collect();
        entries.sort_by_key(|entry| (entry.meta.name, entry.meta.table));
        entries
    })
}

/// Every model of the program (Django's `apps.get_models()`): each `derive(Model)` type linked
/// into it, sorted by name, then table. Prepares the registry first, as [`prepare`] does.
///
/// ```
/// use signals_orm::Model;
///
/// #[derive(Model, sqlx::FromRow)]
/// #[model(table = "people")]
/// struct Person {
///     #[model(primary_key)]
///     id: Option<i64>,
///     name: String,
/// }
///
/// let person = signals_orm::registry::models().iter().find(|m| m.name == "Person").unwrap();
/// assert_eq!(person.table, "people");
/// assert_eq!(person.schema[1].rust_type, "String");
/// ```
#[must_use]
pub fn models() -> &'static [&'static ModelMeta] {
    static MODELS: OnceLock<Vec<&'static ModelMeta>> = OnceLock::new();
    prepared();
    MODELS.get_or_init(|| entries().iter().map(|entry| entry.meta).collect())
}

/// Prepares the model registry: sends `class_prepared` once for each model, in
/// [`models`] order, the first time the program calls this or uses the ORM (a write or a fetch
/// of any model); does nothing after that. Other threads that use the ORM meanwhile wait until
/// every send is done, so no model is used before its receivers ran; a `class_prepared`
/// receiver that uses the ORM itself does not wait for its own send.
///
/// Call it at start-up to run `class_prepared` receivers at a moment of your choosing (as
/// Django runs them while importing models) rather than inside the first write. See
/// [`ClassPrepared`] for an example.
pub fn prepare() {
    prepared();
}

/// The ORM's check at each use, one atomic load once the registry is prepared.
#[inline]
pub(crate) fn prepared() {
    if !PREPARED.is_completed() {
        prepare_now();
    }
}

static PREPARED: Once = Once::new();

thread_local! {
    /// Whether this thread is sending the `class_prepared` signals.
    static PREPARING: Cell<bool> = const { Cell::new(false) };
}

#[cold]
#[inline(never)]
fn prepare_now() {
    /// Clears `PREPARING`, also if a send unwinds.
    struct Done;
    impl Drop for Done {
        fn drop(&mut self) {
            PREPARING.set(false);
        }
    }
    if PREPARING.get() {
        // A `class_prepared` receiver using the ORM: the sends are this thread's own, under
        // way; waiting for them would never end.
        return;
    }
    // `force`: should a send ever unwind, the next use tries again rather than panicking.
    PREPARED.call_once_force(|_| {
        PREPARING.set(true);
        let _done = Done;
        let registry = ClassPrepared::registry();
        for entry in entries() {
            let sender = (entry.sender)();
            // Unheard, nothing is sent, so that a program without receivers is told so at its
            // first send of its own (the dispatcher's check of unlinked receivers crates).
            if registry.has_listeners(sender) {
                let event = ClassPrepared { meta: entry.meta };
                let _outcomes = registry.send_robust_sync(sender, &event);
            }
        }
    });
}
