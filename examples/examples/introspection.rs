//! Use case 10: introspection: every receiver registered in the program, in dispatch order,
//! with signal, sender, `file:line`, priority, sync/async and phase. The use case is
//! `examples/src/usecases/introspection.rs`.
//!
//! The table lists the receivers of all ten use cases: using the examples crate links it, and
//! every receiver of a linked crate is registered. Nothing is sent, so none of them runs.
//!
//! `cargo run -p examples --example introspection`

use examples::usecases::introspection;

fn main() {
    print!("{}", introspection::run());
}
