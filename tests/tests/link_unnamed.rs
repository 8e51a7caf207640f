//! Without `link!`, a receivers-only crate is dropped by the linker: this is why `link!` exists.

use std::sync::atomic::Ordering;

use shared_signal::{CALLS, SharedEvent};
use signals_core::Sender;

#[test]
fn receivers_of_an_unnamed_crate_are_not_linked() {
    signals_core::send_sync(Sender::NONE, &SharedEvent).unwrap();
    assert_eq!(CALLS.load(Ordering::SeqCst), 0);
    assert!(
        !signals_core::receivers()
            .iter()
            .any(|r| r.name == "linked_receivers::count_shared_event")
    );
}
