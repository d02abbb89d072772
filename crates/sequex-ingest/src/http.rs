//! `/metrics`, `/healthz` and `/readyz` on `--metrics-addr`.
//!
//! Three GET endpoints for a scraper and a probe do not need an HTTP stack: this answers
//! one request per connection and closes it.

use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Health;

/// Serves until `shutdown`.
pub(crate) async fn serve(
    listener: TcpListener,
    metrics: PrometheusHandle,
    health: Arc<Health>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    loop {
        let stream = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "metrics listener accept failed");
                    continue;
                }
            },
        };
        let (metrics, health) = (metrics.clone(), health.clone());
        tasks.spawn(async move {
            // A client that never finishes its request must not hold a task forever.
            let _ = tokio::time::timeout(Duration::from_secs(5), answer(stream, &metrics, &health))
                .await;
        });
    }
}

async fn answer(
    mut stream: TcpStream,
    metrics: &PrometheusHandle,
    health: &Health,
) -> std::io::Result<()> {
    let mut request = [0u8; 1024];
    let mut len = 0;
    while !request[..len].windows(4).any(|w| w == b"\r\n\r\n") && len < request.len() {
        let n = stream.read(&mut request[len..]).await?;
        if n == 0 {
            break;
        }
        len += n;
    }
    let line = request[..len]
        .split(|b| *b == b'\r')
        .next()
        .unwrap_or_default();
    let path = line.split(|b| *b == b' ').nth(1).unwrap_or_default();
    let (status, content_type, body) = match path {
        b"/metrics" => {
            crate::telemetry::refresh();
            ("200 OK", "text/plain; version=0.0.4", metrics.render())
        }
        b"/healthz" => ("200 OK", "text/plain", "ok\n".to_string()),
        b"/readyz" => match health.readiness() {
            Ok(()) => ("200 OK", "text/plain", "ready\n".to_string()),
            Err(why) => (
                "503 Service Unavailable",
                "text/plain",
                format!("not ready: {why}\n"),
            ),
        },
        _ => (
            "404 Not Found",
            "text/plain",
            "try /metrics, /healthz or /readyz\n".to_string(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// `sequex-ingest healthcheck`: asks the running daemon's `/readyz` (at
/// `SEQUEX_METRICS_ADDR`, a wildcard address asked on loopback) and exits 0 when ready,
/// 1 otherwise, saying why.
pub fn healthcheck() -> std::process::ExitCode {
    use std::io::{Read, Write};
    let addr = std::env::var("SEQUEX_METRICS_ADDR").unwrap_or_else(|_| "127.0.0.1:9464".into());
    let addr = addr
        .replace("0.0.0.0", "127.0.0.1")
        .replace("[::]", "[::1]");
    let answer = (|| -> std::io::Result<String> {
        let addr: std::net::SocketAddr = addr
            .parse()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(b"GET /readyz HTTP/1.1\r\nHost: probe\r\n\r\n")?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        Ok(text)
    })();
    match answer {
        Ok(text) if text.starts_with("HTTP/1.1 200") => std::process::ExitCode::SUCCESS,
        Ok(text) => {
            eprintln!(
                "{}",
                text.split("\r\n\r\n").nth(1).unwrap_or("not ready").trim()
            );
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("cannot reach /readyz at {addr}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
