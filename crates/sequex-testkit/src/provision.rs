//! Applies `configs/*.json` to a server through the JetStream API, unchanged: the same
//! JSON that `nats stream add --config` and `nats consumer add STREAM --config` take.

use std::path::Path;

use serde_json::Value;

use crate::Error;

pub use sequex_streams::CONSUMER_FILES;

/// The stream files, in creation order (RECORD sources TRADE): `sequex-streams`' list.
pub const STREAM_FILES: [&str; 2] = [
    sequex_streams::STREAM_FILES[0].1,
    sequex_streams::STREAM_FILES[1].1,
];

/// Creates every stream, then every consumer, from the files in `dir`.
pub async fn provision_all(client: &async_nats::Client, dir: &Path) -> Result<(), Error> {
    for file in STREAM_FILES {
        add_stream(client, &dir.join(file)).await?;
    }
    for (consumer, file) in CONSUMER_FILES {
        add_consumer(client, consumer.stream().name(), &dir.join(file)).await?;
    }
    Ok(())
}

/// A fresh server with TRADE and RECORD created from `configs/`, and a client.
pub async fn server_with_streams() -> Result<(crate::NatsServer, async_nats::Client), Error> {
    let server = crate::NatsServer::start().await?;
    let client = server.connect().await?;
    for file in STREAM_FILES {
        add_stream(&client, &crate::configs_dir().join(file)).await?;
    }
    Ok((server, client))
}

/// `nats stream add --config FILE`: returns the server's stream info.
pub async fn add_stream(client: &async_nats::Client, file: &Path) -> Result<Value, Error> {
    stream_request(client, "CREATE", &read_json(file)?).await
}

/// `nats stream add` (`verb` `CREATE`) or `nats stream edit` (`UPDATE`) with a config
/// given as JSON.
pub async fn stream_request(
    client: &async_nats::Client,
    verb: &str,
    config: &Value,
) -> Result<Value, Error> {
    sequex_streams::api::put_stream(client, verb, config)
        .await
        .map_err(api_error)
}

/// `nats consumer add STREAM --config FILE`: returns the server's consumer info.
pub async fn add_consumer(
    client: &async_nats::Client,
    stream: &str,
    file: &Path,
) -> Result<Value, Error> {
    sequex_streams::api::put_consumer(client, stream, &read_json(file)?)
        .await
        .map_err(api_error)
}

/// `nats stream rm NAME -f`.
pub async fn delete_stream(client: &async_nats::Client, name: &str) -> Result<Value, Error> {
    sequex_streams::api::delete_stream(client, name)
        .await
        .map_err(api_error)
}

/// `nats stream info NAME --json`.
pub async fn stream_info(client: &async_nats::Client, name: &str) -> Result<Value, Error> {
    sequex_streams::api::stream_info(client, name)
        .await
        .map_err(api_error)?
        .ok_or_else(|| Error::Api(format!("stream {name} not found")))
}

/// Reads a JSON file.
pub fn read_json(file: &Path) -> Result<Value, Error> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::Setup(format!("cannot read {}: {e}", file.display())))?;
    serde_json::from_str(&text).map_err(|e| Error::Api(format!("{}: {e}", file.display())))
}

fn api_error(error: sequex_streams::api::ApiError) -> Error {
    Error::Api(error.to_string())
}
