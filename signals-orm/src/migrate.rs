//! Django's `pre_migrate` and `post_migrate` around sqlx's migrator: [`migrate`] runs a
//! `sqlx::migrate::Migrator` (from `sqlx::migrate!()`) and sends both, so receivers can seed
//! default rows once the schema exists. The rules are in `docs/orm.md`, "Migration signals".

use std::borrow::Cow;

use signals_core::__private::{FromEvent, Registry};
use signals_core::{BoxError, Sender, Signal};
use sqlx::migrate::{Migrate, MigrateError, Migrator};

use crate::tx::{AnyTx, TxHandle, tx_of};
use crate::{Backend, OrmError, Tx};

/// One migration of a [`Migrator`], as the migration signals describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct MigrationInfo {
    /// Its version (the number its file name starts with).
    pub version: i64,
    /// Its description (the rest of the file name).
    pub description: Cow<'static, str>,
}

/// What [`migrate`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Migrated {
    /// The migrations this call applied, in order; empty when the schema was up to date.
    pub applied: Vec<MigrationInfo>,
}

/// Sent by [`migrate`] before it applies anything (Django's `pre_migrate`), with the pending
/// migrations (possibly none: it is sent on every run, as Django sends it).
///
/// Receivers take `&PreMigrate`: `#[receiver(signals_orm::migrate::PreMigrate)]`. A failing
/// receiver stops the migration before anything is applied.
#[derive(crate::Signal, Debug)]
#[signal(name = "pre_migrate", crate = crate)]
#[non_exhaustive]
pub struct PreMigrate {
    /// The migrations about to be applied, in order.
    pub pending: Vec<MigrationInfo>,
    /// The backend (`"sqlite"` or `"postgres"`), Django's `using`.
    pub using: &'static str,
}

/// `post_migrate` as a type: what receivers name in `#[receiver(..)]` and what
/// [`Mute`](crate::Mute) and [`has_listeners`](crate::dispatch::has_listeners) take.
///
/// Sent by [`migrate`] after the migrations ran (Django's `post_migrate`), on every run, inside
/// a transaction of its own that receivers write in: `#[receiver(PostMigrateSignal)] async fn
/// seed(ev: PostMigrate<'_>, tx: AnyTx<'_>)` (or `&mut Tx<Sqlite>` / `&mut Tx<Postgres>`).
/// A failing receiver rolls that transaction back and fails the call, naming the receiver;
/// the migrations themselves stay applied, so running [`migrate`] again sends `post_migrate`
/// again: receivers seed idempotently (`INSERT .. ON CONFLICT DO NOTHING`, or check first), as
/// Django's do.
#[derive(Debug, Clone, Copy)]
pub struct PostMigrateSignal;

/// The event behind `post_migrate`.
pub struct PostMigrateEvent<'e> {
    applied: &'e [MigrationInfo],
    using: &'static str,
    tx: &'e mut dyn TxHandle,
}

impl Signal for PostMigrateSignal {
    const NAME: &'static str = "post_migrate";
    type Event<'e> = PostMigrateEvent<'e>;
    type Reply = ();

    fn reborrow<'s>(event: &'s mut PostMigrateEvent<'_>) -> PostMigrateEvent<'s> {
        PostMigrateEvent {
            applied: event.applied,
            using: event.using,
            tx: &mut *event.tx,
        }
    }

    fn registry() -> &'static Registry<Self> {
        signals_core::__signal_registry!(PostMigrateSignal)
    }
}

/// `post_migrate`'s payload: the migrations this run applied (possibly none) and the backend.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct PostMigrate<'e> {
    /// The migrations this run applied, in order (Django's `plan`).
    pub applied: &'e [MigrationInfo],
    /// The backend (`"sqlite"` or `"postgres"`), Django's `using`.
    pub using: &'static str,
}

impl<'e, X: ?Sized> FromEvent<'e, PostMigrateSignal, X> for PostMigrate<'e> {
    fn from_event(event: PostMigrateEvent<'e>) -> Result<Self, BoxError> {
        Ok(PostMigrate {
            applied: event.applied,
            using: event.using,
        })
    }
}

impl<'e, X: ?Sized, DB: Backend> FromEvent<'e, PostMigrateSignal, X>
    for (PostMigrate<'e>, &'e mut Tx<DB>)
{
    fn from_event(event: PostMigrateEvent<'e>) -> Result<Self, BoxError> {
        let payload = PostMigrate {
            applied: event.applied,
            using: event.using,
        };
        Ok((payload, tx_of::<DB>(event.tx)?))
    }
}

impl<'e, X: ?Sized> FromEvent<'e, PostMigrateSignal, X> for (PostMigrate<'e>, AnyTx<'e>) {
    fn from_event(event: PostMigrateEvent<'e>) -> Result<Self, BoxError> {
        let payload = PostMigrate {
            applied: event.applied,
            using: event.using,
        };
        Ok((payload, AnyTx::of(event.tx)?))
    }
}

/// Runs `migrator`'s pending migrations on `pool`, sending `pre_migrate` before and
/// `post_migrate` after (Django's `migrate` command and its two signals).
///
/// 1. Under the migrator's lock (PostgreSQL's advisory lock; SQLite's writer lock serialises
///    anyway), the pending migrations are listed and `pre_migrate` is sent with them. A
///    failing receiver stops here: nothing was applied.
/// 2. The migrator applies them, each in its own transaction, as `Migrator::run` does (it
///    validates the checksums of those applied before, too).
/// 3. `post_migrate` is sent with the migrations applied, inside a new transaction its
///    receivers write in, committed when they all succeed.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use signals_orm::migrate::{migrate, PostMigrate, PostMigrateSignal};
/// use signals_orm::{receiver, AnyTx, OrmError};
///
/// // Seeds the default row; idempotent, since post_migrate comes with every run.
/// #[receiver(PostMigrateSignal)]
/// async fn seed(_ev: PostMigrate<'_>, tx: AnyTx<'_>) -> Result<(), sqlx::Error> {
///     if let AnyTx::Sqlite(tx) = tx {
///         sqlx::query("INSERT INTO settings (name) VALUES ('default') ON CONFLICT DO NOTHING")
///             .execute(tx.conn())
///             .await?;
///     }
///     Ok(())
/// }
///
/// # let dir = std::env::temp_dir().join(format!("signals-migrate-doc-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// # std::fs::write(dir.join("1_settings.sql"), "CREATE TABLE settings (name TEXT PRIMARY KEY);").unwrap();
/// // In an application: `static MIGRATOR: Migrator = sqlx::migrate!("migrations");`
/// let migrator = sqlx::migrate::Migrator::new(dir.as_path()).await.unwrap();
/// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await.unwrap();
/// let first = migrate(&pool, &migrator).await?;
/// assert_eq!(first.applied.len(), 1);
/// let again = migrate(&pool, &migrator).await?; // nothing to apply; seeds again, harmlessly
/// assert!(again.applied.is_empty());
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), OrmError>(()) }).unwrap();
/// ```
///
/// # Errors
///
/// [`OrmError::Migration`] when the migrator fails (a bad migration, a changed checksum, a
/// dirty version); [`OrmError::Signal`] naming the receiver when a `pre_migrate` or
/// `post_migrate` receiver fails; [`OrmError::Database`] when a connection or the
/// `post_migrate` transaction fails.
pub async fn migrate<DB: Backend>(
    pool: &sqlx::Pool<DB>,
    migrator: &Migrator,
) -> Result<Migrated, OrmError>
where
    DB::Connection: Migrate,
{
    use crate::error::{Context as _, Operation};
    let operation = Operation::on_table("migrate", "_sqlx_migrations");
    let mut conn = pool.acquire().await.during(operation)?;
    if migrator.locking {
        conn.lock().await.map_err(OrmError::Migration)?;
    }
    let result = apply(&mut *conn, migrator, <DB as Backend>::NAME).await;
    if migrator.locking {
        // The lock is released with the connection's session if this fails; report the
        // migration's own error first.
        let unlocked = conn.unlock().await;
        if result.is_ok() {
            unlocked.map_err(OrmError::Migration)?;
        }
    }
    drop(conn);
    let applied = result?;
    let mut tx = Tx::begin(pool).await?;
    let event = PostMigrateEvent {
        applied: &applied,
        using: <DB as Backend>::NAME,
        tx: &mut tx,
    };
    if let Err(error) = PostMigrateSignal::registry()
        .send(Sender::NONE, event)
        .await
    {
        tx.rollback().await?;
        return Err(OrmError::Signal(error));
    }
    tx.commit().await?;
    Ok(Migrated { applied })
}

/// Lists the pending migrations, sends `pre_migrate`, applies them; returns those applied.
async fn apply<C: Migrate>(
    conn: &mut C,
    migrator: &Migrator,
    using: &'static str,
) -> Result<Vec<MigrationInfo>, OrmError> {
    let table = &migrator.table_name;
    for schema in migrator.create_schemas.iter() {
        conn.create_schema_if_not_exists(schema)
            .await
            .map_err(OrmError::Migration)?;
    }
    conn.ensure_migrations_table(table)
        .await
        .map_err(OrmError::Migration)?;
    let done = conn
        .list_applied_migrations(table)
        .await
        .map_err(OrmError::Migration)?;
    let pending: Vec<MigrationInfo> = migrator
        .iter()
        .filter(|m| {
            !m.migration_type.is_down_migration() && !done.iter().any(|d| d.version == m.version)
        })
        .map(|m| MigrationInfo {
            version: m.version,
            description: m.description.clone(),
        })
        .collect();
    let pre = PreMigrate { pending, using };
    signals_core::send(Sender::NONE, &pre)
        .await
        .map_err(OrmError::Signal)?;
    // `run_direct` takes the lock again: PostgreSQL's advisory lock counts per session, and the
    // caller releases its own.
    migrator
        .run_direct(None, conn, false)
        .await
        .map_err(OrmError::Migration)?;
    Ok(pre.pending)
}

impl From<MigrateError> for OrmError {
    fn from(error: MigrateError) -> Self {
        OrmError::Migration(error)
    }
}
