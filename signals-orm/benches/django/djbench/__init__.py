"""The Django app of the signals benchmark: models equivalent to the Rust side's."""
