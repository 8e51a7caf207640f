//! The model signals `pre_save`, `post_save`, `pre_delete` and `post_delete`, by type: what
//! [`Mute::signal`](crate::Mute::signal) and
//! [`has_listeners`](crate::dispatch::has_listeners) take. Receivers name them by their Django
//! names (`#[receiver(post_save, ..)]`) and get [`PreSave`](crate::PreSave) ... during the write
//! or [`Committed`](crate::Committed) after COMMIT.

mod connect;
mod event;
pub(crate) mod on_commit;
pub(crate) mod payload;
pub(crate) mod senders;

pub use crate::init::PostInitSignal;
pub use connect::{
    AsyncFn1, AsyncFn2, CommitReceiver, ModelReceiver, Shape, m2m_changed, post_delete, post_save,
    pre_delete, pre_save,
};

// The events are named only inside the crate: receivers see payloads, never events.
pub(crate) use event::{DeleteEvent, SaveEvent};

use signals_core::__private::Registry;
use signals_core::Signal;

use crate::model::AnyModel;
use payload::Origin;

macro_rules! model_signal {
    ($(#[$doc:meta])* $signal:ident, $name:literal, $event:ident, |$ev:ident| $reborrow:expr, describe: $describe:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $signal;

        impl Signal for $signal {
            const NAME: &'static str = $name;
            type Event<'e> = $event<'e>;
            type Reply = ();

            fn reborrow<'s>($ev: &'s mut $event<'_>) -> $event<'s> {
                $reborrow
            }

            fn describe(event: &$event<'_>) -> Vec<(&'static str, String)> {
                $describe(event)
            }

            fn registry() -> &'static Registry<Self> {
                signals_core::__signal_registry!($signal)
            }
        }
    };
}

model_signal!(
    /// Sent before a model row is written, inside the write's transaction (Django's
    /// `pre_save`, which Django sends before its transaction). Receivers may change the instance;
    /// the changed values are written. `#[receiver(pre_save, sender = User)]`.
    PreSaveSignal, "pre_save", SaveEvent,
    |ev| SaveEvent { instance: &mut *ev.instance, created: ev.created, raw: ev.raw, update_fields: ev.update_fields, previous: ev.previous, tx: &mut *ev.tx },
    describe: describe_pre_save
);
model_signal!(
    /// Sent after a model row is written, in the same transaction; a failing receiver rolls the
    /// write back (Django's `post_save`, which runs after an autocommit write).
    PostSaveSignal, "post_save", SaveEvent,
    |ev| SaveEvent { instance: &mut *ev.instance, created: ev.created, raw: ev.raw, update_fields: ev.update_fields, previous: ev.previous, tx: &mut *ev.tx },
    describe: describe_post_save
);
model_signal!(
    /// Sent before a model row is deleted, inside the delete's transaction (Django's
    /// `pre_delete`).
    PreDeleteSignal, "pre_delete", DeleteEvent,
    |ev| DeleteEvent { instance: ev.instance, origin: ev.origin, tx: &mut *ev.tx },
    describe: describe_delete
);
model_signal!(
    /// Sent after a model row is deleted, in the same transaction (Django's `post_delete`).
    PostDeleteSignal, "post_delete", DeleteEvent,
    |ev| DeleteEvent { instance: ev.instance, origin: ev.origin, tx: &mut *ev.tx },
    describe: describe_delete
);

/// `pre_save`'s key fields: `pk`, `adding`, `raw` only when set, `update_fields`.
fn describe_pre_save(ev: &SaveEvent<'_>) -> Vec<(&'static str, String)> {
    describe_save(ev, "adding")
}

/// `post_save`'s key fields: `pk`, `created`, `raw` only when set, `update_fields`.
fn describe_post_save(ev: &SaveEvent<'_>) -> Vec<(&'static str, String)> {
    describe_save(ev, "created")
}

/// The key fields of a save, for the test kit's recorder: `pk`, `adding` or `created`, `raw`
/// only when set (fixture loading), `update_fields` (`-` for every field).
fn describe_save(ev: &SaveEvent<'_>, flag: &'static str) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("pk", pk_text(&*ev.instance)),
        (flag, ev.created.to_string()),
    ];
    if ev.raw {
        fields.push(("raw", "true".to_owned()));
    }
    let update_fields = ev
        .update_fields
        .map_or_else(|| "-".to_owned(), |f| format!("[{}]", f.join(",")));
    fields.push(("update_fields", update_fields));
    fields
}

/// The key fields of a delete, for the test kit's recorder: `pk` and `origin` (`self` when
/// the instance's own `delete` was called, `Model(pk)` for the instance a cascade started
/// from, `query(..)` for a query's `delete`).
fn describe_delete(ev: &DeleteEvent<'_>) -> Vec<(&'static str, String)> {
    let origin = match ev.origin {
        Origin::Instance(_) if ev.origin.is(ev.instance) => "self".to_owned(),
        Origin::Instance(origin) => format!("{}({})", origin.meta().name, pk_text(origin)),
        Origin::Query(query) => format!("query({query:?})"),
    };
    vec![("pk", pk_text(ev.instance)), ("origin", origin)]
}

/// An instance's key as the recorder shows it: `-` while a generated key is unset, a text key
/// without quotes, anything else as JSON.
pub(crate) fn pk_text(instance: &dyn AnyModel) -> String {
    match instance.pk_value() {
        serde_json::Value::Null => "-".to_owned(),
        serde_json::Value::String(text) => text,
        other => other.to_string(),
    }
}
