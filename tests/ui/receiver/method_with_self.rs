use signals_core::{Signal, receiver};

#[derive(Signal)]
struct Ping;

struct Handler;

impl Handler {
    #[receiver(Ping)]
    fn on_ping(&self, _ev: &Ping) {}
}

fn main() {}
