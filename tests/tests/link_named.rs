//! A binary that names the receivers crate with `link!` gets its receivers.

use std::sync::atomic::Ordering;

use shared_signal::{CALLS, SharedEvent};
use signals_core::Sender;

signals_core::link!(linked_receivers);

#[test]
fn receivers_of_a_crate_named_with_link_run() {
    let names: Vec<_> = signals_core::receivers().iter().map(|r| r.name).collect();
    assert!(
        names.contains(&"linked_receivers::count_shared_event"),
        "registered: {names:?}"
    );
    signals_core::send_sync(Sender::NONE, &SharedEvent).unwrap();
    assert_eq!(CALLS.load(Ordering::SeqCst), 1);
}
