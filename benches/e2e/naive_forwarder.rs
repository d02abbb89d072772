//! The baseline the daemon is measured against: what a straightforward forwarder looks
//! like. A `serde_json::Value` per frame, `format!` for the subject and message id, the
//! payload re-serialised, one awaited publish per message, the default multi-thread
//! runtime.
//!
//! naive-forwarder WS_URL NATS_URL SYMBOL

use futures::StreamExt;
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (ws_url, nats_url, symbol) = (
        args.next().expect("WS_URL"),
        args.next().expect("NATS_URL"),
        args.next().expect("SYMBOL").to_ascii_lowercase(),
    );
    let client = async_nats::connect(nats_url)
        .await
        .expect("connect to NATS");
    let url = format!("{ws_url}/stream?streams={symbol}@trade/{symbol}@depth@100ms");
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect websocket");
    while let Some(Ok(message)) = ws.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        let data = &value["data"];
        let (channel, id) = match data["e"].as_str() {
            Some("trade") => ("trade", data["t"].as_u64().unwrap_or(0)),
            Some("depthUpdate") => ("depth", data["u"].as_u64().unwrap_or(0)),
            _ => continue,
        };
        let symbol = data["s"].as_str().unwrap_or("").to_string();
        let subject = format!("TRADE.{channel}.{symbol}");
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            "Nats-Msg-Id",
            format!("binance-spot:{channel}:{symbol}:{id}").as_str(),
        );
        let payload = serde_json::to_vec(data).expect("a Value serialises");
        if client
            .publish_with_headers(subject, headers, payload.into())
            .await
            .is_err()
        {
            break;
        }
    }
}
