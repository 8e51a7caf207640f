use signals_core::Signal;

#[derive(Signal)]
#[signal(nmae = "x")]
struct S;

fn main() {}
