//! Durable receivers: slow work (mail, payment APIs, images) taken out of the request, run by
//! workers at least once, surviving crashes, and shared by any number of worker processes.
//!
//! A durable receiver's job is inserted **in the write's own transaction**, next to the rows
//! the write changed: a write that rolls back leaves no job, a committed write always has its
//! job, with no window between the COMMIT and the enqueue (where `on_commit` work is lost if
//! the process dies). Workers run the jobs: an apalis worker per queue, with retries and
//! backoff, dead jobs kept with their last error, heartbeats and leases that hand a killed
//! worker's jobs to another, PostgreSQL's `LISTEN/NOTIFY`. The engine is
//! [apalis](https://docs.rs/apalis) 1.0 (`apalis-sqlite`, `apalis-postgres`), pinned. The write
//! itself only adds rows to a light outbox table of ours (one statement per save, or per 64
//! jobs of a transaction); each worker's relay moves them into apalis's queue (see [`relay`]).
//! The choice, the guarantees and the failure modes are in `docs/durable.md`.
//!
//! ```
//! use signals_orm::durable::{self, Job, JobOptions};
//! use signals_orm::model_signals::post_save;
//! use signals_orm::{Model, ModelExt};
//!
//! #[derive(Model, sqlx::FromRow, serde::Serialize, serde::Deserialize, Clone, Debug)]
//! #[model(table = "orders")]
//! struct Order {
//!     #[model(primary_key)]
//!     id: Option<i64>,
//!     email: String,
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! // One connection: each connection to `sqlite::memory:` is a database of its own.
//! let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1)
//!     .connect("sqlite::memory:").await?;
//! sqlx::query("CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT NOT NULL)")
//!     .execute(&pool).await?;
//! durable::setup(&pool).await?; // apalis's tables
//!
//! let (done, mut confirmed) = tokio::sync::mpsc::unbounded_channel();
//! let _receiver = durable::connect(
//!     post_save,
//!     "shop::send_confirmation",
//!     JobOptions::new().queue("mod-doc").max_attempts(3),
//!     move |job: Job<Order>| {
//!         let done = done.clone();
//!         async move {
//!             // at least once: `job.event_id` is the same on every attempt
//!             done.send((job.instance.email, job.created, job.attempt)).map_err(|e| e.to_string())
//!         }
//!     },
//! );
//!
//! // The job is inserted in the save's transaction...
//! Order { id: None, email: "ada@example.com".into() }.save(&pool).await?;
//! // ... and a worker runs it (here in the same process; `worker.rs` of the examples is one
//! // for any number of machines).
//! let worker = durable::worker(&pool).queue("mod-doc").spawn();
//! assert_eq!(confirmed.recv().await, Some(("ada@example.com".to_owned(), true, 1)));
//! worker.shutdown().await?;
//! # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
//! ```
//!
//! - Declaring: [`connect`] (model signals: the save and delete signals, `m2m_changed`) and
//!   [`connect_signal`] (custom signals, sent with [`send`] inside a transaction), or
//!   `#[receiver(post_save, sender = Order, durable)]` at link time.
//! - Options per receiver ([`JobOptions`]): queue, attempts, [`Backoff`], delay, priority.
//! - Running: [`setup`] once, then [`worker`]`(&pool)` in the application (SQLite: nothing else
//!   to run) or in a worker program on any number of machines (PostgreSQL).
//! - Looking: [`receivers`] (with their queues), [`jobs`] (pending, running, retrying, dead
//!   with their last error), [`counts`], [`retry`] of a dead job, [`metrics`]; each run is a
//!   `durable_job` tracing span with the receiver, the event id and the attempt.

#[cfg(not(any(feature = "durable-sqlite", feature = "durable-postgres")))]
compile_error!(
    "signals-orm's `durable` feature needs a job store: turn on `durable-sqlite` or `durable-postgres` (each with its backend)"
);

mod admin;
mod enqueue;
mod error;
mod job;
mod options;
mod outbox;
mod registry;
mod store;
mod worker;

pub use admin::{JobFilter, JobRow, JobState, QueueCount, counts, jobs, retry};
pub use enqueue::{DurableSignal, connect, connect_signal, send};
pub use error::DurableError;
pub use job::{Job, M2mChange, MissingData};
pub use options::{Backoff, JobOptions};
pub(crate) use outbox::Staged;
pub use outbox::relay;
pub use registry::{DurableReceiver, DurableReceivers, Registration, receivers};
pub use store::DurableBackend;
pub use worker::{Metrics, Worker, WorkerHandle, WorkerReport, metrics, shutdown_signal, worker};

/// Creates (or upgrades) apalis's job tables and the outbox on `pool`'s database: run it once
/// before the first write that enqueues, as with migrations. Idempotent.
///
/// SQLite: tables `Jobs` and `Workers` (apalis's) and `signals_orm_outbox` (an application
/// table of one of these names, in any case, clashes), apalis's migration history in
/// `_apalis_migrations`. PostgreSQL: schema `apalis` with `apalis.signals_orm_outbox`, the
/// `hstore` extension (created in `public` if missing: the role needs the right to), the
/// history in `apalis._sqlx_migrations`.
///
/// # Errors
///
/// [`DurableError::Store`] with the database's error.
pub async fn setup<DB: DurableBackend>(pool: &sqlx::Pool<DB>) -> Result<(), DurableError> {
    DB::setup(pool).await
}

#[doc(hidden)]
pub mod __private {
    //! What `#[receiver(.., durable)]` generates code against, and the types of
    //! `DurableBackend`'s hidden methods; not part of the API.
    pub use super::enqueue::{collect, enqueue};
    pub use super::job::{JobError, RawJob};
    pub use super::options::JobOptions;
    pub use super::outbox::Moved;
    pub use super::registry::DurableDef;
    pub use super::store::{Prepared, WakeStream};
    pub use super::worker::{QueueWorker, handle};

    use super::job::M2mChange;
    use crate::m2m::Through;
    use crate::model::Model;

    /// What a durable receiver's `Job<T>` may hold: what goes to the queue as JSON and comes
    /// back.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` cannot be a durable receiver's payload: the job holds it as JSON, written when the signal is sent and read back by a worker",
        label = "not `serde::Serialize` and `serde::Deserialize`",
        note = "add `#[derive(serde::Serialize, serde::Deserialize)]` to `{Self}`"
    )]
    pub trait DurablePayload {
        /// `Self`; unknown for a type that is not a payload, so that the generated code using
        /// it reports nothing more than the check at the user's type.
        type Checked;
    }

    impl<T: serde::Serialize + serde::de::DeserializeOwned> DurablePayload for T {
        type Checked = T;
    }

    /// Checked by `#[receiver(.., durable)]` at the payload type.
    pub const fn payload<T: DurablePayload>() {}

    /// The payload of a durable receiver with `sender = X`: the model `X` itself, or
    /// `M2mChange<X>` for a relation `X`.
    #[diagnostic::on_unimplemented(
        message = "a durable receiver with `sender = {X}` cannot take `Job<{Self}>`",
        label = "not the payload of this sender's durable receivers",
        note = "a model's durable receiver takes `Job<Model>` (`sender = Order`: `Job<Order>`); `m2m_changed`'s takes `Job<M2mChange<PostTags>>` (`sender = PostTags`)"
    )]
    pub trait JobOf<X: ?Sized> {}

    impl<M: Model> JobOf<M> for M {}
    impl<T: Through> JobOf<T> for M2mChange<T> {}

    /// Checked by `#[receiver(.., durable)]` at the payload type of a model signal's receiver.
    pub const fn job_of<T: JobOf<X>, X: ?Sized>() {}

    /// The payload of a custom signal's durable receiver: the signal itself.
    #[diagnostic::on_unimplemented(
        message = "a durable receiver of the custom signal `{S}` takes `Job<{S}>`, not `Job<{Self}>`",
        label = "not the signal's type"
    )]
    pub trait SignalJob<S> {}

    impl<S> SignalJob<S> for S {}

    /// Checked by `#[receiver(MySignal, durable)]` at the payload type.
    pub const fn signal_job<T: SignalJob<S>, S>() {}
}
