use signals_orm::receiver;

#[receiver(post_sav)]
fn on_save(_ev: &()) {}

fn main() {}
