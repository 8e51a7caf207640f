//! Django-style model signals around sqlx writes. This crate re-exports the dispatcher
//! ([`signals_core`]) and the macros, so applications depend on it alone.
//!
//! The model layer (derive(Model), saves and deletes that send `pre_save` / `post_save` /
//! `pre_delete` / `post_delete`, transactions with `on_commit`) is being built; today this crate
//! offers the dispatcher with `#[receiver]` paths that resolve through it.

pub use signals_core::{
    AnySender, BoxError, ConnectOptions, Connection, IntoReceiver, Mute, Origin, Outcome, Phase,
    PlainSignal, ReceiverInfo, ReceiverRow, ReceiverTable, Registry, SendError, Sender, connect,
    connect_with, disconnect, disconnect_uid, has_listeners, link, max_depth, receivers, send,
    send_robust, send_robust_sync, send_sync, set_max_depth,
};
/// Derives a custom signal; see [`signals_core::Signal`](derive@signals_core::Signal).
pub use signals_macros::OrmSignal as Signal;
/// Registers a function as a receiver at link time; see [`signals_core::receiver`](macro@signals_core::receiver).
pub use signals_macros::orm_receiver as receiver;

#[doc(hidden)]
pub mod __private {
    //! What generated code reaches; not part of the API.
    pub use signals_core::__private::*;

    /// The ORM's model signals, by type.
    pub mod model_signals {}
}
