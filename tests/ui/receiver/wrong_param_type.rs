use signals_core::{Signal, receiver};

#[derive(Signal)]
struct Ping;

#[derive(Signal)]
struct Pong;

#[receiver(Ping)]
fn other_signal(_ev: &Pong) {}

#[receiver(Ping)]
fn by_value(_ev: Ping) {}

fn main() {}
