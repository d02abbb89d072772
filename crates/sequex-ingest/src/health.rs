//! Liveness and readiness, as `/healthz` and `/readyz` report them.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use metrics::gauge;

use crate::telemetry::names;

/// What readiness is made of: NATS connected, TRADE present, every feed live.
#[derive(Debug, Default)]
pub(crate) struct Health {
    nats_connected: AtomicBool,
    trade_stream: AtomicBool,
    feeds_expected: AtomicUsize,
    feeds_live: AtomicUsize,
}

impl Health {
    /// Follows the NATS client's connection events.
    pub(crate) fn nats_event(&self, event: async_nats::Event) {
        match event {
            async_nats::Event::Connected => self.set_nats_connected(true),
            async_nats::Event::Disconnected | async_nats::Event::Closed => {
                tracing::warn!(%event, "NATS connection lost; publishes queue until --publish-queue is full, then drop");
                self.set_nats_connected(false);
            }
            other => tracing::warn!(event = %other, "NATS client event"),
        }
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
