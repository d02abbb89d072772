//! The subject grammar: `<root>.<channel>.<SYMBOL>`, where the root names the stream that
//! captures the subject (`TRADE` for live data, `record` for RECORD's copies).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use bytes::Bytes;

use crate::symbol::{Symbol, SymbolError};

/// The JetStream streams of the Sequex bus.
///
/// ```
/// use sequex_subjects::Stream;
///
/// assert_eq!(Stream::Trade.name(), "TRADE");
/// assert_eq!(Stream::Record.root(), "record");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    /// `TRADE`: memory, 5 s, no acks. Live data for strategies and caches.
    Trade,
    /// `RECORD`: file, 1 h, sources TRADE. Recording and analysis.
    Record,
}

impl Stream {
    /// Every stream, in a fixed order.
    pub const ALL: [Stream; 2] = [Stream::Trade, Stream::Record];

    /// The stream's JetStream name.
    ///
    /// ```
    /// # use sequex_subjects::Stream;
    /// assert_eq!(Stream::Record.name(), "RECORD");
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            Stream::Trade => "TRADE",
            Stream::Record => "RECORD",
        }
    }

    /// The first subject token of every subject the stream captures. RECORD's root differs
    /// from its name because its sourcing transform maps `TRADE.>` to `record.>`.
    ///
    /// ```
    /// # use sequex_subjects::Stream;
    /// assert_eq!(Stream::Trade.root(), "TRADE");
    /// ```
    pub const fn root(self) -> &'static str {
        match self {
            Stream::Trade => "TRADE",
            Stream::Record => "record",
        }
    }

    fn from_root(root: &str) -> Option<Stream> {
        Stream::ALL.into_iter().find(|s| s.root() == root)
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The kinds of market data on the bus.
///
/// ```
/// use sequex_subjects::Channel;
///
/// assert_eq!(Channel::Depth.as_str(), "depth");
/// assert_eq!("trade".parse::<Channel>().ok(), Some(Channel::Trade));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// Executed trades.
    Trade,
    /// Order-book depth updates (diffs).
    Depth,
}

impl Channel {
    /// Every channel, in a fixed order.
    pub const ALL: [Channel; 2] = [Channel::Trade, Channel::Depth];

    /// The channel's subject token.
    ///
    /// ```
    /// # use sequex_subjects::Channel;
    /// assert_eq!(Channel::Trade.as_str(), "trade");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Channel::Trade => "trade",
            Channel::Depth => "depth",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Channel {
    type Err = SubjectError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| SubjectError::new(s, SubjectErrorKind::UnknownChannel))
    }
}

/// The market-data venues. Each has its own payload format and its own instruments, so
/// each has its own subjects (see [`crate::grammar`]).
///
/// ```
/// use sequex_subjects::Venue;
///
/// assert_eq!(Venue::Okx.as_str(), "okx");
/// assert_eq!("binance-usdm".parse::<Venue>().ok(), Some(Venue::BinanceUsdm));
/// assert_eq!(Venue::BinanceSpot.token(), None, "spot subjects predate venues");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Venue {
    /// Binance spot (`stream.binance.com`).
    BinanceSpot,
    /// Binance USD-M futures (`fstream.binance.com`).
    BinanceUsdm,
    /// Binance COIN-M futures (`dstream.binance.com`).
    BinanceCoinm,
    /// OKX v5 public (`ws.okx.com`).
    Okx,
}

impl Venue {
    /// Every venue, in a fixed order.
    pub const ALL: [Venue; 4] = [
        Venue::BinanceSpot,
        Venue::BinanceUsdm,
        Venue::BinanceCoinm,
        Venue::Okx,
    ];

    /// The venue's name in `--venue`, metrics, logs and message ids.
    ///
    /// ```
    /// # use sequex_subjects::Venue;
    /// assert_eq!(Venue::BinanceCoinm.as_str(), "binance-coinm");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Venue::BinanceSpot => "binance-spot",
            Venue::BinanceUsdm => "binance-usdm",
            Venue::BinanceCoinm => "binance-coinm",
            Venue::Okx => "okx",
        }
    }

    /// The subject token that names the venue: every venue's but Binance spot's, whose
    /// three-token subjects existed before there was a second venue and stay as they were.
    ///
    /// ```
    /// # use sequex_subjects::Venue;
    /// assert_eq!(Venue::BinanceUsdm.token(), Some("binance-usdm"));
    /// ```
    pub const fn token(self) -> Option<&'static str> {
        match self {
            Venue::BinanceSpot => None,
            other => Some(other.as_str()),
        }
    }
}

impl fmt::Display for Venue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Venue {
    type Err = SubjectError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Venue::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| SubjectError::new(s, SubjectErrorKind::UnknownVenue))
    }
}

/// A concrete, publishable subject: `TRADE.trade.BTCUSDT` (Binance spot),
/// `TRADE.trade.okx.BTC-USDT-SWAP`, `record.depth.ETHUSDT`.
///
/// Backed by [`Bytes`]: cloning is a reference-count increment, and the `async-nats`
/// feature converts it into `async_nats::Subject` without copying.
///
/// ```
/// use sequex_subjects::{Channel, Stream, Subject, Symbol};
///
/// let btc = Symbol::from_static("BTCUSDT");
/// let subject = Subject::new(Stream::Trade, Channel::Trade, &btc);
/// assert_eq!(subject.as_str(), "TRADE.trade.BTCUSDT");
///
/// let parsed: Subject = "record.depth.ETHUSDT".parse()?;
/// assert_eq!((parsed.stream(), parsed.channel(), parsed.symbol()), (Stream::Record, Channel::Depth, "ETHUSDT"));
/// # Ok::<(), sequex_subjects::SubjectError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Subject {
    // Invariant: exactly `stream.root() . channel [. venue token] . <valid symbol>`.
    text: Text,
    stream: Stream,
    venue: Venue,
    channel: Channel,
}

impl Subject {
    /// Builds `<root>.<channel>.<symbol>`. Allocates once: build subjects at startup (see
    /// [`SymbolSubjects`]) and clone them on the hot path.
    ///
    /// ```
    /// # use sequex_subjects::{Channel, Stream, Subject, Symbol};
    /// let s = Subject::new(Stream::Trade, Channel::Depth, &Symbol::from_static("ETHUSDT"));
    /// assert_eq!(s.to_string(), "TRADE.depth.ETHUSDT");
    /// ```
    pub fn new(stream: Stream, channel: Channel, symbol: &Symbol) -> Self {
        Subject::of(stream, Venue::BinanceSpot, channel, symbol)
    }

    /// Builds the subject of `symbol` on `venue`: `<root>.<channel>.<venue>.<symbol>`, or
    /// `<root>.<channel>.<symbol>` for Binance spot.
    ///
    /// ```
    /// # use sequex_subjects::{Channel, Stream, Subject, Symbol, Venue};
    /// let swap = Symbol::from_static("BTC-USDT-SWAP");
    /// let s = Subject::of(Stream::Trade, Venue::Okx, Channel::Depth, &swap);
    /// assert_eq!(s.as_str(), "TRADE.depth.okx.BTC-USDT-SWAP");
    /// ```
    pub fn of(stream: Stream, venue: Venue, channel: Channel, symbol: &Symbol) -> Self {
        Subject::from_valid_parts(stream, venue, channel, symbol.as_str())
    }

    /// `symbol` must be a valid symbol's text.
    fn from_valid_parts(stream: Stream, venue: Venue, channel: Channel, symbol: &str) -> Self {
        let mut text = String::with_capacity(64);
        text.push_str(stream.root());
        text.push('.');
        text.push_str(channel.as_str());
        if let Some(token) = venue.token() {
            text.push('.');
            text.push_str(token);
        }
        text.push('.');
        text.push_str(symbol);
        Subject {
            text: Text(text.into()),
            stream,
            venue,
            channel,
        }
    }

    /// Parses a concrete subject of ours back into its parts.
    ///
    /// ```
    /// use sequex_subjects::{Subject, SubjectErrorKind};
    ///
    /// assert_eq!(Subject::parse("TRADE.trade.BTCUSDT")?.symbol(), "BTCUSDT");
    /// assert_eq!(Subject::parse("orders.new.BTCUSDT").unwrap_err().kind(), SubjectErrorKind::UnknownRoot);
    /// # Ok::<(), sequex_subjects::SubjectError>(())
    /// ```
    pub fn parse(input: &str) -> Result<Self, SubjectError> {
        let err = |kind| SubjectError::new(input, kind);
        let tokens: Vec<&str> = input.split('.').collect();
        let (root, channel, venue, symbol) = match tokens[..] {
            [root, channel, symbol] => (root, channel, Venue::BinanceSpot, symbol),
            [root, channel, venue, symbol] => {
                let venue = Venue::ALL
                    .into_iter()
                    .find(|v| v.token() == Some(venue))
                    .ok_or_else(|| err(SubjectErrorKind::UnknownVenue))?;
                (root, channel, venue, symbol)
            }
            _ => return Err(err(SubjectErrorKind::TokenCount)),
        };
        let stream = Stream::from_root(root).ok_or_else(|| err(SubjectErrorKind::UnknownRoot))?;
        let channel: Channel = channel
            .parse()
            .map_err(|_| err(SubjectErrorKind::UnknownChannel))?;
        let symbol = Symbol::new(symbol).map_err(|e| err(SubjectErrorKind::Symbol(e)))?;
        Ok(Subject::of(stream, venue, channel, &symbol))
    }

    /// The subject text.
    ///
    /// ```
    /// # use sequex_subjects::Subject;
    /// assert_eq!(Subject::parse("record.trade.X")?.as_str(), "record.trade.X");
    /// # Ok::<(), sequex_subjects::SubjectError>(())
    /// ```
    pub fn as_str(&self) -> &str {
        &self.text.0
    }

    /// The stream that captures this subject.
    ///
    /// ```
    /// # use sequex_subjects::{Stream, Subject};
    /// assert_eq!(Subject::parse("record.trade.X")?.stream(), Stream::Record);
    /// # Ok::<(), sequex_subjects::SubjectError>(())
    /// ```
    pub fn stream(&self) -> Stream {
        self.stream
    }

    /// The data channel.
    ///
    /// ```
    /// # use sequex_subjects::{Channel, Subject};
    /// assert_eq!(Subject::parse("TRADE.depth.X")?.channel(), Channel::Depth);
    /// # Ok::<(), sequex_subjects::SubjectError>(())
    /// ```
    pub fn channel(&self) -> Channel {
        self.channel
    }

    /// The symbol token.
    ///
    /// ```
    /// # use sequex_subjects::Subject;
    /// assert_eq!(Subject::parse("TRADE.depth.BTCUSD_PERP")?.symbol(), "BTCUSD_PERP");
    /// # Ok::<(), sequex_subjects::SubjectError>(())
    /// ```
    pub fn symbol(&self) -> &str {
        let venue = self.venue.token().map_or(0, |t| t.len() + 1);
        let skip = self.stream.root().len() + self.channel.as_str().len() + 2 + venue;
        &self.as_str()[skip..]
    }

    /// The same channel and symbol under another stream's root: what RECORD's subject
    /// transform does to a TRADE subject.
    ///
    /// ```
    /// # use sequex_subjects::{Stream, Subject};
    /// let live = Subject::parse("TRADE.trade.BTCUSDT")?;
    /// assert_eq!(live.in_stream(Stream::Record).as_str(), "record.trade.BTCUSDT");
    /// # Ok::<(), sequex_subjects::SubjectError>(())
    /// ```
    pub fn in_stream(&self, stream: Stream) -> Subject {
        Subject::from_valid_parts(stream, self.venue, self.channel, self.symbol())
    }

    /// The venue whose payload format the message carries.
    ///
    /// ```
    /// # use sequex_subjects::{Subject, Venue};
    /// assert_eq!(Subject::parse("TRADE.trade.BTCUSDT")?.venue(), Venue::BinanceSpot);
    /// assert_eq!(Subject::parse("TRADE.trade.binance-usdm.BTCUSDT")?.venue(), Venue::BinanceUsdm);
    /// # Ok::<(), sequex_subjects::SubjectError>(())
    /// ```
    pub fn venue(&self) -> Venue {
        self.venue
    }

    /// The underlying bytes (a cheap clone).
    ///
    /// ```
    /// # use sequex_subjects::Subject;
    /// assert_eq!(&Subject::parse("TRADE.trade.X")?.to_bytes()[..], b"TRADE.trade.X");
    /// # Ok::<(), sequex_subjects::SubjectError>(())
    /// ```
    pub fn to_bytes(&self) -> Bytes {
        self.text.to_bytes()
    }
}

/// Shared, immutable subject text: a clone is a reference-count increment, and
/// [`Text::to_bytes`] shares the buffer instead of copying it.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Text(Arc<str>);

impl Text {
    fn to_bytes(&self) -> Bytes {
        Bytes::from_owner(self.clone())
    }
}

impl AsRef<[u8]> for Text {
    fn as_ref(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl AsRef<str> for Subject {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl FromStr for Subject {
    type Err = SubjectError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Subject::parse(s)
    }
}

impl TryFrom<&str> for Subject {
    type Error = SubjectError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Subject::parse(s)
    }
}

impl TryFrom<String> for Subject {
    type Error = SubjectError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Subject::parse(&s)
    }
}

/// Every subject of one symbol, built once: the hot path clones from here and allocates
/// nothing.
///
/// ```
/// use sequex_subjects::{Channel, Stream, Symbol, SymbolSubjects};
///
/// let subjects = SymbolSubjects::new(&Symbol::from_static("BTCUSDT"));
/// assert_eq!(subjects.get(Stream::Trade, Channel::Depth).as_str(), "TRADE.depth.BTCUSDT");
/// assert_eq!(subjects.live(Channel::Trade).as_str(), "TRADE.trade.BTCUSDT");
/// ```
#[derive(Clone, Debug)]
pub struct SymbolSubjects {
    symbol: Symbol,
    // Indexed by `slot(stream, channel)`.
    subjects: [Subject; 4],
}

impl SymbolSubjects {
    /// Builds the four subjects of `symbol`.
    ///
    /// ```
    /// # use sequex_subjects::{Symbol, SymbolSubjects};
    /// let s = SymbolSubjects::new(&Symbol::from_static("ETHUSDT"));
    /// assert_eq!(s.symbol().as_str(), "ETHUSDT");
    /// ```
    pub fn new(symbol: &Symbol) -> Self {
        SymbolSubjects::of(Venue::BinanceSpot, symbol)
    }

    /// Builds the four subjects of `symbol` on `venue`.
    ///
    /// ```
    /// # use sequex_subjects::{Channel, Symbol, SymbolSubjects, Venue};
    /// let s = SymbolSubjects::of(Venue::BinanceCoinm, &Symbol::from_static("BTCUSD_PERP"));
    /// assert_eq!(s.live(Channel::Trade).as_str(), "TRADE.trade.binance-coinm.BTCUSD_PERP");
    /// ```
    pub fn of(venue: Venue, symbol: &Symbol) -> Self {
        let build = |i: usize| Subject::of(Stream::ALL[i / 2], venue, Channel::ALL[i % 2], symbol);
        SymbolSubjects {
            symbol: symbol.clone(),
            subjects: std::array::from_fn(build),
        }
    }

    /// The symbol these subjects are for.
    ///
    /// ```
    /// # use sequex_subjects::{Symbol, SymbolSubjects};
    /// # let s = SymbolSubjects::new(&Symbol::from_static("ETHUSDT"));
    /// assert_eq!(s.symbol(), &Symbol::from_static("ETHUSDT"));
    /// ```
    pub fn symbol(&self) -> &Symbol {
        &self.symbol
    }

    /// The subject for `stream` and `channel`.
    ///
    /// ```
    /// # use sequex_subjects::{Channel, Stream, Symbol, SymbolSubjects};
    /// # let s = SymbolSubjects::new(&Symbol::from_static("ETHUSDT"));
    /// assert_eq!(s.get(Stream::Record, Channel::Trade).as_str(), "record.trade.ETHUSDT");
    /// ```
    pub fn get(&self, stream: Stream, channel: Channel) -> &Subject {
        &self.subjects[stream as usize * 2 + channel as usize]
    }

    /// The live (TRADE) subject for `channel`: what the ingest daemon publishes to.
    ///
    /// ```
    /// # use sequex_subjects::{Channel, Symbol, SymbolSubjects};
    /// # let s = SymbolSubjects::new(&Symbol::from_static("ETHUSDT"));
    /// assert_eq!(s.live(Channel::Depth).as_str(), "TRADE.depth.ETHUSDT");
    /// ```
    pub fn live(&self, channel: Channel) -> &Subject {
        self.get(Stream::Trade, channel)
    }
}

/// A subscription or consumer filter, which may hold wildcards: `TRADE.>`,
/// `TRADE.trade.>`, `TRADE.*.BTCUSDT`. Never published to.
///
/// ```
/// use sequex_subjects::{Channel, Filter, Stream, Subject, Symbol};
///
/// let btc = Symbol::from_static("BTCUSDT");
/// assert_eq!(Filter::stream(Stream::Record).as_str(), "record.>");
/// assert_eq!(Filter::channel(Stream::Trade, Channel::Trade).as_str(), "TRADE.trade.>");
/// let f = Filter::symbol(Stream::Trade, &btc);
/// assert_eq!(f.as_str(), "TRADE.*.BTCUSDT");
/// assert!(f.matches(&Subject::parse("TRADE.depth.BTCUSDT")?));
/// # Ok::<(), sequex_subjects::SubjectError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Filter {
    // Invariant: the same grammar as `Subject` with `*` or `>` in place of tokens.
    text: Text,
}

impl Filter {
    /// Everything in `stream`: `<root>.>`.
    ///
    /// ```
    /// # use sequex_subjects::{Filter, Stream};
    /// assert_eq!(Filter::stream(Stream::Trade).as_str(), "TRADE.>");
    /// ```
    pub fn stream(stream: Stream) -> Self {
        Filter::from_parts(&[stream.root(), ">"])
    }

    /// One channel of every symbol: `<root>.<channel>.>`.
    ///
    /// ```
    /// # use sequex_subjects::{Channel, Filter, Stream};
    /// assert_eq!(Filter::channel(Stream::Record, Channel::Depth).as_str(), "record.depth.>");
    /// ```
    pub fn channel(stream: Stream, channel: Channel) -> Self {
        Filter::from_parts(&[stream.root(), channel.as_str(), ">"])
    }

    /// Every channel of one symbol: `<root>.*.<symbol>`.
    ///
    /// ```
    /// # use sequex_subjects::{Filter, Stream, Symbol};
    /// assert_eq!(Filter::symbol(Stream::Trade, &Symbol::from_static("X")).as_str(), "TRADE.*.X");
    /// ```
    pub fn symbol(stream: Stream, symbol: &Symbol) -> Self {
        Filter::from_parts(&[stream.root(), "*", symbol.as_str()])
    }

    /// Everything of one venue: `<root>.*.<venue>.>`, or `<root>.*.*` for Binance spot
    /// (whose subjects are the only ones of three tokens).
    ///
    /// ```
    /// # use sequex_subjects::{Filter, Stream, Venue};
    /// assert_eq!(Filter::venue(Stream::Trade, Venue::Okx).as_str(), "TRADE.*.okx.>");
    /// assert_eq!(Filter::venue(Stream::Trade, Venue::BinanceSpot).as_str(), "TRADE.*.*");
    /// ```
    pub fn venue(stream: Stream, venue: Venue) -> Self {
        match venue.token() {
            Some(token) => Filter::from_parts(&[stream.root(), "*", token, ">"]),
            None => Filter::from_parts(&[stream.root(), "*", "*"]),
        }
    }

    /// One channel of one venue: `<root>.<channel>.<venue>.>`, or `<root>.<channel>.*` for
    /// Binance spot.
    ///
    /// ```
    /// # use sequex_subjects::{Channel, Filter, Stream, Venue};
    /// let f = Filter::venue_channel(Stream::Record, Venue::BinanceUsdm, Channel::Depth);
    /// assert_eq!(f.as_str(), "record.depth.binance-usdm.>");
    /// ```
    pub fn venue_channel(stream: Stream, venue: Venue, channel: Channel) -> Self {
        match venue.token() {
            Some(token) => Filter::from_parts(&[stream.root(), channel.as_str(), token, ">"]),
            None => Filter::from_parts(&[stream.root(), channel.as_str(), "*"]),
        }
    }

    /// One instrument of one venue on every channel: `<root>.*.<venue>.<symbol>`, or
    /// [`Filter::symbol`] for Binance spot.
    ///
    /// ```
    /// # use sequex_subjects::{Filter, Stream, Symbol, Venue};
    /// let f = Filter::instrument(Stream::Trade, Venue::Okx, &Symbol::from_static("BTC-USDT"));
    /// assert_eq!(f.as_str(), "TRADE.*.okx.BTC-USDT");
    /// ```
    pub fn instrument(stream: Stream, venue: Venue, symbol: &Symbol) -> Self {
        match venue.token() {
            Some(token) => Filter::from_parts(&[stream.root(), "*", token, symbol.as_str()]),
            None => Filter::symbol(stream, symbol),
        }
    }

    /// Exactly one subject.
    ///
    /// ```
    /// # use sequex_subjects::{Filter, Subject};
    /// let s = Subject::parse("TRADE.trade.X")?;
    /// assert_eq!(Filter::exact(&s).as_str(), "TRADE.trade.X");
    /// # Ok::<(), sequex_subjects::SubjectError>(())
    /// ```
    pub fn exact(subject: &Subject) -> Self {
        Filter {
            text: subject.text.clone(),
        }
    }

    fn from_parts(parts: &[&str]) -> Self {
        Filter {
            text: Text(parts.join(".").into()),
        }
    }

    /// The filter text.
    ///
    /// ```
    /// # use sequex_subjects::{Filter, Stream};
    /// assert_eq!(Filter::stream(Stream::Record).as_str(), "record.>");
    /// ```
    pub fn as_str(&self) -> &str {
        &self.text.0
    }

    /// Whether NATS would deliver `subject` to a subscription on this filter.
    ///
    /// ```
    /// # use sequex_subjects::{Channel, Filter, Stream, Subject};
    /// let f = Filter::channel(Stream::Trade, Channel::Trade);
    /// assert!(f.matches(&Subject::parse("TRADE.trade.ETHUSDT")?));
    /// assert!(!f.matches(&Subject::parse("TRADE.depth.ETHUSDT")?));
    /// # Ok::<(), sequex_subjects::SubjectError>(())
    /// ```
    pub fn matches(&self, subject: &Subject) -> bool {
        let mut tokens = subject.as_str().split('.');
        for pattern in self.as_str().split('.') {
            match (pattern, tokens.next()) {
                (">", Some(_)) => return true,
                ("*", Some(_)) => {}
                (p, Some(t)) if p == t => {}
                _ => return false,
            }
        }
        tokens.next().is_none()
    }

    /// Whether a stream or subscription on the NATS subject `pattern` (which may hold `*`
    /// and `>`) receives everything this filter matches: how to check that a stream
    /// captures what is published, whatever wildcards its configuration uses.
    ///
    /// ```
    /// # use sequex_subjects::{Channel, Filter, Stream};
    /// let trades = Filter::channel(Stream::Trade, Channel::Trade); // TRADE.trade.>
    /// assert!(trades.is_covered_by("TRADE.trade.>"));
    /// assert!(trades.is_covered_by("TRADE.>"));
    /// assert!(trades.is_covered_by(">"));
    /// assert!(trades.is_covered_by("*.trade.>"));
    /// assert!(!trades.is_covered_by("TRADE.trade.*"), "one token only");
    /// assert!(!trades.is_covered_by("TRADE.depth.>"));
    /// ```
    pub fn is_covered_by(&self, pattern: &str) -> bool {
        let mut wanted = self.as_str().split('.');
        for token in pattern.split('.') {
            match (token, wanted.next()) {
                (">", Some(_)) => return true,
                ("*", Some(w)) if w != ">" => {}
                (t, Some(w)) if t == w && t != "*" && t != ">" => {}
                _ => return false,
            }
        }
        wanted.next().is_none()
    }
}

impl AsRef<str> for Filter {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A string that is not a Sequex subject.
///
/// ```
/// use sequex_subjects::{Subject, SubjectErrorKind};
///
/// let err = Subject::parse("TRADE.book.BTCUSDT").unwrap_err();
/// assert_eq!(err.kind(), SubjectErrorKind::UnknownChannel);
/// assert_eq!(err.to_string(), "\"TRADE.book.BTCUSDT\" is not a sequex subject: unknown channel (expected trade or depth)");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubjectError {
    input: String,
    kind: SubjectErrorKind,
}

/// The classes of [`SubjectError`].
///
/// ```
/// use sequex_subjects::{Subject, SubjectErrorKind};
///
/// assert_eq!(Subject::parse("TRADE.trade").unwrap_err().kind(), SubjectErrorKind::TokenCount);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubjectErrorKind {
    /// Not three or four dot-separated tokens.
    TokenCount,
    /// The venue token (the third of four) names no venue with subjects of that form.
    UnknownVenue,
    /// The first token is not a stream root (`TRADE` or `record`).
    UnknownRoot,
    /// The second token is not a [`Channel`].
    UnknownChannel,
    /// The third token is not a valid [`Symbol`].
    Symbol(SymbolError),
}

impl SubjectError {
    fn new(input: &str, kind: SubjectErrorKind) -> Self {
        SubjectError {
            input: input.to_owned(),
            kind,
        }
    }

    /// What was wrong.
    ///
    /// ```
    /// # use sequex_subjects::{Subject, SubjectErrorKind};
    /// assert!(matches!(Subject::parse("TRADE.trade.*").unwrap_err().kind(), SubjectErrorKind::Symbol(_)));
    /// ```
    pub fn kind(&self) -> SubjectErrorKind {
        self.kind.clone()
    }
}

impl fmt::Display for SubjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not a sequex subject: ", self.input)?;
        match &self.kind {
            SubjectErrorKind::TokenCount => f.write_str(
                "expected <root>.<channel>.<SYMBOL> or <root>.<channel>.<venue>.<SYMBOL>",
            ),
            SubjectErrorKind::UnknownVenue => {
                f.write_str("unknown venue (expected binance-usdm, binance-coinm or okx)")
            }
            SubjectErrorKind::UnknownRoot => f.write_str("unknown root (expected TRADE or record)"),
            SubjectErrorKind::UnknownChannel => {
                f.write_str("unknown channel (expected trade or depth)")
            }
            SubjectErrorKind::Symbol(e) => fmt::Display::fmt(e, f),
        }
    }
}

impl std::error::Error for SubjectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            SubjectErrorKind::Symbol(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(feature = "async-nats")]
mod nats {
    use super::{Filter, Subject, Text};

    /// Shares the buffer; the UTF-8 check of a few dozen bytes is the whole cost.
    fn shared(text: &Text) -> async_nats::Subject {
        async_nats::Subject::from_utf8(text.to_bytes())
            .unwrap_or_else(|_| async_nats::Subject::from(&*text.0))
    }

    impl From<Subject> for async_nats::Subject {
        fn from(s: Subject) -> Self {
            shared(&s.text)
        }
    }

    impl From<Filter> for async_nats::Subject {
        fn from(f: Filter) -> Self {
            shared(&f.text)
        }
    }

    impl async_nats::subject::ToSubject for Subject {
        fn to_subject(&self) -> async_nats::Subject {
            self.clone().into()
        }
    }

    impl async_nats::subject::ToSubject for Filter {
        fn to_subject(&self) -> async_nats::Subject {
            self.clone().into()
        }
    }
}
