//! The type-erased events the writes send: the instance as `dyn AnyModel` and the
//! transaction as `dyn TxHandle`, narrowed per receiver by `payload.rs` and `on_commit.rs`.

use crate::model::AnyModel;
use crate::model_signals::payload::{Origin, Previous};
use crate::tx::TxHandle;

/// The event behind `pre_save` and `post_save`.
pub struct SaveEvent<'e> {
    pub(crate) instance: &'e mut dyn AnyModel,
    /// `created` in `post_save`; in `pre_save`, whether the save will INSERT (`adding`).
    pub(crate) created: bool,
    pub(crate) raw: bool,
    pub(crate) update_fields: Option<&'e [&'static str]>,
    /// The row as it was before the write, for receivers taking
    /// [`Changes`](crate::model_signals::payload::Changes).
    pub(crate) previous: Previous<'e>,
    pub(crate) tx: &'e mut dyn TxHandle,
}

/// The event behind `pre_delete` and `post_delete`.
pub struct DeleteEvent<'e> {
    pub(crate) instance: &'e dyn AnyModel,
    pub(crate) origin: Origin<'e>,
    pub(crate) tx: &'e mut dyn TxHandle,
}
