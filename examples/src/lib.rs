//! Shared helpers of the examples package (the programs are under `examples/`).
