//! Liveness and readiness, as `/healthz` and `/readyz` report them.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use metrics::gauge;

use crate::telemetry::names;

/// What readiness is made of: NATS connected, TRADE present, every feed live. The same
/// state says whether a message may be published at all.
#[derive(Debug, Default)]
pub(crate) struct Health {
    nats_connected: AtomicBool,
    trade_stream: AtomicBool,
    feeds_expected: AtomicUsize,
    feeds_live: AtomicUsize,
    /// Lost NATS connections so far: a feed that sees it change rewinds its streams to
    /// what NATS confirmed, since what was in flight may be gone.
    disconnects: AtomicU64,
    /// Whether a stream watcher confirms TRADE after each reconnect.
    watched: AtomicBool,
    /// Asks the stream watcher to check now (NATS is back).
    recheck: tokio::sync::Notify,
    /// Round trips to NATS sent, and the last one that returned (see `sequence`).
    round_trips_requested: AtomicU64,
    round_trips_confirmed: AtomicU64,
}

impl Health {
    /// Follows the NATS client's connection events.
    pub(crate) fn nats_event(&self, event: async_nats::Event) {
        match event {
            async_nats::Event::Connected => {
                self.set_nats_connected(true);
                if self.watched.load(Ordering::Relaxed) {
                    // The server may be a new one without TRADE: publish only once the
                    // watcher has seen it.
                    self.recheck.notify_one();
                } else {
                    self.set_trade_stream(true);
                }
            }
            async_nats::Event::Disconnected | async_nats::Event::Closed => {
                tracing::warn!(%event, "NATS connection lost; messages are dropped and counted until it is back and TRADE is confirmed, then flagged with Sequex-Gap");
                self.disconnects.fetch_add(1, Ordering::Relaxed);
                self.set_nats_connected(false);
                if self.watched.load(Ordering::Relaxed) {
                    self.set_trade_stream(false);
                }
            }
            other => tracing::warn!(event = %other, "NATS client event"),
        }
    }

    /// A stream watcher confirms TRADE from now on.
    pub(crate) fn set_watched(&self) {
        self.watched.store(true, Ordering::Relaxed);
    }

    /// Resolves when the watcher should check at once.
    pub(crate) async fn recheck_requested(&self) {
        self.recheck.notified().await;
    }

    /// Whether a message handed to NATS now can reach TRADE: connected, TRADE confirmed.
    #[inline(always)]
    pub(crate) fn publishable(&self) -> bool {
        self.nats_connected.load(Ordering::Relaxed) && self.trade_stream.load(Ordering::Relaxed)
    }

    /// A round trip to NATS is being sent.
    pub(crate) fn round_trip_requested(&self) -> u64 {
        self.round_trips_requested.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Round trip `n` returned.
    pub(crate) fn round_trip_confirmed(&self, n: u64) {
        self.round_trips_confirmed.store(n, Ordering::Relaxed);
    }

    /// The last round trip requested and the last confirmed.
    #[inline(always)]
    pub(crate) fn round_trips(&self) -> (u64, u64) {
        (
            self.round_trips_requested.load(Ordering::Relaxed),
            self.round_trips_confirmed.load(Ordering::Relaxed),
        )
    }

    /// How many times the NATS connection was lost.
    #[inline(always)]
    pub(crate) fn disconnects(&self) -> u64 {
        self.disconnects.load(Ordering::Relaxed)
    }

    /// Sets whether NATS is connected.
    pub(crate) fn set_nats_connected(&self, up: bool) {
        self.nats_connected.store(up, Ordering::Relaxed);
        gauge!(names::NATS_CONNECTED).set(f64::from(u8::from(up)));
    }

    /// Sets whether TRADE exists.
    pub(crate) fn set_trade_stream(&self, present: bool) {
        self.trade_stream.store(present, Ordering::Relaxed);
    }

    /// How many feeds readiness waits for.
    pub(crate) fn expect_feeds(&self, n: usize) {
        self.feeds_expected.store(n, Ordering::Relaxed);
    }

    /// A feed went live (`true`) or down (`false`).
    pub(crate) fn feed_live(&self, live: bool) {
        if live {
            self.feeds_live.fetch_add(1, Ordering::Relaxed);
        } else {
            self.feeds_live.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// `Ok` when ready, else what is missing.
    pub(crate) fn readiness(&self) -> Result<(), String> {
        let mut missing = Vec::new();
        if !self.nats_connected.load(Ordering::Relaxed) {
            missing.push("NATS not connected".to_string());
        }
        if !self.trade_stream.load(Ordering::Relaxed) {
            missing.push("stream TRADE not confirmed".to_string());
        }
        let (live, expected) = (
            self.feeds_live.load(Ordering::Relaxed),
            self.feeds_expected.load(Ordering::Relaxed),
        );
        if expected == 0 || live < expected {
            missing.push(format!("{live} of {expected} websocket feeds live"));
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing.join("; "))
        }
    }
}
