//! Durable receivers across processes and crashes, on a SQLite file and on PostgreSQL. The
//! test binary runs itself again as a child (its `child` test, told what to do by
//! `SIGNALS_DURABLE_CHILD`), and the parent SIGKILLs or SIGTERMs it:
//!
//! - a worker killed while it runs a job: the job runs again elsewhere once its lease ends;
//! - a process that writes in a loop with durable receivers (and runs a worker) is killed
//!   (SIGKILL) at random points, 20 times; a worker then drains the queue: every committed write's job
//!   ran at least once, no rolled-back write's job ran, and the duplicates are counted;
//! - three worker processes share a queue: every job runs exactly once;
//! - SIGTERM lets a running job finish before the worker exits.
//!
//! The 10,000-job, 4-process measurement is `scale_out_10k_jobs_4_processes` (ignored; run it
//! with `--ignored --nocapture`, `DATABASE_URL` set).

mod durable_support;

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use durable_support::{
    Effect, TestDb, drained, effects, record_job, test_worker, unique, until_an_effect,
};
use signals_orm::durable::{self, Job, JobFilter, JobOptions, JobState};
use signals_orm::model_signals::post_save;
use signals_orm::{ModelExt, Persist, PostSave};
use sqlx::{Pool, Postgres, Sqlite};

const CHILD: &str = "SIGNALS_DURABLE_CHILD";

order_model!(CrashOrder);
order_model!(HangOrder);
order_model!(ShareOrder);
order_model!(TermOrder);

/// What a child needs to find the database and the receiver.
#[derive(Clone, Debug)]
struct Place {
    /// `sqlite` or `postgres`.
    backend: &'static str,
    /// The SQLite file, or the PostgreSQL schema.
    at: String,
    queue: &'static str,
    receiver: &'static str,
}

impl Place {
    /// Runs this test binary again as a child in `mode`, with `extra` variables.
    fn spawn(&self, mode: &str, extra: &[(&str, String)]) -> Child {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["--exact", "child", "--nocapture", "--test-threads=1"])
            .env(CHILD, mode)
            .env("DURABLE_BACKEND", self.backend)
            .env("DURABLE_AT", &self.at)
            .env("DURABLE_QUEUE", self.queue)
            .env("DURABLE_RECEIVER", self.receiver)
            .stdout(std::process::Stdio::null());
        for (key, value) in extra {
            command.env(key, value);
        }
        command.spawn().expect("child process")
    }

    fn from_env() -> Place {
        let var = |key: &str| std::env::var(key).unwrap_or_else(|_| panic!("{key} not set"));
        let leak = |s: String| -> &'static str { Box::leak(s.into_boxed_str()) };
        Place {
            backend: leak(var("DURABLE_BACKEND")),
            at: var("DURABLE_AT"),
            queue: leak(var("DURABLE_QUEUE")),
            receiver: leak(var("DURABLE_RECEIVER")),
        }
    }
}

/// The child's entry: does what `SIGNALS_DURABLE_CHILD` says, and passes at once when it is
/// not set (a normal test run).
#[test]
fn child() {
    let Ok(mode) = std::env::var(CHILD) else {
        return;
    };
    let place = Place::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        if place.backend == "sqlite" {
            let pool = durable_support::sqlite_at(std::path::Path::new(&place.at), false).await;
            run_child::<Sqlite>(&mode, &place, pool).await;
        } else {
            let pool = durable_support::postgres_in(&place.at, 10)
                .await
                .expect("DATABASE_URL");
            run_child::<Postgres>(&mode, &place, pool).await;
        }
    });
    std::process::exit(0);
}

async fn run_child<DB: TestDb>(mode: &str, place: &Place, pool: Pool<DB>)
where
    CrashOrder: Persist<DB>,
    HangOrder: Persist<DB>,
    ShareOrder: Persist<DB>,
    TermOrder: Persist<DB>,
    Effect: Persist<DB>,
{
    match mode {
        "writer" => writer(place, pool).await,
        "hang" => {
            let _r = hang_receiver(&pool, place, true);
            child_worker(&pool, place).await;
        }
        "share" => {
            let _r = share_receiver(&pool, place);
            child_worker(&pool, place).await;
        }
        "term" => {
            let _r = term_receiver(&pool, place);
            child_worker(&pool, place).await;
        }
        other => panic!("unknown child mode {other}"),
    }
}

/// Runs a worker of the place's queue until SIGTERM.
async fn child_worker<DB: TestDb>(pool: &Pool<DB>, place: &Place) {
    let concurrency = std::env::var("DURABLE_CONCURRENCY")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(4);
    // The lease: 1 s heartbeats, and as many missed as DURABLE_MISSED says (2 by default, so
    // a killed worker's jobs come back soon). Several processes sharing a SQLite file wait on
    // its write lock, heartbeats too, and SQLite counts seconds: their lease must be longer
    // than such a wait, or a live worker's jobs are handed to another (docs/durable.md).
    let missed = std::env::var("DURABLE_MISSED")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(2);
    test_worker(pool, place.queue)
        .heartbeat(Duration::from_secs(1), missed)
        .concurrency(concurrency)
        .shutdown_timeout(Duration::from_secs(10))
        .run_until(durable::shutdown_signal())
        .await
        .expect("worker");
}

/// Records a run; the crash test's receiver, slow enough (20 ms after its effect committed)
/// that kills land between a job's effect and its acknowledgement.
fn crash_receiver<DB: TestDb>(pool: &Pool<DB>, place: &Place) -> durable::Registration
where
    CrashOrder: Persist<DB>,
    Effect: Persist<DB>,
{
    let p = pool.clone();
    durable::connect(
        post_save,
        place.receiver,
        JobOptions::new().queue(place.queue),
        move |job: Job<CrashOrder>| {
            let p = p.clone();
            async move {
                record_job(&p, &job, "").await?;
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok::<(), signals_orm::OrmError>(())
            }
        },
    )
}

/// The crash test's child: saves orders in a loop (every fourth is refused by a receiver that
/// runs after the durable one, so its write and job roll back) while a worker runs the jobs,
/// until it is killed.
async fn writer<DB: TestDb>(place: &Place, pool: Pool<DB>)
where
    CrashOrder: Persist<DB>,
    Effect: Persist<DB>,
{
    let _durable = crash_receiver(&pool, place);
    let _refuse = post_save.connect(|ev: PostSave<'_, CrashOrder>| {
        if ev.instance.key.starts_with("rb-") {
            Err("refused")
        } else {
            Ok(())
        }
    });
    let _worker = test_worker(&pool, place.queue).spawn();
    let run = std::env::var("DURABLE_RUN").unwrap();
    for n in 0.. {
        let key = if n % 4 == 3 {
            format!("rb-{run}-{n}")
        } else {
            format!("{run}-{n}")
        };
        let saved = CrashOrder::new(&key, n).save(&pool).await;
        assert_eq!(saved.is_ok(), !key.starts_with("rb-"), "{key}: {saved:?}");
    }
}

fn hang_receiver<DB: TestDb>(pool: &Pool<DB>, place: &Place, hang: bool) -> durable::Registration
where
    HangOrder: Persist<DB>,
    Effect: Persist<DB>,
{
    let p = pool.clone();
    durable::connect(
        post_save,
        place.receiver,
        JobOptions::new().queue(place.queue),
        move |job: Job<HangOrder>| {
            let p = p.clone();
            async move {
                let note = if hang { "start" } else { "run" };
                record_job(&p, &job, note).await?;
                if hang {
                    tokio::time::sleep(Duration::from_mins(10)).await;
                }
                Ok::<(), signals_orm::OrmError>(())
            }
        },
    )
}

fn share_receiver<DB: TestDb>(pool: &Pool<DB>, place: &Place) -> durable::Registration
where
    ShareOrder: Persist<DB>,
    Effect: Persist<DB>,
{
    let p = pool.clone();
    durable::connect(
        post_save,
        place.receiver,
        JobOptions::new().queue(place.queue),
        move |job: Job<ShareOrder>| {
            let p = p.clone();
            async move { record_job(&p, &job, "").await }
        },
    )
}

fn term_receiver<DB: TestDb>(pool: &Pool<DB>, place: &Place) -> durable::Registration
where
    TermOrder: Persist<DB>,
    Effect: Persist<DB>,
{
    let p = pool.clone();
    durable::connect(
        post_save,
        place.receiver,
        JobOptions::new().queue(place.queue),
        move |job: Job<TermOrder>| {
            let p = p.clone();
            async move {
                record_job(&p, &job, "start").await?;
                tokio::time::sleep(Duration::from_millis(1500)).await;
                record_job(&p, &job, "end").await
            }
        },
    )
}

/// SIGTERM, as an orchestrator stops a process (`std` only sends SIGKILL).
fn terminate(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// Runs `scenario` on a SQLite file and, with `DATABASE_URL`, on a PostgreSQL schema.
macro_rules! on_both {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_file() {
                let (pool, dir) = $crate::durable_support::sqlite().await;
                let at = dir.path().join("durable.db").display().to_string();
                super::$scenario(pool, "sqlite", at).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some((pool, schema)) = $crate::durable_support::postgres().await {
                    super::$scenario(pool.clone(), "postgres", schema.clone()).await;
                    $crate::durable_support::postgres_cleanup(&pool, &schema, &[]).await;
                }
            }
        }
    )*};
}

on_both!(
    a_killed_workers_job_runs_again_once_its_lease_ends,
    writes_killed_at_random_points_lose_no_committed_job_and_run_no_rolled_back_one,
    three_worker_processes_run_each_job_exactly_once,
    sigterm_lets_the_running_job_finish,
);

async fn a_killed_workers_job_runs_again_once_its_lease_ends<DB: TestDb>(
    pool: Pool<DB>,
    backend: &'static str,
    at: String,
) where
    HangOrder: Persist<DB>,
    Effect: Persist<DB>,
{
    let place = Place {
        backend,
        at,
        queue: unique("hang"),
        receiver: unique("durable_crash::hang"),
    };
    let _durable = hang_receiver(&pool, &place, false);
    HangOrder::new("h", 1).save(&pool).await.unwrap();
    let mut child = place.spawn("hang", &[]);
    until_an_effect(&pool, "the child started the job", Duration::from_mins(1)).await;
    child.kill().unwrap(); // SIGKILL: no shutdown, no release
    child.wait().unwrap();
    let held = durable::jobs(&pool, &JobFilter::new().queue(place.queue))
        .await
        .unwrap();
    assert_eq!(
        held[0].state,
        JobState::Running,
        "held by the dead worker: {held:?}"
    );

    let worker = test_worker(&pool, place.queue).spawn();
    drained(&pool, place.queue, Duration::from_mins(1)).await;
    worker.shutdown().await.unwrap();
    let runs: Vec<(String, i64, bool)> = effects(&pool)
        .await
        .into_iter()
        .map(|e| (e.note, e.attempt, e.pid == i64::from(std::process::id())))
        .collect();
    assert_eq!(
        runs,
        [("start".to_owned(), 1, false), ("run".to_owned(), 2, true)],
        "killed on attempt 1 in the child, run again as attempt 2 here"
    );
    let all = effects(&pool).await;
    assert_eq!(all[0].event_id, all[1].event_id, "the same event");
    let jobs = durable::jobs(&pool, &JobFilter::new().queue(place.queue))
        .await
        .unwrap();
    assert_eq!((jobs[0].state, jobs[0].attempts), (JobState::Done, 2));
}

/// A small deterministic generator (xorshift), seeded from the clock; the seed is printed.
struct Random(u64);

impl Random {
    fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| (d.as_secs() << 30) ^ u64::from(d.subsec_nanos()) | 1);
        eprintln!("crash test seed {seed}");
        Random(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

async fn writes_killed_at_random_points_lose_no_committed_job_and_run_no_rolled_back_one<
    DB: TestDb,
>(
    pool: Pool<DB>,
    backend: &'static str,
    at: String,
) where
    CrashOrder: Persist<DB>,
    Effect: Persist<DB>,
{
    const KILLS: usize = 20;
    let place = Place {
        backend,
        at,
        queue: unique("crash"),
        receiver: unique("durable_crash::record"),
    };
    let mut random = Random::new();
    for run in 0..KILLS {
        let mut child = place.spawn("writer", &[("DURABLE_RUN", run.to_string())]);
        // From before the child connected to well into its loop and its worker's jobs.
        tokio::time::sleep(Duration::from_millis(150 + random.below(650))).await;
        if let Ok(Some(status)) = child.try_wait() {
            panic!("writer {run} exited by itself: {status}");
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }

    let _durable = crash_receiver(&pool, &place);
    let worker = test_worker(&pool, place.queue).spawn();
    drained(&pool, place.queue, Duration::from_mins(2)).await;
    worker.shutdown().await.unwrap();

    let committed: BTreeSet<String> = DB::strings(&pool, "SELECT key FROM orders".to_owned())
        .await
        .into_iter()
        .collect();
    let ran = effects(&pool).await;
    let ran_keys: BTreeSet<&str> = ran.iter().map(|e| e.order_key.as_str()).collect();
    let missing: Vec<&String> = committed
        .iter()
        .filter(|k| !ran_keys.contains(k.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "committed writes whose job never ran: {missing:?}"
    );
    let phantom: Vec<&&str> = ran_keys
        .iter()
        .filter(|k| !committed.contains(**k))
        .collect();
    assert!(
        phantom.is_empty(),
        "jobs of writes that did not commit ran: {phantom:?}"
    );
    assert!(
        committed.iter().all(|k| !k.starts_with("rb-")),
        "a refused write committed"
    );
    let jobs = durable::jobs(&pool, &JobFilter::new().queue(place.queue).limit(1_000_000))
        .await
        .unwrap();
    assert_eq!(jobs.len(), committed.len(), "one job per committed write");
    assert!(jobs.iter().all(|j| j.state == JobState::Done), "{jobs:?}");
    let events: BTreeSet<&str> = ran.iter().map(|e| e.event_id.as_str()).collect();
    let duplicates = ran.len() - events.len();
    let rerun: Vec<&Effect> = ran.iter().filter(|e| e.attempt > 1).collect();
    eprintln!(
        "crash test ({backend}): {KILLS} SIGKILLs, {} committed writes, {} jobs, {} runs, {duplicates} duplicate runs (same event id, deduplicable), {} runs after the first attempt",
        committed.len(),
        jobs.len(),
        ran.len(),
        rerun.len()
    );
    assert!(
        committed.len() >= KILLS,
        "the writers wrote too little to test anything"
    );
}

/// Enqueues `n` jobs of `place`'s receiver, in transactions of 100 saves.
async fn enqueue_shared<DB: TestDb>(pool: &Pool<DB>, prefix: &str, n: usize)
where
    ShareOrder: Persist<DB>,
{
    for chunk in 0..n.div_ceil(100) {
        let mut tx = signals_orm::Tx::begin(pool).await.unwrap();
        for i in chunk * 100..((chunk + 1) * 100).min(n) {
            ShareOrder::new(&format!("{prefix}{i}"), 1)
                .save(&mut tx)
                .await
                .unwrap();
        }
        tx.commit().await.unwrap();
    }
}

async fn three_worker_processes_run_each_job_exactly_once<DB: TestDb>(
    pool: Pool<DB>,
    backend: &'static str,
    at: String,
) where
    ShareOrder: Persist<DB>,
    Effect: Persist<DB>,
{
    const JOBS: usize = 300;
    let place = Place {
        backend,
        at,
        queue: unique("share"),
        receiver: unique("durable_crash::share"),
    };
    let _durable = share_receiver(&pool, &place);
    enqueue_shared(&pool, "s", JOBS).await;
    let mut children: Vec<Child> = (0..3)
        .map(|_| place.spawn("share", &[("DURABLE_MISSED", "10".to_owned())]))
        .collect();
    drained(&pool, place.queue, Duration::from_mins(2)).await;
    for child in &children {
        terminate(child);
    }
    for child in &mut children {
        let status = child.wait().unwrap();
        assert!(
            status.success(),
            "a worker did not stop cleanly on SIGTERM: {status}"
        );
    }
    let ran = effects(&pool).await;
    let events: BTreeSet<&str> = ran.iter().map(|e| e.event_id.as_str()).collect();
    assert_eq!(events.len(), JOBS, "every job ran");
    assert_eq!(ran.len(), JOBS, "no job ran twice");
    let mut per_process: BTreeMap<i64, usize> = BTreeMap::new();
    for e in &ran {
        *per_process.entry(e.pid).or_default() += 1;
    }
    eprintln!("{backend}: {JOBS} jobs over worker processes {per_process:?}");
    let jobs = durable::jobs(&pool, &JobFilter::new().queue(place.queue).limit(10_000))
        .await
        .unwrap();
    assert!(
        jobs.iter()
            .all(|j| j.state == JobState::Done && j.attempts == 1),
        "{jobs:?}"
    );
}

async fn sigterm_lets_the_running_job_finish<DB: TestDb>(
    pool: Pool<DB>,
    backend: &'static str,
    at: String,
) where
    TermOrder: Persist<DB>,
    Effect: Persist<DB>,
{
    let place = Place {
        backend,
        at,
        queue: unique("term"),
        receiver: unique("durable_crash::term"),
    };
    let _durable = term_receiver(&pool, &place);
    TermOrder::new("t", 1).save(&pool).await.unwrap();
    let mut child = place.spawn("term", &[]);
    until_an_effect(&pool, "the child started the job", Duration::from_mins(1)).await;
    terminate(&child);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    let notes: Vec<(String, i64)> = effects(&pool)
        .await
        .into_iter()
        .map(|e| (e.note, e.attempt))
        .collect();
    assert_eq!(notes, [("start".to_owned(), 1), ("end".to_owned(), 1)]);
    let jobs = durable::jobs(&pool, &JobFilter::new().queue(place.queue))
        .await
        .unwrap();
    assert_eq!((jobs[0].state, jobs[0].attempts), (JobState::Done, 1));
}

/// Scale-out: 10,000 jobs, then 1 and 4 worker processes, each job's effect recorded once;
/// prints jobs/s. On PostgreSQL (skipped without `DATABASE_URL`). Ignored: a measurement, not a
/// check to run on every commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture and DATABASE_URL"]
async fn scale_out_10k_jobs_4_processes() {
    const JOBS: usize = 10_000;
    for processes in [1, 4] {
        let Some((pool, schema)) = durable_support::postgres().await else {
            return;
        };
        let place = Place {
            backend: "postgres",
            at: schema.clone(),
            queue: unique("scale"),
            receiver: unique("durable_crash::scale"),
        };
        let _durable = share_receiver(&pool, &place);
        enqueue_shared(&pool, "k", JOBS).await;
        let start = Instant::now();
        let mut children: Vec<Child> = (0..processes)
            .map(|_| {
                place.spawn(
                    "share",
                    &[
                        ("DURABLE_CONCURRENCY", "8".to_owned()),
                        ("DURABLE_MISSED", "10".to_owned()),
                    ],
                )
            })
            .collect();
        drained(&pool, place.queue, Duration::from_mins(15)).await;
        let elapsed = start.elapsed();
        for child in &children {
            terminate(child);
        }
        for child in &mut children {
            assert!(child.wait().unwrap().success());
        }
        let ran = effects(&pool).await;
        let events: BTreeSet<&str> = ran.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!((ran.len(), events.len()), (JOBS, JOBS), "each job once");
        eprintln!(
            "scale-out: {JOBS} jobs, {processes} worker process(es) x 8 at a time: {:.1} s, {:.0} jobs/s",
            elapsed.as_secs_f64(),
            f64::from(u32::try_from(JOBS).unwrap()) / elapsed.as_secs_f64()
        );
        durable_support::postgres_cleanup(&pool, &schema, &[place.queue]).await;
    }
}
