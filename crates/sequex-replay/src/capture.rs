//! The real Binance captures in `shared/fixtures/binance/`: one frame a line,
//! `<receive ns> <frame text>`, gzip.

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

    /// The stream name whatever the envelope's layout (member order, whitespace).
    pub fn any_stream(&self) -> Option<String> {
        self.stream().map(str::to_string).or_else(|| {
            let envelope: serde_json::Value = serde_json::from_str(&self.text).ok()?;
            Some(envelope.get("stream")?.as_str()?.to_string())
        })
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
        if frame.stream().is_some() {
            frames.push(frame);
        }
    }
    Ok(frames)
}
