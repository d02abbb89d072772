//! The headers `sequex-ingest` puts on every message: what the payload does not already
//! carry (the event time and update ids are in it, byte for byte). Each header costs the
//! daemon an allocation or two and a hash insert, and the server its bytes in every stored
//! copy (BENCHMARKS.md).

use crate::subject::Channel;
use crate::symbol::Symbol;

/// JetStream's de-duplication id: `<venue>:<channel>:<SYMBOL>:<id>`, where the id is the
/// trade id or the depth event's final update id. Unique per stream, so it names the
/// channel: a trade and a depth event may share a number.
pub const MSG_ID: &str = "Nats-Msg-Id";
/// When the frame was read from the socket, in ns since the Unix epoch (local clock).
pub const RECEIVE_TIME_NS: &str = "Sequex-Receive-Time-Ns";
/// On the first message published after ids went missing: the missing ids, inclusive,
/// as `<first>-<last>` in decimal (`8-9`; one id: `8-8`). Whatever lost them (the
/// exchange, a reconnect, the daemon's full publish queue, NATS down), the range covers
/// every id between the previous message of the stream and this one: a book builder that
/// sees it must resynchronise from a snapshot. Build and read it with [`gap_value`] and
/// [`parse_gap`].
pub const GAP: &str = "Sequex-Gap";
/// On the first message after the venue started its ids again (lower than before, with
/// newer event times): the last id of the old sequence, in decimal. Ids before and after
/// it are not comparable; resynchronise as for a gap. When the event that announced the
/// reset could not be published, [`GAP`] on the same message names its ids.
pub const RESET: &str = "Sequex-Reset";
/// On a depth message that is a whole book rather than a diff (OKX's `books` snapshot,
/// sent first on every connection): `true`. A book builder replaces its book with it; a
/// snapshot is never a gap, whatever came before it.
pub const SNAPSHOT: &str = "Sequex-Snapshot";
/// Where the message came from when it is not the live websocket: `rest` for trades
/// fetched from the venue's REST API to fill a gap. Such messages carry the same
/// [`MSG_ID`] a websocket copy would, may arrive after newer live ones, and are in id order
/// among themselves.
pub const SOURCE: &str = "Sequex-Source";
/// The [`SOURCE`] of trades fetched from the venue's REST API.
pub const SOURCE_REST: &str = "rest";

/// Set by the server on every message a stream sources from another:
/// `<origin>[:<hash>] <origin sequence> <filter> <transform>`; [`parse_stream_source`]
/// reads it. RECORD's last message says how far RECORD has sourced TRADE.
pub const STREAM_SOURCE: &str = "Nats-Stream-Source";

/// The origin stream and its sequence in a [`STREAM_SOURCE`] value.
///
/// ```
/// use sequex_subjects::header;
///
/// assert_eq!(header::parse_stream_source("TRADE 42 TRADE.> record.>"), Some(("TRADE", 42)));
/// assert_eq!(header::parse_stream_source("TRADE:Lq5TmPRt 7 > >"), Some(("TRADE", 7)));
/// assert_eq!(header::parse_stream_source("TRADE"), None);
/// ```
pub fn parse_stream_source(value: &str) -> Option<(&str, u64)> {
    let mut tokens = value.split_whitespace();
    let origin = tokens.next()?;
    let origin = origin.split_once(':').map_or(origin, |(name, _)| name);
    Some((origin, tokens.next()?.parse().ok()?))
}

/// The [`GAP`] value of the missing ids `range` (end exclusive, not empty).
///
/// ```
/// use sequex_subjects::header;
///
/// assert_eq!(header::gap_value(&(8..10)), "8-9");
/// assert_eq!(header::parse_gap("8-9"), Some(8..10));
/// assert_eq!(header::parse_gap("9-8"), None);
/// ```
pub fn gap_value(range: &std::ops::Range<u64>) -> String {
    let mut first = itoa::Buffer::new();
    let mut last = itoa::Buffer::new();
    let (first, last) = (first.format(range.start), last.format(range.end - 1));
    let mut text = String::with_capacity(first.len() + 1 + last.len());
    text.push_str(first);
    text.push('-');
    text.push_str(last);
    text
}

/// Reads a [`GAP`] value back into the missing ids (end exclusive).
pub fn parse_gap(value: &str) -> Option<std::ops::Range<u64>> {
    let (first, last) = value.split_once('-')?;
    let (first, last): (u64, u64) = (first.parse().ok()?, last.parse().ok()?);
    if first > last {
        return None;
    }
    Some(first..last.checked_add(1)?)
}

/// The [`MSG_ID`] of one message, built from a [`message_id_prefix`] and the id.
///
/// ```
/// use sequex_subjects::{Channel, Symbol, header};
///
/// let prefix = header::message_id_prefix("binance-spot", Channel::Trade, &Symbol::from_static("BTCUSDT"));
/// assert_eq!(prefix, "binance-spot:trade:BTCUSDT:");
/// assert_eq!(header::message_id(&prefix, 3735683259), "binance-spot:trade:BTCUSDT:3735683259");
/// ```
pub fn message_id(prefix: &str, id: u64) -> String {
    let mut digits = itoa::Buffer::new();
    let digits = digits.format(id);
    let mut text = String::with_capacity(prefix.len() + digits.len());
    text.push_str(prefix);
    text.push_str(digits);
    text
}

/// Everything of a [`MSG_ID`] but the id: build it once per symbol and channel.
///
/// ```
/// use sequex_subjects::{Channel, Symbol, header};
///
/// let prefix = header::message_id_prefix("binance-spot", Channel::Depth, &Symbol::from_static("ETHUSDT"));
/// assert_eq!(prefix, "binance-spot:depth:ETHUSDT:");
/// ```
pub fn message_id_prefix(venue: &str, channel: Channel, symbol: &Symbol) -> String {
    format!("{venue}:{channel}:{symbol}:")
}
