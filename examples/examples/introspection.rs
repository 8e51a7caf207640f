//! Use case 10: introspection: every receiver registered in the program, in dispatch order,
//! with signal, sender, `file:line`, priority, sync/async and phase.
//!
//! `cargo run -p examples --example introspection`

fn main() {
    // Using the examples crate links it, which registers all its receivers.
    print!("{}", examples::usecases::introspection());
}
