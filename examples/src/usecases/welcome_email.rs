//! Use case 1: a welcome email after a customer registers, sent by a durable receiver
//! (`post_save`, `created`, `durable`): the job is inserted in the registration's own
//! transaction, so a rolled-back registration has none and a committed one always has one, and
//! the shop's worker ([`crate::jobs`]) writes the email after the COMMIT, with lettre: an `.eml`
//! file per event in the run's outbox, or SMTP when `SMTP_URL` is set.

use std::time::Duration;

use signals_orm::durable::{Backoff, Job};
use signals_orm::receiver;

use crate::Error;
use crate::jobs::{MAIL_QUEUE, Services};
use crate::mail;
use crate::models::Customer;
use crate::run::Run;
use crate::usecases::register;

/// Idempotent by event id: the job can run twice (a worker killed after writing the file, before
/// the job is marked done), and [`mail::send_once`] names the file (and the SMTP `Message-ID`)
/// after `job.event_id`, the same on every attempt, so a second run rewrites the same mail
/// rather than sending another.
#[receiver(
    post_save, sender = Customer, durable, queue = MAIL_QUEUE, max_attempts = 5,
    backoff = Backoff::Fixed(Duration::from_secs(1))
)]
async fn send_welcome_email(job: Job<Customer>) -> Result<(), Error> {
    if !job.created {
        return Ok(());
    }
    let outbox = &job.data::<Services>()?.outbox;
    let customer = &job.instance;
    let body = format!("Hello {},\n\nwelcome to the Signals Shop.\n", customer.name);
    mail::send_once(
        outbox,
        &job.event_id,
        &customer.email,
        "Welcome to the Signals Shop",
        body,
    )
    .await?;
    Ok(())
}

/// Registers two customers, each of whose transactions enqueues a welcome email; returns them.
/// The emails are written by the shop's worker ([`Run::with_worker`] runs one).
///
/// # Errors
///
/// A failed registration.
pub async fn run(run: &Run) -> Result<Vec<Customer>, Error> {
    let ada = register(&run.db, "ada lovelace", "ada@example.com").await?;
    let grace = register(&run.db, "grace hopper", "grace@example.com").await?;
    Ok(vec![ada, grace])
}
