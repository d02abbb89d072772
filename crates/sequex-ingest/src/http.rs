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
