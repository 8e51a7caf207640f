//! Choosing rows by a condition: the typed columns `derive(Model)` generates, the conditions
//! built from them ([`Filter`], Django's `Q`), and [`Query`] (Django's `QuerySet`), which reads
//! the rows it selects and is what the set-based writes take.
//!
//! Why typed columns rather than SQL text with bound parameters (sqlx's `QueryBuilder`) or
//! sea-query: a column is checked by the compiler (a misspelt field or a value of the wrong
//! type does not build), a value can only be bound (there is no way to write it into the SQL),
//! and one condition runs on every enabled backend; `QueryBuilder` gives none of the three, and
//! sea-query brings a second query language and value model beside sqlx's. The rules are in
//! `docs/orm.md`, "Choosing rows".

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use signals_core::{Sender, Signal as _};

use crate::backend::Backend;
use crate::error::{Context as _, Operation, OrmError};
use crate::init::Init;
use crate::model::{AnyModel, Model, Persist};
use crate::model_signals::payload::{Origin, Previous};
use crate::model_signals::{
    DeleteEvent, PostDeleteSignal, PostSaveSignal, PreDeleteSignal, PreSaveSignal, SaveEvent,
};
use crate::sql::{self, ModelSql};
use crate::tx::{Db, IntoDb, Tx};

/// A column of model `M` holding values of type `T`: a field of the struct, or its key.
///
/// `derive(Model)` generates one per saved field, reached through [`Model::columns`]:
/// `User::columns().email` is a `Column<User, String>`. Conditions ([`Filter`]) and orderings
/// ([`Order`]) are built from it; its values are always bound, never written into the SQL.
///
/// For the key, `T` is the key's type (`i64` for an `id: Option<i64>` field).
pub struct Column<M, T> {
    /// 0 for the key, `i + 1` for field `i` of [`ModelMeta::fields`](crate::ModelMeta).
    index: usize,
    marker: PhantomData<fn() -> (M, T)>,
}

impl<M, T> Clone for Column<M, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M, T> Copy for Column<M, T> {}

impl<M: Model, T> fmt::Debug for Column<M, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", M::META.name, self.field())
    }
}

impl<M, T> Column<M, T> {
    /// The column at `index` (0: the key, `i + 1`: field `i`). Called by `derive(Model)`.
    #[doc(hidden)]
    #[must_use]
    pub const fn new(index: usize) -> Self {
        Column {
            index,
            marker: PhantomData,
        }
    }
}

impl<M: Model, T> Column<M, T> {
    /// The field's name in the struct.
    #[must_use]
    pub fn field(&self) -> &'static str {
        match self.index {
            0 => M::META.pk_field,
            i => M::META.fields[i - 1],
        }
    }
}

impl<M: Model, T: Send + Sync + 'static> Column<M, T> {
    fn compare(self, op: CompareOp, value: T) -> Filter<M> {
        Filter::new(Node::Compare {
            column: self.index,
            op,
            value: Arg::Typed(Box::new(value)),
        })
    }

    /// `column = value`. Like SQL (and unlike Django's `field=None`), a NULL never equals
    /// anything: use [`is_null`](Column::is_null).
    pub fn eq(self, value: impl Into<T>) -> Filter<M> {
        self.compare(CompareOp::Eq, value.into())
    }

    /// `column <> value` (Django's `exclude(field=value)`).
    pub fn ne(self, value: impl Into<T>) -> Filter<M> {
        self.compare(CompareOp::Ne, value.into())
    }

    /// `column < value` (Django's `__lt`).
    pub fn lt(self, value: impl Into<T>) -> Filter<M> {
        self.compare(CompareOp::Lt, value.into())
    }

    /// `column <= value` (Django's `__lte`).
    pub fn le(self, value: impl Into<T>) -> Filter<M> {
        self.compare(CompareOp::Le, value.into())
    }

    /// `column > value` (Django's `__gt`).
    pub fn gt(self, value: impl Into<T>) -> Filter<M> {
        self.compare(CompareOp::Gt, value.into())
    }

    /// `column >= value` (Django's `__gte`).
    pub fn ge(self, value: impl Into<T>) -> Filter<M> {
        self.compare(CompareOp::Ge, value.into())
    }

    /// `column IN (values..)` (Django's `__in`); no values selects no row.
    pub fn is_in<V: Into<T>>(self, values: impl IntoIterator<Item = V>) -> Filter<M> {
        Filter::new(Node::In {
            column: self.index,
            values: values
                .into_iter()
                .map(|v| Arg::Typed(Box::new(v.into())))
                .collect(),
        })
    }

    /// `column LIKE pattern`, the pattern bound as text (`%` and `_` are SQL's wildcards;
    /// case sensitivity is the database's: SQLite ignores ASCII case, PostgreSQL does not).
    pub fn like(self, pattern: impl Into<String>) -> Filter<M> {
        Filter::new(Node::Compare {
            column: self.index,
            op: CompareOp::Like,
            value: Arg::Text(pattern.into()),
        })
    }

    /// `column IS NULL` (Django's `__isnull=True`).
    pub fn is_null(self) -> Filter<M> {
        Filter::new(Node::Null {
            column: self.index,
            null: true,
        })
    }

    /// `column IS NOT NULL` (Django's `__isnull=False`).
    pub fn is_not_null(self) -> Filter<M> {
        Filter::new(Node::Null {
            column: self.index,
            null: false,
        })
    }

    /// Ascending order on this column (Django's `order_by("field")`).
    pub fn asc(self) -> Order<M> {
        Order {
            column: self.index,
            descending: false,
            marker: PhantomData,
        }
    }

    /// Descending order on this column (Django's `order_by("-field")`).
    pub fn desc(self) -> Order<M> {
        Order {
            column: self.index,
            descending: true,
            marker: PhantomData,
        }
    }

    /// `column = value` in a filtered update ([`Query::update`]; Django's `update(field=value)`).
    pub fn set(self, value: impl Into<T>) -> Assignment<M>
    where
        T: Clone,
    {
        Assignment {
            column: self.index,
            value: Arg::Typed(Box::new(value.into())),
            copy: |value| Box::new(expect_value::<T>(value).clone()),
            marker: PhantomData,
        }
    }
}

/// One `column = value` of a filtered update, made by [`Column::set`].
#[must_use = "an assignment does nothing until given to `Query::update`"]
pub struct Assignment<M> {
    pub(crate) column: usize,
    pub(crate) value: Arg,
    /// A copy of the value, for each instance a `pre_save` receiver gets.
    copy: fn(&(dyn Any + Send + Sync)) -> Box<dyn Any + Send + Sync>,
    marker: PhantomData<fn() -> M>,
}

impl<M: Model> Assignment<M> {
    /// Applies the assignment to an instance.
    fn apply(&self, instance: &mut M) {
        if let Arg::Typed(value) = &self.value {
            instance.set_value(self.column, (self.copy)(&**value));
        }
    }
}

impl<M: Model> Assignment<M> {
    /// The assigned field's name.
    #[must_use]
    pub fn field(&self) -> &'static str {
        Column::<M, ()>::new(self.column).field()
    }
}

impl<M: Model> fmt::Debug for Assignment<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = ?", self.field())
    }
}

/// An ordering of a [`Query`], made by [`Column::asc`] or [`Column::desc`].
#[must_use = "an ordering does nothing until given to `Query::order_by`"]
pub struct Order<M> {
    pub(crate) column: usize,
    pub(crate) descending: bool,
    marker: PhantomData<fn() -> M>,
}

impl<M> Clone for Order<M> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<M> Copy for Order<M> {}

impl<M: Model> fmt::Debug for Order<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let column = Column::<M, ()>::new(self.column);
        let sign = if self.descending { "-" } else { "" };
        write!(f, "{sign}{}", column.field())
    }
}

/// A condition on the rows of model `M` (Django's `Q`): built from [`Column`]s, combined with
/// `&` (and), `|` (or) and `!` (not), or [`Filter::and`], [`Filter::or`], [`Filter::not`].
///
/// # Example
///
/// ```
/// use signals_orm::Model;
///
/// #[derive(Model, sqlx::FromRow)]
/// #[model(table = "users")]
/// struct User {
///     #[model(primary_key)]
///     id: Option<i64>,
///     name: String,
///     age: i64,
/// }
///
/// let c = User::columns();
/// let adults_not_ada = c.age.ge(18) & !c.name.eq("Ada");
/// assert_eq!(format!("{adults_not_ada:?}"), "(age >= ? AND NOT name = ?)");
/// ```
#[must_use = "a condition selects nothing until a query runs with it"]
pub struct Filter<M> {
    pub(crate) node: Node,
    marker: PhantomData<fn() -> M>,
}

impl<M> Filter<M> {
    /// A condition no row matches.
    pub(crate) fn nothing() -> Self {
        Filter::new(Node::In {
            column: 0,
            values: Vec::new(),
        })
    }

    fn new(node: Node) -> Self {
        Filter {
            node,
            marker: PhantomData,
        }
    }

    /// Both conditions.
    pub fn and(self, other: Filter<M>) -> Filter<M> {
        Filter::new(Node::And(Box::new(self.node), Box::new(other.node)))
    }

    /// Either condition.
    pub fn or(self, other: Filter<M>) -> Filter<M> {
        Filter::new(Node::Or(Box::new(self.node), Box::new(other.node)))
    }

    /// The opposite condition (SQL's `NOT`: a row where the condition is NULL matches neither).
    #[expect(
        clippy::should_implement_trait,
        reason = "`!filter` works too; the method reads better in chains"
    )]
    pub fn not(self) -> Filter<M> {
        Filter::new(Node::Not(Box::new(self.node)))
    }
}

impl<M> std::ops::BitAnd for Filter<M> {
    type Output = Filter<M>;
    fn bitand(self, other: Filter<M>) -> Filter<M> {
        self.and(other)
    }
}

impl<M> std::ops::BitOr for Filter<M> {
    type Output = Filter<M>;
    fn bitor(self, other: Filter<M>) -> Filter<M> {
        self.or(other)
    }
}

impl<M> std::ops::Not for Filter<M> {
    type Output = Filter<M>;
    fn not(self) -> Filter<M> {
        Filter::not(self)
    }
}

impl<M: Model> fmt::Debug for Filter<M> {
    /// The condition with field names and `?` for each bound value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.node
            .describe(f, &|column| Column::<M, ()>::new(column).field())
    }
}

/// A value to bind: one of a column's type (bound by the model's [`Persist::bind_value`]), or
/// text (a `LIKE` pattern).
pub(crate) enum Arg {
    Typed(Box<dyn Any + Send + Sync>),
    Text(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CompareOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Like,
}

impl CompareOp {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            CompareOp::Eq => "=",
            CompareOp::Ne => "<>",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Like => "LIKE",
        }
    }
}

/// A condition, with columns by index (0: the key, `i + 1`: field `i`).
pub(crate) enum Node {
    Compare {
        column: usize,
        op: CompareOp,
        value: Arg,
    },
    In {
        column: usize,
        values: Vec<Arg>,
    },
    Null {
        column: usize,
        null: bool,
    },
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
}

impl Node {
    fn describe(
        &self,
        f: &mut fmt::Formatter<'_>,
        name: &dyn Fn(usize) -> &'static str,
    ) -> fmt::Result {
        match self {
            Node::Compare { column, op, .. } => write!(f, "{} {} ?", name(*column), op.sql()),
            Node::In { column, values } => {
                write!(f, "{} IN ({} values)", name(*column), values.len())
            }
            Node::Null { column, null } => {
                write!(
                    f,
                    "{} IS {}NULL",
                    name(*column),
                    if *null { "" } else { "NOT " }
                )
            }
            Node::And(a, b) | Node::Or(a, b) => {
                let op = if matches!(self, Node::And(..)) {
                    "AND"
                } else {
                    "OR"
                };
                f.write_str("(")?;
                a.describe(f, name)?;
                write!(f, " {op} ")?;
                b.describe(f, name)?;
                f.write_str(")")
            }
            Node::Not(a) => {
                f.write_str("NOT ")?;
                a.describe(f, name)
            }
        }
    }
}

/// The rows of model `M` that a condition selects, in an order, at most so many (Django's
/// `QuerySet`): made by [`Model::objects`] or [`Model::filter`], read with [`all`](Query::all),
/// [`first`](Query::first), [`count`](Query::count) and [`exists`](Query::exists).
///
/// A `Query` is only a description: nothing runs until one of those is awaited, and each runs
/// again (Django caches a `QuerySet`'s rows; here the caller keeps the `Vec`).
///
/// # Example
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use signals_orm::{Model, ModelExt};
///
/// #[derive(Model, sqlx::FromRow)]
/// #[model(table = "users")]
/// struct User {
///     #[model(primary_key)]
///     id: Option<i64>,
///     name: String,
///     age: i64,
/// }
///
/// let pool = sqlx::SqlitePool::connect("sqlite::memory:").await?;
/// sqlx::raw_sql("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INTEGER NOT NULL)")
///     .execute(&pool)
///     .await?;
/// for (name, age) in [("Ada", 36), ("Alan", 41), ("Grace", 85)] {
///     User { id: None, name: name.into(), age }.save(&pool).await?;
/// }
/// let c = User::columns();
/// let query = User::filter(c.age.lt(50)).order_by(c.name.desc());
/// let names: Vec<String> = query.all(&pool).await?.into_iter().map(|u| u.name).collect();
/// assert_eq!(names, ["Alan", "Ada"]);
/// assert_eq!(query.count(&pool).await?, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(()) }).unwrap();
/// ```
#[must_use = "a query runs only when `all`, `first`, `count`, `exists` or a write is awaited"]
pub struct Query<M> {
    pub(crate) filter: Option<Node>,
    pub(crate) order: Vec<Order<M>>,
    pub(crate) limit: Option<u64>,
    pub(crate) offset: Option<u64>,
}

impl<M: Model> Default for Query<M> {
    fn default() -> Self {
        Query {
            filter: None,
            order: Vec::new(),
            limit: None,
            offset: None,
        }
    }
}

impl<M: Model> fmt::Debug for Query<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", M::META.name)?;
        if let Some(node) = &self.filter {
            f.write_str(" WHERE ")?;
            node.describe(f, &|column| Column::<M, ()>::new(column).field())?;
        }
        if !self.order.is_empty() {
            write!(f, " ORDER BY {:?}", self.order)?;
        }
        if let Some(limit) = self.limit {
            write!(f, " LIMIT {limit}")?;
        }
        if let Some(offset) = self.offset {
            write!(f, " OFFSET {offset}")?;
        }
        Ok(())
    }
}

impl<M: Model> crate::model_signals::payload::QueryOrigin for Query<M> {
    fn meta(&self) -> &'static crate::ModelMeta {
        M::META
    }
}

impl<M: Model> Query<M> {
    /// Every row (Django's `Model.objects.all()`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps only the rows that also match `filter` (Django's `filter`, chained: AND).
    pub fn filter(mut self, filter: Filter<M>) -> Self {
        self.filter = Some(match self.filter.take() {
            None => filter.node,
            Some(node) => Node::And(Box::new(node), Box::new(filter.node)),
        });
        self
    }

    /// Keeps only the rows that do not match `filter` (Django's `exclude`).
    pub fn exclude(self, filter: Filter<M>) -> Self {
        self.filter(!filter)
    }

    /// Orders by `order`, after any ordering given before (Django's `order_by` takes them all
    /// at once; here each call adds one). Without one, rows come in the database's order.
    pub fn order_by(mut self, order: Order<M>) -> Self {
        self.order.push(order);
        self
    }

    /// At most `rows` rows (Django's slicing, `[:rows]`).
    pub fn limit(mut self, rows: u64) -> Self {
        self.limit = Some(rows);
        self
    }

    /// Skips the first `rows` rows (Django's slicing, `[rows:]`).
    pub fn offset(mut self, rows: u64) -> Self {
        self.offset = Some(rows);
        self
    }

    /// Every row selected, in order.
    ///
    /// # Errors
    ///
    /// The database's error, or a column that does not decode.
    pub async fn all<'a, DB: Backend>(&self, db: impl IntoDb<'a, DB>) -> Result<Vec<M>, OrmError>
    where
        M: Persist<DB>,
    {
        let operation = Operation::on::<M>("fetch");
        let query = built::<M, DB>(sql::select(
            M::META,
            sql::param_prefix::<DB>(),
            M::sql(),
            self,
            sql::Selected::Rows,
        ));
        db.into_db().fetch_models(query, operation).await
    }

    /// The first row selected: in the query's order, or by key when it has none (Django's
    /// `first()`); `None` when nothing matches.
    ///
    /// # Errors
    ///
    /// As [`all`](Query::all).
    pub async fn first<'a, DB: Backend>(
        &self,
        db: impl IntoDb<'a, DB>,
    ) -> Result<Option<M>, OrmError>
    where
        M: Persist<DB>,
    {
        let operation = Operation::on::<M>("fetch");
        let query = built::<M, DB>(sql::select(
            M::META,
            sql::param_prefix::<DB>(),
            M::sql(),
            self,
            sql::Selected::First,
        ));
        let row = db.into_db().fetch_optional(query, operation).await?;
        row.map(|row| Init::<M, DB>::new().decode(&row, operation))
            .transpose()
    }

    /// How many rows are selected (Django's `count()`), limit and offset included.
    ///
    /// # Errors
    ///
    /// The database's error.
    pub async fn count<'a, DB: Backend>(&self, db: impl IntoDb<'a, DB>) -> Result<u64, OrmError>
    where
        M: Persist<DB>,
    {
        let operation = Operation::on::<M>("count");
        let query = built::<M, DB>(sql::select(
            M::META,
            sql::param_prefix::<DB>(),
            M::sql(),
            self,
            sql::Selected::Count,
        ));
        let row = db.into_db().fetch_optional(query, operation).await?;
        let count = match row {
            Some(row) => DB::first_i64(&row).during(operation)?,
            None => 0,
        };
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Whether any row is selected (Django's `exists()`).
    ///
    /// # Errors
    ///
    /// The database's error.
    pub async fn exists<'a, DB: Backend>(&self, db: impl IntoDb<'a, DB>) -> Result<bool, OrmError>
    where
        M: Persist<DB>,
    {
        let operation = Operation::on::<M>("fetch");
        let query = built::<M, DB>(sql::select(
            M::META,
            sql::param_prefix::<DB>(),
            M::sql(),
            self,
            sql::Selected::Exists,
        ));
        Ok(db
            .into_db()
            .fetch_optional(query, operation)
            .await?
            .is_some())
    }
}

/// Rows handled per statement by a filtered `delete` or `update` that sends signals: at most
/// this many instances are in memory at once, whatever the number of rows.
pub const ROWS_PER_CHUNK: usize = 10_000;

/// What a delete removed: how many rows of each model (Django's `(total, {model: count})`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deleted {
    per_model: Vec<(&'static str, u64)>,
}

impl Deleted {
    /// Rows deleted, every model together.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.per_model.iter().map(|(_, rows)| rows).sum()
    }

    /// Rows of model `N` deleted.
    #[must_use]
    pub fn of<N: Model>(&self) -> u64 {
        self.per_model
            .iter()
            .filter(|(name, _)| *name == N::META.name)
            .map(|(_, rows)| rows)
            .sum()
    }

    /// Each model's name and its rows deleted, in the order they were first deleted.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        self.per_model.iter().copied()
    }

    pub(crate) fn add(&mut self, model: &'static str, rows: u64) {
        match self.per_model.iter_mut().find(|(name, _)| *name == model) {
            Some((_, count)) => *count += rows,
            None => self.per_model.push((model, rows)),
        }
    }
}

impl<M: Model> Query<M> {
    /// Deletes the rows selected (Django's `QuerySet.delete()`), sending `pre_delete` for each
    /// row (the whole instance, with `origin` = this query) before its DELETE and `post_delete`
    /// for each row deleted after it, all in one transaction with the receivers.
    ///
    /// Statements: when nobody listens, one `DELETE .. WHERE condition` (given a pool, alone in
    /// autocommit); when only `post_delete` listens, one `DELETE .. RETURNING` per
    /// [`ROWS_PER_CHUNK`] rows; when `pre_delete` listens, per chunk a `SELECT` of the rows
    /// (locked with `FOR UPDATE` on PostgreSQL; SQLite's write lock is already held), their
    /// `pre_delete`, then one `DELETE .. WHERE key IN (..)`. `post_delete` gets each row as the
    /// DELETE returned it. Rules and differences from Django: `docs/orm.md`, "Set-based
    /// writes".
    ///
    /// # Errors
    ///
    /// [`OrmError::Sliced`] for a query with a limit or an offset (Django refuses them too);
    /// the database's error or a receiver's, and then nothing is deleted.
    pub async fn delete<'a, DB: Backend>(
        &self,
        db: impl IntoDb<'a, DB>,
    ) -> Result<Deleted, OrmError>
    where
        M: Persist<DB>,
    {
        if self.limit.is_some() || self.offset.is_some() {
            return Err(OrmError::Sliced {
                model: M::META.name,
                write: "delete",
            });
        }
        let db = db.into_db();
        if crate::relations::collects(std::any::TypeId::of::<M>()) {
            return atomically!(db, |tx| crate::collector::delete(
                tx,
                crate::collector::Root::Query(self)
            )
            .await);
        }
        let sender = Sender::of::<M>();
        let pre = PreDeleteSignal::registry().has_listeners(sender);
        let post = PostDeleteSignal::registry().has_listeners(sender);
        let operation = Operation::on::<M>("delete");
        let rows = if !pre && !post {
            signals_core::__private::unheard_send::<PreDeleteSignal>(sender);
            let query = built::<M, DB>(sql::delete_where(M::META, sql::param_prefix::<DB>(), self));
            run_unheard(db, query, operation).await?
        } else {
            atomically!(db, |tx| self.delete_signalled(tx, pre).await)?
        };
        let mut deleted = Deleted::default();
        deleted.add(M::META.name, rows);
        Ok(deleted)
    }

    /// The chunks of a delete some receiver hears.
    async fn delete_signalled<DB: Backend>(
        &self,
        tx: &mut Tx<DB>,
        pre: bool,
    ) -> Result<u64, OrmError>
    where
        M: Persist<DB>,
    {
        let operation = Operation::on::<M>("delete");
        let lock = sql::locks_rows::<DB>();
        let mut total = 0;
        loop {
            // Each chunk's rows are deleted before the next is selected, so the next SELECT
            // finds the rows after them.
            let (deleted, last) = if pre {
                let query = built::<M, DB>(sql::select_chunk(
                    M::META,
                    sql::param_prefix::<DB>(),
                    M::sql(),
                    self,
                    ROWS_PER_CHUNK,
                    lock,
                ));
                let selected = fetch_models::<M, DB>(tx, query, operation).await?;
                if selected.is_empty() {
                    break;
                }
                for instance in &selected {
                    self.send_delete(PreDeleteSignal::registry(), instance, tx)
                        .await?;
                }
                let keys: Vec<M::Pk> = selected.iter().filter_map(Model::pk).collect();
                let text =
                    sql::delete_where_in(M::META, sql::param_prefix::<DB>(), 0, keys.len(), true);
                let mut query = DB::query_with_room(text.into(), keys.len());
                for key in &keys {
                    query = M::bind_pk(key, query);
                }
                (
                    fetch_models::<M, DB>(tx, query, operation).await?,
                    selected.len() < ROWS_PER_CHUNK,
                )
            } else {
                let query = built::<M, DB>(sql::delete_chunk_returning(
                    M::META,
                    sql::param_prefix::<DB>(),
                    self,
                    ROWS_PER_CHUNK,
                    lock,
                ));
                let deleted = fetch_models::<M, DB>(tx, query, operation).await?;
                let last = deleted.len() < ROWS_PER_CHUNK;
                (deleted, last)
            };
            self.post_deletes(&deleted, tx).await?;
            total += deleted.len() as u64;
            if last {
                break;
            }
        }
        Ok(total)
    }

    /// Sets the assigned columns of the rows selected (Django's `QuerySet.update(..)`, which
    /// sends no signal), sending `post_save` for each row changed (`created = false`,
    /// `update_fields` = the assigned fields), and `pre_save` for each row before it is
    /// written, all in one transaction with the receivers. Returns the rows changed.
    ///
    /// Statements: when nobody listens, one `UPDATE .. WHERE condition` (given a pool, alone in
    /// autocommit); when only `post_save` listens, one `UPDATE .. RETURNING`, and `post_save`
    /// gets each row as written. When `pre_save` listens, per [`ROWS_PER_CHUNK`] rows a
    /// `SELECT` of the rows (locked with `FOR UPDATE` on PostgreSQL), the assignments applied to
    /// each instance, its `pre_save` (whose receivers may change the assigned fields, written
    /// as they leave them; changes to other fields are not written, as with Django's
    /// `update_fields`), then one `UPDATE .. CASE` of the assigned fields `RETURNING` the rows,
    /// and `post_save` with each row as written. A later assignment of a field replaces an
    /// earlier one; no assignment changes nothing and sends nothing.
    ///
    /// # Errors
    ///
    /// [`OrmError::Sliced`] for a query with a limit or an offset, [`OrmError::UnknownField`]
    /// for an assignment of the key; the database's error or a receiver's, and then nothing is
    /// changed.
    pub async fn update<'a, DB: Backend>(
        &self,
        db: impl IntoDb<'a, DB>,
        assignments: impl IntoIterator<Item = Assignment<M>>,
    ) -> Result<u64, OrmError>
    where
        M: Persist<DB>,
    {
        if self.limit.is_some() || self.offset.is_some() {
            return Err(OrmError::Sliced {
                model: M::META.name,
                write: "update",
            });
        }
        let mut assigned: Vec<Assignment<M>> = Vec::new();
        for assignment in assignments {
            if assignment.column == 0 {
                return Err(OrmError::UnknownField {
                    model: M::META.name,
                    field: M::META.pk_field.to_owned(),
                    hint: " (a filtered update cannot change the key)".to_owned(),
                });
            }
            assigned.retain(|earlier| earlier.column != assignment.column);
            assigned.push(assignment);
        }
        if assigned.is_empty() {
            return Ok(0);
        }
        let fields: Vec<&'static str> = assigned.iter().map(Assignment::field).collect();
        let db = db.into_db();
        let sender = Sender::of::<M>();
        let pre = PreSaveSignal::registry().has_listeners(sender);
        let post = PostSaveSignal::registry().has_listeners(sender);
        let operation = Operation::on::<M>("update");
        if !pre && !post {
            signals_core::__private::unheard_send::<PreSaveSignal>(sender);
            let query = built::<M, DB>(sql::update_where(
                M::META,
                sql::param_prefix::<DB>(),
                self,
                &assigned,
                false,
            ));
            return run_unheard(db, query, operation).await;
        }
        // A receiver taking `Changes` needs each row as it was: the chunks' SELECT reads it.
        let previous = crate::writes::wants_previous::<M>();
        atomically!(db, |tx| if pre || previous {
            self.update_chunks(tx, &assigned, &fields, previous).await
        } else {
            let query = built::<M, DB>(sql::update_where(
                M::META,
                sql::param_prefix::<DB>(),
                self,
                &assigned,
                true,
            ));
            let mut written = fetch_models::<M, DB>(tx, query, operation).await?;
            post_saves(&mut written, &fields, None, tx).await?;
            Ok(written.len() as u64)
        })
    }

    /// The chunks of an update whose `pre_save` some receiver hears, or whose rows as they were
    /// some receiver asks for (`previous`, for [`Changes`](crate::Changes)): each selected
    /// after the last key of the one before, so a row still matching once updated is not
    /// selected again. With `previous`, each selected row is decoded twice, a copy kept as it
    /// was before the assignments apply.
    async fn update_chunks<DB: Backend>(
        &self,
        tx: &mut Tx<DB>,
        assigned: &[Assignment<M>],
        fields: &[&'static str],
        previous: bool,
    ) -> Result<u64, OrmError>
    where
        M: Persist<DB>,
    {
        let operation = Operation::on::<M>("update");
        let lock = sql::locks_rows::<DB>();
        let indexes: Vec<usize> = assigned.iter().map(|a| a.column - 1).collect();
        // Each row binds its key and value per column, and its key again in the `IN` list.
        let per_row = 2 * indexes.len() + 1;
        let rows_per_write = sql::UPDATE_ROWS
            .min(DB::MAX_BIND_PARAMETERS / per_row)
            .max(1);
        let mut after: Option<M::Pk> = None;
        let mut total = 0;
        loop {
            let (text, args) = sql::select_chunk_after(
                M::META,
                sql::param_prefix::<DB>(),
                M::sql(),
                self,
                after.is_some(),
                ROWS_PER_CHUNK,
                lock,
            );
            let mut query = DB::query_with_room(text.into(), args.len() + 1);
            query = bind_args::<M, DB>(query, &args);
            if let Some(key) = &after {
                query = M::bind_pk(key, query);
            }
            let mut selected = Vec::new();
            let mut before = Vec::new();
            let init = Init::<M, DB>::new();
            crate::backend::for_each_row(tx.own_conn(), query, operation, |row| {
                selected.push(init.decode(row, operation)?);
                if previous {
                    before.push(init.decode(row, operation)?);
                }
                Ok(())
            })
            .await?;
            let Some(last) = selected.last() else { break };
            after = last.pk();
            let full = selected.len() == ROWS_PER_CHUNK;
            // Taken before `pre_save`: a receiver changing an instance's key must not move the
            // write to another row (the key is not an assigned field, so it is not written).
            let keys: Vec<M::Pk> = selected.iter().filter_map(Model::pk).collect();
            let sender = Sender::of::<M>();
            for (i, instance) in selected.iter_mut().enumerate() {
                for assignment in assigned {
                    assignment.apply(instance);
                }
                let event = SaveEvent {
                    instance,
                    created: false,
                    raw: false,
                    update_fields: Some(fields),
                    previous: before
                        .get(i)
                        .map_or(Previous::Unread, |row| Previous::Row(row)),
                    tx,
                };
                PreSaveSignal::registry().send(sender, event).await?;
            }
            // The `CASE` of a statement is tried row by row for each row, so statements stay
            // short (`sql::UPDATE_ROWS`) while the chunk in memory is larger; every statement
            // of the chunk runs before its `post_save`s, as every `pre_save` ran before them.
            let mut written = Vec::with_capacity(selected.len());
            for (models, keys) in selected
                .chunks(rows_per_write)
                .zip(keys.chunks(rows_per_write))
            {
                let text = ModelSql::case_update_returning(
                    M::META,
                    &indexes,
                    models.len(),
                    DB::ANONYMOUS_PLACEHOLDERS,
                );
                let mut query = DB::query_with_room(text.into(), models.len() * per_row);
                // In the text's order: each column's `WHEN key THEN value`s, then the `IN` list.
                for &index in &indexes {
                    for (model, key) in models.iter().zip(keys) {
                        query = model.bind_field(index, M::bind_pk(key, query));
                    }
                }
                for key in keys {
                    query = M::bind_pk(key, query);
                }
                written.extend(fetch_models::<M, DB>(tx, query, operation).await?);
            }
            drop(selected);
            let before = previous.then_some(before.as_slice());
            post_saves(&mut written, fields, before, tx).await?;
            total += written.len() as u64;
            if !full {
                break;
            }
        }
        Ok(total)
    }

    /// The one row this query selects, or a new one made by `create` and inserted, with its
    /// `pre_save` and `post_save` (Django's `get_or_create`); `true` when it was created.
    ///
    /// Safe under concurrency: when two callers race for the same unique key, one inserts and
    /// the other, its INSERT refused by the unique constraint, reads the winner's row, with no
    /// error and exactly one `post_save` with `created = true`. The INSERT runs in a savepoint,
    /// so that refusal does not spoil the transaction (PostgreSQL would abort it), and the
    /// receivers of the losing INSERT are undone with it. `create` should make a row that
    /// matches the query (Django builds it from the lookup and `defaults`); the query needs a
    /// unique column to be race-free, as in Django.
    ///
    /// # Errors
    ///
    /// [`OrmError::MultipleRows`] when several rows match; the database's error (a unique
    /// violation too, when no matching row can be read after it) or a receiver's.
    pub async fn get_or_create<'a, DB: Backend>(
        &self,
        db: impl IntoDb<'a, DB>,
        create: impl FnOnce() -> M + Send,
    ) -> Result<(M, bool), OrmError>
    where
        M: Persist<DB>,
    {
        let db = db.into_db();
        atomically!(db, |tx| async {
            if let Some(found) = self.one(tx, false).await? {
                return Ok((found, false));
            }
            match insert_in_savepoint(tx, create()).await {
                Ok(created) => Ok((created, true)),
                Err(error) if unique_violation(&error) => match self.one(tx, false).await? {
                    Some(found) => Ok((found, false)),
                    None => Err(error),
                },
                Err(error) => Err(error),
            }
        }
        .await)
    }

    /// The one row this query selects, changed by `apply` and saved, or a new one made by
    /// `create` and inserted (Django's `update_or_create`); `true` when it was created. Both
    /// send `pre_save` and `post_save`; the existing row is locked (`FOR UPDATE` on
    /// PostgreSQL) from its read to its save. Race-safe as
    /// [`get_or_create`](Query::get_or_create): a caller whose INSERT loses the race updates
    /// the winner's row instead.
    ///
    /// # Errors
    ///
    /// As [`get_or_create`](Query::get_or_create).
    pub async fn update_or_create<'a, DB: Backend>(
        &self,
        db: impl IntoDb<'a, DB>,
        apply: impl FnOnce(&mut M) + Send,
        create: impl FnOnce() -> M + Send,
    ) -> Result<(M, bool), OrmError>
    where
        M: Persist<DB>,
    {
        use crate::writes::ModelExt as _;
        let db = db.into_db();
        atomically!(db, |tx| async {
            let found = match self.one(tx, true).await? {
                Some(found) => found,
                None => match insert_in_savepoint(tx, create()).await {
                    Ok(created) => return Ok((created, true)),
                    Err(error) if unique_violation(&error) => match self.one(tx, true).await? {
                        Some(found) => found,
                        None => return Err(error),
                    },
                    Err(error) => return Err(error),
                },
            };
            let mut found = found;
            apply(&mut found);
            found.save(&mut *tx).await?;
            Ok((found, false))
        }
        .await)
    }

    /// The one row selected, `None` if none, an error if several.
    async fn one<DB: Backend>(&self, tx: &mut Tx<DB>, lock: bool) -> Result<Option<M>, OrmError>
    where
        M: Persist<DB>,
    {
        let operation = Operation::on::<M>("fetch");
        let lock = lock && sql::locks_rows::<DB>();
        let query = built::<M, DB>(sql::select(
            M::META,
            sql::param_prefix::<DB>(),
            M::sql(),
            self,
            sql::Selected::UpToTwo(lock),
        ));
        let mut found: Vec<M> = Db::Tx(tx).fetch_models(query, operation).await?;
        if found.len() > 1 {
            return Err(OrmError::MultipleRows {
                model: M::META.name,
            });
        }
        Ok(found.pop())
    }

    async fn post_deletes<DB: Backend>(
        &self,
        deleted: &[M],
        tx: &mut Tx<DB>,
    ) -> Result<(), OrmError> {
        for instance in deleted {
            self.send_delete(PostDeleteSignal::registry(), instance, tx)
                .await?;
        }
        Ok(())
    }

    async fn send_delete<S, DB: Backend>(
        &self,
        registry: &'static signals_core::__private::Registry<S>,
        instance: &M,
        tx: &mut Tx<DB>,
    ) -> Result<(), OrmError>
    where
        S: for<'e> signals_core::Signal<Event<'e> = DeleteEvent<'e>>,
    {
        registry
            .send(
                Sender::of::<M>(),
                DeleteEvent {
                    instance,
                    origin: Origin::Query(self),
                    tx,
                },
            )
            .await?;
        Ok(())
    }
}

/// Runs the one statement of a set-based write nobody hears: given a pool, alone in autocommit
/// (the rule of `writes::autocommit`); given the caller's transaction, inside it. Returns the
/// rows affected.
async fn run_unheard<DB: Backend>(
    db: Db<'_, DB>,
    query: sqlx::query::Query<'_, DB, DB::Arguments>,
    operation: Operation,
) -> Result<u64, OrmError> {
    match db.pool() {
        Some(pool) => {
            let mut conn = crate::writes::autocommit(pool, operation).await?;
            DB::execute(&mut conn, query).await.during(operation)
        }
        None => atomically!(db, |tx| DB::execute(tx.own_conn(), query)
            .await
            .during(operation)),
    }
}

/// Inserts `instance` (with its signals) inside a savepoint, so that a refused INSERT leaves
/// the transaction usable.
async fn insert_in_savepoint<M: Persist<DB>, DB: Backend>(
    tx: &mut Tx<DB>,
    instance: M,
) -> Result<M, OrmError> {
    use crate::writes::ModelExt as _;
    tx.atomic(|tx| {
        Box::pin(async move {
            let mut instance = instance;
            instance.insert(&mut *tx).await?;
            Ok(instance)
        })
    })
    .await
}

/// Whether a write failed on a unique constraint (another caller inserted the key first).
fn unique_violation(error: &OrmError) -> bool {
    matches!(
        error,
        OrmError::Database {
            source: sqlx::Error::Database(error),
            ..
        } if error.is_unique_violation()
    )
}

/// `post_save` of rows an update wrote, as written; with `before`, the rows as they were
/// before the update (in any order), each given to the `post_save` of the row with its key.
async fn post_saves<M: Model, DB: Backend>(
    written: &mut [M],
    fields: &[&'static str],
    before: Option<&[M]>,
    tx: &mut Tx<DB>,
) -> Result<(), OrmError> {
    let sender = Sender::of::<M>();
    let by_key: Option<BTreeMap<M::Pk, &M>> = before.map(|rows| {
        rows.iter()
            .filter_map(|row| Some((row.pk()?, row)))
            .collect()
    });
    for instance in written {
        let previous = match &by_key {
            Some(rows) => Previous::read(
                instance
                    .pk()
                    .and_then(|pk| rows.get(&pk).copied())
                    .map(|row| row as &dyn AnyModel),
            ),
            None => Previous::Unread,
        };
        let event = SaveEvent {
            instance,
            created: false,
            raw: false,
            update_fields: Some(fields),
            previous,
            tx,
        };
        PostSaveSignal::registry().send(sender, event).await?;
    }
    Ok(())
}

/// Runs a statement of the write's transaction and decodes its rows into models as they
/// arrive, each with its `post_init`.
async fn fetch_models<M: Persist<DB>, DB: Backend>(
    tx: &mut Tx<DB>,
    query: sqlx::query::Query<'_, DB, DB::Arguments>,
    operation: Operation,
) -> Result<Vec<M>, OrmError> {
    let mut models = Vec::new();
    let init = Init::<M, DB>::new();
    crate::backend::for_each_row(tx.own_conn(), query, operation, |row| {
        models.push(init.decode(row, operation)?);
        Ok(())
    })
    .await?;
    Ok(models)
}

/// A statement built by `sql.rs`, with its values bound.
pub(crate) fn built<M: Persist<DB>, DB: Backend>(
    (text, args): (String, Vec<sql::Bound<'_>>),
) -> sqlx::query::Query<'_, DB, DB::Arguments> {
    bind_args::<M, DB>(DB::query_with_room(text.into(), args.len()), &args)
}

/// Binds `args` in order: typed values through the model, text as text.
pub(crate) fn bind_args<'q, M: Persist<DB>, DB: Backend>(
    mut query: sqlx::query::Query<'q, DB, DB::Arguments>,
    args: &[sql::Bound<'q>],
) -> sqlx::query::Query<'q, DB, DB::Arguments> {
    for arg in args {
        query = match arg {
            sql::Bound::Arg(column, Arg::Typed(value)) => M::bind_value(*column, &**value, query),
            sql::Bound::Arg(_, Arg::Text(text)) => DB::bind_text(query, text),
            sql::Bound::Count(n) => DB::bind_i64(query, *n),
        };
    }
    query
}

/// The typed value an assignment holds, moved out; `derive(Model)`'s `set_value` calls it.
///
/// # Panics
///
/// Never for values made by [`Column`]: each holds its column's type.
#[doc(hidden)]
#[must_use]
pub fn take_value<T: 'static>(value: Box<dyn Any + Send + Sync>) -> T {
    *value
        .downcast()
        .expect("a column's value has the column's type (made by Column)")
}

/// The typed value a column's [`Arg`] holds; `derive(Model)`'s `bind_value` calls it.
///
/// # Panics
///
/// Never for values made by [`Column`]: each holds its column's type.
#[doc(hidden)]
#[must_use]
pub fn expect_value<T: 'static>(value: &(dyn Any + Send + Sync)) -> &T {
    value
        .downcast_ref()
        .expect("a column's value has the column's type (made by Column)")
}
