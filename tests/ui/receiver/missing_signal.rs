use signals_core::{Signal, receiver};

#[derive(Signal)]
struct Ping;

#[receiver]
fn on_ping(_ev: &Ping) {}

fn main() {}
