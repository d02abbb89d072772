//! The integrity promise, end to end, judged by what reached NATS (a core subscriber of
//! `TRADE.>` on the same server, or RECORD), never by the daemon's own counters: every id
//! missing between two messages of a stream is flagged with exactly its range on the
//! second, whatever lost it; resets are flagged; an outlier costs its frame alone; the
//! publish queue stays in its byte budget; trade holes are filled from REST.

mod common;

use std::time::Duration;

use common::{
    Flags, all_arrive, assert_every_hole_flagged, btcusdt, bus, collect, eventually, header_of,
    ids, received, replay, start_daemon, stored, stream_count,
};
use sequex_subjects::header;
use sequex_testkit::capture::CapturedFrame;
use sequex_testkit::{Rest, Script};
use tokio_tungstenite::tungstenite;

#[tokio::test]
async fn every_hole_in_what_reached_nats_is_flagged_through_a_stalled_server() {
    let (server, client) = bus().await;
    let seen = collect(&client).await;
    // Real trades between depth diffs of 30 KB: enough bytes to fill the kernel's socket
    // buffers to NATS within a short stall.
    let (trades, _) = btcusdt(usize::MAX);
    let frames: Vec<CapturedFrame> = trades
        .into_iter()
        .filter(|f| f.stream() == Some("btcusdt@trade"))
        .take(3000)
        .zip(1..)
        .flat_map(|(trade, id)| [trade, big_depth_frame(id)])
        .collect();
    let total = frames.len() as f64;
    let (_fake, daemon) = replay(
        &server,
        Script {
            frames,
            pace: Some(Duration::from_micros(500)),
            ..Script::default()
        },
        &["--publish-queue", "64", "--publish-queue-bytes", "1048576"],
    )
    .await;
    eventually(Duration::from_secs(20), "publishing", || async {
        daemon.metric("sequex_published_messages_total", &[]).await > 300.0
    })
    .await;
    // Stalls until messages are dropped, as a slow server and an outage look from the
    // daemon: once just past the first drop, once for a second more.
    for hold in [Duration::ZERO, Duration::from_secs(1)] {
        let dropped = daemon.metric("sequex_dropped_messages_total", &[]).await;
        server.pause().await.unwrap();
        eventually(Duration::from_secs(20), "drops while stalled", || async {
            daemon.metric("sequex_dropped_messages_total", &[]).await > dropped
        })
        .await;
        tokio::time::sleep(hold).await;
        server.resume().await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    eventually(Duration::from_secs(60), "every frame read", || async {
        daemon.metric("sequex_frames_total", &[]).await >= total
    })
    .await;
    let published = daemon.metric("sequex_published_messages_total", &[]).await;
    all_arrive(&seen, published as usize, 30).await;
    let dropped = daemon.metric("sequex_dropped_messages_total", &[]).await;

    let messages = seen.lock().unwrap().clone();
    for line in server
        .log()
        .lines()
        .filter(|l| l.contains("[WRN]") || l.contains("[ERR]"))
    {
        eprintln!("nats-server: {line}");
    }
    let holes = assert_every_hole_flagged(&stored(&messages), Flags::Exact);
    assert!(holes >= 2, "each stall left holes, each flagged: {holes}");
    let live = messages
        .iter()
        .filter(|m| header_of(m, header::SOURCE).is_none())
        .count();
    assert_eq!(live as f64 + dropped, total, "each frame once or dropped");
}

/// One trade frame of `frames` (at `index`) with its id `t` replaced.
fn set_trade_id(text: &str, id: u64) -> String {
    let at = text.find(r#""t":"#).unwrap() + 4;
    let end = at + text[at..].find(',').unwrap();
    format!("{}{id}{}", &text[..at], &text[end..])
}

#[tokio::test]
async fn a_reset_is_flagged_and_an_absurd_id_costs_only_its_frame() {
    let (server, client) = bus().await;
    let seen = collect(&client).await;
    let (mut frames, mut expected) = btcusdt(600);
    let trades: Vec<usize> = (0..frames.len())
        .filter(|&i| frames[i].stream() == Some("btcusdt@trade"))
        .collect();
    // From the 150th trade on, the venue numbers its trades again, a billion lower.
    const SHIFT: u64 = 1_000_000_000;
    for &i in &trades[150..] {
        let (id, _) = ids(frames[i].data().unwrap().as_bytes());
        frames[i].text = set_trade_id(&frames[i].text, id - SHIFT);
        expected[i].1 = frames[i].data().unwrap().to_string();
    }
    let (last_old, _) = ids(frames[trades[149]].data().unwrap().as_bytes());
    let (first_new, _) = ids(frames[trades[150]].data().unwrap().as_bytes());
    // The 50th trade has an absurd id: the real one is missing from the stream.
    let (garbled, _) = ids(frames[trades[50]].data().unwrap().as_bytes());
    frames[trades[50]].text = set_trade_id(&frames[trades[50]].text, u64::MAX);
    // Neither the outlier nor the first event of the reset is published: one frame's word
    // is not enough to move the sequence.
    expected.remove(trades[150]);
    expected.remove(trades[50]);

    let (_fake, daemon) = replay(&server, frames.into(), &[]).await;
    all_arrive(&seen, expected.len(), 30).await;
    assert!(
        received(&seen) == expected,
        "everything else, once, in order"
    );
    let flags: Vec<(String, Option<String>, Option<String>)> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|m| header_of(m, header::GAP).is_some() || header_of(m, header::RESET).is_some())
        .map(|m| {
            (
                m.subject.to_string(),
                header_of(m, header::GAP),
                header_of(m, header::RESET),
            )
        })
        .collect();
    let trade = "TRADE.trade.BTCUSDT".to_string();
    assert_eq!(
        flags,
        [
            (trade.clone(), Some(format!("{garbled}-{garbled}")), None),
            (
                trade,
                Some(format!("{first_new}-{first_new}")),
                Some(last_old.to_string())
            )
        ],
        "the garbled trade is a one-id gap; the reset is flagged once, with the one event it cost"
    );
    for (name, want) in [
        ("sequex_out_of_sequence_events_total", 2.0),
        ("sequex_sequence_resets_total", 1.0),
    ] {
        assert_eq!(
            daemon.metric(name, &["channel=\"trade\""]).await,
            want,
            "{name}"
        );
    }
}

/// A depth diff of about 30 KB.
fn big_depth_frame(update_id: u64) -> CapturedFrame {
    let levels: Vec<String> = (0..900)
        .map(|i| format!(r#"["{}.00000000","0.10000000"]"#, 60_000 + i))
        .collect();
    CapturedFrame {
        received_ns: 0,
        text: format!(
            r#"{{"stream":"btcusdt@depth@100ms","data":{{"e":"depthUpdate","E":1723161255308,"s":"BTCUSDT","U":{update_id},"u":{update_id},"b":[{}],"a":[]}}}}"#,
            levels.join(",")
        ),
    }
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status")
}

#[tokio::test]
async fn large_frames_with_nats_stalled_stay_within_the_byte_budget() {
    const BUDGET: f64 = 8_388_608.0;
    let (server, _client) = bus().await;
    let frames: Vec<CapturedFrame> = (1..=3000).map(big_depth_frame).collect();
    let total = frames.len() as f64;
    let (_fake, daemon) = replay(
        &server,
        Script {
            frames,
            start_delay: Some(Duration::from_secs(2)),
            ..Script::default()
        },
        &["--channels", "depth", "--publish-queue-bytes", "8388608"],
    )
    .await;
    eventually(Duration::from_secs(20), "connected", || daemon.ready()).await;
    server.pause().await.unwrap();
    let mut highest: f64 = 0.0;
    while daemon.metric("sequex_frames_total", &[]).await < total {
        highest = highest.max(daemon.metric("sequex_publish_queue_bytes", &[]).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let peak_kib = peak_rss_kib(daemon.pid());
    let dropped = daemon
        .metric("sequex_dropped_messages_total", &["reason=\"queue_bytes\""])
        .await;
    server.resume().await.unwrap();
    eprintln!(
        "queued bytes at most {highest}, peak RSS {peak_kib} KiB, {dropped} dropped over the budget"
    );
    assert!(highest <= BUDGET, "queued {highest} bytes, budget {BUDGET}");
    assert!(highest > BUDGET / 2.0, "the budget filled: {highest}");
    assert!(dropped > 0.0);
    assert!(
        peak_kib < 64 * 1024,
        "peak RSS {peak_kib} KiB with an 8 MiB budget (90 MB of frames read)"
    );
}

/// The capture with a hole: the connection drops after 1000 frames and the next one
/// starts 60 frames later. Returns the script, the ids of every trade, and the trade
/// frames that only REST has.
fn reconnect_hole(rest: Rest) -> (Script, Vec<u64>, Vec<String>) {
    let (frames, _) = btcusdt(3000);
    let trade_ids = frames
        .iter()
        .filter(|f| f.stream() == Some("btcusdt@trade"))
        .map(|f| ids(f.data().unwrap().as_bytes()).0)
        .collect();
    let skipped = frames[1000..1060]
        .iter()
        .filter(|f| f.stream() == Some("btcusdt@trade"))
        .map(|f| f.data().unwrap().to_string())
        .collect();
    let script = Script {
        frames,
        drop_after: Some(1000),
        skip_on_reconnect: 60,
        rest,
        ..Script::default()
    };
    (script, trade_ids, skipped)
}

/// The trade fields both a websocket event and its REST copy carry.
fn trade_fields(payload: &[u8]) -> Vec<serde_json::Value> {
    let event: serde_json::Value = serde_json::from_slice(payload).unwrap();
    ["s", "t", "p", "q", "T", "m", "M"]
        .map(|k| event[k].clone())
        .to_vec()
}

#[tokio::test]
async fn a_reconnect_hole_in_trades_is_filled_from_rest_once_each() {
    let (server, client) = bus().await;
    let (script, trade_ids, skipped) = reconnect_hole(Rest::Serve);
    assert!(!skipped.is_empty(), "the hole holds trades");
    let want = 3000 - 60 + skipped.len();
    let (fake, daemon) = replay(&server, script, &[]).await;
    eventually(
        Duration::from_secs(60),
        "RECORD holds every trade and live depth",
        || async { stream_count(&client, "RECORD").await >= want as u64 },
    )
    .await;
    assert_eq!(
        daemon.metric("sequex_backfill_trades_total", &[]).await,
        skipped.len() as f64
    );
    assert_eq!(fake.connections(), 2);
    assert!(fake.rest_requests()[0].starts_with("/api/v3/historicalTrades?symbol=BTCUSDT&fromId="));

    let js = async_nats::jetstream::new(client.clone());
    let record = js.get_stream("RECORD").await.unwrap();
    let mut live = Vec::new();
    let mut rest = Vec::new();
    for seq in 1..=want as u64 {
        let m = record.get_raw_message(seq).await.unwrap();
        if m.subject.as_str() != "record.trade.BTCUSDT" {
            continue;
        }
        let id = ids(&m.payload).0;
        let source = m.headers.get(header::SOURCE).map(|v| v.to_string());
        let msg_id = m.headers.get(header::MSG_ID).unwrap().to_string();
        assert_eq!(msg_id, format!("binance-spot:trade:BTCUSDT:{id}"));
        match source.as_deref() {
            None => live.push(id),
            Some(header::SOURCE_REST) => rest.push((id, trade_fields(&m.payload))),
            Some(other) => panic!("unknown source {other}"),
        }
    }
    assert!(
        live.windows(2).all(|w| w[0] < w[1]),
        "live trades in id order"
    );
    let mut all: Vec<u64> = live
        .iter()
        .copied()
        .chain(rest.iter().map(|r| r.0))
        .collect();
    all.sort_unstable();
    assert_eq!(all, trade_ids, "every trade id exactly once");
    let from_rest: Vec<(u64, Vec<serde_json::Value>)> = skipped
        .iter()
        .map(|s| (ids(s.as_bytes()).0, trade_fields(s.as_bytes())))
        .collect();
    assert_eq!(
        rest, from_rest,
        "the missing trades, in id order, as the websocket had them"
    );
}

#[tokio::test]
async fn a_trade_hole_rest_cannot_fill_stays_flagged_and_reading_goes_on() {
    async fn scenario(rest: Rest) -> (f64, f64) {
        let (server, client) = bus().await;
        let seen = collect(&client).await;
        let (script, _, skipped) = reconnect_hole(rest);
        let live = 3000 - 60;
        let (fake, daemon) = replay(&server, script, &[]).await;
        all_arrive(&seen, live, 60).await;
        let messages = seen.lock().unwrap().clone();
        assert_eq!(messages.len(), live, "no trade from REST");
        assert!(
            assert_every_hole_flagged(&stored(&messages), Flags::Exact) >= 1,
            "the hole is flagged"
        );
        let first_missing = ids(skipped[0].as_bytes()).0;
        assert!(messages.iter().any(|m| {
            header_of(m, header::GAP).is_some_and(|g| g.starts_with(&format!("{first_missing}-")))
        }));
        assert_eq!(fake.connections(), 2, "the websocket kept reading");
        // Give the 429 and 500 paths time to give up (three tries).
        tokio::time::sleep(Duration::from_secs(4)).await;
        (
            daemon.metric("sequex_backfill_failures_total", &[]).await,
            daemon.metric("sequex_backfill_trades_total", &[]).await,
        )
    }
    let (server_error, rate_limited, hang) = tokio::join!(
        scenario(Rest::Fail(500)),
        scenario(Rest::Fail(429)),
        scenario(Rest::Hang)
    );
    assert_eq!(server_error, (1.0, 0.0), "500: given up, counted");
    assert_eq!(
        rate_limited,
        (1.0, 0.0),
        "429: backed off, given up, counted"
    );
    assert_eq!(hang.1, 0.0, "a hanging REST fills nothing");
}

#[tokio::test]
async fn other_envelope_layouts_are_read_and_an_enveloped_shutdown_reconnects() {
    let (server, client) = bus().await;
    let seen = collect(&client).await;
    let (mut frames, expected) = btcusdt(400);
    for (i, layout) in [(10, 0), (11, 1), (12, 2)] {
        let (stream, data) = (
            frames[i].stream().unwrap().to_string(),
            frames[i].data().unwrap().to_string(),
        );
        frames[i].text = match layout {
            0 => format!(r#"{{"data":{data},"stream":"{stream}"}}"#),
            1 => format!("{{ \"stream\" : \"{stream}\" ,\n  \"data\" : {data} }}"),
            _ => format!("{{\"stream\":\"{stream}\",\"data\":{data}}}\n"),
        };
    }
    let shutdown = tungstenite::Message::text(
        r#"{"stream":"btcusdt@trade","data":{"e":"serverShutdown","E":1723161255343}}"#,
    );
    let (_fake, daemon) = replay(
        &server,
        Script {
            frames,
            inject: vec![(200, shutdown)],
            overlap: 50,
            pace: Some(Duration::from_millis(2)),
            ..Script::default()
        },
        &[],
    )
    .await;
    all_arrive(&seen, expected.len(), 30).await;
    assert!(
        received(&seen) == expected,
        "every payload byte for byte, once"
    );
    eventually(Duration::from_secs(30), "a planned reconnect", || async {
        daemon
            .metric("sequex_reconnects_total", &["reason=\"server_shutdown\""])
            .await
            == 1.0
    })
    .await;
    assert_eq!(daemon.metric("sequex_frame_errors_total", &[]).await, 0.0);
    let logs = daemon.logs();
    assert!(
        !logs.contains('\u{1b}'),
        "no ANSI colours when stderr is not a terminal"
    );
}

#[tokio::test]
async fn zero_durations_and_sizes_exit_2_with_what_to_use() {
    for (flag, value) in [
        ("--stale-after", "0"),
        ("--wait-for-streams", "0s"),
        ("--max-frame-bytes", "0"),
        ("--publish-queue-bytes", "0"),
    ] {
        let daemon = start_daemon(&["--symbols", "BTCUSDT", flag, value]);
        let (status, logs) = daemon.exit(Duration::from_secs(10)).await;
        assert_eq!(status.code(), Some(2), "{flag} {value}: {logs}");
        assert!(
            logs.contains(&format!("invalid value '{value}' for '{flag}")),
            "{logs}"
        );
        assert!(
            logs.contains("is not in") || logs.contains("out of range: use"),
            "says what is allowed: {logs}"
        );
    }
}
