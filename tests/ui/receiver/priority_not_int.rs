use signals_core::{Signal, receiver};

#[derive(Signal)]
struct Ping;

#[receiver(Ping, priority = "high")]
fn on_ping(_ev: &Ping) {}

fn main() {}
