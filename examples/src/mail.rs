//! Sending email with lettre: `.eml` files into a folder by default, SMTP when `SMTP_URL` is
//! set (`smtp://user:pass@host:587?tls=required`, lettre's URL format).
//!
//! The outbox is task-local, so parallel tests write to folders of their own.

use std::path::{Path, PathBuf};

use lettre::message::Mailbox;
use lettre::transport::file::AsyncFileTransport;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};

tokio::task_local! {
    static OUTBOX: PathBuf;
}

/// Why an email was not sent.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// An address or header is invalid.
    #[error("cannot build the email: {0}")]
    Build(String),
    /// Writing the `.eml` file failed.
    #[error("cannot write the email file: {0}")]
    File(#[from] lettre::transport::file::Error),
    /// The SMTP server refused or could not be reached.
    #[error("SMTP: {0}")]
    Smtp(#[from] lettre::transport::smtp::Error),
    /// Neither `SMTP_URL` nor an outbox folder is configured.
    #[error("no outbox: run inside mail::with_outbox or set SMTP_URL")]
    NoOutbox,
}

/// Runs `fut` with `.eml` files going to `dir`.
pub async fn with_outbox<F: Future>(dir: &Path, fut: F) -> F::Output {
    OUTBOX.scope(dir.to_path_buf(), fut).await
}

/// Sends one email from the shop.
///
/// # Errors
///
/// See [`MailError`].
pub async fn send(to: &str, subject: &str, body: String) -> Result<(), MailError> {
    let from: Mailbox = "Signals Shop <shop@example.com>"
        .parse()
        .map_err(|e| MailError::Build(format!("{e}")))?;
    let to: Mailbox = to
        .parse()
        .map_err(|e| MailError::Build(format!("{to}: {e}")))?;
    let message = Message::builder()
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
    let dir = OUTBOX
        .try_with(Clone::clone)
        .map_err(|_| MailError::NoOutbox)?;
    AsyncFileTransport::<Tokio1Executor>::new(dir)
        .send(message)
        .await?;
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
