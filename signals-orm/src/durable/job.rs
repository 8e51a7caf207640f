//! What a durable receiver gets ([`Job`]) and how it travels in apalis's `job` column: one JSON
//! document per job, the event's snapshot and the receiver's name and options.

use std::marker::PhantomData;
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
/// [`Job::new`] builds one for a unit test that calls the receiver directly:
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

    /// Whether a failure now leaves the job dead rather than retried.
    #[must_use]
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_attempts
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
    created: bool,
    raw: bool,
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
        })
    }
}
