//! The streams' health, checked against the bus itself: TRADE and RECORD present, what
//! TRADE stored compared with what the daemon published (the bus's own losses: a stream
//! without a leader, an ingest limit, a stream that discards), and how far behind TRADE
//! RECORD's sourcing is in time (past TRADE's max_age, RECORD loses data).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, stream::Info};
use metrics::gauge;
use sequex_subjects::{Stream, header};
use tokio_util::sync::CancellationToken;

use crate::Health;
use crate::bus::{self, BusError};
use crate::telemetry::names;

/// RECORD's sourcing lag, as a share of TRADE's max_age, past which a warning is logged.
const LAG_WARNING: f64 = 0.6;

/// How soon a missing TRADE is looked at again: every message until it is back is dropped,
/// and `sequex-streams watch` recreates it within milliseconds of a server restart.
const MISSING_RECHECK: Duration = Duration::from_millis(200);

/// Watches TRADE and RECORD every `interval` (and at once when NATS comes back; more often
/// while TRADE is missing) until shutdown: readiness follows TRADE's presence; the loss estimate and RECORD's lag are
/// exported and logged. A check that gets no answer says nothing about the stream: the
/// last known state stands.
pub(crate) async fn watch_streams(
    js: jetstream::Context,
    url: String,
    health: Arc<Health>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut present = [true, true];
    let mut accounting = LossAccounting::default();
    health.set_watched();
    loop {
        let mut infos = [None, None];
        for (i, stream) in Stream::ALL.into_iter().enumerate() {
            let info = match bus::stream_info(&js, stream, &url).await {
                Ok(info) => Some(info),
                Err(BusError::StreamMissing { .. }) => None,
                Err(error) => {
                    tracing::warn!(%stream, %error, "stream check got no answer; keeping the last known state");
                    continue;
                }
            };
            let now_present = info.is_some();
            gauge!(names::STREAM_PRESENT, "stream" => stream.name())
                .set(f64::from(u8::from(now_present)));
            if stream == Stream::Trade {
                health.set_trade_stream(now_present);
            }
            if now_present != present[i] {
                if now_present {
                    tracing::info!(%stream, "stream is back");
                } else if stream == Stream::Trade {
                    tracing::error!(%stream, "stream missing: messages are dropped and counted until it is back; `sequex-streams watch` recreates it (or `nats stream add --config configs/stream_trade.json`)");
                } else {
                    tracing::error!(%stream, "stream missing: nothing is being recorded; `sequex-streams watch` recreates it (or `nats stream add --config configs/stream_record.json`)");
                }
                present[i] = now_present;
            }
            if let Some(info) = &info {
                gauge!(names::STREAM_LAST_SEQ, "stream" => stream.name())
                    .set(info.state.last_sequence as f64);
                gauge!(names::STREAM_MESSAGES, "stream" => stream.name())
                    .set(info.state.messages as f64);
                if let Some(source) = info.sources.first() {
                    gauge!(names::STREAM_SOURCE_LAG, "stream" => stream.name())
                        .set(source.lag as f64);
                }
            }
            infos[i] = info;
        }
        let [trade, record] = infos;
        if let Some(trade) = &trade {
            accounting.sample(bus::published(), trade);
        }
        if let (Some(trade), Some(record)) = (&trade, &record) {
            record_lag(&js, trade, record).await;
        }
        let next = if present[0] {
            interval
        } else {
            MISSING_RECHECK
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(next) => {}
            () = health.recheck_requested() => {}
        }
    }
}

/// A running estimate of the messages the bus lost: what this process published minus
/// what TRADE stored, counted from the first look at each TRADE (a recreated TRADE starts a
/// new count; the old one is kept). It assumes this daemon is TRADE's only publisher, or
/// that the others publish the same events (redundant daemons, de-duplicated by TRADE);
/// other publishers hide losses rather than invent them.
#[derive(Debug, Default)]
struct LossAccounting {
    /// Published and TRADE's last sequence when this TRADE was first seen, and its
    /// creation time.
    base: Option<(u64, u64, time::OffsetDateTime)>,
    /// Losses counted against earlier TRADEs.
    carried: u64,
    current: u64,
}

impl LossAccounting {
    fn sample(&mut self, published: u64, trade: &Info) {
        let stored = trade.state.last_sequence;
        match self.base {
            Some((base_published, base_stored, created)) if created == trade.created => {
                let sent = published.saturating_sub(base_published);
                let kept = stored.saturating_sub(base_stored);
                let estimate = sent.saturating_sub(kept);
                if estimate > self.current + 100 {
                    tracing::warn!(
                        lost = estimate - self.current,
                        total = self.carried + estimate,
                        "TRADE stored fewer messages than were published (no leader, ingest limit or discard); estimate in {}",
                        names::BUS_LOST
                    );
                }
                self.current = estimate;
            }
            _ => {
                self.carried += self.current;
                self.current = 0;
                self.base = Some((published, stored, trade.created));
            }
        }
        gauge!(names::BUS_LOST).set((self.carried + self.current) as f64);
    }
}

/// RECORD's sourcing lag in time: the age of the oldest TRADE message RECORD does not hold
/// yet. Logged when it nears TRADE's max_age, past which RECORD loses data.
async fn record_lag(js: &jetstream::Context, trade: &Info, record: &Info) {
    let Some(sourced) = last_sourced(js, record).await else {
        return;
    };
    let next = sourced + 1;
    let lag = if next > trade.state.last_sequence {
        Duration::ZERO
    } else {
        let oldest = next.max(trade.state.first_sequence);
        let Ok(stream) = js.get_stream_no_info(Stream::Trade.name()).await else {
            return;
        };
        match stream.get_raw_message(oldest).await {
            Ok(message) => {
                let age = time::OffsetDateTime::now_utc() - message.time;
                Duration::try_from(age).unwrap_or_default()
            }
            Err(_) => return,
        }
    };
    gauge!(names::STREAM_SOURCE_LAG_SECONDS, "stream" => Stream::Record.name())
        .set(lag.as_secs_f64());
    let max_age = trade.config.max_age;
    if next < trade.state.first_sequence {
        tracing::error!(
            missed = trade.state.first_sequence - next,
            "RECORD's sourcing fell behind TRADE's max_age: TRADE messages expired before RECORD copied them"
        );
    } else if !max_age.is_zero() && lag.as_secs_f64() > LAG_WARNING * max_age.as_secs_f64() {
        tracing::warn!(
            ?lag,
            ?max_age,
            "RECORD's sourcing lags TRADE by over {:.0}% of TRADE's max_age; past it RECORD loses data",
            LAG_WARNING * 100.0
        );
    }
}

/// The last TRADE sequence RECORD holds, from its last message's `Nats-Stream-Source`.
async fn last_sourced(js: &jetstream::Context, record: &Info) -> Option<u64> {
    if record.state.last_sequence == 0 {
        return None;
    }
    let stream = js.get_stream_no_info(Stream::Record.name()).await.ok()?;
    let message = stream
        .get_raw_message(record.state.last_sequence)
        .await
        .ok()?;
    let value = message.headers.get(header::STREAM_SOURCE)?;
    header::parse_stream_source(value.as_str()).map(|(_, seq)| seq)
}
