//! The related managers of a many-to-many relation (Django's `post.tags` and `tag.posts`):
//! read, add, remove, clear and set links, each atomic with its `m2m_changed` receivers.

use std::any::Any;
use std::collections::BTreeSet;
use std::fmt;
use std::marker::PhantomData;

use signals_core::Sender;
use signals_core::Signal as _;

use futures_util::future::BoxFuture;

use super::signal::{M2mAction, M2mChangedSignal, M2mEvent, keys_json};
use super::{LinkRows, Through};
use crate::backend::Backend;
use crate::error::{Context as _, Operation, OrmError};
use crate::model::{Model, Persist};
use crate::sql::{LINKS_PER_INSERT, Returning, ThroughSql};
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
    /// The link rows of `own` (to `other`, or all), deleted through the relation's link
    /// model; `None` when it has none.
    #[doc(hidden)]
    fn delete_link_rows<'t, DB: Backend>(
        tx: &'t mut Tx<DB>,
        own: &'t <Self::Own as Model>::Pk,
        other: Option<&'t <Self::Other as Model>::Pk>,
    ) -> Option<BoxFuture<'t, Result<u64, OrmError>>>
    where
        T::Link: LinkRows<DB, T::Source, T::Target>;
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
    fn delete_link_rows<'t, DB: Backend>(
        tx: &'t mut Tx<DB>,
        own: &'t <T::Source as Model>::Pk,
        other: Option<&'t <T::Target as Model>::Pk>,
    ) -> Option<BoxFuture<'t, Result<u64, OrmError>>>
    where
        T::Link: LinkRows<DB, T::Source, T::Target>,
    {
        <T::Link as LinkRows<DB, T::Source, T::Target>>::delete(tx, Some(own), other)
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
    fn delete_link_rows<'t, DB: Backend>(
        tx: &'t mut Tx<DB>,
        own: &'t <T::Target as Model>::Pk,
        other: Option<&'t <T::Source as Model>::Pk>,
    ) -> Option<BoxFuture<'t, Result<u64, OrmError>>>
    where
        T::Link: LinkRows<DB, T::Source, T::Target>,
    {
        <T::Link as LinkRows<DB, T::Source, T::Target>>::delete(tx, other, Some(own))
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
        let mut keys = BTreeSet::new();
        db.into_db()
            .fetch_each(query, operation, |row| {
                keys.insert(<D::Other as Persist<DB>>::pk_from_row(row).during(operation)?);
                Ok(())
            })
            .await?;
        Ok(keys)
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
        db.into_db().fetch_models(query, operation).await
    }

    /// Links `keys` (Django's `add`): `pre_add` carries the keys not linked when the current
    /// links were read, `post_add` and the result only those whose link this call inserted (a
    /// concurrent `add` may have linked some in between); both fire even when that is none, and
    /// no keys at all sends nothing. Returns the links inserted.
    ///
    /// When no `m2m_changed` receiver is linked or connected for the relation (none for it,
    /// none for every relation), nothing is read and nothing is sent: the add is its INSERT
    /// alone, in autocommit when given a pool and that is one statement (see `docs/orm.md`,
    /// Many-to-many).
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
        if heard::<T>() {
            return atomically!(db, |tx| async {
                let current = self.keys(&mut *tx).await?;
                let missing = wanted.difference(&current).cloned().collect();
                self.add_in(tx, &own, missing, true).await
            }
            .await);
        }
        // Nobody listens: no SELECT (the INSERT skips what is linked already) and no sends. One
        // statement needs no transaction of its own; a symmetrical add (its mirror rows) or more
        // than one chunk of keys is several, atomic together.
        if let Some(pool) = db.pool()
            && !T::SYMMETRICAL
            && wanted.len() <= LINKS_PER_INSERT
        {
            let operation = Operation::on_table("acquire a connection for a write", T::TABLE);
            let mut conn = crate::writes::autocommit(pool, operation).await?;
            return Self::link_unheard::<DB>(&mut conn, &own, &wanted).await;
        }
        atomically!(db, |tx| Self::link_unheard::<DB>(
            tx.own_conn(),
            &own,
            &wanted
        )
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
        T::Link: LinkRows<DB, T::Source, T::Target>,
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
        T::Link: LinkRows<DB, T::Source, T::Target>,
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
        T::Link: LinkRows<DB, T::Source, T::Target>,
        D::Own: Persist<DB>,
        D::Other: Persist<DB>,
    {
        let wanted: BTreeSet<_> = keys.into_iter().collect();
        let own = self.own_pk()?;
        let db = db.into_db();
        let heard = heard::<T>();
        atomically!(db, |tx| async {
            let current = self.keys(&mut *tx).await?;
            let gone: BTreeSet<_> = current.difference(&wanted).cloned().collect();
            let new: BTreeSet<_> = wanted.difference(&current).cloned().collect();
            if !gone.is_empty() {
                self.remove_in(tx, &own, gone).await?;
            }
            if !new.is_empty() {
                // `new` is already add's candidate set: no second SELECT.
                self.add_in(tx, &own, new, heard).await?;
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
        T::Link: LinkRows<DB, T::Source, T::Target>,
        D::Own: Persist<DB>,
        D::Other: Persist<DB>,
    {
        let wanted: BTreeSet<_> = keys.into_iter().collect();
        let own = self.own_pk()?;
        let db = db.into_db();
        let heard = heard::<T>();
        atomically!(db, |tx| async {
            self.clear_in(tx, &own).await?;
            if !wanted.is_empty() {
                // Nothing is linked after the clear, so every key is a candidate: no SELECT.
                self.add_in(tx, &own, wanted, heard).await?;
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
    /// `post_add` with the keys actually inserted; or, when nobody listens (`heard` false, read
    /// once by the operation), only inserts.
    async fn add_in<DB: Backend>(
        &self,
        tx: &mut Tx<DB>,
        own: &<D::Own as Model>::Pk,
        mut candidates: BTreeSet<OtherPk<T, D>>,
        heard: bool,
    ) -> Result<usize, OrmError>
    where
        D::Own: Persist<DB>,
        D::Other: Persist<DB>,
    {
        if !heard {
            return Self::link_unheard::<DB>(tx.own_conn(), own, &candidates).await;
        }
        self.send(tx, M2mAction::PreAdd, Some(&mut candidates))
            .await?;
        let mut inserted = Self::insert_links::<DB>(tx.own_conn(), own, &candidates).await?;
        let count = inserted.len();
        // The mirror rows come after post_add, as in Django, and only for the links this call
        // inserted, whatever a post_add receiver does to its pk_set.
        let mirrors = T::SYMMETRICAL.then(|| inserted.clone());
        self.send(tx, M2mAction::PostAdd, Some(&mut inserted))
            .await?;
        if let Some(mirrors) = mirrors {
            Self::insert_mirrors::<DB>(tx.own_conn(), own, &mirrors).await?;
        }
        Ok(count)
    }

    /// Links `others` without signals (nobody listens); returns the links inserted. A
    /// symmetrical relation then also writes the mirror rows of those links.
    async fn link_unheard<DB: Backend>(
        conn: &mut DB::Connection,
        own: &<D::Own as Model>::Pk,
        others: &BTreeSet<OtherPk<T, D>>,
    ) -> Result<usize, OrmError>
    where
        D::Own: Persist<DB>,
        D::Other: Persist<DB>,
    {
        if !T::SYMMETRICAL {
            // The rows affected are the count; which keys they were is nobody's business.
            let count = Self::insert_counted::<DB>(
                conn,
                own,
                others.iter().map(|o| (o, Self::LINK_OWN_FIRST)),
            )
            .await?;
            return Ok(usize::try_from(count).unwrap_or(usize::MAX));
        }
        let inserted = Self::insert_links::<DB>(conn, own, others).await?;
        Self::insert_mirrors::<DB>(conn, own, &inserted).await?;
        Ok(inserted.len())
    }

    /// Whether own's link row is `(own, other)` in the link table's `(source, target)` order:
    /// from the source's side; from the target's it is `(other, own)`.
    const LINK_OWN_FIRST: bool = !D::REVERSE;

    /// Inserts the links of own to `others` and returns the keys whose link this call
    /// inserted: `INSERT .. ON CONFLICT DO NOTHING RETURNING other`, one per chunk of
    /// [`LINKS_PER_INSERT`] keys, in ascending key order, so that two adds from the same side
    /// take their row locks in the same order.
    ///
    /// A concurrent add may have linked some keys since the caller chose them; `ON CONFLICT DO
    /// NOTHING` skips those rows (on PostgreSQL, after waiting for that add to commit or roll
    /// back) and `RETURNING` leaves them out, so the keys returned are exactly the links this
    /// statement wrote, at no extra statement.
    ///
    /// A symmetrical relation stores each link as two rows, `(a, b)` and `(b, a)`, and is added
    /// to from both ends (`a`'s add of `b`, `b`'s add of `a`). Writing each add's own rows
    /// first would lock `(a, b)` then `(b, a)` in one and the reverse in the other: two such
    /// adds at once deadlock (PostgreSQL aborts one). So a symmetrical add first writes, for
    /// each key, the pair's row that sorts first, `(min, max)`, and every add takes those in
    /// one global order (by source, then target: the keys below own, whose row is
    /// `(key, own)`, then the others, `(own, key)`); the second one to reach a pair waits for
    /// the first and then finds it linked. [`Related::insert_mirrors`] writes the other rows.
    async fn insert_links<DB: Backend>(
        conn: &mut DB::Connection,
        own: &<D::Own as Model>::Pk,
        others: &BTreeSet<OtherPk<T, D>>,
    ) -> Result<BTreeSet<OtherPk<T, D>>, OrmError>
    where
        D::Own: Persist<DB>,
        D::Other: Persist<DB>,
    {
        if !T::SYMMETRICAL {
            return Self::insert_returning::<DB>(conn, own, others.iter(), Self::LINK_OWN_FIRST)
                .await;
        }
        let me = Self::own_as_other(own);
        let mut inserted =
            Self::insert_returning::<DB>(conn, own, others.range(..me), false).await?;
        inserted.extend(Self::insert_returning::<DB>(conn, own, others.range(me..), true).await?);
        Ok(inserted)
    }

    /// The second rows of a symmetrical relation's links `inserted` by
    /// [`Related::insert_links`], `(max, min)`: one INSERT per chunk, in the same global
    /// order. A link of own to itself is one row, written already.
    async fn insert_mirrors<DB: Backend>(
        conn: &mut DB::Connection,
        own: &<D::Own as Model>::Pk,
        inserted: &BTreeSet<OtherPk<T, D>>,
    ) -> Result<u64, OrmError>
    where
        D::Own: Persist<DB>,
        D::Other: Persist<DB>,
    {
        let me = Self::own_as_other(own);
        let below = inserted.range(..me).map(|other| (other, true));
        let above = inserted
            .range(me..)
            .filter(|other| *other != me)
            .map(|other| (other, false));
        Self::insert_counted::<DB>(conn, own, below.chain(above)).await
    }

    /// Own's key as a key of the other side: the same type in a symmetrical relation, a
    /// self-relation (`many_to_many!` checks that source and target are one model).
    fn own_as_other(own: &<D::Own as Model>::Pk) -> &OtherPk<T, D> {
        (own as &dyn Any)
            .downcast_ref()
            .expect("a symmetrical relation links a model to itself")
    }

    /// Inserts rows of own's links to `others`, `(own, other)` when `own_first`, else
    /// `(other, own)`, and returns the other key of each row inserted: one `INSERT .. ON
    /// CONFLICT DO NOTHING RETURNING other` per chunk of [`LINKS_PER_INSERT`] keys, in the
    /// order given.
    async fn insert_returning<'k, DB: Backend>(
        conn: &mut DB::Connection,
        own: &<D::Own as Model>::Pk,
        others: impl Iterator<Item = &'k OtherPk<T, D>> + Clone,
        own_first: bool,
    ) -> Result<BTreeSet<OtherPk<T, D>>, OrmError>
    where
        D::Own: Persist<DB>,
        D::Other: Persist<DB>,
        OtherPk<T, D>: 'k,
    {
        let operation = Operation::on_table("add links", T::TABLE);
        let returning = if own_first {
            Returning::Target
        } else {
            Returning::Source
        };
        let mut inserted = BTreeSet::new();
        let mut left = others.clone().count();
        let mut rows_of = others.map(|other| (other, own_first));
        while left > 0 {
            let rows = left.min(LINKS_PER_INSERT);
            left -= rows;
            let query = Self::insert_query::<DB>(own, &mut rows_of, rows, returning);
            for row in DB::fetch_all(&mut *conn, query).await.during(operation)? {
                inserted.insert(<D::Other as Persist<DB>>::pk_from_row(&row).during(operation)?);
            }
        }
        Ok(inserted)
    }

    /// Inserts the rows `(own, other)` or `(other, own)` (the flag says `own_first`) and
    /// returns how many this call inserted: one `INSERT .. ON CONFLICT DO NOTHING` per chunk
    /// of [`LINKS_PER_INSERT`] rows, in the order given.
    async fn insert_counted<'k, DB: Backend>(
        conn: &mut DB::Connection,
        own: &<D::Own as Model>::Pk,
        mut rows_of: impl Iterator<Item = (&'k OtherPk<T, D>, bool)> + Clone,
    ) -> Result<u64, OrmError>
    where
        D::Own: Persist<DB>,
        D::Other: Persist<DB>,
        OtherPk<T, D>: 'k,
    {
        let mut inserted = 0;
        let mut left = rows_of.clone().count();
        while left > 0 {
            let rows = left.min(LINKS_PER_INSERT);
            left -= rows;
            let query = Self::insert_query::<DB>(own, &mut rows_of, rows, Returning::Nothing);
            inserted += DB::execute(&mut *conn, query)
                .await
                .during(Operation::on_table("add links", T::TABLE))?;
        }
        Ok(inserted)
    }

    /// The link INSERT of the next `rows` of `rows_of`, each bound as `(own, other)` when its
    /// flag is set, else `(other, own)`, in the link table's `(source, target)` order.
    fn insert_query<'q, 'k, DB: Backend>(
        own: &<D::Own as Model>::Pk,
        rows_of: &mut impl Iterator<Item = (&'k OtherPk<T, D>, bool)>,
        rows: usize,
        returning: Returning,
    ) -> sqlx::query::Query<'q, DB, DB::Arguments>
    where
        D::Own: Persist<DB>,
        D::Other: Persist<DB>,
        OtherPk<T, D>: 'k,
    {
        let sql = T::sql().insert_links(rows, returning, crate::sql::param_prefix::<DB>());
        let mut query = DB::query_with_room(sql, 2 * rows);
        for (other, own_first) in rows_of.take(rows) {
            query = if own_first {
                <D::Other as Persist<DB>>::bind_pk(
                    other,
                    <D::Own as Persist<DB>>::bind_pk(own, query),
                )
            } else {
                <D::Own as Persist<DB>>::bind_pk(
                    own,
                    <D::Other as Persist<DB>>::bind_pk(other, query),
                )
            };
        }
        query
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
        T::Link: LinkRows<DB, T::Source, T::Target>,
        D::Own: Persist<DB>,
        D::Other: Persist<DB>,
    {
        self.send(tx, M2mAction::PreRemove, Some(&mut keys)).await?;
        if !T::SYMMETRICAL && <T::Link as LinkRows<DB, T::Source, T::Target>>::IS_MODEL {
            // The link table is a model: its rows go through its filtered delete, one key at
            // a time so the rows deleted tell which links this call removed.
            let mut deleted = BTreeSet::new();
            for other in keys {
                let rows = D::delete_link_rows::<DB>(tx, own, Some(&other))
                    .expect("a link model")
                    .await?;
                if rows > 0 {
                    deleted.insert(other);
                }
            }
            self.send(tx, M2mAction::PostRemove, Some(&mut deleted))
                .await?;
            return Ok(deleted.len() as u64);
        }
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
        T::Link: LinkRows<DB, T::Source, T::Target>,
        D::Own: Persist<DB>,
    {
        self.send(tx, M2mAction::PreClear, None).await?;
        if !T::SYMMETRICAL && <T::Link as LinkRows<DB, T::Source, T::Target>>::IS_MODEL {
            let deleted = D::delete_link_rows::<DB>(tx, own, None)
                .expect("a link model")
                .await?;
            self.send(tx, M2mAction::PostClear, None).await?;
            return Ok(deleted);
        }
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
}

impl<T: Through, D: Direction<T>> fmt::Debug for Related<'_, T, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Related")
            .field("through", &T::NAME)
            .field("reverse", &D::REVERSE)
            .finish_non_exhaustive()
    }
}

/// Whether an `m2m_changed` receiver would hear the operations of relation `T`: one linked or
/// connected for `T`, or for every relation. Muted receivers count as heard (the send then
/// delivers nothing), as for a model's writes. When none would, the send skipped still counts
/// as the program's first for the unlinked-receivers check.
fn heard<T: Through>() -> bool {
    let sender = Sender::of::<T>();
    if M2mChangedSignal::registry().has_listeners(sender) {
        return true;
    }
    signals_core::__private::unheard_send::<M2mChangedSignal>(sender);
    false
}
