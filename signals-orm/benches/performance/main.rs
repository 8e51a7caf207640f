//! What signals cost: dispatch against direct calls (timed loops), ORM workloads against raw sqlx
//! running the same SQL in the same transaction shape (SQLite in memory, SQLite WAL file,
//! PostgreSQL when `DATABASE_URL` is set), and Django on the same SQLite settings, printed as
//! one table followed by the targets met or missed.
//!
//! ```sh
//! cargo bench -p signals-orm --features postgres --bench performance
//! ```
//!
//! Environment: `SIGNALS_BENCH_QUICK=1` divides the counts by 10 (a quick look, not the
//! documented numbers); `SIGNALS_BENCH_REPS=N` sets the repetitions (default 5, and 3 for
//! workload 3; medians are reported); `SIGNALS_BENCH_SAVES` and `SIGNALS_BENCH_POSTS` set the
//! counts; `SIGNALS_BENCH_ONLY=text` runs only the database workloads whose `backend: workload`
//! contains `text` (no dispatch, no Django); `SIGNALS_BENCH_DJANGO=0` skips Django;
//! `SIGNALS_BENCH_PIN=0` leaves the process unpinned (see `pin`); `DJANGO_BENCH_PYTHON` names
//! the interpreter that creates Django's virtual environment (default `python3`). Without
//! `--bench` (`cargo test --benches`) everything runs once with tiny counts, as a smoke test.
//!
//! Memory is the process-wide heap: the global allocator counts the bytes allocated by every
//! thread (sqlx's SQLite worker threads too) and keeps the peak. SQLite's own C allocations
//! (its page cache) and the PostgreSQL server are outside it.

mod dispatch;
mod django;
mod models;
mod table;
mod workloads;

use std::time::Duration;

use peak_alloc::PeakAlloc;

/// Counts heap bytes process-wide and keeps the peak.
#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

/// Sizes and switches of one run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Saves of workloads 2 and 3, deletes of workload 4.
    pub saves: usize,
    /// Posts of workload 5.
    pub posts: usize,
    /// Tags added to each post.
    pub tags: usize,
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
        let django = std::env::var("SIGNALS_BENCH_DJANGO").map_or(true, |v| v != "0");
        let only = std::env::var("SIGNALS_BENCH_ONLY")
            .ok()
            .filter(|v| !v.is_empty());
        let count = |name: &str| std::env::var(name).ok().and_then(|v| v.parse().ok());
        if smoke {
            Config {
                saves: 40,
                posts: 10,
                tags: 5,
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
                posts: count("SIGNALS_BENCH_POSTS").unwrap_or(5_000 / divisor),
                tags: 5,
                reps: reps.unwrap_or(if quick { 3 } else { 5 }),
                tx_each_reps: reps.unwrap_or(3),
                dispatch_reps: 200 / divisor,
                dispatch_iters: 10_000,
                smoke,
                quick,
                django: django && only.is_none(),
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

/// The machine, as `docs/performance.md` reports it.
fn machine() -> String {
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
    format!(
        "{cores} cores, {cpu}, {} {}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
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

fn main() {
    let config = Config::from_env();
    let machine = machine();
    let started = std::time::Instant::now();
    eprintln!(
        "signals performance: {} saves, {} posts x {} tags, {} repetitions{}{}; {machine}",
        config.saves,
        config.posts,
        config.tags,
        config.reps,
        if config.quick { " (QUICK)" } else { "" },
        if config.smoke { " (smoke test)" } else { "" },
    );
    let pinned = pin();
    eprintln!(
        "{}",
        pinned.map_or_else(
            || "not pinned".to_owned(),
            |core| format!("pinned to core {core}")
        )
    );
    let dispatch = if config.only.is_some() {
        dispatch::DispatchResults::default()
    } else {
        eprintln!("\n== 1. dispatch");
        dispatch::run(&config)
    };
    let mut orm = workloads::OrmResults::default();
    workloads::run_sqlite(&config, &mut orm);
    workloads::run_postgres(&config, &mut orm);
    let django = if config.django {
        eprintln!("\n== 6. Django");
        django::run(&config)
    } else {
        django::Django::skipped("SIGNALS_BENCH_DJANGO=0 or smoke test")
    };
    let _ = std::fs::remove_dir_all(workloads::bench_dir());
    let elapsed = started.elapsed();
    let machine = format!(
        "{machine}; {}",
        pinned.map_or_else(
            || "not pinned".to_owned(),
            |core| format!("benchmark pinned to core {core}")
        )
    );
    let report = table::render(&config, &machine, &dispatch, &orm, &django);
    println!("{report}");
    eprintln!(
        "total time: {:.0} s",
        Duration::as_secs_f64(&elapsed).round()
    );
}
