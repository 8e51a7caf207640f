//! Typed settings that a test can override for its own scope, with Django's `setting_changed`
//! sent on entering and leaving the override, so receivers can reset what they cached.
//!
//! Django's `override_settings` changes the process-wide `settings` object; here an override
//! is task-local (thread-local in sync code), so tests running in parallel each see their own
//! value, and the rest of the program the default. The rules are in `docs/dispatch.md`,
//! "Settings and `setting_changed`".

use std::any::Any;
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::SendError;
use crate::signal::Sender;

tokio::task_local! {
    static OVERRIDES: Vec<Override>;
}

/// How many override scopes are alive anywhere: zero keeps [`Setting::get`] to one atomic load
/// and the default.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone)]
struct Override {
    /// The setting's address: settings are `static`s, so it is their identity.
    setting: usize,
    value: Arc<dyn Any + Send + Sync>,
}

/// A typed setting with a default, declared as a `static`, that tests override per scope.
///
/// ```
/// use signals_core::settings::{Setting, SettingChanged};
/// use signals_core::receiver;
///
/// static CURRENCY: Setting<&str> = Setting::new("CURRENCY", || "EUR");
///
/// // Resets a cache when a test changes the setting (Django's `setting_changed`).
/// #[receiver(SettingChanged)]
/// fn reset_price_cache(ev: &SettingChanged) {
///     if ev.setting == "CURRENCY" {
///         println!("currency {} -> {}", if ev.enter { "set" } else { "restored" }, ev.value);
///     }
/// }
///
/// assert_eq!(CURRENCY.get(), "EUR");
/// let seen = CURRENCY.override_sync("CHF", || CURRENCY.get()).unwrap();
/// assert_eq!(seen, "CHF");
/// assert_eq!(CURRENCY.get(), "EUR");
/// ```
pub struct Setting<T: 'static> {
    name: &'static str,
    default: fn() -> T,
}

impl<T: Clone + Debug + Send + Sync + 'static> Setting<T> {
    /// A setting called `name` (what [`SettingChanged::setting`] says) whose value is
    /// `default()` unless overridden.
    #[must_use]
    pub const fn new(name: &'static str, default: fn() -> T) -> Self {
        Setting { name, default }
    }

    /// The setting's name.
    #[must_use]
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The value in force here: the innermost override of the current task (or sync scope),
    /// else the default. One atomic load when no override exists anywhere.
    #[must_use]
    pub fn get(&'static self) -> T {
        if ACTIVE.load(Ordering::Relaxed) > 0
            && let Ok(Some(value)) = OVERRIDES.try_with(|overrides| self.find(overrides))
        {
            return value;
        }
        (self.default)()
    }

    fn find(&'static self, overrides: &[Override]) -> Option<T> {
        let me = std::ptr::from_ref(self) as usize;
        overrides
            .iter()
            .rev()
            .find(|o| o.setting == me)
            .and_then(|o| o.value.downcast_ref::<T>().cloned())
    }

    fn overrides_with(&'static self, value: T) -> Vec<Override> {
        let mut overrides = OVERRIDES.try_with(Clone::clone).unwrap_or_default();
        overrides.push(Override {
            setting: std::ptr::from_ref(self) as usize,
            value: Arc::new(value),
        });
        overrides
    }

    fn changed(&self, value: &T, enter: bool) -> SettingChanged {
        SettingChanged {
            setting: self.name,
            value: format!("{value:?}"),
            enter,
        }
    }

    /// Runs `fut` with the setting overridden to `value` in its task (Django's
    /// `override_settings`), sending [`SettingChanged`] with `enter = true` before and, with
    /// the value in force again, `enter = false` after.
    ///
    /// # Errors
    ///
    /// The first failing `setting_changed` receiver's error; when it is the entering send,
    /// `fut` does not run.
    pub async fn override_in<F: Future>(
        &'static self,
        value: T,
        fut: F,
    ) -> Result<F::Output, SendError> {
        crate::send(Sender::NONE, &self.changed(&value, true)).await?;
        let overrides = self.overrides_with(value);
        let output = {
            let _active = Active::new();
            OVERRIDES.scope(overrides, fut).await
        };
        crate::send(Sender::NONE, &self.changed(&self.get(), false)).await?;
        Ok(output)
    }

    /// [`override_in`](Self::override_in) for synchronous code: `f` runs with the override
    /// on this thread.
    ///
    /// # Errors
    ///
    /// As [`override_in`](Self::override_in); an async `setting_changed` receiver is refused
    /// ([`SendError::AsyncReceiverInSyncSend`]).
    pub fn override_sync<R>(
        &'static self,
        value: T,
        f: impl FnOnce() -> R,
    ) -> Result<R, SendError> {
        crate::send_sync(Sender::NONE, &self.changed(&value, true))?;
        let overrides = self.overrides_with(value);
        let output = {
            let _active = Active::new();
            OVERRIDES.sync_scope(overrides, f)
        };
        crate::send_sync(Sender::NONE, &self.changed(&self.get(), false))?;
        Ok(output)
    }
}

impl<T> Debug for Setting<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Setting")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Sent when a [`Setting`] is overridden and when the override ends (Django's
/// `setting_changed`, whose `enter` says which). Receivers take `&SettingChanged`.
#[derive(crate::Signal, Debug, Clone)]
#[signal(name = "setting_changed", crate = crate)]
#[non_exhaustive]
pub struct SettingChanged {
    /// The setting's name.
    pub setting: &'static str,
    /// The value now in force, as `Debug` prints it.
    pub value: String,
    /// `true` when the override begins, `false` when it ends.
    pub enter: bool,
}

struct Active;

impl Active {
    fn new() -> Self {
        ACTIVE.fetch_add(1, Ordering::Relaxed);
        Active
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        ACTIVE.fetch_sub(1, Ordering::Relaxed);
    }
}
