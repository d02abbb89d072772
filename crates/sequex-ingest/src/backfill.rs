//! Trade gaps filled from the venue's REST API.
//!
//! When a published trade carries `Sequex-Gap`, the feed asks for the missing ids here and
//! reads on: live trades never wait. This task fetches the trades in pages, publishes
//! each on its live subject with the `Nats-Msg-Id` its websocket copy would carry (so
//! TRADE's duplicate window drops a trade that arrives both ways) and `Sequex-Source:
//! rest`, in id order among themselves. What cannot be fetched stays as flagged as it was.

use std::ops::Range;
use std::time::Duration;

use async_nats::header::HeaderName;
use async_nats::message::OutboundMessage;
use async_nats::{HeaderMap, HeaderValue};
use metrics::{Counter, counter};
use reqwest::StatusCode;
use sequex_subjects::{Channel, Symbol, SymbolSubjects, header};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::bus::{Backoff, Publisher};
use crate::telemetry::{names, unix_nanos};
use crate::venue::{RestTrades, Venue};

const MSG_ID: HeaderName = HeaderName::from_static(header::MSG_ID);
const RECEIVE_TIME_NS: HeaderName = HeaderName::from_static(header::RECEIVE_TIME_NS);
const SOURCE: HeaderName = HeaderName::from_static(header::SOURCE);

/// Gaps waiting for the task; past this, a gap is not filled (and counted as a failure).
const QUEUED_GAPS: usize = 256;
/// One request's time limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests that may fail (rate limits included) before a gap is given up.
const RETRIES: u32 = 3;
/// How long to wait after a 429 or 418 that names no `Retry-After`.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);
/// Never wait longer than this for a rate limit: the gap is given up instead.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Where the feeds send trade gaps. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Backfill {
    requests: mpsc::Sender<(Symbol, Range<u64>)>,
    failures: Counter,
}

impl Backfill {
    /// Asks for the trades `missing` of `symbol`; never waits.
    pub(crate) fn request(&self, symbol: Symbol, missing: Range<u64>) {
        if let Err(error) = self.requests.try_send((symbol, missing)) {
            self.failures.increment(1);
            tracing::warn!(%error, "trade backfill queue full; the gap stays flagged");
        }
    }
}

/// What the backfill task needs.
#[derive(Debug)]
pub(crate) struct Config {
    /// The REST API's base URL (`https://api.binance.com`).
    pub(crate) base_url: String,
    /// At most this many trades per gap.
    pub(crate) max_trades: u64,
}

/// Starts the task on the current runtime; it stops with `shutdown`.
pub(crate) fn start<V: Venue + RestTrades>(
    config: Config,
    publisher: Publisher,
    shutdown: CancellationToken,
    tasks: &tokio_util::task::TaskTracker,
) -> Result<Backfill, reqwest::Error> {
    let http = reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .user_agent(concat!("sequex-ingest/", env!("CARGO_PKG_VERSION")))
        .build()?;
    let (requests, mut queue) = mpsc::channel(QUEUED_GAPS);
    let failures = counter!(names::BACKFILL_FAILURES, "venue" => V::ID);
    let mut task = Task::<V> {
        http,
        config,
        publisher,
        trades: counter!(names::BACKFILL_TRADES, "venue" => V::ID),
        failures: failures.clone(),
        venue: std::marker::PhantomData,
    };
    tasks.spawn(async move {
        loop {
            let (symbol, missing) = tokio::select! {
                () = shutdown.cancelled() => return,
                next = queue.recv() => match next {
                    Some(next) => next,
                    None => return,
                },
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = task.fill(&symbol, missing) => {}
            }
        }
    });
    Ok(Backfill { requests, failures })
}

struct Task<V> {
    http: reqwest::Client,
    config: Config,
    publisher: Publisher,
    trades: Counter,
    failures: Counter,
    venue: std::marker::PhantomData<V>,
}

/// Why a page could not be had.
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    #[error("HTTP {status}: {body}")]
    Status { status: StatusCode, body: String },
    #[error("rate limited (HTTP {status}); retry after {retry_after:?}")]
    RateLimited {
        status: StatusCode,
        retry_after: Duration,
    },
    #[error("unreadable answer: {0}")]
    Body(String),
}

impl<V: Venue + RestTrades> Task<V> {
    /// Fills one gap, as far as REST and `--backfill-max-trades` allow.
    async fn fill(&mut self, symbol: &Symbol, missing: Range<u64>) {
        let end = missing
            .end
            .min(missing.start.saturating_add(self.config.max_trades));
        if end < missing.end {
            tracing::warn!(%symbol, first = missing.start, last = missing.end - 1, max = self.config.max_trades,
                "trade gap larger than --backfill-max-trades; only its first trades are fetched");
        }
        let subjects = SymbolSubjects::of(V::VENUE, symbol);
        let subject = async_nats::Subject::from(subjects.live(Channel::Trade).clone());
        let prefix = header::message_id_prefix(V::ID, Channel::Trade, symbol);
        let mut next = missing.start;
        let mut failures = 0;
        let (mut dropped, mut last_drop) = (0u64, None);
        let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
        while next < end {
            let limit = (end - next).min(V::REST_TRADES_PER_PAGE);
            let error = match self.page(symbol, next, limit).await {
                Ok(trades) => {
                    let before = next;
                    let wanted = next..end;
                    for (id, payload) in trades.into_iter().filter(|(id, _)| wanted.contains(id)) {
                        let mut headers = HeaderMap::new();
                        headers.insert(MSG_ID, header::message_id(&prefix, id));
                        headers.insert(RECEIVE_TIME_NS, HeaderValue::from(unix_nanos()));
                        headers.insert(SOURCE, header::SOURCE_REST);
                        let message = OutboundMessage {
                            subject: subject.clone(),
                            payload,
                            reply: None,
                            headers: Some(headers),
                        };
                        match self.publisher.try_publish(message) {
                            Ok(()) => self.trades.increment(1),
                            Err(reason) => {
                                dropped += 1;
                                last_drop = Some(reason);
                            }
                        }
                        next = id + 1;
                    }
                    if next == before {
                        // REST has nothing at or after `next` below `end` (yet): done.
                        break;
                    }
                    backoff.reset();
                    continue;
                }
                Err(error) => error,
            };
            failures += 1;
            let wait = match &error {
                FetchError::RateLimited { retry_after, .. } if *retry_after <= MAX_RETRY_AFTER => {
                    *retry_after
                }
                FetchError::RateLimited { .. } => {
                    failures = RETRIES;
                    Duration::ZERO
                }
                _ => backoff.next_delay(),
            };
            if failures >= RETRIES {
                self.failures.increment(1);
                tracing::warn!(%symbol, %error, first = next, last = end - 1,
                    "trade backfill failed; the gap stays flagged (Sequex-Gap)");
                return;
            }
            tracing::warn!(%symbol, %error, retry_in = ?wait, "trade backfill request failed; retrying");
            tokio::time::sleep(wait).await;
        }
        if let Some(reason) = last_drop {
            self.failures.increment(1);
            tracing::warn!(%symbol, dropped, reason = reason.as_str(),
                "backfilled trades dropped before NATS (NATS slow or down); their gap stays flagged");
        } else if next >= end {
            tracing::info!(%symbol, first = missing.start, last = end - 1, "trade gap filled from REST");
        }
    }

    /// One page of trades from id `from` on.
    async fn page(
        &self,
        symbol: &Symbol,
        from: u64,
        limit: u64,
    ) -> Result<Vec<(u64, bytes::Bytes)>, FetchError> {
        let url = format!(
            "{}{}",
            self.config.base_url.trim_end_matches('/'),
            V::trades_path(symbol, from, limit)
        );
        let response = self.http.get(url).send().await?;
        let status = response.status();
        if status == StatusCode::TOO_MANY_REQUESTS || status.as_u16() == 418 {
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()?.trim().parse().ok())
                .map_or(DEFAULT_RETRY_AFTER, Duration::from_secs);
            return Err(FetchError::RateLimited {
                status,
                retry_after,
            });
        }
        let body = response.bytes().await?;
        if !status.is_success() {
            let body = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
            return Err(FetchError::Status { status, body });
        }
        V::parse_trades(symbol, &body).map_err(FetchError::Body)
    }
}
