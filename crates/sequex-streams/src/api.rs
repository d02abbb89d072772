//! The JetStream API as `nats stream add --config` speaks it: the JSON of `configs/` sent
//! unchanged to `$JS.API.*`, the server's JSON back.

use std::time::Duration;

use serde_json::{Value, json};

/// How long one API request may take (a cluster electing a leader answers late).
const TIMEOUT: Duration = Duration::from_secs(5);

/// JetStream's error code for a stream that does not exist.
pub const STREAM_NOT_FOUND: u64 = 10059;
/// JetStream's error code for a consumer that does not exist.
pub const CONSUMER_NOT_FOUND: u64 = 10014;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server answered with a JetStream error.
    #[error("{subject}: {description} (JetStream error {code})")]
    JetStream {
        /// The API subject.
        subject: String,
        /// `err_code`.
        code: u64,
        /// What the server said.
        description: String,
    },
    /// No answer (server down, JetStream off, leader election under way).
    #[error("{subject}: {error}")]
    Request {
        /// The API subject.
        subject: String,
        /// What failed.
        error: async_nats::RequestError,
    },
    /// No answer within the time limit.
    #[error("{subject}: no answer in {TIMEOUT:?}")]
    Timeout {
        /// The API subject.
        subject: String,
    },
    /// An answer that is not JetStream's JSON.
    #[error("{subject}: unreadable answer: {error}")]
    Reply {
        /// The API subject.
        subject: String,
        /// What failed.
        error: serde_json::Error,
    },
}

impl ApiError {
    /// The JetStream error code, if the server answered with one.
    pub fn code(&self) -> Option<u64> {
        match self {
            ApiError::JetStream { code, .. } => Some(*code),
            _ => None,
        }
    }
}

/// One request to `$JS.API.<api>` with `body`; the answer, or the server's error.
pub async fn request(
    client: &async_nats::Client,
    api: &str,
    body: &Value,
) -> Result<Value, ApiError> {
    let subject = format!("$JS.API.{api}");
    let reply = client.request(subject.clone(), body.to_string().into());
    let reply = match tokio::time::timeout(TIMEOUT, reply).await {
        Err(_) => return Err(ApiError::Timeout { subject }),
        Ok(Err(error)) => return Err(ApiError::Request { subject, error }),
        Ok(Ok(reply)) => reply,
    };
    let value: Value = serde_json::from_slice(&reply.payload).map_err(|error| ApiError::Reply {
        subject: subject.clone(),
        error,
    })?;
    match value.get("error") {
        Some(error) => Err(ApiError::JetStream {
            subject,
            code: error["err_code"].as_u64().unwrap_or(0),
            description: error["description"].as_str().unwrap_or("").to_string(),
        }),
        None => Ok(value),
    }
}

/// `STREAM.INFO`: `None` when the stream does not exist.
pub async fn stream_info(
    client: &async_nats::Client,
    name: &str,
) -> Result<Option<Value>, ApiError> {
    match request(client, &format!("STREAM.INFO.{name}"), &json!({})).await {
        Ok(info) => Ok(Some(info)),
        Err(e) if e.code() == Some(STREAM_NOT_FOUND) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `STREAM.CREATE` (`nats stream add`) or `STREAM.UPDATE` (`nats stream edit`) with a
/// config; the stream's info.
pub async fn put_stream(
    client: &async_nats::Client,
    verb: &str,
    config: &Value,
) -> Result<Value, ApiError> {
    let name = config["name"].as_str().unwrap_or_default();
    request(client, &format!("STREAM.{verb}.{name}"), config).await
}

/// `CONSUMER.INFO`: `None` when the consumer does not exist.
pub async fn consumer_info(
    client: &async_nats::Client,
    stream: &str,
    name: &str,
) -> Result<Option<Value>, ApiError> {
    match request(
        client,
        &format!("CONSUMER.INFO.{stream}.{name}"),
        &json!({}),
    )
    .await
    {
        Ok(info) => Ok(Some(info)),
        Err(e) if matches!(e.code(), Some(CONSUMER_NOT_FOUND | STREAM_NOT_FOUND)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `CONSUMER.CREATE` (`nats consumer add STREAM --config`), which also updates what a
/// consumer allows to be changed.
pub async fn put_consumer(
    client: &async_nats::Client,
    stream: &str,
    config: &Value,
) -> Result<Value, ApiError> {
    let name = config["durable_name"].as_str().unwrap_or_default();
    let body = json!({ "stream_name": stream, "config": config });
    request(client, &format!("CONSUMER.CREATE.{stream}.{name}"), &body).await
}

/// `STREAM.DELETE` (`nats stream rm -f`).
pub async fn delete_stream(client: &async_nats::Client, name: &str) -> Result<Value, ApiError> {
    request(client, &format!("STREAM.DELETE.{name}"), &json!({})).await
}
