//! The related managers of a many-to-many relation (Django's `post.tags` and `tag.posts`):
//! read, add, remove, clear and set links, each atomic with its `m2m_changed` receivers.

use std::any::Any;
use std::collections::BTreeSet;
use std::fmt;
use std::marker::PhantomData;

use signals_core::Sender;
use signals_core::Signal as _;

use super::Through;
use super::signal::{M2mAction, M2mChangedSignal, M2mEvent, keys_json};
use crate::backend::Backend;
use crate::error::{Context as _, Operation, OrmError};
use crate::model::{Model, Persist};
use crate::sql::ThroughSql;
use crate::tx::{Db, IntoDb, Tx};

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
    fn select_others(sql: &'static ThroughSql) -> &'static str;
    #[doc(hidden)]
    fn clear(sql: &'static ThroughSql) -> &'static str;
}

impl<T: Through> Direction<T> for Forward {
    type Own = T::Source;
    type Other = T::Target;
    const REVERSE: bool = false;
    fn select_others(sql: &'static ThroughSql) -> &'static str {
        &sql.targets_of
    }
    fn clear(sql: &'static ThroughSql) -> &'static str {
        &sql.clear_source
    }
}

impl<T: Through> Direction<T> for Reverse {
    type Own = T::Target;
    type Other = T::Source;
    const REVERSE: bool = true;
    fn select_others(sql: &'static ThroughSql) -> &'static str {
        &sql.sources_of
    }
    fn clear(sql: &'static ThroughSql) -> &'static str {
        &sql.clear_target
    }
}

/// The links of one instance: Django's related manager (`post.tags`, `tag.posts`).
pub struct Related<'i, T: Through, D: Direction<T>> {
    instance: &'i D::Own,
    through: PhantomData<fn() -> (T, D)>,
}

impl<'i, T: Through, D: Direction<T>> Related<'i, T, D> {
    pub(super) fn new(instance: &'i D::Own) -> Self {
        Related {
            instance,
            through: PhantomData,
        }
    }
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
        db: impl IntoDb<'a, DB>,
    ) -> Result<BTreeSet<OtherPk<T, D>>, OrmError>
    where
        D::Own: Persist<DB>,
        D::Other: Persist<DB>,
    {
        let own = self.own_pk()?;
        let query = <D::Own as Persist<DB>>::bind_pk(&own, sqlx::query(D::select_others(T::sql())));
        let operation = Operation::on_table("fetch links", T::TABLE);
        let rows = db.into_db().fetch_all(query, operation).await?;
        rows.iter()
            .map(<D::Other as Persist<DB>>::pk_from_row)
            .collect::<Result<_, _>>()
            .during(operation)
    }

    /// The related objects, ordered by key.
    ///
    /// # Errors
    ///
    /// [`OrmError::NoPrimaryKey`] for an unsaved instance, or the database's error.
    pub async fn all<'a, DB: Backend>(
        &self,
        db: impl IntoDb<'a, DB>,
    ) -> Result<Vec<D::Other>, OrmError>
    where
        D::Own: Persist<DB>,
        D::Other: Persist<DB>,
    {
        let own = self.own_pk()?;
        let meta = D::Other::META;
        let sql = D::Other::sql().select_where_pk_in(meta, D::select_others(T::sql()));
        let query = <D::Own as Persist<DB>>::bind_pk(&own, sqlx::query(sqlx::AssertSqlSafe(sql)));
        let operation = Operation::on::<D::Other>("fetch related");
        let rows = db.into_db().fetch_all(query, operation).await?;
        rows.iter()
            .map(<D::Other as Persist<DB>>::from_row)
            .collect::<Result<_, _>>()
            .during(operation)
    }

    /// Links `keys` (Django's `add`): `pre_add` carries the keys not linked when the current
    /// links were read, `post_add` and the result only those whose link this call inserted (a
    /// concurrent `add` may have linked some in between); both fire even when that is none, and
    /// no keys at all sends nothing. Returns the links inserted.
    ///
    /// # Errors
    ///
    /// [`OrmError::NoPrimaryKey`] for an unsaved instance, the database's error (a key that
    /// does not exist violates the link table's foreign key), or a receiver's; the operation is
    /// undone.
    pub async fn add<'a, DB: Backend>(
        &self,
        db: impl IntoDb<'a, DB>,
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
        let db = db.into_db();
        atomically!(db, |tx| async {
            let current = self.keys(&mut *tx).await?;
            let missing = wanted.difference(&current).cloned().collect();
            self.add_in(tx, &own, missing).await
        }
        .await)
    }

    /// Unlinks `keys` (Django's `remove`): `pre_remove` carries every key passed, linked or not;
    /// `post_remove` and the result only those whose link this call deleted (unlike Django,
    /// which reports every key again). Returns the links deleted, one per key also for a
    /// symmetrical relation.
    ///
    /// # Errors
    ///
    /// As [`add`](Related::add).
    pub async fn remove<'a, DB: Backend>(
        &self,
        db: impl IntoDb<'a, DB>,
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
        let db = db.into_db();
        atomically!(db, |tx| self.remove_in(tx, &own, keys).await)
    }

    /// Unlinks everything (Django's `clear`): `pre_clear` and `post_clear` with no keys, sent
    /// even when there was nothing to clear. Returns the links deleted.
    ///
    /// # Errors
    ///
    /// As [`add`](Related::add).
    pub async fn clear<'a, DB: Backend>(&self, db: impl IntoDb<'a, DB>) -> Result<u64, OrmError>
    where
        D::Own: Persist<DB>,
        D::Other: Persist<DB>,
    {
        let own = self.own_pk()?;
        let db = db.into_db();
        atomically!(db, |tx| self.clear_in(tx, &own).await)
    }

    /// Makes the links exactly `keys` (Django's `set`): removes the links not wanted, then adds
    /// the missing ones, with `remove`'s and `add`'s signals; sends nothing when nothing changes.
    ///
    /// # Errors
    ///
    /// As [`add`](Related::add).
    pub async fn set<'a, DB: Backend>(
        &self,
        db: impl IntoDb<'a, DB>,
        keys: impl IntoIterator<Item = OtherPk<T, D>>,
    ) -> Result<(), OrmError>
    where
        D::Own: Persist<DB>,
        D::Other: Persist<DB>,
    {
        let wanted: BTreeSet<_> = keys.into_iter().collect();
        let own = self.own_pk()?;
        let db = db.into_db();
        atomically!(db, |tx| async {
            let current = self.keys(&mut *tx).await?;
            let gone: BTreeSet<_> = current.difference(&wanted).cloned().collect();
            let new: BTreeSet<_> = wanted.difference(&current).cloned().collect();
            if !gone.is_empty() {
                self.remove_in(tx, &own, gone).await?;
            }
            if !new.is_empty() {
                // `new` is already add's candidate set: no second SELECT.
                self.add_in(tx, &own, new).await?;
            }
            Ok::<(), OrmError>(())
        }
        .await)
    }

    /// Clears, then adds `keys` (Django's `set(clear=True)`); `pre_add` carries every key, as
    /// nothing is linked after the clear.
    ///
    /// # Errors
    ///
    /// As [`add`](Related::add).
    pub async fn set_clear<'a, DB: Backend>(
        &self,
        db: impl IntoDb<'a, DB>,
        keys: impl IntoIterator<Item = OtherPk<T, D>>,
    ) -> Result<(), OrmError>
    where
        D::Own: Persist<DB>,
        D::Other: Persist<DB>,
    {
        let wanted: BTreeSet<_> = keys.into_iter().collect();
        let own = self.own_pk()?;
        let db = db.into_db();
        atomically!(db, |tx| async {
            self.clear_in(tx, &own).await?;
            if !wanted.is_empty() {
                // Nothing is linked after the clear, so every key is a candidate: no SELECT.
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

    /// Sends `pre_add` with `candidates`, inserts what the receivers left, and sends
    /// `post_add` with the keys actually inserted.
    async fn add_in<DB: Backend>(
        &self,
        tx: &mut Tx<DB>,
        own: &<D::Own as Model>::Pk,
        mut candidates: BTreeSet<OtherPk<T, D>>,
    ) -> Result<usize, OrmError>
    where
        D::Own: Persist<DB>,
        D::Other: Persist<DB>,
    {
        self.send(tx, M2mAction::PreAdd, Some(&mut candidates))
            .await?;
        // The candidates were read without a lock, so a concurrent add may have linked some of
        // them since; `ON CONFLICT DO NOTHING` then affects no row (on PostgreSQL, after waiting
        // for that add to commit or roll back). The rows affected say which links are ours, at
        // no extra statement. Keys go in ascending order, so two adds from the same side lock
        // in the same order.
        let mut inserted = BTreeSet::new();
        for other in candidates {
            let rows = DB::execute(
                tx.own_conn(),
                Self::bind_pair::<DB>(own, &other, T::sql().insert.as_str()),
            )
            .await
            .during(Operation::on_table("add links", T::TABLE))?;
            if rows > 0 {
                inserted.insert(other);
            }
        }
        self.send(tx, M2mAction::PostAdd, Some(&mut inserted))
            .await?;
        if T::SYMMETRICAL {
            // The mirror rows come after post_add, as in Django, and only for the links this
            // call inserted: an add that lost the race leaves both rows to the winner. (So
            // `a.add(b)` racing `b.add(a)` can deadlock on PostgreSQL, each holding the row the
            // other's mirror needs; the database aborts one, which is undone whole.)
            for other in &inserted {
                DB::execute(
                    tx.own_conn(),
                    Self::bind_mirror::<DB>(own, other, T::sql().insert.as_str()),
                )
                .await
                .during(Operation::on_table("add links", T::TABLE))?;
            }
        }
        Ok(inserted.len())
    }

    /// Sends `pre_remove` with `keys`, deletes what the receivers left, and sends `post_remove`
    /// with the keys actually deleted.
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
            &T::sql().delete_both
        } else {
            &T::sql().delete
        };
        // A key passed may not be linked, or a concurrent remove may have deleted its link
        // first (on PostgreSQL this DELETE waits for it, then finds no row): only the rows
        // affected tell which links this call removed. A symmetrical link is one key however
        // many of its two rows went.
        let mut deleted = BTreeSet::new();
        for other in keys {
            let rows = DB::execute(tx.own_conn(), Self::bind_pair::<DB>(own, &other, sql))
                .await
                .during(Operation::on_table("remove links", T::TABLE))?;
            if rows > 0 {
                deleted.insert(other);
            }
        }
        self.send(tx, M2mAction::PostRemove, Some(&mut deleted))
            .await?;
        Ok(deleted.len() as u64)
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
            &T::sql().clear_both
        } else {
            D::clear(T::sql())
        };
        let deleted = DB::execute(
            tx.own_conn(),
            <D::Own as Persist<DB>>::bind_pk(own, sqlx::query(sql)),
        )
        .await
        .during(Operation::on_table("clear links", T::TABLE))?;
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
