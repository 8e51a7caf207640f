//! Use case 4: create a profile when a customer is created, in the same transaction. Addresses
//! at `blocked.example` are refused after the profile row is written, so the failure visibly
//! rolls back both rows.

use signals_orm::{AnyTx, BoxError, ModelExt as _, PostSave, receiver};

use crate::models::{Customer, Profile};
use crate::on_tx;

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
