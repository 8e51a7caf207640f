//! The twelve use cases, one module each, holding everything that use case is made of: its
//! receivers, its custom signals if any, and `run`, the function that drives it (which its
//! program in `examples/`, the shop and the tests call).
//!
//! Receivers are registered at link time: there is no list of them anywhere, and every program
//! linking this crate gets all of them. A program showing one use case therefore also runs the
//! receivers of the others that hear the same signal; each program either mutes those signals
//! or names the receivers that ran and why (see
//! [`Run::print_others`](crate::run::Run::print_others)).

pub mod audit_log;
pub mod capitalize_name;
pub mod create_profile;
pub mod custom_signal;
pub mod delete_customer;
pub mod introspection;
pub mod login_logout;
pub mod order_creation;
pub mod product_cache;
pub mod product_image_cleanup;
pub mod tag_counts;
pub mod welcome_email;

use signals_orm::{ModelExt as _, OrmError};

use crate::db::ShopDb;
use crate::models::Customer;
use crate::on_db;

/// Saves a customer through the pool (its own transaction): how several use cases start.
///
/// # Errors
///
/// The save's error (a receiver's included).
pub async fn register(db: &ShopDb, name: &str, email: &str) -> Result<Customer, OrmError> {
    let mut customer = Customer::new(name, email);
    on_db!(db, |pool| customer.save(pool).await)?;
    Ok(customer)
}
