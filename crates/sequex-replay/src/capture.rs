//! The real Binance captures in `shared/fixtures/binance/`: one frame a line,
//! `<receive ns> <frame text>`, gzip.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;

use crate::Error;

/// The environment variable that overrides where the captures are.
pub const FIXTURES_ENV: &str = "SEQUEX_FIXTURES";

/// Spot BTCUSDT, 2024-08-08: 9,757 trades, 3,451 depth@100ms, 28,040 bookTicker.
pub const SPOT_BTCUSDT: &str = "spot_btcusdt_20240808.gz";
/// Spot ETHUSDT, 2024-08-08: 6,106 trades, 3,434 depth@100ms, 24,077 bookTicker.
pub const SPOT_ETHUSDT: &str = "spot_ethusdt_20240808.gz";
/// USD-M futures BTCUSDT, 2024-08-08: 21,313 trades, 6,551 depth@0ms, 66,089 bookTicker.
pub const USDM_BTCUSDT: &str = "usdm_btcusdt_20240808.gz";
/// OKX v5 public, 2022-05-13 (in `okx/` beside `binance/`): `BTC-USDT`, `UNI-USD-SWAP`,
/// `BTC-USD-220527`; 80 `trades`, 293 `books` (before `seqId`), 37 `tickers` frames.
pub const OKX_PUBLIC: &str = "../okx/okx_v5_public_20220513.gz";

/// One captured websocket frame.
#[derive(Clone, Debug)]
pub struct CapturedFrame {
    /// When the recorder received it (its clock ran about 1.3 s behind the exchange).
    pub received_ns: u64,
    /// The frame, byte for byte.
    pub text: String,
}

impl CapturedFrame {
    /// The combined-stream name (`btcusdt@trade`), or `None` for the REST snapshot line.
    pub fn stream(&self) -> Option<&str> {
        let rest = self.text.strip_prefix(r#"{"stream":""#)?;
        Some(&rest[..rest.find('"')?])
    }

    /// The stream name whatever the envelope's layout (member order, whitespace); an
    /// OKX frame's `arg` object.
    pub fn any_stream(&self) -> Option<String> {
        self.stream()
            .or(self.okx_arg())
            .map(str::to_string)
            .or_else(|| {
                let envelope: serde_json::Value = serde_json::from_str(&self.text).ok()?;
                Some(envelope.get("stream")?.as_str()?.to_string())
            })
    }

    /// An OKX data frame's `arg` object, byte for byte (`{"channel":"trades",…}`).
    pub fn okx_arg(&self) -> Option<&str> {
        let rest = self.text.strip_prefix(r#"{"arg":"#)?;
        self.text.contains(r#""data":["#).then_some(())?;
        Some(&rest[..=rest.find('}')?])
    }

    /// An OKX data frame's events, each byte for byte: what the daemon publishes.
    pub fn okx_events(&self) -> Vec<&str> {
        use serde_json::value::RawValue;
        let events = || -> Option<Vec<&str>> {
            let frame: HashMap<&str, &RawValue> = serde_json::from_str(&self.text).ok()?;
            let events: Vec<&RawValue> = serde_json::from_str(frame.get("data")?.get()).ok()?;
            Some(events.into_iter().map(RawValue::get).collect())
        };
        events().unwrap_or_default()
    }

    /// The `data` object, byte for byte: what the daemon publishes.
    pub fn data(&self) -> Option<&str> {
        let start = self.text.find(r#","data":"#)? + 8;
        Some(&self.text[start..self.text.trim_end().len() - 1])
    }
}

/// `$SEQUEX_FIXTURES`, else `shared/fixtures/binance` beside the checkout.
pub fn fixtures_dir() -> PathBuf {
    std::env::var_os(FIXTURES_ENV).map_or_else(
        || crate::workspace_root().join("../shared/fixtures/binance"),
        PathBuf::from,
    )
}

/// Loads every websocket frame of a capture of the fixtures folder (the REST snapshot line
/// is left out).
pub fn load(name: &str) -> Result<Vec<CapturedFrame>, Error> {
    let path = fixtures_dir().join(name);
    load_file(&path).map_err(|e| match e {
        Error::Io(e) => Error::Setup(format!(
            "cannot read capture {}: {e}; set {FIXTURES_ENV} to the folder holding the Binance captures",
            path.display()
        )),
        other => other,
    })
}

/// Loads every websocket frame of the capture at `path`.
pub fn load_file(path: &std::path::Path) -> Result<Vec<CapturedFrame>, Error> {
    let file = std::fs::File::open(path)
        .map_err(|e| Error::Setup(format!("cannot open capture {}: {e}", path.display())))?;
    let mut frames = Vec::new();
    for line in BufReader::new(flate2::read::GzDecoder::new(file)).lines() {
        let line = line?;
        let Some((ns, text)) = line.split_once(' ') else {
            continue;
        };
        let frame = CapturedFrame {
            received_ns: ns.parse().unwrap_or(0),
            text: text.to_string(),
        };
        if frame.stream().is_some() || frame.okx_arg().is_some() {
            frames.push(frame);
        }
    }
    Ok(frames)
}

/// The OKX capture's frames with `prevSeqId` and `seqId` added to every `books` event, as
/// OKX sends them today: a snapshot has `prevSeqId` -1, each update names the `seqId`
/// before it, and ids rise by uneven steps (live ids moved by 7 to 93).
pub fn okx_with_seq_ids(frames: &[CapturedFrame]) -> Vec<CapturedFrame> {
    let mut last: HashMap<String, u64> = Default::default();
    frames
        .iter()
        .map(|frame| {
            let Some(arg) = frame.okx_arg().filter(|a| a.contains(r#""books""#)) else {
                return frame.clone();
            };
            let snapshot = frame.text.contains(r#""action":"snapshot""#);
            let previous = last.get(arg).copied();
            let seq = previous.map_or(1_000, |p| p + 7 + p % 11);
            let prev = match (snapshot, previous) {
                (false, Some(p)) => p.to_string(),
                _ => "-1".to_string(),
            };
            last.insert(arg.to_string(), seq);
            let cut = frame.text.trim_end().len() - 3;
            CapturedFrame {
                received_ns: frame.received_ns,
                text: format!(
                    r#"{},"prevSeqId":{prev},"seqId":{seq}}}]}}"#,
                    &frame.text[..cut]
                ),
            }
        })
        .collect()
}
