//! The daemon as a real child process, and what the tests ask of it.
#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, Instant};

use futures::StreamExt;
pub use sequex_testkit::Daemon;
use sequex_testkit::{NatsServer, provision};

/// Polls `check` every 50 ms until it holds; panics with `what` after `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts the `sequex-ingest` built for these tests, with debug logs.
pub fn start_daemon(args: &[&str]) -> Daemon {
    let mut all = args.to_vec();
    all.extend(["--log", "info,sequex_ingest=debug"]);
    Daemon::start(
        std::path::Path::new(env!("CARGO_BIN_EXE_sequex-ingest")),
        &all,
    )
}

/// A server with TRADE and RECORD from `configs/`.
pub async fn bus() -> (NatsServer, async_nats::Client) {
    provision::server_with_streams()
        .await
        .expect("server with streams")
}

/// Collects every message on `TRADE.>` in the background.
pub async fn collect(
    client: &async_nats::Client,
) -> std::sync::Arc<std::sync::Mutex<Vec<async_nats::Message>>> {
    let mut subscriber = client.subscribe("TRADE.>").await.unwrap();
    client.flush().await.unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    tokio::spawn(async move {
        while let Some(message) = subscriber.next().await {
            sink.lock().unwrap().push(message);
        }
    });
    seen
}

/// Stream message count.
pub async fn stream_count(client: &async_nats::Client, stream: &str) -> u64 {
    provision::stream_info(client, stream)
        .await
        .ok()
        .and_then(|i| i["state"]["messages"].as_u64())
        .unwrap_or(0)
}
