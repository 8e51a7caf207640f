use signals_core::{Signal, receiver};

#[derive(Signal)]
struct Ping;

#[receiver(Ping, dispatch_uid = 5)]
fn on_ping(_ev: &Ping) {}

fn main() {}
