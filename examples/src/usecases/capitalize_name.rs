//! Use case 2: normalise a customer's name before it is saved: a `pre_save` receiver changes
//! the instance, and the changed values are what the INSERT writes.

use signals_orm::model_signals::PostSaveSignal;
use signals_orm::{ModelExt as _, Mute, PreSave, receiver};

use crate::models::Customer;
use crate::run::Run;
use crate::usecases::register;
use crate::{Error, on_db};

/// `"  ada   LOVELACE "` becomes `"Ada Lovelace"`, and the email is lower-cased.
#[receiver(pre_save, sender = Customer)]
fn normalise_customer(ev: PreSave<'_, Customer>) {
    let name = ev
        .instance
        .name
        .split_whitespace()
        .map(capitalise)
        .collect::<Vec<_>>()
        .join(" ");
    ev.instance.name = name;
    let email = ev.instance.email.trim().to_lowercase();
    ev.instance.email = email;
}

fn capitalise(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| {
            c.to_uppercase()
                .chain(chars.flat_map(char::to_lowercase))
                .collect()
        })
        .unwrap_or_default()
}

/// Registers a customer typed carelessly; returns the customer as stored.
///
/// # Errors
///
/// A failed save or fetch.
pub async fn run(run: &Run) -> Result<Customer, Error> {
    let saved = register(&run.db, "  edsger   wybe DIJKSTRA ", "EWD@Example.com ").await?;
    let id = saved.id.ok_or("no key")?;
    let stored = on_db!(&run.db, |pool| Customer::get(pool, &id).await)?;
    stored.ok_or_else(|| "the customer vanished".into())
}

/// What the `capitalize_name` program mutes around [`run`]: the registration's `post_save`,
/// heard by the receivers of `create_profile`, `audit_log` and `welcome_email`. Nothing of this
/// use case listens to it, so muting it leaves the `pre_save` receiver alone at work.
pub fn mute_others() -> Mute {
    Mute::new().signal_from::<PostSaveSignal, Customer>()
}
