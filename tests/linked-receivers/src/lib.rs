//! Receivers only: nothing in here is called by name. A binary that names this crate with
//! `signals_core::link!(linked_receivers)` gets them registered.

use std::sync::atomic::Ordering;

use shared_signal::{CALLS, SharedEvent};
use signals_core::receiver;

#[receiver(SharedEvent)]
fn count_shared_event(_: &SharedEvent) {
    CALLS.fetch_add(1, Ordering::SeqCst);
}
