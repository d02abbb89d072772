//! OKX v5 public market data.
//!
//! Reference: <https://www.okx.com/docs-v5/en/#overview-websocket>
//! - one endpoint, `wss://ws.okx.com:8443/ws/v5/public`; channels are subscribed by
//!   message, `{"op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT"},…]}`
//!   (the args of one request at most 64 KB), answered with one
//!   `{"event":"subscribe","arg":…}` per channel or an `{"event":"error",…}`;
//! - 3 connection requests per second per IP; 480 subscribe, unsubscribe or login requests
//!   per connection per hour (we send one per connection);
//! - a connection silent for 30 s is closed: the client sends the text `ping` when it has
//!   received nothing for N < 30 s and gets `pong`;
//! - `{"event":"notice","code":"64008",…}` announces a close for a service upgrade;
//! - data frames are `{"arg":{"channel":…,"instId":…},("action":…,)"data":[…]}`; `data`
//!   holds one event or several, each published on its own;
//! - `trades`: one event per taker order and price, `tradeId` the last of the `count`
//!   fills it aggregates, ids consecutive per instrument;
//! - `books` (400 levels, every 100 ms): a snapshot (`"action":"snapshot"`,
//!   `prevSeqId` -1), then updates whose `prevSeqId` is the previous event's `seqId`
//!   (ids are not consecutive); an update with `prevSeqId` == `seqId` and empty sides is
//!   a keepalive; a `checksum` (CRC32 of the top 25 levels) for book builders;
//! - instruments keep OKX's names: `BTC-USDT` (spot), `BTC-USDT-SWAP`, `BTC-USD-250926`.
//!
//! Trade gaps are filled from `GET /api/v5/market/history-trades` (see [`RestTrades`]).

use std::time::Duration;

use bytes::Bytes;
use memchr::memmem;
use sequex_subjects::{Channel, Symbol};

use super::json;
use super::{DepthSpeed, Fields, Frame, FrameError, Ids, RestTrades, Venue};

/// Wire constants.
mod wire {
    /// How a data frame starts: its `arg` object is the routing key.
    pub(super) const ARG_PREFIX: &[u8; 7] = br#"{"arg":"#;
    /// Where the event array starts.
    pub(super) const DATA_KEY: &[u8; 8] = br#","data":"#;
    /// The answer to the client's `ping`.
    pub(super) const PONG: &[u8] = b"pong";
    pub(super) const PING: &str = "ping";
    /// Channel names.
    pub(super) const TRADES: &str = "trades";
    pub(super) const BOOKS: &str = "books";
    /// Envelope members, for the generic scan.
    pub(super) const ARG: &[u8] = b"arg";
    pub(super) const DATA: &[u8] = b"data";
    pub(super) const EVENT: &[u8] = b"event";
    pub(super) const CODE: &[u8] = b"code";
    /// Event values, quoted.
    pub(super) const EVENT_ERROR: &[u8] = br#""error""#;
    pub(super) const EVENT_NOTICE: &[u8] = br#""notice""#;
    /// The notice of a close for a service upgrade.
    pub(super) const CODE_UPGRADE: &[u8] = br#""64008""#;
    /// Event members.
    pub(super) const TRADE_ID: &[u8] = b"tradeId";
    pub(super) const COUNT: &[u8] = b"count";
    pub(super) const TS: &[u8] = b"ts";
    pub(super) const SEQ_ID: &[u8] = b"seqId";
    pub(super) const PREV_SEQ_ID: &[u8] = b"prevSeqId";
    /// A book event ends with these, after its levels.
    pub(super) const TAIL_SEQ_ID: &[u8] = br#""seqId":"#;
    pub(super) const TAIL_PREV_SEQ_ID: &[u8] = br#""prevSeqId":"#;
    pub(super) const TAIL_TS: &[u8] = br#""ts":""#;
}

/// How far from a book event's end its ids are looked for before the generic scan.
const BOOK_TAIL: usize = 160;

/// OKX v5 public.
#[derive(Debug)]
pub struct Okx;

impl Venue for Okx {
    const VENUE: sequex_subjects::Venue = sequex_subjects::Venue::Okx;
    const DEFAULT_URL: &'static str = "wss://ws.okx.com:8443/ws/v5/public";
    const EVENT_ARRAYS: bool = true;
    const CLIENT_PING: Option<(&'static str, Duration)> =
        Some((wire::PING, Duration::from_secs(15)));
    // Not a documented limit: what keeps one subscribe request (about 45 bytes an arg)
    // far under its 64 KB.
    const MAX_STREAMS_PER_CONNECTION: usize = 240;
    const CONNECTS_PER_WINDOW: usize = 3;
    const CONNECT_WINDOW: Duration = Duration::from_secs(1);
    // No documented lifetime: a daily make-before-break reconnect keeps it boring.
    const CONNECTION_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

    /// The channel's `arg` object, exactly as OKX echoes it in every data frame.
    fn stream_name(symbol: &Symbol, channel: Channel, _depth: DepthSpeed) -> String {
        let channel = match channel {
            Channel::Trade => wire::TRADES,
            Channel::Depth => wire::BOOKS,
        };
        format!(r#"{{"channel":"{channel}","instId":"{symbol}"}}"#)
    }

    fn connect_url(base: &str, _streams: &[String]) -> String {
        base.to_string()
    }

    fn subscriptions(streams: &[String]) -> Vec<String> {
        vec![format!(
            r#"{{"op":"subscribe","args":[{}]}}"#,
            streams.join(",")
        )]
    }

    fn check_symbol(symbol: &Symbol) -> Result<(), &'static str> {
        let mut parts = symbol.as_str().split('-');
        if parts.clone().count() >= 2 && parts.all(|part| !part.is_empty()) {
            Ok(())
        } else {
            Err("OKX instruments are BASE-QUOTE[-…], e.g. BTC-USDT, BTC-USDT-SWAP, BTC-USD-250926")
        }
    }

    #[inline(always)]
    fn classify(frame: &[u8]) -> Result<Frame<'_>, FrameError> {
        match data_in_usual_layout(frame) {
            Some(data) => Ok(data),
            None => classify_other(frame),
        }
    }

    #[inline(always)]
    fn fields(channel: Channel, event: &[u8]) -> Result<Fields, FrameError> {
        match channel {
            Channel::Trade => trade_fields(event),
            Channel::Depth => match book_fields_from_tail(event) {
                Some(fields) => Ok(fields),
                None => book_fields(event),
            },
        }
    }
}

/// Old trades: `GET /api/v5/market/history-trades?instId=&type=1&after=&limit=` (no key,
/// 20 requests per 2 s, 100 trades a page): the trades older than `after`, newest first.
/// Asking for those older than `from + limit` pages forwards from `from`. REST serves
/// single fills where the websocket may aggregate several: a gap is filled fill by fill.
impl RestTrades for Okx {
    const REST_URL: &'static str = "https://www.okx.com";
    const REST_TRADES_PER_PAGE: u64 = 100;

    fn trades_path(symbol: &Symbol, from: u64, limit: u64) -> String {
        format!(
            "/api/v5/market/history-trades?instId={symbol}&type=1&after={}&limit={limit}",
            from.saturating_add(limit)
        )
    }

    fn parse_trades(_symbol: &Symbol, body: &[u8]) -> Result<Vec<(u64, Bytes)>, String> {
        /// The answer; borrowed strings refuse escapes, which no field of a trade has.
        #[derive(serde::Deserialize)]
        struct Answer<'a> {
            code: &'a str,
            msg: &'a str,
            #[serde(borrow, default)]
            data: Vec<RestTrade<'a>>,
        }
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct RestTrade<'a> {
            inst_id: &'a str,
            trade_id: &'a str,
            px: &'a str,
            sz: &'a str,
            side: &'a str,
            ts: &'a str,
        }
        let answer: Answer<'_> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        if answer.code != "0" {
            return Err(format!("OKX error {}: {}", answer.code, answer.msg));
        }
        let mut trades = answer
            .data
            .into_iter()
            .map(|t| {
                let id = json::parse_u64(t.trade_id.as_bytes())
                    .ok_or_else(|| format!("tradeId {:?} is not an id", t.trade_id))?;
                // The websocket event's members, in its order.
                let payload = format!(
                    r#"{{"instId":"{}","tradeId":"{}","px":"{}","sz":"{}","side":"{}","ts":"{}"}}"#,
                    t.inst_id, t.trade_id, t.px, t.sz, t.side, t.ts
                );
                Ok((id, Bytes::from(payload)))
            })
            .collect::<Result<Vec<_>, String>>()?;
        trades.sort_unstable_by_key(|(id, _)| *id);
        Ok(trades)
    }
}

/// `{"arg":{…},…,"data":[…]}` with `arg` first and `data` last, as OKX sends them: the
/// `arg` object (it holds no nested object) and the event array.
#[inline(always)]
fn data_in_usual_layout(frame: &[u8]) -> Option<Frame<'_>> {
    let rest = frame.strip_prefix(wire::ARG_PREFIX)?;
    let arg_len = json::find_byte(rest, b'}')? + 1;
    let arg_end = wire::ARG_PREFIX.len() + arg_len;
    // `"action":"snapshot"` or `"update"` may stand between `arg` and `data`.
    let head = frame.get(arg_end..(arg_end + 40).min(frame.len()))?;
    let data = arg_end + memmem::find(head, wire::DATA_KEY)? + wire::DATA_KEY.len();
    let end = frame.len() - 1;
    (frame.get(data) == Some(&b'[') && frame[end] == b'}' && frame[end - 1] == b']').then(|| {
        Frame::Data {
            stream: &frame[wire::ARG_PREFIX.len()..arg_end],
            payload: data..end,
        }
    })
}

/// Everything else: `pong`, subscription replies, errors, notices, and data frames in
/// another layout (whose `arg` must still be written as OKX writes it to be routed).
#[cold]
#[inline(never)]
fn classify_other(frame: &[u8]) -> Result<Frame<'_>, FrameError> {
    if frame.trim_ascii() == wire::PONG {
        return Ok(Frame::ControlReply);
    }
    let [arg, data, event, code] =
        json::members(frame, [wire::ARG, wire::DATA, wire::EVENT, wire::CODE])?;
    match (event, data, arg) {
        (Some(e), _, _) if e == wire::EVENT_NOTICE && code == Some(wire::CODE_UPGRADE) => {
            Ok(Frame::ServerShutdown)
        }
        (Some(e), _, _) if e == wire::EVENT_ERROR => Err(FrameError::Rejected),
        (Some(_), _, _) => Ok(Frame::ControlReply),
        (None, Some(data), Some(arg)) if data.first() == Some(&b'[') => Ok(Frame::Data {
            stream: arg,
            payload: json::range_in(frame, data),
        }),
        _ => Err(FrameError::Malformed("neither a data frame nor an event")),
    }
}

/// A quoted unsigned integer (`"338476307"`), as OKX writes ids, times and counts.
fn quoted_u64(value: Option<&[u8]>, key: &'static str) -> Result<u64, FrameError> {
    value
        .and_then(|v| v.strip_prefix(b"\"")?.strip_suffix(b"\""))
        .and_then(json::parse_u64)
        .ok_or(FrameError::BadField(key))
}

fn trade_fields(event: &[u8]) -> Result<Fields, FrameError> {
    let [id, ts, count] = json::members(event, [wire::TRADE_ID, wire::TS, wire::COUNT])?;
    let last = quoted_u64(id, "tradeId")?;
    let event_time_ms = quoted_u64(ts, "ts")?;
    let ids = match count {
        None => Ids::Trade { id: last },
        Some(count) => match quoted_u64(Some(count), "count")? {
            0 => return Err(FrameError::BadField("count")),
            1 => Ids::Trade { id: last },
            n => Ids::Range {
                first: last
                    .checked_sub(n - 1)
                    .ok_or(FrameError::BadField("count"))?,
                last,
            },
        },
    };
    Ok(Fields { ids, event_time_ms })
}

/// A book event's ids and time, read from its end (`…"ts":"…","checksum":…,
/// "prevSeqId":…,"seqId":…}`) without scanning its levels.
#[inline(always)]
fn book_fields_from_tail(event: &[u8]) -> Option<Fields> {
    let tail_start = event.len().saturating_sub(BOOK_TAIL);
    let tail = &event[tail_start..];
    let after = |key: &[u8]| Some(&tail[memmem::rfind(tail, key)? + key.len()..]);
    let (seq, _) = json::leading_u64(after(wire::TAIL_SEQ_ID)?)?;
    let prev = after(wire::TAIL_PREV_SEQ_ID)?;
    let (event_time_ms, _) = json::leading_u64(after(wire::TAIL_TS)?)?;
    let ids = if prev.starts_with(b"-1") {
        Ids::Snapshot { id: seq }
    } else {
        let (prev, _) = json::leading_u64(prev)?;
        chained(prev, seq)
    };
    Some(Fields { ids, event_time_ms })
}

#[cold]
#[inline(never)]
fn book_fields(event: &[u8]) -> Result<Fields, FrameError> {
    let [seq, prev, ts] = json::members(event, [wire::SEQ_ID, wire::PREV_SEQ_ID, wire::TS])?;
    let seq = seq
        .and_then(json::parse_u64)
        .ok_or(FrameError::BadField("seqId"))?;
    let event_time_ms = quoted_u64(ts, "ts")?;
    let ids = match prev {
        Some(b"-1") => Ids::Snapshot { id: seq },
        prev => chained(
            prev.and_then(json::parse_u64)
                .ok_or(FrameError::BadField("prevSeqId"))?,
            seq,
        ),
    };
    Ok(Fields { ids, event_time_ms })
}

fn chained(prev: u64, seq: u64) -> Ids {
    Ids::ChainedDepth {
        first: seq,
        last: seq,
        prev,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // From shared/fixtures/okx/okx_v5_public_20220513.gz; the book's levels shortened and
    // `prevSeqId`/`seqId` added as OKX sends them today.
    const TRADES: &str = r#"{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT","tradeId":"338476307","px":"30236","sz":"0.0002","side":"buy","ts":"1652459224818"}]}"#;
    const SNAPSHOT: &str = r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{"asks":[["30243.5","1.44679","0","6"]],"bids":[["30243.4","0.4","0","2"]],"ts":"1652459225393","checksum":1054815633,"prevSeqId":-1,"seqId":123456}]}"#;
    const UPDATE: &str = r#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":[],"bids":[["30243.4","0.5","0","3"]],"ts":"1652459225493","checksum":-855196043,"prevSeqId":123456,"seqId":123470}]}"#;

    fn data(frame: &str) -> (&[u8], &[u8]) {
        match Okx::classify(frame.as_bytes()) {
            Ok(Frame::Data { stream, payload }) => (stream, &frame.as_bytes()[payload]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn routes_by_the_arg_object_it_subscribed_with() {
        let btc = Symbol::new("BTC-USDT").unwrap();
        let (stream, events) = data(TRADES);
        assert_eq!(
            stream,
            Okx::stream_name(&btc, Channel::Trade, DepthSpeed::Ms100).as_bytes()
        );
        assert!(events.starts_with(br#"[{"instId""#) && events.ends_with(b"}]"));
        let (stream, _) = data(SNAPSHOT);
        assert_eq!(
            stream,
            Okx::stream_name(&btc, Channel::Depth, DepthSpeed::Ms100).as_bytes()
        );
        assert_eq!(
            Okx::subscriptions(&[Okx::stream_name(&btc, Channel::Trade, DepthSpeed::Ms100)]),
            [r#"{"op":"subscribe","args":[{"channel":"trades","instId":"BTC-USDT"}]}"#]
        );
    }

    #[test]
    fn other_layouts_replies_errors_and_notices() {
        let spaced = r#"{ "data": [{"tradeId":"1","ts":"2"}], "arg": {"channel":"trades","instId":"BTC-USDT"} }"#;
        let (stream, events) = data(spaced);
        assert_eq!(stream, br#"{"channel":"trades","instId":"BTC-USDT"}"#);
        assert_eq!(events, br#"[{"tradeId":"1","ts":"2"}]"#);
        for reply in [
            "pong",
            r#"{"event":"subscribe","arg":{"channel":"trades","instId":"BTC-USDT"},"connId":"a4d3ae55"}"#,
        ] {
            assert_eq!(Okx::classify(reply.as_bytes()), Ok(Frame::ControlReply));
        }
        let error =
            r#"{"event":"error","code":"60012","msg":"Invalid request","connId":"a4d3ae55"}"#;
        assert_eq!(Okx::classify(error.as_bytes()), Err(FrameError::Rejected));
        let notice = r#"{"event":"notice","code":"64008","msg":"The connection will soon be closed for a service upgrade. Please reconnect.","connId":"a4d3ae55"}"#;
        assert_eq!(Okx::classify(notice.as_bytes()), Ok(Frame::ServerShutdown));
        assert_eq!(
            Okx::classify(br#"{"arg":{"channel":"trades""#),
            Err(FrameError::Truncated)
        );
    }

    #[test]
    fn trade_ids_cover_every_fill() {
        let (_, events) = data(TRADES);
        let event = &events[1..events.len() - 1];
        assert_eq!(
            Okx::fields(Channel::Trade, event),
            Ok(Fields {
                ids: Ids::Trade { id: 338476307 },
                event_time_ms: 1652459224818
            })
        );
        let aggregated = br#"{"instId":"BTC-USDT","tradeId":"130639474","px":"42219.9","sz":"0.12060306","side":"buy","ts":"1630048897897","count":"3"}"#;
        assert_eq!(
            Okx::fields(Channel::Trade, aggregated).map(|f| f.ids),
            Ok(Ids::Range {
                first: 130639472,
                last: 130639474
            })
        );
        let unquoted = br#"{"tradeId":338476307,"ts":"1652459224818"}"#;
        assert_eq!(
            Okx::fields(Channel::Trade, unquoted),
            Err(FrameError::BadField("tradeId"))
        );
    }

    #[test]
    fn books_carry_snapshots_and_chained_seq_ids() {
        let event = |frame| {
            let (_, events) = data(frame);
            events[1..events.len() - 1].to_vec()
        };
        assert_eq!(
            Okx::fields(Channel::Depth, &event(SNAPSHOT)),
            Ok(Fields {
                ids: Ids::Snapshot { id: 123456 },
                event_time_ms: 1652459225393
            })
        );
        let update = event(UPDATE);
        let expected = Ok(Fields {
            ids: chained(123456, 123470),
            event_time_ms: 1652459225493,
        });
        assert_eq!(Okx::fields(Channel::Depth, &update), expected);
        // Another member order: the generic scan.
        let reordered =
            br#"{"seqId":123470,"prevSeqId":123456,"asks":[],"bids":[],"ts":"1652459225493"}"#;
        assert_eq!(Okx::fields(Channel::Depth, reordered), expected);
        // The 2022 shape, before seqId.
        let old = br#"{"asks":[],"bids":[],"ts":"1652459225393","checksum":1054815633}"#;
        assert_eq!(
            Okx::fields(Channel::Depth, old),
            Err(FrameError::BadField("seqId"))
        );
        assert_eq!(Okx::gap(123456, chained(123456, 123470)), None);
        assert_eq!(
            Okx::gap(123456, chained(123460, 123470)),
            Some(123457..123461)
        );
    }

    #[test]
    fn instruments_are_checked() {
        for ok in ["BTC-USDT", "BTC-USDT-SWAP", "BTC-USD-250926"] {
            assert_eq!(Okx::check_symbol(&Symbol::new(ok).unwrap()), Ok(()));
        }
        for bad in ["BTCUSDT", "BTC-", "-USDT", "BTC--USDT"] {
            assert!(
                Okx::check_symbol(&Symbol::new(bad).unwrap()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn rest_trades_page_forwards_and_take_the_websocket_shape() {
        let btc = Symbol::new("BTC-USDT").unwrap();
        assert_eq!(
            Okx::trades_path(&btc, 1000, 100),
            "/api/v5/market/history-trades?instId=BTC-USDT&type=1&after=1100&limit=100"
        );
        let body = br#"{"code":"0","msg":"","data":[{"instId":"BTC-USDT","side":"sell","sz":"0.1","px":"30236","tradeId":"1002","ts":"1652459224900"},{"instId":"BTC-USDT","side":"buy","sz":"0.0002","px":"30236","tradeId":"1001","ts":"1652459224818"}]}"#;
        let trades = Okx::parse_trades(&btc, body).unwrap();
        assert_eq!(trades.iter().map(|t| t.0).collect::<Vec<_>>(), [1001, 1002]);
        assert_eq!(
            &trades[0].1[..],
            br#"{"instId":"BTC-USDT","tradeId":"1001","px":"30236","sz":"0.0002","side":"buy","ts":"1652459224818"}"#
        );
        assert_eq!(
            Okx::fields(Channel::Trade, &trades[0].1).map(|f| f.ids),
            Ok(Ids::Trade { id: 1001 })
        );
        let refused = br#"{"code":"50011","msg":"Too Many Requests","data":[]}"#;
        assert_eq!(
            Okx::parse_trades(&btc, refused),
            Err("OKX error 50011: Too Many Requests".to_string())
        );
    }
}
