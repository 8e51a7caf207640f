//! A signal declared apart from its receivers (which live in `linked-receivers`).

use std::sync::atomic::AtomicUsize;

use signals_core::Signal;

/// Sent by the link tests.
#[derive(Signal)]
pub struct SharedEvent;

/// Incremented by the receivers in `linked-receivers`.
pub static CALLS: AtomicUsize = AtomicUsize::new(0);
