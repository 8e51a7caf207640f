//! The shop's database: SQLite (a file, or memory) or PostgreSQL from `DATABASE_URL`, with
//! the schema created fresh on every run.

use std::path::Path;
use std::str::FromStr as _;

use signals_orm::AnyTx;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{PgPool, SqlitePool};

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

const SCHEMA: &str = "
DROP TABLE IF EXISTS post_tags, posts, tags, audit_log, invoices, orders, products, profiles, customers;
CREATE TABLE customers (id {key}, name TEXT NOT NULL, email TEXT NOT NULL, online BOOLEAN NOT NULL DEFAULT FALSE, last_login BIGINT);
CREATE TABLE profiles (id {key}, customer_id BIGINT NOT NULL REFERENCES customers (id), bio TEXT NOT NULL);
CREATE TABLE products (id {key}, name TEXT NOT NULL, stock BIGINT NOT NULL, price_cents BIGINT NOT NULL, image_path TEXT NOT NULL);
CREATE TABLE orders (id {key}, customer_id BIGINT NOT NULL REFERENCES customers (id), email TEXT NOT NULL, product_id BIGINT NOT NULL REFERENCES products (id), quantity BIGINT NOT NULL, total_cents BIGINT NOT NULL, paid BOOLEAN NOT NULL DEFAULT FALSE);
CREATE TABLE invoices (id {key}, customer_id BIGINT NOT NULL REFERENCES customers (id), order_id BIGINT NOT NULL REFERENCES orders (id));
CREATE TABLE audit_log (id {key}, actor TEXT NOT NULL, action TEXT NOT NULL, model TEXT NOT NULL, object_pk TEXT NOT NULL, data TEXT NOT NULL, at BIGINT NOT NULL);
CREATE TABLE posts (id {key}, title TEXT NOT NULL);
CREATE TABLE tags (id {key}, name TEXT NOT NULL, post_count BIGINT NOT NULL DEFAULT 0);
CREATE TABLE post_tags (post_id BIGINT NOT NULL REFERENCES posts (id) ON DELETE CASCADE, tag_id BIGINT NOT NULL REFERENCES tags (id) ON DELETE CASCADE, PRIMARY KEY (post_id, tag_id));
";

/// The tables, in creation order.
pub const TABLES: [&str; 9] = [
    "customers",
    "profiles",
    "products",
    "orders",
    "invoices",
    "audit_log",
    "posts",
    "tags",
    "post_tags",
];

impl ShopDb {
    /// PostgreSQL when `DATABASE_URL` is set, else a SQLite file at `sqlite_file` (created;
    /// WAL mode). Either way the schema is created fresh: running twice starts clean.
    ///
    /// # Errors
    ///
    /// When the database cannot be reached or the schema not created.
    pub async fn open(sqlite_file: &Path) -> Result<Self, sqlx::Error> {
        match std::env::var("DATABASE_URL") {
            Ok(url) => Self::postgres(&url, None).await,
            Err(_) => Self::sqlite_file(sqlite_file).await,
        }
    }

    /// A SQLite file (created, WAL mode) with the schema created fresh.
    ///
    /// # Errors
    ///
    /// When the file cannot be opened or the schema not created.
    pub async fn sqlite_file(path: &Path) -> Result<Self, sqlx::Error> {
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let db = ShopDb::Sqlite(
            SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options)
                .await?,
        );
        db.reset().await?;
        Ok(db)
    }

    /// PostgreSQL at `url`, in `schema` (created if missing) or the default one, with the
    /// shop's tables created fresh.
    ///
    /// # Errors
    ///
    /// When the server cannot be reached or the schema not created.
    pub async fn postgres(url: &str, schema: Option<&str>) -> Result<Self, sqlx::Error> {
        let mut options = PgPoolOptions::new().max_connections(5);
        if let Some(schema) = schema {
            let admin = PgPoolOptions::new().max_connections(1).connect(url).await?;
            let create = format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"");
            sqlx::raw_sql(sqlx::AssertSqlSafe(create))
                .execute(&admin)
                .await?;
            admin.close().await;
            let set = format!("SET search_path TO \"{schema}\"");
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
    pub async fn memory() -> Result<Self, sqlx::Error> {
        let db = ShopDb::Sqlite(
            SqlitePoolOptions::new()
                .max_connections(1)
                .connect("sqlite::memory:")
                .await?,
        );
        db.reset().await?;
        Ok(db)
    }

    /// Drops and creates every table.
    ///
    /// # Errors
    ///
    /// When a statement fails.
    pub async fn reset(&self) -> Result<(), sqlx::Error> {
        match self {
            ShopDb::Sqlite(pool) => {
                // SQLite drops one table per statement.
                let drops: String = TABLES.iter().rev().fold(String::new(), |sql, t| {
                    sql + "DROP TABLE IF EXISTS " + t + ";"
                });
                let creates = SCHEMA
                    .lines()
                    .filter(|l| !l.starts_with("DROP"))
                    .collect::<Vec<_>>()
                    .join("\n");
                let sql = format!("{drops}{}", creates.replace("{key}", "INTEGER PRIMARY KEY"));
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(pool)
                    .await?;
            }
            ShopDb::Postgres(pool) => {
                let sql = SCHEMA.replace(
                    "{key}",
                    "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
                );
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(pool)
                    .await?;
            }
        }
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
