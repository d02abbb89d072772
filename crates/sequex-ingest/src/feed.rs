//! One websocket connection to a venue, kept alive: connect (within the venue's
//! connection-rate limit), read frames and hand them to the router and publisher, answer
//! pings, and reconnect with backoff when the socket fails, goes silent, is closed, or
//! is about to be closed (shutdown notice, 24 h lifetime).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use sequex_subjects::Channel;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use crate::Health;
use crate::backfill::Backfill;
use crate::bus::{Backoff, Publisher};
use crate::route::{Commit, Routed, RoutedMessage, Router};
use crate::telemetry::{DropReason, FeedTelemetry, ReconnectReason, unix_nanos};
use crate::venue::{FrameError, Venue};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Reconnect this long before the venue's lifetime limit cuts the connection.
const LIFETIME_MARGIN: Duration = Duration::from_secs(10 * 60);
/// During a planned reconnect, the old connection is read this long after the new one is
/// up, so that what it already carried is not lost.
const HANDOVER_GRACE: Duration = Duration::from_secs(1);
/// A connection that lived this long resets the backoff.
const HEALTHY_AFTER: Duration = Duration::from_secs(60);
/// The websocket layer refuses (and the connection is replaced) frames over this many
/// times `--max-frame-bytes`: it must hold a frame whole before the feed can skip it, so
/// this bounds what one oversized frame costs in memory. Frames between the two limits are
/// skipped with the connection kept.
const WS_LIMIT_FACTOR: usize = 2;

/// Everything one feed needs.
#[derive(Debug)]
pub(crate) struct Feed<V> {
    /// The connect URL (streams included).
    pub(crate) url: String,
    /// What to send on a new connection ([`Venue::subscriptions`]).
    pub(crate) subscriptions: Vec<String>,
    /// Its routes.
    pub(crate) router: Router<V>,
    /// Its publisher.
    pub(crate) publisher: Publisher,
    /// Its metrics.
    pub(crate) telemetry: FeedTelemetry,
    /// Shared readiness.
    pub(crate) health: Arc<Health>,
    /// The venue's connection-rate limit, shared by every feed.
    pub(crate) limiter: Arc<ConnectLimiter>,
    /// Reconnect after this long without any frame.
    pub(crate) stale_after: Duration,
    /// Skip frames larger than this.
    pub(crate) max_frame_bytes: usize,
    /// Where trade gaps go to be filled from the venue's REST API, if anywhere.
    pub(crate) backfill: Option<Backfill>,
    /// Whom to trust for `wss://`.
    pub(crate) tls: Arc<rustls::ClientConfig>,
    /// What this feed last saw of [`Health::disconnects`] and [`Health::round_trips`].
    pub(crate) seen: Seen,
}

/// The connection events a feed has acted on.
#[derive(Debug, Default)]
pub(crate) struct Seen {
    disconnects: u64,
    snapshot: u64,
    confirmed: u64,
}

/// Why a connection could not be made or went down.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FeedError {
    /// The websocket handshake (or the TCP or TLS under it) failed.
    #[error("connecting failed: {0}")]
    Connect(tungstenite::Error),
    /// The handshake took too long.
    #[error("connecting timed out after {CONNECT_TIMEOUT:?}")]
    ConnectTimeout,
    /// Reading failed (including a frame the websocket layer refused as too large).
    #[error("{0}")]
    Socket(tungstenite::Error),
    /// The venue closed the connection.
    #[error("closed by the venue ({0:?})")]
    Closed(Option<tungstenite::protocol::CloseFrame>),
    /// The connection ended without a close frame.
    #[error("the connection ended without a close frame")]
    Ended,
    /// Nothing arrived for `--stale-after`.
    #[error("nothing received for {0:?}")]
    Stale(Duration),
}

impl FeedError {
    fn reason(&self) -> ReconnectReason {
        match self {
            FeedError::Connect(_) | FeedError::ConnectTimeout => ReconnectReason::ConnectFailed,
            FeedError::Socket(_) => ReconnectReason::Error,
            FeedError::Closed(_) | FeedError::Ended => ReconnectReason::Closed,
            FeedError::Stale(_) => ReconnectReason::Stale,
        }
    }
}

/// How a connection ended.
enum Ended {
    /// Shutdown was requested.
    Shutdown,
    /// The connection failed; reconnect after a backoff.
    Failed(FeedError),
    /// A planned reconnect: the replacement is already connected.
    Replaced(ReconnectReason, Box<Socket>),
}

impl<V: Venue> Feed<V> {
    /// Runs until `shutdown`.
    pub(crate) async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let mut next: Option<Socket> = None;
        loop {
            let socket = match next.take() {
                Some(socket) => socket,
                None => {
                    let connected = tokio::select! {
                        () = shutdown.cancelled() => return,
                        result = self.connect() => result,
                    };
                    match connected {
                        Ok(socket) => socket,
                        Err(error) => {
                            self.telemetry.disconnected(error.reason(), &error, false);
                            if sleep_or_shutdown(backoff.next_delay(), &shutdown).await {
                                return;
                            }
                            continue;
                        }
                    }
                }
            };
            let since = Instant::now();
            let live = LiveGuard::new(self.health.clone());
            self.telemetry.connected(self.router.streams().count());
            let ended = self.pump(socket, &shutdown).await;
            drop(live);
            match ended {
                Ended::Shutdown => return,
                Ended::Replaced(reason, socket) => {
                    self.telemetry.disconnected(reason, &"replaced", true);
                    backoff.reset();
                    next = Some(*socket);
                }
                Ended::Failed(error) => {
                    self.telemetry.disconnected(error.reason(), &error, true);
                    if since.elapsed() > HEALTHY_AFTER {
                        backoff.reset();
                    }
                    if sleep_or_shutdown(backoff.next_delay(), &shutdown).await {
                        return;
                    }
                }
            }
        }
    }

    /// One connection attempt, within the venue's connection-rate limit. Owns what it
    /// needs, so that a replacement can connect while this feed reads.
    fn connect(&self) -> impl Future<Output = Result<Socket, FeedError>> + use<V> {
        let (url, limiter, tls) = (self.url.clone(), self.limiter.clone(), self.tls.clone());
        let subscriptions = self.subscriptions.clone();
        let ws_limit = self.max_frame_bytes.saturating_mul(WS_LIMIT_FACTOR);
        async move {
            let config = WebSocketConfig::default()
                .max_message_size(Some(ws_limit))
                .max_frame_size(Some(ws_limit));
            limiter.acquire().await;
            let connect = tokio_tungstenite::connect_async_tls_with_config(
                url.as_str(),
                Some(config),
                true,
                Some(tokio_tungstenite::Connector::Rustls(tls)),
            );
            let mut socket = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
                Ok(Ok((socket, _))) => socket,
                Ok(Err(e)) => return Err(FeedError::Connect(e)),
                Err(_) => return Err(FeedError::ConnectTimeout),
            };
            for request in subscriptions {
                socket
                    .send(Message::text(request))
                    .await
                    .map_err(FeedError::Connect)?;
            }
            Ok(socket)
        }
    }

    /// Reads until the connection ends. A planned reconnect (shutdown notice, lifetime)
    /// is make-before-break: the replacement connects while this one is still read, this
    /// one is read for [`HANDOVER_GRACE`] more (or until the venue closes it), and the
    /// router drops the events both connections deliver.
    async fn pump(&mut self, mut socket: Socket, shutdown: &CancellationToken) -> Ended {
        let lifetime = tokio::time::sleep(V::CONNECTION_LIFETIME.saturating_sub(LIFETIME_MARGIN));
        tokio::pin!(lifetime);
        // Checking a timestamp on a coarse tick costs less per frame than re-arming a timer.
        // A venue that wants pings gets them well before `--stale-after` would give up.
        let ping = V::CLIENT_PING.map(|(text, after)| (text, after.min(self.stale_after / 2)));
        let tick = match ping {
            Some((_, after)) => (self.stale_after / 4).min(after / 3),
            None => self.stale_after / 4,
        };
        let mut stale_check = tokio::time::interval(tick);
        let mut last_frame = Instant::now();
        let mut last_ping = Instant::now();
        let mut planned: Option<ReconnectReason> = None;
        let mut replacement = std::pin::pin!(futures::future::OptionFuture::from(None));
        let mut replaced: Option<(Socket, Instant)> = None;
        let handover_done = async |replaced: &Option<(Socket, Instant)>| match replaced {
            Some((_, at)) => tokio::time::sleep_until(*at + HANDOVER_GRACE).await,
            None => std::future::pending().await,
        };
        let ended = loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break Ended::Shutdown,
                message = socket.next() => {
                    last_frame = Instant::now();
                    let failure = match message {
                        Some(Ok(Message::Text(text))) => {
                            if self.on_text(Bytes::from(text), last_frame) && planned.is_none() {
                                planned = Some(ReconnectReason::ServerShutdown);
                                replacement.set(Some(self.connect()).into());
                            }
                            // One read can hold hundreds of frames; spending budget per frame
                            // makes this task yield often enough for the NATS writer (on the
                            // same thread) to drain the publish queue.
                            tokio::task::consume_budget().await;
                            continue;
                        }
                        Some(Ok(Message::Binary(data))) => {
                            self.telemetry.frame(data.len());
                            self.telemetry.frame_error(FrameError::Binary, &data);
                            continue;
                        }
                        // tungstenite queues the pong itself and sends it with the next read.
                        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                        Some(Ok(Message::Close(frame))) => FeedError::Closed(frame),
                        Some(Err(e)) => {
                            if matches!(e, tungstenite::Error::Capacity(_)) {
                                self.telemetry.frame_error(FrameError::Oversized, b"");
                            }
                            FeedError::Socket(e)
                        }
                        None => FeedError::Ended,
                    };
                    match (replaced.take(), planned) {
                        (Some((next, _)), Some(reason)) => break Ended::Replaced(reason, Box::new(next)),
                        _ => break Ended::Failed(failure),
                    }
                }
                Some(result) = &mut replacement => {
                    // A finished future must not be polled again.
                    replacement.set(None.into());
                    match result {
                        Ok(next) => replaced = Some((next, Instant::now())),
                        // Keep reading this one; the venue's close will be an ordinary reconnect.
                        Err(error) => tracing::warn!(%error, "replacement connection failed"),
                    }
                }
                () = handover_done(&replaced) => {
                    let (next, _) = replaced.take().expect("the grace timer runs only with a replacement");
                    break Ended::Replaced(planned.unwrap_or(ReconnectReason::Lifetime), Box::new(next));
                }
                _ = stale_check.tick() => {
                    if last_frame.elapsed() > self.stale_after {
                        break Ended::Failed(FeedError::Stale(self.stale_after));
                    }
                    if let Some((ping, after)) = ping
                        && last_frame.elapsed() >= after
                        && last_ping.elapsed() >= after
                    {
                        last_ping = Instant::now();
                        if let Err(e) = socket.send(Message::text(ping)).await {
                            break Ended::Failed(FeedError::Socket(e));
                        }
                    }
                }
                () = &mut lifetime, if planned.is_none() => {
                    planned = Some(ReconnectReason::Lifetime);
                    replacement.set(Some(self.connect()).into());
                }
            }
        };
        // Best effort: a polite close, bounded so that shutdown stays fast.
        let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(None)).await;
        ended
    }

    /// The hot path. Returns `true` when the venue announced a shutdown.
    fn on_text(&mut self, frame: Bytes, received: Instant) -> bool {
        self.telemetry.frame(frame.len());
        self.follow_connection();
        if frame.len() > self.max_frame_bytes {
            self.telemetry.frame_error(FrameError::Oversized, &frame);
            return false;
        }
        let received_ns = unix_nanos();
        let routed = self.router.route(&frame, received_ns);
        let mut shutdown = self.on_event(routed, &frame, received_ns, received);
        if V::EVENT_ARRAYS {
            while let Some(routed) = self.router.next_event(&frame, received_ns) {
                shutdown |= self.on_event(routed, &frame, received_ns, received);
            }
        }
        shutdown
    }

    /// One event of a frame: published, or dropped and counted.
    #[inline(always)]
    fn on_event(
        &mut self,
        routed: Result<Routed, FrameError>,
        frame: &Bytes,
        received_ns: u64,
        received: Instant,
    ) -> bool {
        match routed {
            Ok(Routed::Message(routed)) => {
                let RoutedMessage {
                    message,
                    gap,
                    reset,
                    commit,
                } = routed;
                let sent = if self.health.publishable() {
                    self.publisher.try_publish(message)
                } else {
                    Err(DropReason::NoStream)
                };
                match sent {
                    Ok(()) => {
                        // Only now: a message that never reached NATS stays in the next gap.
                        self.router.commit(commit);
                        if gap.is_some() || reset.is_some() {
                            self.flagged(commit, gap, reset);
                        }
                        self.telemetry.published(
                            commit.stream(),
                            commit.event_time_ms(),
                            received_ns,
                            received.into_std(),
                        );
                    }
                    Err(reason) => self.telemetry.dropped(reason),
                }
                false
            }
            Ok(Routed::ServerShutdown) => true,
            Ok(Routed::Duplicate) => {
                self.telemetry.duplicate();
                false
            }
            Ok(Routed::OutOfSequence(channel)) => {
                self.telemetry.out_of_sequence(channel, frame);
                false
            }
            Ok(Routed::Ignored) => false,
            Err(error) => {
                self.telemetry.frame_error(error, frame);
                false
            }
        }
    }
}

impl<V: Venue> Feed<V> {
    /// Keeps the streams' anchors in step with what NATS confirmed (see `sequence`): a
    /// round trip requested since the last frame snapshots them (everything committed so
    /// far was queued before it), a returned one confirms the snapshot, and a lost
    /// connection rewinds them.
    #[inline(always)]
    fn follow_connection(&mut self) {
        let (requested, confirmed) = self.health.round_trips();
        if requested != self.seen.snapshot {
            self.router.snapshot();
            self.seen.snapshot = requested;
        }
        if confirmed == self.seen.snapshot && confirmed != self.seen.confirmed {
            self.router.confirm();
            self.seen.confirmed = confirmed;
        }
        let disconnects = self.health.disconnects();
        if disconnects != self.seen.disconnects {
            self.seen.disconnects = disconnects;
            self.router.rewind();
        }
    }

    /// A published message carried `Sequex-Gap` or `Sequex-Reset`: count and log it, and
    /// ask for the missing trades from REST.
    #[cold]
    #[inline(never)]
    fn flagged(&mut self, commit: Commit, gap: Option<std::ops::Range<u64>>, reset: Option<u64>) {
        let spec = self.router.stream_of(commit);
        let (symbol, channel) = (spec.symbol.clone(), spec.channel);
        if let Some(previous_last) = reset {
            self.telemetry.reset(&symbol, channel, previous_last);
        }
        if let Some(missing) = gap {
            self.telemetry.gap(&symbol, channel, &missing);
            // Across a reset the missing ids belong to a sequence REST may not know yet.
            if let (Some(backfill), Channel::Trade, None) = (&self.backfill, channel, reset) {
                backfill.request(symbol, missing);
            }
        }
    }
}

/// Marks a feed live while it exists, so that a feed that ends any way (a panic included)
/// stops counting for readiness.
struct LiveGuard(Arc<Health>);

impl LiveGuard {
    fn new(health: Arc<Health>) -> Self {
        health.feed_live(true);
        LiveGuard(health)
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.0.feed_live(false);
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
pub(crate) struct ConnectLimiter {
    max: usize,
    window: Duration,
    attempts: Mutex<VecDeque<Instant>>,
}

impl ConnectLimiter {
    /// A limiter for `max` attempts per `window`.
    pub(crate) fn new(max: usize, window: Duration) -> Self {
        ConnectLimiter {
            max,
            window,
            attempts: Mutex::new(VecDeque::with_capacity(max)),
        }
    }

    /// Waits for a slot and takes it.
    pub(crate) async fn acquire(&self) {
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
