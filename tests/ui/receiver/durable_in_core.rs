// Durable receivers enqueue in the write's transaction: they are signals-orm's.
use signals_core::{Signal, receiver};

#[derive(Signal)]
struct Ping;

#[receiver(Ping, durable)]
fn on_ping(_ev: &Ping) {}

fn main() {}
