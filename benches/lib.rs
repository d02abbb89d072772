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
