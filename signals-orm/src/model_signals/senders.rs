//! What `#[receiver]` checks at the user's tokens, so that a sender or a transaction parameter
//! that does not fit is reported where it is written, with the fix, rather than as a mismatch
//! of the generated handler. Named by generated code only (through `__private`).

use signals_core::extract::FromEvent;
use signals_core::{BoxError, Signal};

use super::{PostDeleteSignal, PostSaveSignal, PreDeleteSignal, PreSaveSignal};
use crate::Backend;
use crate::m2m::{M2mChangedSignal, Through};
use crate::model::Model;
use crate::tx::{AnyTx, Tx};

/// The senders a model signal accepts. `#[receiver(post_save, sender = X)]` names
/// `<post_save as SenderOf<X>>::Sender` spanned at `X`, so an `X` that does not fit is reported
/// there, with the message of the signal's own trait below (`PostSaveSender` ...).
pub trait SenderOf<X: ?Sized>: Signal {
    /// `X` itself.
    type Sender: ?Sized;
}

/// One trait per model signal, so that the message names the signal the user wrote.
macro_rules! model_senders {
    ($($signal:ident: $sender:ident, $message:literal, $note:literal;)*) => {$(
        #[doc = concat!("A sender of `", stringify!($signal), "`: a model.")]
        #[diagnostic::on_unimplemented(
            message = $message,
            label = "not a model",
            note = $note,
            note = "a receiver of every model leaves `sender` out"
        )]
        pub trait $sender {}

        impl<M: Model> $sender for M {}

        impl<X: ?Sized + $sender> SenderOf<X> for $signal {
            type Sender = X;
        }
    )*};
}

model_senders! {
    PreSaveSignal: PreSaveSender,
        "`{Self}` is not a model: the sender of pre_save must be a `#[derive(Model)]` type",
        "`#[receiver(pre_save, sender = User)]` takes `PreSave<'_, User>`, where `User` derives `Model` and `sqlx::FromRow`";
    PostSaveSignal: PostSaveSender,
        "`{Self}` is not a model: the sender of post_save must be a `#[derive(Model)]` type",
        "`#[receiver(post_save, sender = User)]` takes `PostSave<'_, User>`, where `User` derives `Model` and `sqlx::FromRow`";
    PreDeleteSignal: PreDeleteSender,
        "`{Self}` is not a model: the sender of pre_delete must be a `#[derive(Model)]` type",
        "`#[receiver(pre_delete, sender = User)]` takes `PreDelete<'_, User>`, where `User` derives `Model` and `sqlx::FromRow`";
    PostDeleteSignal: PostDeleteSender,
        "`{Self}` is not a model: the sender of post_delete must be a `#[derive(Model)]` type",
        "`#[receiver(post_delete, sender = User)]` takes `PostDelete<'_, User>`, where `User` derives `Model` and `sqlx::FromRow`";
}

/// A sender of `m2m_changed`: the through type of a relation.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a many-to-many relation: the sender of m2m_changed is the through type declared with `many_to_many!` (e.g. `PostTags`), not a model",
    label = "not a `many_to_many!` relation",
    note = "`many_to_many! {{ pub struct PostTags(Post => \"post_id\", Tag => \"tag_id\") in \"post_tags\"; }}` declares `PostTags`; `#[receiver(m2m_changed, sender = PostTags)]` takes `M2mChanged<'_, PostTags>`",
    note = "a receiver of every relation leaves `sender` out and takes `AnyM2mChanged<'_>`"
)]
pub trait M2mChangedSender {}

impl<T: Through> M2mChangedSender for T {}

impl<X: ?Sized + M2mChangedSender> SenderOf<X> for M2mChangedSignal {
    type Sender = X;
}

/// A receiver's second parameter: the write's transaction.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a transaction parameter",
    label = "a receiver's second parameter is the write's transaction: `&mut Tx<Sqlite>`, `&mut Tx<Postgres>` or `AnyTx<'_>`",
    note = "what a receiver writes through it commits or rolls back with the write"
)]
pub trait TxParam<'e>: Sized {
    /// `Self`. For a type that is not a transaction this does not resolve, so the handler's
    /// tuple `(payload, transaction)` stays unknown and is not reported a second time.
    type Param;
    /// The identity.
    fn cast(param: Self::Param) -> Self;
}

impl<'e, DB: Backend> TxParam<'e> for &'e mut Tx<DB> {
    type Param = Self;
    #[inline]
    fn cast(param: Self) -> Self {
        param
    }
}

impl<'e> TxParam<'e> for AnyTx<'e> {
    type Param = Self;
    #[inline]
    fn cast(param: Self) -> Self {
        param
    }
}

/// The transaction of a two-parameter receiver as its declared type `T`. Called as
/// `tx_param::<T, _>`, so that a `T` that is not a transaction is reported at `T`, and `A`
/// stays unknown then (the tuple `payload_and_tx` built is not reported a second time).
#[inline]
pub fn tx_param<'e, T, A>(param: A) -> T
where
    T: TxParam<'e, Param = A>,
{
    T::cast(param)
}

/// What builds the payload and the transaction of a two-parameter receiver from the event (as
/// the event's [`FromEvent`] impl: it fails for a payload of another model, or a transaction
/// of the other backend), and what they need the sender to prepare
/// ([`FromEvent::NEEDS`]). Called with the payload type written out, so that rustc reports a
/// payload that does not fit at that type, by the handler and by its `ReceiverInfo`'s `needs`
/// alike (the same error, shown once).
#[inline]
#[must_use]
pub const fn payload_and_tx<'e, S, X, P, T>() -> (ExtractPair<'e, S, P, T>, u8)
where
    S: Signal,
    X: ?Sized,
    (P, T): FromEvent<'e, S, X>,
{
    (<(P, T)>::from_event, <(P, T) as FromEvent<'e, S, X>>::NEEDS)
}

/// The function [`payload_and_tx`] returns.
pub type ExtractPair<'e, S, P, T> = fn(<S as Signal>::Event<'e>) -> Result<(P, T), BoxError>;
