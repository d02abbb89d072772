//! Binance spot market streams.
//!
//! Reference: <https://developers.binance.com/docs/binance-spot-api-docs/web-socket-streams>
//! - combined streams at `/stream?streams=a/b/c`, each event wrapped as
//!   `{"stream":"<name>","data":<event>}`;
//! - at most 1024 streams per connection, 300 connections per 5 minutes per IP, 5 incoming
//!   messages per second (we send only pongs and a close);
//! - a ping every 20 s, disconnection after a minute without a pong;
//! - connections live 24 hours; a `serverShutdown` event announces an early close.

use std::time::Duration;

use sequex_subjects::{Channel, Symbol};

use bytes::Bytes;

use super::json::{self, ScanError};
use super::{DepthSpeed, Fields, Frame, FrameError, Ids, RestTrades, Venue};

/// Wire constants of the JSON streams.
mod wire {
    /// How every combined-stream frame starts.
    pub(super) const ENVELOPE_PREFIX: &[u8; 11] = br#"{"stream":""#;
    /// What follows the stream name.
    pub(super) const DATA_KEY: &[u8; 8] = br#","data":"#;
    /// Event type key.
    pub(super) const EVENT_TYPE: &[u8] = b"e";
    /// Event type values, quoted as they appear.
    pub(super) const EVENT_TRADE: &[u8] = br#""trade""#;
    pub(super) const EVENT_DEPTH: &[u8] = br#""depthUpdate""#;
    pub(super) const EVENT_SERVER_SHUTDOWN: &[u8] = b"\"serverShutdown\"";
    /// Event time (ms), trade id, first and final update ids.
    pub(super) const EVENT_TIME: &[u8] = b"E";
    pub(super) const TRADE_ID: &[u8] = b"t";
    pub(super) const FIRST_UPDATE_ID: &[u8] = b"U";
    pub(super) const FINAL_UPDATE_ID: &[u8] = b"u";
    pub(super) const PREVIOUS_FINAL_UPDATE_ID: &[u8] = b"pu";
    /// The usual layout of events (see `fields_in_usual_layout`).
    pub(super) const USUAL_TRADE_HEAD: &[u8; 17] = br#"{"e":"trade","E":"#;
    pub(super) const USUAL_DEPTH_HEAD: &[u8; 23] = br#"{"e":"depthUpdate","E":"#;
    pub(super) const USUAL_SYMBOL_KEY: &[u8; 6] = br#","s":""#;
    pub(super) const USUAL_TRADE_ID_KEY: &[u8; 5] = br#","t":"#;
    pub(super) const USUAL_FIRST_ID_KEY: &[u8; 5] = br#","U":"#;
    pub(super) const USUAL_FINAL_ID_KEY: &[u8; 5] = br#","u":"#;
    /// What futures' events add to the usual layout: the transaction time after `E`, the
    /// pair after `s` (COIN-M's depth), `pu` after `u`.
    pub(super) const USUAL_TRANSACTION_TIME_KEY: &[u8; 5] = br#","T":"#;
    pub(super) const USUAL_PAIR_KEY: &[u8; 7] = br#","ps":""#;
    pub(super) const USUAL_PREVIOUS_FINAL_ID_KEY: &[u8; 6] = br#","pu":"#;
    /// The envelope's members, for the generic scan.
    pub(super) const STREAM_KEY: &[u8] = b"stream";
    pub(super) const DATA: &[u8] = b"data";
    pub(super) const RESULT: &[u8] = b"result";
    /// Stream name suffixes.
    pub(super) const TRADE_SUFFIX: &str = "@trade";
    pub(super) const DEPTH_100MS_SUFFIX: &str = "@depth@100ms";
    pub(super) const DEPTH_1000MS_SUFFIX: &str = "@depth";
}

/// Binance spot.
#[derive(Debug)]
pub struct BinanceSpot;

impl Venue for BinanceSpot {
    const VENUE: sequex_subjects::Venue = sequex_subjects::Venue::BinanceSpot;
    const DEFAULT_URL: &'static str = "wss://stream.binance.com:9443";
    const MAX_STREAMS_PER_CONNECTION: usize = 1024;
    const CONNECTS_PER_WINDOW: usize = 300;
    const CONNECT_WINDOW: Duration = Duration::from_secs(5 * 60);
    const CONNECTION_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

    fn stream_name(symbol: &Symbol, channel: Channel, depth: DepthSpeed) -> String {
        let suffix = match (channel, depth) {
            (Channel::Trade, _) => wire::TRADE_SUFFIX,
            (Channel::Depth, DepthSpeed::Ms100) => wire::DEPTH_100MS_SUFFIX,
            (Channel::Depth, DepthSpeed::Ms1000) => wire::DEPTH_1000MS_SUFFIX,
        };
        format!("{}{suffix}", symbol.as_str().to_ascii_lowercase())
    }

    fn connect_url(base: &str, streams: &[String]) -> String {
        format!(
            "{}/stream?streams={}",
            base.trim_end_matches('/'),
            streams.join("/")
        )
    }

    fn check_symbol(symbol: &Symbol) -> Result<(), &'static str> {
        check_symbol(symbol)
    }

    // Inlined into the router with the fast paths; the rare paths are cold calls.
    #[inline(always)]
    fn classify(frame: &[u8]) -> Result<Frame<'_>, FrameError> {
        match envelope_in_usual_layout(frame) {
            Some(data) => Ok(data),
            None => classify_other(frame),
        }
    }

    #[inline(always)]
    fn fields(channel: Channel, payload: &[u8]) -> Result<Fields, FrameError> {
        match fields_in_usual_layout::<false>(channel, payload) {
            Some(fields) => Ok(fields),
            None => fields_in_any_layout(channel, payload, Continuity::Consecutive),
        }
    }

    fn is_shutdown_notice(event: &[u8]) -> bool {
        matches!(
            json::members(event, [wire::EVENT_TYPE]),
            Ok([Some(e)]) if e == wire::EVENT_SERVER_SHUTDOWN
        )
    }
}

/// Binance writes instruments without `-` (`BTCUSDT`, `BTCUSD_PERP`); `BTC-USDT` is OKX's
/// spelling.
pub(super) fn check_symbol(symbol: &Symbol) -> Result<(), &'static str> {
    if symbol.as_str().contains('-') {
        Err(
            "Binance symbols have no '-' (BTCUSDT, BTCUSD_PERP); BTC-USDT is OKX's name (--venue okx)",
        )
    } else {
        Ok(())
    }
}

/// Old trades by id: `GET /api/v3/historicalTrades?symbol=&fromId=&limit=` (weight 25, no
/// API key; not served by the `data-api.binance.vision` mirror). `aggTrades` would be
/// cheaper but merges trades, so its ids are not trade ids.
/// <https://developers.binance.com/docs/binance-spot-api-docs/rest-api/market-data-endpoints#old-trade-lookup>
impl RestTrades for BinanceSpot {
    const REST_URL: &'static str = "https://api.binance.com";
    const REST_TRADES_PER_PAGE: u64 = 1000;

    fn trades_path(symbol: &Symbol, from: u64, limit: u64) -> String {
        format!("/api/v3/historicalTrades?symbol={symbol}&fromId={from}&limit={limit}")
    }

    fn parse_trades(symbol: &Symbol, body: &[u8]) -> Result<Vec<(u64, Bytes)>, String> {
        /// One element of the answer.
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct RestTrade<'a> {
            id: u64,
            price: &'a str,
            qty: &'a str,
            time: u64,
            is_buyer_maker: bool,
            is_best_match: bool,
        }
        let trades: Vec<RestTrade<'_>> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        Ok(trades
            .into_iter()
            .map(|t| {
                // The websocket event's members, in its order; REST has no event time, so
                // `E` is the trade time.
                let payload = format!(
                    r#"{{"e":"trade","E":{time},"s":"{symbol}","t":{id},"p":"{price}","q":"{qty}","T":{time},"m":{m},"M":{best}}}"#,
                    time = t.time,
                    id = t.id,
                    price = t.price,
                    qty = t.qty,
                    m = t.is_buyer_maker,
                    best = t.is_best_match,
                );
                (t.id, Bytes::from(payload))
            })
            .collect())
    }
}

/// The fast path: `{"stream":"<name>","data":{...}}` exactly as Binance writes it.
#[inline(always)]
fn envelope_in_usual_layout(frame: &[u8]) -> Option<Frame<'_>> {
    let rest = after(frame, wire::ENVELOPE_PREFIX)?;
    // Stream names are lower-case ASCII with `@`: no escapes to worry about.
    let name_len = json::find_byte(rest, b'"')?;
    let stream = &rest[..name_len];
    let data = after(&rest[name_len + 1..], wire::DATA_KEY)?;
    let start = frame.len() - data.len();
    // The envelope closes right after the event object: `...}}`.
    let end = frame.trim_ascii_end().len();
    if end < start + 3 || frame[end - 1] != b'}' || frame[end - 2] != b'}' || frame[start] != b'{' {
        return None;
    }
    Some(Frame::Data {
        stream,
        payload: start..end - 1,
    })
}

/// How a venue's depth events follow each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Continuity {
    /// `U` is the previous event's `u` + 1 (spot).
    Consecutive,
    /// `pu` is the previous event's `u` (futures).
    Chained,
}

/// Any member order, whitespace, escapes: the generic scan, for every Binance market.
#[cold]
#[inline(never)]
pub(super) fn fields_in_any_layout(
    channel: Channel,
    payload: &[u8],
    continuity: Continuity,
) -> Result<Fields, FrameError> {
    let number = |value: Option<&[u8]>, name| {
        value
            .and_then(json::parse_u64)
            .ok_or(FrameError::BadField(name))
    };
    match channel {
        Channel::Trade => {
            let [e, time, id] = json::members(
                payload,
                [wire::EVENT_TYPE, wire::EVENT_TIME, wire::TRADE_ID],
            )?;
            if e != Some(wire::EVENT_TRADE) {
                return Err(FrameError::UnexpectedEvent);
            }
            Ok(Fields {
                ids: Ids::Trade {
                    id: number(id, "t")?,
                },
                event_time_ms: number(time, "E")?,
            })
        }
        Channel::Depth => {
            // Spot has no `pu`: asking for it would scan the whole event for nothing.
            let keys = [
                wire::EVENT_TYPE,
                wire::EVENT_TIME,
                wire::FIRST_UPDATE_ID,
                wire::FINAL_UPDATE_ID,
                wire::PREVIOUS_FINAL_UPDATE_ID,
            ];
            let [e, time, first, last, prev] = match continuity {
                Continuity::Chained => json::members(payload, keys),
                Continuity::Consecutive => {
                    json::members(payload, [keys[0], keys[1], keys[2], keys[3]])
                        .map(|[e, t, f, l]| [e, t, f, l, None])
                }
            }?;
            if e != Some(wire::EVENT_DEPTH) {
                return Err(FrameError::UnexpectedEvent);
            }
            let (first, last) = (number(first, "U")?, number(last, "u")?);
            let ids = match continuity {
                Continuity::Consecutive => Ids::Range { first, last },
                Continuity::Chained => Ids::ChainedDepth {
                    first,
                    last,
                    prev: number(prev, "pu")?,
                },
            };
            Ok(Fields {
                ids,
                event_time_ms: number(time, "E")?,
            })
        }
    }
}

/// The fast path: Binance writes its events with the routing fields first, in a fixed
/// order (`{"e":"trade","E":…,"s":"…","t":…` and `{"e":"depthUpdate","E":…,"s":"…","U":…,"u":…`).
/// Matching that layout with fixed-length compares is several times cheaper than the
/// generic scan, which takes over for anything else (`None`). `FUTURES`: the futures'
/// layout, with `"T":…` after `E`, COIN-M depth's `"ps":"…"` after `s`, and `"pu":…`.
#[inline(always)]
pub(super) fn fields_in_usual_layout<const FUTURES: bool>(
    channel: Channel,
    payload: &[u8],
) -> Option<Fields> {
    let rest = match channel {
        Channel::Trade => after(payload, wire::USUAL_TRADE_HEAD)?,
        Channel::Depth => after(payload, wire::USUAL_DEPTH_HEAD)?,
    };
    let (event_time_ms, mut rest) = json::leading_u64(rest)?;
    if FUTURES {
        rest = json::leading_u64(after(rest, wire::USUAL_TRANSACTION_TIME_KEY)?)?.1;
    }
    let rest = after(rest, wire::USUAL_SYMBOL_KEY)?;
    let mut rest = &rest[json::find_byte(rest, b'"')? + 1..];
    if FUTURES && let Some(pair) = after(rest, wire::USUAL_PAIR_KEY) {
        rest = &pair[json::find_byte(pair, b'"')? + 1..];
    }
    let ids = match channel {
        Channel::Trade => {
            let (id, rest) = json::leading_u64(after(rest, wire::USUAL_TRADE_ID_KEY)?)?;
            rest.first().filter(|b| matches!(b, b',' | b'}'))?;
            Ids::Trade { id }
        }
        Channel::Depth => {
            let (first, rest) = json::leading_u64(after(rest, wire::USUAL_FIRST_ID_KEY)?)?;
            let (last, rest) = json::leading_u64(after(rest, wire::USUAL_FINAL_ID_KEY)?)?;
            if FUTURES {
                let (prev, rest) =
                    json::leading_u64(after(rest, wire::USUAL_PREVIOUS_FINAL_ID_KEY)?)?;
                rest.first().filter(|b| matches!(b, b',' | b'}'))?;
                Ids::ChainedDepth { first, last, prev }
            } else {
                rest.first().filter(|b| matches!(b, b',' | b'}'))?;
                Ids::Range { first, last }
            }
        }
    };
    Some(Fields { ids, event_time_ms })
}

/// `text` after `prefix`, if it starts with it. A fixed-size compare: inlined loads, where
/// `strip_prefix` with a slice calls `memcmp`.
#[inline(always)]
fn after<'a, const N: usize>(text: &'a [u8], prefix: &[u8; N]) -> Option<&'a [u8]> {
    let (head, rest) = text.split_first_chunk::<N>()?;
    (head == prefix).then_some(rest)
}

/// Frames not in the envelope's usual layout: the envelope with other whitespace or
/// member order, control replies, and the bare shutdown notice. (A shutdown notice inside
/// the envelope is recognised by the router, see [`Venue::is_shutdown_notice`].)
#[cold]
#[inline(never)]
fn classify_other(frame: &[u8]) -> Result<Frame<'_>, FrameError> {
    let members = json::members(
        frame,
        [wire::STREAM_KEY, wire::DATA, wire::EVENT_TYPE, wire::RESULT],
    );
    match members {
        Ok([Some(stream), Some(data), ..]) => {
            // Stream names are plain ASCII: a quoted name without escapes.
            let name = stream
                .strip_prefix(b"\"")
                .and_then(|s| s.strip_suffix(b"\""))
                .filter(|s| !s.contains(&b'\\'))
                .ok_or(FrameError::Malformed("\"stream\" is not a plain string"))?;
            if data.first() != Some(&b'{') {
                return Err(FrameError::Malformed("\"data\" is not an object"));
            }
            Ok(Frame::Data {
                stream: name,
                payload: json::range_in(frame, data),
            })
        }
        Ok([_, _, Some(e), _]) if e == wire::EVENT_SERVER_SHUTDOWN => Ok(Frame::ServerShutdown),
        Ok([_, _, _, Some(_)]) => Ok(Frame::ControlReply),
        Ok(_) => Err(FrameError::Malformed("not a combined-stream envelope")),
        Err(ScanError::Truncated) => Err(FrameError::Truncated),
        Err(ScanError::Unexpected) if frame.starts_with(b"{") => {
            Err(FrameError::Malformed("invalid JSON in the envelope"))
        }
        Err(ScanError::Unexpected) => Err(FrameError::Malformed("not a combined-stream envelope")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real frames from the 2024-08-08 capture (shared/fixtures/binance).
    const TRADE: &str = r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}}"#;
    const DEPTH: &str = r#"{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1723161255308,"s":"BTCUSDT","U":50093239203,"u":50093239207,"b":[["55653.87000000","0.00000000"]],"a":[["61838.04000000","0.32332000"],["61844.30000000","0.40163000"]]}}"#;

    fn data(frame: &str) -> (&[u8], &[u8]) {
        match BinanceSpot::classify(frame.as_bytes()) {
            Ok(Frame::Data { stream, payload }) => (stream, &frame.as_bytes()[payload]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tc0_spot_trade() {
        let (stream, payload) = data(TRADE);
        assert_eq!(stream, b"btcusdt@trade");
        assert!(payload.starts_with(br#"{"e":"trade""#) && payload.ends_with(br#""M":true}"#));
        assert_eq!(
            BinanceSpot::fields(Channel::Trade, payload),
            Ok(Fields {
                ids: Ids::Trade { id: 3735683259 },
                event_time_ms: 1723161255343
            })
        );
    }

    #[test]
    fn tc1_spot_depth() {
        let (stream, payload) = data(DEPTH);
        assert_eq!(stream, b"btcusdt@depth@100ms");
        assert_eq!(
            BinanceSpot::fields(Channel::Depth, payload),
            Ok(Fields {
                ids: Ids::Range {
                    first: 50093239203,
                    last: 50093239207
                },
                event_time_ms: 1723161255308
            })
        );
    }

    #[test]
    fn tc2_bad_frames() {
        // TC: (frame, error)
        let truncated = &TRADE[..TRADE.len() - 20];
        let cases: &[(&str, FrameError)] = &[
            (truncated, FrameError::Truncated),
            (&TRADE[..TRADE.len() - 1], FrameError::Truncated),
            (r#"{"stream":"#, FrameError::Truncated),
            (r#"{"stream":"btcusdt@trade""#, FrameError::Truncated),
            (
                r#"{"stream":"btcusdt@trade"}"#,
                FrameError::Malformed("not a combined-stream envelope"),
            ),
            (
                r#"{"stream":1,"data":{}}"#,
                FrameError::Malformed("\"stream\" is not a plain string"),
            ),
            (
                r#"{"stream":"x","data":{},}"#,
                FrameError::Malformed("invalid JSON in the envelope"),
            ),
            (
                r#"{"stream":"x","data":[1]}}"#,
                FrameError::Malformed("\"data\" is not an object"),
            ),
            (
                "hello",
                FrameError::Malformed("not a combined-stream envelope"),
            ),
            ("", FrameError::Truncated),
        ];
        for (frame, err) in cases {
            assert_eq!(
                BinanceSpot::classify(frame.as_bytes()),
                Err(*err),
                "{frame}"
            );
        }
        let (_, payload) = data(TRADE);
        assert_eq!(
            BinanceSpot::fields(Channel::Depth, payload),
            Err(FrameError::UnexpectedEvent)
        );
        let no_id = br#"{"e":"trade","E":1,"s":"X","t":"12"}"#;
        assert_eq!(
            BinanceSpot::fields(Channel::Trade, no_id),
            Err(FrameError::BadField("t"))
        );
    }

    #[test]
    fn tc4_other_field_orders_take_the_generic_path() {
        let reordered = br#"{"E":1723161255343,"e":"trade","t":5,"s":"BTCUSDT","p":"1"}"#;
        assert_eq!(
            fields_in_usual_layout::<false>(Channel::Trade, reordered),
            None
        );
        assert_eq!(
            BinanceSpot::fields(Channel::Trade, reordered),
            Ok(Fields {
                ids: Ids::Trade { id: 5 },
                event_time_ms: 1723161255343
            })
        );
        let (_, payload) = data(DEPTH);
        assert!(fields_in_usual_layout::<false>(Channel::Depth, payload).is_some());
        // A 20-digit id is not read by the fast path; the generic one checks overflow.
        let huge = br#"{"e":"trade","E":1,"s":"X","t":18446744073709551616}"#;
        assert_eq!(
            BinanceSpot::fields(Channel::Trade, huge),
            Err(FrameError::BadField("t"))
        );
    }

    #[test]
    fn tc5_envelope_with_other_whitespace_or_member_order() {
        let event = r#"{"e":"trade","E":1723161255343,"s":"BTCUSDT","t":3735683259,"p":"1"}"#;
        for frame in [
            format!(r#"{{"stream": "btcusdt@trade", "data": {event}}}"#),
            format!(r#"{{"data":{event},"stream":"btcusdt@trade"}}"#),
            format!("{{\n  \"stream\" : \"btcusdt@trade\",\n  \"data\" : {event}\n}}\n"),
        ] {
            let (stream, payload) = data(&frame);
            assert_eq!(stream, b"btcusdt@trade", "{frame}");
            assert_eq!(payload, event.as_bytes(), "{frame}");
        }
    }

    #[test]
    fn tc3_control_frames() {
        assert_eq!(
            BinanceSpot::classify(br#"{"result":null,"id":1}"#),
            Ok(Frame::ControlReply)
        );
        assert_eq!(
            BinanceSpot::classify(br#"{ "result" : null, "id" : 1 }"#),
            Ok(Frame::ControlReply)
        );
        assert_eq!(
            BinanceSpot::classify(br#"{"e":"serverShutdown","E":1723161255343}"#),
            Ok(Frame::ServerShutdown)
        );
        assert!(BinanceSpot::is_shutdown_notice(
            br#"{"e":"serverShutdown","E":1723161255343}"#
        ));
        assert!(!BinanceSpot::is_shutdown_notice(br#"{"e":"trade","E":1}"#));
    }

    #[test]
    fn rest_trades_become_websocket_events() {
        let body = br#"[{"id":3735683259,"price":"61837.63000000","qty":"0.02000000","quoteQty":"1236.7526","time":1723161255342,"isBuyerMaker":true,"isBestMatch":true}]"#;
        let btc = Symbol::from_static("BTCUSDT");
        let trades = BinanceSpot::parse_trades(&btc, body).unwrap();
        assert_eq!(trades.len(), 1);
        assert_eq!(trades[0].0, 3735683259);
        assert_eq!(
            &trades[0].1[..],
            br#"{"e":"trade","E":1723161255342,"s":"BTCUSDT","t":3735683259,"p":"61837.63000000","q":"0.02000000","T":1723161255342,"m":true,"M":true}"#
        );
        assert_eq!(
            BinanceSpot::fields(Channel::Trade, &trades[0].1),
            Ok(Fields {
                ids: Ids::Trade { id: 3735683259 },
                event_time_ms: 1723161255342
            })
        );
        assert!(
            BinanceSpot::parse_trades(&btc, br#"{"code":-1121,"msg":"Invalid symbol."}"#).is_err()
        );
        assert_eq!(
            BinanceSpot::trades_path(&btc, 5, 1000),
            "/api/v3/historicalTrades?symbol=BTCUSDT&fromId=5&limit=1000"
        );
    }

    #[test]
    fn stream_names_and_url() {
        let btc = Symbol::from_static("BTCUSDT");
        let trade = BinanceSpot::stream_name(&btc, Channel::Trade, DepthSpeed::Ms100);
        let depth = BinanceSpot::stream_name(&btc, Channel::Depth, DepthSpeed::Ms100);
        let slow = BinanceSpot::stream_name(&btc, Channel::Depth, DepthSpeed::Ms1000);
        assert_eq!(
            (trade.as_str(), depth.as_str(), slow.as_str()),
            ("btcusdt@trade", "btcusdt@depth@100ms", "btcusdt@depth")
        );
        assert_eq!(
            BinanceSpot::connect_url("ws://127.0.0.1:9/", &[trade, depth]),
            "ws://127.0.0.1:9/stream?streams=btcusdt@trade/btcusdt@depth@100ms"
        );
    }

    #[test]
    fn continuity_rule() {
        assert_eq!(BinanceSpot::gap(10, Ids::Trade { id: 11 }), None);
        assert_eq!(BinanceSpot::gap(10, Ids::Trade { id: 14 }), Some(11..14));
        assert_eq!(BinanceSpot::gap(10, Ids::Trade { id: 9 }), None);
        assert_eq!(
            BinanceSpot::gap(
                10,
                Ids::Range {
                    first: 11,
                    last: 20
                }
            ),
            None
        );
        assert_eq!(
            BinanceSpot::gap(
                10,
                Ids::Range {
                    first: 12,
                    last: 20
                }
            ),
            Some(11..12)
        );
    }
}
