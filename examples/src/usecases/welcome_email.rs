//! Use case 1: a welcome email after a customer registers, sent only once the registration is
//! committed (`post_save`, `created`, `on_commit`), with lettre: `.eml` files in the run's
//! outbox, or SMTP when `SMTP_URL` is set.

use signals_orm::{Committed, receiver};

use crate::Error;
use crate::mail::{self, MailError};
use crate::models::Customer;
use crate::run::Run;
use crate::usecases::register;

#[receiver(post_save, sender = Customer, on_commit)]
async fn send_welcome_email(ev: Committed<Customer>) -> Result<(), MailError> {
    if !ev.created {
        return Ok(());
    }
    let customer = ev.instance;
    let body = format!("Hello {},\n\nwelcome to the Signals Shop.\n", customer.name);
    mail::send(&customer.email, "Welcome to the Signals Shop", body).await
}

/// Registers two customers, each of whom gets a welcome email after COMMIT; returns them.
///
/// # Errors
///
/// A failed registration.
pub async fn run(run: &Run) -> Result<Vec<Customer>, Error> {
    let ada = register(&run.db, "ada lovelace", "ada@example.com").await?;
    let grace = register(&run.db, "grace hopper", "grace@example.com").await?;
    Ok(vec![ada, grace])
}
