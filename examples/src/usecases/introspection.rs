//! Use case 10: introspection: every receiver registered in the program, in dispatch order,
//! with signal, sender, `file:line`, priority, sync/async and phase. A program that links this
//! crate gets all of its receivers, so the table lists every use case's.

/// Every receiver of the program, in dispatch order, with `file:line`.
#[must_use]
pub fn run() -> signals_orm::dispatch::ReceiverTable {
    signals_orm::receivers()
}
