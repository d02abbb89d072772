//! Venues: how to reach an exchange and how to read its frames. The pipeline (`feed`,
//! `route`) is generic over [`Venue`]; adding USD-M futures, Bybit or OKX means adding a
//! module here, not touching the pipeline.

pub(crate) mod binance;
pub(crate) mod binance_futures;
pub(crate) mod json;
pub(crate) mod okx;

use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;
use clap::ValueEnum;
use sequex_subjects::{Channel, Symbol};

/// The venues `--venue` accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum VenueId {
    /// Binance spot (`wss://stream.binance.com:9443`).
    #[value(name = "binance-spot")]
    BinanceSpot,
    /// Binance USD-M futures (`wss://fstream.binance.com`).
    #[value(name = "binance-usdm")]
    BinanceUsdm,
    /// Binance COIN-M futures (`wss://dstream.binance.com`).
    #[value(name = "binance-coinm")]
    BinanceCoinm,
    /// OKX v5 public (`wss://ws.okx.com:8443/ws/v5/public`).
    #[value(name = "okx")]
    Okx,
}

/// Options that shape a venue's stream names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DepthSpeed {
    /// A depth update every 100 ms.
    #[value(name = "100ms")]
    Ms100,
    /// A depth update every second.
    #[value(name = "1000ms")]
    Ms1000,
}

/// One websocket text frame, read far enough to route it.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// Market data: the venue's stream name and where the payload sits in the frame.
    Data {
        /// The routing key, e.g. `btcusdt@trade`.
        stream: &'a [u8],
        /// The byte range of the event object, forwarded unchanged.
        payload: Range<usize>,
    },
    /// The venue will close this connection soon: reconnect now.
    ServerShutdown,
    /// An answer to a control request (such as SUBSCRIBE): nothing to forward.
    ControlReply,
}

/// The sequence ids of one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ids {
    /// A trade and its id (`t`).
    Trade {
        /// The trade id.
        id: u64,
    },
    /// Consecutive ids `first..=last`: a spot depth diff (`U`, `u`), or an OKX trade that
    /// aggregates `count` fills.
    Range {
        /// The first id in the event.
        first: u64,
        /// The last id in the event.
        last: u64,
    },
    /// A depth diff that names the final update id of the event before it (`pu`): the
    /// futures' continuity rule, where update ids are not consecutive.
    ChainedDepth {
        /// The first update id in the event.
        first: u64,
        /// The final update id in the event.
        last: u64,
        /// The final update id of the previous event (`pu`).
        prev: u64,
    },
    /// A whole book (OKX's `books` snapshot): it follows nothing, so it is never a gap.
    Snapshot {
        /// Its sequence id.
        id: u64,
    },
}

impl Ids {
    /// The first id the event covers.
    pub fn first(self) -> u64 {
        match self {
            Ids::Trade { id } | Ids::Snapshot { id } => id,
            Ids::Range { first, .. } | Ids::ChainedDepth { first, .. } => first,
        }
    }

    /// The last id the event covers: the one the next event must follow.
    pub fn last(self) -> u64 {
        match self {
            Ids::Trade { id } | Ids::Snapshot { id } => id,
            Ids::Range { last, .. } | Ids::ChainedDepth { last, .. } => last,
        }
    }
}

/// What the pipeline needs from an event, read without decoding the payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fields {
    /// The event's sequence ids.
    pub ids: Ids,
    /// The exchange's event time, in ms since the epoch.
    pub event_time_ms: u64,
}

/// Why a frame was skipped. Each is counted under its [`FrameError::reason`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame ends before its JSON does.
    #[error("truncated JSON")]
    Truncated,
    /// The frame is not the JSON the venue sends.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    /// A stream this connection did not ask for.
    #[error("frame for a stream that was not subscribed")]
    UnknownStream,
    /// The event type does not match the stream's channel.
    #[error("unexpected event type for the stream")]
    UnexpectedEvent,
    /// A field the pipeline needs is absent or not an unsigned integer.
    #[error("field {0:?} is missing or not an unsigned integer")]
    BadField(&'static str),
    /// A binary frame, which the JSON streams never send.
    #[error("binary frame")]
    Binary,
    /// A frame over `--max-frame-bytes`.
    #[error("frame over the size limit")]
    Oversized,
    /// The venue refused a request (OKX's `{"event":"error",…}`: a subscription to an
    /// instrument it does not list, say).
    #[error("the venue refused a request")]
    Rejected,
}

impl FrameError {
    /// Every [`FrameError::reason`], in [`FrameError::index`] order.
    pub const REASONS: [&'static str; 8] = [
        "truncated",
        "malformed",
        "unknown_stream",
        "unexpected_event",
        "bad_field",
        "binary",
        "oversized",
        "rejected",
    ];

    /// The bounded `reason` label of `sequex_frame_errors_total`.
    pub fn reason(self) -> &'static str {
        Self::REASONS[self.index()]
    }

    /// The position of [`FrameError::reason`] in [`FrameError::REASONS`].
    pub fn index(self) -> usize {
        match self {
            FrameError::Truncated => 0,
            FrameError::Malformed(_) => 1,
            FrameError::UnknownStream => 2,
            FrameError::UnexpectedEvent => 3,
            FrameError::BadField(_) => 4,
            FrameError::Binary => 5,
            FrameError::Oversized => 6,
            FrameError::Rejected => 7,
        }
    }
}

impl From<json::ScanError> for FrameError {
    fn from(error: json::ScanError) -> Self {
        match error {
            json::ScanError::Truncated => FrameError::Truncated,
            json::ScanError::Unexpected => FrameError::Malformed("invalid JSON in the event"),
        }
    }
}

/// An exchange's market-data websocket.
pub trait Venue: Send + Sync + 'static {
    /// The venue, as the subjects know it.
    const VENUE: sequex_subjects::Venue;
    /// The venue's name in metrics, logs and message ids, e.g. `binance-spot`.
    const ID: &'static str = Self::VENUE.as_str();
    /// The production endpoint.
    const DEFAULT_URL: &'static str;
    /// Whether a data frame's payload is an array of events, each published on its own
    /// (OKX), rather than one event (Binance).
    const EVENT_ARRAYS: bool = false;
    /// A text the venue wants from the client after this long without a frame (OKX
    /// closes a connection silent for 30 s); the venue answers it.
    const CLIENT_PING: Option<(&'static str, Duration)> = None;
    /// The most streams one connection may carry.
    const MAX_STREAMS_PER_CONNECTION: usize;
    /// At most this many connection attempts per [`Venue::CONNECT_WINDOW`] (per IP).
    const CONNECTS_PER_WINDOW: usize;
    /// See [`Venue::CONNECTS_PER_WINDOW`].
    const CONNECT_WINDOW: Duration;
    /// The venue closes a connection after this long; reconnect shortly before.
    const CONNECTION_LIFETIME: Duration;

    /// The venue's stream name for one symbol and channel, e.g. `btcusdt@depth@100ms`.
    fn stream_name(symbol: &Symbol, channel: Channel, depth: DepthSpeed) -> String;

    /// The URL that opens a connection carrying `streams`.
    fn connect_url(base: &str, streams: &[String]) -> String;

    /// The messages that subscribe a new connection to `streams`, for venues that take
    /// subscriptions by message rather than in the URL.
    fn subscriptions(_streams: &[String]) -> Vec<String> {
        Vec::new()
    }

    /// Why `symbol` cannot be one of this venue's instruments, if it cannot.
    fn check_symbol(_symbol: &Symbol) -> Result<(), &'static str> {
        Ok(())
    }

    /// Reads a text frame far enough to route it.
    fn classify(frame: &[u8]) -> Result<Frame<'_>, FrameError>;

    /// Reads the sequence ids and event time of a payload on `channel`.
    fn fields(channel: Channel, payload: &[u8]) -> Result<Fields, FrameError>;

    /// Whether an event that could not be routed is the venue's notice that it will close
    /// the connection (some venues send it inside the data envelope).
    fn is_shutdown_notice(_event: &[u8]) -> bool {
        false
    }

    /// The ids missing between the previous event's last id and `next`, if any: the
    /// continuity rule of the venue's streams.
    fn gap(prev_last: u64, next: Ids) -> Option<Range<u64>> {
        let expected = prev_last.checked_add(1)?;
        match next {
            // Everything after the last id seen up to the one this event follows.
            Ids::ChainedDepth { prev, .. } => (prev > prev_last).then(|| expected..prev + 1),
            Ids::Snapshot { .. } => None,
            _ => (next.first() > expected).then(|| expected..next.first()),
        }
    }
}

/// A venue whose REST API serves past trades by id: what trade backfill needs.
pub(crate) trait RestTrades {
    /// Whether the venue serves old trades without an API key (else no backfill).
    const AVAILABLE: bool = true;
    /// The production REST endpoint.
    const REST_URL: &'static str;
    /// The most trades one request returns.
    const REST_TRADES_PER_PAGE: u64;

    /// The path and query of the request for up to `limit` trades of `symbol`, from id
    /// `from` on.
    fn trades_path(symbol: &Symbol, from: u64, limit: u64) -> String;

    /// The trades of an answer, in id order, each with the payload its websocket event
    /// carries (same members, same order), so that consumers decode one format.
    fn parse_trades(symbol: &Symbol, body: &[u8]) -> Result<Vec<(u64, Bytes)>, String>;
}
