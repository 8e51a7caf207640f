//! Use case 2: normalise a customer's name before it is saved (`pre_save` changing the row).

use signals_orm::{PreSave, receiver};

use crate::models::Customer;

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
