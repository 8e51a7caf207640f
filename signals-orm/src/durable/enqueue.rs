//! The enqueuing side: a durable receiver is, for the dispatcher, an async receiver that
//! serializes the event and inserts its job through the write's own transaction.

use std::cell::RefCell;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::Location;
use std::sync::{Arc, Mutex, PoisonError};

use futures_util::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use signals_core::__private::{
    AsyncHandler, FromEvent, Handler, ReceiverOutput, RuntimeReceiver, StaticOrShared, SyncHandler,
};
use signals_core::{BoxError, ConnectOptions, PlainSignal, Sender, Signal};

use super::error::DurableError;
use super::job::{EventHead, Job, JobError, M2mChange, RawJob, encode};
use super::options::JobOptions;
use super::registry::{self, DurableReceiver, Registration};
use super::store::{DurableBackend, Prepared, stage_any};
use crate::m2m::{M2mChanged, M2mChangedSignal, M2mSide, Through};
use crate::model::Model;
use crate::model_signals::{PostDeleteSignal, PostSaveSignal, PreDeleteSignal, PreSaveSignal};
use crate::tx::AnyTx;
use crate::{PostDelete, PostSave, PreDelete, PreSave, Tx};

/// A model signal whose durable receivers take `Job<T>`: the save and delete signals with a
/// model `T` (`serde::Serialize`), `m2m_changed` with [`M2mChange<Through>`](M2mChange).
///
/// It turns the event into the job's document and hands back the write's transaction.
#[diagnostic::on_unimplemented(
    message = "a durable receiver of `{Self}` cannot take `Job<{T}>`",
    label = "not a payload of this signal's durable receivers",
    note = "the save and delete signals' durable receivers take `Job<Model>`, where the model derives `serde::Serialize` and `serde::Deserialize`; `m2m_changed`'s take `Job<M2mChange<Through>>`"
)]
pub trait DurableSignal<T>: Signal {
    /// The sender a receiver of `Job<T>` hears: the model, or the relation.
    #[doc(hidden)]
    fn sender() -> Sender;

    /// The job's document for `receiver`, and the write's transaction.
    ///
    /// # Errors
    ///
    /// When the event is not about `T`, or `T` does not serialize.
    #[doc(hidden)]
    fn encode<'e>(
        event: Self::Event<'e>,
        receiver: &str,
        event_id: &str,
        options: &JobOptions,
    ) -> Result<(Vec<u8>, AnyTx<'e>), BoxError>;
}

fn serialize_failed(receiver: &str, error: &serde_json::Error) -> BoxError {
    format!("durable receiver `{receiver}`: the event does not serialize to JSON: {error}").into()
}

/// The `DurableSignal` impl of a save or delete signal: which payload it reads and what of it
/// goes in the job.
macro_rules! model_durable {
    ($($signal:ident, $payload:ident, $name:literal, |$p:ident| ($created:expr, $raw:expr, $fields:expr);)*) => {$(
        impl<T: Model + Serialize> DurableSignal<T> for $signal {
            fn sender() -> Sender {
                Sender::of::<T>()
            }

            fn encode<'e>(
                event: <$signal as Signal>::Event<'e>,
                receiver: &str,
                event_id: &str,
                options: &JobOptions,
            ) -> Result<(Vec<u8>, AnyTx<'e>), BoxError> {
                let ($p, tx) =
                    <($payload<'e, T>, AnyTx<'e>) as FromEvent<'e, $signal, T>>::from_event(event)?;
                let head = EventHead {
                    signal: $name,
                    sender: T::META.name,
                    using: $p.using,
                    created: $created,
                    raw: $raw,
                    update_fields: $fields,
                };
                let bytes = encode(receiver, event_id, options, &head, &*$p.instance)
                    .map_err(|e| serialize_failed(receiver, &e))?;
                Ok((bytes, tx))
            }
        }
    )*};
}

model_durable! {
    PreSaveSignal, PreSave, "pre_save", |p| (false, p.raw, p.update_fields);
    PostSaveSignal, PostSave, "post_save", |p| (p.created, p.raw, p.update_fields);
    PreDeleteSignal, PreDelete, "pre_delete", |p| (false, false, None);
    PostDeleteSignal, PostDelete, "post_delete", |p| (false, false, None);
}

impl<T: Through> DurableSignal<M2mChange<T>> for M2mChangedSignal {
    fn sender() -> Sender {
        Sender::of::<T>()
    }

    fn encode<'e>(
        event: <M2mChangedSignal as Signal>::Event<'e>,
        receiver: &str,
        event_id: &str,
        options: &JobOptions,
    ) -> Result<(Vec<u8>, AnyTx<'e>), BoxError> {
        use crate::model::json;
        let (change, tx) =
            <(M2mChanged<'e, T>, AnyTx<'e>) as FromEvent<'e, M2mChangedSignal, T>>::from_event(
                event,
            )?;
        let (reverse, instance_pk, pk_set) = match &change.side {
            M2mSide::Forward { instance, pk_set } => (
                false,
                json(&instance.pk()),
                pk_set.as_ref().map(|keys| keys.iter().map(json).collect()),
            ),
            M2mSide::Reverse { instance, pk_set } => (
                true,
                json(&instance.pk()),
                pk_set.as_ref().map(|keys| keys.iter().map(json).collect()),
            ),
        };
        let snapshot = M2mChange::<T>::new(change.action, reverse, instance_pk, pk_set);
        let head = EventHead::plain(M2mChangedSignal::NAME, T::NAME, change.using);
        let bytes = encode(receiver, event_id, options, &head, &snapshot)
            .map_err(|e| serialize_failed(receiver, &e))?;
        Ok((bytes, tx))
    }
}

/// Inserts the job of durable receiver `receiver` for `event` through the event's
/// transaction: the dispatcher's call of a durable receiver of a model signal. Used by
/// `#[receiver(.., durable)]`'s handlers and by [`connect`].
#[doc(hidden)]
pub fn enqueue<'e, S: DurableSignal<T>, T>(
    event: S::Event<'e>,
    receiver: &'static str,
    options: JobOptions,
) -> BoxFuture<'e, Result<(), BoxError>> {
    let id = ulid::Ulid::generate();
    let event_id = id.to_string();
    match S::encode(event, receiver, &event_id, &options) {
        Ok((bytes, tx)) => stage_any(tx, Prepared::new(id, bytes, options)),
        Err(error) => Box::pin(std::future::ready(Err(error))),
    }
}

/// The dispatcher's handler of a durable receiver connected at runtime.
struct Enqueuer<S, T> {
    name: &'static str,
    options: JobOptions,
    marker: PhantomData<fn() -> (S, T)>,
}

impl<S: DurableSignal<T>, T: 'static> AsyncHandler<S> for Enqueuer<S, T> {
    fn call<'e>(
        &self,
        _sender: Sender,
        event: S::Event<'e>,
    ) -> BoxFuture<'e, Result<(), BoxError>> {
        enqueue::<S, T>(event, self.name, self.options)
    }
}

/// Runs a job with `receiver`: reads its instance as `T`, calls, converts the result.
fn runner<T, F, Fut>(
    receiver: F,
) -> impl Fn(RawJob) -> BoxFuture<'static, Result<(), JobError>> + Send + Sync + 'static
where
    T: DeserializeOwned + Send + 'static,
    F: Fn(Job<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output: ReceiverOutput> + Send + 'static,
{
    move |raw: RawJob| match raw.decode::<T>() {
        Ok(job) => {
            let run = receiver(job);
            Box::pin(async move { run.await.into_result().map_err(JobError::Failed) })
        }
        Err(error) => Box::pin(std::future::ready(Err(error))),
    }
}

/// Connects a durable receiver of a model signal at runtime: `receiver` runs in a worker, at
/// least once, for each committed write that sends `signal` from its model (or relation),
/// with a [`Job<T>`](Job) holding a copy of the event. Its job is inserted in the write's own
/// transaction, so a write that rolls back leaves no job, and a committed one always has it.
///
/// `name` identifies the receiver in its jobs: every process that runs them (the workers)
/// connects the same name, and a receiver keeps its name across deployments while jobs of it
/// may be queued. `#[receiver(post_save, sender = Order, durable)]` does the same at link
/// time, named by the function's path.
///
/// # Panics
///
/// When a durable receiver of that name exists (its jobs would be ambiguous).
///
/// # Example
///
/// ```
/// use signals_orm::durable::{self, Job, JobOptions};
/// use signals_orm::model_signals::post_save;
/// use signals_orm::{Model, ModelExt};
///
/// #[derive(Model, sqlx::FromRow, serde::Serialize, serde::Deserialize, Clone, Debug)]
/// #[model(table = "orders")]
/// struct Order {
///     #[model(primary_key)]
///     id: Option<i64>,
///     email: String,
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// // One connection: each connection to `sqlite::memory:` is a database of its own.
/// let pool = sqlx::sqlite::SqlitePoolOptions::new().max_connections(1)
///     .connect("sqlite::memory:").await?;
/// sqlx::query("CREATE TABLE orders (id INTEGER PRIMARY KEY, email TEXT NOT NULL)")
///     .execute(&pool).await?;
/// durable::setup(&pool).await?;
///
/// let (sent_tx, mut sent) = tokio::sync::mpsc::unbounded_channel();
/// let _receiver = durable::connect(
///     post_save,
///     "doc::send_confirmation",
///     JobOptions::new().queue("doc-mail"),
///     move |job: Job<Order>| {
///         let sent_tx = sent_tx.clone();
///         async move {
///             sent_tx.send(job.instance.email).map_err(|e| e.to_string())
///         }
///     },
/// );
/// let worker = durable::worker(&pool).queue("doc-mail").spawn();
///
/// Order { id: None, email: "ada@example.com".into() }.save(&pool).await?;
/// assert_eq!(sent.recv().await.as_deref(), Some("ada@example.com"));
/// worker.shutdown().await?;
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[track_caller]
#[expect(
    clippy::needless_pass_by_value,
    reason = "the signal is a marker value (`post_save`), as in `post_save.connect(..)`"
)]
pub fn connect<S, T, F, Fut>(
    signal: S,
    name: &'static str,
    options: JobOptions,
    receiver: F,
) -> Registration
where
    S: DurableSignal<T>,
    T: DeserializeOwned + Send + 'static,
    F: Fn(Job<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output: ReceiverOutput> + Send + 'static,
{
    let _ = signal;
    let sender = S::sender();
    registry::add(
        DurableReceiver {
            name,
            signal: S::NAME,
            sender: sender.name(),
            payload: std::any::type_name::<T>(),
            options,
            linked: false,
        },
        runner(receiver),
    );
    let handler: Handler<S> = Handler::Async(StaticOrShared::Shared(Arc::new(Enqueuer::<S, T> {
        name,
        options,
        marker: PhantomData,
    })));
    let connection = S::registry().connect_runtime(
        ConnectOptions::new().name(name),
        handler,
        RuntimeReceiver {
            identity: None,
            type_name: name,
            implied_sender: Some(sender),
            needs: 0,
        },
        Location::caller(),
    );
    Registration::new(name, connection)
}

/// A job of a custom signal's durable receiver, collected during [`send`].
struct Collected {
    id: ulid::Ulid,
    bytes: Vec<u8>,
    options: JobOptions,
}

/// The jobs of one [`send`], and the backend of its transaction (the jobs' `using`).
struct Collecting {
    jobs: Mutex<Vec<Collected>>,
    using: &'static str,
}

type Collector = Arc<Collecting>;

thread_local! {
    /// The jobs of the durable send being polled on this thread (set around each of its polls,
    /// so it follows the task).
    static COLLECTING: RefCell<Option<Collector>> = const { RefCell::new(None) };
}

/// The dispatcher's handler of a custom signal's durable receiver: it adds the job to the
/// [`send`] in progress, and refuses a send outside one (its job would have no transaction).
struct Collect<S> {
    name: &'static str,
    options: JobOptions,
    marker: PhantomData<fn() -> S>,
}

impl<S: PlainSignal + Serialize> SyncHandler<S> for Collect<S> {
    fn call(&self, sender: Sender, event: S::Event<'_>) -> Result<(), BoxError> {
        let Some(collector) = COLLECTING.with(|c| c.borrow().clone()) else {
            return Err(format!(
                "durable receiver `{}` of `{}`: the signal was sent outside a transaction, so its job has none to be enqueued in; send it with `signals_orm::durable::send(&mut tx, sender, &signal)`",
                self.name,
                S::NAME
            )
            .into());
        };
        let id = ulid::Ulid::generate();
        let head = EventHead::plain(S::NAME, sender.name(), collector.using);
        let bytes = encode(
            self.name,
            &id.to_string(),
            &self.options,
            &head,
            S::from_event(event),
        )
        .map_err(|e| serialize_failed(self.name, &e))?;
        collector
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Collected {
                id,
                bytes,
                options: self.options,
            });
        Ok(())
    }
}

/// Connects a durable receiver of a custom signal (a `derive(Signal)` type that is also
/// `serde::Serialize` and `Deserialize`): it runs in a worker, at least once, for each
/// [`send`] of the signal whose transaction commits. `sender` limits it to sends from that
/// sender (`None`: every send).
///
/// A custom signal has no transaction of its own: send it with [`send`], which enqueues the
/// jobs in the transaction it is given. A plain [`signals_orm::send`](crate::send) of it fails
/// with an error naming this receiver, rather than losing the job.
///
/// # Panics
///
/// When a durable receiver of that name exists.
#[track_caller]
pub fn connect_signal<S, F, Fut>(
    sender: Option<Sender>,
    name: &'static str,
    options: JobOptions,
    receiver: F,
) -> Registration
where
    S: PlainSignal + Serialize + DeserializeOwned,
    F: Fn(Job<S>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output: ReceiverOutput> + Send + 'static,
{
    registry::add(
        DurableReceiver {
            name,
            signal: S::NAME,
            sender: sender.map_or("-", |s| s.name()),
            payload: std::any::type_name::<S>(),
            options,
            linked: false,
        },
        runner(receiver),
    );
    let handler: Handler<S> = Handler::Sync(StaticOrShared::Shared(Arc::new(Collect::<S> {
        name,
        options,
        marker: PhantomData,
    })));
    let connection = S::registry().connect_runtime(
        ConnectOptions::new().name(name),
        handler,
        RuntimeReceiver {
            identity: None,
            type_name: name,
            implied_sender: sender,
            needs: 0,
        },
        Location::caller(),
    );
    Registration::new(name, connection)
}

/// The handler `#[receiver(MySignal, durable)]` generates: [`connect_signal`]'s, at link time.
#[doc(hidden)]
pub fn collect<S: PlainSignal + Serialize>(
    event: S::Event<'_>,
    sender: Sender,
    receiver: &'static str,
    options: JobOptions,
) -> Result<(), BoxError> {
    Collect::<S> {
        name: receiver,
        options,
        marker: PhantomData,
    }
    .call(sender, event)
}

/// Sends a custom signal inside the transaction `tx`: its receivers run now (as
/// [`signals_orm::send`](crate::send)), and the jobs of its durable receivers are inserted in
/// `tx`, so they exist if and only if `tx` commits. Custom signals sent by those receivers
/// (with `signals_orm::send`) enqueue their durable receivers' jobs in `tx` too.
///
/// # Errors
///
/// [`DurableError::Send`] when a receiver failed (nothing is enqueued);
/// [`DurableError::Store`] when the INSERT failed. Either marks `tx` rollback-only, as a
/// failed write does, and so does dropping the future before it ends.
///
/// # Example
///
/// ```no_run
/// # async fn pay(pool: sqlx::SqlitePool) -> Result<(), Box<dyn std::error::Error>> {
/// use signals_orm::{Sender, Signal, Tx, durable};
///
/// #[derive(Signal, serde::Serialize, serde::Deserialize, Debug)]
/// struct PaymentSucceeded { order_id: i64, cents: i64 }
///
/// let mut tx = Tx::begin(&pool).await?;
/// // ... the payment's writes ...
/// durable::send(&mut tx, Sender::NONE, &PaymentSucceeded { order_id: 7, cents: 1200 }).await?;
/// tx.commit().await?; // the durable receivers' jobs commit with the writes
/// # Ok(()) }
/// ```
pub async fn send<S, DB>(tx: &mut Tx<DB>, sender: Sender, signal: &S) -> Result<(), DurableError>
where
    S: PlainSignal,
    DB: DurableBackend,
{
    // As a write in the caller's transaction: failed, or dropped halfway (some queues' jobs
    // inserted, others not), it leaves `tx` rollback-only, so that the jobs commit all or none;
    // and while it runs, a receiver's write given the pool is refused rather than left waiting.
    let depth = tx.depth();
    let mut guard = crate::tx::CancelGuard::new(tx, "a durable send", depth);
    let tx = guard.tx();
    let result = crate::tx::while_writing(tx.pool_key(), send_in(tx, sender, signal)).await;
    if let Err(error) = &result {
        tx.set_rollback_only(format!("a durable send of `{}` failed: {error}", S::NAME));
    }
    guard.finished();
    result
}

/// [`send`]'s work: the receivers, then their jobs staged in `tx`.
async fn send_in<S, DB>(tx: &mut Tx<DB>, sender: Sender, signal: &S) -> Result<(), DurableError>
where
    S: PlainSignal,
    DB: DurableBackend,
{
    let collector = Arc::new(Collecting {
        jobs: Mutex::default(),
        using: <DB as crate::Backend>::NAME,
    });
    collecting(Arc::clone(&collector), crate::send(sender, signal))
        .await
        .map_err(DurableError::Send)?;
    let jobs = std::mem::take(
        &mut *collector
            .jobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    // Staged with the transaction's other jobs: written to the outbox with them.
    for job in jobs {
        let job = Prepared::new(job.id, job.bytes, job.options);
        if let Err(source) = super::outbox::stage(tx, job).await {
            return Err(DurableError::store(
                "enqueueing a custom signal's durable jobs in the transaction",
                source,
            ));
        }
    }
    Ok(())
}

/// Polls `work` with `collector` installed as this thread's [`COLLECTING`].
async fn collecting<T>(collector: Collector, work: impl Future<Output = T>) -> T {
    /// Puts the outer collector back, also when a poll unwinds.
    struct Restore(Option<Collector>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let outer = self.0.take();
            COLLECTING.with(|c| *c.borrow_mut() = outer);
        }
    }
    let mut work = std::pin::pin!(work);
    std::future::poll_fn(|cx| {
        let outer = COLLECTING.with(|c| c.borrow_mut().replace(Arc::clone(&collector)));
        let _restore = Restore(outer);
        work.as_mut().poll(cx)
    })
    .await
}
