//! Every statement of models and link tables, and the one identifier-quoting rule they share
//! (transaction control, `BEGIN` / `SAVEPOINT`, lives with `Tx` and `Backend`).
//!
//! The fixed texts are built from a model's or a relation's names the first time they are needed
//! and then kept for the life of the program; `update_of` (Django's `update_fields`) and
//! `select_where_pk_in` (`Related::all`) are built per call (`derive(Model)` and `many_to_many!` generate the
//! cache). One text serves both backends: `$N` placeholders in ascending order, identifiers in
//! double quotes with inner quotes doubled, values always bound, never formatted in.

use std::fmt::Write as _;

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

/// The statements of a many-to-many link table.
#[doc(hidden)]
#[derive(Debug)]
pub struct ThroughSql {
    /// `SELECT target FROM links WHERE source = $1 ORDER BY target`.
    pub targets_of: String,
    /// `SELECT source FROM links WHERE target = $1 ORDER BY source`.
    pub sources_of: String,
    /// `INSERT INTO links (source, target) VALUES ($1, $2) ON CONFLICT DO NOTHING`: one row
    /// affected when this statement linked the pair, none when the pair was linked already,
    /// also by a concurrent transaction (PostgreSQL waits for it to end first; SQLite writers
    /// never overlap). `add` reports exactly the pairs with a row affected. That rests on the
    /// link table's unique key on (source, target), which `many_to_many!` requires: without
    /// one nothing conflicts, and concurrent adds of one pair may each insert a row.
    pub insert: String,
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
            insert: format!("INSERT INTO {t} ({s}, {g}) VALUES ($1, $2) ON CONFLICT DO NOTHING"),
            delete: format!("DELETE FROM {t} WHERE {s} = $1 AND {g} = $2"),
            clear_source: format!("DELETE FROM {t} WHERE {s} = $1"),
            clear_target: format!("DELETE FROM {t} WHERE {g} = $1"),
            delete_both: format!(
                "DELETE FROM {t} WHERE ({s} = $1 AND {g} = $2) OR ({s} = $2 AND {g} = $1)"
            ),
            clear_both: format!("DELETE FROM {t} WHERE {s} = $1 OR {g} = $1"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{ModelSql, ThroughSql};
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
    fn link_statements_write_one_pair_each_so_rows_affected_tell_what_changed() {
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
            links.insert,
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
            links.insert,
            r#"INSERT INTO "post""tags" ("po""st", "tag") VALUES ($1, $2) ON CONFLICT DO NOTHING"#
        );
        assert_eq!(
            links.targets_of,
            r#"SELECT "tag" FROM "post""tags" WHERE "po""st" = $1 ORDER BY "tag""#
        );
    }
}
