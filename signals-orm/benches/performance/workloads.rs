//! Workloads 2-5: ORM writes that send signals against raw sqlx running the same SQL text in
//! the same transaction shape, on each backend, in the same process and run.
//!
//! Each repetition measures both sides, alternating which goes first, each on a fresh database
//! (a new in-memory database, a new WAL file, or truncated PostgreSQL tables) prepared outside
//! the timed part; after each run the rows written are checked, also outside it.

use std::path::PathBuf;
use std::str::FromStr as _;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use peak_alloc::PeakAlloc;
use signals_orm::m2m::Through;
use signals_orm::{Backend, Model, ModelExt, OrmError, Persist, Tx};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, Executor as _, PgPool, Pool, Postgres, Row as _, Sqlite, SqlitePool};

use crate::Config;
use crate::models::{
    CapitalizedUser, NewUser, NoopUser, Post, PostTags, Profile, ProfiledUser, QuietPostTags, User,
    capitalize,
};

/// The benchmark's tables (shared with Django).
pub const SCHEMA: &str = include_str!("../schema.sql");

// The raw side's SQL, written out: the ORM must generate exactly these (checked at start).
const INSERT_USER: &str = r#"INSERT INTO "users" ("name") VALUES ($1) RETURNING "id""#;
const INSERT_PROFILE: &str =
    r#"INSERT INTO "profiles" ("user_id", "bio") VALUES ($1, $2) RETURNING "id""#;
const DELETE_USER: &str = r#"DELETE FROM "users" WHERE "id" = $1"#;

/// Workload 5's raw INSERT: every tag of one post in one statement, `rows` rows, as a sqlx user
/// writes it (`INSERT INTO "post_tags" ("post_id", "tag_id") VALUES ($1, $2), ($3, $4), ...
/// ON CONFLICT DO NOTHING`); built once per process, checked against the ORM's.
fn insert_links(rows: usize) -> &'static str {
    static SQL: OnceLock<(usize, String)> = OnceLock::new();
    let (built_for, sql) = SQL.get_or_init(|| {
        let values: Vec<String> = (0..rows)
            .map(|row| format!("(${}, ${})", 2 * row + 1, 2 * row + 2))
            .collect();
        let sql = format!(
            r#"INSERT INTO "post_tags" ("post_id", "tag_id") VALUES {} ON CONFLICT DO NOTHING"#,
            values.join(", ")
        );
        // Raw sqlx runs the very statement the ORM runs.
        assert_eq!(
            QuietPostTags::sql().insert_links(rows, signals_orm::__private::Returning::Nothing),
            sql
        );
        (rows, sql)
    });
    assert_eq!(*built_for, rows, "one tag count per process");
    sql
}

/// Which `users` receivers a save workload runs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receivers {
    /// No save receivers.
    None,
    /// One no-op `post_save` receiver.
    Noop,
    /// A `post_save` receiver creating a `Profile` in the same transaction.
    Profile,
    /// A `pre_save` receiver capitalizing the name.
    Capitalize,
}

impl Receivers {
    const ALL: [Receivers; 4] = [
        Receivers::None,
        Receivers::Noop,
        Receivers::Profile,
        Receivers::Capitalize,
    ];

    /// How the table names it.
    pub fn label(self) -> &'static str {
        match self {
            Receivers::None => "no receivers",
            Receivers::Noop => "no-op post_save",
            Receivers::Profile => "post_save creates Profile",
            Receivers::Capitalize => "pre_save capitalizes",
        }
    }

    /// Django's key for it (`bench.py`).
    pub fn key(self) -> &'static str {
        match self {
            Receivers::None => "none",
            Receivers::Noop => "noop",
            Receivers::Profile => "profile",
            Receivers::Capitalize => "capitalize",
        }
    }
}

/// One measured workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Case {
    /// Workload 2: every save in one transaction.
    OneTx(Receivers),
    /// Workload 3: every save given the pool, one transaction each.
    TxPerSave(Receivers),
    /// Workload 4: deletes one by one in one transaction, `post_delete` receiver.
    Deletes,
    /// Workload 5: `add` of the tags to each post in one transaction.
    M2mAdd(M2mReceivers),
}

/// Which `m2m_changed` receivers workload 5 runs with (one relation type each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum M2mReceivers {
    /// None (`QuietPostTags`): the add is its INSERT alone.
    None,
    /// One no-op receiver (`PostTags`): the add reads the current links for `pre_add`.
    Noop,
}

impl Case {
    fn all() -> Vec<Case> {
        let mut cases: Vec<Case> = Receivers::ALL.into_iter().map(Case::OneTx).collect();
        cases.extend(Receivers::ALL.into_iter().map(Case::TxPerSave));
        cases.extend([
            Case::Deletes,
            Case::M2mAdd(M2mReceivers::None),
            Case::M2mAdd(M2mReceivers::Noop),
        ]);
        cases
    }

    /// The workload's number and description.
    pub fn label(self, config: &Config) -> String {
        let n = count(config.saves);
        match self {
            Case::OneTx(r) => format!("2. {n} saves, 1 tx: {}", r.label()),
            Case::TxPerSave(r) => format!("3. {n} saves, tx each: {}", r.label()),
            Case::Deletes => format!("4. {n} deletes, 1 tx: no-op post_delete"),
            Case::M2mAdd(receivers) => format!(
                "5. add {} tags to {} posts, 1 tx: {}",
                config.tags,
                count(config.posts),
                match receivers {
                    M2mReceivers::None => "no receivers",
                    M2mReceivers::Noop => "no-op m2m_changed",
                }
            ),
        }
    }

    /// The key of Django's result for the same workload, if Django runs it.
    pub fn django_key(self) -> Option<String> {
        match self {
            Case::OneTx(r) => Some(format!("save-{}", r.key())),
            Case::TxPerSave(_) => None,
            Case::Deletes => Some("delete".to_owned()),
            Case::M2mAdd(M2mReceivers::None) => Some("m2m-add-none".to_owned()),
            Case::M2mAdd(M2mReceivers::Noop) => Some("m2m-add".to_owned()),
        }
    }

    /// Operations per run: saves, deletes, or `add` calls.
    pub fn ops(self, config: &Config) -> usize {
        match self {
            Case::OneTx(_) | Case::TxPerSave(_) | Case::Deletes => config.saves,
            Case::M2mAdd(_) => config.posts,
        }
    }

    /// What an operation is, per second.
    pub fn unit(self) -> &'static str {
        match self {
            Case::OneTx(_) | Case::TxPerSave(_) => "saves/s",
            Case::Deletes => "deletes/s",
            Case::M2mAdd(_) => "adds/s",
        }
    }
}

/// `12,345` for a rate.
pub fn thousands(value: f64) -> String {
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        reason = "display of a positive rate"
    )]
    let whole = value.round().max(0.0) as usize;
    count(whole)
}

/// `12,345` for a count.
pub fn count(value: usize) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Medians of one side's repetitions.
#[derive(Debug, Clone, Default)]
pub struct Side {
    /// Seconds of each repetition.
    pub secs: Vec<f64>,
    /// Heap peak above the start of each repetition, bytes.
    pub peaks: Vec<usize>,
    /// The process's heap peak during each repetition, bytes.
    pub peak_totals: Vec<usize>,
}

impl Side {
    /// The median run time.
    pub fn median_secs(&self) -> f64 {
        median(&self.secs)
    }

    /// The median heap peak above the start of a run.
    pub fn median_growth(&self) -> f64 {
        median_bytes(&self.peaks)
    }

    /// The median heap peak of the process during a run.
    pub fn median_peak(&self) -> f64 {
        median_bytes(&self.peak_totals)
    }
}

#[expect(clippy::cast_precision_loss, reason = "bytes shown in KiB")]
fn median_bytes(values: &[usize]) -> f64 {
    median(&values.iter().map(|&b| b as f64).collect::<Vec<_>>())
}

/// The median (mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => f64::midpoint(sorted[n / 2 - 1], sorted[n / 2]),
    }
}

/// One workload on one backend.
#[derive(Debug, Clone)]
pub struct Row {
    /// The workload.
    pub case: Case,
    /// `sqlite-memory`, `sqlite-file` or `postgres`.
    pub backend: &'static str,
    /// Through the ORM, with signals.
    pub ours: Side,
    /// Raw sqlx.
    pub raw: Side,
}

/// Every workload on every backend that ran, and why others did not.
#[derive(Debug, Default)]
pub struct OrmResults {
    /// In run order.
    pub rows: Vec<Row>,
    /// Backends skipped, and why.
    pub notes: Vec<String>,
}

/// The display name of a backend key.
pub fn backend_name(key: &str) -> &'static str {
    match key {
        "sqlite-memory" => "SQLite memory",
        "sqlite-file" => "SQLite WAL file",
        "postgres" => "PostgreSQL",
        _ => "?",
    }
}

/// Where the SQLite files of this run go (Django's too).
pub fn bench_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("signals-bench-{}", std::process::id()))
}

fn runtime() -> tokio::runtime::Runtime {
    // Raw sqlx runs the very statements the ORM runs.
    assert_eq!(<User as Model>::sql().insert, INSERT_USER);
    assert_eq!(<Profile as Model>::sql().insert, INSERT_PROFILE);
    assert_eq!(<User as Model>::sql().delete, DELETE_USER);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Runs workloads 2-5 on SQLite, in memory and on a WAL file.
pub fn run_sqlite(config: &Config, results: &mut OrmResults) {
    runtime().block_on(async {
        eprintln!("\n== 2-5. ORM workloads: SQLite in memory");
        run_backend(config, &mut SqliteMemory(None), results).await;
        let dir = bench_dir();
        std::fs::create_dir_all(&dir).expect("bench directory");
        eprintln!(
            "\n== 2-5. ORM workloads: SQLite WAL file in {}",
            dir.display()
        );
        let mut file = SqliteFile {
            path: dir.join("rust.db"),
            pool: None,
        };
        run_backend(config, &mut file, results).await;
        file.close().await;
    });
}

/// Runs workloads 2-5 on PostgreSQL, if `DATABASE_URL` is set.
pub fn run_postgres(config: &Config, results: &mut OrmResults) {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        results
            .notes
            .push("PostgreSQL: skipped, DATABASE_URL is not set".to_owned());
        return;
    };
    runtime().block_on(async {
        eprintln!("\n== 2-5. ORM workloads: PostgreSQL");
        let mut pg = Pg::connect(&url).await;
        run_backend(config, &mut pg, results).await;
        pg.drop_schema().await;
    });
}

/// A database that hands out a fresh, empty pool for each run.
trait Source<DB: BenchDb> {
    const KEY: &'static str;
    async fn fresh(&mut self) -> Pool<DB>;
}

/// A new in-memory database per run (one connection: each is its own database).
struct SqliteMemory(Option<SqlitePool>);

impl Source<Sqlite> for SqliteMemory {
    const KEY: &'static str = "sqlite-memory";
    async fn fresh(&mut self) -> SqlitePool {
        if let Some(old) = self.0.take() {
            old.close().await;
        }
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .expect("sqlite memory");
        Sqlite::exec(&pool, Sqlite::schema()).await;
        self.0 = Some(pool.clone());
        pool
    }
}

/// A new WAL file per run; sqlx's defaults otherwise (`synchronous = FULL`, foreign keys on).
struct SqliteFile {
    path: PathBuf,
    pool: Option<SqlitePool>,
}

impl SqliteFile {
    async fn close(&mut self) {
        if let Some(old) = self.pool.take() {
            old.close().await;
        }
        for suffix in ["", "-wal", "-shm"] {
            let mut path = self.path.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
}

impl Source<Sqlite> for SqliteFile {
    const KEY: &'static str = "sqlite-file";
    async fn fresh(&mut self) -> SqlitePool {
        self.close().await;
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", self.path.display()))
            .expect("sqlite url")
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .expect("sqlite file");
        Sqlite::exec(&pool, Sqlite::schema()).await;
        self.pool = Some(pool.clone());
        pool
    }
}

/// A schema of its own on `DATABASE_URL`, truncated before each run.
struct Pg {
    url: String,
    schema: String,
    pool: PgPool,
}

impl Pg {
    async fn connect(url: &str) -> Self {
        let schema = format!("signals_bench_{}", std::process::id());
        let admin = PgPool::connect(url).await.expect("DATABASE_URL reachable");
        admin
            .execute(AssertSqlSafe(format!(
                "DROP SCHEMA IF EXISTS \"{schema}\" CASCADE; CREATE SCHEMA \"{schema}\""
            )))
            .await
            .expect("create schema");
        admin.close().await;
        let search_path = format!("SET search_path TO \"{schema}\"");
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .after_connect(move |conn, _| {
                let sql = search_path.clone();
                Box::pin(async move {
                    conn.execute(AssertSqlSafe(sql)).await?;
                    Ok(())
                })
            })
            .connect(url)
            .await
            .expect("postgres pool");
        Postgres::exec(&pool, Postgres::schema()).await;
        Pg {
            url: url.to_owned(),
            schema,
            pool,
        }
    }

    async fn drop_schema(self) {
        self.pool.close().await;
        let admin = PgPool::connect(&self.url)
            .await
            .expect("DATABASE_URL reachable");
        let _ = admin
            .execute(AssertSqlSafe(format!(
                "DROP SCHEMA \"{}\" CASCADE",
                self.schema
            )))
            .await;
        admin.close().await;
    }
}

impl Source<Postgres> for Pg {
    const KEY: &'static str = "postgres";
    async fn fresh(&mut self) -> PgPool {
        Postgres::exec(
            &self.pool,
            "TRUNCATE users, profiles, posts, tags, post_tags RESTART IDENTITY CASCADE".to_owned(),
        )
        .await;
        self.pool.clone()
    }
}

/// What the raw side runs, per backend, written against sqlx directly.
trait BenchDb: Backend {
    /// The generated integer key column.
    const SERIAL: &'static str;
    /// What the raw side begins its transactions with: the ORM's `Tx::begin` statement.
    const RAW_BEGIN: &'static str;

    fn schema() -> String {
        SCHEMA.replace("{serial}", Self::SERIAL)
    }
    async fn exec(pool: &Pool<Self>, sql: String);
    async fn count(pool: &Pool<Self>, table: &str) -> i64;
    async fn first_user_name(pool: &Pool<Self>) -> String;
    async fn users(pool: &Pool<Self>) -> Vec<User>;
    async fn posts(pool: &Pool<Self>) -> Vec<Post>;
    async fn tag_ids(pool: &Pool<Self>) -> Vec<i64>;
    async fn insert_user(conn: &mut Self::Connection, name: &str) -> Result<i64, sqlx::Error>;
    async fn insert_profile(
        conn: &mut Self::Connection,
        user_id: i64,
        bio: &str,
    ) -> Result<i64, sqlx::Error>;
    async fn delete_user(conn: &mut Self::Connection, id: i64) -> Result<u64, sqlx::Error>;
    async fn link(conn: &mut Self::Connection, post: i64, tags: &[i64])
    -> Result<u64, sqlx::Error>;
}

macro_rules! bench_db {
    ($db:ty, $serial:literal, $begin:literal) => {
        impl BenchDb for $db {
            const SERIAL: &'static str = $serial;
            const RAW_BEGIN: &'static str = $begin;

            async fn exec(pool: &Pool<Self>, sql: String) {
                sqlx::raw_sql(AssertSqlSafe(sql))
                    .execute(pool)
                    .await
                    .expect("setup statement");
            }
            async fn count(pool: &Pool<Self>, table: &str) -> i64 {
                sqlx::query_scalar(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                    .fetch_one(pool)
                    .await
                    .expect("count")
            }
            async fn first_user_name(pool: &Pool<Self>) -> String {
                sqlx::query_scalar("SELECT name FROM users ORDER BY id LIMIT 1")
                    .fetch_one(pool)
                    .await
                    .expect("a user")
            }
            async fn users(pool: &Pool<Self>) -> Vec<User> {
                sqlx::query_as("SELECT id, name FROM users ORDER BY id")
                    .fetch_all(pool)
                    .await
                    .expect("users")
            }
            async fn posts(pool: &Pool<Self>) -> Vec<Post> {
                sqlx::query_as("SELECT id, title FROM posts ORDER BY id")
                    .fetch_all(pool)
                    .await
                    .expect("posts")
            }
            async fn tag_ids(pool: &Pool<Self>) -> Vec<i64> {
                sqlx::query_scalar("SELECT id FROM tags ORDER BY id")
                    .fetch_all(pool)
                    .await
                    .expect("tags")
            }
            async fn insert_user(
                conn: &mut Self::Connection,
                name: &str,
            ) -> Result<i64, sqlx::Error> {
                sqlx::query(INSERT_USER)
                    .bind(name)
                    .fetch_one(conn)
                    .await?
                    .try_get(0)
            }
            async fn insert_profile(
                conn: &mut Self::Connection,
                user_id: i64,
                bio: &str,
            ) -> Result<i64, sqlx::Error> {
                sqlx::query(INSERT_PROFILE)
                    .bind(user_id)
                    .bind(bio)
                    .fetch_one(conn)
                    .await?
                    .try_get(0)
            }
            async fn delete_user(conn: &mut Self::Connection, id: i64) -> Result<u64, sqlx::Error> {
                Ok(sqlx::query(DELETE_USER)
                    .bind(id)
                    .execute(conn)
                    .await?
                    .rows_affected())
            }
            async fn link(
                conn: &mut Self::Connection,
                post: i64,
                tags: &[i64],
            ) -> Result<u64, sqlx::Error> {
                let mut query = sqlx::query(insert_links(tags.len()));
                for &tag in tags {
                    query = query.bind(post).bind(tag);
                }
                Ok(query.execute(conn).await?.rows_affected())
            }
        }
    };
}

bench_db!(Sqlite, "INTEGER PRIMARY KEY", "BEGIN IMMEDIATE");
bench_db!(
    Postgres,
    "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    "BEGIN"
);

/// Rows a workload reads, made before the timed part.
#[derive(Default)]
struct Prepared {
    users: Vec<User>,
    posts: Vec<Post>,
    tags: Vec<i64>,
}

/// `count` rows `{prefix} 1` ... in `table` in one statement (the same on both backends).
fn bulk_insert(table: &str, column: &str, prefix: &str, count: usize) -> String {
    format!(
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {count}) \
         INSERT INTO {table} ({column}) SELECT '{prefix} ' || x FROM n"
    )
}

async fn prepare<DB: BenchDb>(case: Case, pool: &Pool<DB>, config: &Config) -> Prepared {
    match case {
        Case::OneTx(_) | Case::TxPerSave(_) => Prepared::default(),
        Case::Deletes => {
            DB::exec(pool, bulk_insert("users", "name", "user", config.saves)).await;
            Prepared {
                users: DB::users(pool).await,
                ..Prepared::default()
            }
        }
        Case::M2mAdd(_) => {
            insert_links(config.tags); // built and checked outside the timed part
            DB::exec(pool, bulk_insert("tags", "name", "tag", config.tags)).await;
            DB::exec(pool, bulk_insert("posts", "title", "post", config.posts)).await;
            Prepared {
                posts: DB::posts(pool).await,
                tags: DB::tag_ids(pool).await,
                ..Prepared::default()
            }
        }
    }
}

/// Checks what a run wrote (outside the timed part): both sides must do the same work.
async fn check<DB: BenchDb>(case: Case, pool: &Pool<DB>, config: &Config) {
    let saves = i64::try_from(config.saves).expect("count fits");
    match case {
        Case::OneTx(receivers) | Case::TxPerSave(receivers) => {
            assert_eq!(DB::count(pool, "users").await, saves, "{case:?}");
            let profiles = if receivers == Receivers::Profile {
                saves
            } else {
                0
            };
            assert_eq!(DB::count(pool, "profiles").await, profiles, "{case:?}");
            let first = if receivers == Receivers::Capitalize {
                "User 0"
            } else {
                "user 0"
            };
            assert_eq!(DB::first_user_name(pool).await, first, "{case:?}");
        }
        Case::Deletes => assert_eq!(DB::count(pool, "users").await, 0),
        Case::M2mAdd(_) => assert_eq!(
            DB::count(pool, "post_tags").await,
            i64::try_from(config.posts * config.tags).expect("count fits")
        ),
    }
}

/// Workload 2, through the ORM: `n` saves in one transaction.
async fn saves_in_one_tx<DB: Backend, M: NewUser + Persist<DB>>(
    pool: &Pool<DB>,
    n: usize,
) -> Result<(), OrmError> {
    let mut tx = Tx::begin(pool).await?;
    for i in 0..n {
        let mut user = M::named(format!("user {i}"));
        user.save(&mut tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Workload 3, through the ORM: `n` saves, each given the pool (its own transaction).
async fn saves_given_the_pool<DB: Backend, M: NewUser + Persist<DB>>(
    pool: &Pool<DB>,
    n: usize,
) -> Result<(), OrmError> {
    for i in 0..n {
        let mut user = M::named(format!("user {i}"));
        user.save(pool).await?;
    }
    Ok(())
}

/// Our side of a case.
async fn ours<DB: BenchDb>(
    case: Case,
    pool: &Pool<DB>,
    prepared: &mut Prepared,
    config: &Config,
) -> Result<(), OrmError>
where
    User: Persist<DB>,
    NoopUser: Persist<DB>,
    ProfiledUser: Persist<DB>,
    CapitalizedUser: Persist<DB>,
    Post: Persist<DB>,
    crate::models::Tag: Persist<DB>,
{
    let n = config.saves;
    match case {
        Case::OneTx(Receivers::None) => saves_in_one_tx::<DB, User>(pool, n).await,
        Case::OneTx(Receivers::Noop) => saves_in_one_tx::<DB, NoopUser>(pool, n).await,
        Case::OneTx(Receivers::Profile) => saves_in_one_tx::<DB, ProfiledUser>(pool, n).await,
        Case::OneTx(Receivers::Capitalize) => saves_in_one_tx::<DB, CapitalizedUser>(pool, n).await,
        Case::TxPerSave(Receivers::None) => saves_given_the_pool::<DB, User>(pool, n).await,
        Case::TxPerSave(Receivers::Noop) => saves_given_the_pool::<DB, NoopUser>(pool, n).await,
        Case::TxPerSave(Receivers::Profile) => {
            saves_given_the_pool::<DB, ProfiledUser>(pool, n).await
        }
        Case::TxPerSave(Receivers::Capitalize) => {
            saves_given_the_pool::<DB, CapitalizedUser>(pool, n).await
        }
        Case::Deletes => {
            let mut tx = Tx::begin(pool).await?;
            for user in &mut prepared.users {
                user.delete(&mut tx).await?;
            }
            tx.commit().await?;
            Ok(())
        }
        Case::M2mAdd(receivers) => {
            let mut tx = Tx::begin(pool).await?;
            for post in &prepared.posts {
                let tags = prepared.tags.iter().copied();
                match receivers {
                    M2mReceivers::None => QuietPostTags::of(post).add(&mut tx, tags).await?,
                    M2mReceivers::Noop => PostTags::of(post).add(&mut tx, tags).await?,
                };
            }
            tx.commit().await?;
            Ok(())
        }
    }
}

/// One user as the raw side writes it: what the ORM plus the receivers write.
async fn raw_user<DB: BenchDb>(
    conn: &mut DB::Connection,
    i: usize,
    receivers: Receivers,
) -> Result<(), sqlx::Error> {
    let mut name = format!("user {i}");
    if receivers == Receivers::Capitalize {
        name = capitalize(&name);
    }
    let id = DB::insert_user(conn, &name).await?;
    if receivers == Receivers::Profile {
        DB::insert_profile(conn, id, "").await?;
    }
    Ok(())
}

/// The raw sqlx side of a case.
async fn raw<DB: BenchDb>(
    case: Case,
    pool: &Pool<DB>,
    prepared: &Prepared,
    config: &Config,
) -> Result<(), sqlx::Error> {
    match case {
        Case::OneTx(receivers) => {
            let mut tx = pool.begin_with(DB::RAW_BEGIN).await?;
            for i in 0..config.saves {
                raw_user::<DB>(&mut tx, i, receivers).await?;
            }
            tx.commit().await
        }
        // Without receivers the ORM writes in autocommit (nothing to make atomic), and so does
        // the raw side: the same statements in the same shape.
        Case::TxPerSave(Receivers::None) => {
            for i in 0..config.saves {
                let mut conn = pool.acquire().await?;
                raw_user::<DB>(&mut conn, i, Receivers::None).await?;
            }
            Ok(())
        }
        Case::TxPerSave(receivers) => {
            for i in 0..config.saves {
                let mut tx = pool.begin_with(DB::RAW_BEGIN).await?;
                raw_user::<DB>(&mut tx, i, receivers).await?;
                tx.commit().await?;
            }
            Ok(())
        }
        Case::Deletes => {
            let mut tx = pool.begin_with(DB::RAW_BEGIN).await?;
            for user in &prepared.users {
                DB::delete_user(&mut tx, user.id.expect("loaded users have keys")).await?;
            }
            tx.commit().await
        }
        // What a sqlx user without signals writes, receivers or not: one INSERT per post.
        Case::M2mAdd(_) => {
            let mut tx = pool.begin_with(DB::RAW_BEGIN).await?;
            for post in &prepared.posts {
                let post = post.id.expect("loaded posts have keys");
                DB::link(&mut tx, post, &prepared.tags).await?;
            }
            tx.commit().await
        }
    }
}

/// Times `fut`; returns the seconds, the process-wide heap peak above the start, and the
/// process-wide heap peak.
async fn timed<F: Future<Output = ()>>(fut: F) -> (f64, usize, usize) {
    PeakAlloc.reset_peak_usage();
    let start_bytes = PeakAlloc.current_usage();
    let start = Instant::now();
    fut.await;
    let secs = start.elapsed().as_secs_f64();
    let peak = PeakAlloc.peak_usage();
    (secs, peak.saturating_sub(start_bytes), peak)
}

async fn run_backend<DB: BenchDb, S: Source<DB>>(
    config: &Config,
    source: &mut S,
    results: &mut OrmResults,
) where
    User: Persist<DB>,
    NoopUser: Persist<DB>,
    ProfiledUser: Persist<DB>,
    CapitalizedUser: Persist<DB>,
    Post: Persist<DB>,
    crate::models::Tag: Persist<DB>,
{
    for case in Case::all() {
        let name = format!("{}: {}", S::KEY, case.label(config));
        if config
            .only
            .as_ref()
            .is_some_and(|only| !name.contains(only.as_str()))
        {
            continue;
        }
        let mut row = Row {
            case,
            backend: S::KEY,
            ours: Side::default(),
            raw: Side::default(),
        };
        let reps = if matches!(case, Case::TxPerSave(_)) {
            config.tx_each_reps
        } else {
            config.reps
        };
        for rep in 0..reps {
            let order = if rep % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            };
            for is_ours in order {
                let pool = source.fresh().await;
                let mut prepared = prepare(case, &pool, config).await;
                let (secs, growth, peak) = if is_ours {
                    timed(async {
                        ours(case, &pool, &mut prepared, config)
                            .await
                            .expect("ORM workload");
                    })
                    .await
                } else {
                    timed(async {
                        raw(case, &pool, &prepared, config)
                            .await
                            .expect("raw workload");
                    })
                    .await
                };
                drop(prepared);
                check(case, &pool, config).await;
                let side = if is_ours { &mut row.ours } else { &mut row.raw };
                side.secs.push(secs);
                side.peaks.push(growth);
                side.peak_totals.push(peak);
            }
        }
        #[expect(clippy::cast_precision_loss, reason = "a rate")]
        let ops = case.ops(config) as f64;
        let (ours_rate, raw_rate) = (ops / row.ours.median_secs(), ops / row.raw.median_secs());
        eprintln!(
            "  {:<55} ours {:>9} {}  raw {:>9}  ratio {:.3}",
            case.label(config),
            thousands(ours_rate),
            case.unit(),
            thousands(raw_rate),
            ours_rate / raw_rate
        );
        results.rows.push(row);
    }
}
