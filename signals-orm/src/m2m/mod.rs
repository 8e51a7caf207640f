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

use futures_util::future::BoxFuture;

use crate::backend::Backend;
use crate::error::OrmError;
use crate::model::{Model, ModelMeta};
use crate::sql::ThroughSql;
use crate::tx::Tx;

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

    /// Who deletes the link rows: [`NoLinkModel`] when the link table is only a table (the
    /// relation's own statements), the link model itself when it is one (`impl Membership =>
    /// ..`), whose filtered delete then sends its `pre_delete` and `post_delete` for each row
    /// `remove` and `clear` delete, as Django does for a custom `through` model.
    type Link;

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

/// How `remove` and `clear` delete a relation's link rows ([`Through::Link`]).
#[doc(hidden)]
pub trait LinkRows<DB: Backend, S: Model, T: Model> {
    /// Whether the link table is a model, whose filtered delete [`LinkRows::delete`] runs.
    const IS_MODEL: bool;

    /// Deletes the link rows from `source` to `target` (every link of the side given, when one
    /// is `None`) and returns how many; `None` when the relation deletes with its own
    /// statement instead.
    fn delete<'t>(
        tx: &'t mut Tx<DB>,
        source: Option<&'t S::Pk>,
        target: Option<&'t T::Pk>,
    ) -> Option<BoxFuture<'t, Result<u64, OrmError>>>;
}

/// The [`Through::Link`] of a relation whose link table is only a table: its rows are deleted
/// by the relation's own statements, and send no delete signals.
#[derive(Debug, Clone, Copy)]
pub enum NoLinkModel {}

impl<DB: Backend, S: Model, T: Model> LinkRows<DB, S, T> for NoLinkModel {
    const IS_MODEL: bool = false;

    fn delete<'t>(
        _: &'t mut Tx<DB>,
        _: Option<&'t S::Pk>,
        _: Option<&'t T::Pk>,
    ) -> Option<BoxFuture<'t, Result<u64, OrmError>>> {
        None
    }
}

/// The column of `model`'s field `field`: what `many_to_many! { impl Link => (A => a_id, ..) }`
/// reads its link columns from, at compile time.
///
/// # Panics
///
/// At compile time, when `field` is not a saved field (or the key) of the model.
#[doc(hidden)]
#[must_use]
pub const fn column_of(model: &ModelMeta, field: &str) -> &'static str {
    if same(model.pk_field, field) {
        return model.pk_column;
    }
    let mut i = 0;
    while i < model.fields.len() {
        if same(model.fields[i], field) {
            return model.columns[i];
        }
        i += 1;
    }
    panic!("many_to_many!: the link model has no saved field of that name")
}

const fn same(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Declares a many-to-many relation and its link table; the declared type is the
/// `m2m_changed` sender.
///
/// ```ignore
/// signals_orm::many_to_many! {
///     /// Tags of a post.
///     pub struct PostTags(Post => "post_id", Tag => "tag_id") in "post_tags";
/// }
/// // A link table that is a `#[derive(Model)]` of its own (Django's custom `through`), naming
/// // its fields; its table and columns come from the model, extra columns are filled by the
/// // database, and `remove` / `clear` delete its rows with its pre_delete / post_delete:
/// signals_orm::many_to_many! { impl Membership => (Person => person_id, Group => group_id); }
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
    (impl $name:ident => ($src:ty => $sfield:ident, $tgt:ty => $tfield:ident) $(, $sym:ident)? ;) => {
        $crate::many_to_many!(@impl $name, $src,
            $crate::__private::column_of(<$name as $crate::Model>::META, ::core::stringify!($sfield)),
            $tgt,
            $crate::__private::column_of(<$name as $crate::Model>::META, ::core::stringify!($tfield)),
            <$name as $crate::Model>::META.table $(, $sym)?; link = $name);
        impl<DB: $crate::Backend> $crate::__private::LinkRows<DB, $src, $tgt> for $name
        where
            $name: $crate::Persist<DB>,
        {
            const IS_MODEL: bool = true;

            fn delete<'t>(
                tx: &'t mut $crate::Tx<DB>,
                source: ::core::option::Option<&'t <$src as $crate::Model>::Pk>,
                target: ::core::option::Option<&'t <$tgt as $crate::Model>::Pk>,
            ) -> ::core::option::Option<$crate::__private::BoxFuture<'t, ::core::result::Result<u64, $crate::OrmError>>> {
                let columns = <$name as $crate::Model>::columns();
                let mut query = $crate::query::Query::<$name>::new();
                if let ::core::option::Option::Some(source) = source {
                    query = query.filter(columns.$sfield.eq(::core::clone::Clone::clone(source)));
                }
                if let ::core::option::Option::Some(target) = target {
                    query = query.filter(columns.$tfield.eq(::core::clone::Clone::clone(target)));
                }
                ::core::option::Option::Some($crate::__private::Box::pin(async move {
                    ::core::result::Result::Ok(query.delete(tx).await?.total())
                }))
            }
        }
    };
    (@impl $name:ty, $src:ty, $scol:expr, $tgt:ty, $tcol:expr, $table:expr, symmetrical $(; link = $link:ty)?) => {
        const _: fn(&$src) -> &$tgt = |same| same; // a symmetrical relation links one model to itself
        $crate::many_to_many!(@impl $name, $src, $scol, $tgt, $tcol, $table, true $(; link = $link)?);
    };
    (@impl $name:ty, $src:ty, $scol:expr, $tgt:ty, $tcol:expr, $table:expr $(; link = $link:ty)?) => {
        $crate::many_to_many!(@impl $name, $src, $scol, $tgt, $tcol, $table, false $(; link = $link)?);
    };
    (@impl $name:ty, $src:ty, $scol:expr, $tgt:ty, $tcol:expr, $table:expr, $symmetrical:literal) => {
        $crate::many_to_many!(@impl $name, $src, $scol, $tgt, $tcol, $table, $symmetrical; link = $crate::m2m::NoLinkModel);
    };
    (@impl $name:ty, $src:ty, $scol:expr, $tgt:ty, $tcol:expr, $table:expr, $symmetrical:literal; link = $link:ty) => {
        impl $crate::m2m::Through for $name {
            type Source = $src;
            type Target = $tgt;
            type Link = $link;
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
