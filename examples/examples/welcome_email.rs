//! Use case 1: a welcome email after a customer registers (`post_save`, `created`), sent by a
//! durable receiver: its job is enqueued in the registration's transaction and run by the
//! shop's worker, running in this program, after the COMMIT; lettre writes real `.eml` files
//! (one per event: `<event id>.eml`) into the printed folder, or sends over SMTP when `SMTP_URL`
//! is set. The use case is `examples/src/usecases/welcome_email.rs`.
//!
//! Receivers of other use cases run too, and the program names them at the end: every receiver
//! of the crate is linked into every program, and registering a customer sends the customer's
//! `pre_save` (heard by `capitalize_name`) and `post_save`. The welcome email listens to that
//! `post_save`, as `create_profile` and `audit_log` do, so it cannot be muted without muting
//! the email: nothing is muted.
//!
//! `cargo run -p examples --example welcome_email`

use examples::run::Run;
use examples::usecases::welcome_email;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), examples::Error> {
    let run = Run::program("welcome_email").await?;
    let (customers, jobs) = run
        .with_worker(run.act("signup-form", welcome_email::run(&run)))
        .await?;
    let customers = customers?;
    println!(
        "\nregistered: {:?}",
        customers.iter().map(|c| &c.name).collect::<Vec<_>>()
    );
    println!(
        "jobs: {} enqueued, {} done; emails to {:?} in {}",
        jobs.enqueued,
        jobs.done,
        run.emails()?,
        run.outbox.display()
    );
    run.print_others(
        "welcome_email",
        "they hear the customer's pre_save, or its post_save as the welcome email does \
         (muting that would mute the email too)",
    );
    Ok(())
}
