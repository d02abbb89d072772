//! A JetStream cluster of real `nats-server` processes on loopback, each with its own
//! store and client port, routed to each other.

use std::time::{Duration, Instant};

use crate::{Error, NatsServer};

/// A running cluster; every node stops on drop.
#[derive(Debug)]
pub struct NatsCluster {
    /// The nodes, `n1`, `n2`, `n3`...
    pub nodes: Vec<NatsServer>,
    _config: tempfile::TempDir,
}

impl NatsCluster {
    /// Starts `size` nodes and waits until JetStream has a meta leader.
    pub async fn start(size: usize) -> Result<Self, Error> {
        let config = tempfile::tempdir()?;
        let routes: Vec<u16> = (0..size).map(|_| free_port()).collect::<Result<_, _>>()?;
        let route_list = routes
            .iter()
            .map(|p| format!("nats-route://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut nodes = Vec::with_capacity(size);
        for (i, port) in routes.iter().enumerate() {
            let file = config.path().join(format!("n{}.conf", i + 1));
            std::fs::write(
                &file,
                format!(
                    "cluster {{\n  name: sequex\n  listen: 127.0.0.1:{port}\n  routes: [{route_list}]\n}}\n"
                ),
            )?;
            let name = format!("n{}", i + 1);
            let file = file.display().to_string();
            nodes.push(NatsServer::start_with_args(&["-c", &file, "-n", &name]).await?);
        }
        let cluster = NatsCluster {
            nodes,
            _config: config,
        };
        cluster.wait_for_jetstream(Duration::from_secs(30)).await?;
        Ok(cluster)
    }

    /// Every node's client URL, comma-separated (what `--nats-url` takes).
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node whose server name is `name` (`n2`).
    pub fn index_of(&self, name: &str) -> Option<usize> {
        name.strip_prefix('n')?
            .parse::<usize>()
            .ok()?
            .checked_sub(1)
    }

    /// Connects to the first node that is up.
    pub async fn connect(&self) -> Result<async_nats::Client, Error> {
        let urls: Vec<String> = self.nodes.iter().map(NatsServer::url).collect();
        Ok(async_nats::ConnectOptions::new()
            .connect(urls.as_slice())
            .await?)
    }

    async fn wait_for_jetstream(&self, timeout: Duration) -> Result<(), Error> {
        let client = self.connect().await?;
        let deadline = Instant::now() + timeout;
        loop {
            let answer =
                sequex_streams::api::request(&client, "INFO", &serde_json::json!({})).await;
            if answer.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Setup(format!(
                    "the JetStream cluster has no meta leader after {timeout:?}: {answer:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn free_port() -> Result<u16, Error> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
