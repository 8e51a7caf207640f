//! What `on_commit` receivers get: an owned copy of the payload, taken when the signal was
//! sent and queued on the write's transaction, run after the outermost COMMIT.

use std::any::Any;
use std::future::Future;

use signals_core::__private::AnySender;
use signals_core::{BoxError, Signal};

use super::payload::wrong_sender;
use super::{
    DeleteEvent, PostDeleteSignal, PostSaveSignal, PreDeleteSignal, PreSaveSignal, SaveEvent,
};
use crate::model::{AnyModel, Model};
use crate::tx::{Hook, HookLabel, TxHandle};

/// The owned payload an `on_commit` receiver gets after the outermost COMMIT.
///
/// `#[receiver(post_save, sender = User, on_commit)] async fn f(ev: Committed<User>)`; without a
/// sender, `Committed<ModelSnapshot>`. It is a copy taken when the signal was sent, so it never
/// sees later changes, and it is dropped unrun if the transaction rolls back.
///
/// [`Committed::new`] builds one for a unit test that calls the receiver directly:
///
/// ```
/// use signals_orm::{receiver, Committed, Model};
///
/// #[derive(Model, sqlx::FromRow, Clone, Debug)]
/// #[model(table = "users")]
/// struct User {
///     #[model(primary_key)]
///     id: Option<i64>,
///     email: String,
/// }
///
/// #[receiver(post_save, sender = User, on_commit)]
/// async fn welcome(ev: Committed<User>) -> Result<(), String> {
///     if ev.created && !ev.instance.email.contains('@') {
///         return Err(format!("no address to welcome: {:?}", ev.instance.email));
///     }
///     Ok(()) // send the mail
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let user = User { id: Some(1), email: "ada".into() };
/// assert!(welcome(Committed::new(user.clone(), true)).await.is_err());
/// assert!(welcome(Committed::new(user, false)).await.is_ok()); // an update sends no mail
/// # });
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Committed<M> {
    /// The signal's name (`post_save`, ...).
    pub signal: &'static str,
    /// The model's name (`User`), useful to receivers of every model.
    pub model: &'static str,
    /// A copy of the instance as it was when the signal was sent.
    pub instance: M,
    /// `post_save` only: whether the write was an INSERT.
    pub created: bool,
    /// Save signals only: fixture loading.
    pub raw: bool,
    /// Save signals only: the fields saved, `None` for all.
    pub update_fields: Option<Vec<&'static str>>,
    /// The backend.
    pub using: &'static str,
}

/// A model as plain data: what `on_commit` receivers without a sender get.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelSnapshot {
    /// The model's type name.
    pub model: &'static str,
    /// Its table.
    pub table: &'static str,
    /// The key as JSON.
    pub pk: serde_json::Value,
    /// Every saved field, key first.
    pub values: Vec<(&'static str, serde_json::Value)>,
}

impl<O: OwnedModel> Committed<O> {
    /// A `post_save` copy of `instance`, to call an `on_commit` receiver directly (a unit
    /// test): `created` as given, `raw = false`, every field (`update_fields = None`),
    /// `using = "sqlite"`, and `model` the instance's model name; the `with_*` methods change
    /// them. `O` is a model or a [`ModelSnapshot`] ([`ModelSnapshot::of`]). Where a Django
    /// test calls `handler(sender=User, instance=user, created=True)`, this is that payload.
    #[must_use]
    pub fn new(instance: O, created: bool) -> Self {
        Committed {
            signal: "post_save",
            model: instance.model_name(),
            instance,
            created,
            raw: false,
            update_fields: None,
            using: "sqlite",
        }
    }

    /// Sets the signal's name (`"pre_save"`, `"post_save"`, `"pre_delete"`, `"post_delete"`).
    #[must_use]
    pub fn with_signal(mut self, signal: &'static str) -> Self {
        self.signal = signal;
        self
    }

    /// Sets `raw` (`true`: fixture loading, as `save_raw` sends).
    #[must_use]
    pub fn with_raw(mut self, raw: bool) -> Self {
        self.raw = raw;
        self
    }

    /// Sets `update_fields` (as `save_fields(fields, ..)` sends).
    #[must_use]
    pub fn with_update_fields(mut self, fields: &[&'static str]) -> Self {
        self.update_fields = Some(fields.to_vec());
        self
    }

    /// Sets `using`, the backend's name (`"sqlite"` or `"postgres"`).
    #[must_use]
    pub fn with_using(mut self, using: &'static str) -> Self {
        self.using = using;
        self
    }
}

impl ModelSnapshot {
    /// The snapshot of `instance` an `on_commit` receiver without sender would get (Django's
    /// `model_to_dict(instance)`, with the model and table): for [`Committed::new`] in a unit
    /// test.
    #[must_use]
    pub fn of(instance: &dyn AnyModel) -> Self {
        let meta = instance.meta();
        ModelSnapshot {
            model: meta.name,
            table: meta.table,
            pk: instance.pk_value(),
            values: instance.field_values(),
        }
    }
}

/// What `Committed<T>` can hold: a model type (cloned) or a [`ModelSnapshot`] (any model).
#[doc(hidden)]
pub trait OwnedModel: Send + Sized + 'static {
    /// The sender an `on_commit` receiver of `Committed<Self>` must be connected for.
    type Sender: ?Sized + 'static;
    /// An owned copy of the instance, if it is a `Self`.
    fn own(instance: &dyn AnyModel) -> Option<Self>;
    /// The copied instance's model name.
    fn model_name(&self) -> &'static str;
}

impl<M: Model + Clone> OwnedModel for M {
    type Sender = M;
    fn own(instance: &dyn AnyModel) -> Option<Self> {
        (instance as &dyn Any).downcast_ref::<M>().cloned()
    }
    fn model_name(&self) -> &'static str {
        M::META.name
    }
}

impl OwnedModel for ModelSnapshot {
    type Sender = AnySender;
    fn own(instance: &dyn AnyModel) -> Option<Self> {
        Some(ModelSnapshot::of(instance))
    }
    fn model_name(&self) -> &'static str {
        self.model
    }
}

/// Takes an owned copy of an event for a receiver that runs at commit.
#[diagnostic::on_unimplemented(
    message = "an `on_commit` receiver of `{S}` cannot take `{Self}`",
    label = "take `Committed<Model>` (with `sender = Model`) or `Committed<ModelSnapshot>` (without sender)",
    note = "on_commit receivers run after COMMIT with an owned copy of the payload; `Model` must be `Clone`"
)]
#[doc(hidden)]
pub trait FromCommitted<'e, S: Signal, X: ?Sized>: Sized + Send + 'static {
    /// The copy, and the transaction to queue it on.
    ///
    /// # Errors
    ///
    /// When the payload's model is not the receiver's.
    fn split(event: S::Event<'e>) -> Result<(Self, &'e mut dyn TxHandle), BoxError>;

    /// The name of the copied instance's model, for errors and traces.
    fn model_name(&self) -> &'static str;
}

/// The `FromCommitted` impl of each model signal: which event fields fill `created`, `raw` and
/// `update_fields`.
macro_rules! committed_payloads {
    ($($signal:ident($event:ident) => |$ev:ident| ($created:expr, $raw:expr, $fields:expr)),* $(,)?) => {$(
        impl<'e, O: OwnedModel> FromCommitted<'e, $signal, O::Sender> for Committed<O> {
            fn split($ev: $event<'e>) -> Result<(Self, &'e mut dyn TxHandle), BoxError> {
                committed($signal::NAME, $ev.instance, $created, $raw, $fields, $ev.tx)
            }

            fn model_name(&self) -> &'static str {
                self.model
            }
        }
    )*};
}

committed_payloads! {
    PostSaveSignal(SaveEvent) => |ev| (ev.created, ev.raw, ev.update_fields),
    PreSaveSignal(SaveEvent) => |ev| (false, ev.raw, ev.update_fields),
    PreDeleteSignal(DeleteEvent) => |ev| (false, false, None),
    PostDeleteSignal(DeleteEvent) => |ev| (false, false, None),
}

fn committed<'e, O: OwnedModel>(
    signal: &'static str,
    instance: &dyn AnyModel,
    created: bool,
    raw: bool,
    update_fields: Option<&[&'static str]>,
    tx: &'e mut dyn TxHandle,
) -> Result<(Committed<O>, &'e mut dyn TxHandle), BoxError> {
    let owned = O::own(instance).ok_or_else(|| wrong_sender::<O>(instance.meta().name))?;
    let using = tx.backend();
    Ok((
        Committed {
            signal,
            model: instance.meta().name,
            instance: owned,
            created,
            raw,
            update_fields: update_fields.map(<[_]>::to_vec),
            using,
        },
        tx,
    ))
}

/// Queues an `on_commit` receiver with its owned payload on the write's transaction. Called by
/// the handler `#[receiver(..., on_commit)]` generates.
#[doc(hidden)]
pub fn defer_on_commit<'e, S, X, P, F, Fut>(
    event: S::Event<'e>,
    receiver: &'static str,
    run: F,
) -> Result<(), BoxError>
where
    S: Signal,
    X: ?Sized + 'static,
    P: FromCommitted<'e, S, X>,
    F: FnOnce(P) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send + 'static,
{
    let (payload, tx) = P::split(event)?;
    // A receiver of every model names the instance's model rather than `AnySender`.
    let sender = if std::any::TypeId::of::<X>() == std::any::TypeId::of::<AnySender>() {
        payload.model_name()
    } else {
        std::any::type_name::<X>()
    };
    let label = HookLabel {
        signal: S::NAME,
        sender,
        receiver,
    };
    tx.push_hook(Hook::new(label, Box::new(move || Box::pin(run(payload)))));
    Ok(())
}
