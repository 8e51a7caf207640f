//! Every statement of models and link tables, and the one identifier-quoting rule they share
//! (transaction control, `BEGIN` / `SAVEPOINT`, lives with `Tx` and `Backend`).
//!
//! The fixed texts are built from a model's or a relation's names the first time they are needed
//! and then kept for the life of the program; `update_of` (Django's `update_fields`) and
//! `select_where_pk_in` (`Related::all`) are built per call (`derive(Model)` and `many_to_many!` generate the
//! cache). The multi-row link INSERT of `add` has one text per row count: those of up to
//! `CACHED_INSERT_ROWS` rows are kept once built, longer ones are built per statement. One text
//! serves both backends: `$N` placeholders in ascending order, identifiers in double quotes with
//! inner quotes doubled, values always bound, never formatted in.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::OnceLock;

use crate::model::ModelMeta;
use crate::query::{Arg, Assignment, Node, Query};

/// A SQL identifier in double quotes, inner quotes doubled: any table or column name is
/// written safely, including one that contains `"`.
pub(crate) fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// `$from, $from+1, ...`, `n` placeholders.
fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The statements of one model.
#[doc(hidden)]
#[derive(Debug)]
pub struct ModelSql {
    /// `INSERT` of the non-key columns, `RETURNING` the generated key.
    pub insert: String,
    /// `INSERT` of the key and every column.
    pub insert_with_pk: String,
    /// `UPDATE` of every non-key column by key (key bound last).
    pub update: String,
    /// `DELETE` by key.
    pub delete: String,
    /// `SELECT` of every column (aliased to its field) by key.
    pub select_by_pk: String,
    /// `SELECT` of every column, without a condition.
    select: String,
}

impl ModelSql {
    /// Builds the statements of `meta`'s model.
    #[must_use]
    pub fn new(meta: &ModelMeta) -> Self {
        let table = quote(meta.table);
        let pk = quote(meta.pk_column);
        let columns: Vec<String> = meta.columns.iter().map(|c| quote(c)).collect();
        let insert = if columns.is_empty() {
            format!("INSERT INTO {table} DEFAULT VALUES RETURNING {pk}")
        } else {
            format!(
                "INSERT INTO {table} ({}) VALUES ({}) RETURNING {pk}",
                columns.join(", "),
                placeholders(1, columns.len())
            )
        };
        let insert_with_pk = format!(
            "INSERT INTO {table} ({pk}{}{}) VALUES ({})",
            if columns.is_empty() { "" } else { ", " },
            columns.join(", "),
            placeholders(1, columns.len() + 1)
        );
        let all: Vec<usize> = (0..columns.len()).collect();
        let update = if columns.is_empty() {
            // Nothing to set: touch the key so "does the row exist" still has an answer.
            format!("UPDATE {table} SET {pk} = {pk} WHERE {pk} = $1")
        } else {
            Self::update_of(meta, &all)
        };
        let delete = format!("DELETE FROM {table} WHERE {pk} = $1");
        let select = format!("SELECT {} FROM {table}", selected_columns(meta));
        let select_by_pk = format!("{select} WHERE {pk} = $1");
        ModelSql {
            insert,
            insert_with_pk,
            update,
            delete,
            select_by_pk,
            select,
        }
    }

    /// `UPDATE` of the given columns (by index in [`ModelMeta::columns`]), key bound last
    /// (Django's `update_fields`).
    #[must_use]
    pub fn update_of(meta: &ModelMeta, indexes: &[usize]) -> String {
        let mut sql = format!("UPDATE {} SET ", quote(meta.table));
        for (n, &i) in indexes.iter().enumerate() {
            if n > 0 {
                sql.push_str(", ");
            }
            let _ = write!(sql, "{} = ${}", quote(meta.columns[i]), n + 1);
        }
        let _ = write!(
            sql,
            " WHERE {} = ${}",
            quote(meta.pk_column),
            indexes.len() + 1
        );
        sql
    }

    /// `SELECT` of every column where the key is in `keys` (a subquery), ordered by key.
    pub(crate) fn select_where_pk_in(&self, meta: &ModelMeta, keys: &str) -> String {
        let pk = quote(meta.pk_column);
        format!("{} WHERE {pk} IN ({keys}) ORDER BY {pk}", self.select)
    }
}

/// Every column, key first, each aliased to its field when they differ: what `SELECT` and
/// `RETURNING` list so that a row decodes into the model.
fn selected_columns(meta: &ModelMeta) -> String {
    std::iter::once((meta.pk_column, meta.pk_field))
        .chain(
            meta.columns
                .iter()
                .copied()
                .zip(meta.fields.iter().copied()),
        )
        .map(|(column, field)| select_column(column, field))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A selected column, aliased to the field name when they differ so `sqlx::FromRow` finds it.
fn select_column(column: &str, field: &str) -> String {
    if column == field {
        quote(column)
    } else {
        format!("{} AS {}", quote(column), quote(field))
    }
}

/// Bind parameters one SQLite statement may carry: `SQLITE_MAX_VARIABLE_NUMBER`, 32,766 by
/// default since SQLite 3.32, as in the SQLite sqlx bundles (`Backend::MAX_BIND_PARAMETERS`).
pub(crate) const SQLITE_MAX_BIND_PARAMETERS: usize = 32_766;

/// Bind parameters one PostgreSQL statement may carry: the protocol counts them in 16 bits
/// (`Backend::MAX_BIND_PARAMETERS`).
pub(crate) const POSTGRES_MAX_BIND_PARAMETERS: usize = 65_535;

/// Bind parameters one statement may carry on every backend: the lower of the two limits.
const MAX_BIND_PARAMETERS: usize = if SQLITE_MAX_BIND_PARAMETERS < POSTGRES_MAX_BIND_PARAMETERS {
    SQLITE_MAX_BIND_PARAMETERS
} else {
    POSTGRES_MAX_BIND_PARAMETERS
};

/// The most links one INSERT of [`Related::add`](crate::m2m::Related::add) writes: 16,383.
///
/// Each row binds two parameters (its source and target key), and a statement may bind at most
/// 32,766 on SQLite (its default `SQLITE_MAX_VARIABLE_NUMBER` since 3.32, the SQLite sqlx
/// bundles) and 65,535 on PostgreSQL; half the lower limit fits both. An `add` of more keys
/// runs one INSERT per chunk of this many, in ascending key order, in one transaction.
pub const LINKS_PER_INSERT: usize = MAX_BIND_PARAMETERS / 2;

/// Row counts whose link INSERT text a relation keeps once built (an `add` of up to this many
/// keys builds no text); above it the text is built per statement, one allocation of at most 18
/// bytes a row, little next to the statement's own work.
pub(crate) const CACHED_INSERT_ROWS: usize = 32;

/// What a link INSERT returns.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returning {
    /// Nothing: the rows affected are the links inserted.
    Nothing,
    /// The source key of each link inserted (an add from the target's side).
    Source,
    /// The target key of each link inserted (an add from the source's side).
    Target,
}

/// The statements of a many-to-many link table.
#[doc(hidden)]
#[derive(Debug)]
pub struct ThroughSql {
    /// `SELECT target FROM links WHERE source = $1 ORDER BY target`.
    pub targets_of: String,
    /// `SELECT source FROM links WHERE target = $1 ORDER BY source`.
    pub sources_of: String,
    /// `INSERT INTO "links" ("source", "target") VALUES `, the head of every link INSERT.
    insert_head: String,
    /// ` ON CONFLICT DO NOTHING RETURNING "source"`.
    returning_source: String,
    /// ` ON CONFLICT DO NOTHING RETURNING "target"`.
    returning_target: String,
    /// The link INSERT texts of 1 ..= `CACHED_INSERT_ROWS` rows, by `Returning`, once built.
    inserts: [[OnceLock<Box<str>>; CACHED_INSERT_ROWS]; 3],
    /// `DELETE FROM links WHERE source = $1 AND target = $2`: rows affected tell `remove`
    /// whether this statement unlinked the pair.
    pub delete: String,
    /// `DELETE FROM links WHERE source = $1`.
    pub clear_source: String,
    /// `DELETE FROM links WHERE target = $1`.
    pub clear_target: String,
    /// Symmetrical relations: both directions of one link, in one statement so a concurrent
    /// remove finds neither row or both.
    pub delete_both: String,
    /// Symmetrical relations: every link of `$1`, either side.
    pub clear_both: String,
}

impl ThroughSql {
    /// Builds the statements of the link table `table` (`source`, `target`).
    #[must_use]
    pub fn new(table: &str, source: &str, target: &str) -> Self {
        let (t, s, g) = (quote(table), quote(source), quote(target));
        ThroughSql {
            targets_of: format!("SELECT {g} FROM {t} WHERE {s} = $1 ORDER BY {g}"),
            sources_of: format!("SELECT {s} FROM {t} WHERE {g} = $1 ORDER BY {s}"),
            insert_head: format!("INSERT INTO {t} ({s}, {g}) VALUES "),
            returning_source: format!("{ON_CONFLICT} RETURNING {s}"),
            returning_target: format!("{ON_CONFLICT} RETURNING {g}"),
            inserts: std::array::from_fn(|_| std::array::from_fn(|_| OnceLock::new())),
            delete: format!("DELETE FROM {t} WHERE {s} = $1 AND {g} = $2"),
            clear_source: format!("DELETE FROM {t} WHERE {s} = $1"),
            clear_target: format!("DELETE FROM {t} WHERE {g} = $1"),
            delete_both: format!(
                "DELETE FROM {t} WHERE ({s} = $1 AND {g} = $2) OR ({s} = $2 AND {g} = $1)"
            ),
            clear_both: format!("DELETE FROM {t} WHERE {s} = $1 OR {g} = $1"),
        }
    }

    /// `INSERT INTO links (source, target) VALUES ($1, $2), ($3, $4), ... ON CONFLICT DO
    /// NOTHING`, `rows` rows (1 ..= [`LINKS_PER_INSERT`]), with `RETURNING` the column
    /// `returning` names. A row whose pair is linked already, also by a concurrent transaction
    /// (PostgreSQL waits for it to end first; SQLite writers never overlap), is skipped: it is
    /// neither counted in the rows affected nor returned, so both tell exactly the links this
    /// statement inserted. That rests on the link table's unique key on (source, target),
    /// which `many_to_many!` requires: without one nothing conflicts, and concurrent adds of one
    /// pair may each insert a row.
    ///
    /// Texts of up to `CACHED_INSERT_ROWS` rows are built once and kept.
    ///
    /// `prefix` is the backend's placeholder prefix ([`param_prefix`]) for the texts built per
    /// statement: on SQLite a long text of `$N`, named parameters it looks up one by one, took
    /// time in the square of its length (`?N` does not); the short texts kept use `$N`, which
    /// both backends read.
    pub fn insert_links(&self, rows: usize, returning: Returning, prefix: char) -> Cow<'_, str> {
        debug_assert!(
            (1..=LINKS_PER_INSERT).contains(&rows),
            "{rows} rows in one link INSERT"
        );
        match self.inserts[returning as usize].get(rows.wrapping_sub(1)) {
            Some(cached) => {
                Cow::Borrowed(cached.get_or_init(|| self.build_insert(rows, returning, '$').into()))
            }
            None => Cow::Owned(self.build_insert(rows, returning, prefix)),
        }
    }

    fn build_insert(&self, rows: usize, returning: Returning, p: char) -> String {
        let tail = match returning {
            Returning::Nothing => ON_CONFLICT,
            Returning::Source => &self.returning_source,
            Returning::Target => &self.returning_target,
        };
        // The longest row, `, ($32765, $32766)`, is 18 bytes: one allocation, never grown.
        let mut sql = String::with_capacity(self.insert_head.len() + 18 * rows + tail.len());
        sql.push_str(&self.insert_head);
        for row in 0..rows {
            if row > 0 {
                sql.push_str(", ");
            }
            let _ = write!(sql, "({p}{}, {p}{})", 2 * row + 1, 2 * row + 2);
        }
        sql.push_str(tail);
        sql
    }
}

/// The conflict clause of every link INSERT.
const ON_CONFLICT: &str = " ON CONFLICT DO NOTHING";

// ---- choosing rows: a `Query`'s condition, order and limit -------------------------------
//
// Built per call, for the backend that runs them: placeholders are `$N` on PostgreSQL and
// `?N` on SQLite, where `$N` is a named parameter that SQLite looks up by name as it parses,
// one search per parameter through those before it (a long `IN` list or a chunk of keys took
// time in the square of its length); `?N` in ascending order is not searched.

/// The placeholder prefix of backend `DB`: `$` on PostgreSQL, `?` on SQLite (followed by the
/// parameter's number on both).
pub(crate) fn param_prefix<DB: crate::Backend>() -> char {
    if DB::ANONYMOUS_PLACEHOLDERS { '?' } else { '$' }
}

/// Whether backend `DB` locks the rows a write selects before writing them (`FOR UPDATE`):
/// PostgreSQL. SQLite's write lock, taken by `BEGIN IMMEDIATE`, already keeps other writers
/// out.
pub(crate) fn locks_rows<DB: crate::Backend>() -> bool {
    <DB as crate::Backend>::NAME == "postgres"
}

/// One value a statement binds, in placeholder order: a value of a column's type (by column
/// index, 0 for the key), or a row count (`LIMIT` / `OFFSET`, bound like any value).
pub(crate) enum Bound<'a> {
    Arg(usize, &'a Arg),
    Count(i64),
}

/// What a `SELECT` of a [`Query`] returns.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Selected {
    /// Every column of every row.
    Rows,
    /// Every column of the first row (ordered by key when the query has no order).
    First,
    /// `COUNT(*)` of the rows.
    Count,
    /// One row, if any (`SELECT 1 .. LIMIT 1`).
    Exists,
    /// Every column of up to two rows, in no order, locked with `FOR UPDATE` when `true`:
    /// enough to tell one matching row from several.
    UpToTwo(bool),
    /// Every column of every row, by key, locked with `FOR UPDATE` when `true`: the rows a
    /// delete collects whole.
    Locked(bool),
    /// The key of every row, by key, locked with `FOR UPDATE` when `true`: the rows a delete
    /// collects by key.
    LockedKeys(bool),
}

/// A column by index (0: the key, `i + 1`: field `i`), quoted.
pub(crate) fn column(meta: &ModelMeta, index: usize) -> String {
    quote(match index {
        0 => meta.pk_column,
        i => meta.columns[i - 1],
    })
}

/// Writes `node` as SQL, its values as numbered placeholders (`p` is `$` or `?`, see
/// [`param_prefix`]) numbered after the `args` already
/// bound (plus `offset`, for values bound before the condition, such as an UPDATE's), and
/// pushes them onto `args` in the same order.
pub(crate) fn push_condition<'a>(
    meta: &ModelMeta,
    p: char,
    node: &'a Node,
    offset: usize,
    sql: &mut String,
    args: &mut Vec<Bound<'a>>,
) {
    match node {
        Node::Compare {
            column: c,
            op,
            value,
        } => {
            args.push(Bound::Arg(*c, value));
            let _ = write!(
                sql,
                "{} {} {p}{}",
                column(meta, *c),
                op.sql(),
                offset + args.len()
            );
        }
        Node::In { values, .. } if values.is_empty() => sql.push_str("1 = 0"),
        Node::In { column: c, values } => {
            let _ = write!(sql, "{} IN (", column(meta, *c));
            for (i, value) in values.iter().enumerate() {
                args.push(Bound::Arg(*c, value));
                let comma = if i == 0 { "" } else { ", " };
                let _ = write!(sql, "{comma}{p}{}", offset + args.len());
            }
            sql.push(')');
        }
        Node::Null { column: c, null } => {
            let not = if *null { "" } else { "NOT " };
            let _ = write!(sql, "{} IS {not}NULL", column(meta, *c));
        }
        Node::And(a, b) | Node::Or(a, b) => {
            let op = if matches!(node, Node::And(..)) {
                "AND"
            } else {
                "OR"
            };
            sql.push('(');
            push_condition(meta, p, a, offset, sql, args);
            let _ = write!(sql, " {op} ");
            push_condition(meta, p, b, offset, sql, args);
            sql.push(')');
        }
        Node::Not(a) => {
            sql.push_str("NOT (");
            push_condition(meta, p, a, offset, sql, args);
            sql.push(')');
        }
    }
}

/// ` WHERE condition`, or nothing for a query of every row.
pub(crate) fn push_where<'a, M>(
    meta: &ModelMeta,
    p: char,
    query: &'a Query<M>,
    offset: usize,
    sql: &mut String,
    args: &mut Vec<Bound<'a>>,
) {
    if let Some(node) = &query.filter {
        sql.push_str(" WHERE ");
        push_condition(meta, p, node, offset, sql, args);
    }
}

/// ` ORDER BY .. LIMIT $n OFFSET $m` of a query (`first` orders by key when nothing else).
fn push_order_and_limit<'a, M>(
    meta: &ModelMeta,
    p: char,
    query: &'a Query<M>,
    first: bool,
    sql: &mut String,
    args: &mut Vec<Bound<'a>>,
) {
    if query.order.is_empty() {
        if first {
            let _ = write!(sql, " ORDER BY {}", quote(meta.pk_column));
        }
    } else {
        for (i, order) in query.order.iter().enumerate() {
            let by = if i == 0 { " ORDER BY " } else { ", " };
            let direction = if order.descending { " DESC" } else { "" };
            let _ = write!(sql, "{by}{}{direction}", column(meta, order.column));
        }
    }
    let limit = if first { Some(1) } else { query.limit };
    // SQLite takes OFFSET only after a LIMIT, and the two databases spell "no limit"
    // differently; the largest count means the same on both.
    if limit.is_none() && query.offset.is_none() {
        return;
    }
    let count = |rows: Option<u64>| {
        Bound::Count(rows.map_or(i64::MAX, |r| i64::try_from(r).unwrap_or(i64::MAX)))
    };
    args.push(count(limit));
    let _ = write!(sql, " LIMIT {p}{}", args.len());
    if let Some(rows) = query.offset {
        args.push(count(Some(rows)));
        let _ = write!(sql, " OFFSET {p}{}", args.len());
    }
}

/// `UPDATE table SET assigned = $1, .. [WHERE condition] [RETURNING every column]`: a
/// filtered update no `pre_save` receiver hears.
pub(crate) fn update_where<'a, M>(
    meta: &ModelMeta,
    p: char,
    query: &'a Query<M>,
    assigned: &'a [Assignment<M>],
    returning: bool,
) -> (String, Vec<Bound<'a>>) {
    let mut args = Vec::new();
    let mut sql = format!("UPDATE {} SET ", quote(meta.table));
    for (i, assignment) in assigned.iter().enumerate() {
        args.push(Bound::Arg(assignment.column, &assignment.value));
        let comma = if i == 0 { "" } else { ", " };
        let _ = write!(
            sql,
            "{comma}{} = {p}{}",
            column(meta, assignment.column),
            args.len()
        );
    }
    push_where(meta, p, query, 0, &mut sql, &mut args);
    if returning {
        let _ = write!(sql, " RETURNING {}", selected_columns(meta));
    }
    (sql, args)
}

/// The next `rows` rows of a filtered update, by key: `SELECT every column WHERE condition
/// [AND key > $k] ORDER BY key LIMIT $n [FOR UPDATE]`; the key after which to start is bound
/// last, by the caller, when `after` is set.
pub(crate) fn select_chunk_after<'a, M>(
    meta: &ModelMeta,
    p: char,
    statements: &ModelSql,
    query: &'a Query<M>,
    after: bool,
    rows: usize,
    lock: bool,
) -> (String, Vec<Bound<'a>>) {
    let pk = quote(meta.pk_column);
    let mut args = Vec::new();
    let mut sql = statements.select.clone();
    push_where(meta, p, query, 0, &mut sql, &mut args);
    args.push(Bound::Count(i64::try_from(rows).unwrap_or(i64::MAX)));
    let limit = args.len();
    if after {
        let joined = if query.filter.is_some() {
            " AND"
        } else {
            " WHERE"
        };
        let _ = write!(sql, "{joined} {pk} > {p}{}", limit + 1);
    }
    let _ = write!(sql, " ORDER BY {pk} LIMIT {p}{limit}");
    if lock {
        sql.push_str(" FOR UPDATE");
    }
    (sql, args)
}

impl ModelSql {
    /// [`ModelSql::case_update`] of `rows` rows returning each row as written: a filtered
    /// update whose `pre_save` receivers saw them.
    pub(crate) fn case_update_returning(
        meta: &ModelMeta,
        indexes: &[usize],
        rows: usize,
        anonymous: bool,
    ) -> String {
        let mut sql = Self::case_update(meta, indexes, rows, false, anonymous);
        let _ = write!(sql, " RETURNING {}", selected_columns(meta));
        sql
    }
}

/// `DELETE FROM table [WHERE condition]`: a filtered delete nobody hears.
pub(crate) fn delete_where<'a, M>(
    meta: &ModelMeta,
    p: char,
    query: &'a Query<M>,
) -> (String, Vec<Bound<'a>>) {
    let mut args = Vec::new();
    let mut sql = format!("DELETE FROM {}", quote(meta.table));
    push_where(meta, p, query, 0, &mut sql, &mut args);
    (sql, args)
}

/// The next `rows` rows of a filtered delete, by key: `SELECT every column WHERE condition
/// ORDER BY key LIMIT $n`, `FOR UPDATE` where the database locks rows (so they cannot change or
/// go between their `pre_delete` and their DELETE).
pub(crate) fn select_chunk<'a, M>(
    meta: &ModelMeta,
    p: char,
    statements: &ModelSql,
    query: &'a Query<M>,
    rows: usize,
    lock: bool,
) -> (String, Vec<Bound<'a>>) {
    let mut args = Vec::new();
    let mut sql = statements.select.clone();
    push_where(meta, p, query, 0, &mut sql, &mut args);
    args.push(Bound::Count(i64::try_from(rows).unwrap_or(i64::MAX)));
    let _ = write!(
        sql,
        " ORDER BY {} LIMIT {p}{}",
        quote(meta.pk_column),
        args.len()
    );
    if lock {
        sql.push_str(" FOR UPDATE");
    }
    (sql, args)
}

/// `DELETE FROM table WHERE column IN ($1, .. $n) [RETURNING every column]`, `column` by index
/// (0: the key): the rows whose `pre_delete` was sent, by key, or a relation's children by
/// their foreign key.
pub(crate) fn delete_where_in(
    meta: &ModelMeta,
    p: char,
    column_index: usize,
    keys: usize,
    returning: bool,
) -> String {
    let mut sql = format!("DELETE FROM {} WHERE ", quote(meta.table));
    push_in(&mut sql, meta, p, column_index, 1, keys);
    if returning {
        let _ = write!(sql, " RETURNING {}", selected_columns(meta));
    }
    sql
}

/// `column IN ({p}from, .. {p}from+n-1)`; on SQLite (`p` is `?`) bare `?`s, bound in order,
/// because SQLite looks a numbered one up among those before it (a 1,000-key list cost
/// milliseconds).
fn push_in(
    sql: &mut String,
    meta: &ModelMeta,
    p: char,
    column_index: usize,
    from: usize,
    n: usize,
) {
    let _ = write!(sql, "{} IN (", column(meta, column_index));
    for i in from..from + n {
        if i != from {
            sql.push_str(", ");
        }
        if p == '?' {
            sql.push('?');
        } else {
            let _ = write!(sql, "{p}{i}");
        }
    }
    sql.push(')');
}

/// `SELECT every column (or the key) WHERE column IN ($1, .. $n) ORDER BY key [FOR UPDATE]`:
/// the children of some parents, for the delete collector.
pub(crate) fn select_where_in(
    meta: &ModelMeta,
    statements: &ModelSql,
    p: char,
    column_index: usize,
    keys: usize,
    rows: bool,
    lock: bool,
) -> String {
    let mut sql = if rows {
        statements.select.clone()
    } else {
        format!(
            "SELECT {} FROM {}",
            quote(meta.pk_column),
            quote(meta.table)
        )
    };
    sql.push_str(" WHERE ");
    push_in(&mut sql, meta, p, column_index, 1, keys);
    let _ = write!(sql, " ORDER BY {}", quote(meta.pk_column));
    if lock {
        sql.push_str(" FOR UPDATE");
    }
    sql
}

/// `UPDATE table SET column = $1 WHERE column IN ($2, .. $n+1)`: a relation's `set_null` or
/// `set_default`.
pub(crate) fn update_where_in(
    meta: &ModelMeta,
    p: char,
    column_index: usize,
    keys: usize,
) -> String {
    let first = if p == '?' {
        String::from("?")
    } else {
        format!("{p}1")
    };
    let mut sql = format!(
        "UPDATE {} SET {} = {first} WHERE ",
        quote(meta.table),
        column(meta, column_index)
    );
    push_in(&mut sql, meta, p, column_index, 2, keys);
    sql
}

/// The next `rows` rows of a filtered delete that only `post_delete` hears, deleted and
/// returned in one statement: `DELETE .. WHERE key IN (SELECT key .. WHERE condition ORDER BY
/// key LIMIT $n [FOR UPDATE]) AND condition RETURNING every column`. The condition is checked
/// again on the row the DELETE sees, so a row a concurrent transaction changed meanwhile is
/// deleted only if it still matches.
pub(crate) fn delete_chunk_returning<'a, M>(
    meta: &ModelMeta,
    p: char,
    query: &'a Query<M>,
    rows: usize,
    lock: bool,
) -> (String, Vec<Bound<'a>>) {
    let table = quote(meta.table);
    let pk = quote(meta.pk_column);
    let mut args = Vec::new();
    let mut sql = format!("DELETE FROM {table} WHERE {pk} IN (SELECT {pk} FROM {table}");
    push_where(meta, p, query, 0, &mut sql, &mut args);
    args.push(Bound::Count(i64::try_from(rows).unwrap_or(i64::MAX)));
    let _ = write!(sql, " ORDER BY {pk} LIMIT {p}{}", args.len());
    if lock {
        sql.push_str(" FOR UPDATE");
    }
    sql.push(')');
    if let Some(node) = &query.filter {
        sql.push_str(" AND ");
        push_condition(meta, p, node, 0, &mut sql, &mut args);
    }
    let _ = write!(sql, " RETURNING {}", selected_columns(meta));
    (sql, args)
}

/// The `SELECT` of a query, and the values it binds in placeholder order.
pub(crate) fn select<'a, M>(
    meta: &ModelMeta,
    p: char,
    statements: &ModelSql,
    query: &'a Query<M>,
    selected: Selected,
) -> (String, Vec<Bound<'a>>) {
    let mut args = Vec::new();
    let mut sql = match selected {
        Selected::Rows | Selected::First | Selected::UpToTwo(_) | Selected::Locked(_) => {
            statements.select.clone()
        }
        Selected::LockedKeys(_) => {
            format!(
                "SELECT {} FROM {}",
                quote(meta.pk_column),
                quote(meta.table)
            )
        }
        Selected::Count | Selected::Exists => format!("SELECT 1 FROM {}", quote(meta.table)),
    };
    push_where(meta, p, query, 0, &mut sql, &mut args);
    match selected {
        Selected::Rows => push_order_and_limit(meta, p, query, false, &mut sql, &mut args),
        Selected::First => push_order_and_limit(meta, p, query, true, &mut sql, &mut args),
        Selected::UpToTwo(lock) => {
            args.push(Bound::Count(2));
            let _ = write!(sql, " LIMIT {p}{}", args.len());
            if lock {
                sql.push_str(" FOR UPDATE");
            }
        }
        Selected::Locked(lock) | Selected::LockedKeys(lock) => {
            let _ = write!(sql, " ORDER BY {}", quote(meta.pk_column));
            if lock {
                sql.push_str(" FOR UPDATE");
            }
        }
        Selected::Count if query.limit.is_none() && query.offset.is_none() => {
            sql = format!("SELECT COUNT(*) FROM {}", &sql["SELECT 1 FROM ".len()..]);
        }
        Selected::Count => {
            push_order_and_limit(meta, p, query, false, &mut sql, &mut args);
            sql = format!("SELECT COUNT(*) FROM ({sql}) AS \"selected\"");
        }
        Selected::Exists => {
            push_order_and_limit(meta, p, query, false, &mut sql, &mut args);
            sql = format!("SELECT 1 FROM ({sql}) AS \"selected\" LIMIT 1");
        }
    }
    (sql, args)
}

// ==== bulk writes: `ModelExt::bulk_insert` and `ModelExt::bulk_update` ======================
//
// Their texts grow with the rows of the statement, so they are built per statement (one
// allocation of about the final size) and never kept. Unlike the texts above, they are written
// for their backend: `?` placeholders on SQLite (`Backend::ANONYMOUS_PLACEHOLDERS`), `$N` on
// PostgreSQL, always numbered in the order they are bound, so one binding serves both.

/// The most rows one `bulk_update` statement sets: 500.
///
/// Each column's `CASE` lists every row of the statement, and both databases try the `WHEN`s
/// one by one for each row, so a statement's work grows with the square of its rows: 32,767
/// rows of one column took 535 s on PostgreSQL and 16,383 took 6.3 s on SQLite. Between 100 and
/// 500 rows a row costs about as much as at 100 (2 to 7 µs on SQLite, 10 to 23 µs on
/// PostgreSQL, one to three columns, release build), against a round trip per row for `save`.
pub(crate) const UPDATE_ROWS: usize = 500;

/// How many rows one bulk statement takes when each row binds `per_row` parameters and a
/// statement may bind `max_parameters` ([`Backend::MAX_BIND_PARAMETERS`](crate::Backend)):
/// `max_parameters / per_row`, and one row for a row that binds nothing (a model whose only
/// column is its generated key, inserted with `DEFAULT VALUES`).
pub(crate) const fn bulk_rows(max_parameters: usize, per_row: usize) -> usize {
    if per_row == 0 || per_row > max_parameters {
        1
    } else {
        max_parameters / per_row
    }
}

/// Placeholder `n` (from 1): `$n`, or `?` for a backend that binds in order.
fn push_placeholder(sql: &mut String, n: usize, anonymous: bool) {
    if anonymous {
        sql.push('?');
    } else {
        let _ = write!(sql, "${n}");
    }
}

/// The bytes `last` placeholders take at most, each with `extra` bytes around it.
fn placeholder_bytes(last: usize, extra: usize) -> usize {
    let digits = last.checked_ilog10().map_or(1, |d| d as usize + 1);
    last * (1 + digits + extra)
}

impl ModelSql {
    /// The multi-row `INSERT` of [`bulk_insert`](crate::ModelExt::bulk_insert), `rows` rows of
    /// `meta`'s model, `anonymous` for `?` placeholders.
    ///
    /// Generated keys (`with_pk = false`): `INSERT INTO "people" ("name", "email_address")
    /// VALUES ($1, $2), ($3, $4) RETURNING "id"`; the rows come back in `VALUES` order on
    /// PostgreSQL and SQLite (observed, and relied on by Django's `bulk_create`; neither
    /// database documents it), which is how each instance gets its key. A model whose only
    /// column is its generated key has no `VALUES` row to write: its text is the one-row
    /// `DEFAULT VALUES` insert (`rows` must be 1).
    ///
    /// Keys given (`with_pk = true`): `INSERT INTO "people" ("id", "name", "email_address")
    /// VALUES ($1, $2, $3), ($4, $5, $6)`, the key first in each row, as [`bind_pk`] then
    /// [`bind_fields`] bind it.
    ///
    /// [`bind_pk`]: crate::Persist::bind_pk
    /// [`bind_fields`]: crate::Persist::bind_fields
    pub(crate) fn bulk_insert(
        meta: &ModelMeta,
        rows: usize,
        with_pk: bool,
        anonymous: bool,
    ) -> String {
        let table = quote(meta.table);
        let pk = quote(meta.pk_column);
        let per_row = meta.columns.len() + usize::from(with_pk);
        if per_row == 0 {
            debug_assert_eq!(rows, 1, "a row binding nothing is inserted alone");
            return format!("INSERT INTO {table} DEFAULT VALUES RETURNING {pk}");
        }
        let columns: Vec<String> = with_pk
            .then(|| pk.clone())
            .into_iter()
            .chain(meta.columns.iter().map(|c| quote(c)))
            .collect();
        let head = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
        // `, ` between placeholders, `), (` between rows: at most 4 bytes each.
        let mut sql = String::with_capacity(
            head.len() + placeholder_bytes(rows * per_row, 4) + 12 + pk.len(),
        );
        sql.push_str(&head);
        for row in 0..rows {
            sql.push_str(if row == 0 { "(" } else { "), (" });
            for column in 0..per_row {
                if column > 0 {
                    sql.push_str(", ");
                }
                push_placeholder(&mut sql, row * per_row + column + 1, anonymous);
            }
        }
        sql.push(')');
        if !with_pk {
            let _ = write!(sql, " RETURNING {pk}");
        }
        sql
    }

    /// The `UPDATE` of [`bulk_update`](crate::ModelExt::bulk_update), Django's form: the
    /// columns at `indexes` (in [`ModelMeta::columns`]) of `rows` rows, each column set by the
    /// row's key with `CASE`, for the rows whose key is listed:
    ///
    /// ```text
    /// UPDATE "people" SET "name" = CASE "id" WHEN $1 THEN $2 WHEN $3 THEN $4 END,
    ///   "email_address" = CASE "id" WHEN $5 THEN $6 WHEN $7 THEN $8 END
    ///   WHERE "id" IN ($9, $10)
    /// ```
    ///
    /// (one line; `?` for each placeholder when `anonymous`). Each column binds, row by row,
    /// the key then the value; the `IN` list binds the keys again: `2 * indexes.len() + 1`
    /// parameters a row. `returning` adds `RETURNING "id"`: the keys of the rows updated. Every
    /// value is bound with its Rust type, so on PostgreSQL each `CASE` has its column's type
    /// without the casts Django adds.
    pub(crate) fn case_update(
        meta: &ModelMeta,
        indexes: &[usize],
        rows: usize,
        returning: bool,
        anonymous: bool,
    ) -> String {
        let table = quote(meta.table);
        let pk = quote(meta.pk_column);
        let placeholders = rows * (2 * indexes.len() + 1);
        let mut sql = String::with_capacity(
            48 + table.len()
                + (indexes.len() + 2) * pk.len()
                + indexes
                    .iter()
                    .map(|&i| meta.columns[i].len() + 24)
                    .sum::<usize>()
                + placeholder_bytes(placeholders, 0)
                + rows * (indexes.len() * 12 + 2),
        );
        let _ = write!(sql, "UPDATE {table} SET ");
        let mut n = 0;
        for (c, &i) in indexes.iter().enumerate() {
            if c > 0 {
                sql.push_str(", ");
            }
            let _ = write!(sql, "{} = CASE {pk}", quote(meta.columns[i]));
            for _ in 0..rows {
                sql.push_str(" WHEN ");
                push_placeholder(&mut sql, n + 1, anonymous);
                sql.push_str(" THEN ");
                push_placeholder(&mut sql, n + 2, anonymous);
                n += 2;
            }
            sql.push_str(" END");
        }
        let _ = write!(sql, " WHERE {pk} IN (");
        for row in 0..rows {
            if row > 0 {
                sql.push_str(", ");
            }
            n += 1;
            push_placeholder(&mut sql, n, anonymous);
        }
        sql.push(')');
        if returning {
            let _ = write!(sql, " RETURNING {pk}");
        }
        sql
    }
}

#[cfg(test)]
mod bulk_tests {
    use super::tests::PERSON;
    use super::{ModelSql, UPDATE_ROWS, bulk_rows};
    use crate::model::ModelMeta;

    #[test]
    fn a_bulk_insert_writes_one_row_of_placeholders_per_instance() {
        assert_eq!(
            ModelSql::bulk_insert(&PERSON, 2, false, false),
            r#"INSERT INTO "people" ("name", "email_address") VALUES ($1, $2), ($3, $4) RETURNING "id""#
        );
        assert_eq!(
            ModelSql::bulk_insert(&PERSON, 2, true, false),
            r#"INSERT INTO "people" ("id", "name", "email_address") VALUES ($1, $2, $3), ($4, $5, $6)"#
        );
        assert_eq!(
            ModelSql::bulk_insert(&PERSON, 3, false, true),
            r#"INSERT INTO "people" ("name", "email_address") VALUES (?, ?), (?, ?), (?, ?) RETURNING "id""#
        );
        let bare = ModelMeta {
            fields: &[],
            columns: &[],
            ..PERSON
        };
        assert_eq!(
            ModelSql::bulk_insert(&bare, 1, false, false),
            r#"INSERT INTO "people" DEFAULT VALUES RETURNING "id""#
        );
        assert_eq!(
            ModelSql::bulk_insert(&bare, 2, true, true),
            r#"INSERT INTO "people" ("id") VALUES (?), (?)"#
        );
        let odd = ModelMeta {
            table: r#"odd"table"#,
            pk_column: r#"i"d"#,
            columns: &[r#"na"me"#, "email_address"],
            ..PERSON
        };
        assert_eq!(
            ModelSql::bulk_insert(&odd, 1, false, false),
            r#"INSERT INTO "odd""table" ("na""me", "email_address") VALUES ($1, $2) RETURNING "i""d""#
        );
    }

    #[test]
    fn a_bulk_update_sets_each_column_by_key_with_case() {
        assert_eq!(
            ModelSql::case_update(&PERSON, &[0, 1], 2, false, false),
            concat!(
                r#"UPDATE "people" SET "name" = CASE "id" WHEN $1 THEN $2 WHEN $3 THEN $4 END, "#,
                r#""email_address" = CASE "id" WHEN $5 THEN $6 WHEN $7 THEN $8 END "#,
                r#"WHERE "id" IN ($9, $10)"#
            )
        );
        assert_eq!(
            ModelSql::case_update(&PERSON, &[1], 2, true, true),
            r#"UPDATE "people" SET "email_address" = CASE "id" WHEN ? THEN ? WHEN ? THEN ? END WHERE "id" IN (?, ?) RETURNING "id""#
        );
    }

    #[test]
    fn long_texts_number_every_placeholder_in_binding_order() {
        let insert = ModelSql::bulk_insert(&PERSON, 16_383, false, false);
        assert!(insert.ends_with(r#"($32765, $32766) RETURNING "id""#));
        assert_eq!(insert.matches('$').count(), 32_766);
        let update = ModelSql::case_update(&PERSON, &[0, 1], UPDATE_ROWS, false, false);
        let last = UPDATE_ROWS * 5;
        assert!(
            update.ends_with(&format!(", ${last})")),
            "{}",
            &update[update.len() - 40..]
        );
        assert_eq!(update.matches('$').count(), last);
        assert_eq!(update.matches('?').count(), 0);
    }

    #[test]
    fn rows_per_statement_stay_within_the_parameter_limit() {
        assert_eq!(bulk_rows(32_766, 1), 32_766);
        assert_eq!(bulk_rows(32_766, 2), 16_383);
        assert_eq!(bulk_rows(65_535, 3), 21_845);
        assert_eq!(
            bulk_rows(32_766, 0),
            1,
            "DEFAULT VALUES, one row a statement"
        );
        assert_eq!(bulk_rows(10, 11), 1);
    }
}

// ==== end of bulk writes ===================================================================

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::{CACHED_INSERT_ROWS, LINKS_PER_INSERT, ModelSql, Returning, ThroughSql};
    use crate::model::ModelMeta;

    pub(super) const PERSON: ModelMeta = ModelMeta {
        name: "Person",
        table: "people",
        pk_field: "id",
        pk_column: "id",
        pk_generated: true,
        fields: &["name", "email"],
        columns: &["name", "email_address"],
        schema: &[],
    };

    #[test]
    fn one_text_per_statement_with_fields_aliased_to_columns() {
        let sql = ModelSql::new(&PERSON);
        assert_eq!(
            sql.insert,
            r#"INSERT INTO "people" ("name", "email_address") VALUES ($1, $2) RETURNING "id""#
        );
        assert_eq!(
            sql.insert_with_pk,
            r#"INSERT INTO "people" ("id", "name", "email_address") VALUES ($1, $2, $3)"#
        );
        assert_eq!(
            sql.update,
            r#"UPDATE "people" SET "name" = $1, "email_address" = $2 WHERE "id" = $3"#
        );
        assert_eq!(sql.delete, r#"DELETE FROM "people" WHERE "id" = $1"#);
        assert_eq!(
            sql.select_by_pk,
            r#"SELECT "id", "name", "email_address" AS "email" FROM "people" WHERE "id" = $1"#
        );
        assert_eq!(
            ModelSql::update_of(&PERSON, &[1]),
            r#"UPDATE "people" SET "email_address" = $1 WHERE "id" = $2"#
        );
        assert_eq!(
            sql.select_where_pk_in(&PERSON, "SELECT 1"),
            r#"SELECT "id", "name", "email_address" AS "email" FROM "people" WHERE "id" IN (SELECT 1) ORDER BY "id""#
        );
    }

    #[test]
    fn a_model_without_fields_still_has_every_statement() {
        let meta = ModelMeta {
            fields: &[],
            columns: &[],
            ..PERSON
        };
        let sql = ModelSql::new(&meta);
        assert_eq!(
            sql.insert,
            r#"INSERT INTO "people" DEFAULT VALUES RETURNING "id""#
        );
        assert_eq!(
            sql.insert_with_pk,
            r#"INSERT INTO "people" ("id") VALUES ($1)"#
        );
        assert_eq!(
            sql.update,
            r#"UPDATE "people" SET "id" = "id" WHERE "id" = $1"#
        );
    }

    #[test]
    fn link_statements_name_their_pairs_so_rows_affected_or_returned_tell_what_changed() {
        let links = ThroughSql::new("post_tags", "post_id", "tag_id");
        assert_eq!(
            links.targets_of,
            r#"SELECT "tag_id" FROM "post_tags" WHERE "post_id" = $1 ORDER BY "tag_id""#
        );
        assert_eq!(
            links.sources_of,
            r#"SELECT "post_id" FROM "post_tags" WHERE "tag_id" = $1 ORDER BY "post_id""#
        );
        assert_eq!(
            links.insert_links(1, Returning::Nothing, '$'),
            r#"INSERT INTO "post_tags" ("post_id", "tag_id") VALUES ($1, $2) ON CONFLICT DO NOTHING"#
        );
        assert_eq!(
            links.delete,
            r#"DELETE FROM "post_tags" WHERE "post_id" = $1 AND "tag_id" = $2"#
        );
        assert_eq!(
            links.delete_both,
            r#"DELETE FROM "post_tags" WHERE ("post_id" = $1 AND "tag_id" = $2) OR ("post_id" = $2 AND "tag_id" = $1)"#
        );
        assert_eq!(
            links.clear_source,
            r#"DELETE FROM "post_tags" WHERE "post_id" = $1"#
        );
        assert_eq!(
            links.clear_target,
            r#"DELETE FROM "post_tags" WHERE "tag_id" = $1"#
        );
        assert_eq!(
            links.clear_both,
            r#"DELETE FROM "post_tags" WHERE "post_id" = $1 OR "tag_id" = $1"#
        );
    }

    #[test]
    fn quotes_inside_names_are_doubled_everywhere() {
        let meta = ModelMeta {
            table: r#"odd"table"#,
            pk_column: r#"i"d"#,
            columns: &[r#"na"me"#, "email_address"],
            ..PERSON
        };
        let sql = ModelSql::new(&meta);
        assert_eq!(
            sql.insert,
            r#"INSERT INTO "odd""table" ("na""me", "email_address") VALUES ($1, $2) RETURNING "i""d""#
        );
        assert_eq!(sql.delete, r#"DELETE FROM "odd""table" WHERE "i""d" = $1"#);
        let links = ThroughSql::new(r#"post"tags"#, r#"po"st"#, "tag");
        assert_eq!(
            links.insert_links(1, Returning::Nothing, '$'),
            r#"INSERT INTO "post""tags" ("po""st", "tag") VALUES ($1, $2) ON CONFLICT DO NOTHING"#
        );
        assert_eq!(
            links.insert_links(2, Returning::Source, '$'),
            r#"INSERT INTO "post""tags" ("po""st", "tag") VALUES ($1, $2), ($3, $4) ON CONFLICT DO NOTHING RETURNING "po""st""#
        );
        assert_eq!(
            links.targets_of,
            r#"SELECT "tag" FROM "post""tags" WHERE "po""st" = $1 ORDER BY "tag""#
        );
    }

    #[test]
    fn a_link_insert_writes_every_row_and_returns_the_other_side_of_those_inserted() {
        let links = ThroughSql::new("post_tags", "post_id", "tag_id");
        let head = r#"INSERT INTO "post_tags" ("post_id", "tag_id") VALUES ($1, $2), ($3, $4), ($5, $6) ON CONFLICT DO NOTHING"#;
        assert_eq!(links.insert_links(3, Returning::Nothing, '$'), head);
        assert_eq!(
            links.insert_links(3, Returning::Target, '$'),
            format!(r#"{head} RETURNING "tag_id""#)
        );
        assert_eq!(
            links.insert_links(3, Returning::Source, '$'),
            format!(r#"{head} RETURNING "post_id""#)
        );
    }

    #[test]
    fn short_link_inserts_are_built_once_and_long_ones_per_call() {
        let links = ThroughSql::new("post_tags", "post_id", "tag_id");
        for rows in [1, 5, CACHED_INSERT_ROWS] {
            let first = links.insert_links(rows, Returning::Target, '$');
            let again = links.insert_links(rows, Returning::Target, '$');
            assert!(
                matches!((&first, &again), (Cow::Borrowed(a), Cow::Borrowed(b)) if std::ptr::eq(*a, *b)),
                "{rows} rows: one kept text"
            );
            assert_eq!(first.matches("), (").count(), rows - 1);
        }
        assert!(matches!(
            links.insert_links(CACHED_INSERT_ROWS + 1, Returning::Target, '$'),
            Cow::Owned(_)
        ));
        let longest = links.insert_links(LINKS_PER_INSERT, Returning::Nothing, '$');
        assert!(
            longest.contains(&format!(
                "(${}, ${}) ON CONFLICT DO NOTHING",
                LINKS_PER_INSERT * 2 - 1,
                LINKS_PER_INSERT * 2
            )),
            "the last row binds the last parameter"
        );
        const {
            assert!(
                LINKS_PER_INSERT == 16_383 && LINKS_PER_INSERT * 2 <= 32_766,
                "the documented size, within SQLite's bind limit (PostgreSQL's 65,535 is higher)"
            );
        }
    }
}
