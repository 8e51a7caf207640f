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

pub use connect::{
    AsyncFn1, AsyncFn2, ModelReceiver, Shape, post_delete, post_save, pre_delete, pre_save,
};

// The events are named only inside the crate: receivers see payloads, never events.
pub(crate) use event::{DeleteEvent, SaveEvent};

use signals_core::__private::{LocalCopy, Registry};
use signals_core::Signal;

macro_rules! model_signal {
    ($(#[$doc:meta])* $signal:ident, $name:literal, $event:ident, |$ev:ident| $reborrow:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $signal;

        impl Signal for $signal {
            const NAME: &'static str = $name;
            type Event<'e> = $event<'e>;

            fn reborrow<'s>($ev: &'s mut $event<'_>) -> $event<'s> {
                $reborrow
            }

            fn registry() -> &'static Registry<Self> {
                thread_local! {
                    static LOCAL: LocalCopy<$signal> = const { LocalCopy::new() };
                }
                static REGISTRY: Registry<$signal> = Registry::new(&LOCAL);
                &REGISTRY
            }
        }
    };
}

model_signal!(
    /// Sent before a model row is written, inside the write's transaction (Django's
    /// `pre_save`, which Django sends before its transaction). Receivers may change the instance;
    /// the changed values are written. `#[receiver(pre_save, sender = User)]`.
    PreSaveSignal, "pre_save", SaveEvent,
    |ev| SaveEvent { instance: &mut *ev.instance, created: ev.created, raw: ev.raw, update_fields: ev.update_fields, tx: &mut *ev.tx }
);
model_signal!(
    /// Sent after a model row is written, in the same transaction; a failing receiver rolls the
    /// write back (Django's `post_save`, which runs after an autocommit write).
    PostSaveSignal, "post_save", SaveEvent,
    |ev| SaveEvent { instance: &mut *ev.instance, created: ev.created, raw: ev.raw, update_fields: ev.update_fields, tx: &mut *ev.tx }
);
model_signal!(
    /// Sent before a model row is deleted, inside the delete's transaction (Django's
    /// `pre_delete`).
    PreDeleteSignal, "pre_delete", DeleteEvent,
    |ev| DeleteEvent { instance: ev.instance, origin: ev.origin, tx: &mut *ev.tx }
);
model_signal!(
    /// Sent after a model row is deleted, in the same transaction (Django's `post_delete`).
    PostDeleteSignal, "post_delete", DeleteEvent,
    |ev| DeleteEvent { instance: ev.instance, origin: ev.origin, tx: &mut *ev.tx }
);
