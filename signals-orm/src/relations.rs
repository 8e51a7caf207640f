//! Foreign keys: what `#[model(foreign_key = Parent, on_delete = ..)]` declares, how the
//! parent learns of it at link time, and the statements the delete collector runs on a child's
//! rows without knowing the child's type (`collector.rs` walks them).
//!
//! Each foreign key field puts one [`Relation`] into `inventory`. A relation carries, for each
//! enabled backend, its operations on the child's rows ([`RelationOps`]), or `None` where the
//! child or the parent cannot be stored in that backend. The rules are in `docs/orm.md`,
//! "Relations and cascades".

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

use futures_util::future::BoxFuture;
use signals_core::{Sender, Signal as _};

use crate::backend::Backend;
use crate::collector::{Collected, Rows};
use crate::error::{Context as _, Operation, OrmError};
use crate::init::Init;
use crate::model::{Model, ModelMeta, Persist};
use crate::model_signals::{PostDeleteSignal, PreDeleteSignal};
use crate::query::{Filter, Query, ROWS_PER_CHUNK};
use crate::sql;
use crate::tx::{IntoDb, Tx};

/// What deleting a parent row does to the rows whose foreign key points at it: Django's
/// `on_delete`, written `#[model(foreign_key = Customer, on_delete = cascade)]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnDelete {
    /// Delete them too, with their `pre_delete` / `post_delete` (Django's `CASCADE`).
    Cascade,
    /// Refuse the whole delete while any exist (Django's `PROTECT`, [`OrmError::Protected`]).
    Protect,
    /// Refuse the whole delete while any exist, unless the same delete also removes them
    /// through a cascade (Django's `RESTRICT`, [`OrmError::Restricted`]).
    Restrict,
    /// Set their key to `NULL`, without save signals (Django's `SET_NULL`); the field is an
    /// `Option`.
    SetNull,
    /// Set their key to the field's `default = ..`, without save signals (Django's
    /// `SET_DEFAULT`).
    SetDefault,
    /// Leave them: the database's own constraint decides (Django's `DO_NOTHING`).
    DoNothing,
}

/// One foreign key, submitted to `inventory` by `derive(Model)` for each
/// `#[model(foreign_key = ..)]` field, so that the parent knows its children at link time.
#[doc(hidden)]
pub struct Relation {
    /// The model that holds the key.
    pub child: fn() -> TypeId,
    /// The model it points at.
    pub parent: fn() -> TypeId,
    /// The child's metadata.
    pub child_meta: &'static ModelMeta,
    /// The parent's metadata.
    pub parent_meta: &'static ModelMeta,
    /// The key's column in the child (0: the child's own key, `i + 1`: field `i`).
    pub column: usize,
    /// What deleting a parent does.
    pub on_delete: OnDelete,
    /// The value `SetNull` / `SetDefault` writes, boxed as the field's type.
    pub value: Option<fn() -> Box<dyn Any + Send + Sync>>,
    /// The child's statements, per enabled backend.
    pub ops: BackendOps,
}

inventory::collect!(Relation);

impl Relation {
    /// The key's field in the child, for errors (`Order.customer_id`).
    pub(crate) fn field(&self) -> &'static str {
        match self.column {
            0 => self.child_meta.pk_field,
            i => self.child_meta.fields[i - 1],
        }
    }
}

/// A relation's operations for each enabled backend (`relation_ops!` fills it in).
#[doc(hidden)]
pub struct BackendOps {
    /// On SQLite, if the child and the parent both fit it.
    #[cfg(feature = "sqlite")]
    pub sqlite: fn() -> Option<&'static dyn RelationOps<sqlx::Sqlite>>,
    /// On PostgreSQL, if the child and the parent both fit it.
    #[cfg(feature = "postgres")]
    pub postgres: fn() -> Option<&'static dyn RelationOps<sqlx::Postgres>>,
}

/// The operations of child `$child` and parent `$parent` on backend `$db`, or `None`
/// (decided where the types are known, by method lookup on a [`Probe`]).
#[doc(hidden)]
#[macro_export]
macro_rules! __probe_ops {
    ($child:ty, $parent:ty, $db:ty) => {
        || {
            #[allow(unused_imports)]
            use $crate::__private::{DoesNotFit as _, Fits as _};
            (&&$crate::__private::Probe::<$child, $parent, $db>::NEW).ops()
        }
    };
}

/// The [`BackendOps`] of child `$child` and parent `$parent`: each backend's operations when
/// both implement `Persist` for it, `None` otherwise.
#[doc(hidden)]
#[cfg(all(feature = "sqlite", feature = "postgres"))]
#[macro_export]
macro_rules! __relation_ops {
    ($child:ty, $parent:ty) => {
        $crate::__private::BackendOps {
            sqlite: $crate::__probe_ops!($child, $parent, $crate::__private::sqlx::Sqlite),
            postgres: $crate::__probe_ops!($child, $parent, $crate::__private::sqlx::Postgres),
        }
    };
}

/// The [`BackendOps`] of child `$child` and parent `$parent` (SQLite only).
#[doc(hidden)]
#[cfg(all(feature = "sqlite", not(feature = "postgres")))]
#[macro_export]
macro_rules! __relation_ops {
    ($child:ty, $parent:ty) => {
        $crate::__private::BackendOps {
            sqlite: $crate::__probe_ops!($child, $parent, $crate::__private::sqlx::Sqlite),
        }
    };
}

/// The [`BackendOps`] of child `$child` and parent `$parent` (PostgreSQL only).
#[doc(hidden)]
#[cfg(all(feature = "postgres", not(feature = "sqlite")))]
#[macro_export]
macro_rules! __relation_ops {
    ($child:ty, $parent:ty) => {
        $crate::__private::BackendOps {
            postgres: $crate::__probe_ops!($child, $parent, $crate::__private::sqlx::Postgres),
        }
    };
}

/// Stands for "child `C` and parent `P` on backend `DB`" in `relation_ops!`, where method
/// lookup picks [`Fits`] when both are `Persist<DB>` and [`DoesNotFit`] otherwise.
#[doc(hidden)]
pub struct Probe<C, P, DB>(Marker<C, P, DB>);

/// Names the three types without owning them.
type Marker<C, P, DB> = PhantomData<fn() -> (C, P, DB)>;

impl<C, P, DB> Probe<C, P, DB> {
    /// The probe.
    pub const NEW: Self = Probe(PhantomData);
}

/// The operations, for a child and a parent that both fit the backend.
#[doc(hidden)]
pub trait Fits<DB: Backend> {
    /// `Some` operations.
    fn ops(&self) -> Option<&'static dyn RelationOps<DB>>;
}

impl<C: Persist<DB>, P: Persist<DB>, DB: Backend> Fits<DB> for &Probe<C, P, DB> {
    fn ops(&self) -> Option<&'static dyn RelationOps<DB>> {
        Some(&Link::<C, P>(PhantomData))
    }
}

/// No operations, for a child or a parent that does not fit the backend.
#[doc(hidden)]
pub trait DoesNotFit<DB: Backend> {
    /// `None`.
    fn ops(&self) -> Option<&'static dyn RelationOps<DB>>;
}

impl<C, P, DB: Backend> DoesNotFit<DB> for Probe<C, P, DB> {
    fn ops(&self) -> Option<&'static dyn RelationOps<DB>> {
        None
    }
}

/// What the collector does with the rows of a relation's child whose key is among some
/// parents' keys (a `Vec<P::Pk>` behind `&dyn Any`), without knowing the child's type.
#[doc(hidden)]
pub trait RelationOps<DB: Backend>: Sync {
    /// Whether `pre_delete` / `post_delete` receivers of the child would run.
    fn listeners(&self) -> (bool, bool);

    /// The children of `parents`: whole rows when `rows`, else only their keys; locked with
    /// `FOR UPDATE` on PostgreSQL.
    fn fetch<'a>(
        &'a self,
        relation: &'static Relation,
        tx: &'a mut Tx<DB>,
        parents: &'a (dyn Any + Send + Sync),
        rows: bool,
    ) -> BoxFuture<'a, Result<Found, OrmError>>;

    /// Deletes the children of `parents`, returning them (with the rows deleted) when
    /// `returning`, else only the count.
    fn delete<'a>(
        &'a self,
        relation: &'static Relation,
        tx: &'a mut Tx<DB>,
        parents: &'a (dyn Any + Send + Sync),
        returning: bool,
    ) -> BoxFuture<'a, Result<(u64, Found), OrmError>>;

    /// Sets the key of the children of `parents` to the relation's value; returns the rows
    /// changed.
    fn update<'a>(
        &'a self,
        relation: &'static Relation,
        tx: &'a mut Tx<DB>,
        parents: &'a (dyn Any + Send + Sync),
    ) -> BoxFuture<'a, Result<u64, OrmError>>;

    /// No rows of the child yet.
    fn empty(&self) -> Box<dyn Rows<DB>>;
}

/// The operations of child `C` with parent `P`.
struct Link<C, P>(PhantomData<fn() -> (C, P)>);

impl<C: Persist<DB>, P: Persist<DB>, DB: Backend> RelationOps<DB> for Link<C, P> {
    fn listeners(&self) -> (bool, bool) {
        let sender = Sender::of::<C>();
        (
            PreDeleteSignal::registry().has_listeners(sender),
            PostDeleteSignal::registry().has_listeners(sender),
        )
    }

    fn fetch<'a>(
        &'a self,
        relation: &'static Relation,
        tx: &'a mut Tx<DB>,
        parents: &'a (dyn Any + Send + Sync),
        rows: bool,
    ) -> BoxFuture<'a, Result<Found, OrmError>> {
        Box::pin(async move {
            let operation = Operation::on::<C>("collect the rows to delete");
            let lock = sql::locks_rows::<DB>();
            let mut found = Collected::<C>::new();
            let whole = rows.then(Init::<C, DB>::new);
            for keys in parent_keys::<P>(parents).chunks(ROWS_PER_CHUNK) {
                let text = sql::select_where_in(
                    C::META,
                    C::sql(),
                    sql::param_prefix::<DB>(),
                    relation.column,
                    keys.len(),
                    rows,
                    lock,
                );
                let query = bind_keys::<P, DB>(DB::query_with_room(text.into(), keys.len()), keys);
                crate::backend::for_each_row(tx.own_conn(), query, operation, |row| {
                    found.add_row::<DB>(row, whole, operation)
                })
                .await?;
            }
            Ok(Box::new(found) as Found)
        })
    }

    fn delete<'a>(
        &'a self,
        relation: &'static Relation,
        tx: &'a mut Tx<DB>,
        parents: &'a (dyn Any + Send + Sync),
        returning: bool,
    ) -> BoxFuture<'a, Result<(u64, Found), OrmError>> {
        Box::pin(async move {
            let operation = Operation::on::<C>("delete");
            let mut deleted = Collected::<C>::new();
            let init = Init::<C, DB>::new();
            let mut count = 0;
            for keys in parent_keys::<P>(parents).chunks(ROWS_PER_CHUNK) {
                let text = sql::delete_where_in(
                    C::META,
                    sql::param_prefix::<DB>(),
                    relation.column,
                    keys.len(),
                    returning,
                );
                let query = bind_keys::<P, DB>(DB::query_with_room(text.into(), keys.len()), keys);
                if returning {
                    count += crate::backend::for_each_row(tx.own_conn(), query, operation, |row| {
                        deleted.push_returned::<DB>(row, init, operation)
                    })
                    .await?;
                } else {
                    count += DB::execute(tx.own_conn(), query).await.during(operation)?;
                }
            }
            Ok((count, Box::new(deleted) as Found))
        })
    }

    fn update<'a>(
        &'a self,
        relation: &'static Relation,
        tx: &'a mut Tx<DB>,
        parents: &'a (dyn Any + Send + Sync),
    ) -> BoxFuture<'a, Result<u64, OrmError>> {
        Box::pin(async move {
            let operation = Operation::on::<C>("update the keys of the rows to keep");
            let Some(make) = relation.value else {
                return Ok(0);
            };
            let value = make();
            let mut count = 0;
            for keys in parent_keys::<P>(parents).chunks(ROWS_PER_CHUNK) {
                let text = sql::update_where_in(
                    C::META,
                    sql::param_prefix::<DB>(),
                    relation.column,
                    keys.len(),
                );
                let query = C::bind_value(
                    relation.column,
                    &*value,
                    DB::query_with_room(text.into(), keys.len() + 1),
                );
                let query = bind_keys::<P, DB>(query, keys);
                count += DB::execute(tx.own_conn(), query).await.during(operation)?;
            }
            Ok(count)
        })
    }

    fn empty(&self) -> Box<dyn Rows<DB>> {
        Box::new(Collected::<C>::new())
    }
}

/// The parents' keys the collector passes as `&dyn Any`.
///
/// # Panics
///
/// If they are not `P`'s: the collector passes each relation its parent's keys.
fn parent_keys<P: Model>(parents: &(dyn Any + Send + Sync)) -> &[P::Pk] {
    parents
        .downcast_ref::<Vec<P::Pk>>()
        .expect("the collector passes each relation its parent's keys")
}

fn bind_keys<'q, P: Persist<DB>, DB: Backend>(
    mut query: sqlx::query::Query<'q, DB, DB::Arguments>,
    keys: &'q [P::Pk],
) -> sqlx::query::Query<'q, DB, DB::Arguments> {
    for key in keys {
        query = P::bind_pk(key, query);
    }
    query
}

/// The relations of the program, by parent, and the children some relation restricts;
/// gathered from `inventory` on first use.
struct Graph {
    dependents: HashMap<TypeId, Vec<&'static Relation>>,
    restricted: Vec<TypeId>,
}

fn graph() -> &'static Graph {
    static GRAPH: OnceLock<Graph> = OnceLock::new();
    GRAPH.get_or_init(|| {
        let mut dependents: HashMap<TypeId, Vec<&'static Relation>> = HashMap::new();
        let mut restricted = Vec::new();
        for relation in inventory::iter::<Relation> {
            dependents
                .entry((relation.parent)())
                .or_default()
                .push(relation);
            if relation.on_delete == OnDelete::Restrict {
                restricted.push((relation.child)());
            }
        }
        // Link order is the linker's: a fixed order keeps signal order the same from build to
        // build.
        for relations in dependents.values_mut() {
            relations.sort_by_key(|r| (r.child_meta.name, r.child_meta.table, r.column));
        }
        Graph {
            dependents,
            restricted,
        }
    })
}

/// The relations whose parent is the model `parent`, in a fixed order.
pub(crate) fn dependents(parent: TypeId) -> &'static [&'static Relation] {
    graph().dependents.get(&parent).map_or(&[], Vec::as_slice)
}

/// Whether deleting rows of `parent` needs the collector: some relation to it does something.
pub(crate) fn collects(parent: TypeId) -> bool {
    dependents(parent)
        .iter()
        .any(|relation| relation.on_delete != OnDelete::DoNothing)
}

/// Whether some `Restrict` relation has `child` as its child.
pub(crate) fn restricted(child: TypeId) -> bool {
    graph().restricted.contains(&child)
}

/// The operations of `relation` on backend `DB`.
///
/// # Errors
///
/// [`OrmError::NotOnBackend`] when the child or the parent cannot be stored in `DB`.
pub(crate) fn ops_of<DB: Backend>(
    relation: &'static Relation,
) -> Result<&'static dyn RelationOps<DB>, OrmError> {
    DB::relation_ops(relation).ok_or(OrmError::NotOnBackend {
        child: relation.child_meta.name,
        field: relation.field(),
        backend: <DB as Backend>::NAME,
    })
}

/// Rows of a relation's child as a statement found them: a `Collected` of the child, behind
/// `dyn Any` because the collector does not know the child's type.
#[doc(hidden)]
pub type Found = Box<dyn Any + Send>;

/// A shared list of keys, passed to the relations of the model they belong to.
pub(crate) type Keys = Arc<dyn Any + Send + Sync>;

/// A model with a foreign key to `P` (only one, or `of` would not know which): generated by
/// `derive(Model)`, it gives [`Model::of`], the rows that point at one parent.
pub trait BelongsTo<P: Model>: Model {
    /// The rows whose key points at the parent with key `parent` (`Order.customer_id == 7`).
    fn parent_filter(parent: P::Pk) -> Filter<Self>;
}

/// The rows of `C` pointing at `parent`; none for a parent without a key.
pub(crate) fn children_of<C: BelongsTo<P>, P: Model>(parent: &P) -> Query<C> {
    match parent.pk() {
        Some(key) => C::filter(C::parent_filter(key)),
        None => C::filter(Filter::nothing()),
    }
}

/// The parent a foreign key points at: `order.customer(&db)`, generated by `derive(Model)` for
/// a key that cannot be `NULL`.
///
/// # Errors
///
/// [`OrmError::DoesNotExist`] when no parent has that key; the database's error.
#[doc(hidden)]
pub async fn parent<'a, P: Persist<DB>, DB: Backend>(
    db: impl IntoDb<'a, DB>,
    key: &'a P::Pk,
) -> Result<P, OrmError> {
    optional_parent(db, Some(key))
        .await?
        .ok_or_else(|| OrmError::DoesNotExist {
            model: P::META.name,
            key: serde_json::to_string(key).unwrap_or_default(),
        })
}

/// The parent a nullable foreign key points at, `None` when it is `NULL` or no parent has
/// that key: generated by `derive(Model)` for an `Option` key.
///
/// # Errors
///
/// The database's error.
#[doc(hidden)]
pub async fn optional_parent<'a, P: Persist<DB>, DB: Backend>(
    db: impl IntoDb<'a, DB>,
    key: Option<&'a P::Pk>,
) -> Result<Option<P>, OrmError> {
    match key {
        Some(key) => <P as crate::writes::ModelExt>::get(db, key).await,
        None => Ok(None),
    }
}
