//! `sequex-replay`: a Binance-compatible market-data server that replays real captures, as
//! a binary for rehearsals and the offline demo (`scripts/run --demo`), and as the fake
//! exchange of the tests.
//!
//! # Layout
//! - [`capture`]: the captures' format (one frame a line, gzip) and loading.
//! - [`fake_binance`]: the websocket server (combined streams, pings, SUBSCRIBE replies,
//!   faults on purpose) and the REST endpoint of old trades.
#![warn(missing_docs)]

pub mod capture;
pub mod fake_binance;

use std::path::{Path, PathBuf};

pub use capture::CapturedFrame;
pub use fake_binance::{FakeBinance, Rest, Script};

/// Why the replay server could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The environment is missing something (the message says what and how to fix it).
    #[error("{0}")]
    Setup(String),
    /// Local I/O failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The workspace root (where `configs/` and `demo/` live).
pub fn workspace_root() -> PathBuf {
    // This crate sits at `<root>/crates/sequex-replay`.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("the crate is two levels below the workspace root")
        .to_path_buf()
}
