//! Applies `configs/*.json` to a server through the JetStream API, unchanged: the same
//! JSON that `nats stream add --config` and `nats consumer add STREAM --config` take.

use std::path::Path;

use sequex_subjects::Consumer;
use serde_json::{Value, json};

use crate::Error;

/// The stream files, in creation order (RECORD sources TRADE).
pub const STREAM_FILES: [&str; 2] = ["stream_trade.json", "stream_record.json"];

/// The consumer files, with the consumer each defines (its stream is the `STREAM` of
/// `nats consumer add`).
pub const CONSUMER_FILES: [(Consumer, &str); 3] = [
    (Consumer::TradePubsub, "consumer_trade_pubsub.json"),
    (Consumer::TradeWorkQueue, "consumer_trade_work_queue.json"),
    (Consumer::Record, "consumer_record.json"),
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
    let name = config["name"]
        .as_str()
        .ok_or_else(|| Error::Api(format!("stream config without \"name\": {config}")))?;
    api(client, &format!("$JS.API.STREAM.{verb}.{name}"), config).await
}

/// `nats consumer add STREAM --config FILE`: returns the server's consumer info.
pub async fn add_consumer(
    client: &async_nats::Client,
    stream: &str,
    file: &Path,
) -> Result<Value, Error> {
    let config = read_json(file)?;
    let name = config["durable_name"]
        .as_str()
        .ok_or_else(|| Error::Api(format!("{}: no \"durable_name\"", file.display())))?;
    let request = json!({ "stream_name": stream, "config": config });
    api(
        client,
        &format!("$JS.API.CONSUMER.CREATE.{stream}.{name}"),
        &request,
    )
    .await
}

/// `nats stream rm NAME -f`.
pub async fn delete_stream(client: &async_nats::Client, name: &str) -> Result<Value, Error> {
    api(client, &format!("$JS.API.STREAM.DELETE.{name}"), &json!({})).await
}

/// `nats stream info NAME --json`.
pub async fn stream_info(client: &async_nats::Client, name: &str) -> Result<Value, Error> {
    api(client, &format!("$JS.API.STREAM.INFO.{name}"), &json!({})).await
}

/// Reads a JSON file.
pub fn read_json(file: &Path) -> Result<Value, Error> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::Setup(format!("cannot read {}: {e}", file.display())))?;
    serde_json::from_str(&text).map_err(|e| Error::Api(format!("{}: {e}", file.display())))
}

async fn api(client: &async_nats::Client, subject: &str, body: &Value) -> Result<Value, Error> {
    let api = subject.strip_prefix("$JS.API.").unwrap_or(subject);
    sequex_streams::api::request(client, api, body)
        .await
        .map_err(|e| Error::Api(e.to_string()))
}
