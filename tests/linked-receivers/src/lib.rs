//! Receivers only: nothing in here is called by name. A binary that names this crate with
//! `signals_core::link!(linked_receivers)` gets them registered.

use std::sync::atomic::{AtomicUsize, Ordering};

use signals_core::{Signal, receiver};

signals_core::receivers_crate!();

/// A signal declared in this crate.
#[derive(Signal)]
pub struct LibraryEvent;

/// How many times the receivers below ran.
pub static CALLS: AtomicUsize = AtomicUsize::new(0);

#[receiver(LibraryEvent)]
fn count_library_event(_: &LibraryEvent) {
    CALLS.fetch_add(1, Ordering::SeqCst);
}
