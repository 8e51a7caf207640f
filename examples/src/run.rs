//! What every example program sets up: a database, an output folder with `outbox/` (emails)
//! and `media/` (images), and a printed trace of the signals.

use std::path::{Path, PathBuf};

use tracing_subscriber::layer::SubscriberExt as _;

use crate::db::ShopDb;
use crate::jobs::{DRAIN_TIMEOUT, JobStats, ShopWorker};
use crate::trace::Trace;
use crate::usecases::audit_log::acting_as;
use crate::{Error, mail};

/// One run of an example: its database, folders and trace.
#[derive(Debug, Clone)]
pub struct Run {
    /// The database (SQLite file in `dir`, or PostgreSQL from `DATABASE_URL`), freshly created.
    pub db: ShopDb,
    /// The run's folder.
    pub dir: PathBuf,
    /// Where `.eml` files are written.
    pub outbox: PathBuf,
    /// Where product images are stored.
    pub media: PathBuf,
    /// The signal trace.
    pub trace: Trace,
}

impl Run {
    /// Prepares a run in `dir` (emptied first): creates the folders and the database.
    ///
    /// # Errors
    ///
    /// When a folder or the database cannot be created.
    pub async fn new(dir: &Path, trace: Trace) -> Result<Self, Error> {
        Self::prepare(dir)?;
        let db = ShopDb::open(&dir.join("shop.db")).await?;
        Self::with_db(dir, db, trace)
    }

    /// A run in `dir` on a database of the caller's choosing.
    ///
    /// # Errors
    ///
    /// When a folder cannot be created.
    pub fn with_db(dir: &Path, db: ShopDb, trace: Trace) -> Result<Self, Error> {
        let outbox = dir.join("outbox");
        let media = dir.join("media");
        std::fs::create_dir_all(&outbox)?;
        std::fs::create_dir_all(&media)?;
        Ok(Run {
            db,
            dir: dir.to_path_buf(),
            outbox,
            media,
            trace,
        })
    }

    /// Empties `dir` (creating it): each run starts clean.
    ///
    /// # Errors
    ///
    /// When the folder cannot be removed or created.
    pub fn prepare(dir: &Path) -> std::io::Result<()> {
        if dir.exists() {
            std::fs::remove_dir_all(dir)?;
        }
        std::fs::create_dir_all(dir)
    }

    /// The run of the example program `name`, in the temporary folder `signals-shop/<name>`,
    /// with the trace printed as it happens.
    ///
    /// # Errors
    ///
    /// As [`Run::new`].
    pub async fn program(name: &str) -> Result<Self, Error> {
        let trace = Trace::printing();
        let subscriber = tracing_subscriber::registry().with(trace.clone());
        tracing::subscriber::set_global_default(subscriber)?;
        let run = Run::new(&std::env::temp_dir().join("signals-shop").join(name), trace).await?;
        println!(
            "database: {} | folder: {}\n",
            run.db.backend(),
            run.dir.display()
        );
        Ok(run)
    }

    /// Runs `fut` as `actor` (the audit log's "who"). The use cases' futures are large, so
    /// `fut` is boxed first.
    pub fn act<'a, F: Future + 'a>(
        &'a self,
        actor: &'a str,
        fut: F,
    ) -> impl Future<Output = F::Output> + 'a {
        acting_as(actor, Box::pin(fut))
    }

    /// Runs `fut` with the shop's durable worker running in this process on this run's
    /// database and outbox ([`ShopWorker`]), then waits until the jobs ran (at most
    /// [`DRAIN_TIMEOUT`]) and stops the worker: the emails are written when it returns.
    /// Returns `fut`'s output and the jobs' statistics.
    ///
    /// # Errors
    ///
    /// When the worker cannot start or stop, or jobs are still waiting at the timeout.
    pub async fn with_worker<F: Future>(&self, fut: F) -> Result<(F::Output, JobStats), Error> {
        let worker = ShopWorker::start(&self.db, &self.outbox).await?;
        let output = Box::pin(fut).await;
        worker.drain(DRAIN_TIMEOUT).await?;
        let stats = worker.stop().await?;
        Ok((output, stats))
    }

    /// The recipients of the emails written so far.
    ///
    /// # Errors
    ///
    /// When the outbox cannot be read.
    pub fn emails(&self) -> std::io::Result<Vec<String>> {
        mail::recipients(&self.outbox)
    }

    /// The receivers of use cases other than `own` (a module of [`crate::usecases`]) that heard
    /// a signal in this run: every receiver of the crate is linked into every program, so a
    /// write heard by one use case is heard by every receiver of its signal and sender.
    #[must_use]
    pub fn others(&self, own: &str) -> Vec<String> {
        let own = format!("{own}::");
        self.trace
            .receivers()
            .into_iter()
            .filter(|r| !r.starts_with(&own))
            .collect()
    }

    /// Prints [`Run::others`] for `own` and `why` they ran (or why none did).
    pub fn print_others(&self, own: &str, why: &str) {
        let others = self.others(own);
        if others.is_empty() {
            println!("\nonly the receivers of {own} ran: {why}");
        } else {
            println!(
                "\nalso ran, from other use cases: {}\n  why: {why}",
                others.join(", ")
            );
        }
    }
}
