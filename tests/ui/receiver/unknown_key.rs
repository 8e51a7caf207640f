use signals_core::{Signal, receiver};

#[derive(Signal)]
struct Ping;

struct Foo;

#[receiver(Ping, sendr = Foo)]
fn on_ping(_ev: &Ping) {}

fn main() {}
