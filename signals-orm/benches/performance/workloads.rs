//! Workloads 2-5, 7 and 8: ORM writes that send signals against raw sqlx running the same SQL
//! text in the same transaction shape (workload 8: what a hand-written sqlx program runs for the
//! same job), on each backend, in the same process and run; and workload 7's peak heap of a
//! large filtered delete.
//!
//! Each repetition measures both sides, alternating which goes first, each on a fresh database
//! (a new in-memory database, a new WAL file, or truncated PostgreSQL tables) prepared outside
//! the timed part; after each run the rows written are checked, also outside it.
//!
//! Workload 7 (set-based writes) compares each write, with no receiver and with one no-op
//! receiver, against what a sqlx user without signals writes for the same job: the statements
//! the ORM runs when nobody listens (a multi-row `INSERT .. RETURNING "id"` per chunk, an
//! `UPDATE .. CASE` per chunk, one `UPDATE .. WHERE`, one `DELETE .. WHERE`), chunked as the ORM
//! chunks, alone in autocommit when one statement does the job and in one transaction
//! otherwise, as the ORM does; not the `RETURNING` forms the ORM runs when a receiver needs the
//! rows. So both rows of a write have the same raw side. The ORM builds these texts per call and
//! does not expose them: the smoke test checks them against the statements sqlx reports
//! ([`check_statements`]).
//!
//! Workload 8 (cascading delete) deletes every parent of `parents`, each with its children in
//! `children`, by a condition on the parents (`"name" LIKE 'parent %'`): the ORM's
//! `Parent::filter(..).delete(..)`, which cascades to the children and sends each child's
//! `post_delete` (one no-op receiver), against what a sqlx user writes for the same job and
//! the same rows to act on: in one transaction, `DELETE FROM "children" WHERE "parent_id" IN
//! (SELECT "id" FROM "parents" WHERE ..) RETURNING ..` decoded into `Child`, then `DELETE FROM
//! "parents" WHERE ..`. The ORM runs three statements for it (the parents' keys, the children by
//! those keys, the parents by those keys), which the smoke test checks too.
//!
//! Workload 9 (durable receivers, issue 17) compares a save heard by one `durable` `post_save`
//! receiver (`DurableUser`: its job inserted in the save's transaction) with the same save
//! heard by one no-op `on_commit` receiver (`OnCommitUser`), both through the ORM, each save
//! given the pool (its own transaction) and all saves in one transaction. The smoke test checks
//! that the durable side runs exactly the `on_commit` side's statements plus the outbox
//! INSERTs, inside the saves' transactions: one per save given the pool, one per 64 jobs (and
//! a few for the rest) when the saves share a transaction. Workload 10 (PostgreSQL only)
//! drains a backlog of jobs enqueued by such saves with 4 in-process workers against 1 (each
//! its own pool, relay and apalis worker, the default 4 jobs at a time), timed from their
//! start until the receiver has run every job (the relays' moving the backlog into apalis's
//! table included).
//!
//! Workload 11 (issue 15: `post_init` must cost nothing unheard) fetches every row of `users`
//! through `Model::objects().all`, as a model nothing listens to (`PlainUser`) and as one with
//! a no-op `post_init` receiver (`InitUser`), against raw sqlx streaming the same SELECT
//! (checked by the smoke test) and decoding each row into the same struct with its `FromRow`,
//! as the ORM reads rows; in ns per row. (sqlx's `query_as(..).fetch_all` was slower than both
//! here, which would have credited the ORM with a negative cost.)

use std::path::PathBuf;
use std::str::FromStr as _;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use peak_alloc::PeakAlloc;
use signals_orm::durable::{self, DurableBackend};
use signals_orm::m2m::Through;
use signals_orm::{Backend, Model, ModelExt, OrmError, Persist, Tx};
use sqlx::pool::PoolOptions;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, Executor as _, PgPool, Pool, Postgres, Row as _, Sqlite, SqlitePool};

use crate::Config;
use crate::models::{
    CapitalizedUser, Child, DURABLE_QUEUE, DurableUser, InitUser, NewUser, NoopUser, OnCommitUser,
    Parent, PlainUser, Post, PostTags, PreDeleteUser, Profile, ProfiledUser, QuietPostTags, User,
    capitalize, durable_runs, take_durable_runs,
};

/// The benchmark's tables (shared with Django).
pub const SCHEMA: &str = include_str!("../schema.sql");

// The raw side's SQL, written out: the ORM must generate exactly these (checked at start).
const INSERT_USER: &str = r#"INSERT INTO "users" ("name") VALUES ($1) RETURNING "id""#;
const INSERT_PROFILE: &str =
    r#"INSERT INTO "profiles" ("user_id", "bio") VALUES ($1, $2) RETURNING "id""#;
const DELETE_USER: &str = r#"DELETE FROM "users" WHERE "id" = $1"#;
/// Workload 11's SELECT: what `Model::objects().all` runs for a user model (checked by the smoke
/// test against the ORM's).
const SELECT_USERS: &str = r#"SELECT "id", "name" FROM "users""#;
/// Workload 11: fetches of every row per timed run (a fetch of 20,000 rows in memory takes a
/// few milliseconds).
pub const FETCH_REPEATS: usize = 10;
/// Workload 10: the workers of its measured side (its baseline runs one).
pub const WORKERS: usize = 4;
/// Workload 10: each worker's pool (apalis's LISTEN holds one connection, fetches and
/// acknowledgements share the others).
const WORKER_CONNECTIONS: u32 = 3;
/// The value workload 7's filtered update assigns.
const RENAMED: &str = "renamed";
/// Workload 8's condition on the parents (`"name" LIKE ..`): every parent's name matches it.
const PARENTS_MATCHING: &str = "parent %";

/// The most rows of one `bulk_update` statement: the ORM's (`CASE` costs each row a test of
/// every `WHEN` before its own, so larger statements cost more per row).
const UPDATE_ROWS: usize = 500;

/// Placeholders `from..from + n`: `$from, ..` on PostgreSQL, `?, ..` on SQLite (`anonymous`),
/// where a `$N` is looked up by name, which makes a statement of thousands of them slow to
/// prepare and bind.
fn placeholders(from: usize, n: usize, anonymous: bool) -> impl Iterator<Item = String> {
    (from..from + n).map(move |i| {
        if anonymous {
            "?".to_owned()
        } else {
            format!("${i}")
        }
    })
}

/// Workload 7's multi-row INSERT of `rows` users, as `ModelExt::bulk_insert` runs it:
/// `INSERT INTO "users" ("name") VALUES ($1), ($2), .. RETURNING "id"`.
fn insert_users(rows: usize, anonymous: bool) -> String {
    let values: Vec<String> = placeholders(1, rows, anonymous)
        .map(|p| format!("({p})"))
        .collect();
    format!(
        r#"INSERT INTO "users" ("name") VALUES {} RETURNING "id""#,
        values.join(", ")
    )
}

/// Workload 7's UPDATE of the names of `rows` users, as `ModelExt::bulk_update` runs it
/// (Django's form): `UPDATE "users" SET "name" = CASE "id" WHEN $1 THEN $2 WHEN $3 THEN $4 END
/// WHERE "id" IN ($5, $6)`, binding each row's key and name, then the keys again.
fn update_users(rows: usize, anonymous: bool) -> String {
    let mut bound = placeholders(1, 3 * rows, anonymous);
    let mut next = || bound.next().expect("3 placeholders a row");
    let whens: Vec<String> = (0..rows)
        .map(|_| format!("WHEN {} THEN {}", next(), next()))
        .collect();
    let keys: Vec<String> = (0..rows).map(|_| next()).collect();
    format!(
        r#"UPDATE "users" SET "name" = CASE "id" {} END WHERE "id" IN ({})"#,
        whens.join(" "),
        keys.join(", ")
    )
}

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
            QuietPostTags::sql().insert_links(
                rows,
                signals_orm::__private::Returning::Nothing,
                '$'
            ),
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

/// A set-based write of workload 7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetWrite {
    /// `ModelExt::bulk_insert` of new users.
    BulkInsert,
    /// `ModelExt::bulk_update` of every user's name.
    BulkUpdate,
    /// `Query::update` of every user's name, by a condition selecting every row.
    Update,
    /// `Query::delete` by a condition selecting every row.
    Delete,
}

impl SetWrite {
    const ALL: [SetWrite; 4] = [
        SetWrite::BulkInsert,
        SetWrite::BulkUpdate,
        SetWrite::Update,
        SetWrite::Delete,
    ];

    /// Django's key for it (`bench.py`).
    fn key(self) -> &'static str {
        match self {
            SetWrite::BulkInsert => "bulk-insert",
            SetWrite::BulkUpdate => "bulk-update",
            SetWrite::Update => "update",
            SetWrite::Delete => "delete",
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
    /// Workload 7: a set-based write given the pool, without receivers (`false`) or with one
    /// no-op `post_save` (`post_delete` for the delete).
    SetBased(SetWrite, bool),
    /// Workload 8: a filtered delete of every parent, given the pool, cascading to their
    /// children, whose `post_delete` has one no-op receiver.
    Cascade,
    /// Workload 9: saves heard by one durable `post_save` receiver, against the same saves
    /// heard by one no-op `on_commit` receiver.
    Durable(Shape),
    /// Workload 10 (PostgreSQL): a backlog of durable jobs drained by [`WORKERS`] workers,
    /// against one.
    Workers,
    /// Workload 11: fetches of every row of `users`, with no `post_init` receiver (`false`) or
    /// one no-op receiver, against raw sqlx.
    Fetch(bool),
}

/// How workload 9's saves are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Each save given the pool: its own transaction (a save per request).
    TxEach,
    /// Every save in one transaction.
    OneTx,
}

/// Workload 9's saves: all of them in one transaction; a tenth of them (2,000 in a full run)
/// each in its own, whose COMMIT (an `fsync` on the WAL file, three round trips on
/// PostgreSQL) makes each save as slow as workload 3's.
pub fn durable_saves(config: &Config, shape: Shape) -> usize {
    match shape {
        Shape::TxEach => (config.saves / 10).max(1),
        Shape::OneTx => config.saves,
    }
}

/// Workload 10's backlog: a quarter of the saves (5,000 jobs in a full run).
pub fn worker_jobs(config: &Config) -> usize {
    (config.saves / 4).max(1)
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
    /// Every workload, in the table's order.
    pub fn all() -> Vec<Case> {
        let mut cases: Vec<Case> = Receivers::ALL.into_iter().map(Case::OneTx).collect();
        cases.extend(Receivers::ALL.into_iter().map(Case::TxPerSave));
        cases.extend([
            Case::Deletes,
            Case::M2mAdd(M2mReceivers::None),
            Case::M2mAdd(M2mReceivers::Noop),
        ]);
        for write in SetWrite::ALL {
            cases.extend([Case::SetBased(write, false), Case::SetBased(write, true)]);
        }
        cases.extend([
            Case::Cascade,
            Case::Durable(Shape::TxEach),
            Case::Durable(Shape::OneTx),
            Case::Workers,
            Case::Fetch(false),
            Case::Fetch(true),
        ]);
        cases
    }

    /// Whether it runs on the backend `key` (workload 10: PostgreSQL, the multi-machine
    /// store).
    pub fn runs_on(self, key: &str) -> bool {
        self != Case::Workers || key == "postgres"
    }

    /// What its baseline is: raw sqlx, or (workloads 9 and 10) the ORM in another
    /// configuration.
    pub fn baseline_kind(self) -> &'static str {
        match self {
            Case::Durable(_) => "on_commit receiver",
            Case::Workers => "1 worker",
            _ => "raw sqlx",
        }
    }

    /// The workload's number.
    pub fn section(self) -> u32 {
        match self {
            Case::OneTx(_) => 2,
            Case::TxPerSave(_) => 3,
            Case::Deletes => 4,
            Case::M2mAdd(_) => 5,
            Case::SetBased(..) => 7,
            Case::Cascade => 8,
            Case::Durable(_) => 9,
            Case::Workers => 10,
            Case::Fetch(_) => 11,
        }
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
            Case::SetBased(write, heard) => {
                let (what, receiver, django_quiet, django_heard) = match write {
                    SetWrite::BulkInsert => (
                        format!("bulk_insert {n} rows"),
                        "no-op post_save",
                        "bulk_create",
                        "save() loop",
                    ),
                    SetWrite::BulkUpdate => (
                        format!("bulk_update {n} rows, 1 field"),
                        "no-op post_save",
                        "bulk_update, batches of 500",
                        "save(update_fields) loop",
                    ),
                    SetWrite::Update => (
                        format!("filtered update {n} rows, 1 field"),
                        "no-op post_save",
                        "QuerySet.update",
                        "save(update_fields) loop over the QuerySet",
                    ),
                    SetWrite::Delete => (
                        format!("filtered delete {n} rows"),
                        "no-op post_delete",
                        "QuerySet.delete, fast path",
                        "QuerySet.delete, signals sent",
                    ),
                };
                if heard {
                    format!("7. {what}: {receiver} (vs Django {django_heard})")
                } else {
                    format!("7. {what}: no receivers (vs Django {django_quiet})")
                }
            }
            Case::Cascade => format!(
                "8. cascading delete of {} parents x {} children: no-op post_delete on the child \
                 (vs Django QuerySet.delete, CASCADE)",
                count(config.parents),
                config.children
            ),
            Case::Durable(shape) => format!(
                "9. {} saves, {}: durable post_save (vs no-op on_commit post_save)",
                count(durable_saves(config, shape)),
                match shape {
                    Shape::TxEach => "tx each",
                    Shape::OneTx => "1 tx",
                }
            ),
            Case::Workers => format!(
                "10. durable worker, {} jobs of a no-op receiver: {WORKERS} workers (vs 1), 4 at a \
                 time each",
                count(worker_jobs(config))
            ),
            Case::Fetch(heard) => format!(
                "11. fetch {n} rows x {FETCH_REPEATS}, `objects().all`: {} (vs raw sqlx \
                 fetch + FromRow)",
                if heard {
                    "no-op post_init"
                } else {
                    "no post_init receiver"
                }
            ),
        }
    }

    /// The key of Django's result for the same workload, if Django runs it.
    pub fn django_key(self) -> Option<String> {
        match self {
            Case::OneTx(r) => Some(format!("save-{}", r.key())),
            Case::TxPerSave(_) | Case::Durable(_) | Case::Workers | Case::Fetch(_) => None,
            Case::Deletes => Some("delete".to_owned()),
            Case::M2mAdd(M2mReceivers::None) => Some("m2m-add-none".to_owned()),
            Case::M2mAdd(M2mReceivers::Noop) => Some("m2m-add".to_owned()),
            Case::SetBased(write, heard) => Some(format!(
                "set-{}-{}",
                write.key(),
                if heard { "signals" } else { "none" }
            )),
            Case::Cascade => Some("cascade-delete".to_owned()),
        }
    }

    /// Operations per run: saves, deletes, `add` calls, or rows deleted (workload 8: the
    /// parents and their children).
    pub fn ops(self, config: &Config) -> usize {
        match self {
            Case::OneTx(_) | Case::TxPerSave(_) | Case::Deletes | Case::SetBased(..) => {
                config.saves
            }
            Case::Durable(shape) => durable_saves(config, shape),
            Case::M2mAdd(_) => config.posts,
            Case::Cascade => config.parents * (1 + config.children),
            Case::Workers => worker_jobs(config),
            Case::Fetch(_) => config.saves * FETCH_REPEATS,
        }
    }

    /// What an operation is, per second.
    pub fn unit(self) -> &'static str {
        match self {
            Case::OneTx(_) | Case::TxPerSave(_) | Case::Durable(_) => "saves/s",
            Case::Deletes => "deletes/s",
            Case::M2mAdd(_) => "adds/s",
            Case::SetBased(..) | Case::Cascade => "rows/s",
            Case::Workers => "jobs/s",
            Case::Fetch(_) => "ns/row",
        }
    }
}

/// The name of workload 7's peak-heap measurement of a filtered delete of `rows` rows.
pub fn heap_delete_label(rows: usize) -> String {
    format!(
        "7. peak heap (growth), filtered delete of {} rows: no-op pre_delete, chunks of {} rows",
        count(rows),
        count(signals_orm::query::ROWS_PER_CHUNK)
    )
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

/// Workload 7's peak heap of a large filtered delete with a `pre_delete` receiver (SQLite in
/// memory), against raw sqlx's `DELETE .. WHERE` of the same rows.
#[derive(Debug, Clone)]
pub struct HeapDelete {
    /// Rows deleted.
    pub rows: usize,
    /// Through the ORM.
    pub ours: Side,
    /// Raw sqlx.
    pub raw: Side,
}

/// Every workload on every backend that ran, and why others did not.
#[derive(Debug, Default)]
pub struct OrmResults {
    /// In run order.
    pub rows: Vec<Row>,
    /// Workload 7's large delete, if it ran.
    pub heap_delete: Option<HeapDelete>,
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
    // Workload 7's statements are built inside the ORM per call and not exposed; the one-row
    // form of its multi-row INSERT is the single INSERT's text, which is.
    assert_eq!(insert_users(1, false), <User as Model>::sql().insert);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// Whether `SIGNALS_BENCH_ONLY` lets the workload named `name` run: `name` contains it, or one
/// of its `|`-separated parts (`9. |10. |11. `).
pub fn selected(config: &Config, name: &str) -> bool {
    config
        .only
        .as_ref()
        .is_none_or(|only| only.split('|').any(|part| name.contains(part)))
}

/// Runs workloads 2-5, 7 and 8 on SQLite, in memory and on a WAL file, then workload 7's large
/// delete in memory.
pub fn run_sqlite(config: &Config, results: &mut OrmResults) {
    runtime().block_on(async {
        eprintln!("\n== 2-5, 7-11. ORM workloads: SQLite in memory");
        let mut memory = SqliteMemory(None);
        run_backend(config, &mut memory, results).await;
        let rows = config.heap_delete_rows;
        let name = format!("{}: {}", SqliteMemory::KEY, heap_delete_label(rows));
        if rows > 0 && selected(config, &name) {
            results.heap_delete = Some(heap_delete(rows, &mut memory).await);
        }
        memory.close().await;
        let dir = bench_dir();
        std::fs::create_dir_all(&dir).expect("bench directory");
        eprintln!(
            "\n== 2-5, 7-11. ORM workloads: SQLite WAL file in {}",
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

/// Runs workloads 2-5, 7 and 8 on PostgreSQL, if `DATABASE_URL` is set.
pub fn run_postgres(config: &Config, results: &mut OrmResults) {
    let Ok(url) = std::env::var("DATABASE_URL") else {
        results
            .notes
            .push("PostgreSQL: skipped, DATABASE_URL is not set".to_owned());
        return;
    };
    runtime().block_on(async {
        eprintln!("\n== 2-5, 7-11. ORM workloads: PostgreSQL");
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

impl SqliteMemory {
    async fn close(&mut self) {
        if let Some(old) = self.0.take() {
            old.close().await;
        }
    }
}

impl Source<Sqlite> for SqliteMemory {
    const KEY: &'static str = "sqlite-memory";
    async fn fresh(&mut self) -> SqlitePool {
        self.close().await;
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
        // `public` too: apalis's job INSERT (the relay, workload 10) binds `hstore`, created there.
        let search_path = format!("SET search_path TO \"{schema}\", public");
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
        // The jobs workloads 9 and 10 left in apalis's table (shared by the database's users).
        for sql in Postgres::DELETE_JOBS {
            let _ = sqlx::query(sql)
                .bind(DURABLE_QUEUE)
                .execute(&self.pool)
                .await;
        }
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
            "TRUNCATE users, profiles, posts, tags, post_tags, parents, children RESTART IDENTITY \
             CASCADE"
                .to_owned(),
        )
        .await;
        self.pool.clone()
    }
}

/// What the raw side runs, per backend, written against sqlx directly.
trait BenchDb: Backend + DurableBackend {
    /// The generated integer key column.
    const SERIAL: &'static str;
    /// What the raw side begins its transactions with: the ORM's `Tx::begin` statement.
    const RAW_BEGIN: &'static str;
    /// Whether workload 7's multi-row statements take `?` placeholders rather than `$N`.
    const ANONYMOUS: bool;
    /// Workload 7's filtered update nobody hears, as `Query::update` runs it: one statement,
    /// the condition `id > 0` selecting every row (`?N` placeholders on SQLite, `$N` on
    /// PostgreSQL).
    const UPDATE_ALL: &'static str;
    /// Workload 7's filtered delete nobody hears, as `Query::delete` runs it.
    const DELETE_ALL: &'static str;
    /// Workload 8's raw side, first statement: the children of the parents whose name is like
    /// the pattern bound, deleted and returned whole.
    const DELETE_CHILDREN: &'static str;
    /// Workload 8's raw side, second statement: the parents whose name is like the pattern.
    const DELETE_PARENTS: &'static str;
    /// Workloads 9 and 10: the jobs of a queue, deleted before a run: the outbox first, then
    /// apalis's table, so that a job a relay (another process's worker) moves meanwhile is
    /// deleted from the one or the other.
    const DELETE_JOBS: [&'static str; 2];
    /// The beginning of the outbox INSERT (whitespace collapsed): the statement durable
    /// receivers add to a transaction.
    const JOB_INSERT: &'static str;
    /// How many outbox INSERTs a transaction enqueueing `jobs` jobs runs.
    fn outbox_statements(jobs: usize) -> usize;
    /// Deletes the jobs of [`DURABLE_QUEUE`].
    async fn delete_jobs(pool: &Pool<Self>) {
        for sql in Self::DELETE_JOBS {
            Self::exec_bound(pool, sql, DURABLE_QUEUE).await;
        }
    }

    fn schema() -> String {
        SCHEMA.replace("{serial}", Self::SERIAL)
    }
    async fn exec(pool: &Pool<Self>, sql: String);
    /// `sql` with one text parameter.
    async fn exec_bound(pool: &Pool<Self>, sql: &'static str, value: &str);
    /// Workload 11's raw side: [`SELECT_USERS`], each row decoded by `User`'s `FromRow` as it
    /// arrives.
    async fn select_users(pool: &Pool<Self>) -> Result<Vec<User>, sqlx::Error>;
    async fn count(pool: &Pool<Self>, table: &str) -> i64;
    /// The users whose name is `name`, or starts with `name` when it ends with `%`.
    async fn count_named(pool: &Pool<Self>, name: &str) -> i64;
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
    /// Workload 7: one multi-row INSERT of `users`, each given its key.
    async fn insert_users(
        conn: &mut Self::Connection,
        users: &mut [User],
    ) -> Result<(), sqlx::Error>;
    /// Workload 7: one `UPDATE .. CASE` of the names of `users`.
    async fn update_users(conn: &mut Self::Connection, users: &[User]) -> Result<u64, sqlx::Error>;
    /// Workload 7: `UPDATE .. WHERE` of every user's name.
    async fn update_all(conn: &mut Self::Connection, name: &str) -> Result<u64, sqlx::Error>;
    /// Workload 7: `DELETE .. WHERE` of every user.
    async fn delete_all(conn: &mut Self::Connection) -> Result<u64, sqlx::Error>;
    /// Workload 7 with a receiver: `update_users` returning the keys updated.
    async fn update_users_returning(
        conn: &mut Self::Connection,
        users: &[User],
    ) -> Result<u64, sqlx::Error>;
    /// Workload 7 with a receiver: `update_all` returning every row, decoded.
    async fn update_all_returning(
        conn: &mut Self::Connection,
        name: &str,
    ) -> Result<Vec<User>, sqlx::Error>;
    /// Workload 7 with a receiver: the next chunk of `rows` users deleted and returned.
    async fn delete_chunk_returning(
        conn: &mut Self::Connection,
        rows: usize,
    ) -> Result<Vec<User>, sqlx::Error>;
    /// Workload 8: [`Self::DELETE_CHILDREN`], the rows decoded.
    async fn delete_children_returning(
        conn: &mut Self::Connection,
        pattern: &str,
    ) -> Result<Vec<Child>, sqlx::Error>;
    /// Workload 8: [`Self::DELETE_PARENTS`]; the rows deleted.
    async fn delete_parents(conn: &mut Self::Connection, pattern: &str)
    -> Result<u64, sqlx::Error>;
}

macro_rules! bench_db {
    (
        $db:ty,
        $serial:literal,
        $begin:literal,
        $anonymous:literal,
        $update_all:literal,
        $delete_all:literal,
        $delete_children:literal,
        $delete_parents:literal,
        $delete_jobs:literal,
        $delete_outbox:literal,
        $job_insert:literal,
        |$jobs:ident| $outbox_statements:expr
    ) => {
        impl BenchDb for $db {
            const SERIAL: &'static str = $serial;
            const RAW_BEGIN: &'static str = $begin;
            const ANONYMOUS: bool = $anonymous;
            const UPDATE_ALL: &'static str = $update_all;
            const DELETE_ALL: &'static str = $delete_all;
            const DELETE_CHILDREN: &'static str = $delete_children;
            const DELETE_PARENTS: &'static str = $delete_parents;
            const DELETE_JOBS: [&'static str; 2] = [$delete_outbox, $delete_jobs];
            const JOB_INSERT: &'static str = $job_insert;
            fn outbox_statements($jobs: usize) -> usize {
                $outbox_statements
            }

            async fn exec(pool: &Pool<Self>, sql: String) {
                sqlx::raw_sql(AssertSqlSafe(sql))
                    .execute(pool)
                    .await
                    .expect("setup statement");
            }
            async fn exec_bound(pool: &Pool<Self>, sql: &'static str, value: &str) {
                sqlx::query(sql)
                    .bind(value)
                    .execute(pool)
                    .await
                    .expect("setup statement");
            }
            async fn select_users(pool: &Pool<Self>) -> Result<Vec<User>, sqlx::Error> {
                // As the ORM reads rows: streamed from one connection, each decoded by the
                // struct's `FromRow` as it arrives.
                use futures_util::TryStreamExt as _;
                let mut conn = pool.acquire().await?;
                let mut rows = sqlx::query(SELECT_USERS).fetch(&mut *conn);
                let mut users = Vec::new();
                while let Some(row) = rows.try_next().await? {
                    users.push(<User as sqlx::FromRow<'_, _>>::from_row(&row)?);
                }
                Ok(users)
            }
            async fn count(pool: &Pool<Self>, table: &str) -> i64 {
                sqlx::query_scalar(AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
                    .fetch_one(pool)
                    .await
                    .expect("count")
            }
            async fn count_named(pool: &Pool<Self>, name: &str) -> i64 {
                sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE name LIKE $1")
                    .bind(name)
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
            async fn insert_users(
                conn: &mut Self::Connection,
                users: &mut [User],
            ) -> Result<(), sqlx::Error> {
                let sql = insert_users(users.len(), Self::ANONYMOUS);
                let mut query = sqlx::query(AssertSqlSafe(sql));
                for user in &*users {
                    query = query.bind(user.name.as_str());
                }
                let rows = query.fetch_all(conn).await?;
                assert_eq!(rows.len(), users.len(), "a key per row");
                for (user, row) in users.iter_mut().zip(&rows) {
                    user.id = Some(row.try_get(0)?);
                }
                Ok(())
            }
            async fn update_users(
                conn: &mut Self::Connection,
                users: &[User],
            ) -> Result<u64, sqlx::Error> {
                let sql = update_users(users.len(), Self::ANONYMOUS);
                let mut query = sqlx::query(AssertSqlSafe(sql));
                let key = |user: &User| user.id.expect("loaded users have keys");
                for user in users {
                    query = query.bind(key(user)).bind(user.name.as_str());
                }
                for user in users {
                    query = query.bind(key(user));
                }
                Ok(query.execute(conn).await?.rows_affected())
            }
            async fn update_all(
                conn: &mut Self::Connection,
                name: &str,
            ) -> Result<u64, sqlx::Error> {
                Ok(sqlx::query(Self::UPDATE_ALL)
                    .bind(name)
                    .bind(0_i64)
                    .execute(conn)
                    .await?
                    .rows_affected())
            }
            async fn delete_all(conn: &mut Self::Connection) -> Result<u64, sqlx::Error> {
                Ok(sqlx::query(Self::DELETE_ALL)
                    .bind(0_i64)
                    .execute(conn)
                    .await?
                    .rows_affected())
            }
            async fn update_users_returning(
                conn: &mut Self::Connection,
                users: &[User],
            ) -> Result<u64, sqlx::Error> {
                let sql = format!(
                    r#"{} RETURNING "id""#,
                    update_users(users.len(), Self::ANONYMOUS)
                );
                let mut query = sqlx::query(AssertSqlSafe(sql));
                let key = |user: &User| user.id.expect("loaded users have keys");
                for user in users {
                    query = query.bind(key(user)).bind(user.name.as_str());
                }
                for user in users {
                    query = query.bind(key(user));
                }
                Ok(query.fetch_all(conn).await?.len() as u64)
            }
            async fn update_all_returning(
                conn: &mut Self::Connection,
                name: &str,
            ) -> Result<Vec<User>, sqlx::Error> {
                let sql = format!(r#"{} RETURNING "id", "name""#, Self::UPDATE_ALL);
                sqlx::query_as::<_, User>(AssertSqlSafe(sql))
                    .bind(name)
                    .bind(0_i64)
                    .fetch_all(conn)
                    .await
            }
            async fn delete_chunk_returning(
                conn: &mut Self::Connection,
                rows: usize,
            ) -> Result<Vec<User>, sqlx::Error> {
                let p = if Self::ANONYMOUS { '?' } else { '$' };
                let lock = if Self::ANONYMOUS { "" } else { " FOR UPDATE" };
                let sql = format!(
                    r#"DELETE FROM "users" WHERE "id" IN (SELECT "id" FROM "users" WHERE "id" > {p}1 ORDER BY "id" LIMIT {p}2{lock}) AND "id" > {p}3 RETURNING "id", "name""#
                );
                sqlx::query_as::<_, User>(AssertSqlSafe(sql))
                    .bind(0_i64)
                    .bind(i64::try_from(rows).expect("chunk fits"))
                    .bind(0_i64)
                    .fetch_all(conn)
                    .await
            }
            async fn delete_children_returning(
                conn: &mut Self::Connection,
                pattern: &str,
            ) -> Result<Vec<Child>, sqlx::Error> {
                sqlx::query_as::<_, Child>(Self::DELETE_CHILDREN)
                    .bind(pattern)
                    .fetch_all(conn)
                    .await
            }
            async fn delete_parents(
                conn: &mut Self::Connection,
                pattern: &str,
            ) -> Result<u64, sqlx::Error> {
                Ok(sqlx::query(Self::DELETE_PARENTS)
                    .bind(pattern)
                    .execute(conn)
                    .await?
                    .rows_affected())
            }
        }
    };
}

bench_db!(
    Sqlite,
    "INTEGER PRIMARY KEY",
    "BEGIN IMMEDIATE",
    true,
    r#"UPDATE "users" SET "name" = ?1 WHERE "id" > ?2"#,
    r#"DELETE FROM "users" WHERE "id" > ?1"#,
    r#"DELETE FROM "children" WHERE "parent_id" IN (SELECT "id" FROM "parents" WHERE "name" LIKE ?1) RETURNING "id", "parent_id", "label""#,
    r#"DELETE FROM "parents" WHERE "name" LIKE ?1"#,
    "DELETE FROM Jobs WHERE job_type = ?1",
    "DELETE FROM signals_orm_outbox WHERE queue = ?1",
    "INSERT INTO signals_orm_outbox",
    // Flushed 64 at a time, the rest by statements of 32, 16, .. 1 rows.
    |jobs| jobs / 64 + (jobs % 64).count_ones() as usize
);
bench_db!(
    Postgres,
    "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
    "BEGIN",
    false,
    r#"UPDATE "users" SET "name" = $1 WHERE "id" > $2"#,
    r#"DELETE FROM "users" WHERE "id" > $1"#,
    r#"DELETE FROM "children" WHERE "parent_id" IN (SELECT "id" FROM "parents" WHERE "name" LIKE $1) RETURNING "id", "parent_id", "label""#,
    r#"DELETE FROM "parents" WHERE "name" LIKE $1"#,
    "DELETE FROM apalis.jobs WHERE job_type = $1",
    "DELETE FROM apalis.signals_orm_outbox WHERE queue = $1",
    "WITH written AS ( INSERT INTO apalis.signals_orm_outbox",
    // One statement per flush, whatever its size.
    |jobs| jobs.div_ceil(64)
);

/// Rows a workload reads, made before the timed part.
#[derive(Default)]
struct Prepared {
    /// Workload 4's users to delete; workload 7's users to insert or update (the raw side's).
    users: Vec<User>,
    posts: Vec<Post>,
    tags: Vec<i64>,
    /// Workload 7's users to insert or update, for the ORM without receivers.
    plain: Vec<PlainUser>,
    /// The same, for the ORM with the no-op `post_save`.
    noop: Vec<NoopUser>,
    /// Workload 10's workers, stopped after the timed part.
    workers: Vec<durable::WorkerHandle>,
}

impl Prepared {
    /// Workload 7's `users`, as each side writes them.
    fn set_based(users: Vec<User>) -> Self {
        let typed = |user: &User| (user.id, user.name.clone());
        Prepared {
            plain: users
                .iter()
                .map(typed)
                .map(|(id, name)| PlainUser { id, name })
                .collect(),
            noop: users
                .iter()
                .map(typed)
                .map(|(id, name)| NoopUser { id, name })
                .collect(),
            users,
            ..Prepared::default()
        }
    }
}

/// `count` rows `{prefix} 1` ... in `table` in one statement (the same on both backends).
fn bulk_insert(table: &str, column: &str, prefix: &str, count: usize) -> String {
    format!(
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {count}) \
         INSERT INTO {table} ({column}) SELECT '{prefix} ' || x FROM n"
    )
}

/// Workload 8's children: `per_parent` rows `child 1` ... for each row of `parents`, in the
/// order of their parents' keys, in one statement (the same on both backends, and Django's).
fn insert_children(per_parent: usize) -> String {
    format!(
        "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < {per_parent}) \
         INSERT INTO children (parent_id, label) SELECT parents.id, 'child ' || n.x \
         FROM parents, n ORDER BY parents.id, n.x"
    )
}

async fn prepare<DB: BenchDb>(case: Case, pool: &Pool<DB>, config: &Config) -> Prepared
where
    DurableUser: Persist<DB>,
{
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
        Case::SetBased(SetWrite::BulkInsert, _) => Prepared::set_based(
            (0..config.saves)
                .map(|i| User {
                    id: None,
                    name: format!("user {i}"),
                })
                .collect(),
        ),
        Case::SetBased(SetWrite::BulkUpdate, _) => {
            DB::exec(pool, bulk_insert("users", "name", "user", config.saves)).await;
            let mut users = DB::users(pool).await;
            for (i, user) in users.iter_mut().enumerate() {
                user.name = format!("{RENAMED} {i}");
            }
            Prepared::set_based(users)
        }
        Case::SetBased(SetWrite::Update | SetWrite::Delete, _) | Case::Fetch(_) => {
            DB::exec(pool, bulk_insert("users", "name", "user", config.saves)).await;
            Prepared::default()
        }
        Case::Durable(_) => {
            fresh_queue(pool).await;
            // Warm-up, as the connection of an application that enqueued before: the outbox
            // statement prepared.
            saves_in_one_tx::<DB, DurableUser>(pool, 1)
                .await
                .expect("a warm-up save");
            DB::exec(pool, "DELETE FROM users".to_owned()).await;
            DB::delete_jobs(pool).await;
            Prepared::default()
        }
        Case::Workers => {
            fresh_queue(pool).await;
            // The backlog: a job per save, enqueued in the saves' transaction.
            saves_in_one_tx::<DB, DurableUser>(pool, worker_jobs(config))
                .await
                .expect("enqueueing workload 10's jobs");
            take_durable_runs();
            Prepared::default()
        }
        Case::Cascade => {
            DB::exec(
                pool,
                bulk_insert("parents", "name", "parent", config.parents),
            )
            .await;
            DB::exec(pool, insert_children(config.children)).await;
            let children = i64::try_from(config.parents * config.children).expect("count fits");
            assert_eq!(DB::count(pool, "children").await, children, "{case:?}");
            Prepared::default()
        }
    }
}

/// Checks what a run wrote (outside the timed part): both sides must do the same work (and,
/// in workload 9, the durable side, `is_ours`, a job per save).
async fn check<DB: BenchDb>(case: Case, is_ours: bool, pool: &Pool<DB>, config: &Config) {
    let saves = i64::try_from(config.saves).expect("count fits");
    match case {
        Case::Durable(shape) => {
            let saves = durable_saves(config, shape);
            let users = i64::try_from(saves).expect("count fits");
            assert_eq!(DB::count(pool, "users").await, users, "{case:?}");
            let jobs = if is_ours { saves as u64 } else { 0 };
            assert_eq!(queued(pool).await, (jobs, 0), "{case:?}: (pending, done)");
        }
        Case::Workers => {
            let jobs = worker_jobs(config);
            let runs = take_durable_runs();
            assert_eq!(runs.events.len(), jobs, "{case:?}: each job ran");
            if runs.again > 0 {
                eprintln!(
                    "  warning: {case:?}: {} jobs ran again (a worker's lease ended?)",
                    runs.again
                );
            }
            assert_eq!(
                queued(pool).await,
                (0, jobs as u64),
                "{case:?}: (pending, done)"
            );
        }
        Case::Fetch(_) => {
            assert_eq!(DB::count(pool, "users").await, saves, "{case:?}");
        }
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
        Case::Deletes | Case::SetBased(SetWrite::Delete, _) => {
            assert_eq!(DB::count(pool, "users").await, 0, "{case:?}");
        }
        Case::M2mAdd(_) => assert_eq!(
            DB::count(pool, "post_tags").await,
            i64::try_from(config.posts * config.tags).expect("count fits")
        ),
        Case::SetBased(SetWrite::BulkInsert, _) => {
            assert_eq!(DB::count(pool, "users").await, saves, "{case:?}");
            assert_eq!(DB::first_user_name(pool).await, "user 0", "{case:?}");
        }
        Case::SetBased(SetWrite::BulkUpdate, _) => {
            let renamed = DB::count_named(pool, &format!("{RENAMED} %")).await;
            assert_eq!(renamed, saves, "{case:?}");
            assert_eq!(DB::first_user_name(pool).await, "renamed 0", "{case:?}");
        }
        Case::SetBased(SetWrite::Update, _) => {
            assert_eq!(DB::count_named(pool, RENAMED).await, saves, "{case:?}");
        }
        Case::Cascade => {
            assert_eq!(DB::count(pool, "parents").await, 0, "{case:?}");
            assert_eq!(DB::count(pool, "children").await, 0, "{case:?}");
        }
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

/// Workload 7 through the ORM, given the pool, as model `M` (whose receivers the case names);
/// returns the rows written.
async fn set_based<DB: Backend, M: NewUser + Persist<DB>>(
    write: SetWrite,
    pool: &Pool<DB>,
    users: &mut [M],
) -> Result<u64, OrmError> {
    let every_row = || M::filter(M::id_column().gt(0));
    Ok(match write {
        SetWrite::BulkInsert => {
            let inserted = M::bulk_insert(pool, users).await?;
            u64::try_from(inserted).expect("count fits")
        }
        SetWrite::BulkUpdate => M::bulk_update(pool, users, &["name"]).await?,
        SetWrite::Update => {
            every_row()
                .update(pool, [M::name_column().set(RENAMED)])
                .await?
        }
        SetWrite::Delete => every_row().delete(pool).await?.total(),
    })
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
    PlainUser: Persist<DB>,
    Post: Persist<DB>,
    crate::models::Tag: Persist<DB>,
    Parent: Persist<DB>,
    Child: Persist<DB>,
    OnCommitUser: Persist<DB>,
    DurableUser: Persist<DB>,
    InitUser: Persist<DB>,
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
        Case::SetBased(write, heard) => {
            let rows = match (write, heard) {
                (_, false) => set_based(write, pool, &mut prepared.plain).await?,
                (SetWrite::Delete, true) => set_based::<DB, User>(write, pool, &mut []).await?,
                (_, true) => set_based(write, pool, &mut prepared.noop).await?,
            };
            assert_eq!(rows, u64::try_from(n).expect("count fits"), "{case:?}");
            Ok(())
        }
        Case::Durable(shape) => {
            saves_shaped::<DB, DurableUser>(pool, shape, durable_saves(config, shape)).await
        }
        Case::Workers => {
            prepared.workers = run_workers(pool, WORKERS, config).await;
            Ok(())
        }
        Case::Fetch(false) => fetch_all::<DB, PlainUser>(pool, n).await,
        Case::Fetch(true) => fetch_all::<DB, InitUser>(pool, n).await,
        Case::Cascade => {
            let deleted = Parent::filter(Parent::columns().name.like(PARENTS_MATCHING))
                .delete(pool)
                .await?;
            let rows = |n: usize| u64::try_from(n).expect("count fits");
            assert_eq!(
                (deleted.of::<Parent>(), deleted.of::<Child>()),
                (rows(config.parents), rows(config.parents * config.children)),
                "{case:?}"
            );
            Ok(())
        }
    }
}

/// Workload 9, through the ORM as model `M`: `n` saves, each given the pool or all in one
/// transaction.
async fn saves_shaped<DB: Backend, M: NewUser + Persist<DB>>(
    pool: &Pool<DB>,
    shape: Shape,
    n: usize,
) -> Result<(), OrmError> {
    match shape {
        Shape::TxEach => saves_given_the_pool::<DB, M>(pool, n).await,
        Shape::OneTx => saves_in_one_tx::<DB, M>(pool, n).await,
    }
}

/// Workload 11, through the ORM as model `M`: [`FETCH_REPEATS`] fetches of every row.
async fn fetch_all<DB: Backend, M: NewUser + Persist<DB>>(
    pool: &Pool<DB>,
    rows: usize,
) -> Result<(), OrmError> {
    for _ in 0..FETCH_REPEATS {
        let users = M::objects().all(pool).await?;
        assert_eq!(users.len(), rows, "workload 11");
        std::hint::black_box(users);
    }
    Ok(())
}

/// apalis's tables on `pool`, without jobs of [`DURABLE_QUEUE`] (outside the timed part).
async fn fresh_queue<DB: BenchDb>(pool: &Pool<DB>) {
    durable::setup(pool).await.expect("apalis's tables");
    DB::delete_jobs(pool).await;
}

/// The jobs of [`DURABLE_QUEUE`]: (pending, done).
async fn queued<DB: BenchDb>(pool: &Pool<DB>) -> (u64, u64) {
    durable::counts(pool)
        .await
        .expect("job counts")
        .into_iter()
        .find(|c| c.queue == DURABLE_QUEUE)
        .map_or((0, 0), |c| {
            assert_eq!((c.running, c.retrying, c.dead), (0, 0, 0), "{c}");
            (c.pending, c.done)
        })
}

/// Workload 10: starts `workers` workers of [`DURABLE_QUEUE`], each with a pool of its own,
/// and waits until the receiver has run every job of the backlog; returns them running (they
/// are stopped after the timed part).
async fn run_workers<DB: BenchDb>(
    pool: &Pool<DB>,
    workers: usize,
    config: &Config,
) -> Vec<durable::WorkerHandle> {
    let jobs = worker_jobs(config);
    let mut handles = Vec::with_capacity(workers);
    for i in 0..workers {
        let own = PoolOptions::<DB>::new()
            .max_connections(WORKER_CONNECTIONS)
            .connect_with((*pool.connect_options()).clone())
            .await
            .expect("a worker's pool");
        let name = format!("signals-bench-{}-{i}", std::process::id());
        handles.push(
            durable::worker(&own)
                .queue(DURABLE_QUEUE)
                .name(&name)
                .spawn(),
        );
    }
    while durable_runs() < jobs {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    handles
}

/// Stops what a run left running (workload 10's workers), outside the timed part.
async fn finish(prepared: &mut Prepared) {
    for worker in prepared.workers.drain(..) {
        worker.shutdown().await.expect("a worker stops");
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

/// Workload 7 as a sqlx user without signals writes it (the same for both receiver
/// configurations): the ORM's statements without `RETURNING` where only receivers need the
/// rows, in its chunks, alone in autocommit when one statement does the job, else in one
/// transaction; returns the rows written.
async fn raw_set_based<DB: BenchDb>(
    write: SetWrite,
    pool: &Pool<DB>,
    users: &mut [User],
) -> Result<u64, sqlx::Error> {
    // Rows per statement: an INSERT binds each row's name; an UPDATE .. CASE its key twice
    // and its name, and takes at most `UPDATE_ROWS`.
    let per_statement = match write {
        SetWrite::BulkInsert => DB::MAX_BIND_PARAMETERS,
        SetWrite::BulkUpdate => UPDATE_ROWS.min(DB::MAX_BIND_PARAMETERS / 3),
        SetWrite::Update | SetWrite::Delete => usize::MAX,
    };
    if users.len() > per_statement {
        let mut tx = pool.begin_with(DB::RAW_BEGIN).await?;
        let mut rows = 0;
        for chunk in users.chunks_mut(per_statement) {
            rows += match write {
                SetWrite::BulkInsert => {
                    DB::insert_users(&mut tx, chunk).await?;
                    chunk.len() as u64
                }
                _ => DB::update_users(&mut tx, chunk).await?,
            };
        }
        tx.commit().await?;
        return Ok(rows);
    }
    let mut conn = pool.acquire().await?;
    Ok(match write {
        SetWrite::BulkInsert => {
            DB::insert_users(&mut conn, users).await?;
            users.len() as u64
        }
        SetWrite::BulkUpdate => DB::update_users(&mut conn, users).await?,
        SetWrite::Update => DB::update_all(&mut conn, RENAMED).await?,
        SetWrite::Delete => DB::delete_all(&mut conn).await?,
    })
}

/// Workload 7 with a receiver, as raw sqlx running the statements the ORM runs then: the
/// same texts with their `RETURNING`, the rows fetched (and decoded into `User` where the ORM
/// decodes them for its receivers), in one transaction as the ORM's; returns the rows written.
/// What the receivers cost beyond the rows they need is the difference from the ORM's time.
async fn raw_set_based_returning<DB: BenchDb>(
    write: SetWrite,
    pool: &Pool<DB>,
    users: &mut [User],
) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin_with(DB::RAW_BEGIN).await?;
    let mut rows = 0;
    match write {
        SetWrite::BulkInsert => {
            for chunk in users.chunks_mut(DB::MAX_BIND_PARAMETERS) {
                DB::insert_users(&mut tx, chunk).await?;
                rows += chunk.len() as u64;
            }
        }
        SetWrite::BulkUpdate => {
            for chunk in users.chunks(UPDATE_ROWS.min(DB::MAX_BIND_PARAMETERS / 3)) {
                rows += DB::update_users_returning(&mut tx, chunk).await?;
            }
        }
        SetWrite::Update => rows = DB::update_all_returning(&mut tx, RENAMED).await?.len() as u64,
        SetWrite::Delete => loop {
            let chunk = signals_orm::query::ROWS_PER_CHUNK;
            let deleted = DB::delete_chunk_returning(&mut tx, chunk).await?;
            rows += deleted.len() as u64;
            if deleted.len() < chunk {
                break;
            }
        },
    }
    tx.commit().await?;
    Ok(rows)
}

/// The raw sqlx side of a case.
async fn raw<DB: BenchDb>(
    case: Case,
    pool: &Pool<DB>,
    prepared: &mut Prepared,
    config: &Config,
) -> Result<(), sqlx::Error>
where
    OnCommitUser: Persist<DB>,
{
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
        Case::SetBased(write, heard) => {
            let rows = if heard {
                raw_set_based_returning(write, pool, &mut prepared.users).await?
            } else {
                raw_set_based(write, pool, &mut prepared.users).await?
            };
            assert_eq!(rows, config.saves as u64, "{case:?}");
            Ok(())
        }
        // Workload 9's baseline: the ORM too, the receiver `on_commit`.
        Case::Durable(shape) => {
            saves_shaped::<DB, OnCommitUser>(pool, shape, durable_saves(config, shape))
                .await
                .map_err(|e| sqlx::Error::Protocol(e.to_string()))
        }
        Case::Workers => {
            prepared.workers = run_workers(pool, 1, config).await;
            Ok(())
        }
        Case::Fetch(_) => {
            for _ in 0..FETCH_REPEATS {
                let users = DB::select_users(pool).await?;
                assert_eq!(users.len(), config.saves, "{case:?}");
                std::hint::black_box(users);
            }
            Ok(())
        }
        // What a sqlx user writes to delete the parents and their children and act on each
        // child deleted: the children by a subquery on the parents' condition, returned and
        // decoded, then the parents, in one transaction.
        Case::Cascade => {
            let mut tx = pool.begin_with(DB::RAW_BEGIN).await?;
            let children = DB::delete_children_returning(&mut tx, PARENTS_MATCHING).await?;
            let parents = DB::delete_parents(&mut tx, PARENTS_MATCHING).await?;
            tx.commit().await?;
            assert_eq!(
                (parents, children.len()),
                (config.parents as u64, config.parents * config.children),
                "{case:?}"
            );
            Ok(())
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
    PlainUser: Persist<DB>,
    Post: Persist<DB>,
    crate::models::Tag: Persist<DB>,
    Parent: Persist<DB>,
    Child: Persist<DB>,
    OnCommitUser: Persist<DB>,
    DurableUser: Persist<DB>,
    InitUser: Persist<DB>,
{
    for case in Case::all() {
        let name = format!("{}: {}", S::KEY, case.label(config));
        if !case.runs_on(S::KEY) || !selected(config, &name) {
            continue;
        }
        let mut row = Row {
            case,
            backend: S::KEY,
            ours: Side::default(),
            raw: Side::default(),
        };
        let reps = if matches!(case, Case::TxPerSave(_) | Case::Workers) {
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
                        raw(case, &pool, &mut prepared, config)
                            .await
                            .expect("raw workload");
                    })
                    .await
                };
                finish(&mut prepared).await;
                drop(prepared);
                check(case, is_ours, &pool, config).await;
                let side = if is_ours { &mut row.ours } else { &mut row.raw };
                side.secs.push(secs);
                side.peaks.push(growth);
                side.peak_totals.push(peak);
            }
        }
        #[expect(clippy::cast_precision_loss, reason = "a rate")]
        let ops = case.ops(config) as f64;
        let (ours_rate, raw_rate) = (ops / row.ours.median_secs(), ops / row.raw.median_secs());
        // Workload 11 shows ns per row (its ratio is then ours' time over raw sqlx's).
        let per_row = case.unit() == "ns/row";
        let shown = |secs: f64| {
            if per_row {
                format!("{:.1}", secs * 1e9 / ops)
            } else {
                thousands(ops / secs)
            }
        };
        let spread = |side: &Side| {
            let (low, high) = side
                .secs
                .iter()
                .fold((f64::INFINITY, 0.0_f64), |(l, h), &x| (l.min(x), h.max(x)));
            if per_row {
                format!("{}-{}", shown(low), shown(high))
            } else {
                format!("{}-{}", shown(high), shown(low))
            }
        };
        eprintln!(
            "  {:<55} ours {:>9} {}  {} {:>9}  ratio {:.3}  (all runs: ours {}, {} {}){}",
            case.label(config),
            shown(row.ours.median_secs()),
            case.unit(),
            case.baseline_kind(),
            shown(row.raw.median_secs()),
            if per_row {
                row.ours.median_secs() / row.raw.median_secs()
            } else {
                ours_rate / raw_rate
            },
            spread(&row.ours),
            case.baseline_kind(),
            spread(&row.raw),
            if case == Case::Cascade {
                format!(
                    "  ({:.2} ms against {:.2} ms a delete)",
                    row.ours.median_secs() * 1e3,
                    row.raw.median_secs() * 1e3
                )
            } else {
                String::new()
            }
        );
        results.rows.push(row);
    }
}

/// Workload 7's peak heap: a filtered delete of `rows` rows (every row of `users`) with a no-op
/// `pre_delete` receiver, which the ORM reads and deletes `ROWS_PER_CHUNK` rows at a time, and
/// raw sqlx's `DELETE .. WHERE` of the same rows; one run each (the heap's peak barely moves
/// between runs), on a fresh in-memory database.
async fn heap_delete(rows: usize, source: &mut SqliteMemory) -> HeapDelete {
    let label = heap_delete_label(rows);
    let mut out = HeapDelete {
        rows,
        ours: Side::default(),
        raw: Side::default(),
    };
    for is_ours in [true, false] {
        let pool = source.fresh().await;
        Sqlite::exec(&pool, bulk_insert("users", "name", "user", rows)).await;
        let (secs, growth, peak) = timed(async {
            let deleted = if is_ours {
                PreDeleteUser::filter(PreDeleteUser::columns().id.gt(0))
                    .delete(&pool)
                    .await
                    .expect("ORM delete")
                    .total()
            } else {
                let mut conn = pool.acquire().await.expect("a connection");
                Sqlite::delete_all(&mut conn).await.expect("raw delete")
            };
            assert_eq!(deleted, rows as u64, "{label}");
        })
        .await;
        assert_eq!(Sqlite::count(&pool, "users").await, 0, "{label}");
        let side = if is_ours { &mut out.ours } else { &mut out.raw };
        side.secs.push(secs);
        side.peaks.push(growth);
        side.peak_totals.push(peak);
    }
    eprintln!(
        "  {label}\n  {:<55} ours {:>9.0} KiB (+{:.0}), {:.2} s  raw {:>9.0} KiB (+{:.0}), {:.2} s",
        "",
        out.ours.median_peak() / 1024.0,
        out.ours.median_growth() / 1024.0,
        out.ours.median_secs(),
        out.raw.median_peak() / 1024.0,
        out.raw.median_growth() / 1024.0,
        out.raw.median_secs(),
    );
    out
}

/// The smoke test's check of workload 7's raw side (the ORM does not expose these texts): on
/// each backend, for each write, with and without its receiver, the statements sqlx reports
/// for the ORM must be the raw side's; and workload 8's: the ORM must run its three statements
/// ([`cascade_statements`]) and raw sqlx its two, each side in the same transaction.
/// Rows: more than one `bulk_update` statement takes. Installs the statement recorder: the
/// process measures nothing after it.
pub fn check_statements(config: &Config) -> Result<(), String> {
    if !crate::statements::install() {
        return Err("another tracing subscriber is installed".to_owned());
    }
    let config = Config {
        saves: 2 * UPDATE_ROWS + 234,
        ..config.clone()
    };
    runtime().block_on(async {
        check_backend(&config, &mut SqliteMemory(None)).await;
        if let Ok(url) = std::env::var("DATABASE_URL") {
            let mut pg = Pg::connect(&url).await;
            check_backend(&config, &mut pg).await;
            pg.drop_schema().await;
        }
    });
    Ok(())
}

async fn check_backend<DB: BenchDb, S: Source<DB>>(config: &Config, source: &mut S)
where
    User: Persist<DB>,
    NoopUser: Persist<DB>,
    ProfiledUser: Persist<DB>,
    CapitalizedUser: Persist<DB>,
    PlainUser: Persist<DB>,
    Post: Persist<DB>,
    crate::models::Tag: Persist<DB>,
    Parent: Persist<DB>,
    Child: Persist<DB>,
    OnCommitUser: Persist<DB>,
    DurableUser: Persist<DB>,
    InitUser: Persist<DB>,
{
    for write in SetWrite::ALL {
        for heard in [false, true] {
            let case = Case::SetBased(write, heard);
            let raw_side = statements_of(case, false, config, source).await;
            let ours = statements_of(case, true, config, source).await;
            let what = format!("{}: {}", S::KEY, case.label(config));
            // The same statements, `COMMIT` included where sqlx reports it (PostgreSQL).
            same_statements(&what, &ours, &raw_side);
            eprintln!("  {what}: {} statements, as expected", ours.len());
        }
    }
    // Workload 8: each side runs its own statements (the raw side's are what a sqlx user
    // writes, not the ORM's), in the same transaction.
    let case = Case::Cascade;
    let raw_side = statements_of(case, false, config, source).await;
    let ours = statements_of(case, true, config, source).await;
    let what = format!("{}: {}", S::KEY, case.label(config));
    let control = |all: &[String]| -> (Vec<String>, Vec<String>) {
        all.iter().cloned().partition(|s| is_control(s))
    };
    let ((raw_control, raw_dml), (our_control, our_dml)) = (control(&raw_side), control(&ours));
    assert_eq!(
        our_control, raw_control,
        "{what}: the same transaction statements"
    );
    let raw_expected = [DB::DELETE_CHILDREN, DB::DELETE_PARENTS].map(str::to_owned);
    same_statements(&format!("{what}, raw sqlx"), &raw_dml, &raw_expected);
    same_statements(
        &format!("{what}, ORM"),
        &our_dml,
        &cascade_statements::<DB>(config.parents),
    );
    eprintln!(
        "  {what}: the ORM's {} statements and raw sqlx's {}, as expected",
        our_dml.len(),
        raw_dml.len()
    );
    // Workload 11: the ORM's fetch runs raw sqlx's SELECT, heard or not.
    for heard in [false, true] {
        let case = Case::Fetch(heard);
        let raw_side = statements_of(case, false, config, source).await;
        let ours = statements_of(case, true, config, source).await;
        let what = format!("{}: {}", S::KEY, case.label(config));
        same_statements(&what, &ours, &raw_side);
        assert!(ours.iter().all(|s| s == SELECT_USERS), "{what}: {ours:?}");
        eprintln!("  {what}: {} statements, as expected", ours.len());
    }
    // Workload 9: the durable side runs the on_commit side's statements and the outbox
    // INSERTs, in the saves' transactions.
    for shape in [Shape::TxEach, Shape::OneTx] {
        let case = Case::Durable(shape);
        // 30 saves: 3 in their own transactions.
        let small = Config {
            saves: 30,
            ..config.clone()
        };
        let saves = durable_saves(&small, shape);
        let on_commit = statements_of(case, false, &small, source).await;
        let durable = statements_of(case, true, &small, source).await;
        let what = format!("{}: {}", S::KEY, case.label(&small));
        outbox_inserts_per_transaction::<DB>(&what, shape, &on_commit, &durable, saves);
        eprintln!(
            "  {what}: {} statements, the on_commit side's {} and {} outbox INSERTs for {} \
             jobs, in the saves' transactions, as expected",
            durable.len(),
            on_commit.len(),
            durable.len() - on_commit.len(),
            saves
        );
    }
}

/// Panics unless `durable` is `on_commit` with the outbox INSERTs added, inside the saves'
/// transactions (before their `COMMIT`, wherever sqlx reports it): one per save when each
/// save is its own transaction, right after the save's INSERT; `DB::outbox_statements` of
/// them when the saves share one (a statement per 64 staged jobs, then the rest at COMMIT).
fn outbox_inserts_per_transaction<DB: BenchDb>(
    what: &str,
    shape: Shape,
    on_commit: &[String],
    durable: &[String],
    saves: usize,
) {
    let collapsed = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
    let is_job = |s: &str| collapsed(s).starts_with(DB::JOB_INSERT);
    let is_save = |s: &str| s.starts_with(r#"INSERT INTO "users""#);
    let (jobs, rest): (Vec<&String>, Vec<&String>) = durable.iter().partition(|s| is_job(s));
    assert_eq!(
        rest,
        on_commit.iter().collect::<Vec<_>>(),
        "{what}: besides the outbox INSERTs, the on_commit side's statements"
    );
    let expected = match shape {
        Shape::TxEach => saves,
        Shape::OneTx => DB::outbox_statements(saves),
    };
    assert_eq!(
        jobs.len(),
        expected,
        "{what}: outbox INSERTs for {saves} saves: {durable:#?}"
    );
    let saves_seen = durable.iter().filter(|s| is_save(s)).count();
    assert_eq!(saves_seen, saves, "{what}: {durable:#?}");
    // sqlx reports neither `BEGIN` nor (on SQLite) `COMMIT`.
    let commits = durable.iter().filter(|s| is_control(s)).count();
    for (i, statement) in durable.iter().enumerate() {
        if is_job(statement) {
            if shape == Shape::TxEach {
                assert!(
                    i > 0 && is_save(&durable[i - 1]),
                    "{what}: statement {i}, an outbox INSERT, follows its save's INSERT: {durable:#?}"
                );
            }
            if commits > 0 {
                assert!(
                    durable[i + 1..].iter().any(|s| is_control(s)),
                    "{what}: statement {i}, an outbox INSERT, before its transaction's COMMIT: \
                     {durable:#?}"
                );
            }
        }
    }
}

/// Whether a statement begins or ends a transaction (or a savepoint).
fn is_control(statement: &str) -> bool {
    let first = statement.split_whitespace().next().unwrap_or_default();
    ["BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE"]
        .iter()
        .any(|word| first.eq_ignore_ascii_case(word))
}

/// The statements the ORM runs for workload 8's delete of `parents` parents (the delete
/// collector with a `post_delete` receiver on the child only): the parents' keys (locked on
/// PostgreSQL), the children by those keys, returned whole for `post_delete`, the parents by
/// those keys.
fn cascade_statements<DB: BenchDb>(parents: usize) -> [String; 3] {
    let p = if DB::ANONYMOUS { '?' } else { '$' };
    let lock = if DB::ANONYMOUS { "" } else { " FOR UPDATE" };
    // SQLite binds a key list to bare `?` placeholders, in order; PostgreSQL numbers them.
    let keys = (1..=parents)
        .map(|i| {
            if DB::ANONYMOUS {
                "?".to_owned()
            } else {
                format!("${i}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    [
        format!(r#"SELECT "id" FROM "parents" WHERE "name" LIKE {p}1 ORDER BY "id"{lock}"#),
        format!(
            r#"DELETE FROM "children" WHERE "parent_id" IN ({keys}) RETURNING "id", "parent_id", "label""#
        ),
        format!(r#"DELETE FROM "parents" WHERE "id" IN ({keys})"#),
    ]
}

/// Panics, showing where they part, unless the ORM's statements are the raw side's.
fn same_statements(what: &str, ours: &[String], raw: &[String]) {
    let snippet = |s: &str, at: usize| {
        let start = s.floor_char_boundary(at.saturating_sub(40));
        let end = s.ceil_char_boundary((at + 40).min(s.len()));
        format!("…{}…", &s[start..end])
    };
    for (i, (o, r)) in ours.iter().zip(raw).enumerate() {
        if o != r {
            let at = o
                .bytes()
                .zip(r.bytes())
                .position(|(a, b)| a != b)
                .unwrap_or(o.len().min(r.len()));
            panic!(
                "{what}: statement {i} differs at byte {at} (lengths {} and {}):\n  ORM: {}\n  raw: {}",
                o.len(),
                r.len(),
                snippet(o, at),
                snippet(r, at)
            );
        }
    }
    assert_eq!(
        ours.len(),
        raw.len(),
        "{what}: the ORM ran {} statements, the raw side {}:\n  ORM: {:?}\n  raw: {:?}",
        ours.len(),
        raw.len(),
        ours.iter().map(|s| snippet(s, 0)).collect::<Vec<_>>(),
        raw.iter().map(|s| snippet(s, 0)).collect::<Vec<_>>()
    );
}

/// The statements sqlx reports for one side of a case.
async fn statements_of<DB: BenchDb, S: Source<DB>>(
    case: Case,
    is_ours: bool,
    config: &Config,
    source: &mut S,
) -> Vec<String>
where
    User: Persist<DB>,
    NoopUser: Persist<DB>,
    ProfiledUser: Persist<DB>,
    CapitalizedUser: Persist<DB>,
    PlainUser: Persist<DB>,
    Post: Persist<DB>,
    crate::models::Tag: Persist<DB>,
    Parent: Persist<DB>,
    Child: Persist<DB>,
    OnCommitUser: Persist<DB>,
    DurableUser: Persist<DB>,
    InitUser: Persist<DB>,
{
    let pool = source.fresh().await;
    let mut prepared = prepare(case, &pool, config).await;
    let ((), statements) = crate::statements::recorded(async {
        if is_ours {
            ours(case, &pool, &mut prepared, config)
                .await
                .expect("ORM workload");
        } else {
            raw(case, &pool, &mut prepared, config)
                .await
                .expect("raw workload");
        }
    })
    .await;
    finish(&mut prepared).await;
    check(case, is_ours, &pool, config).await;
    statements
}
