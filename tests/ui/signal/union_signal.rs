use signals_core::Signal;

#[derive(Signal)]
union U {
    a: u32,
    b: f32,
}

fn main() {}
