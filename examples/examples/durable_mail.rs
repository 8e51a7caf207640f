//! Durable receivers, the embedded way: on a SQLite file (or PostgreSQL with `DATABASE_URL`),
//! new members get a welcome mail and purchases a confirmation, each sent by a durable
//! receiver whose job is enqueued in the write's own transaction and run by a worker inside
//! this process. The mail server refuses every confirmation twice: the job is retried 1 s
//! later, and delivered on its third attempt. A purchase whose transaction rolls back gets no
//! mail. The mails are `.eml` files in the outbox folder; prints the jobs and a summary.
//!
//! `cargo run -p examples --example durable_mail`
//!
//! With `--no-worker` it only writes, and leaves the jobs to worker processes
//! (`cargo run -p examples --example worker`, on as many machines as wanted).

mod durable_app;

use std::time::{Duration, Instant};

use durable_app::{AppDb, Error, Member, Purchase, QUEUE, on_app_db};
use signals_orm::durable::{self, JobFilter};
use signals_orm::{ModelExt as _, Tx};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let embedded = !std::env::args().any(|a| a == "--no-worker");
    let db = AppDb::open(true).await?;
    println!("durable receivers:\n{}", durable::receivers());
    on_app_db!(&db, |pool| session(pool, embedded, db.backend()).await)
}

async fn session<DB: durable::DurableBackend>(
    pool: &sqlx::Pool<DB>,
    embedded: bool,
    backend: &str,
) -> Result<(), Error>
where
    Member: signals_orm::Persist<DB>,
    Purchase: signals_orm::Persist<DB>,
{
    let worker = embedded.then(|| {
        durable::worker(pool)
            .queue(QUEUE)
            .poll_interval(Duration::from_millis(200))
            .spawn()
    });

    // Two members join: each save's transaction also holds its welcome job.
    let mut ada = Member {
        id: None,
        email: "ada@example.com".into(),
        name: "Ada".into(),
    };
    ada.save(pool).await?;
    Member {
        id: None,
        email: "bob@example.com".into(),
        name: "Bob".into(),
    }
    .save(pool)
    .await?;
    // Ada buys a book: the confirmation's job commits with the purchase.
    let mut tx = Tx::begin(pool).await?;
    Purchase {
        id: None,
        email: ada.email.clone(),
        item: "a book".into(),
        cents: 1250,
    }
    .save(&mut tx)
    .await?;
    tx.commit().await?;
    // Bob's purchase is rolled back (his card was declined): no row, no job, no mail.
    let mut tx = Tx::begin(pool).await?;
    Purchase {
        id: None,
        email: "bob@example.com".into(),
        item: "a lamp".into(),
        cents: 4000,
    }
    .save(&mut tx)
    .await?;
    tx.rollback().await?;
    // Ada changes her name: an update, which her welcome receiver ignores.
    ada.name = "Ada L.".into();
    ada.save(pool).await?;

    let Some(worker) = worker else {
        println!("jobs enqueued; run `cargo run -p examples --example worker` to send the mails");
        return Ok(());
    };
    let start = Instant::now();
    loop {
        let busy: u64 = durable::counts(pool)
            .await?
            .iter()
            .filter(|c| c.queue == QUEUE)
            .map(|c| c.pending + c.running + c.retrying)
            .sum();
        if busy == 0 {
            break;
        }
        if start.elapsed() > Duration::from_mins(1) {
            return Err("the jobs did not finish within a minute".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worker.shutdown().await?;

    println!("\njobs:");
    for job in durable::jobs(pool, &JobFilter::new().queue(QUEUE)).await? {
        println!("  {job}");
    }
    let counts = durable::counts(pool).await?;
    let queue = counts
        .iter()
        .find(|c| c.queue == QUEUE)
        .cloned()
        .unwrap_or_default();
    let metrics = durable::metrics();
    let mails = durable_app::recipients();
    println!("\n== summary ({backend})");
    println!(
        "jobs enqueued:  {}",
        queue.pending + queue.running + queue.retrying + queue.dead + queue.done
    );
    println!("jobs run:       {} done", queue.done);
    println!("attempts retried: {}", metrics.retried);
    println!("jobs failed:    {} dead", queue.dead);
    println!("mails written:  {} ({})", mails.len(), mails.join(", "));
    println!("outbox:         {}", durable_app::outbox().display());
    Ok(())
}
