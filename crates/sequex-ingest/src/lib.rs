//! `sequex-ingest`: exchange market-data websockets into the Sequex NATS JetStream bus.
//!
//! Every trade and depth event is published, fire-and-forget, to `TRADE.trade.<SYMBOL>` or
//! `TRADE.depth.<SYMBOL>` with its payload sliced, byte for byte, out of the websocket
//! frame. Everything runs on one thread: on these machines cross-thread wake-ups cost more
//! than the work itself.
//!
//! # Layout
//! - `config`: the command line.
//! - `venue`: how to reach an exchange and read its frames (`venue::binance`).
//! - `route`: frames become NATS messages: subject, payload slice, headers; `sequence`
//!   judges each event's ids (repeats, gaps, resets, outliers).
//! - `feed`: one websocket connection, kept alive.
//! - `backfill`: trade gaps filled from the venue's REST API, off the read path.
//! - `bus`: the NATS side: connect, stream checks, non-blocking publish in a byte budget.
//! - `watch`: the streams' health against the bus: presence, loss estimate, RECORD's lag.
//! - `telemetry`: every metric and data log line; `health` and `http`: probes.

mod backfill;
mod bus;
mod config;
mod feed;
mod health;
mod http;
mod route;
mod sequence;
mod telemetry;
mod tls;
mod venue;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use bus::BusError;
pub use config::{Cli, LogFormat};
pub use http::healthcheck;
pub use telemetry::count_dropped_log_lines;
pub use tls::TlsError;
pub use venue::VenueId;

/// What the benchmarks drive directly: the router, exactly as the feed runs it.
#[doc(hidden)]
pub mod bench {
    pub use crate::route::{Commit, Routed, RoutedMessage, Router, StreamSpec};
    pub use crate::venue::binance::BinanceSpot;
    pub use crate::venue::binance_futures::{BinanceCoinm, BinanceUsdm};
    pub use crate::venue::okx::Okx;
    pub use crate::venue::{DepthSpeed, Fields, Frame, FrameError, Ids, Venue};
}

use crate::health::Health;

use crate::bus::Publisher;
use crate::feed::{ConnectLimiter, Feed};
use crate::route::{Router, StreamSpec};
use crate::telemetry::FeedTelemetry;
use crate::venue::binance::BinanceSpot;
use crate::venue::binance_futures::{BinanceCoinm, BinanceUsdm};
use crate::venue::okx::Okx;
use crate::venue::{RestTrades, Venue};
use sequex_subjects::{Channel, Symbol};

/// How long shutdown may spend flushing what is queued for NATS.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(3);
/// How often TRADE and RECORD are checked after start.
const STREAM_WATCH_INTERVAL: Duration = Duration::from_secs(5);

/// Why the daemon stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bus is unusable (missing stream, refused credentials...).
    #[error(transparent)]
    Bus(#[from] BusError),
    /// `--metrics-addr` cannot be bound.
    #[error("cannot listen on --metrics-addr {addr}: {error}")]
    MetricsAddr {
        /// The address.
        addr: std::net::SocketAddr,
        /// What failed.
        error: std::io::Error,
    },
    /// The metrics recorder could not be installed.
    #[error("cannot install the metrics recorder: {0}")]
    Metrics(#[from] metrics_exporter_prometheus::BuildError),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// The REST client of trade backfill could not be built.
    #[error("cannot build the REST client for trade backfill: {0}")]
    Rest(#[from] reqwest::Error),
    /// The exchange's TLS cannot be verified with what is trusted.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// A feed stopped on a bug; the process exits so that its supervisor restarts it.
    #[error("a websocket feed panicked (a bug: please report it with the log); exiting")]
    FeedPanicked,
    /// A `--symbols` entry cannot name an instrument of `--venue`.
    #[error("--symbols {symbol} is not an instrument name of {venue}: {why}")]
    Symbol {
        /// The venue.
        venue: &'static str,
        /// The symbol.
        symbol: Symbol,
        /// The venue's naming rule.
        why: &'static str,
    },
}

impl Error {
    /// 2 for what the operator must fix (configuration, streams), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Bus(_) | Error::MetricsAddr { .. } | Error::Tls(_) | Error::Symbol { .. } => 2,
            Error::Metrics(_) | Error::Signals(_) | Error::Rest(_) | Error::FeedPanicked => 1,
        }
    }
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(cli: Cli) -> Result<(), Error> {
    match cli.venue {
        VenueId::BinanceSpot => check_symbols::<BinanceSpot>(&cli.symbols)?,
        VenueId::BinanceUsdm => check_symbols::<BinanceUsdm>(&cli.symbols)?,
        VenueId::BinanceCoinm => check_symbols::<BinanceCoinm>(&cli.symbols)?,
        VenueId::Okx => check_symbols::<Okx>(&cli.symbols)?,
    }
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    tasks.spawn(cancel_on_signal(shutdown.clone()).await?);

    let metrics = telemetry::install_recorder()?;
    let health = Arc::new(Health::default());
    let listener =
        TcpListener::bind(cli.metrics_addr)
            .await
            .map_err(|error| Error::MetricsAddr {
                addr: cli.metrics_addr,
                error,
            })?;
    let bound = listener.local_addr().unwrap_or(cli.metrics_addr);
    tracing::info!(addr = %bound, "serving /metrics, /healthz, /readyz");
    tasks.spawn(http::serve(
        listener,
        metrics.clone(),
        health.clone(),
        shutdown.clone(),
        tasks.clone(),
    ));
    if !cli.summary_interval.is_zero() {
        tasks.spawn(telemetry::summarize(
            metrics.clone(),
            cli.summary_interval,
            shutdown.clone(),
        ));
    }
    tasks.spawn(upkeep(metrics, shutdown.clone()));
    if cli.busy_poll {
        tasks.spawn(busy_poll(shutdown.clone()));
    }

    let result = ingest(&cli, &health, &shutdown, &tasks).await;
    shutdown.cancel();
    tasks.close();
    tasks.wait().await;
    result
}

async fn ingest(
    cli: &Cli,
    health: &Arc<Health>,
    shutdown: &CancellationToken,
    tasks: &TaskTracker,
) -> Result<(), Error> {
    // Before anything connects: a CA file that cannot be used is a configuration error.
    let tls = tls::client_config(cli.ws_tls_ca.as_deref())?;
    let Some(client) = bus::connect(cli, health.clone(), shutdown).await? else {
        return Ok(());
    };
    health.set_nats_connected(true);
    let js = jetstream::new(client.clone());
    let url = cli.nats_url();
    if cli.skip_stream_check {
        tracing::warn!(
            "--skip-stream-check: publishing without checking for TRADE (benchmarks only)"
        );
        health.set_trade_stream(true);
    } else {
        if bus::check_trade_stream(&js, &url, cli.wait_for_streams, shutdown)
            .await?
            .is_none()
        {
            return Ok(());
        }
        tracing::info!(%url, "stream TRADE present and capturing TRADE.trade.> and TRADE.depth.>");
        health.set_trade_stream(true);
        tasks.spawn(bus::confirm_round_trips(
            client.clone(),
            health.clone(),
            shutdown.clone(),
        ));
        tasks.spawn(watch::watch_streams(
            js,
            url.clone(),
            health.clone(),
            STREAM_WATCH_INTERVAL,
            shutdown.clone(),
        ));
    }

    let feeds = TaskTracker::new();
    let panicked = CancellationToken::new();
    let shared = Shared {
        client: &client,
        health,
        tls,
    };
    let start = match cli.venue {
        VenueId::BinanceSpot => start_feeds::<BinanceSpot>,
        VenueId::BinanceUsdm => start_feeds::<BinanceUsdm>,
        VenueId::BinanceCoinm => start_feeds::<BinanceCoinm>,
        VenueId::Okx => start_feeds::<Okx>,
    };
    start(cli, &shared, shutdown, &panicked, &feeds, tasks)?;
    feeds.close();
    shutdown.cancelled().await;
    tracing::info!("shutting down: closing websockets, then flushing NATS");
    feeds.wait().await;
    if Publisher::new(client, usize::MAX)
        .flush(FLUSH_TIMEOUT)
        .await
    {
        tracing::info!("flushed; bye");
    } else {
        tracing::error!(
            "could not flush to NATS within {FLUSH_TIMEOUT:?}; queued messages are lost"
        );
    }
    if panicked.is_cancelled() {
        return Err(Error::FeedPanicked);
    }
    Ok(())
}

/// Splits the streams over connections and starts one feed per connection, and the
/// trade backfill they share. A feed that panics cancels `panicked` and `shutdown`.
/// What every feed shares.
struct Shared<'a> {
    client: &'a async_nats::Client,
    health: &'a Arc<Health>,
    tls: Arc<rustls::ClientConfig>,
}

fn start_feeds<V: Venue + RestTrades>(
    cli: &Cli,
    shared: &Shared<'_>,
    shutdown: &CancellationToken,
    panicked: &CancellationToken,
    feeds: &TaskTracker,
    tasks: &TaskTracker,
) -> Result<(), Error> {
    let &Shared {
        client,
        health,
        ref tls,
    } = shared;
    let queue_bytes = usize::try_from(cli.publish_queue_bytes).unwrap_or(usize::MAX);
    let backfill =
        (V::AVAILABLE && cli.backfill_max_trades > 0 && cli.channels.contains(&Channel::Trade))
            .then(|| {
                let config = backfill::Config {
                    base_url: cli
                        .rest_url
                        .clone()
                        .unwrap_or_else(|| V::REST_URL.to_string()),
                    max_trades: cli.backfill_max_trades,
                };
                let publisher = Publisher::new(client.clone(), queue_bytes);
                backfill::start::<V>(config, publisher, shutdown.clone(), tasks)
            })
            .transpose()?;
    let mut specs: Vec<StreamSpec> = Vec::new();
    for symbol in &cli.symbols {
        for &channel in &cli.channels {
            let spec = StreamSpec {
                symbol: symbol.clone(),
                channel,
            };
            if !specs.contains(&spec) {
                specs.push(spec);
            }
        }
    }
    let per_connection = cli
        .streams_per_connection
        .map_or(V::MAX_STREAMS_PER_CONNECTION, |n| n as usize)
        .min(V::MAX_STREAMS_PER_CONNECTION);
    let base = cli.ws_url.as_deref().unwrap_or(V::DEFAULT_URL);
    let limiter = Arc::new(ConnectLimiter::new(
        V::CONNECTS_PER_WINDOW,
        V::CONNECT_WINDOW,
    ));
    let chunks: Vec<&[StreamSpec]> = specs.chunks(per_connection).collect();
    health.expect_feeds(chunks.len());
    tracing::info!(
        venue = V::ID,
        streams = specs.len(),
        connections = chunks.len(),
        headers = !cli.no_headers,
        "starting feeds"
    );
    for (i, chunk) in chunks.into_iter().enumerate() {
        let names: Vec<String> = chunk
            .iter()
            .map(|s| V::stream_name(&s.symbol, s.channel, cli.depth_speed))
            .collect();
        let feed = Feed::<V> {
            url: V::connect_url(base, &names),
            subscriptions: V::subscriptions(&names),
            router: Router::new(chunk, cli.depth_speed, !cli.no_headers),
            publisher: Publisher::new(client.clone(), queue_bytes),
            telemetry: FeedTelemetry::new(V::ID, i, chunk),
            health: health.clone(),
            limiter: limiter.clone(),
            stale_after: cli.stale_after,
            max_frame_bytes: usize::try_from(cli.max_frame_bytes).unwrap_or(usize::MAX),
            backfill: backfill.clone(),
            tls: tls.clone(),
            seen: feed::Seen::default(),
        };
        let (shutdown, panicked) = (shutdown.clone(), panicked.clone());
        feeds.spawn(async move {
            let run = std::panic::AssertUnwindSafe(feed.run(shutdown.clone()));
            if futures::FutureExt::catch_unwind(run).await.is_err() {
                panicked.cancel();
                shutdown.cancel();
            }
        });
    }
    Ok(())
}

/// Refuses, before anything starts, a symbol the venue cannot have.
fn check_symbols<V: Venue>(symbols: &[Symbol]) -> Result<(), Error> {
    for symbol in symbols {
        V::check_symbol(symbol).map_err(|why| Error::Symbol {
            venue: V::ID,
            symbol: symbol.clone(),
            why,
        })?;
    }
    Ok(())
}

/// Installs the handlers now (so that a signal during start-up is not missed) and
/// returns the task that cancels `shutdown` on SIGTERM or SIGINT.
async fn cancel_on_signal(
    shutdown: CancellationToken,
) -> Result<impl std::future::Future<Output = ()>, Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(Error::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(Error::Signals)?;
    Ok(async move {
        let name = tokio::select! {
            () = shutdown.cancelled() => return,
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutdown requested");
        shutdown.cancel();
    })
}

/// Keeps the recorder's histograms drained.
async fn upkeep(
    metrics: metrics_exporter_prometheus::PrometheusHandle,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => metrics.run_upkeep(),
        }
    }
}

/// `--busy-poll`: a task that is always ready keeps the one-thread runtime from sleeping.
/// Each `yield_now` lets the scheduler poll the sockets with a zero timeout and run
/// whatever became ready before this task runs again.
async fn busy_poll(shutdown: CancellationToken) {
    tracing::info!("--busy-poll: polling the sockets without sleeping (one full core)");
    while !shutdown.is_cancelled() {
        tokio::task::yield_now().await;
    }
}
