//! The shop's database: SQLite (a file, or memory) or PostgreSQL from `DATABASE_URL`, with
//! the schema created fresh on every run by the shop's sqlx migrations (`examples/migrations`),
//! and apalis's job tables for the shop's durable receivers ([`crate::jobs`]).

use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use signals_orm::AnyTx;
use signals_orm::migrate::migrate;
use sqlx::migrate::Migrator;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{PgPool, SqlitePool};

use crate::Error;

/// A pool on either backend. Cloning shares the pool.
#[derive(Clone, Debug)]
pub enum ShopDb {
    /// SQLite.
    Sqlite(SqlitePool),
    /// PostgreSQL.
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool.
#[macro_export]
macro_rules! on_db {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::db::ShopDb::Sqlite($pool) => $body,
            $crate::db::ShopDb::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` with `$tx` bound to the concrete `&mut Tx` inside an [`AnyTx`].
#[macro_export]
macro_rules! on_tx {
    ($tx:expr, |$t:ident| $body:expr) => {
        match $tx {
            signals_orm::AnyTx::Sqlite($t) => $body,
            signals_orm::AnyTx::Postgres($t) => $body,
        }
    };
}

/// The shop's migrations on SQLite (`examples/migrations/sqlite`), run by
/// `signals_orm::migrate::migrate`, which sends `pre_migrate` and `post_migrate` around them.
pub static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
/// The same on PostgreSQL (`examples/migrations/postgres`: identity keys).
pub static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// The tables, in creation order.
pub const TABLES: [&str; 12] = [
    "customers",
    "profiles",
    "products",
    "orders",
    "invoices",
    "audit_log",
    "posts",
    "tags",
    "post_tags",
    "shipping_methods",
    "product_sales",
    "sales_events",
];

impl ShopDb {
    /// PostgreSQL when `DATABASE_URL` is set, else a SQLite file at `sqlite_file` (created;
    /// WAL mode). Either way the schema is created fresh: running twice starts clean.
    ///
    /// # Errors
    ///
    /// When the database cannot be reached or the schema not created.
    pub async fn open(sqlite_file: &Path) -> Result<Self, Error> {
        match std::env::var("DATABASE_URL") {
            Ok(url) => Self::postgres(&url, None).await,
            Err(_) => Self::sqlite_file(sqlite_file).await,
        }
    }

    /// A SQLite file (created, WAL mode) with the schema created fresh. Eight connections and
    /// a 30 s busy timeout: the shop's durable worker shares the pool and the write lock with
    /// the shop's own writes.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened or the schema not created.
    pub async fn sqlite_file(path: &Path) -> Result<Self, Error> {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(30));
        let db = ShopDb::Sqlite(
            SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(options)
                .await?,
        );
        db.reset().await?;
        Ok(db)
    }

    /// PostgreSQL at `url`, in `schema` (created if missing) or the default one, with the
    /// shop's tables created fresh. The search path is `schema, public`: apalis's job tables
    /// live in their own schema (`apalis`, shared by every schema of the database) and use
    /// the `hstore` type, in `public`.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached or the schema not created.
    pub async fn postgres(url: &str, schema: Option<&str>) -> Result<Self, Error> {
        let mut options = PgPoolOptions::new().max_connections(8);
        if let Some(schema) = schema {
            let admin = PgPoolOptions::new().max_connections(1).connect(url).await?;
            let create = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
            sqlx::raw_sql(sqlx::AssertSqlSafe(create))
                .execute(&admin)
                .await?;
            admin.close().await;
            let set = format!("SET search_path TO \"{schema}\", public");
            options = options.after_connect(move |conn, _| {
                let set = set.clone();
                Box::pin(async move {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(set))
                        .execute(conn)
                        .await
                        .map(drop)
                })
            });
        }
        let db = ShopDb::Postgres(options.connect(url).await?);
        db.reset().await?;
        Ok(db)
    }

    /// A fresh in-memory SQLite database with the schema.
    ///
    /// # Errors
    ///
    /// When SQLite cannot open it.
    pub async fn memory() -> Result<Self, Error> {
        let db = ShopDb::Sqlite(
            SqlitePoolOptions::new()
                .max_connections(1)
                .connect("sqlite::memory:")
                .await?,
        );
        db.reset().await?;
        Ok(db)
    }

    /// Drops every table (and sqlx's migration history), then runs the shop's migrations
    /// through `signals_orm::migrate::migrate` (`post_migrate` seeds the default rows), checks
    /// every model against the tables they made (`signals_orm::check`), and creates apalis's
    /// job tables if missing (`signals_orm::durable::setup`). Jobs left in the shop's queues
    /// are cleared by [`ShopWorker::start`](crate::jobs::ShopWorker::start), not here.
    ///
    /// On PostgreSQL the tables dropped are those of the pool's own schema (`current_schema()`),
    /// never a table of the same name further down the search path (`public`).
    ///
    /// # Errors
    ///
    /// When a statement, a migration or a `post_migrate` receiver fails, or a model does not
    /// fit its table (the error lists each problem).
    pub async fn reset(&self) -> Result<(), Error> {
        let schema = match self {
            ShopDb::Sqlite(_) => String::new(),
            ShopDb::Postgres(pool) => {
                let name: String = sqlx::query_scalar("SELECT current_schema()")
                    .fetch_one(pool)
                    .await?;
                format!("\"{name}\".")
            }
        };
        let drops: String = TABLES
            .iter()
            .rev()
            .chain(&["_sqlx_migrations"])
            .fold(String::new(), |sql, t| {
                sql + "DROP TABLE IF EXISTS " + &schema + t + ";"
            });
        on_db!(self, |pool| sqlx::raw_sql(sqlx::AssertSqlSafe(drops))
            .execute(pool)
            .await
            .map(drop))?;
        match self {
            ShopDb::Sqlite(pool) => migrate(pool, &SQLITE_MIGRATIONS).await?,
            ShopDb::Postgres(pool) => migrate(pool, &POSTGRES_MIGRATIONS).await?,
        };
        // Django's system checks, for the schema: every model's table and columns as the
        // migrations left them, or an error listing what does not fit.
        on_db!(self, |pool| signals_orm::check(pool).await?.into_result())?;
        on_db!(self, |pool| signals_orm::durable::setup(pool).await)?;
        Ok(())
    }

    /// `"sqlite"` or `"postgres"`.
    #[must_use]
    pub fn backend(&self) -> &'static str {
        match self {
            ShopDb::Sqlite(_) => "sqlite",
            ShopDb::Postgres(_) => "postgres",
        }
    }

    /// An integer from a query without parameters (`SELECT COUNT(*) ...`).
    ///
    /// # Errors
    ///
    /// The database's error.
    pub async fn scalar(&self, sql: &'static str) -> Result<i64, sqlx::Error> {
        on_db!(self, |pool| sqlx::query_scalar(sql).fetch_one(pool).await)
    }

    /// Text from a query without parameters, one value per row.
    ///
    /// # Errors
    ///
    /// The database's error.
    pub async fn texts(&self, sql: &'static str) -> Result<Vec<String>, sqlx::Error> {
        on_db!(self, |pool| sqlx::query_scalar(sql).fetch_all(pool).await)
    }

    /// Rows per table, in [`TABLES`] order.
    ///
    /// # Errors
    ///
    /// The database's error.
    pub async fn row_counts(&self) -> Result<Vec<(&'static str, i64)>, sqlx::Error> {
        let mut counts = Vec::new();
        for table in TABLES {
            let sql = format!("SELECT COUNT(*) FROM {table}");
            let n = on_db!(self, |pool| sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(pool)
                .await?);
            counts.push((table, n));
        }
        Ok(counts)
    }
}

/// Runs a statement with integer parameters inside a receiver's transaction; returns the rows
/// affected.
///
/// # Errors
///
/// The database's error.
pub async fn execute(
    tx: &mut AnyTx<'_>,
    sql: &'static str,
    params: &[i64],
) -> Result<u64, sqlx::Error> {
    on_tx!(tx, |t| {
        let mut query = sqlx::query(sql);
        for p in params {
            query = query.bind(*p);
        }
        Ok(query.execute(t.conn()).await?.rows_affected())
    })
}

/// Integers from a query with integer parameters, inside a receiver's transaction.
///
/// # Errors
///
/// The database's error.
pub async fn integers(
    tx: &mut AnyTx<'_>,
    sql: &'static str,
    params: &[i64],
) -> Result<Vec<i64>, sqlx::Error> {
    on_tx!(tx, |t| {
        let mut query = sqlx::query_scalar(sql);
        for p in params {
            query = query.bind(*p);
        }
        query.fetch_all(t.conn()).await
    })
}
