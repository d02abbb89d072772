//! Criterion benchmarks over the real Binance captures; see `Cargo.toml` for the list and
//! `BENCHMARKS.md` for the figures.

use bytes::Bytes;
use sequex_testkit::capture;

/// The frames `sequex-ingest --symbols BTCUSDT,ETHUSDT` receives: every trade and depth
/// frame of both spot captures, in receive order.
pub fn spot_mix() -> Vec<Bytes> {
    let mut frames: Vec<capture::CapturedFrame> = [capture::SPOT_BTCUSDT, capture::SPOT_ETHUSDT]
        .into_iter()
        .flat_map(|name| capture::load(name).expect("load capture"))
        .filter(|f| {
            f.stream()
                .is_some_and(|s| s.ends_with("@trade") || s.ends_with("@depth@100ms"))
        })
        .collect();
    frames.sort_by_key(|f| f.received_ns);
    one_buffer(&frames)
}

/// The frames `sequex-ingest --venue binance-usdm --symbols BTCUSDT` receives: every trade
/// and depth frame of the USD-M capture (its `@depth@0ms` named `@depth@100ms`, the stream
/// the daemon subscribes to), in receive order.
pub fn usdm_mix() -> Vec<Bytes> {
    let frames: Vec<capture::CapturedFrame> = capture::load(capture::USDM_BTCUSDT)
        .expect("load capture")
        .into_iter()
        .filter(|f| matches!(f.stream(), Some("btcusdt@trade" | "btcusdt@depth@0ms")))
        .map(|mut f| {
            f.text = f.text.replacen("@depth@0ms", "@depth@100ms", 1);
            f
        })
        .collect();
    one_buffer(&frames)
}

/// The USD-M frames in COIN-M's documented shape (`btcusd_perp@…`, `"s":"BTCUSD_PERP"`,
/// depth events with `"ps":"BTCUSD"`): what `--venue binance-coinm --symbols BTCUSD_PERP`
/// receives, at USD-M's pace.
pub fn coinm_mix() -> Vec<Bytes> {
    let frames: Vec<capture::CapturedFrame> = capture::load(capture::USDM_BTCUSDT)
        .expect("load capture")
        .into_iter()
        .filter(|f| matches!(f.stream(), Some("btcusdt@trade" | "btcusdt@depth@0ms")))
        .map(|mut f| {
            let depth = f.stream() == Some("btcusdt@depth@0ms");
            f.text = f
                .text
                .replacen("btcusdt@depth@0ms", "btcusd_perp@depth@100ms", 1)
                .replacen("btcusdt@trade", "btcusd_perp@trade", 1)
                .replacen(
                    r#""s":"BTCUSDT""#,
                    if depth {
                        r#""s":"BTCUSD_PERP","ps":"BTCUSD""#
                    } else {
                        r#""s":"BTCUSD_PERP""#
                    },
                    1,
                );
            f
        })
        .collect();
    one_buffer(&frames)
}

/// What `--venue okx --symbols BTC-USDT,UNI-USD-SWAP,BTC-USD-220527` receives: the OKX
/// capture's `trades` and `books` frames, books with today's `prevSeqId`/`seqId`.
pub fn okx_mix() -> Vec<Bytes> {
    let frames = capture::load(capture::OKX_PUBLIC).expect("load capture");
    let frames: Vec<capture::CapturedFrame> = capture::okx_with_seq_ids(&frames)
        .into_iter()
        .filter(|f| f.okx_arg().is_some_and(|a| !a.contains("tickers")))
        .collect();
    one_buffer(&frames)
}

fn one_buffer(frames: &[capture::CapturedFrame]) -> Vec<Bytes> {
    // Slices of one buffer, as tungstenite hands out slices of its read buffer: cloning a
    // payload out of a frame is then a reference-count increment, as in the daemon.
    let all = Bytes::from(frames.iter().map(|f| f.text.as_str()).collect::<String>());
    let mut at = 0;
    frames
        .iter()
        .map(|f| {
            at += f.text.len();
            all.slice(at - f.text.len()..at)
        })
        .collect()
}
