//! Many-to-many relations through a link table, and `m2m_changed` with Django's action rules
//! (`shared/django-semantics.md`, Part E).
//!
//! A relation is a type implementing [`Through`] (declared with [`many_to_many!`]); it is the
//! signal's sender, as Django's `through` model is. Its managers ([`Through::of`] from the
//! declaring side, [`Through::of_target`] from the other) add, remove, clear and set links, each
//! in one transaction, and fetch the related objects.
//!
//! [`many_to_many!`]: crate::many_to_many

use std::any::Any;
use std::collections::BTreeSet;
use std::fmt;
use std::marker::PhantomData;

use signals_core::{AnySender, BoxError, FromEvent, Registry, Sender, Signal};

use crate::backend::Backend;
use crate::error::OrmError;
use crate::model::{AnyModel, Model, ModelMeta, Persist};
use crate::signals::AnyTx;
use crate::tx::{Db, Tx, TxHandle};

/// A many-to-many relation: the link table between `Source` (the side that declares it) and
/// `Target`. Implemented by [`many_to_many!`](crate::many_to_many).
pub trait Through: Send + Sync + 'static {
    /// The declaring model (Django: the model with the `ManyToManyField`).
    type Source: Model;
    /// The related model.
    type Target: Model;
    /// The relation's name (the through type's).
    const NAME: &'static str;
    /// Whether a self-relation links both ways (Django's `symmetrical`).
    const SYMMETRICAL: bool;
    /// The link table's statements.
    const SQL: &'static ThroughSql;

    /// The manager of `instance`'s links to targets (Django's `post.tags`).
    fn of(instance: &Self::Source) -> Related<'_, Self, Forward>
    where
        Self: Sized,
    {
        Related {
            instance,
            through: PhantomData,
        }
    }

    /// The manager of `instance`'s links from sources (Django's reverse `tag.posts`).
    fn of_target(instance: &Self::Target) -> Related<'_, Self, Reverse>
    where
        Self: Sized,
    {
        Related {
            instance,
            through: PhantomData,
        }
    }
}

/// The statements of a link table, built at compile time by [`many_to_many!`](crate::many_to_many).
#[derive(Debug)]
pub struct ThroughSql {
    /// The link table.
    pub table: &'static str,
    /// The column holding the source's key.
    pub source_column: &'static str,
    /// The column holding the target's key.
    pub target_column: &'static str,
    /// `SELECT target FROM links WHERE source = $1`.
    pub targets_of: &'static str,
    /// `SELECT source FROM links WHERE target = $1`.
    pub sources_of: &'static str,
    /// `INSERT INTO links (source, target) VALUES ($1, $2) ON CONFLICT DO NOTHING`.
    pub insert: &'static str,
    /// `DELETE FROM links WHERE source = $1 AND target = $2`.
    pub delete: &'static str,
    /// `DELETE FROM links WHERE source = $1`.
    pub clear_source: &'static str,
    /// `DELETE FROM links WHERE target = $1`.
    pub clear_target: &'static str,
    /// Symmetrical relations: `DELETE ... WHERE (source = $1 AND target = $2) OR (source = $2 AND target = $1)`.
    pub delete_both: &'static str,
    /// Symmetrical relations: `DELETE ... WHERE source = $1 OR target = $1`.
    pub clear_both: &'static str,
}

/// Django's `m2m_changed` actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum M2mAction {
    /// Before links are added.
    PreAdd,
    /// After links are added.
    PostAdd,
    /// Before links are removed.
    PreRemove,
    /// After links are removed.
    PostRemove,
    /// Before all links of the instance are removed.
    PreClear,
    /// After all links of the instance are removed.
    PostClear,
}

impl M2mAction {
    /// Django's name (`pre_add`, ...).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            M2mAction::PreAdd => "pre_add",
            M2mAction::PostAdd => "post_add",
            M2mAction::PreRemove => "pre_remove",
            M2mAction::PostRemove => "post_remove",
            M2mAction::PreClear => "pre_clear",
            M2mAction::PostClear => "post_clear",
        }
    }
}

impl fmt::Display for M2mAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The event behind `m2m_changed`.
#[doc(hidden)]
pub struct M2mEvent<'e> {
    instance: &'e dyn AnyModel,
    action: M2mAction,
    reverse: bool,
    model: &'static ModelMeta,
    through: &'static str,
    /// `&mut BTreeSet<K>` of the other side's keys; `None` for clear.
    pk_set: Option<&'e mut (dyn Any + Send)>,
    keys_json: fn(&(dyn Any + Send)) -> Vec<serde_json::Value>,
    tx: &'e mut dyn TxHandle,
}

/// Sent around link-table writes (Django's `m2m_changed`); the sender is the relation's
/// [`Through`] type. A failing receiver rolls the whole operation back.
#[derive(Debug, Clone, Copy)]
pub struct M2mChangedSignal;

impl Signal for M2mChangedSignal {
    const NAME: &'static str = "m2m_changed";
    type Event<'e> = M2mEvent<'e>;

    fn reborrow<'s>(ev: &'s mut M2mEvent<'_>) -> M2mEvent<'s> {
        M2mEvent {
            instance: ev.instance,
            action: ev.action,
            reverse: ev.reverse,
            model: ev.model,
            through: ev.through,
            pk_set: match &mut ev.pk_set {
                Some(set) => Some(&mut **set),
                None => None,
            },
            keys_json: ev.keys_json,
            tx: &mut *ev.tx,
        }
    }

    fn registry() -> &'static Registry<Self> {
        static REGISTRY: Registry<M2mChangedSignal> = Registry::new();
        &REGISTRY
    }
}

/// `m2m_changed`'s payload for receivers with `sender = TheThrough`: Django's `action`,
/// `instance`, `reverse`, `model`, `pk_set`, `using`, typed for both directions.
#[non_exhaustive]
pub struct M2mChanged<'e, T: Through> {
    /// What is happening.
    pub action: M2mAction,
    /// The instance whose manager was used, and the other side's keys.
    pub side: M2mSide<'e, T>,
    /// The backend.
    pub using: &'static str,
}

/// Which side the manager was used from, with typed instance and keys.
pub enum M2mSide<'e, T: Through> {
    /// From the declaring model (`reverse = false`): keys of targets.
    Forward {
        /// The source instance.
        instance: &'e T::Source,
        /// Target keys: for add only those really inserted (may be empty), for remove every key
        /// passed, `None` for clear. A `pre_*` receiver may change it, and so what is written.
        pk_set: Option<&'e mut BTreeSet<<T::Target as Model>::Pk>>,
    },
    /// From the related model (`reverse = true`): keys of sources.
    Reverse {
        /// The target instance.
        instance: &'e T::Target,
        /// Source keys, with the same rules.
        pk_set: Option<&'e mut BTreeSet<<T::Source as Model>::Pk>>,
    },
}

impl<T: Through> M2mChanged<'_, T> {
    /// Django's `reverse`: true when the manager was used from the related side.
    #[must_use]
    pub fn reverse(&self) -> bool {
        matches!(self.side, M2mSide::Reverse { .. })
    }

    /// Django's `model`: the model of the keys in `pk_set`.
    #[must_use]
    pub fn model(&self) -> &'static ModelMeta {
        if self.reverse() {
            <T::Source as Model>::META
        } else {
            <T::Target as Model>::META
        }
    }
}

impl<T: Through> fmt::Debug for M2mChanged<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("M2mChanged")
            .field("through", &T::NAME)
            .field("action", &self.action)
            .field("reverse", &self.reverse())
            .finish_non_exhaustive()
    }
}

fn narrowed<M: Model>(instance: &dyn AnyModel) -> Result<&M, BoxError> {
    instance.downcast_ref::<M>().ok_or_else(|| {
        format!(
            "m2m_changed payload is a `{}`, not a `{}`",
            instance.meta().name,
            M::META.name
        )
        .into()
    })
}

fn keys<K: 'static>(
    set: Option<&mut (dyn Any + Send)>,
) -> Result<Option<&mut BTreeSet<K>>, BoxError> {
    match set {
        None => Ok(None),
        Some(set) => (set as &mut dyn Any)
            .downcast_mut::<BTreeSet<K>>()
            .map(Some)
            .ok_or_else(|| "m2m_changed keys of another type".into()),
    }
}

/// The typed payload and the transaction of an `m2m_changed` event.
fn split<T: Through>(ev: M2mEvent<'_>) -> Result<(M2mChanged<'_, T>, &mut dyn TxHandle), BoxError> {
    let M2mEvent {
        instance,
        action,
        reverse,
        pk_set,
        tx,
        ..
    } = ev;
    let side = if reverse {
        M2mSide::Reverse {
            instance: narrowed::<T::Target>(instance)?,
            pk_set: keys(pk_set)?,
        }
    } else {
        M2mSide::Forward {
            instance: narrowed::<T::Source>(instance)?,
            pk_set: keys(pk_set)?,
        }
    };
    Ok((
        M2mChanged {
            action,
            side,
            using: tx.backend(),
        },
        tx,
    ))
}

impl<'e, T: Through> FromEvent<'e, M2mChangedSignal, T> for M2mChanged<'e, T> {
    fn from_event(ev: M2mEvent<'e>) -> Result<Self, BoxError> {
        Ok(split(ev)?.0)
    }
}

impl<'e, T: Through, DB: Backend> FromEvent<'e, M2mChangedSignal, T>
    for (M2mChanged<'e, T>, &'e mut Tx<DB>)
{
    fn from_event(ev: M2mEvent<'e>) -> Result<Self, BoxError> {
        let (payload, tx) = split(ev)?;
        Ok((payload, crate::signals::tx_of::<DB>(tx)?))
    }
}

impl<'e, T: Through> FromEvent<'e, M2mChangedSignal, T> for (M2mChanged<'e, T>, AnyTx<'e>) {
    fn from_event(ev: M2mEvent<'e>) -> Result<Self, BoxError> {
        let (payload, tx) = split(ev)?;
        Ok((payload, AnyTx::of(tx)?))
    }
}

/// `m2m_changed`'s payload for receivers without sender: every relation, type-erased.
#[derive(Debug)]
#[non_exhaustive]
pub struct AnyM2mChanged<'e> {
    /// What is happening.
    pub action: M2mAction,
    /// The relation's name.
    pub through: &'static str,
    /// The instance whose manager was used.
    pub instance: &'e dyn AnyModel,
    /// Django's `reverse`.
    pub reverse: bool,
    /// The model of the keys.
    pub model: &'static ModelMeta,
    /// The keys as JSON, `None` for clear (read-only here).
    pub pk_set: Option<Vec<serde_json::Value>>,
    /// The backend.
    pub using: &'static str,
}

fn split_any(ev: M2mEvent<'_>) -> (AnyM2mChanged<'_>, &mut dyn TxHandle) {
    let M2mEvent {
        instance,
        action,
        reverse,
        model,
        through,
        pk_set,
        keys_json,
        tx,
    } = ev;
    let pk_set = pk_set.map(|set| keys_json(set));
    (
        AnyM2mChanged {
            action,
            through,
            instance,
            reverse,
            model,
            pk_set,
            using: tx.backend(),
        },
        tx,
    )
}

impl<'e> FromEvent<'e, M2mChangedSignal, AnySender> for AnyM2mChanged<'e> {
    fn from_event(ev: M2mEvent<'e>) -> Result<Self, BoxError> {
        Ok(split_any(ev).0)
    }
}

impl<'e, DB: Backend> FromEvent<'e, M2mChangedSignal, AnySender>
    for (AnyM2mChanged<'e>, &'e mut Tx<DB>)
{
    fn from_event(ev: M2mEvent<'e>) -> Result<Self, BoxError> {
        let (payload, tx) = split_any(ev);
        Ok((payload, crate::signals::tx_of::<DB>(tx)?))
    }
}

impl<'e> FromEvent<'e, M2mChangedSignal, AnySender> for (AnyM2mChanged<'e>, AnyTx<'e>) {
    fn from_event(ev: M2mEvent<'e>) -> Result<Self, BoxError> {
        let (payload, tx) = split_any(ev);
        Ok((payload, AnyTx::of(tx)?))
    }
}

fn keys_json<K: serde::Serialize + 'static>(set: &(dyn Any + Send)) -> Vec<serde_json::Value> {
    (set as &dyn Any)
        .downcast_ref::<BTreeSet<K>>()
        .map(|set| set.iter().map(crate::model::json).collect())
        .unwrap_or_default()
}

/// From the declaring side (`reverse = false`).
#[derive(Debug)]
pub enum Forward {}
/// From the related side (`reverse = true`).
#[derive(Debug)]
pub enum Reverse {}

/// One side of a relation: which model holds the manager and which one is related.
pub trait Direction<T: Through>: Send + Sync + 'static {
    /// The manager's model.
    type Own: Model;
    /// The related model.
    type Other: Model;
    /// Django's `reverse`.
    const REVERSE: bool;
    #[doc(hidden)]
    fn select_others(sql: &ThroughSql) -> &'static str;
    #[doc(hidden)]
    fn other_column(sql: &ThroughSql) -> &'static str;
    #[doc(hidden)]
    fn clear(sql: &ThroughSql) -> &'static str;
}

impl<T: Through> Direction<T> for Forward {
    type Own = T::Source;
    type Other = T::Target;
    const REVERSE: bool = false;
    fn select_others(sql: &ThroughSql) -> &'static str {
        sql.targets_of
    }
    fn other_column(sql: &ThroughSql) -> &'static str {
        sql.target_column
    }
    fn clear(sql: &ThroughSql) -> &'static str {
        sql.clear_source
    }
}

impl<T: Through> Direction<T> for Reverse {
    type Own = T::Target;
    type Other = T::Source;
    const REVERSE: bool = true;
    fn select_others(sql: &ThroughSql) -> &'static str {
        sql.sources_of
    }
    fn other_column(sql: &ThroughSql) -> &'static str {
        sql.source_column
    }
    fn clear(sql: &ThroughSql) -> &'static str {
        sql.clear_target
    }
}

/// The links of one instance: Django's related manager (`post.tags`, `tag.posts`).
pub struct Related<'i, T: Through, D: Direction<T>> {
    instance: &'i D::Own,
    through: PhantomData<fn() -> (T, D)>,
}

type OtherPk<T, D> = <<D as Direction<T>>::Other as Model>::Pk;

impl<T, D> Related<'_, T, D>
where
    T: Through,
    D: Direction<T>,
    OtherPk<T, D>: Ord,
{
    fn own_pk(&self) -> Result<<D::Own as Model>::Pk, OrmError> {
        self.instance.pk().ok_or(OrmError::NoPrimaryKey {
            model: D::Own::META.name,
            action: "linked",
        })
    }

    /// Keys of the related objects.
    ///
    /// # Errors
    ///
    /// [`OrmError::NoPrimaryKey`] for an unsaved instance, or the database's error.
    pub async fn keys<'a, DB: Backend>(
        &self,
        db: impl Into<Db<'a, DB>>,
    ) -> Result<BTreeSet<OtherPk<T, D>>, OrmError>
    where
        D::Own: Persist<DB>,
        D::Other: Persist<DB>,
    {
        let own = self.own_pk()?;
        let query = <D::Own as Persist<DB>>::bind_pk(&own, sqlx::query(D::select_others(T::SQL)));
        let rows = match db.into() {
            Db::Pool(pool) => DB::fetch_all(&mut *pool.acquire().await?, query).await?,
            Db::Tx(tx) => DB::fetch_all(tx, query).await?,
        };
        Ok(rows
            .iter()
            .map(<D::Other as Persist<DB>>::pk_from_row)
            .collect::<Result<_, _>>()?)
    }

    /// The related objects, ordered by key.
    ///
    /// # Errors
    ///
    /// [`OrmError::NoPrimaryKey`] for an unsaved instance, or the database's error.
    pub async fn all<'a, DB: Backend>(
        &self,
        db: impl Into<Db<'a, DB>>,
    ) -> Result<Vec<D::Other>, OrmError>
    where
        D::Own: Persist<DB>,
        D::Other: Persist<DB>,
    {
        let own = self.own_pk()?;
        let meta = D::Other::META;
        // `SELECT cols FROM other WHERE pk = $1` becomes `... WHERE pk IN (SELECT link ...)`.
        let select = meta
            .sql
            .select_by_pk
            .strip_suffix(" = $1")
            .unwrap_or(meta.sql.select_by_pk);
        let sql = format!(
            "{select} IN ({}) ORDER BY {}",
            D::select_others(T::SQL),
            crate::model::quote(meta.pk_column)
        );
        let query = <D::Own as Persist<DB>>::bind_pk(&own, sqlx::query(sqlx::AssertSqlSafe(sql)));
        let rows = match db.into() {
            Db::Pool(pool) => DB::fetch_all(&mut *pool.acquire().await?, query).await?,
            Db::Tx(tx) => DB::fetch_all(tx, query).await?,
        };
        Ok(rows
            .iter()
            .map(<D::Other as Persist<DB>>::from_row)
            .collect::<Result<_, _>>()?)
    }

    /// Links `keys` (Django's `add`): `pre_add` and `post_add` carry only the keys not linked
    /// yet, and fire even when that is none; no keys at all sends nothing. Returns the links
    /// inserted.
    ///
    /// # Errors
    ///
    /// [`OrmError::NoPrimaryKey`] for an unsaved instance, the database's error (a key that
    /// does not exist violates the link table's foreign key), or a receiver's; the operation is
    /// undone.
    pub async fn add<'a, DB: Backend>(
        &self,
        db: impl Into<Db<'a, DB>>,
        keys: impl IntoIterator<Item = OtherPk<T, D>>,
    ) -> Result<usize, OrmError>
    where
        D::Own: Persist<DB>,
        D::Other: Persist<DB>,
    {
        let wanted: BTreeSet<_> = keys.into_iter().collect();
        if wanted.is_empty() {
            return Ok(0);
        }
        let own = self.own_pk()?;
        let db = db.into();
        atomically!(db, |tx| self.add_in(tx, &own, wanted).await)
    }

    /// Unlinks `keys` (Django's `remove`): `pre_remove` and `post_remove` carry every key passed,
    /// linked or not. Returns the links deleted.
    ///
    /// # Errors
    ///
    /// As [`add`](Related::add).
    pub async fn remove<'a, DB: Backend>(
        &self,
        db: impl Into<Db<'a, DB>>,
        keys: impl IntoIterator<Item = OtherPk<T, D>>,
    ) -> Result<u64, OrmError>
    where
        D::Own: Persist<DB>,
        D::Other: Persist<DB>,
    {
        let keys: BTreeSet<_> = keys.into_iter().collect();
        if keys.is_empty() {
            return Ok(0);
        }
        let own = self.own_pk()?;
        let db = db.into();
        atomically!(db, |tx| self.remove_in(tx, &own, keys).await)
    }

    /// Unlinks everything (Django's `clear`): `pre_clear` and `post_clear` with no keys, sent
    /// even when there was nothing to clear. Returns the links deleted.
    ///
    /// # Errors
    ///
    /// As [`add`](Related::add).
    pub async fn clear<'a, DB: Backend>(&self, db: impl Into<Db<'a, DB>>) -> Result<u64, OrmError>
    where
        D::Own: Persist<DB>,
        D::Other: Persist<DB>,
    {
        let own = self.own_pk()?;
        let db = db.into();
        atomically!(db, |tx| self.clear_in(tx, &own).await)
    }

    /// Makes the links exactly `keys` (Django's `set`): removes the links not wanted, then adds
    /// the missing ones; sends nothing when nothing changes.
    ///
    /// # Errors
    ///
    /// As [`add`](Related::add).
    pub async fn set<'a, DB: Backend>(
        &self,
        db: impl Into<Db<'a, DB>>,
        keys: impl IntoIterator<Item = OtherPk<T, D>>,
    ) -> Result<(), OrmError>
    where
        D::Own: Persist<DB>,
        D::Other: Persist<DB>,
    {
        let wanted: BTreeSet<_> = keys.into_iter().collect();
        let own = self.own_pk()?;
        let db = db.into();
        atomically!(db, |tx| async {
            let current = self.keys(&mut *tx).await?;
            let gone: BTreeSet<_> = current.difference(&wanted).cloned().collect();
            let new: BTreeSet<_> = wanted.difference(&current).cloned().collect();
            if !gone.is_empty() {
                self.remove_in(tx, &own, gone).await?;
            }
            if !new.is_empty() {
                self.add_in(tx, &own, new).await?;
            }
            Ok::<(), OrmError>(())
        }
        .await)
    }

    /// Clears, then adds `keys` (Django's `set(clear=True)`).
    ///
    /// # Errors
    ///
    /// As [`add`](Related::add).
    pub async fn set_clear<'a, DB: Backend>(
        &self,
        db: impl Into<Db<'a, DB>>,
        keys: impl IntoIterator<Item = OtherPk<T, D>>,
    ) -> Result<(), OrmError>
    where
        D::Own: Persist<DB>,
        D::Other: Persist<DB>,
    {
        let wanted: BTreeSet<_> = keys.into_iter().collect();
        let own = self.own_pk()?;
        let db = db.into();
        atomically!(db, |tx| async {
            self.clear_in(tx, &own).await?;
            if !wanted.is_empty() {
                self.add_in(tx, &own, wanted).await?;
            }
            Ok::<(), OrmError>(())
        }
        .await)
    }

    async fn send<DB: Backend>(
        &self,
        tx: &mut Tx<DB>,
        action: M2mAction,
        pk_set: Option<&mut BTreeSet<OtherPk<T, D>>>,
    ) -> Result<(), OrmError> {
        let event = M2mEvent {
            instance: self.instance,
            action,
            reverse: D::REVERSE,
            model: D::Other::META,
            through: T::NAME,
            pk_set: pk_set.map(|set| set as &mut (dyn Any + Send)),
            keys_json: keys_json::<OtherPk<T, D>>,
            tx,
        };
        M2mChangedSignal::registry()
            .send(Sender::of::<T>(), event)
            .await?;
        Ok(())
    }

    async fn add_in<DB: Backend>(
        &self,
        tx: &mut Tx<DB>,
        own: &<D::Own as Model>::Pk,
        wanted: BTreeSet<OtherPk<T, D>>,
    ) -> Result<usize, OrmError>
    where
        D::Own: Persist<DB>,
        D::Other: Persist<DB>,
    {
        let current = self.keys(&mut *tx).await?;
        let mut missing: BTreeSet<_> = wanted.difference(&current).cloned().collect();
        self.send(tx, M2mAction::PreAdd, Some(&mut missing)).await?;
        for other in &missing {
            DB::execute(tx, Self::bind_pair::<DB>(own, other, T::SQL.insert)).await?;
        }
        self.send(tx, M2mAction::PostAdd, Some(&mut missing))
            .await?;
        if T::SYMMETRICAL {
            // The mirror rows come after post_add, as in Django.
            for other in &missing {
                DB::execute(tx, Self::bind_mirror::<DB>(own, other, T::SQL.insert)).await?;
            }
        }
        Ok(missing.len())
    }

    async fn remove_in<DB: Backend>(
        &self,
        tx: &mut Tx<DB>,
        own: &<D::Own as Model>::Pk,
        mut keys: BTreeSet<OtherPk<T, D>>,
    ) -> Result<u64, OrmError>
    where
        D::Own: Persist<DB>,
        D::Other: Persist<DB>,
    {
        self.send(tx, M2mAction::PreRemove, Some(&mut keys)).await?;
        let sql = if T::SYMMETRICAL {
            T::SQL.delete_both
        } else {
            T::SQL.delete
        };
        let mut deleted = 0;
        for other in &keys {
            deleted += DB::execute(tx, Self::bind_pair::<DB>(own, other, sql)).await?;
        }
        self.send(tx, M2mAction::PostRemove, Some(&mut keys))
            .await?;
        Ok(deleted)
    }

    async fn clear_in<DB: Backend>(
        &self,
        tx: &mut Tx<DB>,
        own: &<D::Own as Model>::Pk,
    ) -> Result<u64, OrmError>
    where
        D::Own: Persist<DB>,
    {
        self.send(tx, M2mAction::PreClear, None).await?;
        let sql = if T::SYMMETRICAL {
            T::SQL.clear_both
        } else {
            D::clear(T::SQL)
        };
        let deleted =
            DB::execute(tx, <D::Own as Persist<DB>>::bind_pk(own, sqlx::query(sql))).await?;
        self.send(tx, M2mAction::PostClear, None).await?;
        Ok(deleted)
    }

    /// `($1, $2)` = `(source key, target key)` for a link between own and other.
    fn bind_pair<'q, DB: Backend>(
        own: &<D::Own as Model>::Pk,
        other: &OtherPk<T, D>,
        sql: &'static str,
    ) -> sqlx::query::Query<'q, DB, DB::Arguments>
    where
        D::Own: Persist<DB>,
        D::Other: Persist<DB>,
    {
        let query = sqlx::query(sql);
        if D::REVERSE {
            <D::Own as Persist<DB>>::bind_pk(own, <D::Other as Persist<DB>>::bind_pk(other, query))
        } else {
            <D::Other as Persist<DB>>::bind_pk(other, <D::Own as Persist<DB>>::bind_pk(own, query))
        }
    }

    /// The mirror link `(other, own)` of a symmetrical self-relation.
    fn bind_mirror<'q, DB: Backend>(
        own: &<D::Own as Model>::Pk,
        other: &OtherPk<T, D>,
        sql: &'static str,
    ) -> sqlx::query::Query<'q, DB, DB::Arguments>
    where
        D::Own: Persist<DB>,
        D::Other: Persist<DB>,
    {
        <D::Own as Persist<DB>>::bind_pk(
            own,
            <D::Other as Persist<DB>>::bind_pk(other, sqlx::query(sql)),
        )
    }
}

impl<T: Through, D: Direction<T>> fmt::Debug for Related<'_, T, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Related")
            .field("through", &T::NAME)
            .field("reverse", &D::REVERSE)
            .finish_non_exhaustive()
    }
}

/// Declares a many-to-many relation and its link table; the declared type is the
/// `m2m_changed` sender.
///
/// ```ignore
/// signals_orm::many_to_many! {
///     /// Tags of a post.
///     pub struct PostTags(Post => "post_id", Tag => "tag_id") in "post_tags";
/// }
/// // A user's own `#[derive(Model)]` link type, extra columns filled by the database:
/// signals_orm::many_to_many! { impl Membership => (Person => "person_id", Group => "group_id") in "memberships"; }
/// // A symmetrical self-relation:
/// signals_orm::many_to_many! { pub struct Friends(Person => "person_id", Person => "friend_id") in "friends", symmetrical; }
/// ```
///
/// The link table needs a unique key on (source, target): adds use `ON CONFLICT DO NOTHING`.
#[macro_export]
macro_rules! many_to_many {
    ($(#[$meta:meta])* $vis:vis struct $name:ident ($src:ty => $scol:literal, $tgt:ty => $tcol:literal) in $table:literal $(, $sym:ident)? ;) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        $vis struct $name;
        $crate::many_to_many!(@impl $name, $src, $scol, $tgt, $tcol, $table $(, $sym)?);
    };
    (impl $name:path => ($src:ty => $scol:literal, $tgt:ty => $tcol:literal) in $table:literal $(, $sym:ident)? ;) => {
        $crate::many_to_many!(@impl $name, $src, $scol, $tgt, $tcol, $table $(, $sym)?);
    };
    (@impl $name:ty, $src:ty, $scol:literal, $tgt:ty, $tcol:literal, $table:literal, symmetrical) => {
        const _: fn(&$src) -> &$tgt = |same| same; // a symmetrical relation links one model to itself
        $crate::many_to_many!(@impl $name, $src, $scol, $tgt, $tcol, $table, true);
    };
    (@impl $name:ty, $src:ty, $scol:literal, $tgt:ty, $tcol:literal, $table:literal) => {
        $crate::many_to_many!(@impl $name, $src, $scol, $tgt, $tcol, $table, false);
    };
    (@impl $name:ty, $src:ty, $scol:literal, $tgt:ty, $tcol:literal, $table:literal, $symmetrical:literal) => {
        impl $crate::Through for $name {
            type Source = $src;
            type Target = $tgt;
            const NAME: &'static str = ::core::stringify!($name);
            const SYMMETRICAL: bool = $symmetrical;
            const SQL: &'static $crate::ThroughSql = &$crate::ThroughSql {
                table: $table,
                source_column: $scol,
                target_column: $tcol,
                targets_of: ::core::concat!("SELECT \"", $tcol, "\" FROM \"", $table, "\" WHERE \"", $scol, "\" = $1 ORDER BY \"", $tcol, "\""),
                sources_of: ::core::concat!("SELECT \"", $scol, "\" FROM \"", $table, "\" WHERE \"", $tcol, "\" = $1 ORDER BY \"", $scol, "\""),
                insert: ::core::concat!("INSERT INTO \"", $table, "\" (\"", $scol, "\", \"", $tcol, "\") VALUES ($1, $2) ON CONFLICT DO NOTHING"),
                delete: ::core::concat!("DELETE FROM \"", $table, "\" WHERE \"", $scol, "\" = $1 AND \"", $tcol, "\" = $2"),
                clear_source: ::core::concat!("DELETE FROM \"", $table, "\" WHERE \"", $scol, "\" = $1"),
                clear_target: ::core::concat!("DELETE FROM \"", $table, "\" WHERE \"", $tcol, "\" = $1"),
                delete_both: ::core::concat!("DELETE FROM \"", $table, "\" WHERE (\"", $scol, "\" = $1 AND \"", $tcol, "\" = $2) OR (\"", $scol, "\" = $2 AND \"", $tcol, "\" = $1)"),
                clear_both: ::core::concat!("DELETE FROM \"", $table, "\" WHERE \"", $scol, "\" = $1 OR \"", $tcol, "\" = $1"),
            };
        }
    };
}
