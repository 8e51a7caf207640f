//! Django's deletion collector: what a delete of a model with dependents does, in Django's
//! order.
//!
//! 1. Collect, depth first from the rows asked for: for each relation to a collected model
//!    (`relations.rs`), one query per relation and level finds the children of the rows
//!    collected last; cascaded children are collected in turn (each row once, so cycles and
//!    self-references end), `protect` and `restrict` children are noted, `set_null` /
//!    `set_default` updates are scheduled. A cascaded child with no `pre_delete` receiver and
//!    nothing below it is not read at all: it is deleted by its foreign key at its turn.
//! 2. Refuse, before any signal, if a protected row exists or a restricted row is not
//!    collected through a cascade.
//! 3. Order the models so that children come before their parents.
//! 4. `pre_delete` for every collected row, model by model, by ascending key; the deletes of
//!    children nobody hears; the key updates (no save signals); then model by model the DELETE
//!    and `post_delete` for each row by descending key.
//!
//! Rows are read with only their keys unless a `pre_delete` receiver needs them whole;
//! `post_delete` then gets them from `DELETE .. RETURNING`. The rules are in `docs/orm.md`,
//! "Relations and cascades".

use std::any::{Any, TypeId};
use std::collections::BTreeSet;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use signals_core::{Sender, Signal as _};

use crate::backend::Backend;
use crate::error::{Blocking, Context as _, Operation, OrmError};
use crate::init::Init;
use crate::model::{Model, ModelMeta, Persist};
use crate::model_signals::payload::Origin;
use crate::model_signals::{DeleteEvent, PostDeleteSignal, PreDeleteSignal};
use crate::query::{Deleted, Query};
use crate::relations::{self, Found, Keys, OnDelete, Relation, RelationOps};
use crate::sql;
use crate::tx::Tx;

/// What `delete` was called on.
pub(crate) enum Root<'a, M> {
    Instance(&'a M),
    Query(&'a Query<M>),
}

/// Deletes `root` and everything its relations reach, with their signals, inside `tx`.
///
/// # Errors
///
/// [`OrmError::Protected`] / [`OrmError::Restricted`] before any signal or write (only
/// SELECTs ran); the database's error or a receiver's, after which the transaction holds a
/// partial delete and must roll back (`atomically!` marks a caller's).
pub(crate) async fn delete<M: Persist<DB>, DB: Backend>(
    tx: &mut Tx<DB>,
    root: Root<'_, M>,
) -> Result<Deleted, OrmError> {
    let sender = Sender::of::<M>();
    let pre = PreDeleteSignal::registry().has_listeners(sender);
    let post = PostDeleteSignal::registry().has_listeners(sender);
    let mut rows = Collected::<M>::new();
    let origin = match root {
        Root::Instance(instance) => {
            rows.push_borrowed(instance);
            Origin::Instance(instance)
        }
        Root::Query(query) => {
            let operation = Operation::on::<M>("collect the rows to delete");
            let lock = sql::locks_rows::<DB>();
            let selected = if pre {
                sql::Selected::Locked(lock)
            } else {
                sql::Selected::LockedKeys(lock)
            };
            let statement = crate::query::built::<M, DB>(sql::select(
                M::META,
                sql::param_prefix::<DB>(),
                M::sql(),
                query,
                selected,
            ));
            let whole = pre.then(Init::<M, DB>::new);
            crate::backend::for_each_row(tx.own_conn(), statement, operation, |row| {
                rows.add_row::<DB>(row, whole, operation)
            })
            .await?;
            Origin::Query(query)
        }
    };
    if rows.keys.is_empty() {
        return Ok(Deleted::default());
    }
    let keys = rows.keys();
    let mut collector = Collector {
        entries: vec![Entry {
            model: TypeId::of::<M>(),
            rows: Box::new(rows),
            pre,
            post,
        }],
        deferred: Vec::new(),
        updates: Vec::new(),
        protected: Vec::new(),
        restricted: Vec::new(),
    };
    collector.collect(tx, TypeId::of::<M>(), keys).await?;
    collector.refuse()?;
    let order = collector.order();
    collector.run(tx, &order, origin).await
}

/// Everything a delete will do, gathered before any of it is done.
struct Collector<'a, DB: Backend> {
    /// The collected rows of each model, in the order the models were first reached.
    entries: Vec<Entry<'a, DB>>,
    /// Cascaded children deleted by their foreign key: no `pre_delete` receiver, nothing
    /// below them.
    deferred: Vec<ByParent<DB>>,
    /// `set_null` / `set_default` updates.
    updates: Vec<ByParent<DB>>,
    /// Rows of `protect` relations that exist.
    protected: Vec<Blocking>,
    /// Rows of `restrict` relations, allowed only if collected through a cascade.
    restricted: Vec<Restricted<DB>>,
}

/// The rows of a `restrict` relation that point at collected rows.
struct Restricted<DB: Backend> {
    relation: &'static Relation,
    ops: &'static dyn RelationOps<DB>,
    found: Found,
}

/// The rows of one model to delete.
struct Entry<'a, DB: Backend> {
    model: TypeId,
    rows: Box<dyn Rows<DB> + 'a>,
    pre: bool,
    post: bool,
}

/// A statement on a relation's children chosen by their parents' keys.
struct ByParent<DB: Backend> {
    relation: &'static Relation,
    ops: &'static dyn RelationOps<DB>,
    parents: Keys,
}

/// A model whose relations are being followed, and the keys of its rows newly collected.
struct Frame {
    relations: &'static [&'static Relation],
    keys: Keys,
    next: usize,
}

impl<'a, DB: Backend> Collector<'a, DB> {
    /// Follows the relations from `model`'s rows `keys`, depth first as Django does (so the
    /// models come in its order), with an explicit stack so a deep tree cannot overflow.
    async fn collect(
        &mut self,
        tx: &mut Tx<DB>,
        model: TypeId,
        keys: Keys,
    ) -> Result<(), OrmError> {
        let mut stack = vec![Frame {
            relations: relations::dependents(model),
            keys,
            next: 0,
        }];
        while let Some(frame) = stack.last_mut() {
            let Some(&relation) = frame.relations.get(frame.next) else {
                stack.pop();
                continue;
            };
            frame.next += 1;
            let parents = Arc::clone(&frame.keys);
            if relation.on_delete == OnDelete::DoNothing {
                continue;
            }
            let ops = relations::ops_of::<DB>(relation)?;
            match relation.on_delete {
                OnDelete::DoNothing => {}
                OnDelete::SetNull | OnDelete::SetDefault => self.updates.push(ByParent {
                    relation,
                    ops,
                    parents,
                }),
                OnDelete::Protect => {
                    let found = ops.fetch(relation, tx, &*parents, false).await?;
                    let keys = ops.empty().missing(&*found);
                    if !keys.is_empty() {
                        self.protected.push(Blocking::new(relation, keys));
                    }
                }
                OnDelete::Restrict => {
                    let found = ops.fetch(relation, tx, &*parents, false).await?;
                    self.restricted.push(Restricted {
                        relation,
                        ops,
                        found,
                    });
                }
                OnDelete::Cascade => {
                    let child = (relation.child)();
                    let (pre, post) = ops.listeners();
                    let index = self.entry(child, ops, pre, post);
                    if !pre && !relations::collects(child) && !relations::restricted(child) {
                        self.deferred.push(ByParent {
                            relation,
                            ops,
                            parents,
                        });
                        continue;
                    }
                    let found = ops.fetch(relation, tx, &*parents, pre).await?;
                    if let Some(keys) = self.entries[index].rows.merge(found) {
                        stack.push(Frame {
                            relations: relations::dependents(child),
                            keys,
                            next: 0,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The index of `model`'s entry, made if it has none.
    fn entry(
        &mut self,
        model: TypeId,
        ops: &'static dyn RelationOps<DB>,
        pre: bool,
        post: bool,
    ) -> usize {
        if let Some(index) = self.entries.iter().position(|e| e.model == model) {
            return index;
        }
        self.entries.push(Entry {
            model,
            rows: ops.empty(),
            pre,
            post,
        });
        self.entries.len() - 1
    }

    /// Fails if a protected row exists, or a restricted row is not also being deleted.
    fn refuse(&self) -> Result<(), OrmError> {
        if !self.protected.is_empty() {
            return Err(OrmError::Protected {
                blocking: self.protected.clone(),
            });
        }
        let mut blocking = Vec::new();
        for Restricted {
            relation,
            ops,
            found,
        } in &self.restricted
        {
            let child = (relation.child)();
            let keys = match self.entries.iter().find(|e| e.model == child) {
                Some(entry) => entry.rows.missing(&**found),
                None => ops.empty().missing(&**found),
            };
            if !keys.is_empty() {
                blocking.push(Blocking::new(relation, keys));
            }
        }
        if blocking.is_empty() {
            Ok(())
        } else {
            Err(OrmError::Restricted { blocking })
        }
    }

    /// The entries' indexes with each model after the collected models whose foreign keys
    /// point at it, otherwise in the order they were reached; where a cycle between models
    /// leaves no such order, the model reached last goes first.
    ///
    /// Django orders by the cascades it followed and relies on its constraints being checked
    /// at COMMIT (keeping the order reached on a cycle); here every foreign key between two
    /// collected models counts (but `set_null` / `set_default` ones, updated before any
    /// DELETE), so that a schema whose constraints are checked per statement is deleted in an
    /// order it accepts.
    fn order(&self) -> Vec<usize> {
        let mut dependencies: Vec<(TypeId, TypeId)> = Vec::new();
        for parent in &self.entries {
            for relation in relations::dependents(parent.model) {
                let child = (relation.child)();
                if child != parent.model
                    && !matches!(relation.on_delete, OnDelete::SetNull | OnDelete::SetDefault)
                    && self.entries.iter().any(|e| e.model == child)
                {
                    dependencies.push((parent.model, child));
                }
            }
        }
        let mut sorted: Vec<usize> = Vec::with_capacity(self.entries.len());
        while sorted.len() < self.entries.len() {
            let mut found = false;
            for (index, entry) in self.entries.iter().enumerate() {
                if sorted.contains(&index) {
                    continue;
                }
                let waits = dependencies.iter().any(|&(parent, child)| {
                    parent == entry.model
                        && !sorted.iter().any(|&done| self.entries[done].model == child)
                });
                if !waits {
                    sorted.push(index);
                    found = true;
                }
            }
            if !found {
                // A cycle between models: the model reached last goes first (a cascade
                // reaches children after their parents), and the rest is sorted again.
                let last = (0..self.entries.len())
                    .rev()
                    .find(|index| !sorted.contains(index))
                    .expect("an entry is left while fewer are sorted than exist");
                sorted.push(last);
            }
        }
        sorted
    }

    /// Whether `post_delete` receivers hear the child of `relation` (a collected model).
    fn heard(&self, relation: &Relation) -> bool {
        let child = (relation.child)();
        self.entries.iter().any(|e| e.model == child && e.post)
    }

    /// Sends the signals and runs the statements, in Django's order.
    async fn run(
        mut self,
        tx: &mut Tx<DB>,
        order: &[usize],
        origin: Origin<'a>,
    ) -> Result<Deleted, OrmError> {
        let mut deleted = Deleted::default();
        for &index in order {
            let entry = &self.entries[index];
            if entry.pre {
                entry.rows.send_pre(tx, origin).await?;
            }
        }
        let unheard: Vec<bool> = self
            .deferred
            .iter()
            .map(|d| !self.heard(d.relation))
            .collect();
        for (fast, _) in self
            .deferred
            .iter()
            .zip(unheard)
            .filter(|(_, unheard)| *unheard)
        {
            let (rows, _) = fast
                .ops
                .delete(fast.relation, tx, &*fast.parents, false)
                .await?;
            if rows > 0 {
                deleted.add(fast.relation.child_meta.name, rows);
            }
        }
        for update in &self.updates {
            update
                .ops
                .update(update.relation, tx, &*update.parents)
                .await?;
        }
        for &index in order {
            let entry = &mut self.entries[index];
            let mut rows = entry.rows.delete(tx, entry.post).await?;
            for heard in &self.deferred {
                if !entry.post || (heard.relation.child)() != entry.model {
                    continue;
                }
                let (count, found) = heard
                    .ops
                    .delete(heard.relation, tx, &*heard.parents, true)
                    .await?;
                entry.rows.absorb(found);
                rows += count;
            }
            if rows > 0 || entry.rows.key_count() > 0 {
                deleted.add(entry.rows.meta().name, rows);
            }
            if entry.post {
                entry.rows.send_post(tx, origin).await?;
            }
        }
        Ok(deleted)
    }
}

/// The collected rows of one model, without its type: what the collector asks of them.
#[doc(hidden)]
pub trait Rows<DB: Backend>: Send {
    /// The model's metadata.
    fn meta(&self) -> &'static ModelMeta;
    /// How many rows were collected by key.
    fn key_count(&self) -> usize;
    /// Adds the rows `found` (a `Collected` of the same model) not already here; returns the
    /// keys of those added, or `None` if none was new.
    fn merge(&mut self, found: Found) -> Option<Keys>;
    /// Adds rows a `DELETE .. RETURNING` returned, for their `post_delete`.
    fn absorb(&mut self, deleted: Found);
    /// The keys (as JSON) of the rows in `found` that are not here.
    fn missing(&self, found: &(dyn Any + Send)) -> Vec<serde_json::Value>;
    /// `pre_delete` for each row, by ascending key.
    fn send_pre<'s>(
        &'s self,
        tx: &'s mut Tx<DB>,
        origin: Origin<'s>,
    ) -> BoxFuture<'s, Result<(), OrmError>>;
    /// Deletes the rows by key, deepest collected first; with `post` and rows known only by
    /// their key, returns them whole for `post_delete`. Returns the rows deleted.
    fn delete<'s>(
        &'s mut self,
        tx: &'s mut Tx<DB>,
        post: bool,
    ) -> BoxFuture<'s, Result<u64, OrmError>>;
    /// `post_delete` for each row, by descending key.
    fn send_post<'s>(
        &'s self,
        tx: &'s mut Tx<DB>,
        origin: Origin<'s>,
    ) -> BoxFuture<'s, Result<(), OrmError>>;
}

/// Rows of model `C`: keys in the order collected, and the instances when they were read
/// whole (or are the root instance, borrowed).
pub(crate) struct Collected<'a, C: Model> {
    keys: Vec<C::Pk>,
    seen: BTreeSet<C::Pk>,
    items: Vec<Item<'a, C>>,
}

enum Item<'a, C> {
    Owned(C),
    Borrowed(&'a C),
}

impl<C> Item<'_, C> {
    fn get(&self) -> &C {
        match self {
            Item::Owned(item) => item,
            Item::Borrowed(item) => item,
        }
    }
}

impl<'a, C: Model> Collected<'a, C> {
    pub(crate) fn new() -> Self {
        Collected {
            keys: Vec::new(),
            seen: BTreeSet::new(),
            items: Vec::new(),
        }
    }

    fn push_borrowed(&mut self, instance: &'a C) {
        if let Some(key) = instance.pk()
            && self.seen.insert(key.clone())
        {
            self.keys.push(key);
            self.items.push(Item::Borrowed(instance));
        }
    }

    /// Adds `row` unless already here: whole (built with `whole`, which sends its
    /// `post_init`) when given, else a row of which only the key was selected.
    pub(crate) fn add_row<DB: Backend>(
        &mut self,
        row: &DB::Row,
        whole: Option<Init<C, DB>>,
        operation: Operation,
    ) -> Result<(), OrmError>
    where
        C: Persist<DB>,
    {
        if let Some(init) = whole {
            // The key first: a row already here is not built again (nor sent `post_init`).
            let key = C::pk_from_row(row).during(operation)?;
            if self.seen.insert(key.clone()) {
                self.keys.push(key);
                self.items.push(Item::Owned(init.decode(row, operation)?));
            }
        } else {
            let key = C::pk_from_row(row).during(operation)?;
            if self.seen.insert(key.clone()) {
                self.keys.push(key);
            }
        }
        Ok(())
    }

    /// Adds a row a `DELETE .. RETURNING` returned, for its `post_delete` only: a deleted row
    /// comes back once, so it needs no key bookkeeping.
    pub(crate) fn push_returned<DB: Backend>(
        &mut self,
        row: &DB::Row,
        init: Init<C, DB>,
        operation: Operation,
    ) -> Result<(), OrmError>
    where
        C: Persist<DB>,
    {
        self.items.push(Item::Owned(init.decode(row, operation)?));
        Ok(())
    }

    fn keys(&self) -> Keys {
        Arc::new(self.keys.clone())
    }

    /// The instances in key order (ascending).
    fn sorted(&self) -> Vec<&C> {
        let mut items: Vec<&C> = self.items.iter().map(Item::get).collect();
        items.sort_by_cached_key(|item| item.pk());
        items
    }
}

/// A `Collected` passed as `dyn Any`.
///
/// # Panics
///
/// If it is another model's: each relation returns its own child's rows.
fn expect_collected<C: Model>(found: Found) -> Collected<'static, C> {
    *found
        .downcast()
        .expect("a relation returns rows of its own child")
}

impl<C: Persist<DB>, DB: Backend> Rows<DB> for Collected<'_, C> {
    fn meta(&self) -> &'static ModelMeta {
        C::META
    }

    fn key_count(&self) -> usize {
        self.keys.len()
    }

    fn merge(&mut self, found: Found) -> Option<Keys> {
        let found = expect_collected::<C>(found);
        let Collected { keys, items, .. } = found;
        let mut added = Vec::new();
        if items.is_empty() {
            for key in keys {
                if self.seen.insert(key.clone()) {
                    self.keys.push(key.clone());
                    added.push(key);
                }
            }
        } else {
            for (key, item) in keys.into_iter().zip(items) {
                if self.seen.insert(key.clone()) {
                    self.keys.push(key.clone());
                    self.items.push(item);
                    added.push(key);
                }
            }
        }
        (!added.is_empty()).then(|| Arc::new(added) as Keys)
    }

    fn absorb(&mut self, deleted: Found) {
        let deleted = expect_collected::<C>(deleted);
        self.items.extend(deleted.items);
    }

    fn missing(&self, found: &(dyn Any + Send)) -> Vec<serde_json::Value> {
        let found = found
            .downcast_ref::<Collected<'static, C>>()
            .expect("a relation returns rows of its own child");
        found
            .keys
            .iter()
            .filter(|key| !self.seen.contains(*key))
            .map(crate::model::json)
            .collect()
    }

    fn send_pre<'s>(
        &'s self,
        tx: &'s mut Tx<DB>,
        origin: Origin<'s>,
    ) -> BoxFuture<'s, Result<(), OrmError>> {
        Box::pin(send_each::<PreDeleteSignal, C, DB>(
            self.sorted(),
            tx,
            origin,
        ))
    }

    fn delete<'s>(
        &'s mut self,
        tx: &'s mut Tx<DB>,
        post: bool,
    ) -> BoxFuture<'s, Result<u64, OrmError>> {
        Box::pin(async move {
            let operation = Operation::on::<C>("delete");
            // Rows collected by key only come back whole from the DELETE for `post_delete`;
            // those read whole before (or the root instance) are not read again.
            let returning = post && self.items.len() < self.keys.len();
            let whole: BTreeSet<C::Pk> = if returning {
                self.items
                    .iter()
                    .filter_map(|item| item.get().pk())
                    .collect()
            } else {
                BTreeSet::new()
            };
            let mut count = 0;
            // As many keys per statement as the database binds, so that a self-referencing
            // table's rows go in one statement (its constraint is checked at the statement's
            // end) up to that many; beyond, deepest first: a row collected later through the
            // self-reference is a descendant, deleted before its ancestors.
            let keys: Vec<&C::Pk> = self.keys.iter().rev().collect();
            let mut returned = Vec::new();
            let init = Init::<C, DB>::new();
            for chunk in keys.chunks(DB::MAX_BIND_PARAMETERS) {
                let text = sql::delete_where_in(
                    C::META,
                    sql::param_prefix::<DB>(),
                    0,
                    chunk.len(),
                    returning,
                );
                let mut query = DB::query_with_room(text.into(), chunk.len());
                for key in chunk {
                    query = C::bind_pk(key, query);
                }
                if returning {
                    count += crate::backend::for_each_row(tx.own_conn(), query, operation, |row| {
                        // The key first (`RETURNING` lists it first): a row read whole before
                        // is not built again (nor sent `post_init`).
                        let key = C::pk_from_row(row).during(operation)?;
                        if !whole.contains(&key) {
                            returned.push(Item::Owned(init.decode(row, operation)?));
                        }
                        Ok(())
                    })
                    .await?;
                } else {
                    count += DB::execute(tx.own_conn(), query).await.during(operation)?;
                }
            }
            self.items.extend(returned);
            Ok(count)
        })
    }

    fn send_post<'s>(
        &'s self,
        tx: &'s mut Tx<DB>,
        origin: Origin<'s>,
    ) -> BoxFuture<'s, Result<(), OrmError>> {
        let mut items = self.sorted();
        items.reverse();
        Box::pin(send_each::<PostDeleteSignal, C, DB>(items, tx, origin))
    }
}

/// Sends `S` (`pre_delete` or `post_delete`) for each of `items`, in order.
async fn send_each<S, C: Model, DB: Backend>(
    items: Vec<&C>,
    tx: &mut Tx<DB>,
    origin: Origin<'_>,
) -> Result<(), OrmError>
where
    S: for<'e> signals_core::Signal<Event<'e> = DeleteEvent<'e>>,
{
    let sender = Sender::of::<C>();
    for instance in items {
        S::registry()
            .send(
                sender,
                DeleteEvent {
                    instance,
                    origin,
                    tx,
                },
            )
            .await?;
    }
    Ok(())
}
