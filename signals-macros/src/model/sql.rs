//! The SQL texts of a model, built at compile time: `$N` placeholders in ascending order,
//! double-quoted identifiers, `RETURNING` for generated keys. One text serves both backends.

use super::parse::Model;

/// `"ident"`, inner quotes doubled.
fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

pub struct Statements {
    pub insert: String,
    pub insert_with_pk: String,
    pub update: String,
    pub delete: String,
    pub select_by_pk: String,
}

pub fn statements(model: &Model) -> Statements {
    let table = quote(&model.table);
    let pk = quote(&model.key.column);
    let columns: Vec<String> = model.fields.iter().map(|f| quote(&f.column)).collect();
    let placeholders = |from: usize, n: usize| {
        (from..from + n)
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let insert = if columns.is_empty() {
        format!("INSERT INTO {table} DEFAULT VALUES RETURNING {pk}")
    } else {
        format!(
            "INSERT INTO {table} ({}) VALUES ({}) RETURNING {pk}",
            columns.join(", "),
            placeholders(1, columns.len())
        )
    };
    let mut all = vec![pk.clone()];
    all.extend(columns.iter().cloned());
    let insert_with_pk = format!(
        "INSERT INTO {table} ({}) VALUES ({})",
        all.join(", "),
        placeholders(1, all.len())
    );
    let update = if columns.is_empty() {
        format!("UPDATE {table} SET {pk} = {pk} WHERE {pk} = $1")
    } else {
        let sets: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c} = ${}", i + 1))
            .collect();
        format!(
            "UPDATE {table} SET {} WHERE {pk} = ${}",
            sets.join(", "),
            columns.len() + 1
        )
    };
    let delete = format!("DELETE FROM {table} WHERE {pk} = $1");
    let mut selected = vec![select_column(&model.key.column, &model.key.name)];
    selected.extend(
        model
            .fields
            .iter()
            .map(|f| select_column(&f.column, &f.name)),
    );
    let select_by_pk = format!(
        "SELECT {} FROM {table} WHERE {pk} = $1",
        selected.join(", ")
    );
    Statements {
        insert,
        insert_with_pk,
        update,
        delete,
        select_by_pk,
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
