//! A `sequex-ingest` process and what tests and benches ask of it: its probes, its
//! metrics, a SIGTERM.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// A running `sequex-ingest`; killed on drop.
#[derive(Debug)]
pub struct Daemon {
    child: Child,
    /// Where `/metrics`, `/healthz` and `/readyz` answer.
    pub metrics_addr: String,
    logs: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Daemon {
    /// Starts `bin` (a `sequex-ingest` build) with `args` and a free `--metrics-addr`.
    /// Its log goes to this process's stderr and to [`Daemon::logs`].
    pub fn start(bin: &Path, args: &[&str]) -> Daemon {
        Self::start_with_env(bin, args, &[])
    }

    /// [`Daemon::start`] with extra environment variables.
    pub fn start_with_env(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let metrics_addr = free_addr();
        let mut child = Command::new(bin)
            .args(args)
            .args(["--metrics-addr", &metrics_addr])
            .env_remove("NATS_URL")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn sequex-ingest");
        // Drain the log continuously: a full pipe would block the daemon.
        let logs = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut stderr = child.stderr.take().expect("piped");
        let sink = logs.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let text = String::from_utf8_lossy(&buf[..n]);
                eprint!("{text}");
                sink.lock().unwrap().push_str(&text);
            }
        });
        Daemon {
            child,
            metrics_addr,
            logs,
        }
    }

    /// Everything the daemon logged so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// GETs `path` from the metrics server: (status code, body).
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = tokio::net::TcpStream::connect(&self.metrics_addr)
            .await
            .ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        let status = response.split(' ').nth(1)?.parse().ok()?;
        let body = response.split_once("\r\n\r\n")?.1.to_string();
        Some((status, body))
    }

    /// The sum of every sample of metric `name` whose labels contain all of `labels`
    /// (`key="value"` pairs); 0 when absent.
    pub async fn metric(&self, name: &str, labels: &[&str]) -> f64 {
        let Some((_, body)) = self.get("/metrics").await else {
            return 0.0;
        };
        body.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter(|l| labels.iter().all(|want| l.contains(want)))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// Whether `/readyz` answers 200.
    pub async fn ready(&self) -> bool {
        matches!(self.get("/readyz").await, Some((200, _)))
    }

    /// Sends SIGTERM and waits for the exit (at most 10 s); returns the status and how
    /// long the exit took.
    pub async fn terminate(mut self) -> (ExitStatus, Duration, String) {
        let pid = self.child.id().expect("the daemon is running").to_string();
        let sent = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(status.success(), "kill -TERM {pid}");
        let status = tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .expect("exit within 10 s of SIGTERM")
            .unwrap();
        let took = sent.elapsed();
        tokio::time::sleep(Duration::from_millis(100)).await;
        (status, took, self.logs())
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Waits for the process to exit by itself (at most `timeout`).
    pub async fn exit(mut self, timeout: Duration) -> (ExitStatus, String) {
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .expect("the daemon exits")
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        (status, self.logs())
    }
}

/// A loopback address nobody listens on (right now).
pub fn free_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("bound").to_string()
}
