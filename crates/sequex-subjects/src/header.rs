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
/// On the first message after missing ids: the missing range `<first>-<last>`,
/// inclusive. A book builder that sees it must resynchronise from a snapshot.
pub const GAP: &str = "Sequex-Gap";

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
