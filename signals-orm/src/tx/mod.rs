//! Transactions that carry an `on_commit` queue, with savepoints and rollback-only marking.
//!
//! Rules (Django's `transaction.on_commit`, plus the savepoint rules Rails gets right):
//! callbacks run after the outermost COMMIT in registration order; rolling back a savepoint
//! discards the callbacks registered inside it; releasing a savepoint hands them to its
//! parent; a rollback, a drop without commit, or a failed COMMIT runs none.

mod handle;
mod hooks;

use std::cell::Cell;
use std::future::Future;

use futures_util::future::BoxFuture;
use signals_core::extract::ReceiverOutput;
use signals_core::{BoxError, SendError};

use crate::backend::Backend;
use crate::error::{Context as _, Operation, OrmError};

pub use handle::AnyTx;
pub use handle::TxHandle;
pub(crate) use handle::tx_of;
pub use hooks::Hook;
pub(crate) use hooks::HookLabel;
pub use hooks::OnCommitCallback;
use hooks::run_hooks;

/// Runs `$body` (an expression using `$tx: &mut Tx<DB>`) atomically: in its own transaction
/// when given a pool, marking the caller's transaction rollback-only on failure otherwise.
macro_rules! atomically {
    ($db:expr, |$tx:ident| $body:expr) => {
        match $db {
            Db::Pool(pool) => {
                // Boxed: sqlx's begin future is 3 KB on SQLite and 9 KB on PostgreSQL, and held
                // inline it would make every write's future that large, also in a transaction
                // (where it never runs) and in receivers that save (boxed on each call).
                if $crate::tx::writing_on(pool) {
                    return Err(OrmError::PoolInReceiver);
                }
                let mut own = Box::pin(Tx::begin(pool)).await?;
                let result = $crate::tx::while_writing(own.pool_key(), async {
                    let $tx = &mut own;
                    $body
                })
                .await;
                match result {
                    Ok(value) => {
                        let _report = own.commit().await?; // failures are logged by commit
                        Ok(value)
                    }
                    Err(error) => {
                        own.rollback_quietly().await;
                        Err(error)
                    }
                }
            }
            Db::Tx(caller) => {
                caller.check_usable()?;
                // Marks the transaction if this future is dropped before the write finished
                // (a timeout, a client gone): its first statements may have run.
                let depth = caller.depth();
                let mut guard = $crate::tx::CancelGuard::new(caller, "a write", depth);
                let $tx = guard.tx();
                let result = $crate::tx::while_writing($tx.pool_key(), async { $body }).await;
                if let Err(error) = &result
                    && !error.refused_before_writing()
                {
                    $tx.set_rollback_only(format!(
                        "an earlier write in it failed: {}",
                        $crate::error::chain_text(error)
                    ));
                }
                guard.finished();
                result
            }
        }
    };
}

thread_local! {
    /// The pool (see [`pool_id`]) whose connection the write being polled on this thread holds
    /// in a transaction, or 0: set around each poll of a write's statements and receivers, so
    /// it follows the task (a plain `Cell`, cheaper than a tokio task-local on every write).
    static WRITING_ON: Cell<usize> = const { Cell::new(0) };
}

/// A pool's identity, the same for all its clones: the address of its options, which live
/// in the pool's shared state.
fn pool_id<DB: Backend>(pool: &sqlx::Pool<DB>) -> usize {
    std::ptr::from_ref(pool.options()).addr()
}

/// Whether a write in this task holds a connection of `pool` in a transaction: a receiver's
/// write given that pool would wait for it forever (the lock on SQLite, a connection or row
/// lock on PostgreSQL).
pub(crate) fn writing_on<DB: Backend>(pool: &sqlx::Pool<DB>) -> bool {
    WRITING_ON.get() == pool_id(pool)
}

/// Runs `work` (a write's statements and receivers) marked as holding a connection of the
/// pool `pool` (a [`Tx::pool_key`]) while it is polled.
pub(crate) async fn while_writing<T>(pool: usize, work: impl Future<Output = T>) -> T {
    /// Puts the outer value back, also when a poll unwinds.
    struct Restore(usize);
    impl Drop for Restore {
        fn drop(&mut self) {
            WRITING_ON.set(self.0);
        }
    }
    let mut work = std::pin::pin!(work);
    std::future::poll_fn(|cx| {
        // An adopted transaction (no pool known, 0) keeps what the outer write set.
        let marked = if pool == 0 { WRITING_ON.get() } else { pool };
        let _restore = Restore(WRITING_ON.replace(marked));
        work.as_mut().poll(cx)
    })
    .await
}

/// A read's result in a caller's transaction: a failed read marks it rollback-only, as a
/// failed write does (on PostgreSQL it aborted the transaction, and a COMMIT would silently
/// roll back).
fn read_in<DB: Backend, T>(
    tx: &mut Tx<DB>,
    result: Result<T, sqlx::Error>,
    operation: Operation,
) -> Result<T, sqlx::Error> {
    if let Err(error) = &result {
        failed_read(tx, operation, error);
    }
    result
}

/// Marks `tx` rollback-only after a read in it failed in the database.
fn failed_read(tx: &mut Tx<impl Backend>, operation: Operation, error: &sqlx::Error) {
    tx.set_rollback_only(format!(
        "an earlier read in it failed: {operation} failed: {error}"
    ));
}

/// Where a write runs: a pool (the write opens, commits or rolls back its own transaction) or
/// a transaction of the caller (the write runs inside it).
pub enum Db<'a, DB: Backend> {
    /// Each write gets its own transaction.
    Pool(&'a sqlx::Pool<DB>),
    /// The write joins the caller's transaction.
    Tx(&'a mut Tx<DB>),
}

impl<'a, DB: Backend> Db<'a, DB> {
    /// The pool, when the write is given one rather than the caller's transaction.
    pub(crate) fn pool(&self) -> Option<&'a sqlx::Pool<DB>> {
        match self {
            Db::Pool(pool) => Some(pool),
            Db::Tx(_) => None,
        }
    }

    /// Runs a read: on a connection of the pool, or inside the caller's transaction, handing
    /// each row to `each` as it arrives (see `backend::for_each_row`).
    pub(crate) async fn fetch_each(
        self,
        query: sqlx::query::Query<'_, DB, DB::Arguments>,
        operation: Operation,
        each: impl FnMut(&DB::Row) -> Result<(), OrmError>,
    ) -> Result<u64, OrmError> {
        match self {
            Db::Pool(pool) => {
                let mut conn = pool.acquire().await.during(operation)?;
                crate::backend::for_each_row(&mut *conn, query, operation, each).await
            }
            Db::Tx(tx) => {
                let result =
                    crate::backend::for_each_row(tx.own_conn(), query, operation, each).await;
                // A database error marks the transaction as a failed read does; a row that
                // does not decode left it usable.
                if let Err(OrmError::Database { source, .. }) = &result {
                    failed_read(tx, operation, source);
                }
                result
            }
        }
    }

    /// Runs a read and decodes its rows into models as they arrive, each with its
    /// `post_init`.
    pub(crate) async fn fetch_models<M: crate::Persist<DB>>(
        self,
        query: sqlx::query::Query<'_, DB, DB::Arguments>,
        operation: Operation,
    ) -> Result<Vec<M>, OrmError> {
        let mut models = Vec::new();
        let init = crate::init::Init::<M, DB>::new();
        self.fetch_each(query, operation, |row| {
            models.push(init.decode(row, operation)?);
            Ok(())
        })
        .await?;
        Ok(models)
    }

    /// Runs a read of at most one row, as [`fetch_each`](Db::fetch_each).
    pub(crate) async fn fetch_optional(
        self,
        query: sqlx::query::Query<'_, DB, DB::Arguments>,
        operation: Operation,
    ) -> Result<Option<DB::Row>, OrmError> {
        match self {
            Db::Pool(pool) => {
                let mut conn = pool.acquire().await.during(operation)?;
                DB::fetch_optional(&mut conn, query).await
            }
            Db::Tx(tx) => {
                let result = DB::fetch_optional(tx.own_conn(), query).await;
                read_in(tx, result, operation)
            }
        }
        .during(operation)
    }
}

/// What writes and reads take as their database: `&pool` (each write in a transaction of its
/// own) or `&mut tx` (the caller's [`Tx`]).
///
/// A `sqlx::Transaction` from `pool.begin()` becomes a [`Tx`] with `Tx::from(transaction)`.
#[diagnostic::on_unimplemented(
    message = "writes and reads take `&pool` or `&mut signals_orm::Tx`, not `{Self}`",
    label = "expected `&pool` or `&mut tx`",
    note = "pass the pool by reference (`&pool`), or a transaction begun with `signals_orm::Tx::begin(&pool)`",
    note = "an existing `sqlx::Transaction` becomes a `Tx` with `signals_orm::Tx::from(transaction)`"
)]
pub trait IntoDb<'a, DB: Backend> {
    /// The pool or the transaction, as [`Db`].
    fn into_db(self) -> Db<'a, DB>;
}

impl<'a, DB: Backend> IntoDb<'a, DB> for &'a sqlx::Pool<DB> {
    fn into_db(self) -> Db<'a, DB> {
        // Every write and fetch takes its database here: the ORM's first use prepares the
        // model registry (`class_prepared`); after that, one atomic load.
        crate::registry::prepared();
        Db::Pool(self)
    }
}

impl<'a, DB: Backend> IntoDb<'a, DB> for &'a mut Tx<DB> {
    fn into_db(self) -> Db<'a, DB> {
        crate::registry::prepared();
        Db::Tx(self)
    }
}

impl<'a, DB: Backend> IntoDb<'a, DB> for Db<'a, DB> {
    fn into_db(self) -> Db<'a, DB> {
        self
    }
}

/// A database transaction with an `on_commit` queue: `sqlx::Transaction` plus Django's
/// `transaction.on_commit` and savepoint rules.
///
/// Begin one with [`Tx::begin`] (SQLite: `BEGIN IMMEDIATE`) or adopt a `sqlx::Transaction`
/// with `Tx::from`, pass `&mut tx` to writes (`user.save(&mut tx)`), run your own queries with
/// `.execute(tx.conn())` (the same spelling in a receiver that got `tx: &mut Tx<_>`), and end
/// it with [`Tx::commit`] or [`Tx::rollback`]; dropping it rolls back.
///
/// A write that fails inside it (its SQL or one of its receivers) marks it rollback-only, like
/// Django's `needs_rollback`: [`Tx::commit`] then rolls back and says why. Open a
/// [`savepoint`](Tx::savepoint) around a write you want to recover from.
///
/// # Example
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use signals_orm::Tx;
///
/// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
/// let mut tx = Tx::begin(&pool).await?;
/// sqlx::query("CREATE TABLE t (x INTEGER)").execute(tx.conn()).await?;
/// tx.on_commit(|| async { println!("committed"); });
/// let report = tx.commit().await?;
/// assert!(report.failures.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
pub struct Tx<DB: Backend> {
    inner: sqlx::Transaction<'static, DB>,
    hooks: Vec<Hook>,
    /// `hooks.len()` when each open savepoint began, innermost last. (Staged durable jobs need
    /// no mark: a savepoint opens with none, see [`Tx::savepoint`].)
    savepoints: Vec<usize>,
    /// Why the transaction may only roll back, and the savepoint depth at which that happened.
    rollback_only: Option<(usize, String)>,
    /// Whether statements other than the ORM's own may have run in it (its connection was
    /// lent out by `conn`, `DerefMut` or `as_sqlx`, the only ways to run raw SQL in it): on
    /// PostgreSQL one of them may have failed unseen and aborted the transaction, so `commit`
    /// checks before it trusts the COMMIT. ORM writes, in receivers too, do not count: they
    /// return their failures.
    lent: bool,
    /// The pool it was begun on (`pool_id`), or 0 for an adopted sqlx transaction.
    pool: usize,
    /// Durable receivers' jobs enqueued in it and not yet written to the outbox: they are
    /// written before the COMMIT (`durable/outbox.rs`).
    #[cfg(feature = "durable")]
    staged: crate::durable::Staged<DB>,
}

/// Marks a transaction rollback-only when dropped before [`finished`](CancelGuard::finished):
/// a write or an `atomic` block whose future was dropped halfway may have run some of its
/// statements, and committing them would commit half a write.
pub(crate) struct CancelGuard<'t, DB: Backend> {
    tx: &'t mut Tx<DB>,
    what: &'static str,
    /// The savepoint depth the guarded work began at: what it did is undone only by rolling
    /// back past it.
    depth: usize,
    done: bool,
}

impl<'t, DB: Backend> CancelGuard<'t, DB> {
    pub(crate) fn new(tx: &'t mut Tx<DB>, what: &'static str, depth: usize) -> Self {
        CancelGuard {
            tx,
            what,
            depth,
            done: false,
        }
    }

    /// The guarded transaction, for the guarded work.
    pub(crate) fn tx(&mut self) -> &mut Tx<DB> {
        self.tx
    }

    /// The work ran to its end (successfully or not): nothing to mark.
    pub(crate) fn finished(mut self) {
        self.done = true;
    }
}

impl<DB: Backend> Drop for CancelGuard<'_, DB> {
    fn drop(&mut self) {
        if !self.done {
            let why = format!(
                "{} in it was cancelled (its future dropped) before it finished",
                self.what
            );
            self.tx.mark_at(self.depth, why);
        }
    }
}

/// What happened to the `on_commit` callbacks of a committed transaction.
#[derive(Debug, Default)]
pub struct CommitReport {
    /// How many callbacks ran.
    pub ran: usize,
    /// The callbacks that failed or panicked, in registration order; the data is committed.
    pub failures: Vec<SendError>,
}

impl<DB: Backend> Tx<DB> {
    /// Begins a transaction on a connection of `pool` (`BEGIN IMMEDIATE` on SQLite).
    ///
    /// # Errors
    ///
    /// When no connection can be had or `BEGIN` fails.
    pub async fn begin(pool: &sqlx::Pool<DB>) -> Result<Self, OrmError> {
        // sqlx 0.9.0's `BEGIN` is not cancel-safe on PostgreSQL (its issue 4393): dropped while
        // the reply is awaited, it leaves the pooled connection inside a transaction nothing
        // ends, and the next write nobody hears (run in autocommit) would return `Ok` and never
        // commit. Dropped unfinished, the BEGIN finishes on the runtime instead, where the
        // transaction it returns is dropped and rolled back as usual.
        let begin = {
            let pool = pool.clone();
            FinishOnDrop(Some(Box::pin(
                async move { pool.begin_with(DB::BEGIN).await },
            )))
        };
        let mut tx = Tx::from(begin.await.during(Operation::tx("BEGIN"))?);
        tx.pool = pool_id(pool);
        Ok(tx)
    }

    /// The transaction's connection, to run your own queries in it:
    /// `sqlx::query(..).execute(tx.conn())`. Written the same on a `Tx` you own and on the
    /// `&mut Tx` a receiver gets (`Tx` also derefs to the connection, as `sqlx::Transaction`).
    pub fn conn(&mut self) -> &mut DB::Connection {
        self.lent = true;
        &mut self.inner
    }

    /// The sqlx transaction, for APIs that want it.
    pub fn as_sqlx(&mut self) -> &mut sqlx::Transaction<'static, DB> {
        self.lent = true;
        &mut self.inner
    }

    /// The pool it was begun on, as `pool_id` says, or 0 (no pool) when adopted.
    pub(crate) fn pool_key(&self) -> usize {
        self.pool
    }

    /// The connection, for the ORM's own statements (which report their failures, so they do
    /// not count as lending it).
    pub(crate) fn own_conn(&mut self) -> &mut DB::Connection {
        &mut self.inner
    }

    /// The durable jobs staged in it.
    #[cfg(feature = "durable")]
    pub(crate) fn staged(&mut self) -> &mut crate::durable::Staged<DB> {
        &mut self.staged
    }

    /// Writes the staged durable jobs to the outbox now, through its connection. Jobs written
    /// inside a savepoint are rows: rolling the savepoint back removes them as any write. On
    /// failure (or cancellation) they stay staged.
    #[cfg(feature = "durable")]
    pub(crate) async fn flush_staged(&mut self) -> Result<(), sqlx::Error> {
        self.staged.flush(&mut self.inner).await
    }

    /// How many savepoints are open.
    #[must_use]
    pub fn depth(&self) -> usize {
        self.savepoints.len()
    }

    /// Queues `callback` to run after the outermost COMMIT, in registration order (Django's
    /// `transaction.on_commit`): a closure returning `()` or `Result<(), E>`, or a future of
    /// one (`move || async move { .. }`). Failures are logged and returned in the
    /// [`CommitReport`], and never undo the commit.
    pub fn on_commit<M>(&mut self, callback: impl CommitCallback<M>) {
        let label = HookLabel {
            signal: "on_commit",
            sender: "-",
            receiver: callback.name(),
        };
        self.hooks.push(Hook::new(label, callback.into_hook()));
    }

    /// The `on_commit` callbacks queued in this transaction so far, in the order they will
    /// run: who queued each ([`OnCommitCallback`]: signal, sender, receiver). Callbacks of a
    /// savepoint rolled back are not listed (they were discarded); those of a savepoint still
    /// open or released are.
    ///
    /// For tests, Django's `captureOnCommitCallbacks()`: a test that rolls its transaction
    /// back at the end can still check what would have run after COMMIT; with
    /// [`run_on_commit_queue`](Tx::run_on_commit_queue) it can run them too.
    ///
    /// # Example
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use signals_orm::Tx;
    ///
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
    /// let mut tx = Tx::begin(&pool).await?;
    /// tx.on_commit(|| async { println!("mail sent") });
    /// let queued = tx.on_commit_queue();
    /// assert_eq!(queued.len(), 1);
    /// assert_eq!(queued[0].signal, "on_commit");
    /// let report = tx.run_on_commit_queue().await; // runs it, without committing
    /// assert_eq!((report.ran, report.failures.len()), (1, 0));
    /// assert!(tx.on_commit_queue().is_empty());
    /// tx.rollback().await?; // the test's data is gone, the callback ran
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    #[must_use]
    pub fn on_commit_queue(&self) -> Vec<OnCommitCallback> {
        self.hooks.iter().map(Hook::label).collect()
    }

    /// Runs the queued `on_commit` callbacks now, in order, without committing, and empties
    /// the queue: Django's `captureOnCommitCallbacks(execute=True)`, for tests that roll
    /// their transaction back. Returns what [`commit`](Tx::commit) would have returned about
    /// them: how many ran and each failure (reported as `commit` reports them).
    ///
    /// The transaction goes on: callbacks queued later run at the COMMIT (or at the next call).
    /// What ran is gone from the queue even if a savepoint open now is rolled back later. It
    /// does not check whether the transaction could commit ([`rollback_only`](Tx::rollback_only)
    /// says that).
    pub async fn run_on_commit_queue(&mut self) -> CommitReport {
        let hooks = std::mem::take(&mut self.hooks);
        // Every savepoint open now began at or before the end of what ran: rolling one back
        // discards only what is queued from now on.
        for mark in &mut self.savepoints {
            *mark = 0;
        }
        run_hooks(
            hooks,
            "on_commit callback failed (run by `run_on_commit_queue`, without COMMIT)",
        )
        .await
    }

    /// Opens a savepoint; writes after it can be undone with
    /// [`rollback_to_savepoint`](Tx::rollback_to_savepoint) without losing the transaction.
    /// Durable receivers' jobs staged in the transaction are written to the outbox first, so
    /// that rolling the savepoint back keeps them (`docs/durable.md`).
    ///
    /// # Errors
    ///
    /// When `SAVEPOINT` fails, or the INSERT of staged durable jobs before it (which marks the
    /// transaction rollback-only, as a failed write does).
    pub async fn savepoint(&mut self) -> Result<(), OrmError> {
        // Staged durable jobs belong to the scope they were staged in: written now, before the
        // SAVEPOINT, they stay with it, and whatever is staged later belongs to the savepoint
        // (rolled back with it, or written inside it, a flush of 64 then being undone by its
        // ROLLBACK TO without taking the enclosing writes' jobs along).
        #[cfg(feature = "durable")]
        if let Err(error) = self.flush_staged().await {
            self.set_rollback_only(format!(
                "the INSERT of its durable jobs before a SAVEPOINT failed: {error}"
            ));
            return Err(OrmError::Database {
                operation: Operation::tx("INSERT of the durable jobs before SAVEPOINT"),
                source: error,
            });
        }
        let name = self.savepoints.len() + 1;
        DB::execute_raw(&mut self.inner, format!("SAVEPOINT signals_sp_{name}"))
            .await
            .during(Operation::tx("SAVEPOINT"))?;
        self.savepoints.push(self.hooks.len());
        Ok(())
    }

    /// Releases the innermost savepoint; its `on_commit` callbacks pass to the parent.
    ///
    /// # Errors
    ///
    /// [`OrmError::NoSavepoint`] if none is open, or when `RELEASE` fails.
    pub async fn release_savepoint(&mut self) -> Result<(), OrmError> {
        let name = self.savepoints.len();
        if name == 0 {
            return Err(OrmError::NoSavepoint);
        }
        DB::execute_raw(
            &mut self.inner,
            format!("RELEASE SAVEPOINT signals_sp_{name}"),
        )
        .await
        .during(Operation::tx("RELEASE SAVEPOINT"))?;
        self.savepoints.pop();
        // What failed inside the released savepoint now belongs to its parent: only rolling
        // back past the parent may clear the mark.
        if let Some((depth, _)) = &mut self.rollback_only {
            *depth = (*depth).min(name - 1);
        }
        Ok(())
    }

    /// Rolls back to the innermost savepoint and closes it: its writes and its `on_commit`
    /// callbacks are discarded, and a rollback-only mark set inside it is cleared.
    ///
    /// # Errors
    ///
    /// [`OrmError::NoSavepoint`] if none is open, or when `ROLLBACK TO` fails.
    pub async fn rollback_to_savepoint(&mut self) -> Result<(), OrmError> {
        let name = self.savepoints.len();
        let Some(&mark) = self.savepoints.last() else {
            return Err(OrmError::NoSavepoint);
        };
        DB::execute_raw(
            &mut self.inner,
            format!("ROLLBACK TO SAVEPOINT signals_sp_{name}; RELEASE SAVEPOINT signals_sp_{name}"),
        )
        .await
        .during(Operation::tx("ROLLBACK TO SAVEPOINT"))?;
        self.savepoints.pop();
        self.hooks.truncate(mark);
        // Every job staged now was staged inside this savepoint (it opened with none).
        #[cfg(feature = "durable")]
        self.staged.clear();
        if self
            .rollback_only
            .as_ref()
            .is_some_and(|(depth, _)| *depth >= name)
        {
            self.rollback_only = None;
        }
        Ok(())
    }

    /// Runs `f` inside a savepoint: released if it returns `Ok`, rolled back if it returns
    /// `Err` (Django's nested `atomic()`). The `on_commit` callbacks queued inside a block
    /// that rolled back are discarded; the transaction goes on.
    ///
    /// As in Django, a block that returns `Ok` after a write inside it failed (the block caught
    /// the error) is rolled back to its savepoint too, and the transaction goes on; `f`'s value
    /// is returned. A block whose future is dropped before it ended leaves the transaction
    /// unable to commit (see [`Tx::commit`]) until that savepoint is rolled back.
    ///
    /// `f` returns a boxed future (`Box::pin(async move { .. })`) because it borrows the
    /// transaction for the block's lifetime.
    ///
    /// # Errors
    ///
    /// `f`'s error, or the savepoint's own.
    ///
    /// # Example
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use signals_orm::{OrmError, Tx};
    ///
    /// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
    /// sqlx::raw_sql("CREATE TABLE t (x INTEGER)").execute(&pool).await?;
    /// let mut tx = Tx::begin(&pool).await?;
    /// sqlx::raw_sql("INSERT INTO t VALUES (1)").execute(tx.conn()).await?;
    /// // A block that fails: its INSERT is rolled back to the savepoint, the first one stays.
    /// let failed: Result<(), OrmError> = tx
    ///     .atomic(|tx| {
    ///         Box::pin(async move {
    ///             sqlx::raw_sql("INSERT INTO t VALUES (2)").execute(tx.conn()).await.unwrap();
    ///             Err(OrmError::NoSavepoint) // any error of the block's type
    ///         })
    ///     })
    ///     .await;
    /// assert!(failed.is_err());
    /// tx.commit().await?;
    /// let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t").fetch_one(&pool).await?;
    /// assert_eq!(rows, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
    /// ```
    pub async fn atomic<T, E>(
        &mut self,
        f: impl for<'t> FnOnce(&'t mut Tx<DB>) -> BoxFuture<'t, Result<T, E>>,
    ) -> Result<T, E>
    where
        E: From<OrmError>,
    {
        self.savepoint().await?;
        let depth = self.savepoints.len();
        // Dropped before the block and its savepoint's release or rollback finished, the
        // savepoint cannot be rolled back here (no async in drop): the mark, set at the
        // block's own depth, makes the transaction refuse to commit until it is.
        let mut guard = CancelGuard::new(self, "an `atomic` block", depth);
        let result = f(guard.tx()).await;
        let tx = guard.tx();
        // Django: a block that ends with the transaction marked inside it (a write failed and
        // the block caught the error) is rolled back to its savepoint, and the outer
        // transaction goes on.
        let marked_inside = tx
            .rollback_only
            .as_ref()
            .is_some_and(|(at, _)| *at >= depth);
        let ended = match result {
            Ok(value) if !marked_inside => tx.release_savepoint().await.map(|()| Ok(value)),
            Ok(value) => tx.rollback_to_savepoint().await.map(|()| Ok(value)),
            Err(error) => tx.rollback_to_savepoint().await.map(|()| Err(error)),
        };
        guard.finished();
        ended?
    }

    /// Marks the transaction so that it can only roll back; `commit` will say `why`.
    pub fn set_rollback_only(&mut self, why: impl Into<String>) {
        let depth = self.savepoints.len();
        self.mark_at(depth, why.into());
    }

    /// Marks the transaction rollback-only as of savepoint depth `depth`: the first reason is
    /// kept, and an existing mark moves out to `depth` if that is shallower (a cancelled outer
    /// block covers what its inner block marked).
    fn mark_at(&mut self, depth: usize, why: String) {
        match &mut self.rollback_only {
            None => self.rollback_only = Some((depth, why)),
            Some((at, _)) => *at = (*at).min(depth),
        }
    }

    /// Why the transaction can only roll back, if it can.
    #[must_use]
    pub fn rollback_only(&self) -> Option<&str> {
        self.rollback_only.as_ref().map(|(_, why)| why.as_str())
    }

    pub(crate) fn check_usable(&self) -> Result<(), OrmError> {
        match &self.rollback_only {
            Some((_, why)) => Err(OrmError::RollbackOnly {
                reason: why.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Commits, then runs the `on_commit` callbacks in registration order.
    ///
    /// On PostgreSQL a statement that failed in the transaction aborts it, and the server
    /// answers a later COMMIT with a silent ROLLBACK that sqlx reports as success. When raw
    /// SQL may have run in the transaction (its connection was lent by [`conn`](Tx::conn),
    /// `DerefMut` or [`as_sqlx`](Tx::as_sqlx), in a receiver or not), `commit` first runs one
    /// statement to tell the two apart, and returns an error instead of reporting a commit
    /// that did not happen; a transaction only ORM writes ran in needs no check (each returned
    /// its failure).
    ///
    /// The COMMIT and the callbacks run in the caller's task (they see its task-locals and
    /// tracing span); if the future of `commit` is dropped before they finished (a timeout, a
    /// client gone), what is left of them is handed to the tokio runtime and still runs, once.
    /// A process that exits first runs none of what is left.
    ///
    /// # Errors
    ///
    /// [`OrmError::RollbackOnly`] (after rolling back) if a write failed or was cancelled
    /// inside the transaction; the database's error if COMMIT fails or PostgreSQL aborted the
    /// transaction, in which case no callback runs.
    pub async fn commit(mut self) -> Result<CommitReport, OrmError> {
        if let Some((_, reason)) = self.rollback_only.take() {
            rollback_quietly(self.inner).await;
            return Err(OrmError::RollbackOnly { reason });
        }
        if self.lent
            && let Err(error) = DB::check_committable(&mut self.inner).await
        {
            rollback_quietly(self.inner).await;
            return Err(OrmError::Database {
                operation: Operation::tx("COMMIT"),
                source: error,
            });
        }
        #[cfg(feature = "durable")]
        if let Err(error) = self.flush_staged().await {
            rollback_quietly(self.inner).await;
            return Err(OrmError::Database {
                operation: Operation::tx("INSERT of the durable jobs before COMMIT"),
                source: error,
            });
        }
        #[cfg(feature = "durable")]
        let staged = std::mem::take(&mut self.staged);
        let hooks = std::mem::take(&mut self.hooks);
        if hooks.is_empty() {
            // Nothing is lost if this future is dropped mid-COMMIT, and the common write
            // needs no box.
            self.inner.commit().await.during(Operation::tx("COMMIT"))?;
            #[cfg(feature = "durable")]
            staged.committed();
            return Ok(CommitReport::default());
        }
        let inner = self.inner;
        FinishOnDrop(Some(Box::pin(async move {
            inner.commit().await.during(Operation::tx("COMMIT"))?;
            #[cfg(feature = "durable")]
            staged.committed();
            Ok(run_hooks(hooks, "on_commit callback failed after COMMIT").await)
        })))
        .await
    }

    /// Rolls back, logging rather than returning a failure of the ROLLBACK itself, so the
    /// error that caused it is the one the caller sees.
    pub(crate) async fn rollback_quietly(self) {
        rollback_quietly(self.inner).await;
    }

    /// Rolls back; no `on_commit` callback runs.
    ///
    /// # Errors
    ///
    /// The database's error.
    pub async fn rollback(self) -> Result<(), OrmError> {
        self.inner
            .rollback()
            .await
            .during(Operation::tx("ROLLBACK"))?;
        Ok(())
    }
}

/// Work polled in the caller's task that must not stop halfway: dropped before it finished,
/// it hands what is left to the tokio runtime. The COMMIT and the callbacks after it (so a
/// committed transaction's callbacks are never lost to a caller that stopped waiting), and
/// `BEGIN` (see [`Tx::begin`]).
struct FinishOnDrop<T: Send + 'static>(Option<BoxFuture<'static, T>>);

impl<T: Send + 'static> Future for FinishOnDrop<T> {
    type Output = T;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let Some(finish) = self.0.as_mut() else {
            unreachable!("polled after it returned")
        };
        let result = std::task::ready!(finish.as_mut().poll(cx));
        self.0 = None;
        std::task::Poll::Ready(result)
    }
}

impl<T: Send + 'static> Drop for FinishOnDrop<T> {
    fn drop(&mut self) {
        if let Some(rest) = self.0.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(rest);
        }
    }
}

async fn rollback_quietly<DB: Backend>(tx: sqlx::Transaction<'static, DB>) {
    if let Err(error) = tx.rollback().await {
        // The caller gets the error that caused the rollback, not this one: stderr when no
        // tracing subscriber is installed (`signals_core::__private::Report`).
        signals_core::__private::Report::warning(
            "ROLLBACK failed after an error; the connection is dropped",
        )
        .caused_by(&error)
        .emit();
    }
}

/// Adopts a transaction begun with sqlx (`pool.begin().await?`): writes can then join it
/// (`user.save(&mut tx)`), and its `on_commit` queue runs after [`Tx::commit`]. Savepoints
/// opened through sqlx before adoption are not known to it; open them with [`Tx::savepoint`].
impl<DB: Backend> From<sqlx::Transaction<'static, DB>> for Tx<DB> {
    fn from(inner: sqlx::Transaction<'static, DB>) -> Self {
        Tx {
            inner,
            hooks: Vec::new(),
            savepoints: Vec::new(),
            rollback_only: None,
            lent: false,
            pool: 0,
            #[cfg(feature = "durable")]
            staged: crate::durable::Staged::default(),
        }
    }
}

impl<DB: Backend> std::ops::Deref for Tx<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &DB::Connection {
        &self.inner
    }
}

impl<DB: Backend> std::ops::DerefMut for Tx<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        self.lent = true;
        &mut self.inner
    }
}

impl<DB: Backend> std::fmt::Debug for Tx<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("backend", &<DB as Backend>::NAME)
            .field("savepoints", &self.savepoints.len())
            .field("on_commit", &self.hooks.len())
            .field("rollback_only", &self.rollback_only())
            .finish_non_exhaustive()
    }
}

/// What [`Tx::on_commit`] takes: a closure run after COMMIT, sync (`|| ..`) or returning a
/// future (`|| async { .. }`), whose result is `()` or `Result<(), E>`. `M` only tells the two
/// apart.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an `on_commit` callback",
    label = "expected `move || ..` or `move || async move {{ .. }}` returning `()` or `Result<(), E>`",
    note = "the callback runs after COMMIT, when the transaction is gone: it takes no arguments and owns what it uses (`move`)",
    note = "`E` may be any error convertible into `Box<dyn Error + Send + Sync>`"
)]
pub trait CommitCallback<M>: Send + 'static {
    /// The callback as a queued hook.
    #[doc(hidden)]
    fn into_hook(self) -> Box<dyn FnOnce() -> BoxFuture<'static, Result<(), BoxError>> + Send>;
    /// The name shown in errors and in [`Tx::on_commit_queue`]: the closure's type.
    #[doc(hidden)]
    fn name(&self) -> &'static str {
        std::any::type_name::<Self>()
    }
}

/// Marks a callback returning a future.
#[doc(hidden)]
pub enum Awaited {}
/// Marks a callback returning its result directly.
#[doc(hidden)]
pub enum Immediate {}

impl<F, Fut> CommitCallback<(Awaited, Fut)> for F
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output: ReceiverOutput> + Send + 'static,
{
    fn into_hook(self) -> Box<dyn FnOnce() -> BoxFuture<'static, Result<(), BoxError>> + Send> {
        Box::new(move || Box::pin(async move { self().await.into_result() }))
    }
}

impl<F, R> CommitCallback<(Immediate, R)> for F
where
    F: FnOnce() -> R + Send + 'static,
    R: ReceiverOutput + 'static,
{
    fn into_hook(self) -> Box<dyn FnOnce() -> BoxFuture<'static, Result<(), BoxError>> + Send> {
        Box::new(move || Box::pin(std::future::ready(self().into_result())))
    }
}
