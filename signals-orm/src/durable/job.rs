//! What a durable receiver gets ([`Job`]) and how it travels in apalis's `job` column: one JSON
//! document per job, the event's snapshot and the receiver's name and options.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::options::{Backoff, JobOptions};
use crate::m2m::{M2mAction, Through};

/// What a durable receiver gets: an owned, serialized copy of the event taken when the signal
/// was sent, plus the job's identity and attempt number.
///
/// `T` is the model for the save and delete signals (`Job<Order>`: [`instance`](Job::instance)
/// is the `Order` as the signal saw it), [`M2mChange<PostTags>`](M2mChange) for
/// `m2m_changed`, and the signal's own type for a custom signal (`Job<PaymentSuccessful>`).
///
/// A job runs **at least once**: a worker killed while it ran, or a shutdown that cut it, runs
/// it again. [`event_id`](Job::event_id) is the same on every attempt and differs between
/// events and receivers, so a receiver can make its effect idempotent (an `INSERT .. ON
/// CONFLICT (event_id) DO NOTHING`, a provider's idempotency key).
///
/// A job also reaches what its **worker** was given with
/// [`Worker::data`](super::Worker::data) (a pool, a mail client, settings), by type, with
/// [`data`](Job::data): the event says what happened, the worker's data what to do it with, so
/// that two workers in one process (two tenants, two test databases) each give their jobs
/// their own.
///
/// [`Job::new`] builds one for a unit test that calls the receiver directly
/// ([`with_data`](Job::with_data) gives it what a worker would):
///
/// ```
/// use signals_orm::durable::Job;
///
/// #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
/// struct Order { id: Option<i64>, email: String }
///
/// async fn send_confirmation(job: Job<Order>) -> Result<(), String> {
///     if !job.created {
///         return Ok(()); // only new orders are confirmed
///     }
///     if !job.instance.email.contains('@') {
///         return Err(format!("event {}: no address", job.event_id));
///     }
///     Ok(())
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let order = Order { id: Some(1), email: "ada".into() };
/// assert!(send_confirmation(Job::new(order.clone()).with_created(true)).await.is_err());
/// assert!(send_confirmation(Job::new(order)).await.is_ok());
/// # });
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Job<T> {
    /// The event's subject as it was when the signal was sent: the model instance (after the
    /// write for `post_save`, before it for `pre_save`, as deleted for the delete signals),
    /// the change for `m2m_changed`, the signal value for a custom signal.
    pub instance: T,
    /// `post_save` only: whether the write was an INSERT.
    pub created: bool,
    /// Save signals only: fixture loading (`save_raw`).
    pub raw: bool,
    /// Save signals only: the fields saved, `None` for all.
    pub update_fields: Option<Vec<String>>,
    /// The signal's name (`post_save`, `m2m_changed`, or a custom signal's name).
    pub signal: String,
    /// The sender: the model's name, the relation's, or a custom signal's sender type path
    /// (`-` for none).
    pub sender: String,
    /// The backend the write ran on (`"sqlite"` or `"postgres"`), Django's `using`.
    pub using: String,
    /// The job's identity, a ULID: the same on every attempt, unique per event and receiver.
    pub event_id: String,
    /// Which run this is, from 1; a run cut by a crash or a shutdown counts.
    pub attempt: u32,
    /// The last attempt the job gets.
    pub max_attempts: u32,
    /// The durable receiver's name.
    pub receiver: String,
    /// The queue the job was enqueued on.
    pub queue: String,
    /// When the job was enqueued (inside the write's transaction).
    pub enqueued_at: SystemTime,
    /// What the worker running it was given ([`Worker::data`](super::Worker::data)).
    data: JobData,
}

impl<T> Job<T> {
    /// A job for `instance`, to call a durable receiver directly (a unit test): `post_save` of
    /// an update (`created = false`), attempt 1 of 5, event id `"test"`, `using = "sqlite"`;
    /// the `with_*` methods change them.
    #[must_use]
    pub fn new(instance: T) -> Self {
        Job {
            instance,
            created: false,
            raw: false,
            update_fields: None,
            signal: "post_save".to_owned(),
            sender: std::any::type_name::<T>()
                .rsplit("::")
                .next()
                .unwrap_or_default()
                .to_owned(),
            using: "sqlite".to_owned(),
            event_id: "test".to_owned(),
            attempt: 1,
            max_attempts: JobOptions::new().attempts(),
            receiver: "test".to_owned(),
            queue: JobOptions::new().queue_name().to_owned(),
            enqueued_at: SystemTime::now(),
            data: JobData::default(),
        }
    }

    /// Sets `created`.
    #[must_use]
    pub fn with_created(mut self, created: bool) -> Self {
        self.created = created;
        self
    }

    /// Sets the signal's name.
    #[must_use]
    pub fn with_signal(mut self, signal: &str) -> Self {
        signal.clone_into(&mut self.signal);
        self
    }

    /// Sets the attempt number and the last attempt.
    #[must_use]
    pub fn with_attempt(mut self, attempt: u32, max_attempts: u32) -> Self {
        self.attempt = attempt;
        self.max_attempts = max_attempts;
        self
    }

    /// Sets the event id.
    #[must_use]
    pub fn with_event_id(mut self, event_id: &str) -> Self {
        event_id.clone_into(&mut self.event_id);
        self
    }

    /// Gives the job `value` as its worker's data of type `D`, as
    /// [`Worker::data`](super::Worker::data) does for the jobs a worker runs: for a unit test
    /// that calls a receiver reading [`data`](Job::data) directly. A second value of one type
    /// replaces the first.
    ///
    /// ```
    /// use signals_orm::durable::Job;
    ///
    /// #[derive(Debug)]
    /// struct Outbox(&'static str);
    ///
    /// let job = Job::new(42_i64).with_data(Outbox("/tmp/outbox"));
    /// assert_eq!(job.data::<Outbox>().unwrap().0, "/tmp/outbox");
    /// ```
    #[must_use]
    pub fn with_data<D: Send + Sync + 'static>(mut self, value: D) -> Self {
        self.data.insert(value);
        self
    }

    /// The value of type `D` that the worker running this job was given with
    /// [`Worker::data`](super::Worker::data): a receiver's handle on the application's state
    /// (its pool, its mail client, its settings), as axum's `State` is a handler's. The job
    /// itself carries only the event; what it is done with belongs to the worker, so two
    /// workers in one process may give their jobs different values of one type.
    ///
    /// The value is shared by every job of the worker (held in an `Arc`): a receiver that
    /// needs it owned clones it, or gives the worker an `Arc`.
    ///
    /// # Errors
    ///
    /// [`MissingData`] when the worker was given no value of type `D`: its message names the
    /// receiver, the event id and the type, and says how to give it. Returned from the
    /// receiver (`job.data::<Services>()?`), it fails the job, which is retried with the
    /// receiver's backoff (another worker of the queue may have it) and ends dead after its
    /// last attempt, like any failure.
    ///
    /// ```
    /// use std::path::PathBuf;
    ///
    /// use signals_orm::BoxError;
    /// use signals_orm::durable::Job;
    ///
    /// /// What the mail jobs need: given to their worker, `durable::worker(&pool).data(Mail { .. })`.
    /// struct Mail {
    ///     outbox: PathBuf,
    /// }
    ///
    /// async fn send_welcome(job: Job<String>) -> Result<(), BoxError> {
    ///     let mail = job.data::<Mail>()?; // fails the job if the worker has no `Mail`
    ///     let file = mail.outbox.join(format!("{}.eml", job.event_id));
    ///     # let _ = file;
    ///     // ... write the mail to `job.instance` at `file` ...
    ///     Ok(())
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
    /// let job = Job::new("ada@example.com".to_owned()).with_event_id("01J");
    /// let missing = send_welcome(job.clone()).await.unwrap_err().to_string();
    /// assert!(missing.contains("this worker has no `data` of type"), "{missing}");
    /// assert!(missing.contains("Mail"), "{missing}");
    /// assert!(missing.contains("event 01J"), "{missing}");
    ///
    /// let given = job.with_data(Mail { outbox: PathBuf::from("outbox") });
    /// assert!(send_welcome(given).await.is_ok());
    /// # });
    /// ```
    pub fn data<D: Send + Sync + 'static>(&self) -> Result<&D, MissingData> {
        self.data.get::<D>().ok_or_else(|| MissingData {
            receiver: self.receiver.clone(),
            event_id: self.event_id.clone(),
            type_name: std::any::type_name::<D>(),
            given: self.data.type_names(),
        })
    }

    /// Whether a failure now leaves the job dead rather than retried.
    #[must_use]
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
    }
}

/// A durable receiver asked for worker data its worker was not given: the error of
/// [`Job::data`].
///
/// Its message names the receiver, the event id and the missing type, lists the types the
/// worker was given, and says how to give it:
///
/// ```text
/// durable receiver `shop::send_welcome`, event 01J..: this worker has no `data` of type
/// `shop::Mail` (it has: `sqlx::Pool<Sqlite>`); add it with `durable::worker(&pool).data(..)`
/// ```
///
/// It converts into a receiver's boxed error (`?` in a receiver returning
/// `Result<(), BoxError>`), which fails the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingData {
    receiver: String,
    event_id: String,
    type_name: &'static str,
    given: Vec<&'static str>,
}

impl MissingData {
    /// The durable receiver that asked.
    #[must_use]
    pub fn receiver(&self) -> &str {
        &self.receiver
    }

    /// The event id of the job it ran.
    #[must_use]
    pub fn event_id(&self) -> &str {
        &self.event_id
    }

    /// The type asked for (`std::any::type_name`).
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        self.type_name
    }
}

impl fmt::Display for MissingData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "durable receiver `{}`, event {}: this worker has no `data` of type `{}` ",
            self.receiver, self.event_id, self.type_name
        )?;
        if self.given.is_empty() {
            f.write_str("(it has none)")?;
        } else {
            f.write_str("(it has: ")?;
            for (i, name) in self.given.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "`{name}`")?;
            }
            f.write_str(")")?;
        }
        f.write_str("; add it with `durable::worker(&pool).data(..)`")
    }
}

impl std::error::Error for MissingData {}

/// One value of [`JobData`], with its type's name for messages.
#[derive(Clone)]
struct DataValue {
    value: Arc<dyn Any + Send + Sync>,
    type_name: &'static str,
}

/// What a worker gives its jobs ([`Worker::data`](super::Worker::data)): at most one value per
/// type. Cloning shares the values; inserting into a shared map copies the map (not the
/// values) first.
#[derive(Clone, Default)]
pub(crate) struct JobData(Arc<HashMap<TypeId, DataValue>>);

impl JobData {
    /// Adds `value`, replacing a value of the same type.
    pub(crate) fn insert<D: Send + Sync + 'static>(&mut self, value: D) {
        Arc::make_mut(&mut self.0).insert(
            TypeId::of::<D>(),
            DataValue {
                value: Arc::new(value),
                type_name: std::any::type_name::<D>(),
            },
        );
    }

    /// The value of type `D`, if given.
    pub(crate) fn get<D: Send + Sync + 'static>(&self) -> Option<&D> {
        self.0
            .get(&TypeId::of::<D>())
            .and_then(|data| data.value.downcast_ref::<D>())
    }

    /// The types given, sorted by name.
    pub(crate) fn type_names(&self) -> Vec<&'static str> {
        let mut names: Vec<_> = self.0.values().map(|data| data.type_name).collect();
        names.sort_unstable();
        names
    }
}

impl fmt::Debug for JobData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.type_names()).finish()
    }
}

/// The payload of a durable `m2m_changed` receiver: `Job<M2mChange<PostTags>>`.
///
/// The keys are JSON (as [`AnyM2mChanged`](crate::m2m::AnyM2mChanged) gives them):
/// [`source_keys`](M2mChange::source_keys) and [`target_keys`](M2mChange::target_keys) read
/// them as the relation's key types.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct M2mChange<T> {
    /// What happened.
    pub action: M2mAction,
    /// Django's `reverse`: the manager was used from the related (target) side.
    pub reverse: bool,
    /// The key of the instance whose manager was used.
    pub instance_pk: serde_json::Value,
    /// The other side's keys, `None` for clear.
    pub pk_set: Option<Vec<serde_json::Value>>,
    through: PhantomData<fn() -> T>,
}

impl<T: Through> M2mChange<T> {
    /// A change, for a unit test calling a receiver directly.
    #[must_use]
    pub fn new(
        action: M2mAction,
        reverse: bool,
        instance_pk: serde_json::Value,
        pk_set: Option<Vec<serde_json::Value>>,
    ) -> Self {
        M2mChange {
            action,
            reverse,
            instance_pk,
            pk_set,
            through: PhantomData,
        }
    }

    /// The source-side keys involved: the instance's key for a forward change, `pk_set` for a
    /// reverse one (empty for a reverse clear).
    ///
    /// # Errors
    ///
    /// When a key does not read as the source model's key type.
    pub fn source_keys(&self) -> Result<Vec<<T::Source as crate::Model>::Pk>, serde_json::Error>
    where
        <T::Source as crate::Model>::Pk: DeserializeOwned,
    {
        self.side_keys(!self.reverse)
    }

    /// The target-side keys involved: `pk_set` for a forward change (empty for a clear), the
    /// instance's key for a reverse one.
    ///
    /// # Errors
    ///
    /// When a key does not read as the target model's key type.
    pub fn target_keys(&self) -> Result<Vec<<T::Target as crate::Model>::Pk>, serde_json::Error>
    where
        <T::Target as crate::Model>::Pk: DeserializeOwned,
    {
        self.side_keys(self.reverse)
    }

    fn side_keys<K: DeserializeOwned>(
        &self,
        instance_side: bool,
    ) -> Result<Vec<K>, serde_json::Error> {
        if instance_side {
            return Ok(vec![serde_json::from_value(self.instance_pk.clone())?]);
        }
        self.pk_set
            .iter()
            .flatten()
            .map(|key| serde_json::from_value(key.clone()))
            .collect()
    }
}

/// `M2mChange`'s JSON form: the action by Django's name.
#[derive(Serialize, Deserialize)]
struct M2mWire {
    action: String,
    reverse: bool,
    instance_pk: serde_json::Value,
    pk_set: Option<Vec<serde_json::Value>>,
}

const ACTIONS: [M2mAction; 6] = [
    M2mAction::PreAdd,
    M2mAction::PostAdd,
    M2mAction::PreRemove,
    M2mAction::PostRemove,
    M2mAction::PreClear,
    M2mAction::PostClear,
];

impl<T> Serialize for M2mChange<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        M2mWire {
            action: self.action.as_str().to_owned(),
            reverse: self.reverse,
            instance_pk: self.instance_pk.clone(),
            pk_set: self.pk_set.clone(),
        }
        .serialize(serializer)
    }
}

impl<'de, T> Deserialize<'de> for M2mChange<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let wire = M2mWire::deserialize(deserializer)?;
        let action = ACTIONS
            .into_iter()
            .find(|a| a.as_str() == wire.action)
            .ok_or_else(|| {
                serde::de::Error::custom(format!("unknown m2m_changed action `{}`", wire.action))
            })?;
        Ok(M2mChange {
            action,
            reverse: wire.reverse,
            instance_pk: wire.instance_pk,
            pk_set: wire.pk_set,
            through: PhantomData,
        })
    }
}

/// The version of the job document below; a worker refuses (and keeps, failed) a job of
/// another version.
pub(crate) const WIRE_VERSION: u32 = 1;

/// What the enqueuing side knows of an event besides its instance.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EventHead<'a> {
    pub signal: &'a str,
    pub sender: &'a str,
    pub using: &'a str,
    pub created: bool,
    pub raw: bool,
    pub update_fields: Option<&'a [&'a str]>,
}

impl<'a> EventHead<'a> {
    /// A head with only the signal, the sender and the backend.
    pub(crate) fn plain(signal: &'a str, sender: &'a str, using: &'a str) -> Self {
        EventHead {
            signal,
            sender,
            using,
            created: false,
            raw: false,
            update_fields: None,
        }
    }
}

/// The job document, as written.
#[derive(Serialize)]
struct WireOut<'a, I: ?Sized + Serialize> {
    v: u32,
    receiver: &'a str,
    event_id: &'a str,
    queue: &'a str,
    signal: &'a str,
    sender: &'a str,
    using: &'a str,
    // Left out at their defaults (which `Envelope` reads back): every byte of the document is
    // written by the enqueueing write.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    created: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    raw: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    update_fields: Option<&'a [&'a str]>,
    max_attempts: u32,
    backoff: BackoffWire,
    enqueued_at_ms: u64,
    instance: &'a I,
}

/// The job document, as read: the instance stays JSON until the receiver's type reads it.
#[derive(Debug, Deserialize)]
pub(crate) struct Envelope {
    pub v: u32,
    pub receiver: String,
    pub event_id: String,
    pub queue: String,
    pub signal: String,
    pub sender: String,
    pub using: String,
    #[serde(default)]
    pub created: bool,
    #[serde(default)]
    pub raw: bool,
    #[serde(default)]
    pub update_fields: Option<Vec<String>>,
    pub max_attempts: u32,
    pub backoff: BackoffWire,
    pub enqueued_at_ms: u64,
    #[serde(default)]
    pub instance: serde_json::Value,
}

/// [`Backoff`] in the job document, in milliseconds, so the policy a job was enqueued with is
/// the one it is retried with, whatever the worker's version.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum BackoffWire {
    None,
    Fixed { ms: u64 },
    Exponential { first_ms: u64, max_ms: u64 },
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl From<Backoff> for BackoffWire {
    fn from(backoff: Backoff) -> Self {
        match backoff {
            Backoff::None => BackoffWire::None,
            Backoff::Fixed(wait) => BackoffWire::Fixed { ms: millis(wait) },
            Backoff::Exponential { first, max } => BackoffWire::Exponential {
                first_ms: millis(first),
                max_ms: millis(max),
            },
        }
    }
}

impl From<BackoffWire> for Backoff {
    fn from(wire: BackoffWire) -> Self {
        match wire {
            BackoffWire::None => Backoff::None,
            BackoffWire::Fixed { ms } => Backoff::Fixed(Duration::from_millis(ms)),
            BackoffWire::Exponential { first_ms, max_ms } => Backoff::Exponential {
                first: Duration::from_millis(first_ms),
                max: Duration::from_millis(max_ms),
            },
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

/// The job document of one event for one receiver.
///
/// # Errors
///
/// When the instance does not serialize to JSON (a map with keys that are not strings, a
/// `Serialize` impl that fails).
pub(crate) fn encode<I: ?Sized + Serialize>(
    receiver: &str,
    event_id: &str,
    options: &JobOptions,
    head: &EventHead<'_>,
    instance: &I,
) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&WireOut {
        v: WIRE_VERSION,
        receiver,
        event_id,
        queue: options.queue_name(),
        signal: head.signal,
        sender: head.sender,
        using: head.using,
        created: head.created,
        raw: head.raw,
        update_fields: head.update_fields,
        max_attempts: options.attempts(),
        backoff: options.backoff_policy().into(),
        enqueued_at_ms: now_ms(),
        instance,
    })
}

/// A job read from the queue, before its instance is read as the receiver's type: what a
/// durable receiver's runner gets.
#[doc(hidden)]
#[derive(Debug)]
pub struct RawJob {
    pub(crate) envelope: Envelope,
    pub(crate) attempt: u32,
    /// What the worker running it was given.
    pub(crate) data: JobData,
}

/// Why a durable receiver's run failed.
#[doc(hidden)]
#[derive(Debug)]
pub enum JobError {
    /// The job's instance does not read as the receiver's type: retrying cannot help, so the
    /// job is kept as dead at once.
    Decode(String),
    /// The receiver returned an error.
    Failed(signals_core::BoxError),
}

impl RawJob {
    /// The job with its instance read as `T`.
    ///
    /// # Errors
    ///
    /// [`JobError::Decode`], naming the receiver, the event and the type, when the instance
    /// does not read as `T` (the struct changed since the job was enqueued).
    pub fn decode<T: DeserializeOwned>(self) -> Result<Job<T>, JobError> {
        let Envelope {
            receiver,
            event_id,
            queue,
            signal,
            sender,
            using,
            created,
            raw,
            update_fields,
            max_attempts,
            enqueued_at_ms,
            instance,
            ..
        } = self.envelope;
        let instance = match serde_json::from_value::<T>(instance) {
            Ok(instance) => instance,
            Err(error) => {
                return Err(JobError::Decode(format!(
                    "durable receiver `{receiver}`, event {event_id}: the job's payload does not read as `{}`: {error}",
                    std::any::type_name::<T>()
                )));
            }
        };
        Ok(Job {
            instance,
            created,
            raw,
            update_fields,
            signal,
            sender,
            using,
            event_id,
            attempt: self.attempt,
            max_attempts,
            receiver,
            queue,
            enqueued_at: UNIX_EPOCH + Duration::from_millis(enqueued_at_ms),
            data: self.data,
        })
    }
}
