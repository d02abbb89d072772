//! `sequex-replay`: see `sequex-replay --help`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use sequex_replay::{FakeBinance, Script, capture};

/// Serves captured market data as the venue would: Binance combined streams at
/// `ws://LISTEN/stream?streams=btcusdt@trade/...` (what `sequex-ingest --ws-url` reads),
/// old trades at `http://REST/api/v3/historicalTrades` (`--rest-url`), and OKX's v5
/// subscribe protocol at `ws://LISTEN` (`--venue okx`; the 2022 OKX capture's books get
/// today's `seqId`/`prevSeqId`). For rehearsals, demos and tests without the exchange.
#[derive(Debug, Parser)]
#[command(name = "sequex-replay", version, max_term_width = 100)]
struct Cli {
    /// Where the websocket listens.
    #[arg(long, default_value = "127.0.0.1:9443")]
    listen: SocketAddr,

    /// Where the REST endpoint listens.
    #[arg(long, default_value = "127.0.0.1:9444")]
    rest_listen: SocketAddr,

    /// Capture files (`<receive ns> <frame>` a line, gzip).
    #[arg(long, default_value = "demo/spot_btcusdt_20240808.gz")]
    capture: Vec<PathBuf>,

    /// Replay once instead of looping (with rising ids) for ever.
    #[arg(long)]
    once: bool,

    /// Send as fast as the client reads, not at the capture's pace.
    #[arg(long)]
    fast: bool,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut frames = Vec::new();
    for path in &cli.capture {
        match capture::load_file(path) {
            Ok(mut more) => frames.append(&mut more),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
    }
    frames.sort_by_key(|f| f.received_ns);
    let frames = capture::okx_with_seq_ids(&frames);
    let count = frames.len();
    let script = Script {
        frames,
        ping_every: Some(std::time::Duration::from_secs(20)),
        real_pace: !cli.fast,
        looping: !cli.once,
        ..Script::default()
    };
    let server = match FakeBinance::start_on(script, cli.listen, cli.rest_listen).await {
        Ok(server) => server,
        Err(e) => {
            eprintln!(
                "error: cannot listen on {} / {}: {e}",
                cli.listen, cli.rest_listen
            );
            return ExitCode::from(2);
        }
    };
    println!(
        "replaying {count} frames at {} (REST {}); stop with Ctrl-C",
        server.url(),
        server.rest_url()
    );
    let _ = tokio::signal::ctrl_c().await;
    ExitCode::SUCCESS
}
