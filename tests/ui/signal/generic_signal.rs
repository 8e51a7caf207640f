use signals_core::Signal;

#[derive(Signal)]
struct S<T>(T);

fn main() {}
