//! The NATS side: connecting (with retries at start), checking that TRADE exists and
//! captures our subjects, watching the streams' health, and publishing without ever
//! waiting.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use async_nats::jetstream::context::{GetStreamError, GetStreamErrorKind};
use async_nats::jetstream::{self, stream::Info};
use async_nats::message::OutboundMessage;
use async_nats::{ConnectErrorKind, ConnectOptions};
use bytes::Bytes;
use futures::Sink;

use sequex_subjects::{Channel, Filter, Stream};
use tokio_util::sync::CancellationToken;

use crate::Health;
use crate::config::Cli;
use crate::telemetry::DropReason;

/// Why the bus cannot be used. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// A credentials or TLS file could not be read.
    #[error("cannot read NATS credentials file {path}: {error}")]
    Credentials {
        /// The file.
        path: String,
        /// What failed.
        error: std::io::Error,
    },
    /// `--nats-url` holds something that is not a NATS URL.
    #[error(
        "invalid NATS URL {url:?} in --nats-url ({error}); use nats://HOST:PORT, several comma-separated for a cluster"
    )]
    BadUrl {
        /// The URL.
        url: String,
        /// Why.
        error: std::io::Error,
    },
    /// The server refused us for a reason retrying will not fix.
    #[error(
        "NATS at {url} refused the connection ({error}); check --nats-creds, --nats-user/--nats-password, --nats-token, --nats-nkey and the TLS flags"
    )]
    Refused {
        /// The server.
        url: String,
        /// What it said.
        error: async_nats::ConnectError,
    },
    /// TRADE does not exist.
    #[error(
        "stream {stream} not found on {url}; create it with `nats stream add --config configs/stream_trade.json` (or pass --wait-for-streams 60s to wait for it)"
    )]
    StreamMissing {
        /// The stream.
        stream: Stream,
        /// The server.
        url: String,
    },
    /// TRADE exists but would not capture what we publish.
    #[error(
        "stream {stream} on {url} does not capture {missing}: its subjects are {subjects:?}; fix it with `nats stream edit {stream} --config configs/stream_trade.json`"
    )]
    StreamMisconfigured {
        /// The stream.
        stream: Stream,
        /// The server.
        url: String,
        /// The filter that is not covered.
        missing: String,
        /// The stream's subjects.
        subjects: Vec<String>,
    },
    /// JetStream is off on the server.
    #[error(
        "JetStream is not enabled on {url}; run nats-server with -js (see deploy/nats-server.conf)"
    )]
    NoJetStream {
        /// The server.
        url: String,
    },
    /// JetStream did not answer (busy, electing a leader, or the server went away).
    #[error(
        "JetStream on {url} did not answer the stream check ({error}); check the server's health (`nats server check jetstream`)"
    )]
    Unavailable {
        /// The server.
        url: String,
        /// The last failure.
        error: GetStreamError,
    },
}

impl BusError {
    /// Whether waiting (`--wait-for-streams`) may fix it.
    fn may_appear(&self) -> bool {
        matches!(
            self,
            BusError::StreamMissing { .. }
                | BusError::NoJetStream { .. }
                | BusError::Unavailable { .. }
        )
    }
}

/// Builds the connect options from the command line.
async fn options(cli: &Cli, health: Arc<Health>) -> Result<ConnectOptions, BusError> {
    let mut options = ConnectOptions::new()
        .name("sequex-ingest")
        .client_capacity(cli.publish_queue as usize)
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(None)
        .event_callback(move |event| {
            let health = health.clone();
            async move { health.nats_event(event) }
        });
    if let Some(path) = &cli.nats_creds {
        options = options
            .credentials_file(path)
            .await
            .map_err(|error| BusError::Credentials {
                path: path.display().to_string(),
                error,
            })?;
    }
    if let (Some(user), Some(password)) = (&cli.nats_user, &cli.nats_password) {
        options = options.user_and_password(user.clone(), password.clone());
    }
    if let Some(token) = &cli.nats_token {
        options = options.token(token.clone());
    }
    if let Some(seed) = &cli.nats_nkey {
        options = options.nkey(seed.clone());
    }
    if let Some(ca) = &cli.nats_tls_ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let (Some(cert), Some(key)) = (&cli.nats_tls_cert, &cli.nats_tls_key) {
        options = options
            .add_client_certificate(cert.clone(), key.clone())
            .require_tls(true);
    }
    Ok(options)
}

/// Connects, retrying with backoff while the server is unreachable. `None` if shutdown
/// came first.
pub(crate) async fn connect(
    cli: &Cli,
    health: Arc<Health>,
    shutdown: &CancellationToken,
) -> Result<Option<async_nats::Client>, BusError> {
    let url = cli.nats_url();
    // Seeds: the client connects to one and learns the rest of a cluster from it.
    let servers = url
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<async_nats::ServerAddr>()
                .map_err(|error| BusError::BadUrl {
                    url: s.to_string(),
                    error,
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    for attempt in 1u64.. {
        let options = options(cli, health.clone()).await?;
        match options.connect(servers.clone()).await {
            Ok(client) => {
                tracing::info!(%url, attempt, "connected to NATS");
                return Ok(Some(client));
            }
            Err(error)
                if matches!(
                    error.kind(),
                    ConnectErrorKind::Authentication
                        | ConnectErrorKind::AuthorizationViolation
                        | ConnectErrorKind::Tls
                        | ConnectErrorKind::ServerParse
                ) =>
            {
                return Err(BusError::Refused { url, error });
            }
            Err(error) => {
                let delay = backoff.next_delay();
                tracing::warn!(%url, attempt, %error, retry_in = ?delay, "NATS unreachable; not ready until it is");
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(None),
                    () = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
    unreachable!("the attempt counter does not run out")
}

/// Checks that TRADE exists and captures both channels. A missing stream is an error at
/// once, unless `wait` gives it time to appear; JetStream not answering is retried until
/// the `wait` deadline (for ever without one: the server may be starting). `None` if
/// shutdown came first.
pub(crate) async fn check_trade_stream(
    js: &jetstream::Context,
    url: &str,
    wait: Option<Duration>,
    shutdown: &CancellationToken,
) -> Result<Option<()>, BusError> {
    let deadline = wait.map(|w| tokio::time::Instant::now() + w);
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let found = tokio::select! {
            () = shutdown.cancelled() => return Ok(None),
            found = stream_info(js, Stream::Trade, url) => found,
        };
        let error = match found {
            Ok(info) => return covers_our_subjects(&info, url).map(Some),
            Err(error) => error,
        };
        let retry = match (&error, deadline) {
            (_, Some(deadline)) => error.may_appear() && tokio::time::Instant::now() < deadline,
            (BusError::Unavailable { .. }, None) => true,
            _ => false,
        };
        if !retry {
            return Err(error);
        }
        let delay = backoff.next_delay();
        if matches!(error, BusError::StreamMissing { .. }) {
            tracing::warn!(%error, retry_in = ?delay, "waiting for the stream (--wait-for-streams)");
        } else {
            tracing::warn!(%error, retry_in = ?delay, "JetStream unavailable; retrying the stream check");
        }
        tokio::select! {
            () = shutdown.cancelled() => return Ok(None),
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// A stream's info, in one request: `StreamMissing`, `NoJetStream` and `Unavailable` say
/// why not.
pub(crate) async fn stream_info(
    js: &jetstream::Context,
    stream: Stream,
    url: &str,
) -> Result<Info, BusError> {
    let error = match js.get_stream(stream.name()).await {
        // `get_stream` has just fetched the info: no second request.
        Ok(found) => return Ok(found.cached_info().clone()),
        Err(error) => error,
    };
    let url = url.to_string();
    match error.kind() {
        GetStreamErrorKind::JetStream(e)
            if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
        {
            Err(BusError::StreamMissing { stream, url })
        }
        GetStreamErrorKind::JetStream(e)
            if e.error_code() == jetstream::ErrorCode::JETSTREAM_NOT_ENABLED
                || e.error_code() == jetstream::ErrorCode::JETSTREAM_NOT_ENABLED_FOR_ACCOUNT =>
        {
            Err(BusError::NoJetStream { url })
        }
        // A server without JetStream has nothing listening on the API subject.
        GetStreamErrorKind::Request if no_responders(&error) => Err(BusError::NoJetStream { url }),
        _ => Err(BusError::Unavailable { url, error }),
    }
}

/// Whether a JetStream request failed because nothing listens on the API subject.
fn no_responders(error: &GetStreamError) -> bool {
    use async_nats::jetstream::context::{RequestError, RequestErrorKind};
    std::error::Error::source(error)
        .and_then(|e| e.downcast_ref::<RequestError>())
        .is_some_and(|e| e.kind() == RequestErrorKind::NoResponders)
}

fn covers_our_subjects(info: &Info, url: &str) -> Result<(), BusError> {
    let subjects = &info.config.subjects;
    for channel in Channel::ALL {
        let needed = Filter::channel(Stream::Trade, channel);
        if !subjects.iter().any(|s| needed.is_covered_by(s)) {
            return Err(BusError::StreamMisconfigured {
                stream: Stream::Trade,
                url: url.to_string(),
                missing: needed.to_string(),
                subjects: subjects.clone(),
            });
        }
    }
    Ok(())
}

/// How often a round trip to NATS confirms what the feeds handed to it (see `sequence`):
/// after a lost connection, gaps start at most about this far before what was lost.
const ROUND_TRIP_EVERY: Duration = Duration::from_millis(100);

/// Sends a round trip (PING) to NATS every [`ROUND_TRIP_EVERY`] and tells the feeds,
/// through `health`, when each was sent and returned.
pub(crate) async fn confirm_round_trips(
    client: async_nats::Client,
    health: Arc<Health>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(ROUND_TRIP_EVERY);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let n = health.round_trip_requested();
        tokio::select! {
            () = shutdown.cancelled() => return,
            flushed = client.flush() => if flushed.is_ok() {
                health.round_trip_confirmed(n);
            },
        }
    }
}

/// Bytes of payload handed to the NATS client and not yet written or dropped by it,
/// across every publisher of the process: what `--publish-queue-bytes` bounds.
static QUEUED_BYTES: AtomicUsize = AtomicUsize::new(0);

/// Messages every publisher of the process handed to the NATS client: what the loss
/// accounting compares with what TRADE stored.
static PUBLISHED: AtomicU64 = AtomicU64::new(0);

/// Messages handed to the NATS client so far.
pub(crate) fn published() -> u64 {
    PUBLISHED.load(Ordering::Relaxed)
}

/// Bytes queued for NATS right now.
pub(crate) fn queued_bytes() -> usize {
    QUEUED_BYTES.load(Ordering::Relaxed)
}

/// A payload counted in [`QUEUED_BYTES`] until the NATS client lets go of it (written to
/// the socket, or dropped with the connection).
struct Queued(Bytes);

impl AsRef<[u8]> for Queued {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        QUEUED_BYTES.fetch_sub(self.0.len(), Ordering::Relaxed);
    }
}

/// Hands messages to the NATS client without waiting: the client's bounded command
/// queue (`--publish-queue` messages) and a byte budget (`--publish-queue-bytes`) are the
/// buffer; past either, the new message is dropped.
#[derive(Debug)]
pub(crate) struct Publisher {
    client: async_nats::Client,
    max_queued_bytes: usize,
}

impl Publisher {
    /// A publisher on its own clone of `client` (each clone has its own queue slot state),
    /// dropping what would take the bytes queued past `max_queued_bytes`.
    pub(crate) fn new(client: async_nats::Client, max_queued_bytes: usize) -> Self {
        Publisher {
            client,
            max_queued_bytes,
        }
    }

    /// Queues `message` if there is room now; never waits.
    pub(crate) fn try_publish(&mut self, mut message: OutboundMessage) -> Result<(), DropReason> {
        let len = message.payload.len();
        // One thread publishes: the check and the add below cannot race each other.
        if QUEUED_BYTES.load(Ordering::Relaxed) + len > self.max_queued_bytes {
            return Err(DropReason::QueueBytes);
        }
        // A no-op waker: if the queue is full we do not want to be woken, we drop.
        let mut cx = Context::from_waker(Waker::noop());
        // Outside tokio's co-operative budget: a task that has used up its budget would
        // otherwise see a queue with free slots as full.
        let ready = {
            let client = &mut self.client;
            let reserve =
                tokio::task::unconstrained(poll_fn(|cx| Pin::new(&mut *client).poll_ready(cx)));
            std::pin::pin!(reserve).poll(&mut cx)
        };
        match ready {
            Poll::Ready(Ok(())) => {
                QUEUED_BYTES.fetch_add(len, Ordering::Relaxed);
                message.payload = Bytes::from_owner(Queued(message.payload));
                Pin::new(&mut self.client)
                    .start_send(message)
                    .map(|()| {
                        PUBLISHED.fetch_add(1, Ordering::Relaxed);
                    })
                    .map_err(|e| {
                        if e.kind() == async_nats::client::PublishErrorKind::MaxPayloadExceeded {
                            DropReason::Rejected
                        } else {
                            DropReason::NatsClosed
                        }
                    })
            }
            Poll::Ready(Err(_)) => Err(DropReason::NatsClosed),
            Poll::Pending => Err(DropReason::QueueFull),
        }
    }

    /// Waits until everything queued so far is written to the server, or `timeout`.
    pub(crate) async fn flush(&self, timeout: Duration) -> bool {
        matches!(
            tokio::time::timeout(timeout, self.client.flush()).await,
            Ok(Ok(()))
        )
    }
}

/// Exponential backoff with full jitter.
#[derive(Debug)]
pub(crate) struct Backoff {
    base: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    /// Starts at `base`, doubles up to `max`.
    pub(crate) fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max,
            current: base,
        }
    }

    /// The next delay: uniformly random in [current/2, current], then doubles.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let ceiling = self.current;
        self.current = (self.current * 2).min(self.max);
        let half = ceiling / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// Back to `base`, after a success.
    pub(crate) fn reset(&mut self) {
        self.current = self.base;
    }
}
