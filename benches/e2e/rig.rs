//! The pieces of the end-to-end bench: a paced websocket feeder, a counting subscriber
//! with a latency histogram, a paced direct publisher, and process statistics.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use crate::frames::{FrameGen, sent_ns};

/// Wall-clock ns since the epoch: the clock of every `E` the feeder writes, and the one
/// the daemon's `Sequex-Receive-Time-Ns` header uses, so that a latency can be split at
/// the daemon.
pub(crate) fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// "As fast as the socket takes them".
pub(crate) const FLAT_OUT: u64 = u64::MAX;

/// A websocket server that sends generated frames to whoever connects, at `rate`.
pub(crate) struct Feeder {
    pub(crate) url: String,
    rate: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
}

impl Feeder {
    pub(crate) async fn start(symbols: usize) -> Feeder {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}", listener.local_addr().unwrap());
        let rate = Arc::new(AtomicU64::new(0));
        let sent = Arc::new(AtomicU64::new(0));
        let (r, s) = (rate.clone(), sent.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (r, s) = (r.clone(), s.clone());
                tokio::spawn(async move {
                    // Without it, Nagle and delayed acks hold small frames for up to 40 ms.
                    let _ = tcp.set_nodelay(true);
                    let Ok(ws) = tokio_tungstenite::accept_async(tcp).await else {
                        return;
                    };
                    feed(ws, FrameGen::new(symbols), r, s).await;
                });
            }
        });
        Feeder { url, rate, sent }
    }

    /// Frames per second; 0 pauses, [`FLAT_OUT`] sends as fast as possible.
    pub(crate) fn set_rate(&self, rate: u64) {
        self.rate.store(rate, Ordering::SeqCst);
    }

    pub(crate) fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }
}

async fn feed<S>(
    ws: tokio_tungstenite::WebSocketStream<S>,
    mut frames: FrameGen,
    rate: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut tx, mut rx) = ws.split();
    tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} });
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let (mut phase_rate, mut phase_start, mut phase_sent) = (0u64, Instant::now(), 0u64);
    loop {
        let r = rate.load(Ordering::SeqCst);
        if r != phase_rate {
            (phase_rate, phase_start, phase_sent) = (r, Instant::now(), 0);
        }
        let due = match r {
            0 => 0,
            FLAT_OUT => 256,
            r => {
                ((r as f64 * phase_start.elapsed().as_secs_f64()) as u64).saturating_sub(phase_sent)
            }
        };
        for _ in 0..due.min(50_000) {
            if tx.feed(Message::text(frames.next(now_ns()))).await.is_err() {
                return;
            }
        }
        if due > 0 && tx.flush().await.is_err() {
            return;
        }
        phase_sent += due;
        sent.fetch_add(due, Ordering::SeqCst);
        if r != FLAT_OUT {
            tick.tick().await;
        }
    }
}

/// A latency histogram: 1 ns to 60 s, three significant digits.
pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid bounds")
}

/// Counts everything on `subject` and, while recording, the latency read from `E`.
pub(crate) struct Sink {
    count: AtomicU64,
    recording: AtomicBool,
    latency: Mutex<Histogram<u64>>,
    // From the daemon's receive stamp to the subscriber (messages with headers only).
    after_daemon: Mutex<Histogram<u64>>,
}

impl Sink {
    pub(crate) async fn start(client: &async_nats::Client, subject: &str) -> Arc<Sink> {
        let sink = Arc::new(Sink {
            count: AtomicU64::new(0),
            recording: AtomicBool::new(false),
            latency: Mutex::new(histogram()),
            after_daemon: Mutex::new(histogram()),
        });
        let mut sub = client.subscribe(subject.to_string()).await.unwrap();
        client.flush().await.unwrap();
        let s = sink.clone();
        tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                s.count.fetch_add(1, Ordering::Relaxed);
                if s.recording.load(Ordering::Relaxed)
                    && let Some(sent) = sent_ns(&msg.payload)
                {
                    let now = now_ns();
                    let _ = s
                        .latency
                        .lock()
                        .unwrap()
                        .record(now.saturating_sub(sent).max(1));
                    let stamp = msg.headers.as_ref().and_then(|h| {
                        h.get("Sequex-Receive-Time-Ns")?
                            .as_str()
                            .parse::<u64>()
                            .ok()
                    });
                    if let Some(stamp) = stamp {
                        let _ = s
                            .after_daemon
                            .lock()
                            .unwrap()
                            .record(now.saturating_sub(stamp).max(1));
                    }
                }
            }
        });
        sink
    }

    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    /// Clears the histogram and starts recording.
    pub(crate) fn record(&self, on: bool) {
        if on {
            self.latency.lock().unwrap().reset();
            self.after_daemon.lock().unwrap().reset();
        }
        self.recording.store(on, Ordering::SeqCst);
    }

    /// What was recorded (ns): send to receive, and the daemon's receive stamp to receive.
    pub(crate) fn histograms(&self) -> (Histogram<u64>, Histogram<u64>) {
        (
            self.latency.lock().unwrap().clone(),
            self.after_daemon.lock().unwrap().clone(),
        )
    }

    /// Waits until the count stops moving (everything in flight arrived).
    pub(crate) async fn settle(&self) -> u64 {
        let mut last = self.count();
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = self.count();
            if now == last {
                return now;
            }
            last = now;
        }
    }
}

/// Publishes generated payloads straight to NATS at `rate` for `secs` (the direct path:
/// no websocket, no daemon). Returns how many were published.
pub(crate) async fn publish_direct(client: &async_nats::Client, rate: u64, secs: f64) -> u64 {
    let mut frames = FrameGen::new(1);
    let subject = async_nats::Subject::from_static("TRADE.trade.BTCUSDT");
    // Flat out measures the bus, not the generator: publish prepared payloads.
    let prepared: Vec<Bytes> = if rate == FLAT_OUT {
        (0..20_000)
            .map(|_| data_of(&frames.next(now_ns())))
            .collect()
    } else {
        Vec::new()
    };
    let start = Instant::now();
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while start.elapsed().as_secs_f64() < secs {
        let due = match rate {
            FLAT_OUT => 256,
            r => ((r as f64 * start.elapsed().as_secs_f64()) as u64).saturating_sub(sent),
        };
        for i in 0..due {
            let payload = match prepared.get((sent + i) as usize % prepared.len().max(1)) {
                Some(payload) => payload.clone(),
                None => data_of(&frames.next(now_ns())),
            };
            client.publish(subject.clone(), payload).await.unwrap();
        }
        sent += due;
        if rate != FLAT_OUT {
            tick.tick().await;
        }
    }
    sent
}

/// The `data` object of a generated frame, as the daemon would publish it.
pub(crate) fn data_of(frame: &str) -> Bytes {
    let start = frame.find(r#","data":"#).unwrap() + 8;
    Bytes::copy_from_slice(&frame.as_bytes()[start..frame.len() - 1])
}

/// Reads frames as fast as they come for `secs` (the socket ceiling); with `latency`,
/// records each frame's send-to-read time there.
pub(crate) async fn bare_reader(url: &str, symbols: &str, secs: f64) -> u64 {
    bare_reader_with(url, symbols, secs, None).await
}

pub(crate) async fn bare_reader_with(
    url: &str,
    symbols: &str,
    secs: f64,
    latency: Option<&Mutex<Histogram<u64>>>,
) -> u64 {
    let streams: Vec<String> = symbols
        .split(',')
        .flat_map(|s| {
            let l = s.to_ascii_lowercase();
            [format!("{l}@trade"), format!("{l}@depth@100ms")]
        })
        .collect();
    let (mut ws, _) =
        tokio_tungstenite::connect_async(format!("{url}/stream?streams={}", streams.join("/")))
            .await
            .unwrap();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed().as_secs_f64() < secs {
        match tokio::time::timeout(Duration::from_millis(100), ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => {
                n += 1;
                if let (Some(h), Some(sent)) = (latency, sent_ns(text.as_bytes())) {
                    let _ = h
                        .lock()
                        .unwrap()
                        .record(now_ns().saturating_sub(sent).max(1));
                }
            }
            Ok(Some(Ok(_))) | Err(_) => {}
            _ => break,
        }
    }
    n
}

/// CPU time (user + system) of a process so far, from /proc.
pub(crate) fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, r)| r)
        .split_whitespace()
        .collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i)?.parse::<u64>().ok())
        .sum();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

/// Peak resident set size in KiB (VmHWM).
pub(crate) fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmHWM:")?
                .trim()
                .trim_end_matches(" kB")
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0)
}
