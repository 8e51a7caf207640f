//! Use case 1: a welcome email after a customer registers (`post_save`, `created`, run
//! `on_commit`), sent with lettre as real `.eml` files into the printed folder, or over SMTP when
//! `SMTP_URL` is set.
//!
//! `cargo run -p examples --example welcome_email`

use examples::run::Run;
use examples::usecases;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), examples::Error> {
    let run = Run::program("welcome_email").await?;
    let customers = run
        .act("signup-form", usecases::welcome_email(&run))
        .await?;
    println!(
        "\nregistered: {:?}",
        customers.iter().map(|c| &c.name).collect::<Vec<_>>()
    );
    println!("emails to {:?} in {}", run.emails()?, run.outbox.display());
    Ok(())
}
