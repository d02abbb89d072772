//! Typed NATS subjects for Sequex market data: the only place that knows the grammar.
//!
//! Every subject is `<root>.<channel>.<SYMBOL>` for Binance spot and
//! `<root>.<channel>.<venue>.<SYMBOL>` for every other venue ([`grammar`] says why):
//!
//! | subject | captured by | written by |
//! |---|---|---|
//! | `TRADE.trade.<SYMBOL>`, `TRADE.depth.<SYMBOL>` | `TRADE` (memory, 5 s) | `sequex-ingest` |
//! | `record.trade.<SYMBOL>`, `record.depth.<SYMBOL>` | `RECORD` (file, 1 h) | RECORD's sourcing of TRADE |
//!
//! ```
//! use sequex_subjects::{Channel, Filter, Stream, Symbol, SymbolSubjects};
//!
//! // At startup: validate symbols and build their subjects once.
//! let btc = Symbol::normalize("btcusdt")?;
//! let subjects = SymbolSubjects::new(&btc);
//!
//! // On the hot path: a reference, no allocation.
//! assert_eq!(subjects.live(Channel::Trade).as_str(), "TRADE.trade.BTCUSDT");
//!
//! // Consumers subscribe with filters.
//! assert_eq!(Filter::symbol(Stream::Trade, &btc).as_str(), "TRADE.*.BTCUSDT");
//! # Ok::<(), sequex_subjects::SymbolError>(())
//! ```
//!
//! # Layout
//! - [`symbol`]: [`Symbol`], the validated instrument name (one subject token).
//! - [`subject`]: [`Stream`], [`Channel`], the concrete [`Subject`], the pre-built
//!   [`SymbolSubjects`] and wildcard [`Filter`]s.
//! - [`header`]: the message headers consumers can rely on.
//! - [`consumer`]: the durable [`Consumer`]s shipped in `configs/`.
//!
//! # Features
//! - `async-nats`: `From<Subject>`/`From<Filter>` for `async_nats::Subject` (sharing the
//!   buffer, no copy) and `ToSubject` impls, so both go straight into `publish`/`subscribe`.
#![warn(missing_docs)]

pub mod consumer;
#[doc = include_str!("../GRAMMAR.md")]
pub mod grammar {}
pub mod header;
pub mod subject;
pub mod symbol;

pub use consumer::Consumer;
pub use subject::{
    Channel, Filter, Stream, Subject, SubjectError, SubjectErrorKind, SymbolSubjects, Venue,
};
pub use symbol::{MAX_SYMBOL_LEN, Symbol, SymbolError, SymbolErrorKind};
