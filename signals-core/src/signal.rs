//! The [`Signal`] trait and the [`Sender`] a send is made from.

use std::any::TypeId;
use std::fmt;

use crate::registry::Registry;

/// A signal: a typed event that receivers subscribe to.
///
/// Like a Django `Signal()` object, but the signal is a *type*: its identity is the type, its
/// payload is typed, and a misspelt signal is a compile error. Custom signals are plain structs
/// deriving [`Signal`](derive@crate::Signal); their receivers take `&TheStruct`.
///
/// The trait is general enough for signals whose payload borrows (the ORM's `pre_save` lends
/// `&mut Model` to each receiver in turn): [`Signal::Event`] is what one receiver call gets and
/// [`Signal::reborrow`] hands the next receiver a fresh borrow of it.
///
/// # Example
///
/// ```
/// use signals_core::Signal;
///
/// /// Like Django's `payment_successful = Signal()`.
/// #[derive(Signal, Debug)]
/// struct PaymentSuccessful {
///     order_id: i64,
///     amount_cents: i64,
/// }
/// assert_eq!(<PaymentSuccessful as Signal>::NAME, "PaymentSuccessful");
/// ```
pub trait Signal: Sized + Send + Sync + 'static {
    /// The name shown in errors, traces and introspection (the type's name for custom signals,
    /// Django's name such as `post_save` for built-in ones).
    const NAME: &'static str;

    /// What one receiver call gets: `&'e Self` for custom signals. `Unpin` (borrows are), so a
    /// send's future can hold it without pinning it.
    type Event<'e>: Send + Unpin;

    /// What each receiver returns to the sender, collected by
    /// [`send_collect`](crate::send_collect): `()` for a signal whose receivers only act (every
    /// built-in signal, and a `derive(Signal)` type unless it says
    /// `#[signal(reply = PaymentHandler)]`).
    ///
    /// Django's `send` returns `[(receiver, response), ..]` for every signal; here the reply's
    /// type is declared by the signal, so each receiver's return type is checked against it
    /// at compile time. A plain [`send`](crate::send) drops the replies: a signal whose reply
    /// is `()` costs nothing for it.
    type Reply: Send + 'static;

    /// Lends the event to one receiver, keeping it for the next one.
    fn reborrow<'s>(event: &'s mut Self::Event<'_>) -> Self::Event<'s>;

    /// This signal's receiver registry (one `static` per signal type, so a send never hashes).
    fn registry() -> &'static Registry<Self>;

    /// The payload's key fields as `(name, value)` text, for the test kit's
    /// [`Recorder`](crate::testing::Recorder) and fakes: what a test compares sends by
    /// (`pk=1 created=true` for the ORM's `post_save`).
    ///
    /// Called only for sends made inside a recording scope, never on the usual send path. The
    /// default describes nothing (the recorder then shows the signal and the sender alone);
    /// [`derive(Signal)`](derive@crate::Signal) describes a signal that implements `Debug` by
    /// its `Debug` text, and the ORM's model signals override it.
    #[must_use]
    fn describe(_event: &Self::Event<'_>) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

/// A signal whose event is a shared reference to the signal value itself.
///
/// Every [`derive(Signal)`](derive@crate::Signal) type is one. It gives the
/// [`send`](crate::send) family of functions and closure receivers taking `&Self`.
pub trait PlainSignal: Signal {
    /// The event that lends `self` to receivers.
    fn as_event(&self) -> Self::Event<'_>;

    /// The signal value inside an event.
    #[expect(
        clippy::elidable_lifetime_names,
        reason = "the name ties the event to what is built from it"
    )]
    fn from_event<'e>(event: Self::Event<'e>) -> &'e Self;
}

/// Who sends a signal: a type, or nobody.
///
/// Django's `sender` argument. Matching is exact, by [`TypeId`]: a receiver connected for
/// `sender = Order` is called for sends from `Order` only, and a receiver connected without a
/// sender is called for every send of its signal. A send from [`Sender::NONE`] reaches only
/// receivers connected without a sender, as `send(sender=None)` does in Django.
#[derive(Clone, Copy)]
pub struct Sender {
    id: Option<TypeId>,
    name: &'static str,
}

impl Sender {
    /// No sender: reaches only receivers connected without a sender.
    pub const NONE: Sender = Sender {
        id: None,
        name: "-",
    };

    /// The sender `T`, named by its path.
    #[must_use]
    pub fn of<T: ?Sized + 'static>() -> Self {
        Sender {
            id: Some(TypeId::of::<T>()),
            name: std::any::type_name::<T>(),
        }
    }

    /// The sender's type identity, `None` for [`Sender::NONE`].
    #[must_use]
    pub fn type_id(&self) -> Option<TypeId> {
        self.id
    }

    /// The sender's type path (`-` for [`Sender::NONE`]).
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Whether a receiver connected for `filter` (`None`: any sender) gets a send from `self`.
    #[inline]
    pub(crate) fn matches(self, filter: Option<TypeId>) -> bool {
        match filter {
            None => true,
            Some(wanted) => self.id == Some(wanted),
        }
    }
}

impl PartialEq for Sender {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl Eq for Sender {}

impl fmt::Debug for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

impl fmt::Display for Sender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// The sender marker of receivers connected without `sender`: they get every send.
///
/// Only used as a type argument of [`FromEvent`](crate::extract::FromEvent).
#[derive(Debug, Clone, Copy)]
pub enum AnySender {}
