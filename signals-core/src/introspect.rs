//! Introspection: every registered receiver, in dispatch order, with where it was declared.

use std::borrow::Cow;
use std::fmt;

use crate::receiver::Phase;
use crate::registry;

/// How a receiver was registered: by `#[receiver]` at link time or by a runtime `connect`.
/// (Not Django's delete `origin`, which the ORM's delete payloads carry.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// Registered at link time by `#[receiver]`.
    Linked,
    /// Connected at runtime.
    Runtime,
}

/// One receiver as [`receivers`] lists it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReceiverRow {
    /// The signal's name.
    pub signal: &'static str,
    /// The sender type path, `None` for receivers of every sender.
    pub sender: Option<&'static str>,
    /// The receiver's path.
    pub name: &'static str,
    /// The module it was declared in (the file, for runtime connections).
    pub module_path: &'static str,
    /// Source file.
    pub file: &'static str,
    /// Source line.
    pub line: u32,
    /// Dispatch priority (higher runs first).
    pub priority: i32,
    /// Whether the receiver is awaited.
    pub is_async: bool,
    /// When it runs relative to the write's transaction.
    pub phase: Phase,
    /// Django's `dispatch_uid`, if any.
    pub dispatch_uid: Option<Cow<'static, str>>,
    /// Link-time or runtime.
    pub registration: Registration,
}

/// Every receiver of every signal: signals by name, receivers in dispatch order.
///
/// Includes link-time receivers of signals never sent yet and runtime connections alive now.
/// Its `Display` prints an aligned table; answers Django's "which receivers exist, and in what
/// order?" without reading every module.
///
/// # Example
///
/// ```
/// use signals_core::{receiver, Signal};
///
/// #[derive(Signal)]
/// struct UserLoggedIn;
///
/// #[receiver(UserLoggedIn, priority = 10)]
/// fn update_last_login(_: &UserLoggedIn) {}
///
/// let table = signals_core::receivers();
/// assert!(table.iter().any(|r| r.name.ends_with("update_last_login") && r.priority == 10));
/// println!("{table}");
/// ```
#[must_use]
pub fn receivers() -> ReceiverTable {
    let mut registries = registry::touched();
    registries.sort_by_key(|r| r.signal_name());
    registries.dedup_by_key(|r| r.signal_type());
    ReceiverTable {
        rows: registries
            .into_iter()
            .flat_map(registry::ErasedRegistry::rows)
            .collect(),
    }
}

/// The receivers [`receivers`] found; derefs to a slice of [`ReceiverRow`].
#[derive(Debug, Clone)]
pub struct ReceiverTable {
    rows: Vec<ReceiverRow>,
}

impl std::ops::Deref for ReceiverTable {
    type Target = [ReceiverRow];
    fn deref(&self) -> &[ReceiverRow] {
        &self.rows
    }
}

impl IntoIterator for ReceiverTable {
    type Item = ReceiverRow;
    type IntoIter = std::vec::IntoIter<ReceiverRow>;
    fn into_iter(self) -> Self::IntoIter {
        self.rows.into_iter()
    }
}

/// What an empty table prints: a program without receivers is more often a program whose
/// receivers crate was left out than one that has none.
pub(crate) const NO_RECEIVERS: &str = "no receivers: none is declared with `#[receiver]` in what \
this program links, and none is connected at runtime. A library crate of receivers is linked only \
if the program names it: add `signals_orm::link!(your_receivers_crate);` (or \
`use your_receivers_crate as _;`) to the binary.";

impl fmt::Display for ReceiverTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const HEAD: [&str; 7] = [
            "signal", "sender", "receiver", "at", "priority", "kind", "phase",
        ];
        if self.rows.is_empty() {
            return writeln!(f, "{NO_RECEIVERS}");
        }
        let cells: Vec<[String; 7]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.signal.to_owned(),
                    r.sender.unwrap_or("(any)").to_owned(),
                    r.name.to_owned(),
                    format!("{}:{}", r.file, r.line),
                    r.priority.to_string(),
                    if r.is_async { "async" } else { "sync" }.to_owned(),
                    r.phase.as_str().to_owned(),
                ]
            })
            .collect();
        let mut widths = HEAD.map(str::len);
        for row in &cells {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.len());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, row: &[&str]| -> fmt::Result {
            let last = row.len() - 1;
            for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
                if i == last {
                    writeln!(f, "{cell}")?;
                } else {
                    write!(f, "{cell:<w$}  ")?;
                }
            }
            Ok(())
        };
        line(f, &HEAD)?;
        for row in &cells {
            line(f, &row.each_ref().map(String::as_str))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::ReceiverTable;

    #[test]
    fn an_empty_table_says_why_and_how_to_link() {
        let text = ReceiverTable { rows: Vec::new() }.to_string();
        assert_eq!(
            text,
            "no receivers: none is declared with `#[receiver]` in what this program links, and \
             none is connected at runtime. A library crate of receivers is linked only if the \
             program names it: add `signals_orm::link!(your_receivers_crate);` (or \
             `use your_receivers_crate as _;`) to the binary.\n"
        );
    }
}
