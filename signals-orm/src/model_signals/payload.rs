//! What receivers of the model signals get during the write: `PreSave<'_, User>` with
//! `sender = User`, `PreSave<'_, dyn AnyModel>` without a sender, optionally followed by the
//! write's transaction (`&mut Tx<Sqlite>`, `&mut Tx<Postgres>` or `AnyTx`).

use std::any::Any;
use std::fmt;

use signals_core::__private::AnySender;
use signals_core::extract::FromEvent;
use signals_core::{BoxError, Signal};

use super::{
    DeleteEvent, PostDeleteSignal, PostSaveSignal, PreDeleteSignal, PreSaveSignal, SaveEvent,
};
use crate::Backend;
use crate::model::{AnyModel, Model, ModelMeta, changed_fields};
use crate::tx::{AnyTx, Tx, TxHandle};

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

/// The bit of [`FromEvent::NEEDS`](signals_core::extract::FromEvent::NEEDS) by which a
/// payload asks a save to read the row's previous values: [`Changes`] sets it.
pub(crate) const PREVIOUS_ROW: u8 = 1;

/// What a save knows of its row as it was before the write, in its event: read only when a
/// receiver of the model asks for it ([`PREVIOUS_ROW`]).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Previous<'e> {
    /// Not read: no receiver of the model's `pre_save` or `post_save` asked for it when the
    /// write began.
    Unread,
    /// There was no row: an INSERT, or an UPDATE whose key the SELECT found no row for.
    Absent,
    /// The row as the write read it before `pre_save`.
    Row(&'e dyn AnyModel),
}

impl<'e> Previous<'e> {
    /// `Row(previous)` for `Some`, `Absent` for `None`: a previous row that was looked for.
    pub(crate) fn read(previous: Option<&'e dyn AnyModel>) -> Self {
        previous.map_or(Previous::Absent, Previous::Row)
    }
}

/// What a save changes: the instance, the row as it was before the write, and the fields that
/// differ. A payload of `pre_save` and `post_save`, which a receiver asks for by taking it
/// instead of [`PreSave`] or [`PostSave`] (Rails' `saved_changes` and
/// `saved_change_to_status?`, Laravel's `getOriginal` and `isDirty`; Django has none, and its
/// users read the old row in a `pre_save` receiver themselves).
///
/// **How the previous values are obtained.** Before an UPDATE, the save asks the registry
/// whether any `pre_save` or `post_save` receiver of the model takes `Changes`; only then it
/// reads the row by its key in the write's transaction, before `pre_save` (`SELECT .. WHERE
/// key = $1`, `FOR UPDATE` on PostgreSQL, so the row cannot change before the UPDATE; on
/// SQLite `BEGIN IMMEDIATE` already keeps other writers out). That SELECT is the whole cost,
/// one round trip per save, and receivers that take `PreSave` or `PostSave` never cause it.
/// A filtered update ([`Query::update`](crate::query::Query::update)) and
/// [`bulk_update`](crate::ModelExt::bulk_update) read the previous rows of a chunk in one
/// SELECT; an INSERT reads nothing. Details and the Django difference: `docs/orm.md`, "What
/// changed".
///
/// **What counts as changed**: a saved field whose value differs between [`previous`] and the
/// instance, compared with `PartialEq` where the field's type implements it; a field whose
/// type does not is always listed (it is rewritten with the row). Only fields the write saves
/// are listed (`update_fields`). Without a previous row (an INSERT, or an UPDATE of a row that
/// was gone) every saved field is listed. In `pre_save`, the instance is compared as the
/// receiver gets it, with what receivers before it changed (it is what will be written, unless
/// later receivers change it); in `post_save`, as written, after every `pre_save` receiver.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use signals_orm::{receiver, Changes, Model, ModelExt};
///
/// #[derive(Model, sqlx::FromRow, Clone, Debug)]
/// #[model(table = "orders")]
/// struct Order {
///     #[model(primary_key)]
///     id: Option<i64>,
///     status: String,
///     paid_at: Option<String>,
/// }
///
/// // Stamps an order when its status goes from pending to paid, and only then.
/// #[receiver(pre_save, sender = Order)]
/// fn stamp_paid(mut ev: Changes<'_, Order>) {
///     if ev.went(|o| &o.status, "pending", "paid") {
///         if let Some(order) = ev.instance_mut() {
///             order.paid_at = Some("now".into());
///         }
///     }
/// }
///
/// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
/// sqlx::raw_sql("CREATE TABLE orders (id INTEGER PRIMARY KEY, status TEXT NOT NULL, paid_at TEXT)")
///     .execute(&pool)
///     .await?;
/// let mut order = Order { id: None, status: "pending".into(), paid_at: None };
/// order.save(&pool).await?; // an INSERT: no previous row, so nothing went anywhere
/// assert_eq!(order.paid_at, None);
/// order.status = "paid".into();
/// order.save(&pool).await?; // SELECT of the row, pre_save, UPDATE, post_save
/// assert_eq!(order.paid_at.as_deref(), Some("now"));
///
/// // A unit test calls the receiver with a payload it builds, without a database:
/// let before = Order { id: Some(2), status: "pending".into(), paid_at: None };
/// let mut after = Order { status: "paid".into(), ..before.clone() };
/// stamp_paid(Changes::pre_save(&mut after, Some(&before)));
/// assert_eq!(after.paid_at.as_deref(), Some("now"));
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
///
/// `M` is a model (with `sender = M`), or `dyn AnyModel` for a receiver of every model (an
/// audit log writing what changed). With the write's transaction as second parameter, as the
/// other payloads: `(ev: Changes<'_, Order>, tx: &mut Tx<Sqlite>)`.
///
/// [`previous`]: Changes::previous
#[derive(Debug)]
#[non_exhaustive]
pub struct Changes<'e, M: ?Sized> {
    instance: Instance<'e, M>,
    /// The row as it was before this write, read in the write's transaction before `pre_save`;
    /// `None` when there was none: an INSERT, or an UPDATE whose row was gone (deleted by
    /// another transaction before this save locked it: `save` then INSERTs it again, with
    /// `created`; `save_fields` fails with [`OrmError::NotUpdated`](crate::OrmError::NotUpdated)
    /// after `pre_save`).
    pub previous: Option<&'e M>,
    changed: Vec<&'static str>,
    /// Whether the write is an INSERT: in `post_save`, [`PostSave::created`]; in `pre_save`,
    /// [`PreSave::adding`] (it certainly will be).
    pub created: bool,
    /// `true` for fixture loading (`save_raw`).
    pub raw: bool,
    /// The fields being saved, `None` for all of them; [`changed_fields`](Self::changed_fields)
    /// lists only these.
    pub update_fields: Option<&'e [&'static str]>,
    /// The backend (`"sqlite"` or `"postgres"`), Django's `using`.
    pub using: &'static str,
}

/// The instance of a [`Changes`]: `pre_save` lends it mutably (changes are written), `post_save`
/// shows it as written.
#[derive(Debug)]
enum Instance<'e, M: ?Sized> {
    Mut(&'e mut M),
    Shared(&'e M),
}

impl<'e, M: ModelRef + ?Sized> Changes<'e, M> {
    /// A `pre_save` payload, to call a receiver directly (a unit test): `instance` about to be
    /// written over `previous` (`None`: an INSERT, `created` then true). `raw = false`, every
    /// field (`update_fields = None`), `using = "sqlite"`; the `with_*` methods change them.
    /// The changed fields are computed as a save computes them.
    #[must_use]
    pub fn pre_save(instance: &'e mut M, previous: Option<&'e M>) -> Self {
        let changed = changed_fields(instance.erased(), previous.map(M::erased), None);
        Self::build(Instance::Mut(instance), previous, changed)
    }

    /// A `post_save` payload, to call a receiver directly (a unit test): `instance` as written
    /// over `previous` (`None`: an INSERT, `created` then true); the rest as
    /// [`pre_save`](Self::pre_save).
    #[must_use]
    pub fn post_save(instance: &'e M, previous: Option<&'e M>) -> Self {
        let changed = changed_fields(instance.erased(), previous.map(M::erased), None);
        Self::build(Instance::Shared(instance), previous, changed)
    }

    fn build(
        instance: Instance<'e, M>,
        previous: Option<&'e M>,
        changed: Vec<&'static str>,
    ) -> Self {
        Changes {
            instance,
            created: previous.is_none(),
            previous,
            changed,
            raw: false,
            update_fields: None,
            using: DEFAULT_USING,
        }
    }

    /// Sets `update_fields`, and lists only those among the changed fields (as
    /// `save_fields(fields, ..)` sends).
    #[must_use]
    pub fn with_update_fields(mut self, fields: &'e [&'static str]) -> Self {
        self.update_fields = Some(fields);
        self.changed = changed_fields(
            self.instance().erased(),
            self.previous.map(M::erased),
            Some(fields),
        );
        self
    }
}

impl<M: ?Sized> Changes<'_, M> {
    /// The instance: in `pre_save`, as it will be written (so far); in `post_save`, as written.
    #[must_use]
    pub fn instance(&self) -> &M {
        match &self.instance {
            Instance::Mut(instance) => instance,
            Instance::Shared(instance) => instance,
        }
    }

    /// The instance to change, in `pre_save` (what a receiver changes is written, as through
    /// [`PreSave::instance`]); `None` in `post_save`, after the write.
    ///
    /// [`changed_fields`](Self::changed_fields) was computed when this receiver was called and
    /// does not follow what it changes here; `post_save` receivers see it.
    #[must_use]
    pub fn instance_mut(&mut self) -> Option<&mut M> {
        match &mut self.instance {
            Instance::Mut(instance) => Some(instance),
            Instance::Shared(_) => None,
        }
    }

    /// The saved fields whose values differ from the previous row, in declaration order (every
    /// saved field when there is no previous row), among [`update_fields`](Self::update_fields)
    /// when given. Fields whose type is not `PartialEq` are always listed.
    #[must_use]
    pub fn changed_fields(&self) -> &[&'static str] {
        &self.changed
    }

    /// Whether field `field` (its Rust name) is among the [changed fields](Self::changed_fields)
    /// (Rails' `saved_change_to_status?`, Laravel's `isDirty('status')`).
    #[must_use]
    pub fn changed(&self, field: &str) -> bool {
        self.changed.contains(&field)
    }

    /// The previous value of a field, `None` without a previous row (Laravel's
    /// `getOriginal('status')`): `ev.was(|o| &o.status)`.
    #[must_use]
    pub fn was<T: ?Sized>(&self, field: impl Fn(&M) -> &T) -> Option<&T> {
        self.previous.map(field)
    }

    /// Whether a field went from `from` to `to` in this write: the previous row had `from`
    /// and the instance has `to` (Rails' `saved_change_to_status?(from:, to:)`). `false` for an
    /// INSERT, which has no previous row. The filter of a receiver that acts on one
    /// transition: `if !ev.went(|o| &o.status, Status::Pending, Status::Paid) { return }`.
    #[must_use]
    #[expect(
        clippy::needless_pass_by_value,
        reason = "`went(|o| &o.status, Status::Pending, Status::Paid)` reads best with values"
    )]
    pub fn went<T, A, B>(&self, field: impl Fn(&M) -> &T, from: A, to: B) -> bool
    where
        T: ?Sized + PartialEq<A> + PartialEq<B>,
    {
        self.previous
            .is_some_and(|previous| *field(previous) == from && *field(self.instance()) == to)
    }

    /// Whether a field has value `to` now and did not before: it went to `to` from any other
    /// value, or the row is new (an INSERT with `to`). `ev.became(|o| &o.status, Status::Paid)`.
    #[must_use]
    #[expect(
        clippy::needless_pass_by_value,
        reason = "`became(|o| &o.status, Status::Paid)` reads best with a value"
    )]
    pub fn became<T, A>(&self, field: impl Fn(&M) -> &T, to: A) -> bool
    where
        T: ?Sized + PartialEq<A>,
    {
        *field(self.instance()) == to && self.previous.is_none_or(|previous| *field(previous) != to)
    }

    /// Sets `created` (as an INSERT's payload has it: `true`).
    #[must_use]
    pub fn with_created(mut self, created: bool) -> Self {
        self.created = created;
        self
    }

    /// Sets `raw` (`true`: fixture loading, as `save_raw` sends).
    #[must_use]
    pub fn with_raw(mut self, raw: bool) -> Self {
        self.raw = raw;
        self
    }

    /// Sets `using`, the backend's name (`"sqlite"` or `"postgres"`).
    #[must_use]
    pub fn with_using(mut self, using: &'static str) -> Self {
        self.using = using;
        self
    }
}

/// The signals whose receivers may take [`Changes`]: `pre_save` and `post_save`.
#[diagnostic::on_unimplemented(
    message = "`Changes` is a payload of `pre_save` and `post_save` only, not of `{Self}`",
    label = "`Changes` is given to the receivers of a save",
    note = "`#[receiver(post_save, sender = Order)]` (or `pre_save`) takes `Changes<'_, Order>`: the row before the write and the fields that changed",
    note = "a delete's receivers take `PreDelete<'_, Order>` or `PostDelete<'_, Order>`, whose instance is the row as it was"
)]
#[doc(hidden)]
pub trait SaveSignal: Signal {
    /// Sent before the write (`pre_save`): the instance is lent mutably.
    const BEFORE_WRITE: bool;
    /// The event as what it is.
    fn save_event(event: Self::Event<'_>) -> SaveEvent<'_>;
}

impl SaveSignal for PreSaveSignal {
    const BEFORE_WRITE: bool = true;
    fn save_event(event: <Self as Signal>::Event<'_>) -> SaveEvent<'_> {
        event
    }
}

impl SaveSignal for PostSaveSignal {
    const BEFORE_WRITE: bool = false;
    fn save_event(event: <Self as Signal>::Event<'_>) -> SaveEvent<'_> {
        event
    }
}

/// The error of a `Changes` receiver reached by a write that did not read the previous row:
/// one connected while the write ran, after it asked whether anybody needs the row.
fn unread<T: ?Sized>(model: &str) -> BoxError {
    format!(
        "`{}` needs the row's previous values, and this write of `{model}` did not read them: no receiver asked for them when it began (was this receiver connected during the write?)",
        std::any::type_name::<Changes<'_, T>>()
    )
    .into()
}

// Generic over the signal, bounded by `SaveSignal`: `Changes` taken by a receiver of another
// signal is reported with `SaveSignal`'s message. The forms with a transaction are per signal
// (a tuple is no local type, so they cannot be generic over it), and refused for the delete
// signals through the same bound.
impl<'e, S: SaveSignal, T: ModelRef + ?Sized> FromEvent<'e, S, T::Sender> for Changes<'e, T> {
    const NEEDS: u8 = PREVIOUS_ROW;
    fn from_event(event: S::Event<'e>) -> Result<Self, BoxError> {
        Ok(changes::<S, T>(event)?.0)
    }
}

/// The forms of [`Changes`] with the write's transaction, for signal `$signal`.
macro_rules! changes_with_tx {
    ($($signal:ty),*) => {$(
        impl<'e, T: ModelRef + ?Sized, DB: Backend> FromEvent<'e, $signal, T::Sender>
            for (Changes<'e, T>, &'e mut Tx<DB>)
        where
            $signal: SaveSignalOf<T>,
        {
            const NEEDS: u8 = PREVIOUS_ROW;
            fn from_event(event: <$signal as Signal>::Event<'e>) -> Result<Self, BoxError> {
                let (payload, tx) = <$signal as SaveSignalOf<T>>::changes(event)?;
                Ok((payload, crate::tx::tx_of::<DB>(tx)?))
            }
        }

        impl<'e, T: ModelRef + ?Sized> FromEvent<'e, $signal, T::Sender> for (Changes<'e, T>, AnyTx<'e>)
        where
            $signal: SaveSignalOf<T>,
        {
            const NEEDS: u8 = PREVIOUS_ROW;
            fn from_event(event: <$signal as Signal>::Event<'e>) -> Result<Self, BoxError> {
                let (payload, tx) = <$signal as SaveSignalOf<T>>::changes(event)?;
                Ok((payload, AnyTx::of(tx)?))
            }
        }
    )*};
}

changes_with_tx!(
    PreSaveSignal,
    PostSaveSignal,
    PreDeleteSignal,
    PostDeleteSignal
);

/// [`SaveSignal`] for a payload about `T`: a bound that mentions `T`, so that the impls of the
/// delete signals above may carry it although it never holds for them.
#[doc(hidden)]
pub trait SaveSignalOf<T: ?Sized>: Signal {
    /// The payload and the transaction.
    ///
    /// # Errors
    ///
    /// As [`Changes`]'s `FromEvent`.
    fn changes(event: Self::Event<'_>) -> Split<'_, Changes<'_, T>>;
}

impl<S: SaveSignal, T: ModelRef + ?Sized> SaveSignalOf<T> for S {
    fn changes(event: Self::Event<'_>) -> Split<'_, Changes<'_, T>> {
        changes::<S, T>(event)
    }
}

fn changes<S: SaveSignal, T: ModelRef + ?Sized>(ev: S::Event<'_>) -> Split<'_, Changes<'_, T>> {
    let SaveEvent {
        instance,
        created,
        raw,
        update_fields,
        previous,
        tx,
    } = S::save_event(ev);
    let model = instance.meta().name;
    let previous = match previous {
        Previous::Unread => return Err(unread::<T>(model)),
        Previous::Absent => None,
        Previous::Row(row) => Some(row),
    };
    let changed = changed_fields(&*instance, previous, update_fields);
    let previous = previous.map(narrow::<T>).transpose()?;
    let instance = if S::BEFORE_WRITE {
        Instance::Mut(T::narrow_mut(instance).ok_or_else(|| wrong_sender::<T>(model))?)
    } else {
        Instance::Shared(narrow::<T>(instance)?)
    };
    let payload = Changes {
        instance,
        previous,
        changed,
        created,
        raw,
        update_fields,
        using: tx.backend(),
    };
    Ok((payload, tx))
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
/// turns the event into the payload and the write's transaction; `needs` (optional) is the
/// payload's `FromEvent::NEEDS`, which the impls with a transaction report too. Used by every
/// ORM signal.
macro_rules! tx_payloads {
    ($([$($generics:tt)*] $signal:ty, $sender:ty => $payload:ty = $split:expr $(, needs $needs:expr)?;)*) => {$(
        impl<'e, $($generics)*> ::signals_core::extract::FromEvent<'e, $signal, $sender> for $payload {
            $(const NEEDS: u8 = $needs;)?
            fn from_event(
                event: <$signal as ::signals_core::Signal>::Event<'e>,
            ) -> Result<Self, ::signals_core::BoxError> {
                Ok(($split)(event)?.0)
            }
        }

        impl<'e, $($generics)* DB: $crate::Backend> ::signals_core::extract::FromEvent<'e, $signal, $sender>
            for ($payload, &'e mut $crate::Tx<DB>)
        {
            $(const NEEDS: u8 = $needs;)?
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
            $(const NEEDS: u8 = $needs;)?
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
        ..
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
        ..
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
