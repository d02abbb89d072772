//! What the README promises of TRADE, RECORD and their consumers, checked on a real
//! nats-server provisioned only from the files in `configs/`.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use async_nats::HeaderMap;
use async_nats::jetstream::{self, consumer::PullConsumer, stream::Stream as JsStream};
use bytes::Bytes;
use futures::StreamExt;
use sequex_subjects::{Channel, Consumer, Stream, Subject, Symbol};
use sequex_testkit::{CONSUMER_FILES, NatsServer, STREAM_FILES, configs_dir, provision};

/// A server with both streams (consumers are added by the tests that need them, so that
/// "deliver new" has a before and an after).
async fn with_streams() -> (NatsServer, async_nats::Client, jetstream::Context) {
    let (server, client) = provision::server_with_streams()
        .await
        .expect("server with streams");
    let js = jetstream::new(client.clone());
    (server, client, js)
}

async fn add_consumers(client: &async_nats::Client) {
    for (consumer, file) in CONSUMER_FILES {
        provision::add_consumer(client, consumer.stream().name(), &configs_dir().join(file))
            .await
            .unwrap_or_else(|e| panic!("{file}: {e}"));
    }
}

fn live(channel: Channel, symbol: &'static str) -> Subject {
    Subject::new(Stream::Trade, channel, &Symbol::from_static(symbol))
}

/// A core publish (no reply subject) of `payload` on the live subject.
async fn send(
    client: &async_nats::Client,
    channel: Channel,
    symbol: &'static str,
    payload: &'static str,
) {
    client
        .publish(live(channel, symbol), payload.into())
        .await
        .unwrap();
}

async fn message_count(js: &jetstream::Context, stream: Stream) -> u64 {
    let mut s = js.get_stream(stream.name()).await.expect("stream exists");
    s.info().await.expect("stream info").state.messages
}

/// Polls until `stream` holds `want` messages; RECORD's sourcing is asynchronous.
async fn wait_for_count(js: &jetstream::Context, stream: Stream, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let have = message_count(js, stream).await;
        if have == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{stream} holds {have} messages, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn last_on(
    stream: &JsStream,
    subject: &str,
) -> async_nats::jetstream::message::StreamMessage {
    stream
        .get_last_raw_message_by_subject(subject)
        .await
        .unwrap_or_else(|e| panic!("no message on {subject}: {e}"))
}

#[tokio::test]
async fn core_publish_is_stored_and_never_acked() {
    let (_server, client, js) = with_streams().await;
    let subject = live(Channel::Trade, "BTCUSDT");
    let inbox = client.new_inbox();
    let mut acks = client.subscribe(inbox.clone()).await.unwrap();

    // Fire-and-forget, and even with a reply subject: TRADE is `no_ack`.
    client.publish(subject.clone(), "a".into()).await.unwrap();
    client
        .publish_with_reply(subject.clone(), inbox, "b".into())
        .await
        .unwrap();
    client.flush().await.unwrap();

    wait_for_count(&js, Stream::Trade, 2).await;
    // The info round trip above went through the server after both stores, so an ack, had
    // one been sent, would already be on its way.
    let ack = tokio::time::timeout(Duration::from_millis(500), acks.next()).await;
    assert!(ack.is_err(), "TRADE sent an ack: {ack:?}");
}

#[tokio::test]
async fn record_copies_payload_and_headers_byte_for_byte() {
    let (_server, client, js) = with_streams().await;
    let payload = Bytes::from_static(br#"{"e":"trade","E":1,"s":"BTCUSDT","t":7,"p":"1.0"}"#);
    let mut headers = HeaderMap::new();
    headers.insert("Sequex-Receive-Time-Ns", "1723161255343000000");
    for channel in Channel::ALL {
        // The id is unique per stream, not per subject: it must name the channel.
        let mut headers = headers.clone();
        headers.insert(
            "Nats-Msg-Id",
            format!("binance-spot:{channel}:BTCUSDT:7").as_str(),
        );
        client
            .publish_with_headers(live(channel, "BTCUSDT"), headers.clone(), payload.clone())
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    wait_for_count(&js, Stream::Record, 2).await;

    let trade = js.get_stream("TRADE").await.unwrap();
    let record = js.get_stream("RECORD").await.unwrap();
    for channel in Channel::ALL {
        let original = last_on(&trade, live(channel, "BTCUSDT").as_str()).await;
        let copy_subject = live(channel, "BTCUSDT").in_stream(Stream::Record);
        let copy = last_on(&record, copy_subject.as_str()).await;
        assert_eq!(copy.subject.as_str(), copy_subject.as_str());
        assert_eq!(copy.payload, original.payload);
        assert_eq!(copy.payload, payload);
        for (name, values) in original.headers.iter() {
            assert_eq!(
                copy.headers.get_all(name.as_ref()).collect::<Vec<_>>(),
                values.iter().collect::<Vec<_>>(),
                "{name}"
            );
        }
        // The only header the server adds: where the copy came from.
        let added: Vec<String> = copy
            .headers
            .iter()
            .map(|(name, _)| name.to_string())
            .filter(|name| original.headers.get(name.as_str()).is_none())
            .collect();
        assert_eq!(added, ["Nats-Stream-Source"]);
    }
}

#[tokio::test]
async fn trade_forgets_after_five_seconds_record_keeps() {
    let (_server, client, js) = with_streams().await;
    let published = Instant::now();
    send(&client, Channel::Depth, "ETHUSDT", "d").await;
    client.flush().await.unwrap();
    wait_for_count(&js, Stream::Record, 1).await;
    assert_eq!(message_count(&js, Stream::Trade).await, 1);

    let deadline = published + Duration::from_secs(15);
    while message_count(&js, Stream::Trade).await > 0 {
        assert!(
            Instant::now() < deadline,
            "TRADE still holds the message after 15 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        published.elapsed() >= Duration::from_secs(5),
        "TRADE forgot before max_age"
    );
    assert_eq!(message_count(&js, Stream::Record).await, 1);
    let record = js.get_stream("RECORD").await.unwrap();
    assert_eq!(last_on(&record, "record.depth.ETHUSDT").await.payload, "d");
}

#[tokio::test]
async fn subjects_outside_the_patterns_are_not_captured() {
    let (_server, client, js) = with_streams().await;
    for subject in [
        "TRADE.book.BTCUSDT",
        "TRADE.trade",
        "TRADE",
        "trade.BTCUSDT",
        "record.book.X",
        "TRADEX.trade.BTCUSDT",
    ] {
        client.publish(subject, "x".into()).await.unwrap();
    }
    send(&client, Channel::Trade, "BTCUSDT", "ok").await;
    client.flush().await.unwrap();
    wait_for_count(&js, Stream::Record, 1).await;
    assert_eq!(message_count(&js, Stream::Trade).await, 1);
}

#[tokio::test]
async fn pubsub_consumer_fans_out_new_messages_without_acks() {
    let (_server, client, js) = with_streams().await;
    send(&client, Channel::Trade, "BTCUSDT", "before").await;
    client.flush().await.unwrap();
    wait_for_count(&js, Stream::Trade, 1).await;

    let deliver = Consumer::TradePubsub.deliver_subject().unwrap();
    let mut subscribers = [
        client.subscribe(deliver).await.unwrap(),
        client.subscribe(deliver).await.unwrap(),
    ];
    add_consumers(&client).await;
    for payload in ["one", "two"] {
        client
            .publish(live(Channel::Depth, "BTCUSDT"), payload.into())
            .await
            .unwrap();
    }
    client.flush().await.unwrap();

    for subscriber in &mut subscribers {
        let mut got = Vec::new();
        while got.len() < 2 {
            let msg = tokio::time::timeout(Duration::from_secs(10), subscriber.next())
                .await
                .expect("delivery within 10 s")
                .expect("subscription open");
            // Skip flow-control and heartbeat status messages (no payload, a Status header).
            if msg.status.is_none() && !msg.payload.is_empty() {
                got.push(msg.payload);
            }
        }
        assert_eq!(
            got,
            ["one", "two"],
            "every subscriber sees only what came after"
        );
    }
    let mut consumer = js
        .get_stream("TRADE")
        .await
        .unwrap()
        .get_consumer::<jetstream::consumer::push::Config>(Consumer::TradePubsub.name())
        .await
        .unwrap();
    let info = consumer.info().await.unwrap();
    assert_eq!(info.config.ack_policy, jetstream::consumer::AckPolicy::None);
    assert_eq!(info.num_ack_pending, 0);
}

async fn pull(js: &jetstream::Context, consumer: Consumer) -> PullConsumer {
    js.get_stream(consumer.stream().name())
        .await
        .unwrap()
        .get_consumer(consumer.name())
        .await
        .unwrap()
}

/// Fetches what is available (at most `max`) and acks it.
async fn fetch_and_ack(consumer: &PullConsumer, max: usize) -> Vec<(String, Bytes)> {
    let mut batch = consumer.fetch().max_messages(max).messages().await.unwrap();
    let mut got = Vec::new();
    while let Some(msg) = batch.next().await {
        let msg = msg.unwrap();
        got.push((msg.subject.to_string(), msg.payload.clone()));
        msg.ack().await.unwrap();
    }
    got
}

#[tokio::test]
async fn work_queue_consumer_gives_each_message_to_one_worker() {
    let (_server, client, js) = with_streams().await;
    send(&client, Channel::Trade, "BTCUSDT", "before").await;
    client.flush().await.unwrap();
    wait_for_count(&js, Stream::Trade, 1).await;
    add_consumers(&client).await;

    let sent: BTreeSet<String> = (0..10).map(|i| format!("m{i}")).collect();
    for payload in &sent {
        client
            .publish(live(Channel::Trade, "BTCUSDT"), payload.clone().into())
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    wait_for_count(&js, Stream::Trade, 11).await;

    let workers = [
        pull(&js, Consumer::TradeWorkQueue).await,
        pull(&js, Consumer::TradeWorkQueue).await,
    ];
    let mut seen = Vec::new();
    for round in 0.. {
        let got = fetch_and_ack(&workers[round % 2], 3).await;
        if got.is_empty() {
            break;
        }
        seen.extend(
            got.into_iter()
                .map(|(_, p)| String::from_utf8(p.to_vec()).unwrap()),
        );
    }
    assert_eq!(
        seen.len(),
        sent.len(),
        "each message exactly once: {seen:?}"
    );
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), sent);

    let mut consumer = pull(&js, Consumer::TradeWorkQueue).await;
    let info = consumer.info().await.unwrap();
    assert_eq!(
        info.config.ack_policy,
        jetstream::consumer::AckPolicy::Explicit
    );
    assert_eq!((info.num_pending, info.num_ack_pending), (0, 0));
}

#[tokio::test]
async fn record_consumer_replays_everything_recorded() {
    let (_server, client, js) = with_streams().await;
    send(&client, Channel::Trade, "BTCUSDT", "early").await;
    send(&client, Channel::Depth, "ETHUSDT", "early-depth").await;
    client.flush().await.unwrap();
    wait_for_count(&js, Stream::Record, 2).await;
    add_consumers(&client).await;
    send(&client, Channel::Trade, "BTCUSDT", "late").await;
    client.flush().await.unwrap();
    wait_for_count(&js, Stream::Record, 3).await;

    let consumer = pull(&js, Consumer::Record).await;
    let got = fetch_and_ack(&consumer, 100).await;
    let expected = [
        ("record.trade.BTCUSDT", "early"),
        ("record.depth.ETHUSDT", "early-depth"),
        ("record.trade.BTCUSDT", "late"),
    ];
    assert_eq!(
        got.iter()
            .map(|(s, p)| (s.as_str(), &p[..]))
            .collect::<Vec<_>>(),
        expected.map(|(s, p)| (s, p.as_bytes())).to_vec()
    );
    assert!(
        fetch_and_ack(&consumer, 100).await.is_empty(),
        "acked messages are not redelivered"
    );
}

/// Deleting TRADE leaves RECORD and its data alone. RECORD's sourcing does not resume by
/// itself when TRADE is recreated; the README's procedure (recreate TRADE past the old
/// last sequence, then re-add RECORD's source) resumes it without losing a message.
#[tokio::test]
async fn deleting_trade_keeps_record_and_the_documented_procedure_resumes_sourcing() {
    let (_server, client, js) = with_streams().await;
    send(&client, Channel::Trade, "BTCUSDT", "kept").await;
    client.flush().await.unwrap();
    wait_for_count(&js, Stream::Record, 1).await;
    let info = provision::stream_info(&client, "TRADE").await.unwrap();
    let last_seq = info["state"]["last_seq"].as_u64().unwrap();

    provision::delete_stream(&client, "TRADE").await.unwrap();
    assert!(js.get_stream("TRADE").await.is_err(), "TRADE is gone");
    assert_eq!(
        message_count(&js, Stream::Record).await,
        1,
        "RECORD keeps its data"
    );

    // 1. `jq '.first_seq = LAST+1' configs/stream_trade.json` then `nats stream add`.
    let mut trade = provision::read_json(&configs_dir().join("stream_trade.json")).unwrap();
    trade["first_seq"] = (last_seq + 1).into();
    provision::stream_request(&client, "CREATE", &trade)
        .await
        .unwrap();
    for i in 0..3 {
        client
            .publish(live(Channel::Trade, "BTCUSDT"), format!("after{i}").into())
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    // 2. `nats stream edit RECORD` without its source, then with configs/stream_record.json.
    let record = provision::read_json(&configs_dir().join("stream_record.json")).unwrap();
    let mut unsourced = record.clone();
    unsourced.as_object_mut().unwrap().remove("sources");
    provision::stream_request(&client, "UPDATE", &unsourced)
        .await
        .unwrap();
    provision::stream_request(&client, "UPDATE", &record)
        .await
        .unwrap();

    wait_for_count(&js, Stream::Record, 4).await;
}

/// The files and `sequex-subjects` name the same streams, subjects and consumers.
#[test]
fn config_files_agree_with_the_subject_grammar() {
    use sequex_subjects::Filter;
    for (stream, file) in [
        (Stream::Trade, STREAM_FILES[0]),
        (Stream::Record, STREAM_FILES[1]),
    ] {
        let config = provision::read_json(&configs_dir().join(file)).unwrap();
        assert_eq!(config["name"], stream.name(), "{file}");
        let subjects: Vec<String> = Channel::ALL
            .iter()
            .map(|c| Filter::channel(stream, *c).to_string())
            .collect();
        assert_eq!(config["subjects"], serde_json::json!(subjects), "{file}");
        assert!(
            config["duplicate_window"]
                .as_u64()
                .expect("duplicate_window is set")
                <= config["max_age"].as_u64().expect("max_age is set"),
            "{file}"
        );
    }
    for (consumer, file) in CONSUMER_FILES {
        let config = provision::read_json(&configs_dir().join(file)).unwrap();
        assert_eq!(config["durable_name"], consumer.name(), "{file}");
        assert_eq!(
            config["deliver_subject"].as_str(),
            consumer.deliver_subject(),
            "{file}"
        );
    }
}
