//! The daemon as a real child process, and what the tests ask of it.
#![allow(dead_code, unreachable_pub)]

use std::time::{Duration, Instant};

use futures::StreamExt;
pub use sequex_testkit::Daemon;
use sequex_testkit::capture::{self, CapturedFrame};
use sequex_testkit::{FakeBinance, NatsServer, Script, provision};

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

/// The capture's trade and depth frames for BTCUSDT, in order, and what each must become.
pub fn btcusdt(limit: usize) -> (Vec<CapturedFrame>, Vec<(String, String)>) {
    let frames: Vec<CapturedFrame> = capture::load(capture::SPOT_BTCUSDT)
        .expect("load capture")
        .into_iter()
        .filter(|f| matches!(f.stream(), Some("btcusdt@trade" | "btcusdt@depth@100ms")))
        .take(limit)
        .collect();
    let expected = frames
        .iter()
        .map(|f| {
            let channel = if f.stream() == Some("btcusdt@trade") {
                "trade"
            } else {
                "depth"
            };
            (
                format!("TRADE.{channel}.BTCUSDT"),
                f.data().unwrap().to_string(),
            )
        })
        .collect();
    (frames, expected)
}

pub fn daemon_args<'a>(fake: &'a str, nats: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--symbols", "btcusdt", "--ws-url", fake, "--nats-url", nats];
    args.extend_from_slice(extra);
    args
}

/// Starts a fake Binance playing `script` and the daemon reading BTCUSDT from it (its
/// REST API too, so that no test reaches the real one; plus `extra` flags) into `server`.
pub async fn replay(server: &NatsServer, script: Script, extra: &[&str]) -> (FakeBinance, Daemon) {
    let fake = FakeBinance::start(script)
        .await
        .expect("start the fake Binance");
    let (ws, nats, rest) = (fake.url(), server.url(), fake.rest_url());
    let mut args = daemon_args(&ws, &nats, &["--rest-url", &rest]);
    args.extend_from_slice(extra);
    let daemon = start_daemon(&args);
    (fake, daemon)
}

/// Waits until `seen` holds `n` messages.
pub async fn all_arrive(seen: &std::sync::Mutex<Vec<async_nats::Message>>, n: usize, secs: u64) {
    eventually(
        Duration::from_secs(secs),
        &format!("{n} messages published"),
        || async { seen.lock().unwrap().len() >= n },
    )
    .await;
}

pub fn received(seen: &std::sync::Mutex<Vec<async_nats::Message>>) -> Vec<(String, String)> {
    seen.lock()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m.subject.to_string(),
                String::from_utf8(m.payload.to_vec()).unwrap(),
            )
        })
        .collect()
}
