//! The writes of a model, each sending its signals: `save`, `insert`, `save_fields`, `save_raw`, `delete`, and `get`.
//!
//! A write given a pool opens its own transaction and commits it (running `on_commit`
//! callbacks) or rolls it back. A write given a transaction runs inside it; if the write or a
//! receiver fails, the transaction is marked rollback-only, so partial effects can never be
//! committed (no savepoint per write: it would cost two statements; open one yourself with
//! `Tx::savepoint` or `Tx::atomic` to recover and carry on).

use std::future::Future;

use signals_core::{Sender, Signal};

use crate::backend::Backend;
use crate::error::{Context as _, Operation, OrmError};
use crate::model::{AnyModel, Model, Persist};
use crate::model_signals::{
    DeleteEvent, PostDeleteSignal, PostSaveSignal, PreDeleteSignal, PreSaveSignal, SaveEvent,
};
use crate::sql::ModelSql;
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
    /// generated key (Django sets `pk = None`). Returns the rows deleted (0 or 1).
    ///
    /// # Errors
    ///
    /// [`OrmError::NoPrimaryKey`] (before any signal) without a key, else the database's or the
    /// first failing receiver's error; the delete is undone.
    fn delete<'a, DB: Backend>(
        &'a mut self,
        db: impl IntoDb<'a, DB>,
    ) -> impl Future<Output = Result<u64, OrmError>> + Send + 'a
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
            let deleted =
                match unheard::<Self, PreDeleteSignal, PostDeleteSignal, DB>(db.pool()).await? {
                    Some(mut conn) => delete_row::<Self, DB>(&pk, &mut conn).await?,
                    None => atomically!(db, |tx| delete_in(&*self, &pk, tx).await)?,
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
            row.as_ref()
                .map(Self::from_row)
                .transpose()
                .during(operation)
        }
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
    let pre = SaveEvent {
        // Before the write, `created` is Django's `_state.adding` (`PreSave::adding`): an INSERT
        // is certain. Written first: it reads `model` before `instance` borrows it.
        created: matches!(write, Write::Insert) || (M::META.pk_generated && model.pk().is_none()),
        instance: model as &mut dyn AnyModel,
        raw,
        update_fields,
        tx,
    };
    PreSaveSignal::registry().send(sender, pre).await?;
    let saved = write_row(model, tx.own_conn(), write).await?;
    let post = SaveEvent {
        instance: model as &mut dyn AnyModel,
        created: saved.created(),
        raw,
        update_fields,
        tx,
    };
    PostSaveSignal::registry().send(sender, post).await?;
    Ok(saved)
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
                tx,
            },
        )
        .await?;
    Ok(deleted)
}
