//! `sequex-ingest`: see `sequex-ingest --help`.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use sequex_ingest::{Cli, LogFormat};
use tracing_appender::non_blocking::NonBlockingBuilder;
use tracing_subscriber::EnvFilter;

/// Log lines buffered for the writer thread; past that, new lines are dropped and counted
/// rather than stalling the thread that reads the websockets.
const LOG_BUFFER_LINES: usize = 16_384;

// Every message allocates (the websocket frame, the header map, async-nats' write of the
// headers): glibc's allocator took a quarter of the daemon's CPU at 300k msgs/s.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // `sequex-ingest healthcheck`: the container's probe, for images without curl.
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        return sequex_ingest::healthcheck();
    }
    let cli = Cli::parse();
    let filter = EnvFilter::try_new(&cli.log).unwrap_or_else(|e| {
        eprintln!(
            "error: invalid --log filter {:?}: {e}; using \"info\"",
            cli.log
        );
        EnvFilter::new("info")
    });
    // A thread of its own writes the log: a slow journald pipe or terminal must not stall
    // the websocket reads. `_flush` writes what is buffered when `main` returns.
    let (writer, _flush) = NonBlockingBuilder::default()
        .lossy(true)
        .buffered_lines_limit(LOG_BUFFER_LINES)
        .thread_name("sequex-log")
        .finish(std::io::stderr());
    sequex_ingest::count_dropped_log_lines(writer.error_counter());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stderr().is_terminal());
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    // One TLS crypto provider for the websocket and REST clients alike.
    let _ = rustls::crypto::ring::default_provider().install_default();

    // One thread: the websocket reads, the routing and the NATS writes hand off to each
    // other without cross-thread wake-ups, which cost more than the work on these VMs.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("cannot start the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(sequex_ingest::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            ExitCode::from(error.exit_code())
        }
    }
}
