//! The least-privilege users of `deploy/nats-users.conf`, on a real server: each allowed
//! action works, each forbidden one is refused with the error the user will see; the
//! daemon runs as `ingest` and the provisioning tool as `admin`.

mod common;

use std::time::Duration;

use common::{btcusdt, eventually};
use sequex_streams::{Configs, Mode, Provisioner};
use sequex_testkit::{NatsServer, configs_dir, workspace_root};
use serde_json::json;
use tokio::sync::mpsc;

const USERS: [(&str, &str); 4] = [
    ("SEQUEX_INGEST_PASSWORD", "ingest-secret"),
    ("SEQUEX_STRATEGY_PASSWORD", "strategy-secret"),
    ("SEQUEX_RECORDER_PASSWORD", "recorder-secret"),
    ("SEQUEX_ADMIN_PASSWORD", "admin-secret"),
];

async fn server() -> NatsServer {
    let config = workspace_root().join("deploy/nats-users.conf");
    NatsServer::start_with_env(&["-c", &config.display().to_string()], &USERS)
        .await
        .unwrap()
}

/// A client logged in as `user`, and the errors the server sends it.
async fn login(
    server: &NatsServer,
    user: &str,
) -> (async_nats::Client, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let client =
        async_nats::ConnectOptions::with_user_and_password(user.into(), format!("{user}-secret"))
            .event_callback(move |event| {
                let tx = tx.clone();
                async move {
                    if let async_nats::Event::ServerError(error) = event {
                        let _ = tx.send(error.to_string());
                    }
                }
            })
            .connect(server.url())
            .await
            .unwrap();
    (client, rx)
}

/// The next error the server sent, within a second.
async fn refused(errors: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(2), errors.recv())
        .await
        .expect("the server refused it")
        .unwrap()
        .to_lowercase()
}

async fn api(
    client: &async_nats::Client,
    api: &str,
) -> Result<serde_json::Value, sequex_streams::api::ApiError> {
    sequex_streams::api::request(client, api, &json!({})).await
}

/// Pulls up to `max` messages from a durable pull consumer within `secs` and acks each;
/// how many came.
async fn fetch_and_ack(
    client: &async_nats::Client,
    stream: &str,
    consumer: &str,
    max: usize,
    secs: u64,
) -> usize {
    let js = async_nats::jetstream::new(client.clone());
    let consumer: async_nats::jetstream::consumer::PullConsumer =
        js.get_consumer_from_stream(consumer, stream).await.unwrap();
    let mut batch = consumer
        .fetch()
        .max_messages(max)
        .expires(Duration::from_secs(secs))
        .messages()
        .await
        .unwrap();
    let mut read = 0;
    while let Some(m) = futures::StreamExt::next(&mut batch).await {
        m.unwrap().ack().await.unwrap();
        read += 1;
    }
    read
}

#[tokio::test]
async fn each_user_may_do_its_job_and_nothing_else() {
    let server = server().await;
    let (admin, _) = login(&server, "admin").await;
    Provisioner::new(admin.clone(), Configs::load(&configs_dir()).unwrap())
        .run(Mode::Apply)
        .await
        .unwrap();

    // ingest: publishes market data, reads stream state.
    let (ingest, mut errors) = login(&server, "ingest").await;
    ingest
        .publish("TRADE.trade.BTCUSDT", "t".into())
        .await
        .unwrap();
    ingest
        .publish("TRADE.depth.BTCUSDT", "d".into())
        .await
        .unwrap();
    ingest.flush().await.unwrap();
    assert!(api(&ingest, "STREAM.INFO.TRADE").await.is_ok());
    assert!(api(&ingest, "STREAM.INFO.RECORD").await.is_ok());
    eventually(Duration::from_secs(10), "TRADE stored both", || async {
        common::stream_count(&admin, "TRADE").await == 2
    })
    .await;
    ingest
        .publish("orders.new.BTCUSDT", "x".into())
        .await
        .unwrap();
    let error = refused(&mut errors).await;
    assert!(
        error
            .to_lowercase()
            .contains("permissions violation for publish to \"orders.new.btcusdt\""),
        "{error}"
    );
    for forbidden in [
        "STREAM.CREATE.X",
        "STREAM.DELETE.TRADE",
        "CONSUMER.MSG.NEXT.RECORD.RECORD_CONSUMER",
    ] {
        assert!(
            api(&ingest, forbidden).await.is_err(),
            "ingest may not {forbidden}"
        );
        let error = refused(&mut errors).await;
        assert!(
            error.contains(&format!("$js.api.{forbidden}").to_lowercase()),
            "{error}"
        );
    }
    assert!(
        sequex_streams::api::stream_info(&admin, "TRADE")
            .await
            .unwrap()
            .is_some(),
        "TRADE is still there"
    );

    // strategy: reads TRADE, never publishes to it.
    let (strategy, mut errors) = login(&server, "strategy").await;
    let mut live = strategy.subscribe("TRADE.trade.>").await.unwrap();
    strategy.flush().await.unwrap();
    // Published until the subscriber sees it: its interest may take a moment to reach
    // the connection ingest publishes on.
    let mut got = None;
    for _ in 0..50 {
        ingest
            .publish("TRADE.trade.BTCUSDT", "t2".into())
            .await
            .unwrap();
        ingest.flush().await.unwrap();
        let next = futures::StreamExt::next(&mut live);
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(200), next).await {
            got = Some(m);
            break;
        }
    }
    let got = got.unwrap_or_else(|| {
        panic!(
            "strategy never received a trade: ingest {:?}, strategy {:?}",
            ingest.connection_state(),
            strategy.connection_state()
        )
    });
    assert_eq!(&got.payload[..], b"t2");
    let read = fetch_and_ack(&strategy, "TRADE", "TRADE_WORK_QUEUE", 10, 1).await;
    assert!(read >= 1, "the work queue hands out a trade");
    strategy
        .publish("TRADE.trade.BTCUSDT", "spoof".into())
        .await
        .unwrap();
    let error = refused(&mut errors).await;
    assert!(
        error.contains("publish to \"trade.trade.btcusdt\""),
        "{error}"
    );
    assert!(api(&strategy, "STREAM.DELETE.TRADE").await.is_err());
    let error = refused(&mut errors).await;
    assert!(error.contains("$js.api.stream.delete.trade"), "{error}");

    // recorder: RECORD through its consumer, nothing of TRADE.
    let (recorder, mut errors) = login(&server, "recorder").await;
    eventually(
        Duration::from_secs(10),
        "RECORD holds 3 or more",
        || async { common::stream_count(&admin, "RECORD").await >= 3 },
    )
    .await;
    assert_eq!(
        fetch_and_ack(&recorder, "RECORD", "RECORD_CONSUMER", 3, 2).await,
        3
    );
    recorder
        .publish("TRADE.trade.BTCUSDT", "x".into())
        .await
        .unwrap();
    assert!(
        refused(&mut errors)
            .await
            .contains("publish to \"trade.trade.btcusdt\"")
    );
    assert!(recorder.subscribe("TRADE.>").await.is_ok());
    let error = refused(&mut errors).await;
    assert!(error.contains("subscription to \"trade.>\""), "{error}");
}

#[tokio::test]
async fn the_daemon_runs_as_ingest_and_the_tool_as_admin() {
    let server = server().await;
    let (admin, _) = login(&server, "admin").await;
    Provisioner::new(admin.clone(), Configs::load(&configs_dir()).unwrap())
        .run(Mode::Apply)
        .await
        .unwrap();
    let (frames, expected) = btcusdt(200);
    let (_fake, daemon) = common::replay(
        &server,
        frames.into(),
        &["--nats-user", "ingest", "--nats-password", "ingest-secret"],
    )
    .await;
    eventually(
        Duration::from_secs(20),
        "RECORD holds every event",
        || async { common::stream_count(&admin, "RECORD").await == expected.len() as u64 },
    )
    .await;
    assert!(daemon.ready().await);
    // The watcher's reads (stream info, RECORD's last message, TRADE's oldest) are allowed.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let logs = daemon.logs();
    assert!(
        !logs.to_lowercase().contains("permissions violation"),
        "{logs}"
    );
}
