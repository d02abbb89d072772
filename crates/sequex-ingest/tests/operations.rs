//! Routine operations without a person, on real nats-server processes: the provisioning
//! tool (`sequex-streams`) applies and checks `configs/`, recreates TRADE after a server
//! restart past what RECORD holds and re-attaches RECORD's source, while the daemon counts
//! and flags what the restart cost.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::{Flags, assert_every_hole_flagged, btcusdt, eventually, read_stream, replay};
use sequex_streams::{Configs, Finding, Mode, Provisioner};
use sequex_testkit::{NatsServer, Script, configs_dir, provision};
use serde_json::json;

fn provisioner(client: &async_nats::Client) -> Provisioner {
    Provisioner::new(client.clone(), Configs::load(&configs_dir()).unwrap())
}

/// The `sequex-streams` binary of this build (beside the daemon's; `cargo test
/// --workspace` builds both).
fn streams_bin() -> PathBuf {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_sequex-ingest")).with_file_name("sequex-streams");
    assert!(
        bin.is_file(),
        "{} is missing: run `cargo build -p sequex-streams` (scripts/test does)",
        bin.display()
    );
    bin
}

async fn run_tool(url: &str, args: &[&str]) -> (Option<i32>, String) {
    let out = tokio::process::Command::new(streams_bin())
        .args(["--nats-url", url, "--configs"])
        .arg(configs_dir())
        .args(args)
        .output()
        .await
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

#[tokio::test]
async fn apply_creates_everything_once_and_reports_drift_field_by_field() {
    let server = NatsServer::start().await.unwrap();
    let client = server.connect().await.unwrap();
    let tool = provisioner(&client);

    let created = tool.run(Mode::Apply).await.unwrap();
    let created: Vec<String> = created.iter().map(ToString::to_string).collect();
    assert_eq!(
        created,
        [
            "created: stream TRADE",
            "created: stream RECORD",
            "created: consumer TRADE/TRADE_PUBSUB",
            "created: consumer TRADE/TRADE_WORK_QUEUE",
            "created: consumer RECORD/RECORD_CONSUMER",
        ]
    );
    assert_eq!(tool.run(Mode::Apply).await.unwrap(), [], "idempotent");
    assert_eq!(
        tool.run(Mode::Check).await.unwrap(),
        [],
        "nothing to report"
    );

    // Someone edits TRADE by hand.
    let mut edited = provision::read_json(&configs_dir().join("stream_trade.json")).unwrap();
    edited["max_age"] = json!(60_000_000_000u64);
    provision::stream_request(&client, "UPDATE", &edited)
        .await
        .unwrap();
    let drift = Finding::Drift {
        what: "stream TRADE".into(),
        field: "max_age".into(),
        live: json!(60_000_000_000u64),
        file: json!(5_000_000_000u64),
    };
    assert_eq!(
        tool.run(Mode::Check).await.unwrap(),
        std::slice::from_ref(&drift)
    );
    assert_eq!(
        tool.run(Mode::Apply).await.unwrap(),
        [drift],
        "reported, never changed silently"
    );
    let (code, out) = run_tool(&server.url(), &["check"]).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains(
            "drift: stream TRADE max_age is 60000000000 on the server, 5000000000 in its file"
        ),
        "{out}"
    );

    assert_eq!(
        tool.run(Mode::Update).await.unwrap(),
        [Finding::Updated("stream TRADE".into())]
    );
    let (code, out) = run_tool(&server.url(), &["check"]).await;
    assert_eq!(code, Some(0), "{out}");

    let (code, out) = run_tool("nats://127.0.0.1:9", &["check"]).await;
    assert_eq!(code, Some(2), "unreachable server: {out}");
    assert!(
        out.contains("cannot connect to nats://127.0.0.1:9"),
        "{out}"
    );
}

#[tokio::test]
async fn a_deleted_trade_is_recreated_past_what_record_holds_and_record_resumes() {
    let server = NatsServer::start().await.unwrap();
    let client = server.connect().await.unwrap();
    let tool = provisioner(&client);
    tool.run(Mode::Apply).await.unwrap();
    for i in 0..5 {
        client
            .publish("TRADE.trade.BTCUSDT", format!("{i}").into())
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    eventually(Duration::from_secs(10), "RECORD holds 5", || async {
        common::stream_count(&client, "RECORD").await == 5
    })
    .await;
    provision::delete_stream(&client, "TRADE").await.unwrap();

    let found: Vec<String> = tool
        .run(Mode::Check)
        .await
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        found,
        ["missing: stream TRADE"],
        "TRADE's consumers went with it"
    );
    let done = tool.run(Mode::Apply).await.unwrap();
    assert_eq!(
        &done[..2],
        [
            Finding::RecreatedTrade { first_seq: 6 },
            Finding::Reattached { sourced: 5 }
        ]
    );
    for i in 5..8 {
        client
            .publish("TRADE.trade.BTCUSDT", format!("{i}").into())
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    eventually(
        Duration::from_secs(20),
        "RECORD resumes: 8 messages",
        || async { common::stream_count(&client, "RECORD").await == 8 },
    )
    .await;
}

#[tokio::test]
async fn a_server_restart_mid_replay_recovers_without_a_person() {
    let mut server = NatsServer::start().await.unwrap();
    let client = server.connect().await.unwrap();
    provisioner(&client).run(Mode::Apply).await.unwrap();
    drop(client);
    let mut watch = tokio::process::Command::new(streams_bin())
        .args(["--nats-url", &server.url(), "--configs"])
        .arg(configs_dir())
        .args(["watch", "--interval", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (frames, _) = btcusdt(6000);
    let total = frames.len() as f64;
    let (_fake, daemon) = replay(
        &server,
        Script {
            frames,
            pace: Some(Duration::from_millis(1)),
            ..Script::default()
        },
        &[],
    )
    .await;
    eventually(Duration::from_secs(20), "publishing", || async {
        daemon.metric("sequex_published_messages_total", &[]).await > 500.0
    })
    .await;

    let restarted = std::time::Instant::now();
    server.restart().await.unwrap();
    eventually(Duration::from_secs(30), "ready again by itself", || async {
        daemon.ready().await && daemon.metric("sequex_published_messages_total", &[]).await > 0.0
    })
    .await;
    let recovery = restarted.elapsed();
    eventually(Duration::from_secs(60), "every frame read", || async {
        daemon.metric("sequex_frames_total", &[]).await >= total
    })
    .await;
    let lost = daemon
        .metric("sequex_dropped_messages_total", &["reason=\"no_stream\""])
        .await;
    assert!(lost > 0.0, "the restart window is counted");

    let client = server.connect().await.unwrap();
    let published = daemon.metric("sequex_published_messages_total", &[]).await;
    eventually(Duration::from_secs(30), "RECORD caught up", || async {
        let record = common::stream_count(&client, "RECORD").await as f64;
        record >= published - 1000.0
            && record == common::stream_count(&client, "RECORD").await as f64
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    watch.start_kill().unwrap();
    let mut log = String::new();
    tokio::io::AsyncReadExt::read_to_string(watch.stderr.as_mut().unwrap(), &mut log)
        .await
        .unwrap();
    let record = read_stream(&client, "RECORD").await;
    let holes = assert_every_hole_flagged(&record, Flags::Cover);
    assert!(holes >= 1, "the restart left a hole in RECORD, flagged");
    eprintln!(
        "restart: ready again after {recovery:?}; {lost} messages dropped and counted; {} in RECORD, {holes} holes, each flagged",
        record.len()
    );

    assert!(log.contains("recreated: TRADE, from sequence"), "{log}");
    assert!(
        log.contains("re-attached: RECORD's source of TRADE"),
        "{log}"
    );
}
