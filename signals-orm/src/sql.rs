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
        let selected: Vec<String> = std::iter::once((meta.pk_column, meta.pk_field))
            .chain(
                meta.columns
                    .iter()
                    .copied()
                    .zip(meta.fields.iter().copied()),
            )
            .map(|(column, field)| select_column(column, field))
            .collect();
        let select = format!("SELECT {} FROM {table}", selected.join(", "));
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

/// A selected column, aliased to the field name when they differ so `sqlx::FromRow` finds it.
fn select_column(column: &str, field: &str) -> String {
    if column == field {
        quote(column)
    } else {
        format!("{} AS {}", quote(column), quote(field))
    }
}

/// Bind parameters one statement may carry on every backend: SQLite's limit
/// (`SQLITE_MAX_VARIABLE_NUMBER`, 32,766 by default since SQLite 3.32, as in the SQLite sqlx
/// bundles), the lower of the two; PostgreSQL's is 65,535.
const MAX_BIND_PARAMETERS: usize = 32_766;

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
    pub fn insert_links(&self, rows: usize, returning: Returning) -> Cow<'_, str> {
        debug_assert!(
            (1..=LINKS_PER_INSERT).contains(&rows),
            "{rows} rows in one link INSERT"
        );
        match self.inserts[returning as usize].get(rows.wrapping_sub(1)) {
            Some(cached) => {
                Cow::Borrowed(cached.get_or_init(|| self.build_insert(rows, returning).into()))
            }
            None => Cow::Owned(self.build_insert(rows, returning)),
        }
    }

    fn build_insert(&self, rows: usize, returning: Returning) -> String {
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
            let _ = write!(sql, "(${}, ${})", 2 * row + 1, 2 * row + 2);
        }
        sql.push_str(tail);
        sql
    }
}

/// The conflict clause of every link INSERT.
const ON_CONFLICT: &str = " ON CONFLICT DO NOTHING";

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::{CACHED_INSERT_ROWS, LINKS_PER_INSERT, ModelSql, Returning, ThroughSql};
    use crate::model::ModelMeta;

    const PERSON: ModelMeta = ModelMeta {
        name: "Person",
        table: "people",
        pk_field: "id",
        pk_column: "id",
        pk_generated: true,
        fields: &["name", "email"],
        columns: &["name", "email_address"],
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
            links.insert_links(1, Returning::Nothing),
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
            links.insert_links(1, Returning::Nothing),
            r#"INSERT INTO "post""tags" ("po""st", "tag") VALUES ($1, $2) ON CONFLICT DO NOTHING"#
        );
        assert_eq!(
            links.insert_links(2, Returning::Source),
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
        assert_eq!(links.insert_links(3, Returning::Nothing), head);
        assert_eq!(
            links.insert_links(3, Returning::Target),
            format!(r#"{head} RETURNING "tag_id""#)
        );
        assert_eq!(
            links.insert_links(3, Returning::Source),
            format!(r#"{head} RETURNING "post_id""#)
        );
    }

    #[test]
    fn short_link_inserts_are_built_once_and_long_ones_per_call() {
        let links = ThroughSql::new("post_tags", "post_id", "tag_id");
        for rows in [1, 5, CACHED_INSERT_ROWS] {
            let first = links.insert_links(rows, Returning::Target);
            let again = links.insert_links(rows, Returning::Target);
            assert!(
                matches!((&first, &again), (Cow::Borrowed(a), Cow::Borrowed(b)) if std::ptr::eq(*a, *b)),
                "{rows} rows: one kept text"
            );
            assert_eq!(first.matches("), (").count(), rows - 1);
        }
        assert!(matches!(
            links.insert_links(CACHED_INSERT_ROWS + 1, Returning::Target),
            Cow::Owned(_)
        ));
        let longest = links.insert_links(LINKS_PER_INSERT, Returning::Nothing);
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
