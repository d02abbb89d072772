//! One websocket connection to a venue, kept alive: connect (within the venue's
//! connection-rate limit), read frames and hand them to the router and publisher, answer
//! pings, and reconnect with backoff when the socket fails, goes silent, is closed, or
//! is about to be closed (shutdown notice, 24 h lifetime).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use crate::Health;
use crate::bus::{Backoff, Publisher};
use crate::route::{Routed, Router};
use crate::telemetry::{FeedTelemetry, ReconnectReason, unix_nanos};
use crate::venue::{FrameError, Venue};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Reconnect this long before the venue's lifetime limit cuts the connection.
const LIFETIME_MARGIN: Duration = Duration::from_secs(10 * 60);
/// A connection that lived this long resets the backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);
/// The websocket layer's own limit; `--max-frame-bytes` (lower) skips frames without
/// dropping the connection, this only bounds memory.
const WS_MAX_MESSAGE: usize = 64 << 20;

/// Everything one feed needs.
#[derive(Debug)]
pub struct Feed<V> {
    /// The connect URL (streams included).
    pub url: String,
    /// Its routes.
    pub router: Router<V>,
    /// Its publisher.
    pub publisher: Publisher,
    /// Its metrics.
    pub telemetry: FeedTelemetry,
    /// Shared readiness.
    pub health: Arc<Health>,
    /// The venue's connection-rate limit, shared by every feed.
    pub limiter: Arc<ConnectLimiter>,
    /// Reconnect after this long without any frame.
    pub stale_after: Duration,
    /// Skip frames larger than this.
    pub max_frame_bytes: usize,
}

impl<V: Venue> Feed<V> {
    /// Runs until `shutdown`.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let config = WebSocketConfig::default()
            .max_message_size(Some(WS_MAX_MESSAGE))
            .max_frame_size(Some(WS_MAX_MESSAGE));
        loop {
            let connect = async {
                self.limiter.acquire().await;
                tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    tokio_tungstenite::connect_async_with_config(
                        self.url.as_str(),
                        Some(config),
                        true,
                    ),
                )
                .await
            };
            let connected = tokio::select! {
                () = shutdown.cancelled() => return,
                result = connect => result,
            };
            let socket = match connected {
                Ok(Ok((socket, _))) => socket,
                failed => {
                    let detail = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => "timed out".to_string(),
                    };
                    self.telemetry
                        .disconnected(ReconnectReason::ConnectFailed, &detail, false);
                    if sleep_or_shutdown(backoff.next_delay(), &shutdown).await {
                        return;
                    }
                    continue;
                }
            };
            let since = Instant::now();
            self.health.feed_live(true);
            self.telemetry.connected(self.router.streams().count());
            let outcome = self.pump(socket, &shutdown).await;
            self.health.feed_live(false);
            let Some((reason, detail)) = outcome else {
                return;
            };
            self.telemetry.disconnected(reason, &detail, true);
            if reason.is_planned() || since.elapsed() > HEALTHY_AFTER {
                backoff.reset();
            }
            if !reason.is_planned() && sleep_or_shutdown(backoff.next_delay(), &shutdown).await {
                return;
            }
        }
    }

    /// Reads until the connection must be replaced (the reason) or shutdown (`None`).
    async fn pump(
        &mut self,
        mut socket: Socket,
        shutdown: &CancellationToken,
    ) -> Option<(ReconnectReason, String)> {
        let lifetime = tokio::time::sleep(V::CONNECTION_LIFETIME.saturating_sub(LIFETIME_MARGIN));
        tokio::pin!(lifetime);
        // Checking a timestamp on a coarse tick costs less per frame than re-arming a timer.
        let mut stale_check = tokio::time::interval(self.stale_after / 4);
        let mut last_frame = Instant::now();
        let outcome = loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break None,
                message = socket.next() => {
                    last_frame = Instant::now();
                    match message {
                        Some(Ok(Message::Text(text))) => {
                            if self.on_text(Bytes::from(text), last_frame) {
                                break Some((ReconnectReason::ServerShutdown, String::new()));
                            }
                            // One read can hold hundreds of frames; spending budget per frame
                            // makes this task yield often enough for the NATS writer (on the
                            // same thread) to drain the publish queue.
                            tokio::task::consume_budget().await;
                        }
                        Some(Ok(Message::Binary(data))) => {
                            self.telemetry.frame(data.len());
                            self.telemetry.frame_error(FrameError::Binary, &data);
                        }
                        // tungstenite queues the pong itself and sends it with the next read.
                        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                        Some(Ok(Message::Close(frame))) => {
                            break Some((ReconnectReason::Closed, format!("{frame:?}")));
                        }
                        Some(Err(e)) => break Some((ReconnectReason::Error, e.to_string())),
                        None => break Some((ReconnectReason::Closed, "stream ended".into())),
                    }
                }
                _ = stale_check.tick() => {
                    if last_frame.elapsed() > self.stale_after {
                        break Some((ReconnectReason::Stale, format!("nothing for {:?}", self.stale_after)));
                    }
                }
                () = &mut lifetime => break Some((ReconnectReason::Lifetime, String::new())),
            }
        };
        // Best effort: a polite close, bounded so that shutdown stays fast.
        let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(None)).await;
        outcome
    }

    /// The hot path. Returns `true` when the venue announced a shutdown.
    fn on_text(&mut self, frame: Bytes, received: Instant) -> bool {
        self.telemetry.frame(frame.len());
        if frame.len() > self.max_frame_bytes {
            self.telemetry.frame_error(FrameError::Oversized, &frame);
            return false;
        }
        let received_ns = unix_nanos();
        match self.router.route(&frame, received_ns) {
            Ok(Routed::Message(routed)) => {
                if let Some((symbol, missing)) = &routed.gap {
                    self.telemetry.gap(symbol, routed.channel, missing);
                }
                let (channel, event_time_ms) = (routed.channel, routed.event_time_ms);
                match self.publisher.try_publish(routed.message) {
                    Ok(()) => self.telemetry.published(
                        channel,
                        event_time_ms,
                        received_ns,
                        received.into_std(),
                    ),
                    Err(reason) => self.telemetry.dropped(reason),
                }
                false
            }
            Ok(Routed::ServerShutdown) => true,
            Ok(Routed::Ignored) => false,
            Err(error) => {
                self.telemetry.frame_error(error, &frame);
                false
            }
        }
    }
}

/// Sleeps; `true` if shutdown came first.
async fn sleep_or_shutdown(delay: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = shutdown.cancelled() => true,
        () = tokio::time::sleep(delay) => false,
    }
}

/// At most `max` connection attempts per `window`, across every feed of a venue.
#[derive(Debug)]
pub struct ConnectLimiter {
    max: usize,
    window: Duration,
    attempts: Mutex<VecDeque<Instant>>,
}

impl ConnectLimiter {
    /// A limiter for `max` attempts per `window`.
    pub fn new(max: usize, window: Duration) -> Self {
        ConnectLimiter {
            max,
            window,
            attempts: Mutex::new(VecDeque::with_capacity(max)),
        }
    }

    /// Waits for a slot and takes it.
    pub async fn acquire(&self) {
        loop {
            let wait = {
                // Never held across an await; poisoning would need a panic in this block.
                let mut attempts = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                while attempts
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= self.window)
                {
                    attempts.pop_front();
                }
                if attempts.len() < self.max {
                    attempts.push_back(now);
                    return;
                }
                self.window - now.duration_since(attempts[0])
            };
            tracing::warn!(?wait, "venue connection-rate limit reached; waiting");
            tokio::time::sleep(wait).await;
        }
    }
}
