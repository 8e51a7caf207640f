//! The dispatcher of Django-style signals for Rust: typed signals, receivers registered at link
//! time with `#[receiver]` or at runtime with [`connect`], and `send` / `send_robust` in async
//! and sync form, with `send_collect` for the receivers' replies.
//!
//! ```
//! use signals_core::{receiver, Sender, Signal};
//!
//! /// Like Django's `payment_successful = Signal()`.
//! #[derive(Signal)]
//! struct PaymentSuccessful { order_id: i64, amount_cents: i64 }
//!
//! struct Order;
//!
//! // Registered at link time: no `ready()`, no import list.
//! #[receiver(PaymentSuccessful, sender = Order)]
//! fn mark_paid(ev: &PaymentSuccessful) -> Result<(), std::io::Error> {
//!     println!("order {} paid {} cents", ev.order_id, ev.amount_cents);
//!     Ok(())
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! signals_core::send(Sender::of::<Order>(), &PaymentSuccessful { order_id: 7, amount_cents: 1200 }).await?;
//! # Ok::<(), signals_core::SendError>(()) }).unwrap();
//! ```
//!
//! The rules (dispatch order, snapshots, dedupe, muting, nesting) are in `docs/dispatch.md` of
//! the repository, with every deliberate difference from Django.

mod dispatch;
mod error;
mod introspect;
mod local;
mod mute;
mod nesting;
mod receiver;
mod registry;
mod report;
#[cfg(feature = "http")]
pub mod request;
pub mod settings;
mod signal;
pub mod testing;

pub use dispatch::{
    send, send_collect, send_collect_sync, send_robust, send_robust_sync, send_sync,
};
pub use error::{Outcome, SendError};
pub use introspect::receivers;
pub use mute::Mute;
pub use nesting::{ChainLink, MAX_DEPTH_CEILING, SendChain, max_depth, set_max_depth};
pub use receiver::BoxError;
pub use registry::{ConnectOptions, Connection};
pub use signal::{PlainSignal, Sender, Signal};

use receiver::IntoReceiver;

pub mod extract {
    //! How events become receiver parameters and results become outcomes: the traits behind
    //! `#[receiver]` and [`connect`](crate::connect), for code that adds its own payload
    //! types (as signals-orm does for model signals).
    pub use crate::receiver::{BoxFuture, FromEvent, IntoReceiver, ReceiverOutput};
    pub use crate::signal::AnySender;
}

pub mod introspection {
    //! What [`receivers`](crate::receivers) returns: every receiver, in dispatch order, with
    //! where it was declared.
    pub use crate::introspect::{ReceiverRow, ReceiverTable, Registration};
    pub use crate::receiver::Phase;
}

/// Derives [`Signal`] (and [`PlainSignal`]) for a struct or enum: a custom signal whose
/// receivers take `&Self`. `#[signal(name = "...")]` sets the displayed name;
/// `#[signal(reply = T)]` the [`Signal::Reply`] its receivers return to [`send_collect`]
/// (`()` by default), Django's receiver return values.
pub use signals_macros::CoreSignal as Signal;
/// Registers a function as a receiver at link time.
///
/// `#[receiver(Signal)]`, `#[receiver([SignalA, SignalB])]`, with optional
/// `sender = Type`, `dispatch_uid = "..."`, `priority = N` (higher runs first). The function
/// is free (no `self`), not generic, sync or `async`, takes `&TheSignal` (and, last, the
/// [`Sender`] if it wants it) and returns the signal's reply (`()` unless it declares one) or
/// `Result<Reply, E>` with `E: Into<BoxError>`. Like Django's `@receiver(signal, sender=...)`.
/// The dispatcher's own signals may be named as in Django: `request_started`,
/// `request_finished`, `got_request_exception` (feature `http`) and `setting_changed`.
pub use signals_macros::core_receiver as receiver;

/// Connects a receiver at runtime for every sender; see [`connect_with`].
///
/// Returns a [`Connection`] guard: dropping it disconnects (Django's weak reference), and
/// [`Connection::forever`] keeps it.
///
/// # Example
///
/// ```
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use signals_core::{Sender, Signal};
///
/// #[derive(Signal)]
/// struct Tick;
/// static TICKS: AtomicUsize = AtomicUsize::new(0);
///
/// let guard = signals_core::connect(|_: &Tick| { TICKS.fetch_add(1, Ordering::SeqCst); });
/// signals_core::send_sync(Sender::NONE, &Tick).unwrap();
/// drop(guard);
/// signals_core::send_sync(Sender::NONE, &Tick).unwrap();
/// assert_eq!(TICKS.load(Ordering::SeqCst), 1);
/// ```
#[track_caller]
pub fn connect<S: Signal, M>(receiver: impl IntoReceiver<S, M>) -> Connection {
    S::registry().connect(ConnectOptions::new(), receiver)
}

/// Connects a receiver at runtime with a sender, a `dispatch_uid` or a priority (Django's
/// `connect(receiver, sender=..., dispatch_uid=...)`).
#[track_caller]
pub fn connect_with<S: Signal, M>(
    options: ConnectOptions,
    receiver: impl IntoReceiver<S, M>,
) -> Connection {
    S::registry().connect(options, receiver)
}

/// Disconnects a function receiver of `S` connected for `sender` (at link time or at runtime);
/// returns whether one was removed. Like Django's `disconnect(receiver, sender)`.
pub fn disconnect<S: Signal, F: 'static>(receiver: F, sender: Sender) -> bool {
    S::registry().disconnect_fn(receiver, sender)
}

/// Connects again a `#[receiver]` function of `S` that [`disconnect`] removed, for the sender
/// it was declared with, at its declared place in the dispatch order. Returns whether it was
/// reconnected (`false` when it is connected already, or is no `#[receiver]` of `S` for
/// `sender`). Django reconnects with `connect(receiver)` again; a link-time receiver has no
/// other handle.
///
/// ```
/// use signals_core::{receiver, Sender, Signal};
///
/// #[derive(Signal)]
/// struct Ping;
///
/// #[receiver(Ping)]
/// fn pong(_: &Ping) {}
///
/// assert!(signals_core::disconnect::<Ping, _>(pong, Sender::NONE));
/// assert!(!signals_core::has_listeners::<Ping>(Sender::NONE));
/// assert!(signals_core::reconnect::<Ping, _>(pong, Sender::NONE));
/// assert!(signals_core::has_listeners::<Ping>(Sender::NONE));
/// ```
pub fn reconnect<S: Signal, F: 'static>(receiver: F, sender: Sender) -> bool {
    S::registry().reconnect_fn(receiver, sender)
}

/// Disconnects the receiver of `S` with `dispatch_uid` for `sender`; returns whether one was
/// removed.
#[expect(
    clippy::must_use_candidate,
    reason = "like Django's disconnect, the answer is optional information"
)]
pub fn disconnect_uid<S: Signal>(dispatch_uid: &str, sender: Sender) -> bool {
    S::registry().disconnect_uid(dispatch_uid, sender)
}

/// Whether a send of `S` from `sender` would reach a receiver (Django's `has_listeners`).
#[must_use]
pub fn has_listeners<S: Signal>(sender: Sender) -> bool {
    S::registry().has_listeners(sender)
}

/// Names library crates whose `#[receiver]`s must be linked into this program.
///
/// Receivers register themselves at link time, so they exist only if their crate is linked.
/// Rust links a dependency only when the program refers to something in it; a library crate
/// that holds nothing but receivers is never referred to, so it is left out, its receivers
/// with it, without an error or a warning. Name each such crate once, anywhere in the binary
/// (usually `main.rs`): the counterpart of the imports Django's `AppConfig.ready()` makes, once
/// per crate instead of once per module. It expands to `use the_crate as _;`, which works as
/// well written by hand.
///
/// Signs that a crate was left out: `receivers()` lists none of its receivers, and debug
/// builds print one warning at the first send when no receiver is linked at all. Rust's
/// `unused_crate_dependencies` lint (`#![warn(unused_crate_dependencies)]` at the top of
/// `main.rs`) names every dependency the binary leaves out, receivers crates included.
///
/// ```ignore
/// // main.rs of the application; `shop_receivers` and `audit_log` are library crates listed
/// // under [dependencies] whose `#[receiver]`s nothing else in the program names.
/// signals_orm::link!(shop_receivers, audit_log);
///
/// fn main() {
///     print!("{}", signals_orm::receivers()); // lists their receivers
/// }
/// ```
#[macro_export]
macro_rules! link {
    ($($krate:ident),+ $(,)?) => {
        $(
            #[allow(unused_imports)]
            use $krate as _;
        )+
    };
}

/// The body of [`Signal::registry`] for a signal implemented by hand: the `static` registry
/// and its thread-local copy of the receiver list (see `Registry::new`). Hidden: for crates
/// that define signals with their own event types, as signals-orm does.
#[doc(hidden)]
#[macro_export]
macro_rules! __signal_registry {
    ($signal:ty) => {{
        ::std::thread_local! {
            static LOCAL: $crate::__private::LocalCopy<$signal> =
                const { $crate::__private::LocalCopy::new() };
        }
        static REGISTRY: $crate::__private::Registry<$signal> =
            $crate::__private::Registry::new(&LOCAL);
        &REGISTRY
    }};
}

#[doc(hidden)]
pub mod __private {
    //! What generated code reaches; not part of the API.
    pub use crate::error::{receiver_outcome, write_causes};
    pub use crate::local::LocalCopy;
    pub use crate::receiver::{
        AsyncFn, AsyncHandler, AsyncReceiverFn, BoxFuture, FromEvent, Handler, Phase, ReceiverInfo,
        ReceiverOutput, StaticOrShared, SyncFn, SyncHandler, SyncReceiverFn, WithSender,
        discard_reply,
    };
    pub use crate::registry::{
        ErasedRegistry, LinkedReceiver, Registry, RuntimeReceiver, unheard_send,
    };
    pub use crate::report::{Report, Severity};
    pub use crate::signal::AnySender;
    /// The trait alone (the crate root's `Signal` is also the derive).
    pub use crate::signal::Signal as SignalTrait;
    pub use crate::{BoxError, PlainSignal, SendError, Sender, Signal};
    pub use inventory;
    pub use std::any::TypeId;
    pub use std::borrow::Cow;
    pub use std::boxed::Box;
    pub use std::option::Option;
    pub use std::result::Result;
    pub use std::string::String;
    pub use std::vec::Vec;

    /// A value and its type's name, to describe it for the test kit by its `Debug` text when
    /// it has one: `(&Describe(value, "Name")).describe_fields()` with both traits below in
    /// scope picks [`DescribeByDebug`] when the type implements `Debug` (the method needs no
    /// autoref) and [`DescribeNothing`] otherwise.
    pub struct Describe<'a, T: ?Sized>(pub &'a T, pub &'static str);

    /// [`Describe`] of a `Debug` type: its `Debug` text.
    pub trait DescribeByDebug {
        /// The described fields.
        fn describe_fields(&self) -> Vec<(&'static str, String)>;
    }

    impl<T: ?Sized + std::fmt::Debug> DescribeByDebug for Describe<'_, T> {
        fn describe_fields(&self) -> Vec<(&'static str, String)> {
            crate::testing::debug_fields(self.1, &format!("{:?}", self.0))
        }
    }

    /// [`Describe`] of any other type: nothing.
    pub trait DescribeNothing {
        /// The described fields.
        fn describe_fields(&self) -> Vec<(&'static str, String)>;
    }

    impl<T: ?Sized> DescribeNothing for &Describe<'_, T> {
        fn describe_fields(&self) -> Vec<(&'static str, String)> {
            Vec::new()
        }
    }

    /// The dispatcher's own signals by their Django names: `#[receiver(request_started)]`
    /// names `django_signals::request_started`. signals-orm's `__private` has this module too
    /// (it re-exports this one's items), so the names work from either crate's attribute.
    #[allow(
        non_camel_case_types,
        reason = "Django's signal names, as users write them"
    )]
    pub mod django_signals {
        /// Django's `request_started`.
        #[cfg(feature = "http")]
        pub type request_started = crate::request::RequestStarted;
        /// Django's `request_finished`.
        #[cfg(feature = "http")]
        pub type request_finished = crate::request::RequestFinished;
        /// Django's `got_request_exception`.
        #[cfg(feature = "http")]
        pub type got_request_exception = crate::request::GotRequestException;
        /// Django's `setting_changed`.
        pub type setting_changed = crate::settings::SettingChanged;
    }

    /// The receiver function's type, so a runtime `connect` of it is seen as a duplicate.
    #[must_use]
    pub const fn type_id_of_val<T: 'static>(_: &T) -> TypeId {
        TypeId::of::<T>()
    }

    /// The registry of `S`, type-erased.
    #[must_use]
    pub fn erased_registry<S: Signal>() -> &'static dyn ErasedRegistry {
        S::registry()
    }

    /// The sender `T`.
    #[must_use]
    pub fn sender_of<T: ?Sized + 'static>() -> Sender {
        Sender::of::<T>()
    }
}
