//! Use case 4: create a profile when a customer is created, in the same transaction
//! (`post_save` taking the transaction). Addresses at `blocked.example` are refused after the
//! profile row is written, so the failure visibly rolls back both rows.

use signals_orm::{AnyTx, BoxError, ModelExt as _, OrmError, PostSave, receiver};

use crate::models::{Customer, Profile};
use crate::run::Run;
use crate::usecases::register;
use crate::{Error, on_tx};

/// The refused email domain.
pub const BLOCKED_DOMAIN: &str = "@blocked.example";

#[receiver(post_save, sender = Customer)]
async fn create_profile(ev: PostSave<'_, Customer>, tx: AnyTx<'_>) -> Result<(), BoxError> {
    if !ev.created {
        return Ok(());
    }
    let customer = ev.instance;
    let mut profile = Profile {
        id: None,
        customer_id: customer.id.unwrap_or_default(),
        bio: format!("{}'s profile", customer.name),
    };
    on_tx!(tx, |t| profile.save(t).await)?;
    if customer.email.ends_with(BLOCKED_DOMAIN) {
        return Err(format!(
            "profiles cannot be created for {BLOCKED_DOMAIN} addresses ({})",
            customer.email
        )
        .into());
    }
    Ok(())
}

/// Registers a customer (who gets a profile) and one at the blocked domain (refused: neither row
/// is kept). Returns the registered customer and the refused registration's error.
///
/// # Errors
///
/// When the registration that should succeed fails, or the refused one succeeds.
pub async fn run(run: &Run) -> Result<(Customer, OrmError), Error> {
    let barbara = register(&run.db, "barbara liskov", "barbara@example.com").await?;
    let refused = register(&run.db, "mallory", "mallory@blocked.example")
        .await
        .err()
        .ok_or("the blocked customer was saved")?;
    Ok((barbara, refused))
}
