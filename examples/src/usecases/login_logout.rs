//! Use case 8: login and logout as custom signals (Django's `user_logged_in` /
//! `user_logged_out`), whose receivers update the customer's `last_login` and `online` fields.

use signals_orm::model_signals::{PostSaveSignal, PreSaveSignal};
use signals_orm::{ModelExt as _, Mute, OrmError, Sender, Signal, receiver};

use crate::db::ShopDb;
use crate::models::{Customer, now};
use crate::run::Run;
use crate::{Error, on_db};

/// A customer logged in.
#[derive(Signal, Debug, Clone)]
#[signal(name = "user_logged_in")]
pub struct UserLoggedIn {
    /// Who.
    pub customer_id: i64,
    /// Where customers live.
    pub db: ShopDb,
}

/// A customer logged out.
#[derive(Signal, Debug, Clone)]
#[signal(name = "user_logged_out")]
pub struct UserLoggedOut {
    /// Who.
    pub customer_id: i64,
    /// Where customers live.
    pub db: ShopDb,
}

async fn update(db: &ShopDb, customer_id: i64, online: bool) -> Result<(), OrmError> {
    on_db!(db, |pool| {
        let Some(mut customer) = Customer::get(pool, &customer_id).await? else {
            return Ok(());
        };
        customer.online = online;
        if online {
            customer.last_login = Some(now());
            customer
                .save_fields(&["online", "last_login"], pool)
                .await?;
        } else {
            customer.save_fields(&["online"], pool).await?;
        }
        Ok(())
    })
}

#[receiver(UserLoggedIn)]
async fn update_last_login(ev: &UserLoggedIn) -> Result<(), OrmError> {
    update(&ev.db, ev.customer_id, true).await
}

#[receiver(UserLoggedOut)]
async fn mark_offline(ev: &UserLoggedOut) -> Result<(), OrmError> {
    update(&ev.db, ev.customer_id, false).await
}

/// Sends a login then a logout of `customer`; returns the customer after each.
///
/// # Errors
///
/// A failed send or fetch.
pub async fn run(run: &Run, customer: &Customer) -> Result<(Customer, Customer), Error> {
    let id = customer.id.ok_or("no key")?;
    let fetch = || async { on_db!(&run.db, |pool| Customer::get(pool, &id).await) };
    signals_orm::send(
        Sender::NONE,
        &UserLoggedIn {
            customer_id: id,
            db: run.db.clone(),
        },
    )
    .await?;
    let after_login = fetch().await?.ok_or("no customer")?;
    signals_orm::send(
        Sender::NONE,
        &UserLoggedOut {
            customer_id: id,
            db: run.db.clone(),
        },
    )
    .await?;
    Ok((after_login, fetch().await?.ok_or("no customer")?))
}

/// What the `login_logout` program mutes around the registration of its customer and [`run`]:
/// the saves of `Customer` (the registration, and the receivers' updates), whose `pre_save` and
/// `post_save` are heard by `capitalize_name`, `create_profile`, `audit_log` and
/// `welcome_email`. What is left is the two custom signals and their receivers.
pub fn mute_others() -> Mute {
    Mute::new()
        .signal_from::<PreSaveSignal, Customer>()
        .signal_from::<PostSaveSignal, Customer>()
}
