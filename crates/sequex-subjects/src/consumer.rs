//! The durable consumers shipped in `configs/consumer_*.json`.

use crate::subject::Stream;

/// A durable consumer of the Sequex bus.
///
/// ```
/// use sequex_subjects::{Consumer, Stream};
///
/// assert_eq!(Consumer::TradePubsub.name(), "TRADE_PUBSUB");
/// assert_eq!(Consumer::Record.stream(), Stream::Record);
/// assert_eq!(Consumer::TradePubsub.deliver_subject(), Some("sequex.deliver.TRADE_PUBSUB"));
/// assert_eq!(Consumer::TradeWorkQueue.deliver_subject(), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Consumer {
    /// `TRADE_PUBSUB`: push, new messages only, no acks; every subscriber of its deliver
    /// subject sees every message.
    TradePubsub,
    /// `TRADE_WORK_QUEUE`: pull, shared by workers, each message to one worker, explicit ack.
    TradeWorkQueue,
    /// `RECORD_CONSUMER`: pull over everything RECORD holds, explicit ack.
    Record,
}

impl Consumer {
    /// Every consumer.
    pub const ALL: [Consumer; 3] = [
        Consumer::TradePubsub,
        Consumer::TradeWorkQueue,
        Consumer::Record,
    ];

    /// The durable name.
    ///
    /// ```
    /// # use sequex_subjects::Consumer;
    /// assert_eq!(Consumer::Record.name(), "RECORD_CONSUMER");
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            Consumer::TradePubsub => "TRADE_PUBSUB",
            Consumer::TradeWorkQueue => "TRADE_WORK_QUEUE",
            Consumer::Record => "RECORD_CONSUMER",
        }
    }

    /// The stream the consumer reads.
    ///
    /// ```
    /// # use sequex_subjects::{Consumer, Stream};
    /// assert_eq!(Consumer::TradeWorkQueue.stream(), Stream::Trade);
    /// ```
    pub const fn stream(self) -> Stream {
        match self {
            Consumer::TradePubsub | Consumer::TradeWorkQueue => Stream::Trade,
            Consumer::Record => Stream::Record,
        }
    }

    /// Where a push consumer delivers (subscribe here); `None` for pull consumers. Outside
    /// every stream's subjects, so deliveries are never captured again.
    ///
    /// ```
    /// # use sequex_subjects::Consumer;
    /// assert!(Consumer::Record.deliver_subject().is_none());
    /// ```
    pub const fn deliver_subject(self) -> Option<&'static str> {
        match self {
            Consumer::TradePubsub => Some("sequex.deliver.TRADE_PUBSUB"),
            Consumer::TradeWorkQueue | Consumer::Record => None,
        }
    }
}
