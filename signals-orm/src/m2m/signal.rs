//! `m2m_changed`: the signal, its event, and the payloads receivers get (typed for one
//! relation, type-erased for every relation).

use std::any::Any;
use std::collections::BTreeSet;
use std::fmt;

use signals_core::__private::{AnySender, Registry};
use signals_core::{BoxError, Signal};

use super::Through;
use crate::model::{AnyModel, Model, ModelMeta};
use crate::model_signals::payload::{narrow, tx_payloads};
use crate::model_signals::pk_text;
use crate::tx::TxHandle;

/// Django's `m2m_changed` actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum M2mAction {
    /// Before links are added.
    PreAdd,
    /// After links are added.
    PostAdd,
    /// Before links are removed.
    PreRemove,
    /// After links are removed.
    PostRemove,
    /// Before all links of the instance are removed.
    PreClear,
    /// After all links of the instance are removed.
    PostClear,
}

impl M2mAction {
    /// Django's name (`pre_add`, ...).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            M2mAction::PreAdd => "pre_add",
            M2mAction::PostAdd => "post_add",
            M2mAction::PreRemove => "pre_remove",
            M2mAction::PostRemove => "post_remove",
            M2mAction::PreClear => "pre_clear",
            M2mAction::PostClear => "post_clear",
        }
    }
}

impl fmt::Display for M2mAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The event behind `m2m_changed` (named only inside the crate).
pub struct M2mEvent<'e> {
    pub(super) instance: &'e dyn AnyModel,
    pub(super) action: M2mAction,
    pub(super) reverse: bool,
    pub(super) model: &'static ModelMeta,
    pub(super) through: &'static str,
    /// `&mut BTreeSet<K>` of the other side's keys; `None` for clear.
    pub(super) pk_set: Option<&'e mut (dyn Any + Send)>,
    pub(super) keys_json: fn(&(dyn Any + Send)) -> Vec<serde_json::Value>,
    pub(super) tx: &'e mut dyn TxHandle,
}

/// Sent around link-table writes (Django's `m2m_changed`); the sender is the relation's
/// [`Through`] type. A failing receiver rolls the whole operation back.
#[derive(Debug, Clone, Copy)]
pub struct M2mChangedSignal;

impl Signal for M2mChangedSignal {
    const NAME: &'static str = "m2m_changed";
    type Event<'e> = M2mEvent<'e>;
    type Reply = ();

    fn reborrow<'s>(ev: &'s mut M2mEvent<'_>) -> M2mEvent<'s> {
        M2mEvent {
            instance: ev.instance,
            action: ev.action,
            reverse: ev.reverse,
            model: ev.model,
            through: ev.through,
            pk_set: match &mut ev.pk_set {
                Some(set) => Some(&mut **set),
                None => None,
            },
            keys_json: ev.keys_json,
            tx: &mut *ev.tx,
        }
    }

    /// `pk` (the instance whose manager was used), `action`, `reverse` and `pk_set` (the
    /// keys as JSON, `-` for clear), for the test kit's recorder.
    fn describe(ev: &M2mEvent<'_>) -> Vec<(&'static str, String)> {
        let pk_set = ev.pk_set.as_deref().map_or_else(
            || "-".to_owned(),
            |set| serde_json::Value::Array((ev.keys_json)(set)).to_string(),
        );
        vec![
            ("pk", pk_text(ev.instance)),
            ("action", ev.action.as_str().to_owned()),
            ("reverse", ev.reverse.to_string()),
            ("pk_set", pk_set),
        ]
    }

    fn registry() -> &'static Registry<Self> {
        signals_core::__signal_registry!(M2mChangedSignal)
    }
}

/// `m2m_changed`'s payload for receivers with `sender = TheThrough`: Django's `action`,
/// `instance`, `reverse`, `model`, `pk_set`, `using`, typed for both directions.
///
/// Built by the ORM for its receivers, and by [`M2mChanged::new`] for a unit test.
#[non_exhaustive]
pub struct M2mChanged<'e, T: Through> {
    /// What is happening.
    pub action: M2mAction,
    /// The instance whose manager was used, and the other side's keys.
    pub side: M2mSide<'e, T>,
    /// The backend.
    pub using: &'static str,
}

/// Which side the manager was used from, with typed instance and keys.
pub enum M2mSide<'e, T: Through> {
    /// From the declaring model (`reverse = false`): keys of targets.
    Forward {
        /// The source instance.
        instance: &'e T::Source,
        /// Target keys: for add only those really inserted (may be empty), for remove every key
        /// passed, `None` for clear. A `pre_*` receiver may change it, and so what is written.
        pk_set: Option<&'e mut BTreeSet<<T::Target as Model>::Pk>>,
    },
    /// From the related model (`reverse = true`): keys of sources.
    Reverse {
        /// The target instance.
        instance: &'e T::Target,
        /// Source keys, with the same rules.
        pk_set: Option<&'e mut BTreeSet<<T::Source as Model>::Pk>>,
    },
}

impl<'e, T: Through> M2mChanged<'e, T> {
    /// An `m2m_changed` payload, to call a receiver directly (a unit test): `action` and
    /// `side` as given, `using = "sqlite"` ([`with_using`](M2mChanged::with_using) changes it).
    /// Where a Django test calls `handler(sender=Post.tags.through, instance=post,
    /// action="pre_add", reverse=False, model=Tag, pk_set={1, 2})`, this is that payload.
    ///
    /// ```
    /// use std::collections::BTreeSet;
    /// use signals_orm::m2m::{M2mAction, M2mChanged, M2mSide};
    /// use signals_orm::{receiver, Model};
    ///
    /// #[derive(Model, sqlx::FromRow, Clone, Debug)]
    /// #[model(table = "posts")]
    /// struct Post { #[model(primary_key)] id: Option<i64>, title: String }
    ///
    /// #[derive(Model, sqlx::FromRow, Clone, Debug)]
    /// #[model(table = "tags")]
    /// struct Tag { #[model(primary_key)] id: Option<i64>, name: String }
    ///
    /// signals_orm::many_to_many! { struct PostTags(Post => "post_id", Tag => "tag_id") in "post_tags"; }
    ///
    /// /// At most three tags per post: drops the extra keys before they are written.
    /// #[receiver(m2m_changed, sender = PostTags)]
    /// fn at_most_three(ev: M2mChanged<'_, PostTags>) {
    ///     let M2mSide::Forward { pk_set: Some(keys), .. } = ev.side else { return };
    ///     while ev.action == M2mAction::PreAdd && keys.len() > 3 {
    ///         keys.pop_last();
    ///     }
    /// }
    ///
    /// let post = Post { id: Some(1), title: "hello".into() };
    /// let mut keys = BTreeSet::from([1, 2, 3, 4, 5]);
    /// let side = M2mSide::Forward { instance: &post, pk_set: Some(&mut keys) };
    /// at_most_three(M2mChanged::new(M2mAction::PreAdd, side));
    /// assert_eq!(keys, BTreeSet::from([1, 2, 3]));
    /// ```
    #[must_use]
    pub fn new(action: M2mAction, side: M2mSide<'e, T>) -> Self {
        M2mChanged {
            action,
            side,
            using: "sqlite",
        }
    }

    /// Sets `using`, the backend's name (`"sqlite"` or `"postgres"`).
    #[must_use]
    pub fn with_using(mut self, using: &'static str) -> Self {
        self.using = using;
        self
    }

    /// Django's `reverse`: true when the manager was used from the related side.
    #[must_use]
    pub fn reverse(&self) -> bool {
        matches!(self.side, M2mSide::Reverse { .. })
    }

    /// Django's `model`: the model of the keys in `pk_set`.
    #[must_use]
    pub fn model(&self) -> &'static ModelMeta {
        if self.reverse() {
            <T::Source as Model>::META
        } else {
            <T::Target as Model>::META
        }
    }
}

impl<T: Through> fmt::Debug for M2mChanged<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("M2mChanged")
            .field("through", &T::NAME)
            .field("action", &self.action)
            .field("reverse", &self.reverse())
            .finish_non_exhaustive()
    }
}

fn keys<K: 'static>(
    set: Option<&mut (dyn Any + Send)>,
) -> Result<Option<&mut BTreeSet<K>>, BoxError> {
    match set {
        None => Ok(None),
        Some(set) => (set as &mut dyn Any)
            .downcast_mut::<BTreeSet<K>>()
            .map(Some)
            .ok_or_else(|| "m2m_changed keys of another type".into()),
    }
}

/// The typed payload and the transaction of an `m2m_changed` event.
fn split<T: Through>(ev: M2mEvent<'_>) -> Result<(M2mChanged<'_, T>, &mut dyn TxHandle), BoxError> {
    let M2mEvent {
        instance,
        action,
        reverse,
        pk_set,
        tx,
        ..
    } = ev;
    let side = if reverse {
        M2mSide::Reverse {
            instance: narrow::<T::Target>(instance)?,
            pk_set: keys(pk_set)?,
        }
    } else {
        M2mSide::Forward {
            instance: narrow::<T::Source>(instance)?,
            pk_set: keys(pk_set)?,
        }
    };
    Ok((
        M2mChanged {
            action,
            side,
            using: tx.backend(),
        },
        tx,
    ))
}

/// `m2m_changed`'s payload for receivers without sender: every relation, type-erased.
#[derive(Debug)]
#[non_exhaustive]
pub struct AnyM2mChanged<'e> {
    /// What is happening.
    pub action: M2mAction,
    /// The relation's name.
    pub through: &'static str,
    /// The instance whose manager was used.
    pub instance: &'e dyn AnyModel,
    /// Django's `reverse`.
    pub reverse: bool,
    /// The model of the keys.
    pub model: &'static ModelMeta,
    /// The keys as JSON, `None` for clear (read-only here).
    pub pk_set: Option<Vec<serde_json::Value>>,
    /// The backend.
    pub using: &'static str,
}

#[expect(
    clippy::unnecessary_wraps,
    reason = "every split function of `tx_payloads!` is fallible"
)]
fn split_any(ev: M2mEvent<'_>) -> Result<(AnyM2mChanged<'_>, &mut dyn TxHandle), BoxError> {
    let M2mEvent {
        instance,
        action,
        reverse,
        model,
        through,
        pk_set,
        keys_json,
        tx,
    } = ev;
    let pk_set = pk_set.map(|set| keys_json(set));
    let payload = AnyM2mChanged {
        action,
        through,
        instance,
        reverse,
        model,
        pk_set,
        using: tx.backend(),
    };
    Ok((payload, tx))
}

tx_payloads! {
    [T: Through,] M2mChangedSignal, T => M2mChanged<'e, T> = split::<T>;
    [] M2mChangedSignal, AnySender => AnyM2mChanged<'e> = split_any;
}

pub(super) fn keys_json<K: serde::Serialize + 'static>(
    set: &(dyn Any + Send),
) -> Vec<serde_json::Value> {
    (set as &dyn Any)
        .downcast_ref::<BTreeSet<K>>()
        .map(|set| set.iter().map(crate::model::json).collect())
        .unwrap_or_default()
}
