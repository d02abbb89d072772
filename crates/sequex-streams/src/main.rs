//! `sequex-streams`: see `sequex-streams --help`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use sequex_streams::{Configs, Finding, Mode, Provisioner};

/// Keeps the Sequex streams and consumers of `configs/` on a NATS server.
///
/// The daemon never creates streams; this tool does, and recovers them: TRADE is a memory
/// stream that a single server loses when it restarts, and RECORD's sourcing of it must be
/// re-attached past what RECORD already holds.
///
/// Exit codes: 0 the server matches the files; 1 findings (drift, missing, stalled) left
/// as they are; 2 the tool could not do its job (server unreachable, unreadable files).
#[derive(Debug, Parser)]
#[command(name = "sequex-streams", version, max_term_width = 100)]
struct Cli {
    /// NATS server URL(s), comma-separated.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,

    /// The folder of stream and consumer files (`configs/`, or `configs/cluster/` for a
    /// three-node cluster).
    #[arg(long, env = "SEQUEX_CONFIGS", default_value = "configs")]
    configs: PathBuf,

    /// NATS credentials file.
    #[arg(long, env = "SEQUEX_NATS_CREDS")]
    nats_creds: Option<PathBuf>,

    /// NATS user name (with --nats-password).
    #[arg(long, env = "SEQUEX_NATS_USER", requires = "nats_password")]
    nats_user: Option<String>,

    /// NATS password (with --nats-user).
    #[arg(
        long,
        env = "SEQUEX_NATS_PASSWORD",
        requires = "nats_user",
        hide_env_values = true
    )]
    nats_password: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Creates what is missing, recovers TRADE and RECORD's sourcing, reports drift; one
    /// line per finding. Safe to run again and again.
    Apply {
        /// Also update streams and consumers whose fields differ from their files.
        #[arg(long)]
        update: bool,
    },
    /// Changes nothing: one line per finding; exit 0 when there is none, 1 otherwise.
    Check,
    /// Applies every --interval and whenever the connection comes back (a server restart,
    /// a leader change), logging what it did, until SIGTERM.
    Watch {
        /// Also update what drifted.
        #[arg(long)]
        update: bool,
        /// How often to apply, in seconds.
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=3600))]
        interval: u64,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let configs = match Configs::load(&cli.configs) {
        Ok(configs) => configs,
        Err(e) => {
            eprintln!("error: {e}; pass --configs with the folder of stream files");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Apply { update } => {
            once(
                &cli,
                configs,
                if update { Mode::Update } else { Mode::Apply },
            )
            .await
        }
        Command::Check => once(&cli, configs, Mode::Check).await,
        Command::Watch { update, interval } => {
            let mode = if update { Mode::Update } else { Mode::Apply };
            watch(&cli, configs, mode, Duration::from_secs(interval)).await
        }
    }
}

fn options(cli: &Cli) -> async_nats::ConnectOptions {
    let mut options = async_nats::ConnectOptions::new().name("sequex-streams");
    if let (Some(user), Some(password)) = (&cli.nats_user, &cli.nats_password) {
        options = options.user_and_password(user.clone(), password.clone());
    }
    options
}

async fn connect(
    cli: &Cli,
    options: async_nats::ConnectOptions,
) -> Result<async_nats::Client, String> {
    let options = match &cli.nats_creds {
        Some(path) => options
            .credentials_file(path)
            .await
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?,
        None => options,
    };
    let servers = cli
        .nats_url
        .split(',')
        .map(|s| s.trim().parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("invalid --nats-url {:?}: {e}", cli.nats_url))?;
    options
        .connect(servers)
        .await
        .map_err(|e| format!("cannot connect to {}: {e}", cli.nats_url))
}

async fn once(cli: &Cli, configs: Configs, mode: Mode) -> ExitCode {
    let client = match connect(cli, options(cli)).await {
        Ok(client) => client,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match Provisioner::new(client, configs).run(mode).await {
        Ok(findings) => {
            for finding in &findings {
                println!("{finding}");
            }
            if findings.iter().any(Finding::is_problem) {
                ExitCode::from(1)
            } else {
                if findings.is_empty() {
                    println!(
                        "ok: the streams and consumers on {} match {}",
                        cli.nats_url,
                        cli.configs.display()
                    );
                }
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

async fn watch(cli: &Cli, configs: Configs, mode: Mode, interval: Duration) -> ExitCode {
    let reconnected = Arc::new(tokio::sync::Notify::new());
    let options = {
        let reconnected = reconnected.clone();
        options(cli)
            .retry_on_initial_connect()
            .max_reconnects(None)
            .event_callback(move |event| {
                let reconnected = reconnected.clone();
                async move {
                    tracing::info!(%event, "NATS connection event");
                    if matches!(event, async_nats::Event::Connected) {
                        reconnected.notify_one();
                    }
                }
            })
    };
    let client = match connect(cli, options).await {
        Ok(client) => client,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    let provisioner = Provisioner::new(client, configs);
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::error!("cannot install the SIGTERM handler: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(url = %cli.nats_url, configs = %cli.configs.display(), ?interval, "watching the streams");
    // Drift is logged when it appears or changes, not on every pass.
    let mut reported = BTreeSet::new();
    loop {
        match provisioner.run(mode).await {
            Ok(findings) => {
                let now: BTreeSet<String> = findings
                    .iter()
                    .filter(|f| f.is_problem())
                    .map(ToString::to_string)
                    .collect();
                for finding in &findings {
                    if !finding.is_problem() {
                        tracing::warn!("{finding}");
                    } else if !reported.contains(&finding.to_string()) {
                        tracing::warn!("{finding}");
                    }
                }
                reported = now;
            }
            Err(e) => tracing::warn!("{e}; trying again"),
        }
        tokio::select! {
            _ = term.recv() => {
                tracing::info!("SIGTERM: bye");
                return ExitCode::SUCCESS;
            }
            _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
            () = tokio::time::sleep(interval) => {}
            () = reconnected.notified() => {}
        }
    }
}
