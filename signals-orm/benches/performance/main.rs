//! What signals cost: dispatch against direct calls (timed loops), ORM workloads against raw sqlx
//! running the same SQL in the same transaction shape (SQLite in memory, SQLite WAL file,
//! PostgreSQL when `DATABASE_URL` is set), and Django running the same workloads on the same
//! backends, printed as one table followed by the targets met or missed, and written as JSON.
//! Workloads 9 and 10 measure durable receivers (a save with one against the same save with an
//! `on_commit` receiver; workers draining a backlog, PostgreSQL only), workload 11 a fetch with
//! and without a `post_init` receiver against raw sqlx (see `workloads`).
//!
//! ```sh
//! cargo bench -p signals-orm --all-features --bench performance
//! # then, to put that run's table into docs/performance.md (between its results markers):
//! SIGNALS_BENCH_DOCS=1 cargo bench -p signals-orm --all-features --bench performance
//! ```
//!
//! Environment:
//!
//! - `SIGNALS_BENCH_QUICK=1` divides the counts by 10 (a quick look, not the documented
//!   numbers); `SIGNALS_BENCH_REPS=N` sets the repetitions (default 5, and 3 for workload 3;
//!   medians are reported); `SIGNALS_BENCH_SAVES` (also the rows of each set-based write of
//!   workload 7), `SIGNALS_BENCH_POSTS` and `SIGNALS_BENCH_PARENTS` (workload 8's parents,
//!   1,000, each with 10 children) set the counts (workload 10's backlog is a quarter of the
//!   saves; workload 11 fetches the saves' count of rows `FETCH_REPEATS` times). Workload 7's peak-heap delete removes
//!   1,000,000 rows (100,000 in QUICK mode, none in the smoke test).
//! - `SIGNALS_BENCH_ONLY=text` runs only the database workloads whose `backend: workload`
//!   contains `text`, or one of its `|`-separated parts (`SIGNALS_BENCH_ONLY='9. |10. |11. '`:
//!   workloads 9 to 11) (no dispatch, and no Django unless `SIGNALS_BENCH_DJANGO=1`: then Django
//!   runs the same workloads on the same backends), `SIGNALS_BENCH_ONLY=dispatch` only
//!   workload 1; `SIGNALS_BENCH_DJANGO=0` skips Django;
//!   `SIGNALS_BENCH_PIN=0` leaves the process unpinned (see `pin`).
//! - `DJANGO_BENCH_PYTHON` names the interpreter for Django's virtual environment; unset,
//!   `benches/django/bench.py` (started with `python3`) takes the newest working one of
//!   `python3.14`, `python3.13`, `python3.12` on `PATH` or under `~/.pyenv/versions/*/bin`, and
//!   `python3`, so that pip installs Django's current release. `DATABASE_URL` passes through:
//!   Django measures the same PostgreSQL server, in a schema of its own.
//! - `SIGNALS_BENCH_JSON=path` is where the JSON result goes (relative paths from the workspace
//!   root); default `target/bench/performance.json` for a full run, and
//!   `performance-quick.json`, `performance-only.json`, `performance-quick-only.json` or
//!   `performance-smoke.json` for the others, so a partial run never replaces a full one. The
//!   path is printed at the end. Its layout is `table::Report` (`schema` 1): date, git commit,
//!   mode, machine, versions (rustc, sqlx, SQLite, PostgreSQL server, Python, Django, psycopg),
//!   counts, and each row of the table with its section, workload, backend, unit, ours, baseline
//!   (raw sqlx or direct call), Django, both ratios, heap and the seconds of every repetition;
//!   then the notes and the targets.
//! - `SIGNALS_BENCH_DOCS=1` measures nothing: it reads the JSON result (the default path above,
//!   or `SIGNALS_BENCH_JSON`) and rewrites the part of `docs/performance.md` between
//!   `<!-- results:begin -->` and `<!-- results:end -->` with the same Markdown the run printed,
//!   leaving the rest of the page alone (`SIGNALS_BENCH_DOCS=other.md` rewrites that file).
//!
//! Without `--bench` (`cargo test --benches`) everything but Django runs once with tiny counts,
//! as a smoke test; it writes `performance-smoke.json` and checks that it reads back to the same
//! table and that the page has its markers. It also checks that workload 7's raw side runs the
//! statements the ORM runs, from sqlx's statement log (`statements`; a measuring run does not
//! record it).
//!
//! Memory is the process-wide heap: the global allocator counts the bytes allocated by every
//! thread (sqlx's SQLite worker threads too) and keeps the peak. SQLite's own C allocations
//! (its page cache) and the PostgreSQL server are outside it.

mod dispatch;
mod django;
mod models;
mod statements;
mod table;
mod workloads;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use peak_alloc::PeakAlloc;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::SqlitePoolOptions;

/// Counts heap bytes process-wide and keeps the peak.
#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

/// Sizes and switches of one run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Saves of workloads 2 and 3, deletes of workload 4, rows of each write of workload 7.
    pub saves: usize,
    /// Rows of workload 7's filtered delete measured for its peak heap (0: not run).
    pub heap_delete_rows: usize,
    /// Posts of workload 5.
    pub posts: usize,
    /// Tags added to each post.
    pub tags: usize,
    /// Parents of workload 8 (the cascading delete).
    pub parents: usize,
    /// Children of each parent of workload 8.
    pub children: usize,
    /// Repetitions of each database measurement; the median is reported.
    pub reps: usize,
    /// Repetitions of workload 3 (a commit per save, the slowest by far).
    pub tx_each_reps: usize,
    /// Timed repetitions of each dispatch workload; the median is reported.
    pub dispatch_reps: usize,
    /// Calls in each repetition of a dispatch workload.
    pub dispatch_iters: u32,
    /// Tiny counts, one repetition: `cargo test --benches`.
    pub smoke: bool,
    /// Counts divided by 10.
    pub quick: bool,
    /// Whether to run Django.
    pub django: bool,
    /// Only the database workloads whose `backend: label` contains this (and no dispatch).
    pub only: Option<String>,
}

impl Config {
    fn from_env() -> Self {
        let flag = |name: &str| std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0");
        let smoke = !std::env::args().any(|a| a == "--bench");
        let quick = flag("SIGNALS_BENCH_QUICK");
        let reps = std::env::var("SIGNALS_BENCH_REPS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n| n > 0);
        let only = std::env::var("SIGNALS_BENCH_ONLY")
            .ok()
            .filter(|v| !v.is_empty());
        // Django runs by default, but in a narrowed run only when asked for.
        let django = match std::env::var("SIGNALS_BENCH_DJANGO") {
            Ok(v) if !v.is_empty() => v != "0",
            _ => only.is_none(),
        };
        let count = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
        if smoke {
            Config {
                saves: 40,
                heap_delete_rows: 0,
                posts: 10,
                tags: 5,
                parents: 10,
                children: 10,
                reps: 1,
                tx_each_reps: 1,
                dispatch_reps: 1,
                dispatch_iters: 10,
                smoke,
                quick,
                django: false,
                only,
            }
        } else {
            let divisor = if quick { 10 } else { 1 };
            Config {
                saves: count("SIGNALS_BENCH_SAVES").unwrap_or(20_000 / divisor),
                heap_delete_rows: 1_000_000 / divisor,
                posts: count("SIGNALS_BENCH_POSTS").unwrap_or(5_000 / divisor),
                tags: 5,
                parents: count("SIGNALS_BENCH_PARENTS").unwrap_or(1_000 / divisor),
                children: 10,
                reps: reps.unwrap_or(if quick { 3 } else { 5 }),
                tx_each_reps: reps.unwrap_or(3),
                dispatch_reps: 200 / divisor,
                dispatch_iters: 10_000,
                smoke,
                quick,
                django,
                only,
            }
        }
    }
}

/// Runs `f` and returns its result with the process-wide heap peak above the start, in bytes.
pub fn peak_bytes<T>(f: impl FnOnce() -> T) -> (T, usize) {
    PeakAlloc.reset_peak_usage();
    let start = PeakAlloc.current_usage();
    let value = f();
    (value, PeakAlloc.peak_usage().saturating_sub(start))
}

/// The machine the benchmark runs on, and the core it is pinned to.
fn machine(pinned_core: Option<usize>) -> table::Machine {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    table::Machine {
        cores,
        cpu,
        os: std::env::consts::OS.to_owned(),
        arch: std::env::consts::ARCH.to_owned(),
        pinned_core,
    }
}

/// The workspace's root directory (where `Cargo.lock` and `docs/` are).
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// A path from the environment: relative paths are relative to the workspace's root.
fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(|v| workspace_root().join(v))
}

/// Where the JSON result goes: `SIGNALS_BENCH_JSON`, or `target/bench/performance.json` for a
/// full run (`performance-quick.json`, `-only`, `-smoke` otherwise, so that a quick or partial
/// run never replaces a full one).
fn json_path(config: Option<&Config>) -> PathBuf {
    if let Some(path) = env_path("SIGNALS_BENCH_JSON") {
        return path;
    }
    let mut name = "performance".to_owned();
    if let Some(config) = config {
        if config.smoke {
            name.push_str("-smoke");
        } else {
            if config.quick {
                name.push_str("-quick");
            }
            if config.only.is_some() {
                name.push_str("-only");
            }
        }
    }
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent()
        .unwrap_or(tmp)
        .join("bench")
        .join(format!("{name}.json"))
}

/// The first line a command prints, if it runs and succeeds.
fn first_line(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    output.status.success().then_some(())?;
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .next()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
}

/// A package's version in the workspace's `Cargo.lock`.
fn locked_version(package: &str) -> Option<String> {
    let lock = std::fs::read_to_string(workspace_root().join("Cargo.lock")).ok()?;
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == format!("name = \"{package}\"") {
            let version = lines.next()?.strip_prefix("version = \"")?;
            return version.strip_suffix('"').map(str::to_owned);
        }
    }
    None
}

/// The SQLite library sqlx links, and the PostgreSQL server of `DATABASE_URL`.
fn database_versions() -> (Option<String>, Option<String>) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return (None, None);
    };
    runtime.block_on(async {
        let sqlite = async {
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .connect("sqlite::memory:")
                .await
                .ok()?;
            let version = sqlx::query_scalar::<_, String>("SELECT sqlite_version()")
                .fetch_one(&pool)
                .await
                .ok();
            pool.close().await;
            version
        }
        .await;
        let postgres = async {
            let url = std::env::var("DATABASE_URL").ok()?;
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(10))
                .connect(&url)
                .await
                .ok()?;
            let version = sqlx::query_scalar::<_, String>("SHOW server_version")
                .fetch_one(&pool)
                .await
                .ok();
            pool.close().await;
            version
        }
        .await;
        (sqlite, postgres)
    })
}

/// Everything the run measured with, Django's side from what its script reported.
fn versions(django: &django::Django) -> table::Versions {
    let (sqlite, postgres) = database_versions();
    table::Versions {
        rustc: first_line("rustc", &["--version"]),
        sqlx: locked_version("sqlx"),
        sqlite,
        postgres: postgres.or_else(|| django.postgres.clone()),
        python: django.python.clone(),
        python_executable: django.python_executable.clone(),
        django: django.version.clone(),
        psycopg: django.psycopg.clone(),
        python_sqlite: django.sqlite.clone(),
    }
}

/// The workspace's commit and whether tracked files differ from it, as they were when the run
/// started (the build measured is that tree; a commit made during a long run must not be
/// credited with it).
fn git() -> (Option<String>, Option<bool>) {
    static AT_START: std::sync::OnceLock<(Option<String>, Option<bool>)> =
        std::sync::OnceLock::new();
    AT_START.get_or_init(git_now).clone()
}

/// The workspace's commit, and whether tracked files differ from it (read only: no index
/// refresh).
fn git_now() -> (Option<String>, Option<bool>) {
    let root = workspace_root();
    let root = root.to_string_lossy();
    let commit = first_line("git", &["-C", &root, "rev-parse", "HEAD"]);
    let dirty = commit.as_ref().and_then(|_| {
        let output = Command::new("git")
            .args([
                "--no-optional-locks",
                "-C",
                &root,
                "status",
                "--porcelain",
                "--untracked-files=no",
            ])
            .output()
            .ok()?;
        output.status.success().then_some(!output.stdout.is_empty())
    });
    (commit, dirty)
}

/// Now, UTC, as `2025-01-31T12:00:00Z`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, time) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (Howard Hinnant's `civil_from_days`).
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        time / 3600,
        time % 3600 / 60,
        time % 60
    )
}

/// `SIGNALS_BENCH_DOCS`: the Markdown file to rewrite from the JSON, instead of measuring.
fn docs_target() -> Option<PathBuf> {
    let value = std::env::var("SIGNALS_BENCH_DOCS").ok()?;
    match value.as_str() {
        "" | "0" => None,
        "1" => Some(workspace_root().join("docs/performance.md")),
        _ => env_path("SIGNALS_BENCH_DOCS"),
    }
}

/// Reads a JSON result.
fn read_report(path: &Path) -> Result<table::Report, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let report: table::Report =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if report.schema != table::SCHEMA_VERSION {
        return Err(format!(
            "{}: schema {}, this benchmark reads {}",
            path.display(),
            report.schema,
            table::SCHEMA_VERSION
        ));
    }
    Ok(report)
}

/// Rewrites the Results section of `docs` (between its markers) from the JSON result.
fn regenerate_docs(docs: &Path) -> Result<(), String> {
    let json = json_path(None);
    let report = read_report(&json)?;
    if report.mode != "full" || report.only.is_some() {
        eprintln!(
            "warning: {} is a {} run{}: not the documented counts",
            json.display(),
            report.mode,
            if report.only.is_some() {
                " of some workloads only"
            } else {
                ""
            }
        );
    }
    let doc = std::fs::read_to_string(docs).map_err(|e| format!("{}: {e}", docs.display()))?;
    let updated = table::splice(&doc, &table::render(&report))
        .map_err(|e| format!("{}: {e}", docs.display()))?;
    std::fs::write(docs, updated).map_err(|e| format!("{}: {e}", docs.display()))?;
    eprintln!(
        "{}: results rewritten from {} (run of {}, commit {})",
        docs.display(),
        json.display(),
        report.date,
        report.git_commit.as_deref().unwrap_or("unknown")
    );
    Ok(())
}

/// Writes the JSON result; in the smoke test, also checks that it reads back to the same
/// report and that `docs/performance.md` has the markers to take it (without writing there).
fn write_report(report: &table::Report, config: &Config) -> Result<PathBuf, String> {
    let path = json_path(Some(config));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let json = serde_json::to_string_pretty(report).map_err(|e| e.to_string())?;
    std::fs::write(&path, json + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    if config.smoke {
        // Floats may come back one unit in the last place off (serde_json's fast parser): the
        // table they render must not change.
        let back = read_report(&path)?;
        assert_eq!(back.rows.len(), report.rows.len());
        assert_eq!(
            table::render(&back),
            table::render(report),
            "the JSON result renders as the run did"
        );
        let docs = workspace_root().join("docs/performance.md");
        let doc = std::fs::read_to_string(&docs).map_err(|e| format!("{}: {e}", docs.display()))?;
        table::splice(&doc, &table::render(&back))
            .map_err(|e| format!("{}: {e}", docs.display()))?;
    }
    Ok(path)
}

/// Pins the calling thread, and so every thread and process it starts (sqlx's SQLite workers,
/// Django), to the last core; returns it.
///
/// Unpinned on this 2-vCPU VM, each hand-off between the async task and sqlx's SQLite worker
/// thread, and each PostgreSQL round trip, sometimes waited for the other, idle vCPU to wake and
/// sometimes not: identical runs of workload 2 measured anywhere between 16,000 and 120,000
/// saves/s in memory and between 12,000 and 65,000 on PostgreSQL, switching within a run.
/// Pinned, SQLite's hand-offs are switches on one core, and PostgreSQL's server (not pinned,
/// not ours to pin) answers from the other core: steadily round-trip bound.
fn pin() -> Option<usize> {
    if std::env::var("SIGNALS_BENCH_PIN").is_ok_and(|v| v == "0") {
        return None;
    }
    let core = core_affinity::get_core_ids()?.into_iter().last()?;
    core_affinity::set_for_current(core).then_some(core.id)
}

/// The run as the table and the JSON show it.
fn report(
    config: &Config,
    machine: table::Machine,
    elapsed: Duration,
    dispatch: &dispatch::DispatchResults,
    orm: &workloads::OrmResults,
    django: &django::Django,
) -> table::Report {
    let (rows, notes, targets) = table::Measured {
        config,
        dispatch,
        orm,
        django,
    }
    .rows();
    let (git_commit, git_dirty) = git();
    table::Report {
        schema: table::SCHEMA_VERSION,
        date: utc_now(),
        git_commit,
        git_dirty,
        mode: if config.smoke {
            "smoke"
        } else if config.quick {
            "quick"
        } else {
            "full"
        }
        .to_owned(),
        only: config.only.clone(),
        machine,
        versions: versions(django),
        counts: table::Counts {
            saves: config.saves,
            posts: config.posts,
            tags: config.tags,
            parents: config.parents,
            children: config.children,
            reps: config.reps,
            tx_each_reps: config.tx_each_reps,
            dispatch_reps: config.dispatch_reps,
            dispatch_iters: config.dispatch_iters,
        },
        elapsed_secs: elapsed.as_secs_f64(),
        rows,
        notes,
        targets,
    }
}

fn main() {
    // Read now: the report is written at the end of a run that can last 20 minutes.
    let _ = git();
    if let Some(docs) = docs_target() {
        if let Err(e) = regenerate_docs(&docs) {
            eprintln!("SIGNALS_BENCH_DOCS: {e}");
            std::process::exit(1);
        }
        return;
    }
    let config = Config::from_env();
    let started = std::time::Instant::now();
    // Cores counted before pinning: the process sees one after.
    let mut machine = machine(None);
    let pinned = pin();
    machine.pinned_core = pinned;
    eprintln!(
        "signals performance: {} saves, {} posts x {} tags, {} parents x {} children, {} \
         repetitions{}{}; {} cores, {}",
        config.saves,
        config.posts,
        config.tags,
        config.parents,
        config.children,
        config.reps,
        if config.quick { " (QUICK)" } else { "" },
        if config.smoke { " (smoke test)" } else { "" },
        machine.cores,
        machine.cpu,
    );
    eprintln!(
        "{}",
        pinned.map_or_else(
            || "not pinned".to_owned(),
            |core| format!("pinned to core {core}")
        )
    );
    let dispatch = if config
        .only
        .as_deref()
        .is_some_and(|only| only != "dispatch")
    {
        dispatch::DispatchResults::default()
    } else {
        eprintln!("\n== 1. dispatch");
        dispatch::run(&config)
    };
    let mut orm = workloads::OrmResults::default();
    workloads::run_sqlite(&config, &mut orm);
    workloads::run_postgres(&config, &mut orm);
    if config.smoke {
        eprintln!("\n== 7. the raw side's statements against the ORM's");
        if let Err(why) = workloads::check_statements(&config) {
            orm.notes
                .push(format!("Workload 7's statements not checked: {why}"));
        }
    }
    let django = if config.django {
        eprintln!("\n== 6. Django");
        django::run(&config)
    } else {
        django::Django::skipped(if config.smoke {
            "smoke test"
        } else if config.only.is_some() {
            "SIGNALS_BENCH_ONLY is set (SIGNALS_BENCH_DJANGO=1 runs Django's side of the \
             workloads it selects)"
        } else {
            "SIGNALS_BENCH_DJANGO=0"
        })
    };
    let _ = std::fs::remove_dir_all(workloads::bench_dir());
    let elapsed = started.elapsed();
    let report = report(&config, machine, elapsed, &dispatch, &orm, &django);
    println!("\n## signals performance\n\n{}", table::render(&report));
    match write_report(&report, &config) {
        Ok(path) => eprintln!("JSON result: {}", path.display()),
        Err(e) => {
            eprintln!("cannot write the JSON result: {e}");
            std::process::exit(1);
        }
    }
    eprintln!(
        "total time: {:.0} s",
        Duration::as_secs_f64(&elapsed).round()
    );
}
