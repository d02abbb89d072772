//! The futures venues end to end: the real binary, a real nats-server, the fake exchange
//! replaying the USD-M capture (and frames in COIN-M's documented shape): every event once,
//! byte-identical, on its venue's subject with its venue's message id; gaps flagged where
//! the `pu` chain breaks; two venues' events of one instrument name never de-duplicated.

mod common;

use std::time::Duration;

use common::{all_arrive, bus, collect, eventually, received, replay, stream_count};
use sequex_subjects::{Filter, Stream, Venue, header};
use sequex_testkit::capture::{self, CapturedFrame};
use tokio_tungstenite::tungstenite::Message;

/// The USD-M capture's trades and depth diffs, the depth stream renamed from the capture's
/// `@depth@0ms` to the `@depth@100ms` the daemon subscribes to; and what each becomes.
fn usdm(limit: usize) -> (Vec<CapturedFrame>, Vec<(String, String)>) {
    let frames: Vec<CapturedFrame> = capture::load(capture::USDM_BTCUSDT)
        .expect("load the USD-M capture")
        .into_iter()
        .filter(|f| matches!(f.stream(), Some("btcusdt@trade" | "btcusdt@depth@0ms")))
        .take(limit)
        .map(|mut f| {
            f.text = f
                .text
                .replacen("btcusdt@depth@0ms", "btcusdt@depth@100ms", 1);
            f
        })
        .collect();
    let expected = common::published_as(&frames, "TRADE.{channel}.binance-usdm.BTCUSDT");
    (frames, expected)
}

#[tokio::test]
async fn usdm_futures_replay_lands_once_byte_identical_on_venue_subjects() {
    let (server, client) = bus().await;
    let seen = collect(&client).await;
    let (frames, expected) = usdm(3000);
    let (fake, daemon) = replay(&server, frames.into(), &["--venue", "binance-usdm"]).await;
    all_arrive(&seen, expected.len(), 60).await;
    assert!(
        received(&seen) == expected,
        "every event once, byte-identical, on its subject"
    );
    assert_eq!(
        fake.requests(),
        ["/stream?streams=btcusdt@trade/btcusdt@depth@100ms"]
    );
    for m in seen.lock().unwrap().iter() {
        let headers = m.headers.as_ref().unwrap();
        let event: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        let (channel, id) = if event["e"] == "trade" {
            ("trade", event["t"].as_u64().unwrap())
        } else {
            ("depth", event["u"].as_u64().unwrap())
        };
        assert_eq!(
            headers.get(header::MSG_ID).unwrap().as_str(),
            format!("binance-usdm:{channel}:BTCUSDT:{id}")
        );
        assert!(
            headers.get(header::GAP).is_none(),
            "the capture's pu chain is whole"
        );
    }
    assert_eq!(daemon.metric("sequex_sequence_gaps_total", &[]).await, 0.0);
}

/// A COIN-M frame in the documented shape.
fn coinm(stream: &str, data: String) -> CapturedFrame {
    CapturedFrame {
        received_ns: 0,
        text: format!(r#"{{"stream":"{stream}","data":{data}}}"#),
    }
}

#[tokio::test]
async fn coinm_futures_flag_a_broken_pu_chain_and_skip_bad_frames() {
    let (server, client) = bus().await;
    let seen = collect(&client).await;
    let mut frames = Vec::new();
    let mut expected = Vec::new();
    let mut last_u = 900_000u64;
    for i in 0..200u64 {
        let trade = format!(
            r#"{{"e":"trade","E":{t},"T":{t},"s":"BTCUSD_PERP","t":{id},"p":"61800.1","q":"1","X":"MARKET","m":true}}"#,
            t = 1_723_161_256_000 + i,
            id = 70_000 + i
        );
        // Event 120's pu skips events the venue never sent: a broken chain.
        let pu = if i == 120 { last_u + 57 } else { last_u };
        let (first, u) = (pu + 3, pu + 40);
        let depth = format!(
            r#"{{"e":"depthUpdate","E":{t},"T":{t},"s":"BTCUSD_PERP","ps":"BTCUSD","U":{first},"u":{u},"pu":{pu},"b":[["61800.0","10"]],"a":[]}}"#,
            t = 1_723_161_256_000 + i
        );
        last_u = u;
        expected.push((
            "TRADE.trade.binance-coinm.BTCUSD_PERP".to_string(),
            trade.clone(),
        ));
        expected.push((
            "TRADE.depth.binance-coinm.BTCUSD_PERP".to_string(),
            depth.clone(),
        ));
        frames.push(coinm("btcusd_perp@trade", trade));
        frames.push(coinm("btcusd_perp@depth@100ms", depth));
    }
    let bad = frames[10].text[..40].to_string();
    let script = sequex_testkit::Script {
        frames,
        inject: vec![(50, Message::text(bad))],
        ..sequex_testkit::Script::default()
    };
    let (_fake, daemon) = replay(
        &server,
        script,
        &["--venue", "binance-coinm", "--symbols", "BTCUSD_PERP"],
    )
    .await;
    all_arrive(&seen, expected.len(), 60).await;
    assert!(
        received(&seen) == expected,
        "every event once, byte-identical"
    );
    let flagged: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter_map(|m| Some(m.headers.as_ref()?.get(header::GAP)?.to_string()))
        .collect();
    assert_eq!(flagged.len(), 1, "the one broken pu chain: {flagged:?}");
    assert_eq!(
        daemon
            .metric("sequex_frame_errors_total", &["reason=\"truncated\""])
            .await,
        1.0
    );
    assert_eq!(
        daemon
            .metric("sequex_sequence_gaps_total", &["channel=\"depth\""])
            .await,
        1.0
    );
}

#[tokio::test]
async fn two_venues_with_one_instrument_name_never_deduplicate_each_other() {
    let (server, client) = bus().await;
    let (spot_frames, spot) = common::btcusdt(600);
    let (usdm_frames, usdm) = usdm(600);
    let (_spot_fake, _spot_daemon) = replay(&server, spot_frames.into(), &[]).await;
    let (_usdm_fake, _usdm_daemon) =
        replay(&server, usdm_frames.into(), &["--venue", "binance-usdm"]).await;
    let want = (spot.len() + usdm.len()) as u64;
    eventually(
        Duration::from_secs(60),
        "RECORD holds both venues' events",
        || async { stream_count(&client, "RECORD").await >= want },
    )
    .await;
    let record = common::read_stream(&client, "RECORD").await;
    assert_eq!(
        record.len() as u64,
        want,
        "none de-duplicated against the other"
    );
    for (venue, count) in [
        (Venue::BinanceSpot, spot.len()),
        (Venue::BinanceUsdm, usdm.len()),
    ] {
        let filter = Filter::venue(Stream::Record, venue);
        let mine = record
            .iter()
            .filter(|m| filter.matches(&m.subject.parse().unwrap()))
            .count();
        assert_eq!(mine, count, "{venue}: its filter sees its events only");
    }
}

/// The OKX capture's `trades` and `books` frames (books with today's `prevSeqId` and
/// `seqId`), then one frame of three BTC-USDT trades as OKX batches them.
fn okx_frames() -> Vec<CapturedFrame> {
    let frames = capture::load(capture::OKX_PUBLIC).expect("load the OKX capture");
    let mut frames: Vec<CapturedFrame> = capture::okx_with_seq_ids(&frames)
        .into_iter()
        .filter(|f| f.okx_arg().is_some_and(|a| !a.contains("tickers")))
        .collect();
    let trades: Vec<String> = (376..379)
        .map(|id| format!(r#"{{"instId":"BTC-USDT","tradeId":"338476{id}","px":"30236","sz":"0.01","side":"sell","ts":"1652459299000"}}"#))
        .collect();
    frames.push(CapturedFrame {
        received_ns: 0,
        text: format!(
            r#"{{"arg":{{"channel":"trades","instId":"BTC-USDT"}},"data":[{}]}}"#,
            trades.join(",")
        ),
    });
    frames
}

/// The daemon reading the OKX capture's instruments (one in exchange case) from `ws`.
fn okx_daemon(ws: &str, nats: &str, extra: &[&str]) -> sequex_testkit::Daemon {
    let mut args = vec![
        "--venue",
        "okx",
        "--symbols",
        "BTC-USDT,uni-usd-swap,BTC-USD-220527",
        "--ws-url",
        ws,
        "--nats-url",
        nats,
    ];
    args.extend_from_slice(extra);
    common::start_daemon(&args)
}

/// What each event of `frames` becomes: its subject and its bytes.
fn okx_expected(frames: &[CapturedFrame]) -> Vec<(String, String)> {
    frames
        .iter()
        .flat_map(|f| {
            let arg: serde_json::Value = serde_json::from_str(f.okx_arg().unwrap()).unwrap();
            let channel = if arg["channel"] == "trades" {
                "trade"
            } else {
                "depth"
            };
            let subject = format!("TRADE.{channel}.okx.{}", arg["instId"].as_str().unwrap());
            f.okx_events()
                .into_iter()
                .map(move |e| (subject.clone(), e.to_string()))
        })
        .collect()
}

#[tokio::test]
async fn okx_replay_lands_one_message_per_event_with_snapshots_marked_and_chain_breaks_flagged() {
    let (server, client) = bus().await;
    let seen = collect(&client).await;
    let mut frames = okx_frames();
    // One BTC-USDT book update the venue never sent: the next one's prevSeqId names it.
    let books: Vec<usize> = (0..frames.len())
        .filter(|&i| {
            frames[i]
                .okx_arg()
                .unwrap()
                .contains(r#""books","instId":"BTC-USDT""#)
        })
        .collect();
    let lost = frames.remove(books[20]);
    let expected = okx_expected(&frames);
    assert!(expected.len() > 300);
    let bad = frames[5].text[..60].to_string();
    let refused = r#"{"event":"error","code":"60018","msg":"Invalid request: doesn't exist","connId":"fake"}"#;
    let script = sequex_testkit::Script {
        frames,
        inject: vec![(30, Message::text(bad)), (31, Message::text(refused))],
        ..sequex_testkit::Script::default()
    };
    let fake = sequex_testkit::FakeBinance::start(script).await.unwrap();
    let (ws, nats) = (fake.url(), server.url());
    let daemon = okx_daemon(&ws, &nats, &["--stale-after", "4s"]);
    all_arrive(&seen, expected.len(), 60).await;
    assert!(
        received(&seen) == expected,
        "every event once, byte-identical, on its subject, in order"
    );
    let lost_event: serde_json::Value =
        serde_json::from_str(capture::CapturedFrame::okx_events(&lost)[0]).unwrap();
    let mut flagged = Vec::new();
    let mut snapshots = 0;
    for m in seen.lock().unwrap().iter() {
        let headers = m.headers.as_ref().unwrap();
        let event: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        let (channel, id) = match event.get("tradeId") {
            Some(id) => ("trade", id.as_str().unwrap().to_string()),
            None => ("depth", event["seqId"].to_string()),
        };
        let instrument = m.subject.split('.').next_back().unwrap();
        assert_eq!(
            headers.get(header::MSG_ID).unwrap().as_str(),
            format!("okx:{channel}:{instrument}:{id}")
        );
        if headers.get(header::SNAPSHOT).is_some() {
            assert_eq!(event["prevSeqId"], -1);
            snapshots += 1;
        }
        if let Some(gap) = headers.get(header::GAP) {
            flagged.push((
                m.subject.to_string(),
                gap.to_string(),
                event["prevSeqId"].clone(),
            ));
        }
    }
    assert_eq!(snapshots, 3, "one book snapshot per instrument, marked");
    let seq = lost_event["seqId"].as_u64().unwrap();
    assert_eq!(
        flagged,
        [(
            "TRADE.depth.okx.BTC-USDT".to_string(),
            format!("{}-{seq}", lost_event["prevSeqId"].as_u64().unwrap() + 1),
            serde_json::Value::from(seq)
        )],
        "the broken chain, and nothing else, is flagged"
    );
    for reason in ["truncated", "rejected"] {
        let label = format!("reason=\"{reason}\"");
        assert_eq!(
            daemon
                .metric("sequex_frame_errors_total", &[label.as_str()])
                .await,
            1.0,
            "{reason}"
        );
    }
    // Idle now: the daemon pings (after --stale-after / 2), OKX's pong keeps it connected.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert!(fake.pongs() >= 2, "pinged {} times", fake.pongs());
    assert_eq!(fake.connections(), 1, "the idle connection was kept");
}

#[tokio::test]
async fn a_symbol_of_another_venue_is_refused_before_anything_starts() {
    let daemon = common::start_daemon(&["--venue", "okx", "--symbols", "BTCUSDT"]);
    let (status, log) = daemon.exit(Duration::from_secs(10)).await;
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(
        log.contains(
            "--symbols BTCUSDT is not an instrument name of okx: OKX instruments are BASE-QUOTE"
        ),
        "{log}"
    );
}

#[tokio::test]
async fn an_okx_trade_hole_is_filled_from_rest_byte_identical_to_the_websocket() {
    let (server, client) = bus().await;
    let seen = collect(&client).await;
    let frames = okx_frames();
    // The websocket events of every trade, by instrument and id.
    let mut events: std::collections::BTreeMap<(String, u64), String> = Default::default();
    for f in frames
        .iter()
        .filter(|f| f.okx_arg().unwrap().contains("trades"))
    {
        for e in f.okx_events() {
            let v: serde_json::Value = serde_json::from_str(e).unwrap();
            let id = v["tradeId"].as_str().unwrap().parse().unwrap();
            events.insert(
                (v["instId"].as_str().unwrap().to_string(), id),
                e.to_string(),
            );
        }
    }
    let script = sequex_testkit::Script {
        frames,
        drop_after: Some(120),
        skip_on_reconnect: 60,
        ..sequex_testkit::Script::default()
    };
    let fake = sequex_testkit::FakeBinance::start(script).await.unwrap();
    let (ws, rest, nats) = (fake.url(), fake.rest_url(), server.url());
    let daemon = okx_daemon(&ws, &nats, &["--rest-url", &rest]);
    eventually(
        Duration::from_secs(60),
        "a trade filled from REST",
        || async { daemon.metric("sequex_backfill_trades_total", &[]).await > 0.0 },
    )
    .await;
    // Read to the end: the frames sent once the first connection dropped after 120, the
    // 60 skipped, plus the replies to both subscriptions.
    let sent = (okx_frames().len() - 60 + 2 * 6) as f64;
    eventually(
        Duration::from_secs(30),
        "the replay read to its end",
        || async {
            fake.connections() == 2 && daemon.metric("sequex_frames_total", &[]).await >= sent
        },
    )
    .await;
    // What the last frames' gaps asked REST for is published within the REST round trips.
    let mut published = -1.0;
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = daemon.metric("sequex_backfill_trades_total", &[]).await;
        if now == published {
            break;
        }
        published = now;
    }
    assert!(
        fake.rest_requests()
            .iter()
            .all(|r| r.starts_with("/api/v5/market/history-trades?instId=")),
        "{:?}",
        fake.rest_requests()
    );
    // Per instrument: live trades in order; REST copies marked, byte-identical to the
    // websocket's events; no id between the first and the last missing or twice.
    let mut by_instrument: std::collections::BTreeMap<String, Vec<u64>> = Default::default();
    let mut from_rest = 0;
    for m in seen.lock().unwrap().iter() {
        let Some(instrument) = m.subject.as_str().strip_prefix("TRADE.trade.okx.") else {
            continue;
        };
        let event: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        let id: u64 = event["tradeId"].as_str().unwrap().parse().unwrap();
        let headers = m.headers.as_ref().unwrap();
        if headers.get(header::SOURCE).is_some() {
            from_rest += 1;
            assert_eq!(
                std::str::from_utf8(&m.payload).unwrap(),
                events[&(instrument.to_string(), id)],
                "the REST copy is the websocket event, byte for byte"
            );
        }
        assert_eq!(
            headers.get(header::MSG_ID).unwrap().as_str(),
            format!("okx:trade:{instrument}:{id}")
        );
        by_instrument
            .entry(instrument.to_string())
            .or_default()
            .push(id);
    }
    assert!(from_rest > 0);
    assert_eq!(
        daemon.metric("sequex_backfill_trades_total", &[]).await,
        from_rest as f64
    );
    for (instrument, mut ids) in by_instrument {
        ids.sort_unstable();
        let span = (ids[0]..=*ids.last().unwrap()).collect::<Vec<_>>();
        assert_eq!(ids, span, "{instrument}: every trade once");
    }
}
