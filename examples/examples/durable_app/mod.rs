//! What the durable programs share (`durable_mail.rs`, the application, and `worker.rs`, the
//! worker any number of machines can run): the models, their durable receivers, the database.
//!
//! Both programs link the same durable receivers: the application so that its writes enqueue
//! their jobs, the worker so that it can run them. A job names its receiver; this module is
//! compiled into two programs, where its path differs, so each receiver fixes its name with
//! `name = ".."`. The programs use their own tables, and not the `examples` library (whose
//! link-time receivers of every model would then be linked in, and want the shop's tables).

#![allow(dead_code, reason = "each program uses its part")]

use std::path::PathBuf;
use std::str::FromStr as _;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::file::AsyncFileTransport;
use lettre::{AsyncTransport as _, Message, Tokio1Executor};
use signals_orm::durable::{self, Backoff, Job};
use signals_orm::receiver;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{PgPool, SqlitePool};

/// The programs' error.
pub type Error = Box<dyn std::error::Error + Send + Sync>;

/// The queue both receivers use.
pub const QUEUE: &str = "signals-mail";

/// A member of the club: welcomed by mail when created.
#[derive(signals_orm::Model, sqlx::FromRow, serde::Serialize, serde::Deserialize, Clone, Debug)]
#[model(table = "durable_members")]
pub struct Member {
    /// Generated key.
    #[model(primary_key)]
    pub id: Option<i64>,
    /// Where mail goes.
    pub email: String,
    /// Display name.
    pub name: String,
}

/// A purchase: confirmed by mail, through a mail server that refuses twice first.
#[derive(signals_orm::Model, sqlx::FromRow, serde::Serialize, serde::Deserialize, Clone, Debug)]
#[model(table = "durable_purchases")]
pub struct Purchase {
    /// Generated key.
    #[model(primary_key)]
    pub id: Option<i64>,
    /// The buyer's address.
    pub email: String,
    /// What was bought.
    pub item: String,
    /// Its price, in cents.
    pub cents: i64,
}

/// Where the `.eml` files go: `DURABLE_DIR/outbox` (default: the temporary folder's
/// `signals-durable/outbox`), the same for the application and the worker.
pub fn outbox() -> PathBuf {
    folder().join("outbox")
}

fn folder() -> PathBuf {
    std::env::var_os("DURABLE_DIR").map_or_else(
        || std::env::temp_dir().join("signals-durable"),
        PathBuf::from,
    )
}

/// A mail server that is down for the first two attempts of every message, then accepts it:
/// what a durable receiver's retries are for.
struct FlakyMailServer;

impl FlakyMailServer {
    async fn deliver(to: &str, subject: &str, body: String, attempt: u32) -> Result<(), Error> {
        if attempt < 3 {
            return Err(format!(
                "421 4.3.2 service not available, try again later (attempt {attempt})"
            )
            .into());
        }
        deliver(to, subject, body).await
    }
}

/// Writes the mail as an `.eml` file in [`outbox`].
async fn deliver(to: &str, subject: &str, body: String) -> Result<(), Error> {
    let outbox = outbox();
    std::fs::create_dir_all(&outbox)?;
    let from: Mailbox = "Signals Club <club@example.com>".parse()?;
    let message = Message::builder()
        .from(from)
        .to(to.parse()?)
        .subject(subject)
        .body(body)?;
    AsyncFileTransport::<Tokio1Executor>::new(outbox)
        .send(message)
        .await?;
    Ok(())
}

/// The recipients of the `.eml` files in [`outbox`], sorted.
pub fn recipients() -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(outbox()).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "eml")
            && let Ok(text) = std::fs::read_to_string(&path)
            && let Some(to) = text.lines().find_map(|l| l.strip_prefix("To: "))
        {
            found.push(to.trim().to_owned());
        }
    }
    found.sort();
    found
}

/// Welcomes new members. 5 attempts, 1 s apart (short, for the demonstration).
#[receiver(
    post_save, sender = Member, durable, name = "durable_app::send_welcome",
    queue = QUEUE, max_attempts = 5, backoff = Backoff::Fixed(Duration::from_secs(1))
)]
async fn send_welcome(job: Job<Member>) -> Result<(), Error> {
    if !job.created {
        return Ok(()); // only new members are welcomed
    }
    let body = format!(
        "Hello {},\n\nwelcome to the club.\n\n(event {}, attempt {})\n",
        job.instance.name, job.event_id, job.attempt
    );
    deliver(&job.instance.email, "Welcome", body).await
}

/// Confirms purchases, through the flaky mail server: delivered on the third attempt.
#[receiver(
    post_save, sender = Purchase, durable, name = "durable_app::send_confirmation",
    queue = QUEUE, max_attempts = 5, backoff = Backoff::Fixed(Duration::from_secs(1))
)]
async fn send_confirmation(job: Job<Purchase>) -> Result<(), Error> {
    let purchase = &job.instance;
    let body = format!(
        "Thank you for buying {} ({}.{:02}).\n\n(event {}, attempt {})\n",
        purchase.item,
        purchase.cents / 100,
        purchase.cents % 100,
        job.event_id,
        job.attempt
    );
    FlakyMailServer::deliver(&purchase.email, "Your purchase", body, job.attempt).await
}

/// The database of both programs: PostgreSQL from `DATABASE_URL`, else the SQLite file
/// `DURABLE_DIR/app.db`.
#[derive(Clone, Debug)]
pub enum AppDb {
    /// SQLite.
    Sqlite(SqlitePool),
    /// PostgreSQL.
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool.
macro_rules! on_app_db {
    ($db:expr, |$pool:ident| $body:expr) => {
        match $db {
            $crate::durable_app::AppDb::Sqlite($pool) => $body,
            $crate::durable_app::AppDb::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_app_db;

impl AppDb {
    /// Opens the database, creating it, apalis's tables and the program's tables when
    /// missing; `fresh` empties the program's tables and its queue first.
    ///
    /// # Errors
    ///
    /// When the database cannot be reached or set up.
    pub async fn open(fresh: bool) -> Result<Self, Error> {
        let db = if let Ok(url) = std::env::var("DATABASE_URL") {
            AppDb::Postgres(
                PgPoolOptions::new()
                    .max_connections(8)
                    .connect(&url)
                    .await?,
            )
        } else {
            let dir = folder();
            std::fs::create_dir_all(&dir)?;
            let path = dir.join("app.db");
            if fresh {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .busy_timeout(Duration::from_secs(30));
            AppDb::Sqlite(
                SqlitePoolOptions::new()
                    .max_connections(8)
                    .connect_with(options)
                    .await?,
            )
        };
        let tables = "CREATE TABLE IF NOT EXISTS durable_members (id {key}, email TEXT NOT NULL, name TEXT NOT NULL);
                      CREATE TABLE IF NOT EXISTS durable_purchases (id {key}, email TEXT NOT NULL, item TEXT NOT NULL, cents BIGINT NOT NULL);";
        match &db {
            AppDb::Sqlite(pool) => {
                durable::setup(pool).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(
                    tables.replace("{key}", "INTEGER PRIMARY KEY"),
                ))
                .execute(pool)
                .await?;
            }
            AppDb::Postgres(pool) => {
                durable::setup(pool).await?;
                let key = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY";
                sqlx::raw_sql(sqlx::AssertSqlSafe(tables.replace("{key}", key)))
                    .execute(pool)
                    .await?;
                if fresh {
                    sqlx::raw_sql(
                        "TRUNCATE durable_members, durable_purchases;
                         DELETE FROM apalis.signals_orm_outbox WHERE queue = 'signals-mail';
                         DELETE FROM apalis.jobs WHERE job_type = 'signals-mail';",
                    )
                    .execute(pool)
                    .await?;
                }
            }
        }
        if fresh {
            let _ = std::fs::remove_dir_all(outbox());
        }
        Ok(db)
    }

    /// `"sqlite"` or `"postgres"`.
    pub fn backend(&self) -> &'static str {
        match self {
            AppDb::Sqlite(_) => "sqlite",
            AppDb::Postgres(_) => "postgres",
        }
    }
}
