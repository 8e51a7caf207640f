//! A receiver of a signal that declares a reply returns that reply (or a `Result` of it).
use signals_core::{Signal, receiver};

#[derive(Signal)]
#[signal(reply = u32)]
struct Quote;

#[receiver(Quote)]
fn quote_as_text(_: &Quote) -> String {
    String::new()
}

#[receiver(Quote)]
async fn quote_later(_: &Quote) -> Result<String, std::io::Error> {
    Ok(String::new())
}

#[receiver(Quote)]
fn no_quote(_: &Quote) {}

fn main() {}
