//! Many-to-many relations through a link table, and `m2m_changed` with Django's action rules
//! (`docs/orm.md`, "Many-to-many").
//!
//! A relation is a type implementing [`Through`] (declared with [`many_to_many!`]); it is the
//! signal's sender, as Django's `through` model is. Its managers (`PostTags::of(&post)` from
//! the declaring side, `PostTags::of_target(&tag)` from the other; [`Through::of`] and
//! [`Through::of_target`] through the trait) add, remove, clear and set links, each all or
//! nothing (in one transaction, or, for an add nobody listens to, its one statement), and fetch
//! the related objects. Receivers take [`M2mChanged`] (one relation) or [`AnyM2mChanged`]
//! (every relation).
//!
//! [`many_to_many!`]: crate::many_to_many

mod related;
mod signal;

use crate::model::Model;
use crate::sql::ThroughSql;

pub use crate::sql::LINKS_PER_INSERT;
pub use related::{Direction, Forward, Related, Reverse};
pub use signal::{AnyM2mChanged, M2mAction, M2mChanged, M2mChangedSignal, M2mSide};

/// A many-to-many relation: the link table between `Source` (the side that declares it) and
/// `Target`. Implemented by [`many_to_many!`](crate::many_to_many).
pub trait Through: Send + Sync + 'static {
    /// The declaring model (Django: the model with the `ManyToManyField`).
    type Source: Model;
    /// The related model.
    type Target: Model;
    /// The relation's name (the through type's).
    const NAME: &'static str;
    /// Whether a self-relation links both ways (Django's `symmetrical`).
    const SYMMETRICAL: bool;
    /// The link table.
    const TABLE: &'static str;
    /// The link table's column holding the source's key.
    const SOURCE_COLUMN: &'static str;
    /// The link table's column holding the target's key.
    const TARGET_COLUMN: &'static str;

    /// The link table's statements, built on first use and kept.
    #[doc(hidden)]
    fn sql() -> &'static ThroughSql;

    /// The manager of `instance`'s links to targets (Django's `post.tags`).
    fn of(instance: &Self::Source) -> Related<'_, Self, Forward>
    where
        Self: Sized,
    {
        Related::new(instance)
    }

    /// The manager of `instance`'s links from sources (Django's reverse `tag.posts`).
    fn of_target(instance: &Self::Target) -> Related<'_, Self, Reverse>
    where
        Self: Sized,
    {
        Related::new(instance)
    }
}

/// Declares a many-to-many relation and its link table; the declared type is the
/// `m2m_changed` sender.
///
/// ```ignore
/// signals_orm::many_to_many! {
///     /// Tags of a post.
///     pub struct PostTags(Post => "post_id", Tag => "tag_id") in "post_tags";
/// }
/// // A user's own `#[derive(Model)]` link type, extra columns filled by the database:
/// signals_orm::many_to_many! { impl Membership => (Person => "person_id", Group => "group_id") in "memberships"; }
/// // A symmetrical self-relation:
/// signals_orm::many_to_many! { pub struct Friends(Person => "person_id", Person => "friend_id") in "friends", symmetrical; }
/// ```
///
/// The declared type gets the managers as inherent functions, `PostTags::of(&post)` and
/// `PostTags::of_target(&tag)`, so callers need not import [`Through`](crate::m2m::Through)
/// (with `impl MyLinkModel => ...`, that type must not have functions of those names).
///
/// The link table needs a unique key on (source, target): adds use `ON CONFLICT DO NOTHING`.
/// Table and column names are quoted, so any name works, even one containing `"`.
#[macro_export]
macro_rules! many_to_many {
    ($(#[$meta:meta])* $vis:vis struct $name:ident ($src:ty => $scol:literal, $tgt:ty => $tcol:literal) in $table:literal $(, $sym:ident)? ;) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        $vis struct $name;
        $crate::many_to_many!(@impl $name, $src, $scol, $tgt, $tcol, $table $(, $sym)?);
    };
    (impl $name:path => ($src:ty => $scol:literal, $tgt:ty => $tcol:literal) in $table:literal $(, $sym:ident)? ;) => {
        $crate::many_to_many!(@impl $name, $src, $scol, $tgt, $tcol, $table $(, $sym)?);
    };
    (@impl $name:ty, $src:ty, $scol:literal, $tgt:ty, $tcol:literal, $table:literal, symmetrical) => {
        const _: fn(&$src) -> &$tgt = |same| same; // a symmetrical relation links one model to itself
        $crate::many_to_many!(@impl $name, $src, $scol, $tgt, $tcol, $table, true);
    };
    (@impl $name:ty, $src:ty, $scol:literal, $tgt:ty, $tcol:literal, $table:literal) => {
        $crate::many_to_many!(@impl $name, $src, $scol, $tgt, $tcol, $table, false);
    };
    (@impl $name:ty, $src:ty, $scol:literal, $tgt:ty, $tcol:literal, $table:literal, $symmetrical:literal) => {
        impl $crate::m2m::Through for $name {
            type Source = $src;
            type Target = $tgt;
            const NAME: &'static str = ::core::stringify!($name);
            const SYMMETRICAL: bool = $symmetrical;
            const TABLE: &'static str = $table;
            const SOURCE_COLUMN: &'static str = $scol;
            const TARGET_COLUMN: &'static str = $tcol;
            fn sql() -> &'static $crate::__private::ThroughSql {
                static SQL: $crate::__private::OnceLock<$crate::__private::ThroughSql> =
                    $crate::__private::OnceLock::new();
                SQL.get_or_init(|| {
                    $crate::__private::ThroughSql::new(
                        <Self as $crate::m2m::Through>::TABLE,
                        <Self as $crate::m2m::Through>::SOURCE_COLUMN,
                        <Self as $crate::m2m::Through>::TARGET_COLUMN,
                    )
                })
            }
        }

        // The managers again, as inherent functions: `PostTags::of(&post)` works without
        // `use signals_orm::m2m::Through` in scope.
        #[allow(dead_code, reason = "a relation may be used from one side only")]
        impl $name {
            /// The manager of `instance`'s links to targets (Django's `post.tags`); the same as
            /// `Through::of`, callable without importing the trait.
            #[must_use]
            pub fn of(
                instance: &$src,
            ) -> $crate::m2m::Related<'_, Self, $crate::m2m::Forward> {
                <Self as $crate::m2m::Through>::of(instance)
            }

            /// The manager of `instance`'s links from sources (Django's reverse `tag.posts`);
            /// the same as `Through::of_target`, callable without importing the trait.
            #[must_use]
            pub fn of_target(
                instance: &$tgt,
            ) -> $crate::m2m::Related<'_, Self, $crate::m2m::Reverse> {
                <Self as $crate::m2m::Through>::of_target(instance)
            }
        }
    };
}
