use signals_core::receiver;

#[receiver(post_save)]
fn on_save(_ev: &()) {}

fn main() {}
