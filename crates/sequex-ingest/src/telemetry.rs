//! Every metric name and every log line about data lives here; call sites say what
//! happened (`telemetry.published(channel, received)`), not how it is recorded.
//!
//! Labels are bounded: `venue`, `channel`, `reason`, `stream`. Per-message events log at
//! `trace`; a lost or skipped message is counted every time and logged at most once a
//! second per feed, so a flood of bad frames cannot flood the log.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};
use sequex_subjects::{Channel, Symbol};

use crate::venue::FrameError;

/// Metric names, `sequex_<noun>_<unit>`.
pub mod names {
    /// Websocket frames read (text and binary), per venue.
    pub const FRAMES: &str = "sequex_frames_total";
    /// Bytes of those frames.
    pub const FRAME_BYTES: &str = "sequex_frame_bytes_total";
    /// Messages handed to the NATS client, per venue and channel.
    pub const PUBLISHED: &str = "sequex_published_messages_total";
    /// Messages lost before NATS, per venue and `reason` (`queue_full`, `nats_closed`,
    /// `rejected`).
    pub const DROPPED: &str = "sequex_dropped_messages_total";
    /// Frames skipped as unreadable, per venue and `reason` (see `FrameError::reason`).
    pub const FRAME_ERRORS: &str = "sequex_frame_errors_total";
    /// Events skipped because they were already published (connection overlap).
    pub const DUPLICATES: &str = "sequex_duplicate_events_total";
    /// Websocket reconnects, per venue and `reason`.
    pub const RECONNECTS: &str = "sequex_reconnects_total";
    /// Sequence gaps (missing trade or update ids), per venue and channel.
    pub const GAPS: &str = "sequex_sequence_gaps_total";
    /// Exchange event time to local receive time.
    pub const EXCHANGE_TO_RECEIVE: &str = "sequex_exchange_to_receive_seconds";
    /// Frame received to message handed to the NATS client.
    pub const RECEIVE_TO_PUBLISH: &str = "sequex_receive_to_publish_seconds";
    /// Websocket connections currently live, per venue.
    pub const FEEDS_LIVE: &str = "sequex_feeds_live";
    /// 1 while the NATS connection is up.
    pub const NATS_CONNECTED: &str = "sequex_nats_connected";
    /// 1 while the stream exists, per `stream`.
    pub const STREAM_PRESENT: &str = "sequex_stream_present";
    /// Messages a sourcing stream is behind its source, per `stream`.
    pub const STREAM_SOURCE_LAG: &str = "sequex_stream_source_lag_messages";
}

/// Installs the Prometheus recorder; the handle renders `/metrics`.
pub fn install_recorder() -> Result<PrometheusHandle, BuildError> {
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
        "Sequence gaps: missing trade or depth update ids"
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

/// Why a message was lost before reaching NATS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The publish queue was full (NATS slow or disconnected).
    QueueFull,
    /// The NATS client has shut down.
    NatsClosed,
    /// The client refused the message (over the server's max payload).
    Rejected,
}

impl DropReason {
    fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::NatsClosed => "nats_closed",
            DropReason::Rejected => "rejected",
        }
    }
}

/// Why a websocket connection was replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReconnectReason {
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
    /// The bounded `reason` label.
    pub fn as_str(self) -> &'static str {
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
    pub fn is_planned(self) -> bool {
        matches!(
            self,
            ReconnectReason::ServerShutdown | ReconnectReason::Lifetime
        )
    }
}

/// Wall-clock ns since the Unix epoch.
pub fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// One feed's (websocket connection's) metric handles, registered once so that the hot
/// path only increments.
#[derive(Debug)]
pub struct FeedTelemetry {
    venue: &'static str,
    connection: usize,
    frames: Counter,
    frame_bytes: Counter,
    published: [Counter; 2],
    duplicates: Counter,
    gaps: [Counter; 2],
    exchange_to_receive: Histogram,
    receive_to_publish: Histogram,
    live: Gauge,
    last_warning: Option<Instant>,
    suppressed: u64,
}

impl FeedTelemetry {
    /// Registers the handles of connection number `connection` of `venue`.
    pub fn new(venue: &'static str, connection: usize) -> Self {
        let per_channel = |name: &'static str| {
            Channel::ALL.map(|c| counter!(name, "venue" => venue, "channel" => c.as_str()))
        };
        FeedTelemetry {
            venue,
            connection,
            frames: counter!(names::FRAMES, "venue" => venue),
            frame_bytes: counter!(names::FRAME_BYTES, "venue" => venue),
            published: per_channel(names::PUBLISHED),
            duplicates: counter!(names::DUPLICATES, "venue" => venue),
            gaps: per_channel(names::GAPS),
            exchange_to_receive: histogram!(names::EXCHANGE_TO_RECEIVE, "venue" => venue),
            receive_to_publish: histogram!(names::RECEIVE_TO_PUBLISH, "venue" => venue),
            live: gauge!(names::FEEDS_LIVE, "venue" => venue),
            last_warning: None,
            suppressed: 0,
        }
    }

    /// A frame arrived.
    pub fn frame(&self, len: usize) {
        self.frames.increment(1);
        self.frame_bytes.increment(len as u64);
    }

    /// A message was handed to NATS.
    pub fn published(
        &self,
        channel: Channel,
        event_time_ms: u64,
        received_ns: u64,
        received: Instant,
    ) {
        self.published[channel as usize].increment(1);
        let exchange_ns = event_time_ms.saturating_mul(1_000_000);
        self.exchange_to_receive
            .record(received_ns.saturating_sub(exchange_ns) as f64 * 1e-9);
        self.receive_to_publish
            .record(received.elapsed().as_secs_f64());
        tracing::trace!(venue = self.venue, %channel, "published");
    }

    /// An event was skipped as already published.
    pub fn duplicate(&self) {
        self.duplicates.increment(1);
    }

    /// A message was lost before NATS.
    pub fn dropped(&mut self, reason: DropReason) {
        counter!(names::DROPPED, "venue" => self.venue, "reason" => reason.as_str()).increment(1);
        if let Some(suppressed) = self.should_log() {
            tracing::error!(
                venue = self.venue,
                connection = self.connection,
                reason = reason.as_str(),
                suppressed,
                "message dropped before NATS (counted in {})",
                names::DROPPED
            );
        }
    }

    /// A frame was skipped as unreadable.
    pub fn frame_error(&mut self, error: FrameError, frame: &[u8]) {
        counter!(names::FRAME_ERRORS, "venue" => self.venue, "reason" => error.reason())
            .increment(1);
        if let Some(suppressed) = self.should_log() {
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

    /// Ids are missing before this message.
    pub fn gap(&self, symbol: &Symbol, channel: Channel, missing: &std::ops::Range<u64>) {
        self.gaps[channel as usize].increment(1);
        tracing::warn!(
            venue = self.venue,
            %symbol,
            %channel,
            first_missing = missing.start,
            last_missing = missing.end - 1,
            "sequence gap: ids missing from the exchange feed; flagged with Sequex-Gap"
        );
    }

    /// The connection is up.
    pub fn connected(&self, streams: usize) {
        self.live.increment(1.0);
        tracing::info!(
            venue = self.venue,
            connection = self.connection,
            streams,
            "websocket connected"
        );
    }

    /// The connection went down and will be replaced.
    pub fn disconnected(&self, reason: ReconnectReason, detail: &str, was_live: bool) {
        if was_live {
            self.live.decrement(1.0);
        }
        counter!(names::RECONNECTS, "venue" => self.venue, "reason" => reason.as_str())
            .increment(1);
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
                detail,
                "websocket down; reconnecting"
            );
        }
    }

    /// At most one log line a second; returns how many were suppressed before this one.
    fn should_log(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last_warning {
            Some(last) if now.duration_since(last) < Duration::from_secs(1) => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last_warning = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}
