// A Django signal the ORM does not send (yet) is reported by rustc at the name the user wrote.
use signals_orm::receiver;

#[receiver(pre_init)]
fn on_init(_ev: &()) {}

fn main() {}
