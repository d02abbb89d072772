//! Frames become NATS messages: classify, look up the stream's pre-built route, check
//! sequence continuity, slice the payload out of the frame and attach headers.
//!
//! Synchronous and I/O-free, so that it is benchmarked exactly as it runs.

use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::ops::Range;
use std::sync::Mutex;

use async_nats::header::HeaderName;
use async_nats::message::OutboundMessage;
use async_nats::{HeaderMap, HeaderValue};
use bytes::Bytes;
use rustc_hash::FxBuildHasher;
use sequex_subjects::{Channel, Symbol, SymbolSubjects, header};

use crate::sequence::{Sequence, Verdict};
use crate::venue::json;
use crate::venue::{DepthSpeed, Fields, Frame, FrameError, Ids, Venue};

const MSG_ID: HeaderName = HeaderName::from_static(header::MSG_ID);
const RECEIVE_TIME_NS: HeaderName = HeaderName::from_static(header::RECEIVE_TIME_NS);
const GAP: HeaderName = HeaderName::from_static(header::GAP);
const RESET: HeaderName = HeaderName::from_static(header::RESET);
const SNAPSHOT: HeaderName = HeaderName::from_static(header::SNAPSHOT);

/// One subscribed venue stream: a symbol on a channel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSpec {
    /// The symbol.
    pub symbol: Symbol,
    /// The channel.
    pub channel: Channel,
}

#[derive(Debug)]
struct Route {
    spec: StreamSpec,
    subject: async_nats::Subject,
    msg_id_prefix: String,
    sequence: Sequence,
}

/// What a frame turned into.
// Returned by value and moved straight into the publish: boxing the large variant would
// cost an allocation per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Routed {
    /// A message to publish.
    Message(RoutedMessage),
    /// The venue announced that it will close the connection.
    ServerShutdown,
    /// An event this stream already published (the overlap of two connections during a
    /// planned reconnect): skipped, so that subscribers see each event once.
    Duplicate,
    /// An event of this channel whose ids are out of line with its stream (an outlier, or
    /// the first event after the venue restarted its ids): skipped; the next event tells
    /// which it was.
    OutOfSequence(Channel),
    /// Nothing to forward (a control reply).
    Ignored,
}

/// A message ready for NATS, with what telemetry needs to know about it.
#[derive(Debug)]
pub struct RoutedMessage {
    /// The message.
    pub message: OutboundMessage,
    /// The ids missing before it, if any.
    pub gap: Option<Range<u64>>,
    /// When the venue restarted its ids: the last id of the old sequence.
    pub reset: Option<u64>,
    /// What [`Router::commit`] needs once the message is handed to NATS.
    pub commit: Commit,
}

/// A routed event's place in its stream's sequence, committed once it reached NATS.
#[derive(Clone, Copy, Debug)]
pub struct Commit {
    route: usize,
    last_id: u64,
    event_time_ms: u64,
}

impl Commit {
    /// The position of the event's stream in [`Router::streams`].
    pub fn stream(self) -> usize {
        self.route
    }

    /// The exchange event time, ms.
    pub fn event_time_ms(self) -> u64 {
        self.event_time_ms
    }
}

/// The routing table of one connection: its streams' subjects and sequence state.
#[derive(Debug)]
pub struct Router<V> {
    index: hashbrown::HashMap<StreamName, usize, FxBuildHasher>,
    routes: Vec<Route>,
    headers: bool,
    /// The events of the frame being routed that [`Router::next_event`] has not returned
    /// yet ([`Venue::EVENT_ARRAYS`]).
    batch: Option<Batch>,
    venue: PhantomData<V>,
}

/// What is left of a frame's event array: its route, where the next event starts, and
/// where the array ends.
#[derive(Debug)]
struct Batch {
    route: usize,
    next: usize,
    end: usize,
}

impl<V: Venue> Router<V> {
    /// Builds the routes of `streams`; `headers` turns the per-message headers on.
    pub fn new(streams: &[StreamSpec], depth: DepthSpeed, headers: bool) -> Self {
        let mut index = hashbrown::HashMap::with_hasher(FxBuildHasher);
        let routes = streams
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let name = V::stream_name(&spec.symbol, spec.channel, depth);
                index.insert(StreamName(name.into_bytes().into_boxed_slice()), i);
                Route {
                    subject: static_subject(
                        SymbolSubjects::of(V::VENUE, &spec.symbol).live(spec.channel),
                    ),
                    msg_id_prefix: header::message_id_prefix(V::ID, spec.channel, &spec.symbol),
                    spec: spec.clone(),
                    sequence: Sequence::default(),
                }
            })
            .collect();
        Router {
            index,
            routes,
            headers,
            batch: None,
            venue: PhantomData,
        }
    }

    /// Turns one text frame into a message. `received_ns` is the local receive time. For
    /// a venue whose frames carry arrays of events this is the first event; the others
    /// follow from [`Router::next_event`].
    pub fn route(&mut self, frame: &Bytes, received_ns: u64) -> Result<Routed, FrameError> {
        let (stream, payload) = match V::classify(frame)? {
            Frame::Data { stream, payload } => (stream, payload),
            Frame::ServerShutdown => return Ok(Routed::ServerShutdown),
            Frame::ControlReply => return Ok(Routed::Ignored),
        };
        let Some(&i) = self.index.get(&NameRef(stream)) else {
            return unrouted::<V>(&frame[payload], FrameError::UnknownStream);
        };
        if V::EVENT_ARRAYS {
            self.batch = Some(Batch {
                route: i,
                next: payload.start + 1,
                end: payload.end,
            });
            return self
                .next_event(frame, received_ns)
                .unwrap_or(Ok(Routed::Ignored));
        }
        self.event(i, frame, payload, received_ns)
    }

    /// The next event of the frame [`Router::route`] took, if its array holds more. Route
    /// and commit each before asking for the next: they are judged against the one before.
    pub fn next_event(
        &mut self,
        frame: &Bytes,
        received_ns: u64,
    ) -> Option<Result<Routed, FrameError>> {
        let batch = self.batch.as_mut()?;
        match json::element(&frame[..batch.end], batch.next) {
            Ok(Some((event, next))) => {
                batch.next = next;
                let route = batch.route;
                Some(self.event(route, frame, event, received_ns))
            }
            Ok(None) => {
                self.batch = None;
                None
            }
            Err(_) => {
                self.batch = None;
                Some(Err(FrameError::Malformed("not an array of events")))
            }
        }
    }

    #[inline(always)]
    fn event(
        &mut self,
        i: usize,
        frame: &Bytes,
        payload: Range<usize>,
        received_ns: u64,
    ) -> Result<Routed, FrameError> {
        let route = &mut self.routes[i];
        let fields = match V::fields(route.spec.channel, &frame[payload.clone()]) {
            Ok(fields) => fields,
            Err(error) => return unrouted::<V>(&frame[payload], error),
        };
        let (gap, reset) = match route
            .sequence
            .check(fields.ids, fields.event_time_ms, V::gap)
        {
            Verdict::Publish { gap, reset } => (gap, reset),
            Verdict::Duplicate => return Ok(Routed::Duplicate),
            Verdict::Suspect => return Ok(Routed::OutOfSequence(route.spec.channel)),
        };
        let headers = self
            .headers
            .then(|| headers(route, &fields, received_ns, gap.as_ref(), reset));
        Ok(Routed::Message(RoutedMessage {
            message: OutboundMessage {
                subject: route.subject.clone(),
                payload: frame.slice(payload),
                reply: None,
                headers,
            },
            gap,
            reset,
            commit: Commit {
                route: i,
                last_id: fields.ids.last(),
                event_time_ms: fields.event_time_ms,
            },
        }))
    }

    /// The message was handed to NATS: its stream's sequence moves on. A routed message
    /// that is never committed stays in the gap of the next one.
    #[inline(always)]
    pub fn commit(&mut self, commit: Commit) {
        self.routes[commit.route]
            .sequence
            .commit(commit.last_id, commit.event_time_ms);
    }

    /// A round trip to NATS is sent now (see `sequence`).
    pub(crate) fn snapshot(&mut self) {
        self.routes.iter_mut().for_each(|r| r.sequence.snapshot());
    }

    /// The round trip sent at the last [`Router::snapshot`] returned.
    pub(crate) fn confirm(&mut self) {
        self.routes.iter_mut().for_each(|r| r.sequence.confirm());
    }

    /// The NATS connection was lost: every stream goes back to what NATS confirmed.
    #[cold]
    pub(crate) fn rewind(&mut self) {
        self.routes.iter_mut().for_each(|r| r.sequence.rewind());
    }

    /// The stream a routed message belongs to.
    pub fn stream_of(&self, commit: Commit) -> &StreamSpec {
        &self.routes[commit.route].spec
    }

    /// The streams this router serves.
    pub fn streams(&self) -> impl Iterator<Item = &StreamSpec> {
        self.routes.iter().map(|r| &r.spec)
    }
}

/// A frame that names no subscribed stream, or whose event does not fit its stream: the
/// venue's shutdown notice may come that way, inside the envelope.
#[cold]
#[inline(never)]
fn unrouted<V: Venue>(event: &[u8], error: FrameError) -> Result<Routed, FrameError> {
    if V::is_shutdown_notice(event) {
        Ok(Routed::ServerShutdown)
    } else {
        Err(error)
    }
}

/// A venue stream name, the routing key of a frame.
#[derive(Debug)]
struct StreamName(Box<[u8]>);

/// A stream name read from a frame, looked up without building a [`StreamName`].
struct NameRef<'a>(&'a [u8]);

// Both hash and compare a name as words: its length and its first and last eight bytes
// tell a venue's names apart (the symbol starts them, the channel ends them), and an
// inline word compare beats the `memcmp` call of a slice comparison on names this short.
impl Hash for StreamName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        NameRef(&self.0).hash(state);
    }
}

impl Hash for NameRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let (first, last) = edge_words(self.0);
        state.write_u64(first ^ last.rotate_left(29) ^ self.0.len() as u64);
    }
}

impl hashbrown::Equivalent<StreamName> for NameRef<'_> {
    fn equivalent(&self, key: &StreamName) -> bool {
        let (a, b) = (self.0, &*key.0);
        if a.len() != b.len() || edge_words(a) != edge_words(b) {
            return false;
        }
        // Equal edges and lengths: the whole words cover the rest (the last word covers
        // the tail).
        let word = |w: &[u8]| u64::from_le_bytes(w.try_into().expect("chunks of 8"));
        a.chunks_exact(8)
            .zip(b.chunks_exact(8))
            .all(|(x, y)| word(x) == word(y))
    }
}

impl PartialEq for StreamName {
    fn eq(&self, other: &Self) -> bool {
        hashbrown::Equivalent::equivalent(&NameRef(&other.0), self)
    }
}

impl Eq for StreamName {}

/// The first and the last eight bytes of `name` (overlapping when it is shorter than 16;
/// zero-padded when shorter than 8) as little-endian words.
#[inline(always)]
fn edge_words(name: &[u8]) -> (u64, u64) {
    match (name.first_chunk::<8>(), name.last_chunk::<8>()) {
        (Some(first), Some(last)) => (u64::from_le_bytes(*first), u64::from_le_bytes(*last)),
        _ => {
            let mut word = [0u8; 8];
            word[..name.len()].copy_from_slice(name);
            (u64::from_le_bytes(word), 0)
        }
    }
}

/// The subject as a `'static` string, interned for the life of the process, so that the
/// per-message clone is a pointer copy instead of two atomic reference-count updates.
/// Bounded: one entry per configured symbol and channel, however many routers are built.
fn static_subject(subject: &sequex_subjects::Subject) -> async_nats::Subject {
    static INTERNED: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    // A poisoned set is still a valid set: nothing panics while holding the lock.
    let mut interned = INTERNED.lock().unwrap_or_else(|p| p.into_inner());
    let text = match interned.get(subject.as_str()) {
        Some(text) => *text,
        None => {
            let text: &'static str = Box::leak(subject.as_str().into());
            interned.insert(text);
            text
        }
    };
    async_nats::Subject::from_static(text)
}

fn headers(
    route: &Route,
    fields: &Fields,
    received_ns: u64,
    gap: Option<&Range<u64>>,
    reset: Option<u64>,
) -> HeaderMap {
    let mut map = HeaderMap::new();
    // Owned strings move into the map; a `&str` would be copied once more.
    map.insert(
        MSG_ID,
        header::message_id(&route.msg_id_prefix, fields.ids.last()),
    );
    map.insert(RECEIVE_TIME_NS, HeaderValue::from(received_ns));
    if let Some(gap) = gap {
        map.insert(GAP, header::gap_value(gap));
    }
    if let Some(last) = reset {
        map.insert(RESET, HeaderValue::from(last));
    }
    if let Ids::Snapshot { .. } = fields.ids {
        map.insert(SNAPSHOT, HeaderValue::from("true"));
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::venue::binance::BinanceSpot;

    fn router(headers: bool) -> Router<BinanceSpot> {
        let btc = Symbol::from_static("BTCUSDT");
        let specs = Channel::ALL.map(|channel| StreamSpec {
            symbol: btc.clone(),
            channel,
        });
        Router::new(&specs, DepthSpeed::Ms100, headers)
    }

    fn trade_at(id: u64, time_ms: u64) -> Bytes {
        Bytes::from(format!(
            r#"{{"stream":"btcusdt@trade","data":{{"e":"trade","E":{time_ms},"s":"BTCUSDT","t":{id},"p":"1","q":"2","T":1,"m":true,"M":true}}}}"#
        ))
    }

    fn trade(id: u64) -> Bytes {
        trade_at(id, 1723161255343)
    }

    fn message(routed: Result<Routed, FrameError>) -> RoutedMessage {
        match routed {
            Ok(Routed::Message(m)) => m,
            other => panic!("{other:?}"),
        }
    }

    /// Routes `frame` and commits it, as the feed does once NATS took it.
    fn publish(router: &mut Router<BinanceSpot>, frame: &Bytes) -> RoutedMessage {
        let m = message(router.route(frame, 0));
        router.commit(m.commit);
        m
    }

    fn header_of(m: &RoutedMessage, name: &str) -> Option<String> {
        Some(m.message.headers.as_ref()?.get(name)?.to_string())
    }

    #[test]
    fn routes_payload_slice_to_prebuilt_subject_with_headers() {
        let mut router = router(true);
        let frame = trade(7);
        let m = message(router.route(&frame, 42));
        assert_eq!(m.message.subject.as_str(), "TRADE.trade.BTCUSDT");
        assert_eq!(&m.message.payload[..], &frame[33..frame.len() - 1]);
        assert!(m.message.payload.starts_with(b"{\"e\":\"trade\""));
        assert_eq!(
            header_of(&m, header::MSG_ID).as_deref(),
            Some("binance-spot:trade:BTCUSDT:7")
        );
        assert_eq!(
            header_of(&m, header::RECEIVE_TIME_NS).as_deref(),
            Some("42")
        );
        assert_eq!(header_of(&m, header::GAP), None);
        assert_eq!(header_of(&m, header::RESET), None);
    }

    #[test]
    fn flags_the_first_message_after_a_gap() {
        let mut router = router(true);
        publish(&mut router, &trade(7));
        let m = publish(&mut router, &trade(10));
        assert_eq!(m.gap, Some(8..10));
        assert_eq!(header_of(&m, header::GAP).as_deref(), Some("8-9"));
        assert!(publish(&mut router, &trade(11)).gap.is_none());
        // A repeat is skipped, is not a gap, and does not move the sequence back.
        assert!(matches!(router.route(&trade(11), 0), Ok(Routed::Duplicate)));
        assert!(matches!(router.route(&trade(9), 0), Ok(Routed::Duplicate)));
        assert!(publish(&mut router, &trade(12)).gap.is_none());
    }

    #[test]
    fn a_message_dropped_before_nats_is_in_the_next_gap() {
        let mut router = router(true);
        publish(&mut router, &trade(7));
        // Routed, never committed: the queue was full.
        message(router.route(&trade(8), 0));
        message(router.route(&trade(9), 0));
        let m = publish(&mut router, &trade(10));
        assert_eq!(header_of(&m, header::GAP).as_deref(), Some("8-9"));
    }

    #[test]
    fn a_reset_is_flagged_and_an_outlier_costs_one_frame() {
        let mut router = router(true);
        publish(&mut router, &trade_at(500, 1));
        assert!(matches!(
            router.route(&trade_at(u64::MAX, 1), 0),
            Ok(Routed::OutOfSequence(Channel::Trade))
        ));
        assert!(publish(&mut router, &trade_at(501, 1)).gap.is_none());
        assert!(matches!(
            router.route(&trade_at(1, 2), 0),
            Ok(Routed::OutOfSequence(Channel::Trade))
        ));
        let m = publish(&mut router, &trade_at(2, 2));
        assert_eq!(header_of(&m, header::RESET).as_deref(), Some("501"));
        assert_eq!(header_of(&m, header::GAP).as_deref(), Some("1-1"));
        assert!(publish(&mut router, &trade_at(3, 2)).reset.is_none());
    }

    #[test]
    fn a_shutdown_notice_inside_the_envelope_is_recognised() {
        let mut router = router(false);
        for frame in [
            r#"{"stream":"btcusdt@trade","data":{"e":"serverShutdown","E":1}}"#,
            r#"{"stream":"serverShutdown","data":{"e":"serverShutdown","E":1}}"#,
        ] {
            assert!(
                matches!(
                    router.route(&Bytes::from(frame), 0),
                    Ok(Routed::ServerShutdown)
                ),
                "{frame}"
            );
        }
    }

    #[test]
    fn headers_can_be_turned_off() {
        let mut router = router(false);
        assert!(
            message(router.route(&trade(7), 0))
                .message
                .headers
                .is_none()
        );
    }

    #[test]
    fn names_that_differ_only_in_the_middle_are_told_apart() {
        // Same length, same first and last eight bytes: the same hash, different routes;
        // and names shorter than two words and than one.
        let specs = ["ABCDEFGHXUSDT", "ABCDEFGHYUSDT", "BTC", "X"].map(|s| StreamSpec {
            symbol: Symbol::normalize(s).unwrap(),
            channel: Channel::Trade,
        });
        let mut router = Router::<BinanceSpot>::new(&specs, DepthSpeed::Ms100, false);
        for spec in &specs {
            let name = BinanceSpot::stream_name(&spec.symbol, Channel::Trade, DepthSpeed::Ms100);
            let frame = Bytes::from(format!(
                r#"{{"stream":"{name}","data":{{"e":"trade","E":1,"s":"{}","t":1,"p":"1"}}}}"#,
                spec.symbol
            ));
            let m = message(router.route(&frame, 0));
            assert_eq!(
                m.message.subject.as_str(),
                format!("TRADE.trade.{}", spec.symbol)
            );
        }
        let frame = Bytes::from_static(
            br#"{"stream":"abcdefghzusdt@trade","data":{"e":"trade","E":1,"t":1}}"#,
        );
        assert_eq!(
            router.route(&frame, 0).unwrap_err(),
            FrameError::UnknownStream
        );
    }

    #[test]
    fn unknown_streams_are_errors() {
        let mut router = router(false);
        let frame =
            Bytes::from_static(br#"{"stream":"ethusdt@trade","data":{"e":"trade","E":1,"t":1}}"#);
        assert_eq!(
            router.route(&frame, 0).unwrap_err(),
            FrameError::UnknownStream
        );
    }

    #[test]
    fn an_okx_frame_yields_one_message_per_event_each_a_slice_of_it() {
        use crate::venue::okx::Okx;
        let btc = Symbol::from_static("BTC-USDT");
        let specs = Channel::ALL.map(|channel| StreamSpec {
            symbol: btc.clone(),
            channel,
        });
        let mut router = Router::<Okx>::new(&specs, DepthSpeed::Ms100, true);
        let trades = [
            r#"{"instId":"BTC-USDT","tradeId":"11","px":"1","sz":"1","side":"buy","ts":"5"}"#,
            r#"{"instId":"BTC-USDT","tradeId":"14","px":"1","sz":"1","side":"buy","ts":"5","count":"2"}"#,
            r#"{"instId":"BTC-USDT","tradeId":"15","px":"1","sz":"1","side":"sell","ts":"6"}"#,
        ];
        let frame = Bytes::from(format!(
            r#"{{"arg":{{"channel":"trades","instId":"BTC-USDT"}},"data":[{}]}}"#,
            trades.join(",")
        ));
        let mut published = Vec::new();
        let mut routed = Some(router.route(&frame, 0));
        while let Some(next) = routed {
            let m = message(next);
            router.commit(m.commit);
            published.push(m);
            routed = router.next_event(&frame, 0);
        }
        assert_eq!(published.len(), 3);
        for (m, trade) in published.iter().zip(trades) {
            assert_eq!(&m.message.payload[..], trade.as_bytes());
            assert_eq!(m.message.subject.as_str(), "TRADE.trade.okx.BTC-USDT");
        }
        // The second event aggregates fills 13 and 14: 12 is missing.
        assert_eq!(published[1].gap, Some(12..13));
        assert_eq!(
            header_of(&published[2], header::MSG_ID).as_deref(),
            Some("okx:trade:BTC-USDT:15")
        );
        let book = Bytes::from_static(
            br#"{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{"asks":[],"bids":[],"ts":"7","checksum":0,"prevSeqId":-1,"seqId":9}]}"#,
        );
        let m = message(router.route(&book, 0));
        assert_eq!(header_of(&m, header::SNAPSHOT).as_deref(), Some("true"));
        assert!(router.next_event(&book, 0).is_none());
        assert!(header_of(&published[0], header::SNAPSHOT).is_none());
    }
}
