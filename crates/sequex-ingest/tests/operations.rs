//! Routine operations without a person, on real nats-server processes: the provisioning
//! tool (`sequex-streams`) applies and checks `configs/`, recreates TRADE after a server
//! restart past what RECORD holds and re-attaches RECORD's source, while the daemon counts
//! and flags what the restart cost.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Flags, assert_every_hole_flagged, btcusdt, eventually, read_stream, replay};
use sequex_streams::{Configs, Finding, Mode, Provisioner};
use sequex_testkit::{NatsServer, Script, configs_dir, provision};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

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
    let log = Arc::new(Mutex::new(String::new()));
    let mut lines = BufReader::new(watch.stderr.take().unwrap()).lines();
    let sink = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let mut log = sink.lock().unwrap();
            log.push_str(&line);
            log.push('\n');
        }
    });
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

    let client = server.connect().await.unwrap();
    let restarted = std::time::Instant::now();
    server.restart().await.unwrap();
    // Ready after having dropped: it saw the outage and came back from it.
    eventually(Duration::from_secs(30), "ready again by itself", || async {
        daemon.ready().await
            && daemon
                .metric("sequex_dropped_messages_total", &["reason=\"no_stream\""])
                .await
                > 0.0
    })
    .await;
    let recovery = restarted.elapsed();
    // RECORD holds a message of the recreated TRADE (whose `first_seq` is set).
    eventually(
        Duration::from_secs(60),
        "RECORD copying the recreated TRADE",
        || async {
            let Ok(trade) = provision::stream_info(&client, "TRADE").await else {
                return false;
            };
            let Ok(record) = provision::stream_info(&client, "RECORD").await else {
                return false;
            };
            let first = trade["config"]["first_seq"].as_u64().unwrap_or(u64::MAX);
            let sourced = sequex_streams::last_sourced(&client, &record).await;
            matches!(sourced, Ok(Some(seq)) if seq >= first)
        },
    )
    .await;
    let resumed = restarted.elapsed();
    eventually(Duration::from_secs(60), "every frame read", || async {
        daemon.metric("sequex_frames_total", &[]).await >= total
    })
    .await;
    let lost = daemon
        .metric("sequex_dropped_messages_total", &["reason=\"no_stream\""])
        .await;
    assert!(lost > 0.0, "the restart window is counted");

    let caught_up = tokio::time::timeout(Duration::from_secs(60), async {
        while !common::record_caught_up(&client).await {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    let log = log.lock().unwrap().clone();
    assert!(
        caught_up.is_ok(),
        "RECORD never held TRADE's last message; watch said:\n{log}\nnats-server said:\n{}",
        server.log()
    );
    watch.start_kill().unwrap();
    let record = read_stream(&client, "RECORD").await;
    // RECORD copies TRADE within milliseconds: at most a few messages are in between.
    let holes = assert_every_hole_flagged(&record, Flags::Cover { unsourced: 20 });
    assert!(
        holes >= 1,
        "the restart left a hole in RECORD, flagged ({} in RECORD); watch said:\n{log}",
        record.len()
    );
    eprintln!(
        "restart: ready again after {recovery:?}, RECORD copying the new TRADE after {resumed:?}; {lost} messages dropped and counted; {} in RECORD, {holes} holes, each flagged",
        record.len()
    );

    assert!(log.contains("recreated: TRADE, from sequence"), "{log}");
    assert!(
        log.contains("re-attached: RECORD's source of TRADE"),
        "{log}"
    );
}

/// TRADE's leader, as its stream info names it.
async fn trade_leader(client: &async_nats::Client) -> Option<String> {
    let info = sequex_streams::api::stream_info(client, "TRADE")
        .await
        .ok()??;
    Some(info["cluster"]["leader"].as_str()?.to_string())
}

/// The ids missing between consecutive live messages of each subject, and how many of
/// them no `Sequex-Gap` names.
fn missing(messages: &[common::Stored]) -> (u64, u64) {
    let mut last: std::collections::HashMap<&str, u64> = Default::default();
    let (mut all, mut unflagged) = (0, 0);
    for m in messages.iter().filter(|m| m.source.is_none()) {
        let (first, last_id) = common::ids(&m.payload);
        if let Some(&previous) = last.get(m.subject.as_str())
            && first > previous + 1
        {
            let hole = first - previous - 1;
            all += hole;
            let flag = m
                .gap
                .as_deref()
                .and_then(sequex_subjects::header::parse_gap);
            if !flag.is_some_and(|f| f.start <= previous + 1 && f.end >= first) {
                unflagged += hole;
            }
        }
        last.insert(m.subject.as_str(), last_id);
    }
    (all, unflagged)
}

#[tokio::test]
async fn losing_the_node_that_leads_trade_costs_the_leaderless_window_and_is_accounted() {
    let mut cluster = sequex_testkit::NatsCluster::start(3).await.unwrap();
    let client = cluster.connect().await.unwrap();
    let configs = Configs::load(&configs_dir().join("cluster")).unwrap();
    Provisioner::new(client.clone(), configs)
        .run(Mode::Apply)
        .await
        .unwrap();
    // What the cluster's provisioning service runs: it re-attaches RECORD's source when
    // the leader change stalls it.
    let _watch = tokio::process::Command::new(streams_bin())
        .args(["--nats-url", &cluster.urls(), "--configs"])
        .arg(configs_dir().join("cluster"))
        .args(["watch", "--interval", "1"])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (frames, _) = btcusdt(6000);
    let total = frames.len() as f64;
    let (_fake, daemon) = common::replay_into(
        &cluster.urls(),
        Script {
            frames,
            pace: Some(Duration::from_millis(2)),
            ..Script::default()
        },
        &[],
    )
    .await;
    eventually(Duration::from_secs(30), "publishing", || async {
        daemon.metric("sequex_published_messages_total", &[]).await > 500.0
    })
    .await;

    let leader = trade_leader(&client).await.expect("TRADE has a leader");
    let index = cluster.index_of(&leader).unwrap();
    cluster.nodes[index].kill().await.unwrap();
    let killed = std::time::Instant::now();
    let survivors: Vec<String> = (0..3)
        .filter(|i| *i != index)
        .map(|i| cluster.nodes[i].url())
        .collect();
    let client = async_nats::connect(survivors.as_slice()).await.unwrap();
    eventually(Duration::from_secs(30), "a new TRADE leader", || async {
        trade_leader(&client).await.is_some_and(|l| l != leader)
    })
    .await;
    let window = killed.elapsed();

    eventually(Duration::from_secs(60), "every frame read", || async {
        daemon.metric("sequex_frames_total", &[]).await >= total
    })
    .await;
    assert!(
        daemon.ready().await,
        "the daemon is still ready, on a survivor"
    );
    // The watcher samples every 5 s.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let estimate = daemon
        .metric("sequex_bus_lost_messages_estimate", &[])
        .await;
    let record = read_stream(&client, "RECORD").await;
    let live = record.iter().filter(|m| m.source.is_none()).count() as f64;
    let dropped = daemon.metric("sequex_dropped_messages_total", &[]).await;
    // Dropped by the daemon (while it reconnected or TRADE was unconfirmed): counted and
    // flagged. The rest of what RECORD misses is what the bus lost.
    let bus_lost = total - live - dropped;
    let (_, unflagged) = missing(&record);
    eprintln!(
        "leader {leader} killed: no TRADE leader for {window:?}; {total} frames: {live} live in RECORD, {dropped} dropped by the daemon (counted, flagged), {bus_lost} lost by the bus ({unflagged} ids unflagged); the daemon's estimate {estimate}"
    );
    assert!(
        (estimate - bus_lost).abs() <= 50.0_f64.max(bus_lost * 0.15),
        "estimate {estimate} vs {bus_lost} lost by the bus"
    );
    if unflagged > 0 {
        assert!(estimate > 0.0, "a silent loss is visible in the estimate");
    }
}

#[tokio::test]
async fn a_whole_cluster_restart_keeps_the_stream_configs_and_record_not_trade_data() {
    let mut cluster = sequex_testkit::NatsCluster::start(3).await.unwrap();
    let client = cluster.connect().await.unwrap();
    let configs = Configs::load(&configs_dir().join("cluster")).unwrap();
    Provisioner::new(client.clone(), configs.clone())
        .run(Mode::Apply)
        .await
        .unwrap();
    for i in 0..10 {
        client
            .publish("TRADE.trade.BTCUSDT", format!("{i}").into())
            .await
            .unwrap();
    }
    client.flush().await.unwrap();
    eventually(Duration::from_secs(20), "RECORD holds 10", || async {
        common::stream_count(&client, "RECORD").await == 10
    })
    .await;
    drop(client);
    for node in &mut cluster.nodes {
        node.kill().await.unwrap();
    }
    for node in &mut cluster.nodes {
        node.restart().await.unwrap();
    }
    let client = cluster.connect().await.unwrap();
    eventually(Duration::from_secs(60), "TRADE and RECORD back", || async {
        sequex_streams::api::stream_info(&client, "TRADE")
            .await
            .is_ok_and(|i| i.is_some())
            && common::stream_count(&client, "RECORD").await == 10
    })
    .await;
    assert_eq!(
        common::stream_count(&client, "TRADE").await,
        0,
        "memory data is gone"
    );
    // Consumers answer once their own leaders are elected, which may take a while longer.
    let tool = Provisioner::new(client.clone(), configs);
    eventually(
        Duration::from_secs(60),
        "configs and consumers survive in the meta layer: check finds nothing",
        || async {
            tool.run(Mode::Check)
                .await
                .is_ok_and(|found| found.is_empty())
        },
    )
    .await;
}

#[tokio::test]
async fn two_redundant_daemons_store_each_event_once_and_survive_losing_either() {
    let (server, client) = common::bus().await;
    provisioner(&client).run(Mode::Apply).await.unwrap();
    let (frames, expected) = btcusdt(4000);
    let fake = sequex_testkit::FakeBinance::start(Script {
        frames,
        pace: Some(Duration::from_millis(1)),
        each_from_start: true,
        ..Script::default()
    })
    .await
    .unwrap();
    // What a strategy reads: TRADE_PUBSUB's deliver subject.
    let mut pubsub = client
        .subscribe("sequex.deliver.TRADE_PUBSUB")
        .await
        .unwrap();
    let (ws, rest, nats) = (fake.url(), fake.rest_url(), server.url());
    let args = [
        "--symbols",
        "btcusdt",
        "--ws-url",
        &ws,
        "--rest-url",
        &rest,
        "--nats-url",
        &nats,
    ];
    let first = common::start_daemon(&args);
    let second = common::start_daemon(&args);
    eventually(Duration::from_secs(30), "both publishing", || async {
        first.metric("sequex_published_messages_total", &[]).await > 1000.0
            && second.metric("sequex_published_messages_total", &[]).await > 1000.0
    })
    .await;
    drop(first); // killed mid-replay
    eventually(
        Duration::from_secs(60),
        "RECORD holds every event",
        || async { common::stream_count(&client, "RECORD").await >= expected.len() as u64 },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let record = read_stream(&client, "RECORD").await;
    let got: Vec<(String, String)> = record
        .iter()
        .map(|m| {
            (
                m.subject.replacen("record", "TRADE", 1),
                String::from_utf8(m.payload.to_vec()).unwrap(),
            )
        })
        .collect();
    assert!(
        got == expected,
        "RECORD: each event once, in order, across the loss of one daemon"
    );
    let mut delivered = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(
        Duration::from_secs(3),
        futures::StreamExt::next(&mut pubsub),
    )
    .await
    {
        match (m.status, m.reply) {
            // Flow control and heartbeats: a push consumer waits for the answer.
            (Some(_), Some(reply)) => client.publish(reply, "".into()).await.unwrap(),
            (Some(_), None) => {}
            (None, _) => delivered.push(String::from_utf8(m.payload.to_vec()).unwrap()),
        }
    }
    let want: Vec<String> = expected.into_iter().map(|(_, payload)| payload).collect();
    assert!(
        delivered == want,
        "TRADE_PUBSUB delivers each event once: {} of {}",
        delivered.len(),
        want.len()
    );
}

#[tokio::test]
async fn the_loss_estimate_matches_what_a_discarding_trade_did_not_store() {
    let (server, client) = common::bus().await;
    // A TRADE that refuses new messages past 300: what the bus loses without a word.
    let mut trade = provision::read_json(&configs_dir().join("stream_trade.json")).unwrap();
    trade["max_msgs"] = json!(300);
    trade["discard"] = json!("new");
    provision::stream_request(&client, "UPDATE", &trade)
        .await
        .unwrap();
    let (frames, _) = btcusdt(3000);
    let (_fake, daemon) = replay(&server, frames.into(), &[]).await;
    eventually(Duration::from_secs(30), "every frame published", || async {
        daemon.metric("sequex_published_messages_total", &[]).await >= 3000.0
    })
    .await;
    let stored_before = common::stream_count(&client, "RECORD").await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let stored = common::stream_count(&client, "RECORD").await;
    assert_eq!(stored, stored_before, "nothing more arrives");
    let actual = 3000.0 - stored as f64;
    let estimate = daemon
        .metric("sequex_bus_lost_messages_estimate", &[])
        .await;
    eprintln!("TRADE stored {stored} of 3000; the daemon estimates {estimate} lost");
    assert!(actual > 2000.0);
    assert!(
        (estimate - actual).abs() <= 5.0,
        "estimate {estimate}, lost {actual}"
    );
}
