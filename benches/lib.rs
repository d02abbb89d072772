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
    frames.into_iter().map(|f| Bytes::from(f.text)).collect()
}
