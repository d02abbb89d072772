//! `sequex-streams [NATS_URL]`: creates the streams and consumers of `configs/` on a server,
//! as `nats stream add --config` and `nats consumer add --config` would, for machines
//! without the nats CLI (`scripts/run` uses it). Existing identical streams are left as
//! they are; a stream with a different config is reported, not changed.

use std::process::ExitCode;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("NATS_URL").ok())
        .unwrap_or_else(|| "nats://127.0.0.1:4222".to_string());
    let client = match async_nats::connect(&url).await {
        Ok(client) => client,
        Err(e) => {
            eprintln!("error: cannot connect to {url}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match sequex_testkit::provision_all(&client, &sequex_testkit::configs_dir()).await {
        Ok(()) => {
            println!("streams TRADE, RECORD and their consumers are in place on {url}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
