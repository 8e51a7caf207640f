use signals_core::{Signal, receiver};

#[derive(Signal)]
struct Ping;

#[receiver(Ping, on_commit)]
fn on_ping(_ev: &Ping) {}

fn main() {}
