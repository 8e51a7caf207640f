use signals_core::{Signal, receiver};

#[derive(Signal)]
struct Ping;

#[receiver(Ping)]
fn on_ping(_ev: &Ping) -> i32 {
    1
}

fn main() {}
