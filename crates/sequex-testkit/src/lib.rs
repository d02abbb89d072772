//! Test support for the Sequex workspace: real processes, never mocks.
//!
//! # Layout
//! - [`nats_server`]: a real `nats-server` child per test, on a free loopback port.
//! - [`cluster`]: three of them routed into one JetStream cluster.
//! - `capture`, `fake_binance`: the captures and the fake exchange, from `sequex-replay`.
//! - [`daemon`]: a `sequex-ingest` child process, its probes and metrics.
//! - [`tls`]: a test CA, for the fake exchange over `wss://`.
//! - [`provision`]: applies the files in `configs/` to a server through the JetStream API,
//!   as `nats stream add --config` / `nats consumer add --config` would.
#![warn(missing_docs)]

pub mod cluster;
pub mod daemon;
pub mod nats_server;
pub mod provision;
pub mod tls;

use std::path::PathBuf;

pub use cluster::NatsCluster;
pub use daemon::Daemon;
pub use nats_server::NatsServer;
pub use provision::{CONSUMER_FILES, STREAM_FILES, provision_all};
pub use sequex_replay::{CapturedFrame, FakeBinance, Rest, Script, capture, fake_binance};

/// Why test support could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The environment is missing something (the message says what and how to fix it).
    #[error("{0}")]
    Setup(String),
    /// Local I/O failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Connecting to the test server failed.
    #[error("connecting to nats-server: {0}")]
    Connect(#[from] async_nats::ConnectError),
    /// A JetStream API request failed or was refused.
    #[error("{0}")]
    Api(String),
}

pub use sequex_replay::workspace_root;

/// The workspace's `configs/` folder.
pub fn configs_dir() -> PathBuf {
    workspace_root().join("configs")
}
