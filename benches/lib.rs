//! Criterion benchmarks; see `Cargo.toml` for the list.
