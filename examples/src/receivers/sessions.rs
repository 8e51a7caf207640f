//! Use case 8: login and logout as custom signals (Django's `user_logged_in` /
//! `user_logged_out`), updating the customer's `last_login` and `online` fields.

use signals_orm::{ModelExt as _, OrmError, Signal, receiver};

use crate::db::ShopDb;
use crate::models::{Customer, now};
use crate::on_db;

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
