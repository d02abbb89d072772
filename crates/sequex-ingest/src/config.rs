//! The command line. Every flag can also be set through a `SEQUEX_*` variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use sequex_subjects::{Channel, Symbol};

use crate::venue::{DepthSpeed, VenueId};

/// The NATS URL when neither `--nats-url` nor `NATS_URL` is set.
pub(crate) const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// Streams Binance trades and depth updates into NATS JetStream: every event of the
/// requested symbols is published, fire-and-forget, to `TRADE.trade.<SYMBOL>` or
/// `TRADE.depth.<SYMBOL>`, with its payload byte-identical to the exchange's `data` object.
///
/// The TRADE stream must exist (`nats stream add --config configs/stream_trade.json`);
/// this program never creates or changes streams.
///
/// Exit codes: 0 after a clean shutdown (SIGTERM, SIGINT), 2 for a configuration problem
/// or a missing stream, 1 for any other fatal error.
#[derive(Debug, Parser)]
#[command(name = "sequex-ingest", version, max_term_width = 100)]
pub struct Cli {
    /// Symbols to ingest, comma-separated, any case: `BTCUSDT,ethusdt`. A symbol that cannot
    /// be a subject token (`.`, `*`, `>`, spaces, non-ASCII) is refused before anything connects.
    #[arg(long, env = "SEQUEX_SYMBOLS", value_delimiter = ',', required = true, value_parser = Symbol::normalize)]
    pub symbols: Vec<Symbol>,

    /// The exchange.
    #[arg(long, env = "SEQUEX_VENUE", value_enum, default_value = "binance-spot")]
    pub venue: VenueId,

    /// Channels to ingest, comma-separated.
    #[arg(long, env = "SEQUEX_CHANNELS", value_delimiter = ',', default_value = "trade,depth", value_parser = parse_channel)]
    pub channels: Vec<Channel>,

    /// Depth update speed: `100ms` (`<symbol>@depth@100ms`) or `1000ms` (`<symbol>@depth`).
    #[arg(long, env = "SEQUEX_DEPTH_SPEED", value_enum, default_value = "100ms")]
    pub depth_speed: DepthSpeed,

    /// The exchange websocket endpoint [default: the venue's, wss://stream.binance.com:9443].
    /// Also `wss://data-stream.binance.vision`, or a local test server `ws://127.0.0.1:PORT`.
    #[arg(long, env = "SEQUEX_WS_URL")]
    pub ws_url: Option<String>,

    /// A CA certificate (PEM, one or more) to trust for the exchange's TLS, beside the
    /// system trust store (which `SSL_CERT_FILE` and `SSL_CERT_DIR` also set).
    #[arg(long, env = "SEQUEX_WS_TLS_CA")]
    pub ws_tls_ca: Option<PathBuf>,

    /// NATS server URL(s), comma-separated [default: $NATS_URL, else nats://127.0.0.1:4222].
    #[arg(long, env = "SEQUEX_NATS_URL")]
    pub nats_url: Option<String>,

    /// NATS credentials file (JWT and NKey seed).
    #[arg(long, env = "SEQUEX_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,

    /// NATS user name (with --nats-password).
    #[arg(long, env = "SEQUEX_NATS_USER", requires = "nats_password")]
    pub nats_user: Option<String>,

    /// NATS password (with --nats-user).
    #[arg(
        long,
        env = "SEQUEX_NATS_PASSWORD",
        requires = "nats_user",
        hide_env_values = true
    )]
    pub nats_password: Option<String>,

    /// NATS authentication token.
    #[arg(long, env = "SEQUEX_NATS_TOKEN", hide_env_values = true)]
    pub nats_token: Option<String>,

    /// NATS NKey seed (`SU...`).
    #[arg(long, env = "SEQUEX_NATS_NKEY", hide_env_values = true)]
    pub nats_nkey: Option<String>,

    /// CA certificate (PEM) to verify the NATS server with; turns TLS on.
    #[arg(long, env = "SEQUEX_NATS_TLS_CA")]
    pub nats_tls_ca: Option<PathBuf>,

    /// Client certificate (PEM) for NATS mutual TLS (with --nats-tls-key).
    #[arg(long, env = "SEQUEX_NATS_TLS_CERT", requires = "nats_tls_key")]
    pub nats_tls_cert: Option<PathBuf>,

    /// Client private key (PEM) for NATS mutual TLS (with --nats-tls-cert).
    #[arg(long, env = "SEQUEX_NATS_TLS_KEY", requires = "nats_tls_cert")]
    pub nats_tls_key: Option<PathBuf>,

    /// Where to serve /metrics (Prometheus), /healthz and /readyz.
    #[arg(long, env = "SEQUEX_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    pub metrics_addr: SocketAddr,

    /// If TRADE is missing at start, wait up to this long for it (e.g. `60s`, at most
    /// `24h`) instead of exiting with code 2; also bounds how long an unanswering
    /// JetStream is retried at start (without it: until it answers).
    #[arg(long, env = "SEQUEX_WAIT_FOR_STREAMS", value_parser = duration_between(1, 24 * 3600))]
    pub wait_for_streams: Option<Duration>,

    /// Messages the publish queue holds while NATS is slow or down; past that, new
    /// messages are dropped and counted (sequex_dropped_messages_total{reason="queue_full"}),
    /// so that the websocket is never stalled.
    #[arg(long, env = "SEQUEX_PUBLISH_QUEUE", default_value_t = 8192, value_parser = clap::value_parser!(u32).range(16..=1 << 20))]
    pub publish_queue: u32,

    /// Payload bytes the publish queue holds while NATS is slow or down (64 KiB to 4 GiB);
    /// past that, new messages are dropped and counted
    /// (sequex_dropped_messages_total{reason="queue_bytes"}). The default keeps the daemon
    /// well inside the shipped systemd unit's MemoryMax=256M.
    #[arg(long, env = "SEQUEX_PUBLISH_QUEUE_BYTES", default_value_t = 64 << 20, value_parser = clap::value_parser!(u64).range(64 << 10..=4 << 30))]
    pub publish_queue_bytes: u64,

    /// Leave out the per-message headers (Nats-Msg-Id, Sequex-Receive-Time-Ns,
    /// Sequex-Gap). Saves their cost, but loses JetStream de-duplication and gap flags.
    #[arg(long, env = "SEQUEX_NO_HEADERS")]
    pub no_headers: bool,

    /// Poll the sockets without ever sleeping: a frame is read as soon as it arrives
    /// instead of after the kernel wakes an idle core, which on virtual machines costs tens
    /// to hundreds of microseconds. Uses one core fully: pin the daemon to a core of its
    /// own (systemd `CPUAffinity=`, `taskset`).
    #[arg(long, env = "SEQUEX_BUSY_POLL")]
    pub busy_poll: bool,

    /// Reconnect a websocket on which nothing (not even a ping) arrived for this long
    /// (1s to 1h).
    #[arg(long, env = "SEQUEX_STALE_AFTER", default_value = "30s", value_parser = duration_between(1, 3600))]
    pub stale_after: Duration,

    /// Streams per websocket connection [default: the venue's limit, 1024 for Binance].
    #[arg(long, env = "SEQUEX_STREAMS_PER_CONNECTION", value_parser = clap::value_parser!(u32).range(1..))]
    pub streams_per_connection: Option<u32>,

    /// Frames larger than this (1 KiB to 64 MiB) are skipped and counted, the connection
    /// kept; the websocket layer refuses frames over twice this before buffering them
    /// whole, and the connection is replaced.
    #[arg(long, env = "SEQUEX_MAX_FRAME_BYTES", default_value_t = 1 << 20, value_parser = clap::value_parser!(u64).range(1 << 10..=64 << 20))]
    pub max_frame_bytes: u64,

    /// The venue's REST API, from which trade gaps are filled [default: the venue's,
    /// https://api.binance.com, https://www.okx.com; the Binance futures' need a key: no
    /// backfill].
    #[arg(long, env = "SEQUEX_REST_URL")]
    pub rest_url: Option<String>,

    /// At most this many trades are fetched from REST per trade gap (0 turns backfill
    /// off; at most 1000000).
    #[arg(long, env = "SEQUEX_BACKFILL_MAX_TRADES", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub backfill_max_trades: u64,

    /// Log a summary line this often: messages per second per channel, drops, gaps and
    /// reconnects since the last line (what an operator reads first in `journalctl`);
    /// `0` turns it off (otherwise 1s to 24h).
    #[arg(long, env = "SEQUEX_SUMMARY_INTERVAL", default_value = "60s", value_parser = summary_interval)]
    pub summary_interval: Duration,

    /// Log format.
    #[arg(long, env = "SEQUEX_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,

    /// Log filter, in `RUST_LOG` syntax.
    #[arg(long, env = "SEQUEX_LOG", default_value = "info")]
    pub log: String,

    /// Benchmarks only: publish without checking that TRADE exists, so that a bench can
    /// measure the daemon against a server without JetStream capture.
    #[arg(long, env = "SEQUEX_SKIP_STREAM_CHECK", hide = true)]
    pub skip_stream_check: bool,
}

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Cli {
    /// The NATS URL: the flag, else `$NATS_URL`, else the default.
    pub fn nats_url(&self) -> String {
        self.nats_url
            .clone()
            .or_else(|| std::env::var("NATS_URL").ok().filter(|u| !u.is_empty()))
            .unwrap_or_else(|| DEFAULT_NATS_URL.to_string())
    }
}

fn parse_channel(s: &str) -> Result<Channel, String> {
    s.trim()
        .to_ascii_lowercase()
        .parse()
        .map_err(|_| format!("unknown channel {s:?} (use trade, depth)"))
}

/// `500ms`, `30s`, `5m`, `1h`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (use e.g. 500ms, 30s, 5m, 1h)"))?;
    let (ms_per_unit, n) = match unit {
        "ms" => (1, n),
        "s" | "" => (1_000, n),
        "m" => (60_000, n),
        "h" => (3_600_000, n),
        _ => {
            return Err(format!(
                "invalid duration unit in {s:?} (use ms, s, m or h)"
            ));
        }
    };
    n.checked_mul(ms_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("duration {s:?} is too long"))
}

/// A [`parse_duration`] that also refuses what is outside `min_s..=max_s` seconds.
fn duration_between(
    min_s: u64,
    max_s: u64,
) -> impl Fn(&str) -> Result<Duration, String> + Clone + Send + Sync + 'static {
    move |s| {
        let d = parse_duration(s)?;
        let (min, max) = (Duration::from_secs(min_s), Duration::from_secs(max_s));
        if d < min || d > max {
            return Err(format!(
                "{s:?} is out of range: use {} to {}",
                human(min),
                human(max)
            ));
        }
        Ok(d)
    }
}

fn summary_interval(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        Duration::ZERO => Ok(Duration::ZERO),
        _ => duration_between(1, 24 * 3600)(s),
    }
}

fn human(d: Duration) -> String {
    match d.as_secs() {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn symbols_are_case_insensitive_and_validated() {
        let cli = Cli::try_parse_from(["x", "--symbols", "btcusdt,ETHUSDT"]).unwrap();
        assert_eq!(
            cli.symbols,
            [
                Symbol::from_static("BTCUSDT"),
                Symbol::from_static("ETHUSDT")
            ]
        );
        assert_eq!(cli.channels, Channel::ALL);
        let err = Cli::try_parse_from(["x", "--symbols", "BTCUSDT,BTC.USDT"]).unwrap_err();
        assert!(
            err.to_string().contains(
                "invalid symbol \"BTC.USDT\": '.' at byte 3 is not allowed (use A-Z, 0-9, '_' or '-')"
            ),
            "{err}"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("18446744073709551615h").is_err(), "overflow");
    }

    #[test]
    fn zero_and_absurd_values_are_refused_at_parse_time() {
        // TC: (flag, value, what the error says)
        let cases = [
            ("--stale-after", "0", "out of range: use 1s to 1h"),
            ("--stale-after", "0s", "out of range"),
            ("--stale-after", "500ms", "out of range"),
            ("--stale-after", "2h", "out of range"),
            ("--wait-for-streams", "0s", "out of range: use 1s to 24h"),
            ("--wait-for-streams", "99999999999999999h", "too long"),
            ("--max-frame-bytes", "0", "not in 1024..=67108864"),
            ("--publish-queue", "0", "not in 16..=1048576"),
            ("--publish-queue-bytes", "0", "not in 65536..=4294967296"),
            ("--backfill-max-trades", "2000000", "not in 0..=1000000"),
            ("--streams-per-connection", "0", "0 is not in 1.."),
        ];
        for (flag, value, says) in cases {
            let err = Cli::try_parse_from(["x", "--symbols", "BTCUSDT", flag, value]).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{flag} {value}");
            assert!(err.to_string().contains(says), "{flag} {value}: {err}");
        }
    }
}
