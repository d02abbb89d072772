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
    start_daemon_with_env(args, &[])
}

/// [`start_daemon`] with extra environment variables.
pub fn start_daemon_with_env(args: &[&str], env: &[(&str, &str)]) -> Daemon {
    let mut all = args.to_vec();
    all.extend(["--log", "info,sequex_ingest=debug"]);
    Daemon::start_with_env(
        std::path::Path::new(env!("CARGO_BIN_EXE_sequex-ingest")),
        &all,
        env,
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

/// Whether RECORD's last message is TRADE's last (RECORD has copied all there is).
pub async fn record_caught_up(client: &async_nats::Client) -> bool {
    let info = |stream| provision::stream_info(client, stream);
    let (Ok(trade), Ok(record)) = (info("TRADE").await, info("RECORD").await) else {
        return false;
    };
    let sourced = sequex_streams::last_sourced(client, &record).await;
    matches!(sourced, Ok(Some(seq)) if Some(seq) == trade["state"]["last_seq"].as_u64())
}

/// What each Binance frame must become: `(subject, its data object)`, the subject from
/// `pattern` with `{channel}` set to the frame's channel.
pub fn published_as(frames: &[CapturedFrame], pattern: &str) -> Vec<(String, String)> {
    frames
        .iter()
        .map(|f| {
            let stream = f.stream().expect("a combined-stream frame");
            let channel = if stream.ends_with("@trade") {
                "trade"
            } else {
                "depth"
            };
            (
                pattern.replace("{channel}", channel),
                f.data().unwrap().to_string(),
            )
        })
        .collect()
}

/// The capture's trade and depth frames for BTCUSDT, in order, and what each must become.
pub fn btcusdt(limit: usize) -> (Vec<CapturedFrame>, Vec<(String, String)>) {
    let frames: Vec<CapturedFrame> = capture::load(capture::SPOT_BTCUSDT)
        .expect("load capture")
        .into_iter()
        .filter(|f| matches!(f.stream(), Some("btcusdt@trade" | "btcusdt@depth@100ms")))
        .take(limit)
        .collect();
    let expected = published_as(&frames, "TRADE.{channel}.BTCUSDT");
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
    replay_into(&server.url(), script, extra).await
}

/// [`replay`] into the server(s) at `nats` (comma-separated seeds).
pub async fn replay_into(nats: &str, script: Script, extra: &[&str]) -> (FakeBinance, Daemon) {
    let fake = FakeBinance::start(script)
        .await
        .expect("start the fake Binance");
    let (ws, rest) = (fake.url(), fake.rest_url());
    let mut args = daemon_args(&ws, nats, &["--rest-url", &rest]);
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

/// The first and last id of an event: a trade's `t`, a depth diff's `U` and `u`.
pub fn ids(payload: &[u8]) -> (u64, u64) {
    let event: serde_json::Value = serde_json::from_slice(payload).expect("a JSON event");
    match event["e"].as_str() {
        Some("trade") => (event["t"].as_u64().unwrap(), event["t"].as_u64().unwrap()),
        Some("depthUpdate") => (event["U"].as_u64().unwrap(), event["u"].as_u64().unwrap()),
        other => panic!("unexpected event {other:?}"),
    }
}

pub fn header_of(message: &async_nats::Message, name: &str) -> Option<String> {
    Some(message.headers.as_ref()?.get(name)?.to_string())
}

/// A message as it reached NATS: from a subscriber or read back from a stream.
#[derive(Clone, Debug)]
pub struct Stored {
    pub subject: String,
    pub payload: bytes::Bytes,
    pub gap: Option<String>,
    pub source: Option<String>,
    /// `Nats-Stream-Source`, on what a stream sourced.
    pub origin: Option<String>,
}

/// What a core subscriber received.
pub fn stored(messages: &[async_nats::Message]) -> Vec<Stored> {
    messages
        .iter()
        .map(|m| Stored {
            subject: m.subject.to_string(),
            payload: m.payload.clone(),
            gap: header_of(m, sequex_subjects::header::GAP),
            source: header_of(m, sequex_subjects::header::SOURCE),
            origin: None,
        })
        .collect()
}

/// Everything a stream holds, in order.
pub async fn read_stream(client: &async_nats::Client, name: &str) -> Vec<Stored> {
    let js = async_nats::jetstream::new(client.clone());
    let mut stream = js.get_stream(name).await.unwrap();
    let state = stream.info().await.unwrap().state.clone();
    let mut all = Vec::new();
    for seq in state.first_sequence..=state.last_sequence {
        let Ok(m) = stream.get_raw_message(seq).await else {
            continue;
        };
        let header = |n: &str| m.headers.get(n).map(|v| v.to_string());
        all.push(Stored {
            subject: m.subject.to_string(),
            payload: m.payload.clone(),
            gap: header(sequex_subjects::header::GAP),
            source: header(sequex_subjects::header::SOURCE),
            origin: header("Nats-Stream-Source"),
        });
    }
    all
}

/// How a hole must be flagged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flags {
    /// With exactly the missing range, and no flag without a hole.
    Exact,
    /// With a range that covers the missing ids (after a lost NATS connection the daemon
    /// flags from the last id NATS confirmed, which may be before what was lost), except
    /// at most `unsourced` ids at the hole's start: a crash takes with TRADE what it had
    /// stored but RECORD had not copied yet, which the server had confirmed to the daemon.
    Cover {
        /// Ids RECORD may miss, unflagged, before a flagged range.
        unsourced: u64,
    },
}

/// Walks each subject's live messages in order: wherever ids are missing between two
/// messages, the second must carry `Sequex-Gap` naming them (see [`Flags`]). Trades
/// filled from REST (`Sequex-Source: rest`) come later, outside the live order. Returns
/// how many holes there were.
pub fn assert_every_hole_flagged(messages: &[Stored], flags: Flags) -> usize {
    let mut last: std::collections::HashMap<&str, u64> = Default::default();
    let mut holes = 0;
    for message in messages.iter().filter(|m| m.source.is_none()) {
        let (first, last_id) = ids(&message.payload);
        let flagged = message
            .gap
            .as_deref()
            .map(|g| sequex_subjects::header::parse_gap(g).expect("a well-formed Sequex-Gap"));
        if let Some(&previous) = last.get(message.subject.as_str()) {
            let hole = (first > previous + 1).then(|| previous + 1..first);
            let what = format!(
                "{}: after id {previous}, the message with ids {first}..={last_id} flagged {flagged:?}",
                message.subject
            );
            match flags {
                Flags::Exact => assert_eq!(flagged, hole, "{what}"),
                Flags::Cover { unsourced } => {
                    if let Some(hole) = &hole {
                        let flag = flagged.clone().unwrap_or(0..0);
                        assert!(
                            flag.start <= hole.start + unsourced && flag.end >= hole.end,
                            "{what}"
                        );
                    }
                }
            }
            holes += usize::from(hole.is_some());
        }
        last.insert(message.subject.as_str(), last_id);
    }
    holes
}
