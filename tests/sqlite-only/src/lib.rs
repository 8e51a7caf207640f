//! Nothing here: `tests/ui.rs` compiles the programs in `ui/` against signals-orm built for
//! SQLite alone.
