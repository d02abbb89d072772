//! `sequex-ingest`: see `sequex-ingest --help`.

use std::process::ExitCode;

use clap::Parser;
use sequex_ingest::Cli;
use sequex_ingest::config::LogFormat;
use tracing_subscriber::EnvFilter;

// Every message allocates (the websocket frame, the header map, async-nats' write of the
// headers): glibc's allocator took a quarter of the daemon's CPU at 300k msgs/s.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_new(&cli.log).unwrap_or_else(|e| {
        eprintln!(
            "error: invalid --log filter {:?}: {e}; using \"info\"",
            cli.log
        );
        EnvFilter::new("info")
    });
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }

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
