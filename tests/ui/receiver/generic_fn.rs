use signals_core::{Signal, receiver};

#[derive(Signal)]
struct Ping;

#[receiver(Ping)]
fn on_ping<T>(_ev: &Ping) {}

fn main() {}
