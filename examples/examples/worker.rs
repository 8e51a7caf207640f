//! The worker program: runs the durable receivers' jobs of the application in
//! `durable_mail.rs`, on its database (PostgreSQL from `DATABASE_URL`, or the SQLite file the
//! application uses). Start it on as many machines as wanted: each job runs in one of them at a
//! time; a killed worker's jobs go to another once its lease ends; SIGTERM (or Ctrl-C) lets
//! running jobs finish first.
//!
//! ```text
//! cargo run -p examples --example worker                 # run jobs until SIGTERM / Ctrl-C
//! cargo run -p examples --example worker -- jobs [STATE] # list jobs (pending, running, retrying, dead, done)
//! cargo run -p examples --example worker -- counts       # jobs per queue and state
//! cargo run -p examples --example worker -- retry ID     # run a dead job again
//! cargo run -p examples --example worker -- receivers    # the durable receivers and their queues
//! ```
//!
//! `WORKER_CONCURRENCY` (default 4) sets how many jobs it runs at once; `RUST_LOG`-style
//! filtering is not built in: every job is a `durable_job` span, printed at info level.

mod durable_app;

use std::time::Duration;

use durable_app::{AppDb, Error, QUEUE, on_app_db};
use signals_orm::durable::{self, DurableBackend, JobFilter, JobState};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let db = AppDb::open(false).await?;
    on_app_db!(&db, |pool| command(pool, &args).await)
}

async fn command<DB: DurableBackend>(pool: &sqlx::Pool<DB>, args: &[String]) -> Result<(), Error> {
    match args.first().map(String::as_str) {
        None | Some("run") => {
            let concurrency = std::env::var("WORKER_CONCURRENCY")
                .ok()
                .and_then(|c| c.parse().ok())
                .unwrap_or(4);
            let report = durable::worker(pool)
                .queue(QUEUE)
                .concurrency(concurrency)
                .poll_interval(Duration::from_millis(500))
                .run_until(durable::shutdown_signal())
                .await?;
            eprintln!("worker stopped: {report:?}");
        }
        Some("jobs") => {
            let mut filter = JobFilter::new().limit(1000);
            if let Some(state) = args.get(1) {
                let state = JobState::ALL
                    .into_iter()
                    .find(|s| s.as_str() == state)
                    .ok_or_else(|| {
                        format!("unknown state `{state}`: pending, running, retrying, dead or done")
                    })?;
                filter = filter.state(state);
            }
            for job in durable::jobs(pool, &filter).await? {
                println!("{job}");
            }
        }
        Some("counts") => {
            for count in durable::counts(pool).await? {
                println!("{count}");
            }
        }
        Some("retry") => {
            let id = args
                .get(1)
                .ok_or("retry needs a job id (see `jobs dead`)")?;
            if durable::retry(pool, id).await? {
                println!("job {id} is pending again");
            } else {
                return Err(format!("no dead job {id}").into());
            }
        }
        Some("receivers") => print!("{}", durable::receivers()),
        Some(other) => {
            return Err(
                format!("unknown command `{other}`: run, jobs, counts, retry, receivers").into(),
            );
        }
    }
    Ok(())
}
