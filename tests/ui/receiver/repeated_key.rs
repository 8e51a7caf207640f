use signals_core::{Signal, receiver};

#[derive(Signal)]
struct Ping;

#[receiver(Ping, priority = 1, priority = 2)]
fn on_ping(_ev: &Ping) {}

fn main() {}
