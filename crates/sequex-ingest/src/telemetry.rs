//! Every metric name and every log line about data lives here; call sites say what
//! happened (`telemetry.published(stream, received)`), not how it is recorded.
//!
//! Labels are bounded: `venue`, `channel`, `reason`, `stream`. Per-message events log at
//! `trace`; a lost or skipped message is counted every time and logged at most once a
//! second per feed, so a flood of bad frames cannot flood the log.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use sequex_subjects::{Channel, Symbol};

use crate::route::StreamSpec;
use crate::venue::FrameError;

/// Metric names, `sequex_<noun>_<unit>`.
pub(crate) mod names {
    /// Websocket frames read (text and binary), per venue.
    pub(crate) const FRAMES: &str = "sequex_frames_total";
    /// Bytes of those frames.
    pub(crate) const FRAME_BYTES: &str = "sequex_frame_bytes_total";
    /// Messages handed to the NATS client, per venue and channel.
    pub(crate) const PUBLISHED: &str = "sequex_published_messages_total";
    /// Messages lost before NATS, per venue and `reason` (`queue_full`, `queue_bytes`,
    /// `no_stream`, `nats_closed`, `rejected`).
    pub(crate) const DROPPED: &str = "sequex_dropped_messages_total";
    /// Frames skipped as unreadable, per venue and `reason` (see `FrameError::reason`).
    pub(crate) const FRAME_ERRORS: &str = "sequex_frame_errors_total";
    /// Events skipped because they were already published (connection overlap).
    pub(crate) const DUPLICATES: &str = "sequex_duplicate_events_total";
    /// Websocket reconnects, per venue and `reason`.
    pub(crate) const RECONNECTS: &str = "sequex_reconnects_total";
    /// Sequence gaps (missing trade or update ids) flagged on a published message, per
    /// venue and channel.
    pub(crate) const GAPS: &str = "sequex_sequence_gaps_total";
    /// Venue-side sequence resets (ids started again lower), per venue and channel.
    pub(crate) const RESETS: &str = "sequex_sequence_resets_total";
    /// Events skipped because their ids were out of line with their stream (an outlier,
    /// or the first event of a reset), per venue and channel.
    pub(crate) const OUT_OF_SEQUENCE: &str = "sequex_out_of_sequence_events_total";
    /// Payload bytes queued for NATS (bounded by `--publish-queue-bytes`).
    pub(crate) const PUBLISH_QUEUE_BYTES: &str = "sequex_publish_queue_bytes";
    /// Trades fetched from the venue's REST API and published to fill a gap, per venue.
    pub(crate) const BACKFILL_TRADES: &str = "sequex_backfill_trades_total";
    /// Trade gaps (or parts of them) that could not be filled, per venue.
    pub(crate) const BACKFILL_FAILURES: &str = "sequex_backfill_failures_total";
    /// Log lines lost because the log writer was behind (never blocks the daemon).
    pub(crate) const LOG_LINES_DROPPED: &str = "sequex_log_lines_dropped_total";
    /// Exchange event time to local receive time.
    pub(crate) const EXCHANGE_TO_RECEIVE: &str = "sequex_exchange_to_receive_seconds";
    /// Frame received to message handed to the NATS client.
    pub(crate) const RECEIVE_TO_PUBLISH: &str = "sequex_receive_to_publish_seconds";
    /// Websocket connections currently live, per venue.
    pub(crate) const FEEDS_LIVE: &str = "sequex_feeds_live";
    /// 1 while the NATS connection is up.
    pub(crate) const NATS_CONNECTED: &str = "sequex_nats_connected";
    /// 1 while the stream exists, per `stream`.
    pub(crate) const STREAM_PRESENT: &str = "sequex_stream_present";
    /// Messages a sourcing stream is behind its source, per `stream`.
    pub(crate) const STREAM_SOURCE_LAG: &str = "sequex_stream_source_lag_messages";
    /// How old the oldest message a sourcing stream has not copied yet is, per `stream`.
    pub(crate) const STREAM_SOURCE_LAG_SECONDS: &str = "sequex_stream_source_lag_seconds";
    /// A stream's last sequence, per `stream`.
    pub(crate) const STREAM_LAST_SEQ: &str = "sequex_stream_last_seq";
    /// Messages a stream holds, per `stream`.
    pub(crate) const STREAM_MESSAGES: &str = "sequex_stream_messages";
    /// Running estimate of messages published but not stored by TRADE.
    pub(crate) const BUS_LOST: &str = "sequex_bus_lost_messages_estimate";
}

/// Installs the Prometheus recorder; the handle renders `/metrics`.
pub(crate) fn install_recorder() -> Result<PrometheusHandle, BuildError> {
    // 10 µs .. 10 s: the daemon's own latency sits in the lowest buckets, the exchange's
    // (and clock skew) in the higher ones.
    const BUCKETS: [f64; 16] = [
        0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
        0.05, 0.1, 0.25, 1.0, 10.0,
    ];
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)?
        .install_recorder()?;
    describe();
    Ok(handle)
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(names::FRAMES, "Websocket frames read");
    describe_counter!(names::FRAME_BYTES, "Bytes of websocket frames read");
    describe_counter!(names::PUBLISHED, "Messages handed to the NATS client");
    describe_counter!(names::DROPPED, "Messages lost before NATS, by reason");
    describe_counter!(
        names::FRAME_ERRORS,
        "Frames skipped as unreadable, by reason"
    );
    describe_counter!(names::DUPLICATES, "Events skipped as already published");
    describe_counter!(names::RECONNECTS, "Websocket reconnects, by reason");
    describe_counter!(
        names::GAPS,
        "Sequence gaps flagged with Sequex-Gap: missing trade or depth update ids"
    );
    describe_counter!(
        names::RESETS,
        "Venue-side sequence resets, flagged with Sequex-Reset"
    );
    describe_counter!(
        names::OUT_OF_SEQUENCE,
        "Events skipped as out of line with their stream's ids"
    );
    describe_gauge!(names::PUBLISH_QUEUE_BYTES, "Payload bytes queued for NATS");
    describe_gauge!(
        names::STREAM_SOURCE_LAG_SECONDS,
        "Age of the oldest message a sourcing stream has not copied yet"
    );
    describe_gauge!(names::STREAM_LAST_SEQ, "A stream's last sequence");
    describe_gauge!(names::STREAM_MESSAGES, "Messages a stream holds");
    describe_gauge!(
        names::BUS_LOST,
        "Running estimate of messages published but not stored by TRADE"
    );
    describe_counter!(
        names::BACKFILL_TRADES,
        "Trades fetched from REST to fill gaps and published"
    );
    describe_counter!(
        names::BACKFILL_FAILURES,
        "Trade gaps (or parts) that could not be filled from REST"
    );
    describe_counter!(
        names::LOG_LINES_DROPPED,
        "Log lines lost because the log writer was behind"
    );
    describe_histogram!(
        names::EXCHANGE_TO_RECEIVE,
        "Exchange event time to local receive"
    );
    describe_histogram!(
        names::RECEIVE_TO_PUBLISH,
        "Frame received to handed to NATS"
    );
    describe_gauge!(names::FEEDS_LIVE, "Websocket connections currently live");
    describe_gauge!(names::NATS_CONNECTED, "1 while connected to NATS");
    describe_gauge!(names::STREAM_PRESENT, "1 while the stream exists");
    describe_gauge!(
        names::STREAM_SOURCE_LAG,
        "Messages a stream's sourcing is behind"
    );
}

/// The log writer's count of lines it dropped, read when `/metrics` is rendered.
static LOG_DROPS: std::sync::OnceLock<tracing_appender::non_blocking::ErrorCounter> =
    std::sync::OnceLock::new();

/// Exports the log writer's dropped lines as [`names::LOG_LINES_DROPPED`].
pub fn count_dropped_log_lines(counter: tracing_appender::non_blocking::ErrorCounter) {
    let _ = LOG_DROPS.set(counter);
}

/// Brings the gauges that are read rather than pushed up to date; called before each
/// render of `/metrics`.
pub(crate) fn refresh() {
    gauge!(names::PUBLISH_QUEUE_BYTES).set(crate::bus::queued_bytes() as f64);
    if let Some(drops) = LOG_DROPS.get() {
        counter!(names::LOG_LINES_DROPPED).absolute(drops.dropped_lines() as u64);
    }
}

/// Logs, every `interval`, what an operator wants first: messages per second per channel,
/// and the drops, gaps and reconnects since the last line. Read from the same counters
/// `/metrics` serves, so the two never disagree.
pub(crate) async fn summarize(
    metrics: PrometheusHandle,
    interval: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    let mut last = Totals::read(&metrics.render());
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = Totals::read(&metrics.render());
        let secs = interval.as_secs_f64();
        tracing::info!(
            trade_per_s = (now.published[0] - last.published[0]) / secs,
            depth_per_s = (now.published[1] - last.published[1]) / secs,
            dropped = now.dropped - last.dropped,
            gaps = now.gaps - last.gaps,
            reconnects = now.reconnects - last.reconnects,
            frame_errors = now.frame_errors - last.frame_errors,
            period = ?interval,
            "summary"
        );
        last = now;
    }
}

/// The counters the summary line reports, summed over their labels.
#[derive(Debug, Default)]
struct Totals {
    published: [f64; 2],
    dropped: f64,
    gaps: f64,
    reconnects: f64,
    frame_errors: f64,
}

impl Totals {
    /// Reads them from the Prometheus text `/metrics` serves.
    fn read(text: &str) -> Self {
        let sum = |name: &str, label: Option<&str>| -> f64 {
            text.lines()
                .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
                .filter(|l| label.is_none_or(|want| l.contains(want)))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        Totals {
            published: Channel::ALL.map(|c| {
                sum(
                    names::PUBLISHED,
                    Some(&format!("channel=\"{}\"", c.as_str())),
                )
            }),
            dropped: sum(names::DROPPED, None),
            gaps: sum(names::GAPS, None),
            reconnects: sum(names::RECONNECTS, None),
            frame_errors: sum(names::FRAME_ERRORS, None),
        }
    }
}

/// Why a message was lost before reaching NATS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DropReason {
    /// The publish queue was full (NATS slow or disconnected).
    QueueFull,
    /// The publish queue's byte budget was used up (NATS slow or disconnected).
    QueueBytes,
    /// The NATS client has shut down.
    NatsClosed,
    /// NATS is disconnected, or TRADE is not confirmed since it reconnected.
    NoStream,
    /// The client refused the message (over the server's max payload).
    Rejected,
}

impl DropReason {
    const ALL: [DropReason; 5] = [
        DropReason::QueueFull,
        DropReason::QueueBytes,
        DropReason::NatsClosed,
        DropReason::NoStream,
        DropReason::Rejected,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::QueueBytes => "queue_bytes",
            DropReason::NatsClosed => "nats_closed",
            DropReason::NoStream => "no_stream",
            DropReason::Rejected => "rejected",
        }
    }
}

/// Why a websocket connection was replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ReconnectReason {
    /// Connecting failed.
    ConnectFailed,
    /// The socket failed.
    Error,
    /// The venue closed the connection.
    Closed,
    /// Nothing arrived for `--stale-after`.
    Stale,
    /// The venue announced a shutdown.
    ServerShutdown,
    /// The connection reached the venue's lifetime limit.
    Lifetime,
}

impl ReconnectReason {
    const ALL: [ReconnectReason; 6] = [
        ReconnectReason::ConnectFailed,
        ReconnectReason::Error,
        ReconnectReason::Closed,
        ReconnectReason::Stale,
        ReconnectReason::ServerShutdown,
        ReconnectReason::Lifetime,
    ];

    /// The bounded `reason` label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ReconnectReason::ConnectFailed => "connect_failed",
            ReconnectReason::Error => "error",
            ReconnectReason::Closed => "closed",
            ReconnectReason::Stale => "stale",
            ReconnectReason::ServerShutdown => "server_shutdown",
            ReconnectReason::Lifetime => "lifetime",
        }
    }

    /// Planned reconnects skip the backoff.
    pub(crate) fn is_planned(self) -> bool {
        matches!(
            self,
            ReconnectReason::ServerShutdown | ReconnectReason::Lifetime
        )
    }
}

/// Wall-clock ns since the Unix epoch.
pub(crate) fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// One feed's (websocket connection's) metric handles, registered once so that the hot
/// path only increments.
#[derive(Debug)]
pub(crate) struct FeedTelemetry {
    venue: &'static str,
    connection: usize,
    frames: Counter,
    frame_bytes: Counter,
    /// Per stream of the feed, in the router's order.
    published: Vec<Counter>,
    duplicates: Counter,
    gaps: [Counter; 2],
    resets: [Counter; 2],
    out_of_sequence: [Counter; 2],
    dropped: [Counter; DropReason::ALL.len()],
    frame_errors: [Counter; FrameError::REASONS.len()],
    reconnects: [Counter; ReconnectReason::ALL.len()],
    exchange_to_receive: Histogram,
    receive_to_publish: Histogram,
    live: Gauge,
    loss_log: LogLimit,
    error_log: LogLimit,
    sequence_log: LogLimit,
}

impl FeedTelemetry {
    /// Registers the handles of connection number `connection` of `venue`.
    pub(crate) fn new(venue: &'static str, connection: usize, streams: &[StreamSpec]) -> Self {
        let per_channel = |name: &'static str| {
            Channel::ALL.map(|c| counter!(name, "venue" => venue, "channel" => c.as_str()))
        };
        FeedTelemetry {
            venue,
            connection,
            frames: counter!(names::FRAMES, "venue" => venue),
            frame_bytes: counter!(names::FRAME_BYTES, "venue" => venue),
            // Per symbol: the symbols are bounded by the configuration.
            published: streams
                .iter()
                .map(|s| {
                    counter!(names::PUBLISHED, "venue" => venue, "channel" => s.channel.as_str(),
                        "symbol" => s.symbol.to_string())
                })
                .collect(),
            duplicates: counter!(names::DUPLICATES, "venue" => venue),
            gaps: per_channel(names::GAPS),
            resets: per_channel(names::RESETS),
            out_of_sequence: per_channel(names::OUT_OF_SEQUENCE),
            dropped: DropReason::ALL
                .map(|r| counter!(names::DROPPED, "venue" => venue, "reason" => r.as_str())),
            frame_errors: FrameError::REASONS
                .map(|r| counter!(names::FRAME_ERRORS, "venue" => venue, "reason" => r)),
            reconnects: ReconnectReason::ALL
                .map(|r| counter!(names::RECONNECTS, "venue" => venue, "reason" => r.as_str())),
            exchange_to_receive: histogram!(names::EXCHANGE_TO_RECEIVE, "venue" => venue),
            receive_to_publish: histogram!(names::RECEIVE_TO_PUBLISH, "venue" => venue),
            live: gauge!(names::FEEDS_LIVE, "venue" => venue),
            loss_log: LogLimit::default(),
            error_log: LogLimit::default(),
            sequence_log: LogLimit::default(),
        }
    }

    /// A frame arrived.
    pub(crate) fn frame(&self, len: usize) {
        self.frames.increment(1);
        self.frame_bytes.increment(len as u64);
    }

    /// A message was handed to NATS.
    pub(crate) fn published(
        &self,
        stream: usize,
        event_time_ms: u64,
        received_ns: u64,
        received: Instant,
    ) {
        self.published[stream].increment(1);
        let exchange_ns = event_time_ms.saturating_mul(1_000_000);
        self.exchange_to_receive
            .record(received_ns.saturating_sub(exchange_ns) as f64 * 1e-9);
        self.receive_to_publish
            .record(received.elapsed().as_secs_f64());
        tracing::trace!(venue = self.venue, stream, "published");
    }

    /// An event was skipped as already published.
    pub(crate) fn duplicate(&self) {
        self.duplicates.increment(1);
    }

    /// A message was lost before NATS.
    pub(crate) fn dropped(&mut self, reason: DropReason) {
        self.dropped[reason as usize].increment(1);
        if let Some(suppressed) = self.loss_log.allow() {
            tracing::error!(
                venue = self.venue,
                connection = self.connection,
                reason = reason.as_str(),
                suppressed,
                "message dropped before NATS (counted in {}; the next message of its stream carries Sequex-Gap)",
                names::DROPPED
            );
        }
    }

    /// A frame was skipped as unreadable.
    pub(crate) fn frame_error(&mut self, error: FrameError, frame: &[u8]) {
        self.frame_errors[error.index()].increment(1);
        if let Some(suppressed) = self.error_log.allow() {
            let head = String::from_utf8_lossy(&frame[..frame.len().min(160)]);
            tracing::warn!(
                venue = self.venue,
                connection = self.connection,
                %error,
                frame.len = frame.len(),
                frame.head = %head,
                suppressed,
                "frame skipped"
            );
        }
    }

    /// Ids are missing before this published message (flagged with `Sequex-Gap`).
    pub(crate) fn gap(
        &mut self,
        symbol: &Symbol,
        channel: Channel,
        missing: &std::ops::Range<u64>,
    ) {
        self.gaps[channel as usize].increment(1);
        if let Some(suppressed) = self.sequence_log.allow() {
            tracing::warn!(
                venue = self.venue,
                %symbol,
                %channel,
                first_missing = missing.start,
                last_missing = missing.end - 1,
                suppressed,
                "sequence gap: ids missing; flagged with Sequex-Gap"
            );
        }
    }

    /// The venue restarted this stream's ids (flagged with `Sequex-Reset`).
    pub(crate) fn reset(&mut self, symbol: &Symbol, channel: Channel, previous_last: u64) {
        self.resets[channel as usize].increment(1);
        if let Some(suppressed) = self.sequence_log.allow() {
            tracing::warn!(
                venue = self.venue,
                %symbol,
                %channel,
                previous_last,
                suppressed,
                "sequence reset: the venue started its ids again; flagged with Sequex-Reset"
            );
        }
    }

    /// An event was skipped as out of line with its stream's ids.
    pub(crate) fn out_of_sequence(&mut self, channel: Channel, frame: &[u8]) {
        self.out_of_sequence[channel as usize].increment(1);
        if let Some(suppressed) = self.sequence_log.allow() {
            let head = String::from_utf8_lossy(&frame[..frame.len().min(160)]);
            tracing::warn!(
                venue = self.venue,
                %channel,
                frame.head = %head,
                suppressed,
                "event out of sequence skipped: its ids are far from its stream's; the next event decides whether the venue reset"
            );
        }
    }

    /// The connection is up.
    pub(crate) fn connected(&self, streams: usize) {
        self.live.increment(1.0);
        tracing::info!(
            venue = self.venue,
            connection = self.connection,
            streams,
            "websocket connected"
        );
    }

    /// The connection went down and will be replaced.
    pub(crate) fn disconnected(
        &self,
        reason: ReconnectReason,
        detail: &dyn std::fmt::Display,
        was_live: bool,
    ) {
        if was_live {
            self.live.decrement(1.0);
        }
        self.reconnects[reason as usize].increment(1);
        if reason.is_planned() {
            tracing::info!(
                venue = self.venue,
                connection = self.connection,
                reason = reason.as_str(),
                "planned reconnect"
            );
        } else {
            tracing::warn!(
                venue = self.venue,
                connection = self.connection,
                reason = reason.as_str(),
                %detail,
                "websocket down; reconnecting"
            );
        }
    }
}

/// At most one log line a second of one kind, so that a storm is counted, not logged.
#[derive(Debug, Default)]
struct LogLimit {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimit {
    /// `Some(lines suppressed since the last one)` when a line may be logged now.
    fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(last) if now.duration_since(last) < Duration::from_secs(1) => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_arrays_follow_the_enums() {
        for (i, reason) in DropReason::ALL.into_iter().enumerate() {
            assert_eq!(reason as usize, i, "{reason:?}");
        }
        for (i, reason) in ReconnectReason::ALL.into_iter().enumerate() {
            assert_eq!(reason as usize, i, "{reason:?}");
        }
    }

    #[test]
    fn the_summary_reads_counters_over_their_labels() {
        let text = "sequex_published_messages_total{venue=\"binance-spot\",channel=\"trade\"} 7\n\
            sequex_published_messages_total{venue=\"binance-spot\",channel=\"depth\"} 3\n\
            sequex_dropped_messages_total{venue=\"binance-spot\",reason=\"queue_full\"} 2\n\
            sequex_dropped_messages_total{venue=\"binance-spot\",reason=\"no_stream\"} 5\n";
        let totals = Totals::read(text);
        assert_eq!(totals.published, [7.0, 3.0]);
        assert_eq!(totals.dropped, 7.0);
    }
}
