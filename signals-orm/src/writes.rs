//! The writes of a model, each sending its signals: `save`, `insert`, `save_fields`, `save_raw`, `delete`, `bulk_insert`, `bulk_update`, and `get`.
//!
//! A write given a pool opens its own transaction and commits it (running `on_commit`
//! callbacks) or rolls it back. A write given a transaction runs inside it; if the write or a
//! receiver fails, the transaction is marked rollback-only, so partial effects can never be
//! committed (no savepoint per write: it would cost two statements; open one yourself with
//! `Tx::savepoint` or `Tx::atomic` to recover and carry on).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::future::Future;

use signals_core::{Sender, Signal};

use crate::backend::Backend;
use crate::error::{Context as _, Operation, OrmError};
use crate::init::Init;
use crate::model::{AnyModel, Model, Persist};
use crate::model_signals::payload::{Origin, PREVIOUS_ROW, Previous};
use crate::model_signals::{
    DeleteEvent, PostDeleteSignal, PostSaveSignal, PreDeleteSignal, PreSaveSignal, SaveEvent,
};
use crate::query::Deleted;
use crate::sql::{self, ModelSql, UPDATE_ROWS, bulk_rows};
use crate::tx::{Db, IntoDb, Tx};

/// What a save did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    /// An INSERT (`created = true` in `post_save`).
    Created,
    /// An UPDATE.
    Updated,
    /// Nothing: `save_fields` with an empty list writes nothing and sends nothing (Django).
    Skipped,
}

impl Saved {
    /// Whether the save inserted a row.
    #[must_use]
    pub fn created(self) -> bool {
        self == Saved::Created
    }
}

#[derive(Clone, Copy)]
enum Write<'f> {
    /// UPDATE if the key exists, else INSERT (Django's `save()`).
    Save,
    /// INSERT only (Django's `force_insert`).
    Insert,
    /// UPDATE of these fields only (Django's `update_fields`).
    Fields(&'f [&'static str]),
}

/// The writes of a model, sending its signals. Implemented for every `#[derive(Model)]` type.
///
/// Every method takes `&pool` (own transaction) or `&mut tx` (the caller's).
pub trait ModelExt: Model {
    /// Saves the instance: INSERT when its generated key is unset; otherwise UPDATE, then
    /// INSERT if no row had the key (Django's `save()`). Sends `pre_save` (which may change the
    /// instance), then `post_save` with `created`, in the write's transaction.
    ///
    /// Given `&pool`, the save commits its own transaction and then runs the `on_commit`
    /// receivers it queued. Their failures cannot undo a committed write, so `save` still
    /// returns `Ok`; each failure is reported as a `tracing` error event (target `signals`),
    /// and printed to stderr when the program installed no `tracing` subscriber. To handle
    /// them in code, save in a [`Tx`] and read the [`CommitReport`](crate::CommitReport) that
    /// [`Tx::commit`] returns.
    ///
    /// # Errors
    ///
    /// The database's error or the first failing receiver's; the write is undone.
    ///
    /// # Example
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use signals_orm::{Model, ModelExt, Saved, Tx};
    ///
    /// #[derive(Model, sqlx::FromRow)]
    /// #[model(table = "tags")]
    /// struct Tag {
    ///     #[model(primary_key)]
    ///     id: Option<i64>,
    ///     name: String,
    /// }
    ///
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
    /// sqlx::raw_sql("CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    ///     .execute(&pool)
    ///     .await?;
    /// let mut tag = Tag { id: None, name: "rust".into() };
    /// assert_eq!(tag.save(&pool).await?, Saved::Created); // INSERT in its own transaction
    /// tag.name = "Rust".into();
    /// let mut tx = Tx::begin(&pool).await?;
    /// assert_eq!(tag.save(&mut tx).await?, Saved::Updated); // UPDATE in the caller's
    /// let report = tx.commit().await?; // on_commit receivers run here
    /// assert!(report.failures.is_empty());
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    fn save<'a, DB: Backend>(
        &'a mut self,
        db: impl IntoDb<'a, DB>,
    ) -> impl Future<Output = Result<Saved, OrmError>> + Send + 'a
    where
        Self: Persist<DB>,
    {
        write(self, db.into_db(), Write::Save, false)
    }

    /// Inserts the instance (Django's `save(force_insert=True)`): one statement, `created` is
    /// always true.
    ///
    /// # Errors
    ///
    /// As [`save`](ModelExt::save); a duplicate key is the database's error.
    fn insert<'a, DB: Backend>(
        &'a mut self,
        db: impl IntoDb<'a, DB>,
    ) -> impl Future<Output = Result<Saved, OrmError>> + Send + 'a
    where
        Self: Persist<DB>,
    {
        write(self, db.into_db(), Write::Insert, false)
    }

    /// Saves only `fields` (Django's `update_fields`): an empty list writes and sends nothing;
    /// duplicates count once; the row must exist.
    ///
    /// # Errors
    ///
    /// [`OrmError::UnknownField`] (before any signal) for a name that is not a saved non-key
    /// field, [`OrmError::NoPrimaryKey`] without a key, [`OrmError::NotUpdated`] when no row has
    /// the key (after `pre_save`, as in Django), or as [`save`](ModelExt::save).
    fn save_fields<'a, DB: Backend>(
        &'a mut self,
        fields: &'a [&'a str],
        db: impl IntoDb<'a, DB>,
    ) -> impl Future<Output = Result<Saved, OrmError>> + Send + 'a
    where
        Self: Persist<DB>,
    {
        let db = db.into_db();
        async move {
            let fields = checked_fields::<Self>(fields)?;
            if fields.is_empty() {
                return Ok(Saved::Skipped);
            }
            if self.pk().is_none() {
                return Err(OrmError::NoPrimaryKey {
                    model: Self::META.name,
                    action: "updated with update_fields",
                });
            }
            write(self, db, Write::Fields(&fields), false).await
        }
    }

    /// Saves as fixture loading does (Django's `loaddata`): like [`save`](ModelExt::save) with
    /// `raw = true` in the payloads, so receivers can skip derived work.
    ///
    /// # Errors
    ///
    /// As [`save`](ModelExt::save).
    fn save_raw<'a, DB: Backend>(
        &'a mut self,
        db: impl IntoDb<'a, DB>,
    ) -> impl Future<Output = Result<Saved, OrmError>> + Send + 'a
    where
        Self: Persist<DB>,
    {
        write(self, db.into_db(), Write::Save, true)
    }

    /// Deletes the row: `pre_delete`, DELETE, `post_delete`, in one transaction; then unsets a
    /// generated key (Django sets `pk = None`). Returns the rows deleted per model (Django's
    /// `(total, {model: count})`): this one's 0 or 1, and those its foreign keys' `on_delete`
    /// cascaded to.
    ///
    /// When other models have foreign keys to this one, it runs Django's collector: the rows
    /// that cascade are deleted too, with their own signals, `set_null` / `set_default` keys
    /// are updated, and `protect` / `restrict` rows refuse the delete; rules and order in
    /// `docs/orm.md`, "Relations and cascades".
    ///
    /// # Errors
    ///
    /// [`OrmError::NoPrimaryKey`] (before any signal) without a key; [`OrmError::Protected`]
    /// or [`OrmError::Restricted`] (before any signal); else the database's or the first
    /// failing receiver's error. Nothing is deleted then.
    fn delete<'a, DB: Backend>(
        &'a mut self,
        db: impl IntoDb<'a, DB>,
    ) -> impl Future<Output = Result<Deleted, OrmError>> + Send + 'a
    where
        Self: Persist<DB>,
    {
        let db = db.into_db();
        async move {
            let Some(pk) = self.pk() else {
                return Err(OrmError::NoPrimaryKey {
                    model: Self::META.name,
                    action: "deleted",
                });
            };
            let deleted = if crate::relations::collects(std::any::TypeId::of::<Self>()) {
                let root = &*self;
                atomically!(db, |tx| crate::collector::delete(
                    tx,
                    crate::collector::Root::Instance(root)
                )
                .await)?
            } else {
                let rows = match unheard::<Self, PreDeleteSignal, PostDeleteSignal, DB>(db.pool())
                    .await?
                {
                    Some(mut conn) => delete_row::<Self, DB>(&pk, &mut conn).await?,
                    None => atomically!(db, |tx| delete_in(&*self, &pk, tx).await)?,
                };
                let mut deleted = Deleted::default();
                deleted.add(Self::META.name, rows);
                deleted
            };
            if Self::META.pk_generated {
                self.set_pk(None);
            }
            Ok(deleted)
        }
    }

    /// Fetches the row with key `pk`, or `None`.
    ///
    /// # Errors
    ///
    /// The database's error, or a column that does not decode.
    fn get<'a, DB: Backend>(
        db: impl IntoDb<'a, DB>,
        pk: &'a Self::Pk,
    ) -> impl Future<Output = Result<Option<Self>, OrmError>> + Send + 'a
    where
        Self: Persist<DB>,
    {
        let db = db.into_db();
        async move {
            let query = Self::bind_pk(pk, sqlx::query(Self::sql().select_by_pk.as_str()));
            let operation = Operation::on::<Self>("fetch");
            let row = db.fetch_optional(query, operation).await?;
            row.map(|row| Init::<Self, DB>::new().decode(&row, operation))
                .transpose()
        }
    }

    /// Inserts `instances` with one multi-row `INSERT` per chunk (Django's `bulk_create`), and,
    /// unlike Django, sends `pre_save` and `post_save` for every one of them. Returns the rows
    /// inserted, `instances.len()`.
    ///
    /// Order: `pre_save` for each instance, first to last, as an INSERT's (`adding` true,
    /// `raw` false, `update_fields` `None`); a receiver may change the instance, and what it
    /// changed is inserted. Then the statements, then `post_save` for each instance, first to
    /// last, with `created = true` and its key set. An empty slice runs and sends nothing.
    ///
    /// Instances without a key (a generated key still `None`) are inserted with
    /// `INSERT INTO t (columns) VALUES (..), (..) RETURNING key`, and each gets the key of the
    /// row returned in its place: PostgreSQL and SQLite return a multi-row INSERT's rows in
    /// `VALUES` order. Django's `bulk_create` relies on that too; neither database documents it,
    /// and `tests/tests/bulk.rs` checks it on both. Instances with a key (an application-given
    /// one, or a generated one already set) are inserted with it, in statements of their own
    /// that run first, as in Django.
    ///
    /// One statement binds at most [`Backend::MAX_BIND_PARAMETERS`] values, so it takes that
    /// many divided by the columns of a row (a model of one column besides its generated key:
    /// 32,766 rows on SQLite, 65,535 on PostgreSQL); more instances take more statements.
    ///
    /// Atomic with its receivers, as [`save`](ModelExt::save) is: given `&pool`, in a
    /// transaction of its own (its `on_commit` receivers run after the COMMIT); given `&mut tx`,
    /// in the caller's, which a failure marks rollback-only. Given `&pool`, for a model no
    /// `pre_save` or `post_save` receiver listens to, instances that fit one statement are
    /// inserted by that statement alone in autocommit (`docs/orm.md`, Transactions).
    ///
    /// # Errors
    ///
    /// The database's error (a duplicate key) or the first failing receiver's. Nothing is
    /// inserted (the own transaction rolled back; the caller's can only roll back), and every
    /// generated key is given back the value it had before the call, so a retry inserts the
    /// instances again instead of updating rows that are not theirs. Fields a `pre_save`
    /// receiver changed keep their new values, as with `save`.
    ///
    /// # Example
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use signals_orm::{Model, ModelExt};
    ///
    /// #[derive(Model, sqlx::FromRow)]
    /// #[model(table = "tags")]
    /// struct Tag {
    ///     #[model(primary_key)]
    ///     id: Option<i64>,
    ///     name: String,
    /// }
    ///
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
    /// sqlx::raw_sql("CREATE TABLE tags (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    ///     .execute(&pool)
    ///     .await?;
    /// let mut tags: Vec<Tag> = ["rust", "sql", "django"]
    ///     .into_iter()
    ///     .map(|name| Tag { id: None, name: name.into() })
    ///     .collect();
    /// assert_eq!(Tag::bulk_insert(&pool, &mut tags).await?, 3); // one INSERT .. RETURNING
    /// assert_eq!(tags.iter().map(|t| t.id).collect::<Vec<_>>(), [Some(1), Some(2), Some(3)]);
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    fn bulk_insert<'a, DB: Backend>(
        db: impl IntoDb<'a, DB>,
        instances: &'a mut [Self],
    ) -> impl Future<Output = Result<usize, OrmError>> + Send + 'a
    where
        Self: Persist<DB>,
    {
        bulk_insert(db.into_db(), instances)
    }

    /// Saves `fields` of every instance of `instances` with one `UPDATE` per chunk (Django's
    /// `bulk_update`), and, unlike Django, sends `pre_save` and `post_save` for them. Returns
    /// the rows updated.
    ///
    /// Order: `pre_save` for each instance, first to last, with `update_fields` the fields
    /// (`adding` false, `raw` false; a receiver may change the instance, and what it changes in
    /// those fields is saved). Then one statement per chunk, Django's form:
    ///
    /// ```text
    /// UPDATE t SET a = CASE key WHEN $1 THEN $2 WHEN $3 THEN $4 END, .. WHERE key IN ($5, $6)
    /// ```
    ///
    /// each value bound with its Rust type, so PostgreSQL needs none of the casts Django adds.
    /// Then `post_save` for each instance whose row the statement updated (`created` false,
    /// the same `update_fields`), first to last: an instance whose key matches no row gets
    /// `pre_save` only, and is not counted (Django skips it too, and counts only the rows
    /// matched). List each row once: of two instances with one key in the same statement, the
    /// first one's values are written.
    ///
    /// A statement sets at most 500 rows: each `CASE` lists every row of its statement and the
    /// databases try its `WHEN`s one by one, so a statement's work grows with the square of its
    /// rows (32,767 rows in one statement took minutes on PostgreSQL). Each row binds its key
    /// once per field and once more, and its values, within [`Backend::MAX_BIND_PARAMETERS`].
    ///
    /// Duplicate names in `fields` count once. An empty `instances` or `fields` updates and
    /// sends nothing and returns 0, as `save_fields(&[])` does nothing (Django raises
    /// `ValueError` for empty `fields`). Atomicity and the autocommit rule are those of
    /// [`bulk_insert`](ModelExt::bulk_insert): one chunk that nobody hears, given `&pool`, is
    /// its one statement in autocommit.
    ///
    /// # Errors
    ///
    /// [`OrmError::UnknownField`] for a name that is not a saved non-key field (as
    /// [`save_fields`](ModelExt::save_fields)), and [`OrmError::NoPrimaryKey`] when an instance
    /// has no key, both before any signal; then the database's error or the first failing
    /// receiver's, and nothing is updated (the own transaction rolled back; the caller's can
    /// only roll back).
    fn bulk_update<'a, DB: Backend>(
        db: impl IntoDb<'a, DB>,
        instances: &'a mut [Self],
        fields: &'a [&'a str],
    ) -> impl Future<Output = Result<u64, OrmError>> + Send + 'a
    where
        Self: Persist<DB>,
    {
        bulk_update(db.into_db(), instances, fields)
    }
}

impl<M: Model> ModelExt for M {}

/// A connection to run a write on in autocommit, when it is given a pool and no receiver
/// hears its signals `Pre` and `Post` for `M`; `None` when it needs its transaction.
///
/// A transaction only makes receivers atomic with the write, and there are none (none is
/// linked; model signals take no runtime receivers), so the statements run alone, one round
/// trip each, as raw sqlx and Django's `save()` do. A save of an instance with a key then runs
/// UPDATE and, if no row matched, INSERT as two statements, as Django's does. The skipped send
/// still counts as the program's first for the unlinked-receivers check.
///
/// # Errors
///
/// [`OrmError::PoolInReceiver`] inside a receiver of a write on the same pool, or when no
/// connection can be had.
async fn unheard<M: Model, Pre: Signal, Post: Signal, DB: Backend>(
    pool: Option<&sqlx::Pool<DB>>,
) -> Result<Option<sqlx::pool::PoolConnection<DB>>, OrmError> {
    let Some(pool) = pool else {
        return Ok(None);
    };
    let sender = Sender::of::<M>();
    if Pre::registry().has_listeners(sender) || Post::registry().has_listeners(sender) {
        return Ok(None);
    }
    signals_core::__private::unheard_send::<Pre>(sender);
    autocommit(pool, Operation::on::<M>("acquire a connection for a write"))
        .await
        .map(Some)
}

/// A connection of `pool` for a write nobody hears, whose one statement runs alone in
/// autocommit (a save's or delete's, an `add`'s of links).
///
/// # Errors
///
/// [`OrmError::PoolInReceiver`] inside a receiver of a write on the same pool (as a write
/// opening its own transaction there would), or when no connection can be had (`operation`).
pub(crate) async fn autocommit<DB: Backend>(
    pool: &sqlx::Pool<DB>,
    operation: Operation,
) -> Result<sqlx::pool::PoolConnection<DB>, OrmError> {
    if crate::tx::writing_on(pool) {
        return Err(OrmError::PoolInReceiver);
    }
    pool.acquire().await.during(operation)
}

/// One save, atomic with its receivers (`atomically!`).
async fn write<M: Persist<DB>, DB: Backend>(
    model: &mut M,
    db: Db<'_, DB>,
    write: Write<'_>,
    raw: bool,
) -> Result<Saved, OrmError> {
    let mut guard = KeyGuard::new(model);
    let result = match unheard::<M, PreSaveSignal, PostSaveSignal, DB>(db.pool()).await {
        Ok(Some(mut conn)) => write_row(guard.model(), &mut conn, write).await,
        Err(error) => Err(error),
        // In a block of its own: `atomically!` returns early with `?` (a failed BEGIN or
        // COMMIT), and the key must still be given back then.
        Ok(None) => {
            async {
                atomically!(db, |tx| {
                    let saved = save_in(guard.model(), tx, write, raw).await;
                    // From here the COMMIT may happen even if this future is dropped (it
                    // finishes on the runtime): the key stays unless an error comes back.
                    if saved.is_ok() {
                        guard.keep();
                    }
                    saved
                })
            }
            .await
        }
    };
    if result.is_ok() {
        guard.keep();
    } else {
        guard.give_back();
    }
    result
}

/// Gives a generated key back its value from before a save that failed, or was cancelled
/// before its statements and receivers finished (once they did, the COMMIT may still happen
/// on the runtime, so the key stays): the INSERT that assigned it is undone (the save's own
/// transaction rolled back, or the caller's can only roll back past it), and on SQLite, which
/// reuses rowids, a retry keeping that key would UPDATE another row. Fields a `pre_save`
/// receiver changed stay changed, as in Django.
struct KeyGuard<'m, M: Model> {
    model: &'m mut M,
    /// Whether to give the key back on drop: generated keys only (the ORM never changes
    /// others), until the save succeeded.
    restore: bool,
    /// The key before the save.
    before: Option<M::Pk>,
}

impl<'m, M: Model> KeyGuard<'m, M> {
    fn new(model: &'m mut M) -> Self {
        let restore = M::META.pk_generated;
        let before = if restore { model.pk() } else { None };
        KeyGuard {
            model,
            restore,
            before,
        }
    }

    fn model(&mut self) -> &mut M {
        self.model
    }

    /// The save's statements succeeded: its key stands unless `give_back` is called.
    fn keep(&mut self) {
        self.restore = false;
    }

    /// The save failed after all (its COMMIT, say): the key goes back now.
    fn give_back(&mut self) {
        if M::META.pk_generated {
            self.model.set_pk(self.before.take());
        }
        self.restore = false;
    }
}

impl<M: Model> Drop for KeyGuard<'_, M> {
    fn drop(&mut self) {
        if self.restore {
            self.model.set_pk(self.before.take());
        }
    }
}

/// Checks `update_fields` names against the model and removes duplicates.
fn checked_fields<M: Model>(fields: &[&str]) -> Result<Vec<&'static str>, OrmError> {
    let mut out: Vec<&'static str> = Vec::with_capacity(fields.len());
    for name in fields {
        let Some(known) = M::META.fields.iter().find(|f| *f == name) else {
            let hint = M::META
                .fields
                .iter()
                .find(|f| f.eq_ignore_ascii_case(name) || f.contains(name) || name.contains(*f))
                .map(|f| format!(" (did you mean `{f}`?)"))
                .unwrap_or_default();
            return Err(OrmError::UnknownField {
                model: M::META.name,
                field: (*name).to_owned(),
                hint,
            });
        };
        if !out.contains(known) {
            out.push(known);
        }
    }
    Ok(out)
}

async fn save_in<M: Persist<DB>, DB: Backend>(
    model: &mut M,
    tx: &mut Tx<DB>,
    write: Write<'_>,
    raw: bool,
) -> Result<Saved, OrmError> {
    let sender = Sender::of::<M>();
    let update_fields = match write {
        Write::Fields(fields) => Some(fields),
        Write::Save | Write::Insert => None,
    };
    // Before the write, `created` is Django's `_state.adding` (`PreSave::adding`): an INSERT
    // is certain.
    let adding = matches!(write, Write::Insert) || (M::META.pk_generated && model.pk().is_none());
    // The row before the write, for receivers taking `Changes`: read, and locked, only when
    // one of the model's receivers does (an INSERT has none to read).
    let previous = if !adding
        && wants_previous::<M>()
        && let Some(pk) = model.pk()
    {
        Some(previous_row::<M, DB>(&pk, tx).await?)
    } else {
        None
    };
    let pre = SaveEvent {
        instance: model as &mut dyn AnyModel,
        created: adding,
        raw,
        update_fields,
        previous: previous_state(adding, previous.as_ref()),
        tx,
    };
    PreSaveSignal::registry().send(sender, pre).await?;
    let saved = write_row(model, tx.own_conn(), write).await?;
    let post = SaveEvent {
        instance: model as &mut dyn AnyModel,
        created: saved.created(),
        raw,
        update_fields,
        previous: previous_state(adding, previous.as_ref()),
        tx,
    };
    PostSaveSignal::registry().send(sender, post).await?;
    Ok(saved)
}

/// Whether a receiver of `M`'s `pre_save` or `post_save` takes the row's previous values
/// ([`Changes`](crate::Changes)): then a save reads them before `pre_save`. Asked per write,
/// after the check that anybody listens: a read of each registry's current receiver list, no
/// lock, no allocation.
pub(crate) fn wants_previous<M: Model>() -> bool {
    let sender = Sender::of::<M>();
    (PreSaveSignal::registry().needs(sender) | PostSaveSignal::registry().needs(sender))
        & PREVIOUS_ROW
        != 0
}

/// What a save's event says of the previous row: none for an INSERT (`adding`), the row read
/// (`Some`, itself `None` when there was none), or nothing read (`None`).
fn previous_state<M: Model>(adding: bool, previous: Option<&Option<M>>) -> Previous<'_> {
    match previous {
        _ if adding => Previous::Absent,
        Some(row) => Previous::read(row.as_ref().map(|row| row as &dyn AnyModel)),
        None => Previous::Unread,
    }
}

/// The row with key `pk` as it is before a save writes it, `None` if there is none: `SELECT ..
/// WHERE key = $1`, with `FOR UPDATE` on PostgreSQL, so that it cannot change (nor be deleted)
/// between this read and the write.
async fn previous_row<M: Persist<DB>, DB: Backend>(
    pk: &M::Pk,
    tx: &mut Tx<DB>,
) -> Result<Option<M>, OrmError> {
    let select = M::sql().select_by_pk.as_str();
    let text = if sql::locks_rows::<DB>() {
        Cow::Owned(format!("{select} FOR UPDATE"))
    } else {
        Cow::Borrowed(select)
    };
    let operation = Operation::on::<M>("fetch the previous row");
    let query = M::bind_pk(pk, DB::query_with_room(text, 1));
    let row = DB::fetch_optional(tx.own_conn(), query)
        .await
        .during(operation)?;
    row.map(|row| Init::<M, DB>::new().decode(&row, operation))
        .transpose()
}

/// The rows with keys `keys` as they are before a bulk write, by key: as [`previous_row`], one
/// `SELECT .. WHERE key IN (..)` (`FOR UPDATE` on PostgreSQL) per
/// [`Backend::MAX_BIND_PARAMETERS`] keys.
async fn previous_rows<M: Persist<DB>, DB: Backend>(
    keys: &[M::Pk],
    tx: &mut Tx<DB>,
) -> Result<BTreeMap<M::Pk, M>, OrmError> {
    let operation = Operation::on::<M>("fetch the previous rows");
    let init = Init::<M, DB>::new();
    let mut rows = BTreeMap::new();
    for chunk in keys.chunks(DB::MAX_BIND_PARAMETERS) {
        let text = sql::select_where_in(
            M::META,
            M::sql(),
            sql::param_prefix::<DB>(),
            0,
            chunk.len(),
            true,
            sql::locks_rows::<DB>(),
        );
        let mut query = DB::query_with_room(text.into(), chunk.len());
        for key in chunk {
            query = M::bind_pk(key, query);
        }
        crate::backend::for_each_row(tx.own_conn(), query, operation, |row| {
            let model = init.decode(row, operation)?;
            if let Some(pk) = model.pk() {
                rows.insert(pk, model);
            }
            Ok(())
        })
        .await?;
    }
    Ok(rows)
}

async fn write_row<M: Persist<DB>, DB: Backend>(
    model: &mut M,
    conn: &mut DB::Connection,
    write: Write<'_>,
) -> Result<Saved, OrmError> {
    let sql = M::sql();
    let Some(pk) = model.pk() else {
        // A generated key: INSERT ... RETURNING it.
        let insert = Operation::on::<M>("insert");
        let query = model.bind_fields(sqlx::query(sql.insert.as_str()));
        let row = DB::fetch_optional(&mut *conn, query)
            .await
            .and_then(|row| row.ok_or(sqlx::Error::RowNotFound))
            .during(insert)?;
        model.set_pk(Some(M::pk_from_row(&row).during(insert)?));
        return Ok(Saved::Created);
    };
    match write {
        Write::Insert => {
            DB::execute(
                &mut *conn,
                model.bind_fields(M::bind_pk(&pk, sqlx::query(sql.insert_with_pk.as_str()))),
            )
            .await
            .during(Operation::on::<M>("insert"))?;
            Ok(Saved::Created)
        }
        Write::Fields(fields) => {
            let indexes: Vec<usize> = fields
                .iter()
                .filter_map(|f| M::META.fields.iter().position(|k| k == f))
                .collect();
            let mut query =
                sqlx::query(sqlx::AssertSqlSafe(ModelSql::update_of(M::META, &indexes)));
            for &i in &indexes {
                query = model.bind_field(i, query);
            }
            if DB::execute(&mut *conn, M::bind_pk(&pk, query))
                .await
                .during(Operation::on::<M>("update"))?
                == 0
            {
                return Err(OrmError::NotUpdated {
                    model: M::META.name,
                });
            }
            Ok(Saved::Updated)
        }
        Write::Save => {
            if DB::execute(
                &mut *conn,
                M::bind_pk(&pk, model.bind_fields(sqlx::query(sql.update.as_str()))),
            )
            .await
            .during(Operation::on::<M>("update"))?
                > 0
            {
                return Ok(Saved::Updated);
            }
            DB::execute(
                &mut *conn,
                model.bind_fields(M::bind_pk(&pk, sqlx::query(sql.insert_with_pk.as_str()))),
            )
            .await
            .during(Operation::on::<M>("insert"))?;
            Ok(Saved::Created)
        }
    }
}

/// The DELETE of one row.
async fn delete_row<M: Persist<DB>, DB: Backend>(
    pk: &M::Pk,
    conn: &mut DB::Connection,
) -> Result<u64, OrmError> {
    DB::execute(conn, M::bind_pk(pk, sqlx::query(M::sql().delete.as_str())))
        .await
        .during(Operation::on::<M>("delete"))
}

async fn delete_in<M: Persist<DB>, DB: Backend>(
    model: &M,
    pk: &M::Pk,
    tx: &mut Tx<DB>,
) -> Result<u64, OrmError> {
    let sender = Sender::of::<M>();
    PreDeleteSignal::registry()
        .send(
            sender,
            DeleteEvent {
                instance: model,
                origin: Origin::Instance(model),
                tx,
            },
        )
        .await?;
    let deleted = delete_row::<M, DB>(pk, tx.own_conn()).await?;
    PostDeleteSignal::registry()
        .send(
            sender,
            DeleteEvent {
                instance: model,
                origin: Origin::Instance(model),
                tx,
            },
        )
        .await?;
    Ok(deleted)
}

// ==== bulk writes: `bulk_insert` and `bulk_update` =========================================

/// [`ModelExt::bulk_insert`]: the instances' `pre_save`s, INSERTs and `post_save`s, atomic
/// together; generated keys given back on failure.
async fn bulk_insert<M: Persist<DB>, DB: Backend>(
    db: Db<'_, DB>,
    models: &mut [M],
) -> Result<usize, OrmError> {
    if models.is_empty() {
        return Ok(0);
    }
    let mut guard = KeysGuard::new(models);
    // Nobody listening, one statement: it needs no transaction (`unheard`).
    let unheard = if insert_statements::<M, DB>(guard.models()) == 1 {
        unheard::<M, PreSaveSignal, PostSaveSignal, DB>(db.pool()).await
    } else {
        Ok(None)
    };
    let result = match unheard {
        Ok(Some(mut conn)) => insert_rows(guard.models(), &mut conn).await,
        Err(error) => Err(error),
        // In a block of its own, as in `write`: the keys go back also when `atomically!`
        // returns early (a failed BEGIN or COMMIT).
        Ok(None) => {
            async {
                atomically!(db, |tx| {
                    let inserted = bulk_insert_in(guard.models(), tx).await;
                    // The COMMIT may happen from here even if this future is dropped.
                    if inserted.is_ok() {
                        guard.keep();
                    }
                    inserted
                })
            }
            .await
        }
    };
    if result.is_ok() {
        guard.keep();
    } else {
        guard.give_back();
    }
    result.map(|()| guard.models().len())
}

/// The instances' `pre_save`s, INSERTs and `post_save`s in `tx`.
async fn bulk_insert_in<M: Persist<DB>, DB: Backend>(
    models: &mut [M],
    tx: &mut Tx<DB>,
) -> Result<(), OrmError> {
    let sender = Sender::of::<M>();
    for model in models.iter_mut() {
        let pre = SaveEvent {
            instance: model as &mut dyn AnyModel,
            created: true,
            raw: false,
            update_fields: None,
            previous: Previous::Absent,
            tx,
        };
        PreSaveSignal::registry().send(sender, pre).await?;
    }
    insert_rows(models, tx.own_conn()).await?;
    for model in models.iter_mut() {
        let post = SaveEvent {
            instance: model as &mut dyn AnyModel,
            created: true,
            raw: false,
            update_fields: None,
            previous: Previous::Absent,
            tx,
        };
        PostSaveSignal::registry().send(sender, post).await?;
    }
    Ok(())
}

/// Whether an instance is inserted with its key: every instance of a model whose key the
/// application gives, and one whose generated key is set already.
fn keyed<M: Model>(model: &M) -> bool {
    !M::META.pk_generated || model.pk().is_some()
}

/// How many statements [`insert_rows`] runs for `models`.
fn insert_statements<M: Model, DB: Backend>(models: &[M]) -> usize {
    let columns = M::META.columns.len();
    let keyed = models.iter().filter(|m| keyed(*m)).count();
    keyed.div_ceil(bulk_rows(DB::MAX_BIND_PARAMETERS, columns + 1))
        + (models.len() - keyed).div_ceil(bulk_rows(DB::MAX_BIND_PARAMETERS, columns))
}

/// The INSERTs of `models`, [`bulk_rows`] rows each: first those with their key, then those
/// whose key the database generates, which get them from `RETURNING` in `VALUES` order.
async fn insert_rows<M: Persist<DB>, DB: Backend>(
    models: &mut [M],
    conn: &mut DB::Connection,
) -> Result<(), OrmError> {
    let operation = Operation::on::<M>("bulk insert");
    let columns = M::META.columns.len();
    // Given keys first, as Django does: on SQLite the keys generated next then come after them.
    let (with_key, without): (Vec<usize>, Vec<usize>) =
        (0..models.len()).partition(|&i| keyed(&models[i]));
    for chunk in with_key.chunks(bulk_rows(DB::MAX_BIND_PARAMETERS, columns + 1)) {
        let sql = ModelSql::bulk_insert(M::META, chunk.len(), true, DB::ANONYMOUS_PLACEHOLDERS);
        let mut query = DB::query_with_room(sql.into(), chunk.len() * (columns + 1));
        for &i in chunk {
            let model = &models[i];
            if let Some(pk) = model.pk() {
                query = model.bind_fields(M::bind_pk(&pk, query));
            }
        }
        DB::execute(&mut *conn, query).await.during(operation)?;
    }
    for chunk in without.chunks(bulk_rows(DB::MAX_BIND_PARAMETERS, columns)) {
        let sql = ModelSql::bulk_insert(M::META, chunk.len(), false, DB::ANONYMOUS_PLACEHOLDERS);
        let mut query = DB::query_with_room(sql.into(), chunk.len() * columns);
        for &i in chunk {
            query = models[i].bind_fields(query);
        }
        let rows = DB::fetch_all(&mut *conn, query).await.during(operation)?;
        if rows.len() != chunk.len() {
            let returned = format!("{} keys returned for {} rows", rows.len(), chunk.len());
            return Err(sqlx::Error::Protocol(returned)).during(operation);
        }
        for (&i, row) in chunk.iter().zip(&rows) {
            models[i].set_pk(Some(M::pk_from_row(row).during(operation)?));
        }
    }
    Ok(())
}

/// [`KeyGuard`] for the instances of a bulk insert: every generated key goes back to its value
/// from before the call when the insert fails or is cancelled before its statements and
/// receivers finished.
struct KeysGuard<'m, M: Model> {
    models: &'m mut [M],
    /// Whether to give the keys back on drop: generated keys only, until the insert succeeded.
    restore: bool,
    /// The keys before the call, in order (empty for application-given keys).
    before: Vec<Option<M::Pk>>,
}

impl<'m, M: Model> KeysGuard<'m, M> {
    fn new(models: &'m mut [M]) -> Self {
        let restore = M::META.pk_generated;
        let before = if restore {
            models.iter().map(Model::pk).collect()
        } else {
            Vec::new()
        };
        KeysGuard {
            models,
            restore,
            before,
        }
    }

    fn models(&mut self) -> &mut [M] {
        self.models
    }

    /// The statements succeeded: the keys stand unless `give_back` is called.
    fn keep(&mut self) {
        self.restore = false;
    }

    /// The insert failed after all (its COMMIT, say): the keys go back now.
    fn give_back(&mut self) {
        self.restore = M::META.pk_generated;
        self.restore_keys();
    }

    fn restore_keys(&mut self) {
        if std::mem::take(&mut self.restore) {
            for (model, pk) in self.models.iter_mut().zip(self.before.drain(..)) {
                model.set_pk(pk);
            }
        }
    }
}

impl<M: Model> Drop for KeysGuard<'_, M> {
    fn drop(&mut self) {
        self.restore_keys();
    }
}

/// [`ModelExt::bulk_update`]: checks, then the instances' `pre_save`s, UPDATEs and
/// `post_save`s, atomic together.
async fn bulk_update<M: Persist<DB>, DB: Backend>(
    db: Db<'_, DB>,
    models: &mut [M],
    fields: &[&str],
) -> Result<u64, OrmError> {
    let fields = checked_fields::<M>(fields)?;
    if fields.is_empty() || models.is_empty() {
        return Ok(0);
    }
    if models.iter().any(|m| m.pk().is_none()) {
        return Err(OrmError::NoPrimaryKey {
            model: M::META.name,
            action: "updated with bulk_update",
        });
    }
    let indexes: Vec<usize> = fields
        .iter()
        .filter_map(|f| M::META.fields.iter().position(|k| k == f))
        .collect();
    if models.len() <= update_rows_per_statement::<DB>(indexes.len())
        && let Some(mut conn) = unheard::<M, PreSaveSignal, PostSaveSignal, DB>(db.pool()).await?
    {
        return update_rows(models, &indexes, &mut conn, None).await;
    }
    atomically!(db, |tx| bulk_update_in(models, &fields, &indexes, tx).await)
}

/// The instances' `pre_save`s, UPDATEs and `post_save`s (for the rows updated) in `tx`.
async fn bulk_update_in<M: Persist<DB>, DB: Backend>(
    models: &mut [M],
    fields: &[&'static str],
    indexes: &[usize],
    tx: &mut Tx<DB>,
) -> Result<u64, OrmError> {
    let sender = Sender::of::<M>();
    // The rows before the write, for receivers taking `Changes`: read, and locked, only when
    // one of the model's receivers does.
    let previous = if wants_previous::<M>() {
        let keys: Vec<M::Pk> = models.iter().filter_map(Model::pk).collect();
        Some(previous_rows::<M, DB>(&keys, tx).await?)
    } else {
        None
    };
    for model in models.iter_mut() {
        let previous = previous_in(previous.as_ref(), model);
        let pre = SaveEvent {
            instance: model as &mut dyn AnyModel,
            created: false,
            raw: false,
            update_fields: Some(fields),
            previous,
            tx,
        };
        PreSaveSignal::registry().send(sender, pre).await?;
    }
    // Which rows were updated matters only to `post_save` receivers.
    let mut updated = PostSaveSignal::registry()
        .has_listeners(sender)
        .then(HashSet::new);
    let count = update_rows(models, indexes, tx.own_conn(), updated.as_mut()).await?;
    let Some(updated) = updated else {
        return Ok(count);
    };
    for model in models.iter_mut() {
        if !model
            .pk()
            .is_some_and(|pk| updated.contains(&key_text(&pk)))
        {
            continue;
        }
        let previous = previous_in(previous.as_ref(), model);
        let post = SaveEvent {
            instance: model as &mut dyn AnyModel,
            created: false,
            raw: false,
            update_fields: Some(fields),
            previous,
            tx,
        };
        PostSaveSignal::registry().send(sender, post).await?;
    }
    Ok(count)
}

/// The previous row of `model` among those read (`None`: none were read).
fn previous_in<'p, M: Model>(read: Option<&'p BTreeMap<M::Pk, M>>, model: &M) -> Previous<'p> {
    match read {
        Some(rows) => Previous::read(
            model
                .pk()
                .and_then(|pk| rows.get(&pk))
                .map(|row| row as &dyn AnyModel),
        ),
        None => Previous::Unread,
    }
}

/// A key as JSON text, to match the keys an UPDATE returned with the instances'.
fn key_text<K: serde::Serialize>(pk: &K) -> String {
    crate::model::json(pk).to_string()
}

/// The rows of one `bulk_update` statement setting `fields` columns: [`UPDATE_ROWS`] at
/// most, and within the backend's parameter limit (each row binds its key once per column and
/// once in the `IN` list, and its values).
fn update_rows_per_statement<DB: Backend>(fields: usize) -> usize {
    UPDATE_ROWS.min(bulk_rows(DB::MAX_BIND_PARAMETERS, 2 * fields + 1))
}

/// The UPDATEs of fields `indexes` of `models`, [`update_rows_per_statement`] rows each;
/// returns the rows updated. With `updated`, each statement returns its rows' keys, collected
/// there.
async fn update_rows<M: Persist<DB>, DB: Backend>(
    models: &[M],
    indexes: &[usize],
    conn: &mut DB::Connection,
    mut updated: Option<&mut HashSet<String>>,
) -> Result<u64, OrmError> {
    let operation = Operation::on::<M>("bulk update");
    let per_row = 2 * indexes.len() + 1;
    let mut count = 0;
    for chunk in models.chunks(update_rows_per_statement::<DB>(indexes.len())) {
        let keys = chunk
            .iter()
            .map(Model::pk)
            .collect::<Option<Vec<M::Pk>>>()
            // Checked before `pre_save`; a receiver may have unset one since.
            .ok_or(OrmError::NoPrimaryKey {
                model: M::META.name,
                action: "updated with bulk_update",
            })?;
        let sql = ModelSql::case_update(
            M::META,
            indexes,
            chunk.len(),
            updated.is_some(),
            DB::ANONYMOUS_PLACEHOLDERS,
        );
        let mut query = DB::query_with_room(sql.into(), chunk.len() * per_row);
        // In the text's order: each column's `WHEN key THEN value`s, then the `IN` list.
        for &i in indexes {
            for (model, pk) in chunk.iter().zip(&keys) {
                query = model.bind_field(i, M::bind_pk(pk, query));
            }
        }
        for pk in &keys {
            query = M::bind_pk(pk, query);
        }
        match updated.as_deref_mut() {
            Some(keys) => {
                let rows = DB::fetch_all(&mut *conn, query).await.during(operation)?;
                count += rows.len() as u64;
                for row in &rows {
                    keys.insert(key_text(&M::pk_from_row(row).during(operation)?));
                }
            }
            None => count += DB::execute(&mut *conn, query).await.during(operation)?,
        }
    }
    Ok(count)
}
