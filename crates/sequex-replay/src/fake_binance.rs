//! A fake Binance combined-stream server: a real websocket over loopback that replays
//! captured frames for the streams a client asks for in `/stream?streams=a/b/c`, pings,
//! answers SUBSCRIBE requests, and can misbehave on purpose (drop the connection, inject
//! bad frames, skip frames on a reconnect). A connection without `streams=` in its path
//! speaks OKX v5 instead: it waits for `{"op":"subscribe","args":[…]}`, confirms each arg
//! as OKX does, replays the frames of those args, and answers `ping` with `pong`. Beside it, on a port of its own, the REST
//! endpoint of old trades (`/api/v3/historicalTrades`) serves the trades of the same
//! frames, or fails as told.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

use crate::Error;
use crate::capture::CapturedFrame;

/// How the fake server behaves.
#[derive(Clone, Debug, Default)]
pub struct Script {
    /// The frames it can replay; each connection gets those of the streams it asked for.
    pub frames: Vec<CapturedFrame>,
    /// Send a ping this often.
    pub ping_every: Option<Duration>,
    /// Drop the TCP connection without a close frame after this many frames, on the first
    /// connection only.
    pub drop_after: Option<usize>,
    /// A new connection starts this many frames before the furthest any connection got,
    /// as Binance sends the same events on every connection open at the time; 0 resumes
    /// exactly where the last connection stopped.
    pub overlap: usize,
    /// Messages sent before the frame with this index (per stream set), the first time
    /// that frame is sent.
    pub inject: Vec<(usize, Message)>,
    /// Pause this long between frames (none: as fast as the socket takes them).
    pub pace: Option<Duration>,
    /// A new connection after a dropped one starts this many frames past where the last
    /// stopped: the frames in between are never sent (but REST has their trades).
    pub skip_on_reconnect: usize,
    /// How the REST endpoint answers.
    pub rest: Rest,
    /// Wait this long after a connection opens before the first frame.
    pub start_delay: Option<Duration>,
    /// Every connection replays from the first frame, as two clients of the real venue
    /// each get every event (redundant daemons); `overlap` and `drop_after` then do not
    /// apply.
    pub each_from_start: bool,
    /// Pause between frames as long as the capture did (at most a second): the real pace.
    pub real_pace: bool,
    /// After the last frame, start again, with trade and update ids and event times moved
    /// past the previous round's, so that a consumer sees one continuous feed.
    pub looping: bool,
}

impl From<Vec<CapturedFrame>> for Script {
    /// Replays `frames` once, as fast as the client reads, with nothing else scripted.
    fn from(frames: Vec<CapturedFrame>) -> Self {
        Script {
            frames,
            ..Script::default()
        }
    }
}

/// A free port on loopback.
const LOOPBACK_ANY: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    0,
));

/// How the fake REST endpoint answers `GET /api/v3/historicalTrades`.
#[derive(Clone, Debug, Default)]
pub enum Rest {
    /// With the trades of the script's frames, as Binance would.
    #[default]
    Serve,
    /// With this HTTP status (429 and 418 with `Retry-After: 1`) and an error body.
    Fail(u16),
    /// Never: the request times out.
    Hang,
}

#[derive(Debug, Default)]
struct State {
    connections: AtomicUsize,
    rest_requests: Mutex<Vec<String>>,
    pongs: AtomicUsize,
    requests: Mutex<Vec<String>>,
    // The furthest frame index any connection reached, per requested stream set.
    furthest: Mutex<HashMap<String, usize>>,
}

/// A running fake server; stops on drop.
#[derive(Debug)]
pub struct FakeBinance {
    tls: bool,
    addr: SocketAddr,
    rest_addr: SocketAddr,
    state: Arc<State>,
    task: JoinHandle<()>,
    rest_task: JoinHandle<()>,
}

impl FakeBinance {
    /// Starts serving `script` on a free loopback port.
    pub async fn start(script: Script) -> Result<Self, Error> {
        Self::start_with(script, None, LOOPBACK_ANY, LOOPBACK_ANY).await
    }

    /// Starts serving `script` with the websocket on `listen` and REST on `rest_listen`.
    pub async fn start_on(
        script: Script,
        listen: SocketAddr,
        rest_listen: SocketAddr,
    ) -> Result<Self, Error> {
        Self::start_with(script, None, listen, rest_listen).await
    }

    /// Starts serving `script` over `wss://`, with the certificate of `acceptor`.
    pub async fn start_tls(
        script: Script,
        acceptor: tokio_rustls::TlsAcceptor,
    ) -> Result<Self, Error> {
        Self::start_with(script, Some(acceptor), LOOPBACK_ANY, LOOPBACK_ANY).await
    }

    async fn start_with(
        script: Script,
        tls: Option<tokio_rustls::TlsAcceptor>,
        listen: SocketAddr,
        rest_listen: SocketAddr,
    ) -> Result<Self, Error> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let script = Arc::new(script);
        let task = tokio::spawn({
            let (state, script, tls) = (state.clone(), script.clone(), tls.clone());
            async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    // Without it, Nagle and delayed acks hold small frames for 40 ms.
                    let _ = tcp.set_nodelay(true);
                    let (script, state) = (script.clone(), state.clone());
                    match &tls {
                        None => drop(tokio::spawn(serve(tcp, script, state))),
                        Some(acceptor) => {
                            let acceptor = acceptor.clone();
                            tokio::spawn(async move {
                                if let Ok(stream) = acceptor.accept(tcp).await {
                                    serve(stream, script, state).await;
                                }
                            });
                        }
                    }
                }
            }
        });
        let rest = TcpListener::bind(rest_listen).await?;
        let rest_addr = rest.local_addr()?;
        let rest_task = tokio::spawn({
            let state = state.clone();
            async move {
                while let Ok((tcp, _)) = rest.accept().await {
                    tokio::spawn(serve_rest(tcp, script.clone(), state.clone()));
                }
            }
        });
        Ok(FakeBinance {
            tls: tls.is_some(),
            addr,
            rest_addr,
            state,
            task,
            rest_task,
        })
    }

    /// The base URL to pass as `--rest-url`.
    pub fn rest_url(&self) -> String {
        format!("http://{}", self.rest_addr)
    }

    /// The request targets of every REST request, in order.
    pub fn rest_requests(&self) -> Vec<String> {
        self.state
            .rest_requests
            .lock()
            .expect("not poisoned")
            .clone()
    }

    /// The base URL to pass as `--ws-url`.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}", self.addr)
    }

    /// Websocket connections accepted so far.
    pub fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Pongs received so far.
    pub fn pongs(&self) -> usize {
        self.state.pongs.load(Ordering::SeqCst)
    }

    /// The request paths of every connection, in order.
    pub fn requests(&self) -> Vec<String> {
        self.state.requests.lock().expect("not poisoned").clone()
    }
}

impl Drop for FakeBinance {
    fn drop(&mut self) {
        self.task.abort();
        self.rest_task.abort();
    }
}

/// One HTTP/1.1 request per connection, answered and closed.
async fn serve_rest(mut tcp: TcpStream, script: Arc<Script>, state: Arc<State>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match tcp.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&request);
    let target = text.split(' ').nth(1).unwrap_or_default().to_string();
    state
        .rest_requests
        .lock()
        .expect("not poisoned")
        .push(target.clone());
    let (status, headers, body) = match script.rest {
        Rest::Hang => {
            std::future::pending::<()>().await;
            return;
        }
        Rest::Fail(status) => (
            status,
            "Retry-After: 1\r\n",
            r#"{"code":-1003,"msg":"fake failure"}"#.to_string(),
        ),
        Rest::Serve if target.starts_with("/api/v5/market/history-trades") => {
            (200, "", okx_history_trades(&script.frames, &target))
        }
        Rest::Serve => (200, "", historical_trades(&script.frames, &target)),
    };
    let response = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tcp.write_all(response.as_bytes()).await;
    let _ = tcp.shutdown().await;
}

/// OKX's `/api/v5/market/history-trades?instId=&type=1&after=&limit=` over the trades of
/// `frames`: those older than `after`, newest first, members in REST's order.
fn okx_history_trades(frames: &[CapturedFrame], target: &str) -> String {
    let query = query_of(target);
    let inst = query.get("instId").copied().unwrap_or_default();
    let after: u64 = query
        .get("after")
        .and_then(|v| v.parse().ok())
        .unwrap_or(u64::MAX);
    let limit: usize = query
        .get("limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let mut trades: Vec<serde_json::Value> = frames
        .iter()
        .filter(|f| f.okx_arg().is_some_and(|a| a.contains(r#""trades""#)))
        .flat_map(|f| f.okx_events())
        .filter_map(|e| serde_json::from_str::<serde_json::Value>(e).ok())
        .filter(|t| t["instId"] == inst)
        .filter(|t| {
            t["tradeId"]
                .as_str()
                .and_then(|id| id.parse::<u64>().ok())
                .is_some_and(|id| id < after)
        })
        .collect();
    trades.sort_by_key(|t| {
        std::cmp::Reverse(
            t["tradeId"]
                .as_str()
                .unwrap_or("")
                .parse::<u64>()
                .unwrap_or(0),
        )
    });
    let data: Vec<String> = trades
        .iter()
        .take(limit)
        .map(|t| {
            format!(
                r#"{{"instId":{},"side":{},"sz":{},"px":{},"tradeId":{},"ts":{}}}"#,
                t["instId"], t["side"], t["sz"], t["px"], t["tradeId"], t["ts"]
            )
        })
        .collect();
    format!(r#"{{"code":"0","msg":"","data":[{}]}}"#, data.join(","))
}

fn query_of(target: &str) -> HashMap<&str, &str> {
    target
        .split_once('?')
        .map(|(_, q)| q.split('&').filter_map(|kv| kv.split_once('=')).collect())
        .unwrap_or_default()
}

/// `/api/v3/historicalTrades?symbol=&fromId=&limit=` over the trades of `frames`.
fn historical_trades(frames: &[CapturedFrame], target: &str) -> String {
    let query = query_of(target);
    let symbol = query.get("symbol").copied().unwrap_or_default();
    let from: u64 = query
        .get("fromId")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let limit: usize = query
        .get("limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let trades: Vec<serde_json::Value> = frames
        .iter()
        .filter_map(|f| serde_json::from_str::<serde_json::Value>(f.data()?).ok())
        .filter(|e| e["e"] == "trade" && e["s"] == symbol)
        .filter(|e| e["t"].as_u64().is_some_and(|t| t >= from))
        .take(limit)
        .map(|e| {
            serde_json::json!({
                "id": e["t"], "price": e["p"], "qty": e["q"], "quoteQty": "0",
                "time": e["T"], "isBuyerMaker": e["m"], "isBestMatch": e["M"],
            })
        })
        .collect();
    serde_json::Value::from(trades).to_string()
}

async fn serve<S>(tcp: S, script: Arc<Script>, state: Arc<State>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut path = String::new();
    // The callback's signature is tungstenite's; its error type is not ours to shrink.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| {
        path = request.uri().to_string();
        Ok(response)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
        return;
    };
    let connection = state.connections.fetch_add(1, Ordering::SeqCst);
    state
        .requests
        .lock()
        .expect("not poisoned")
        .push(path.clone());
    let (mut tx, mut rx) = ws.split();
    // Read side: count pongs, answer SUBSCRIBE (Binance) or subscribe ops and pings (OKX),
    // notice the close.
    let (replies_tx, mut replies) = tokio::sync::mpsc::unbounded_channel::<Message>();
    let (subscribed_tx, subscribed) = tokio::sync::oneshot::channel::<Vec<String>>();
    let reader = tokio::spawn({
        let state = state.clone();
        async move {
            let mut subscribed_tx = Some(subscribed_tx);
            while let Some(Ok(message)) = rx.next().await {
                match message {
                    Message::Pong(_) => {
                        state.pongs.fetch_add(1, Ordering::SeqCst);
                    }
                    Message::Text(text) if text.as_str() == "ping" => {
                        state.pongs.fetch_add(1, Ordering::SeqCst);
                        let _ = replies_tx.send(Message::text("pong"));
                    }
                    Message::Text(text) => {
                        let request = serde_json::from_str::<serde_json::Value>(&text)
                            .unwrap_or(serde_json::Value::Null);
                        if request["op"] == "subscribe" {
                            let args = okx_args(&request);
                            for arg in &args {
                                let reply = format!(
                                    r#"{{"event":"subscribe","arg":{arg},"connId":"fake"}}"#
                                );
                                let _ = replies_tx.send(Message::text(reply));
                            }
                            if let Some(tx) = subscribed_tx.take() {
                                let _ = tx.send(args);
                            }
                            continue;
                        }
                        let id = request.get("id").cloned().unwrap_or_default();
                        let reply = serde_json::json!({ "result": null, "id": id });
                        let _ = replies_tx.send(Message::text(reply.to_string()));
                    }
                    Message::Close(_) => break,
                    _ => {}
                }
            }
        }
    });
    let streams: Vec<String> = match path.split_once("streams=") {
        Some((_, s)) => s.split('/').map(str::to_string).collect(),
        None => {
            let Ok(args) = subscribed.await else {
                return;
            };
            // The confirmations go first, as on OKX.
            while let Ok(reply) = replies.try_recv() {
                if tx.send(reply).await.is_err() {
                    return;
                }
            }
            args
        }
    };
    let key = streams.join("/");
    let frames: Vec<&CapturedFrame> = script
        .frames
        .iter()
        .filter(|f| f.any_stream().is_some_and(|s| streams.contains(&s)))
        .collect();

    let mut ping = script.ping_every.map(tokio::time::interval);
    let furthest = |state: &State| {
        *state
            .furthest
            .lock()
            .expect("not poisoned")
            .get(&key)
            .unwrap_or(&0)
    };
    let mut next = if connection > 0 && !script.each_from_start {
        furthest(&state).saturating_sub(script.overlap) + script.skip_on_reconnect
    } else {
        0
    };
    if next > 0 {
        // The skipped frames count as sent, so that a later connection resumes after them.
        let mut all = state.furthest.lock().expect("not poisoned");
        let reached = all.entry(key.clone()).or_default();
        *reached = (*reached).max(next);
    }
    let mut sent_here = 0usize;
    let shift = Shift::of(&frames);
    let mut round = 0u64;
    if let Some(delay) = script.start_delay {
        tokio::time::sleep(delay).await;
    }
    loop {
        if connection == 0
            && !script.each_from_start
            && script.drop_after.is_some_and(|n| sent_here >= n)
        {
            // Drop without a close frame, as a network failure would.
            reader.abort();
            return;
        }
        let ping_due = async {
            match ping.as_mut() {
                Some(p) => p.tick().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            Some(reply) = replies.recv() => {
                if tx.send(reply).await.is_err() { break; }
                continue;
            }
            _ = ping_due => {
                if tx.send(Message::Ping(b"fake".to_vec().into())).await.is_err() { break; }
                continue;
            }
            () = async {}, if next < frames.len() => {}
            () = tokio::time::sleep(Duration::from_millis(50)), if next >= frames.len() => {
                if reader.is_finished() { break; }
                continue;
            }
        }
        let first_time = next >= furthest(&state);
        for (_, message) in script
            .inject
            .iter()
            .filter(|(at, _)| first_time && *at == next)
        {
            if tx.send(message.clone()).await.is_err() {
                return;
            }
        }
        let text = match round {
            0 => frames[next].text.clone(),
            n => shift.apply(&frames[next].text, n),
        };
        if tx.send(Message::text(text)).await.is_err() {
            break;
        }
        if script.real_pace
            && let Some(following) = frames.get(next + 1)
        {
            let gap = following
                .received_ns
                .saturating_sub(frames[next].received_ns);
            tokio::time::sleep(Duration::from_nanos(gap).min(Duration::from_secs(1))).await;
        }
        next += 1;
        if script.looping && next == frames.len() {
            next = 0;
            round += 1;
        }
        sent_here += 1;
        {
            let mut all = state.furthest.lock().expect("not poisoned");
            let reached = all.entry(key.clone()).or_default();
            *reached = (*reached).max(next);
        }
        if let Some(pace) = script.pace {
            tokio::time::sleep(pace).await;
        }
    }
    reader.abort();
}

/// The `args` of an OKX subscribe request, each written as OKX echoes it in data frames.
fn okx_args(request: &serde_json::Value) -> Vec<String> {
    request["args"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|arg| {
            format!(
                r#"{{"channel":"{}","instId":"{}"}}"#,
                arg["channel"].as_str().unwrap_or_default(),
                arg["instId"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

/// How far one round of a looping replay moves ids and times: past the whole capture, so
/// that trade ids and depth update ids (`U` of a round's first event = the previous round's
/// last `u` + 1) stay continuous and times keep rising.
#[derive(Debug, Default)]
struct Shift {
    /// Each key (`t`, `U`, `u`, `E`, `T`) and how far a round moves it.
    spans: Vec<(&'static str, u64)>,
}

impl Shift {
    /// Keys that move together, and the gap a round leaves after the last value.
    const GROUPS: [(&'static [&'static str], u64); 3] =
        [(&["t"], 1), (&["U", "u"], 1), (&["E", "T"], 1000)];

    fn of(frames: &[&CapturedFrame]) -> Self {
        let mut spans = Vec::new();
        for (keys, gap) in Self::GROUPS {
            let values = frames
                .iter()
                .flat_map(|f| keys.iter().filter_map(|key| field(&f.text, key)));
            let (lo, hi) = values.fold((u64::MAX, 0), |(lo, hi), v| (lo.min(v), hi.max(v)));
            let span = if lo > hi { 0 } else { hi - lo + gap };
            spans.extend(keys.iter().map(|key| (*key, span)));
        }
        Shift { spans }
    }

    /// `text` with every shifted field moved `round` spans on.
    fn apply(&self, text: &str, round: u64) -> String {
        let mut text = text.to_string();
        for (key, span) in &self.spans {
            if let Some(value) = field(&text, key) {
                let pattern = format!("\"{key}\":{value}");
                let moved = format!("\"{key}\":{}", value + span * round);
                text = text.replacen(&pattern, &moved, 1);
            }
        }
        text
    }
}

/// The unsigned integer value of `"key":` in a frame, if any.
fn field(text: &str, key: &str) -> Option<u64> {
    let pattern = format!("\"{key}\":");
    let at = text.find(&pattern)? + pattern.len();
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}
