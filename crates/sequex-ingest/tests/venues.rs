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
    let expected = frames
        .iter()
        .map(|f| {
            let channel = if f.stream() == Some("btcusdt@trade") {
                "trade"
            } else {
                "depth"
            };
            (
                format!("TRADE.{channel}.binance-usdm.BTCUSDT"),
                f.data().unwrap().to_string(),
            )
        })
        .collect();
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
