//! Use case 1: a welcome email after a customer registers, sent only once the registration is
//! committed (`post_save`, `created`, `on_commit`).

use signals_orm::{Committed, receiver};

use crate::mail::{self, MailError};
use crate::models::Customer;

#[receiver(post_save, sender = Customer, on_commit)]
async fn send_welcome_email(ev: Committed<Customer>) -> Result<(), MailError> {
    if !ev.created {
        return Ok(());
    }
    let customer = ev.instance;
    let body = format!("Hello {},\n\nwelcome to the Signals Shop.\n", customer.name);
    mail::send(&customer.email, "Welcome to the Signals Shop", body).await
}
