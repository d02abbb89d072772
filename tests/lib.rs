//! Integration tests live beside this file, one per area; see `Cargo.toml`.
