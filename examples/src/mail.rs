//! Sending email with lettre, from the shop's durable jobs: an `.eml` file per event in the
//! worker's outbox folder by default, SMTP when `SMTP_URL` is set
//! (`smtp://user:pass@host:587?tls=required`, lettre's URL format).
//!
//! # Once per event
//!
//! A durable job runs at least once: a worker killed after writing the mail but before the job
//! was marked done runs it again. [`send_once`] therefore makes the mail's identity the job's
//! event id (the same on every attempt): the file is `outbox/<event id>.eml`, written to a
//! temporary name and renamed into place, so a second run replaces the first file with the same
//! mail instead of adding another, and a reader never sees half a file. Over SMTP the event id
//! is the `Message-ID` (`<event id@signals-shop.example>`), by which receiving systems drop a
//! duplicate; SMTP itself cannot promise once.

use std::path::Path;

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};

/// Why an email was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// An address or header is invalid.
    #[error("cannot build the email: {0}")]
    Build(String),
    /// Writing the `.eml` file failed.
    #[error("cannot write the email file: {0}")]
    File(#[from] std::io::Error),
    /// The SMTP server refused or could not be reached.
    #[error("SMTP: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    /// The receiving relay asked to try again later (greylisting: a first attempt is refused).
    #[error("451 4.7.1 greylisted, try again later (attempt {0})")]
    Greylisted(u32),
}

/// Sends one email from the shop for the event `event_id`, once however often it is called
/// with that id (see the module's documentation): into `outbox` as `<event_id>.eml`, or over
/// SMTP when `SMTP_URL` is set.
///
/// # Errors
///
/// See [`MailError`].
pub async fn send_once(
    outbox: &Path,
    event_id: &str,
    to: &str,
    subject: &str,
    body: String,
) -> Result<(), MailError> {
    if event_id.is_empty() || !event_id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(MailError::Build(format!(
            "event id {event_id:?}: a ULID expected"
        )));
    }
    let from: Mailbox = "Signals Shop <shop@example.com>"
        .parse()
        .map_err(|e| MailError::Build(format!("{e}")))?;
    let to: Mailbox = to
        .parse()
        .map_err(|e| MailError::Build(format!("{to}: {e}")))?;
    let message = Message::builder()
        .message_id(Some(format!("<{event_id}@signals-shop.example>")))
        .from(from)
        .to(to)
        .subject(subject)
        .body(body)
        .map_err(|e| MailError::Build(e.to_string()))?;
    if let Ok(url) = std::env::var("SMTP_URL") {
        AsyncSmtpTransport::<Tokio1Executor>::from_url(&url)?
            .build()
            .send(message)
            .await?;
        return Ok(());
    }
    let file = outbox.join(format!("{event_id}.eml"));
    let partial = outbox.join(format!(".{event_id}.eml.partial"));
    tokio::fs::write(&partial, message.formatted()).await?;
    tokio::fs::rename(&partial, &file).await?;
    Ok(())
}

/// The recipients (`To:` headers) of the `.eml` files in `dir`, sorted.
///
/// # Errors
///
/// When the folder cannot be read.
pub fn recipients(dir: &Path) -> std::io::Result<Vec<String>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "eml") {
            let text = std::fs::read_to_string(&path)?;
            if let Some(to) = text.lines().find_map(|l| l.strip_prefix("To: ")) {
                found.push(to.trim().to_owned());
            }
        }
    }
    found.sort();
    Ok(found)
}
