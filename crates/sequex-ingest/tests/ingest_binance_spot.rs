//! `sequex-ingest` end to end: a fake Binance replaying the real capture over loopback,
//! the release-or-debug binary as a child process, a real nats-server with the streams
//! from `configs/`.

mod common;

use std::time::Duration;

use common::{
    all_arrive, btcusdt, bus, collect, daemon_args, eventually, received, replay, start_daemon,
    stream_count,
};
use sequex_subjects::header;
use sequex_testkit::capture::{self, CapturedFrame};
use sequex_testkit::{FakeBinance, NatsServer, Script};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn every_frame_lands_once_byte_identical_then_in_record_and_sigterm_exits_cleanly() {
    let (server, client) = bus().await;
    let seen = collect(&client).await;
    let (frames, expected) = btcusdt(usize::MAX);
    let (fake, daemon) = replay(
        &server,
        Script {
            frames,
            ping_every: Some(Duration::from_millis(200)),
            ..Script::default()
        },
        &[],
    )
    .await;

    let want = expected.len();
    all_arrive(&seen, want, 120).await;
    let got = received(&seen);
    assert_eq!(got.len(), want, "no duplicates");
    assert!(
        got == expected,
        "every payload byte-identical, on its subject, in order"
    );
    assert_eq!(
        fake.requests(),
        ["/stream?streams=btcusdt@trade/btcusdt@depth@100ms"],
        "one combined-stream connection"
    );

    // Headers: the id and the receive time; the capture has no gaps.
    for message in seen.lock().unwrap().iter() {
        let headers = message.headers.as_ref().expect("headers on by default");
        let id = headers.get(header::MSG_ID).unwrap().as_str();
        let (channel, last) = if message.subject.starts_with("TRADE.depth") {
            ("depth", r#""u":"#)
        } else {
            ("trade", r#""t":"#)
        };
        let payload = std::str::from_utf8(&message.payload).unwrap();
        let at = payload.find(last).unwrap() + last.len();
        let digits = payload[at..].split(',').next().unwrap();
        assert_eq!(
            id,
            format!("binance-spot:{channel}:{}:{digits}", &message.subject[12..])
        );
        assert!(headers.get(header::RECEIVE_TIME_NS).is_some());
        assert!(headers.get(header::GAP).is_none(), "no gap in the capture");
    }

    eventually(
        Duration::from_secs(30),
        "RECORD holds every message",
        || async { stream_count(&client, "RECORD").await == want as u64 },
    )
    .await;
    let js = async_nats::jetstream::new(client.clone());
    let record = js.get_stream("RECORD").await.unwrap();
    // RECORD keeps TRADE's order: its sequence n is the n-th frame.
    for seq in (1..=want as u64).step_by(997).chain([want as u64]) {
        let recorded = record.get_raw_message(seq).await.unwrap();
        let (subject, payload) = &expected[seq as usize - 1];
        assert_eq!(
            recorded.subject.as_str(),
            subject.replacen("TRADE", "record", 1)
        );
        assert!(
            recorded.payload == payload.as_bytes(),
            "RECORD seq {seq} byte-identical"
        );
    }

    assert!(fake.pongs() > 0, "pings are answered");
    assert!(
        daemon.ready().await,
        "ready: NATS up, TRADE present, feed live"
    );
    assert_eq!(
        daemon.metric("sequex_published_messages_total", &[]).await,
        want as f64
    );
    assert_eq!(daemon.metric("sequex_frame_errors_total", &[]).await, 0.0);
    assert_eq!(
        daemon.metric("sequex_dropped_messages_total", &[]).await,
        0.0
    );
    assert_eq!(daemon.metric("sequex_sequence_gaps_total", &[]).await, 0.0);
    assert!(
        daemon
            .metric("sequex_receive_to_publish_seconds_count", &[])
            .await
            > 0.0
    );

    let (status, took, logs) = daemon.terminate().await;
    assert!(status.success(), "exit 0 on SIGTERM: {status:?}\n{logs}");
    assert!(
        took < Duration::from_secs(5),
        "exit within 5 s, took {took:?}"
    );
    assert!(logs.contains("flushed"), "{logs}");
}

#[tokio::test]
async fn a_dropped_connection_is_reconnected_and_nothing_is_lost_when_busy_polling() {
    let (server, client) = bus().await;
    let seen = collect(&client).await;
    let (frames, expected) = btcusdt(3000);
    let (fake, daemon) = replay(
        &server,
        Script {
            frames,
            drop_after: Some(1000),
            ..Script::default()
        },
        // A runtime that never sleeps must still run its timers (the reconnect backoff)
        // and stop on SIGTERM.
        &["--busy-poll"],
    )
    .await;

    all_arrive(&seen, expected.len(), 60).await;
    assert!(
        received(&seen) == expected,
        "all frames, once, in order, across the reconnect"
    );
    assert_eq!(fake.connections(), 2);
    assert_eq!(
        daemon
            .metric("sequex_reconnects_total", &["reason=\"error\""])
            .await,
        1.0
    );
    assert!(daemon.ready().await, "live again");
    let (status, took, logs) = daemon.terminate().await;
    assert!(status.success(), "{logs}");
    assert!(took < Duration::from_secs(5));
}

#[tokio::test]
async fn bad_frames_are_counted_and_skipped_and_cost_no_other_data() {
    let (server, client) = bus().await;
    let seen = collect(&client).await;
    let (frames, expected) = btcusdt(500);
    let good = frames[10].text.clone();
    let oversized = format!(
        r#"{{"stream":"btcusdt@trade","data":{{"e":"trade","pad":"{}"}}}}"#,
        // Over --max-frame-bytes, under twice it (where the websocket layer refuses it).
        "x".repeat(150_000)
    );
    let inject = vec![
        (10, Message::text(&good[..good.len() / 2])),
        (
            20,
            Message::text(
                good.replace(r#""e":"trade""#, r#""e":"aggTrade""#)
                    .replace(r#""e":"depthUpdate""#, r#""e":"aggTrade""#),
            ),
        ),
        (30, Message::text(good.replace("btcusdt@", "ethusdt@"))),
        (40, Message::binary(good.clone().into_bytes())),
        (50, Message::text(oversized)),
        (60, Message::text("not json at all")),
        (70, Message::text(r#"{"result":null,"id":7}"#)),
    ];
    let (fake, daemon) = replay(
        &server,
        Script {
            frames,
            inject,
            ..Script::default()
        },
        &["--max-frame-bytes", "100000"],
    )
    .await;

    all_arrive(&seen, expected.len(), 60).await;
    assert!(
        received(&seen) == expected,
        "the good frames all land, unchanged"
    );
    for reason in [
        "truncated",
        "unexpected_event",
        "unknown_stream",
        "binary",
        "oversized",
        "malformed",
    ] {
        let label = format!("reason=\"{reason}\"");
        assert_eq!(
            daemon.metric("sequex_frame_errors_total", &[&label]).await,
            1.0,
            "{reason}"
        );
    }
    assert_eq!(
        fake.connections(),
        1,
        "bad frames do not cost the connection"
    );
    let (status, _, logs) = daemon.terminate().await;
    assert!(status.success(), "{logs}");
    assert!(logs.contains("frame skipped"), "{logs}");
}

#[tokio::test]
async fn a_missing_stream_exits_2_with_the_command_that_creates_it() {
    let server = NatsServer::start().await.unwrap();
    let nats = server.url();
    let daemon = start_daemon(&daemon_args("ws://127.0.0.1:9", &nats, &[]));
    let (status, logs) = daemon.exit(Duration::from_secs(20)).await;
    assert_eq!(status.code(), Some(2), "{logs}");
    assert!(logs.contains("stream TRADE not found"), "{logs}");
    assert!(logs.contains(&nats), "names the server: {logs}");
    assert!(
        logs.contains("nats stream add --config configs/stream_trade.json"),
        "{logs}"
    );
}

#[tokio::test]
async fn wait_for_streams_waits_until_the_stream_appears() {
    let server = NatsServer::start().await.unwrap();
    let client = server.connect().await.unwrap();
    let (frames, _) = btcusdt(100);
    let (fake, daemon) = replay(&server, frames.into(), &["--wait-for-streams", "60s"]).await;
    eventually(Duration::from_secs(10), "waiting is logged", || async {
        daemon.logs().contains("waiting for the stream")
    })
    .await;
    assert!(!daemon.ready().await, "not ready without TRADE");
    assert_eq!(
        fake.connections(),
        0,
        "no websocket before the stream check passes"
    );

    for file in sequex_testkit::STREAM_FILES {
        sequex_testkit::provision::add_stream(&client, &sequex_testkit::configs_dir().join(file))
            .await
            .unwrap();
    }
    eventually(Duration::from_secs(20), "ready once TRADE exists", || {
        daemon.ready()
    })
    .await;
}

#[tokio::test]
async fn an_invalid_symbol_exits_before_connecting() {
    // A listener in place of NATS: nothing may connect to it.
    let nats = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    nats.set_nonblocking(true).unwrap();
    let url = format!("nats://{}", nats.local_addr().unwrap());
    let daemon = start_daemon(&["--symbols", "BTCUSDT,BTC.USDT", "--nats-url", &url]);
    let (status, logs) = daemon.exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(2), "{logs}");
    assert!(
        logs.contains(
            "invalid symbol \"BTC.USDT\": '.' at byte 3 is not allowed (use A-Z, 0-9, '_' or '-')"
        ),
        "names the symbol, the character and what is allowed: {logs}"
    );
    assert!(
        nats.accept()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock),
        "nothing connected"
    );
}

#[tokio::test]
async fn nats_down_at_start_is_retried_and_sigterm_still_exits() {
    let mut server = NatsServer::start().await.unwrap();
    server.kill().await.unwrap();
    let nats = server.url();
    let daemon = start_daemon(&daemon_args("ws://127.0.0.1:9", &nats, &[]));
    eventually(Duration::from_secs(10), "two attempts logged", || async {
        daemon.logs().matches("NATS unreachable").count() >= 2
    })
    .await;
    assert!(
        matches!(daemon.get("/healthz").await, Some((200, _))),
        "alive"
    );
    let (status, body) = daemon.get("/readyz").await.unwrap();
    assert_eq!(status, 503);
    assert!(body.contains("NATS not connected"), "{body}");

    // The server comes (back) with the streams: the daemon connects and checks them.
    server.restart().await.unwrap();
    let client = server.connect().await.unwrap();
    for file in sequex_testkit::STREAM_FILES {
        sequex_testkit::provision::add_stream(&client, &sequex_testkit::configs_dir().join(file))
            .await
            .unwrap();
    }
    eventually(
        Duration::from_secs(20),
        "connected and stream checked",
        || async { daemon.logs().contains("stream TRADE present") },
    )
    .await;
    let (status, took, logs) = daemon.terminate().await;
    assert!(status.success(), "{logs}");
    assert!(took < Duration::from_secs(5));
}

/// While NATS is down the websocket is still read at full speed: messages are dropped
/// and counted, never waited for. When NATS is back, publishing resumes once TRADE is
/// confirmed again (a restarted single server has lost it: here the test recreates it, as
/// `sequex-streams watch` does).
#[tokio::test]
async fn nats_outage_never_stalls_the_socket_and_every_loss_is_counted() {
    let (mut server, _client) = bus().await;
    let (frames, _) = btcusdt(6000);
    let total = frames.len() as f64;
    let (fake, daemon) = replay(
        &server,
        Script {
            frames,
            pace: Some(Duration::from_micros(500)),
            ..Script::default()
        },
        &["--publish-queue", "64"],
    )
    .await;
    eventually(Duration::from_secs(20), "publishing", || async {
        daemon.metric("sequex_published_messages_total", &[]).await > 100.0
    })
    .await;

    server.kill().await.unwrap();
    eventually(
        Duration::from_secs(20),
        "drops counted while NATS is down",
        || async {
            daemon
                .metric("sequex_dropped_messages_total", &["reason=\"no_stream\""])
                .await
                > 0.0
        },
    )
    .await;
    let before = daemon.metric("sequex_frames_total", &[]).await;
    eventually(
        Duration::from_secs(20),
        "frames still read during the outage",
        || async { daemon.metric("sequex_frames_total", &[]).await > before + 500.0 },
    )
    .await;

    server.restart().await.unwrap();
    let client = server.connect().await.unwrap();
    sequex_testkit::provision::add_stream(
        &client,
        &sequex_testkit::configs_dir().join("stream_trade.json"),
    )
    .await
    .unwrap();
    let published = daemon.metric("sequex_published_messages_total", &[]).await;
    eventually(Duration::from_secs(30), "publishing resumes", || async {
        daemon.metric("sequex_published_messages_total", &[]).await > published + 100.0
    })
    .await;
    eventually(Duration::from_secs(60), "every frame read", || async {
        daemon.metric("sequex_frames_total", &[]).await >= total
    })
    .await;
    let published = daemon.metric("sequex_published_messages_total", &[]).await;
    let dropped = daemon.metric("sequex_dropped_messages_total", &[]).await;
    assert_eq!(
        published + dropped,
        total,
        "every frame is published or counted as dropped"
    );
    assert_eq!(
        fake.connections(),
        1,
        "the exchange connection survived the outage"
    );
}

/// More streams than one connection may carry are spread over several connections, each
/// with its own combined-stream URL, and every frame still lands once.
#[tokio::test]
async fn streams_are_spread_over_connections_past_the_per_connection_limit() {
    let (server, client) = bus().await;
    let seen = collect(&client).await;
    let frames: Vec<CapturedFrame> = [capture::SPOT_BTCUSDT, capture::SPOT_ETHUSDT]
        .into_iter()
        .flat_map(|name| capture::load(name).unwrap())
        .filter(|f| {
            f.stream()
                .is_some_and(|s| s.ends_with("@trade") || s.ends_with("@depth@100ms"))
        })
        .filter(|f| f.received_ns < 1_723_161_300_000_000_000)
        .collect();
    let want = frames.len();
    let fake = FakeBinance::start(frames.into()).await.unwrap();
    let (ws, nats) = (fake.url(), server.url());
    let _daemon = start_daemon(&[
        "--symbols",
        "BTCUSDT,ETHUSDT",
        "--ws-url",
        &ws,
        "--nats-url",
        &nats,
        "--streams-per-connection",
        "1",
    ]);
    all_arrive(&seen, want, 60).await;
    assert_eq!(seen.lock().unwrap().len(), want);
    let mut requests = fake.requests();
    requests.sort();
    assert_eq!(
        requests,
        [
            "/stream?streams=btcusdt@depth@100ms",
            "/stream?streams=btcusdt@trade",
            "/stream?streams=ethusdt@depth@100ms",
            "/stream?streams=ethusdt@trade",
        ]
    );
}

/// `serverShutdown` triggers a make-before-break reconnect: no frame is lost and the
/// events both connections carry are published once. A silent feed is replaced after
/// `--stale-after`.
#[tokio::test]
async fn server_shutdown_and_silence_trigger_reconnects() {
    let (server, client) = bus().await;
    let seen = collect(&client).await;
    let (frames, expected) = btcusdt(400);
    let shutdown = Message::text(r#"{"e":"serverShutdown","E":1723161255343}"#);
    let (_fake, daemon) = replay(
        &server,
        Script {
            frames,
            inject: vec![(200, shutdown)],
            overlap: 50,
            pace: Some(Duration::from_millis(2)),
            ..Script::default()
        },
        &["--stale-after", "1s"],
    )
    .await;
    eventually(Duration::from_secs(30), "planned reconnect", || async {
        daemon
            .metric("sequex_reconnects_total", &["reason=\"server_shutdown\""])
            .await
            == 1.0
    })
    .await;
    all_arrive(&seen, expected.len(), 30).await;
    // The fake sends no pings: after the last frame the feed goes silent.
    eventually(Duration::from_secs(30), "stale reconnect", || async {
        daemon
            .metric("sequex_reconnects_total", &["reason=\"stale\""])
            .await
            >= 1.0
    })
    .await;
    assert!(
        received(&seen) == expected,
        "each frame once, in order, across the handover"
    );
    assert!(
        daemon.metric("sequex_duplicate_events_total", &[]).await > 0.0,
        "the overlap was seen and skipped"
    );
    assert_eq!(daemon.metric("sequex_sequence_gaps_total", &[]).await, 0.0);
}

/// A trade the exchange never sent is a gap: counted, and the next trade carries
/// `Sequex-Gap` with the missing id range.
#[tokio::test]
async fn a_missing_trade_is_flagged_on_the_next_message() {
    let (server, client) = bus().await;
    let seen = collect(&client).await;
    let (mut frames, mut expected) = btcusdt(300);
    let missing = frames
        .iter()
        .position(|f| f.stream() == Some("btcusdt@trade"))
        .unwrap()
        + 1;
    let missing = missing
        + frames[missing..]
            .iter()
            .position(|f| f.stream() == Some("btcusdt@trade"))
            .unwrap();
    let lost = frames.remove(missing);
    expected.remove(missing);
    let lost_id: u64 =
        serde_json::from_str::<serde_json::Value>(lost.data().unwrap()).unwrap()["t"]
            .as_u64()
            .unwrap();
    let (_fake, daemon) = replay(&server, frames.into(), &[]).await;
    all_arrive(&seen, expected.len(), 30).await;
    assert!(received(&seen) == expected);
    let flagged: Vec<(String, String)> = seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|m| {
            let gap = m.headers.as_ref()?.get(header::GAP)?;
            Some((m.subject.to_string(), gap.to_string()))
        })
        .collect();
    assert_eq!(
        flagged,
        [(
            "TRADE.trade.BTCUSDT".to_string(),
            format!("{lost_id}-{lost_id}")
        )]
    );
    assert_eq!(
        daemon
            .metric("sequex_sequence_gaps_total", &["channel=\"trade\""])
            .await,
        1.0
    );
}

/// Every `--summary-interval` one line says what flowed: per channel messages per second,
/// drops, gaps, reconnects.
#[tokio::test]
async fn a_summary_line_says_what_flowed() {
    let (server, _client) = bus().await;
    let (frames, _) = btcusdt(3000);
    let (_fake, daemon) = replay(
        &server,
        Script {
            frames,
            pace: Some(Duration::from_millis(1)),
            ..Script::default()
        },
        &["--summary-interval", "1s"],
    )
    .await;
    eventually(
        Duration::from_secs(20),
        "a summary line with trades",
        || async {
            daemon.logs().lines().any(|l| {
                l.contains("summary")
                    && l.contains("dropped=0")
                    && l.contains("gaps=0")
                    && l.split("trade_per_s=")
                        .nth(1)
                        .and_then(|v| v.split(' ').next()?.parse::<f64>().ok())
                        .is_some_and(|v| v > 0.0)
            })
        },
    )
    .await;
    // `0` turns it off: beside a daemon at 1s in the same state (NATS unreachable, which
    // does not stop the summary), the one at 0 logs none, and is still running.
    let at = |interval: &'static str| {
        start_daemon(&[
            "--symbols",
            "btcusdt",
            "--summary-interval",
            interval,
            "--nats-url",
            "nats://127.0.0.1:9",
        ])
    };
    let (on, off) = (at("1s"), at("0"));
    eventually(
        Duration::from_secs(10),
        "the 1s daemon's summary",
        || async { on.logs().contains("summary") },
    )
    .await;
    let logs = off.logs();
    assert!(logs.contains("NATS unreachable"), "still running: {logs}");
    assert!(!logs.contains("summary"), "0 turns it off: {logs}");
}
