//! The files under `deploy/` against what they deploy: the systemd units pass
//! `systemd-analyze verify`, and the daemon started with exactly its unit's command line
//! and environment file reaches ready; the alert rules pass `promtool check rules` and
//! their unit tests, and every metric the rules and the dashboard name exists in the
//! daemon's `/metrics` after a replay, so that they cannot drift apart.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{btcusdt, bus, eventually, replay};
use sequex_testkit::workspace_root;

fn monitoring() -> PathBuf {
    workspace_root().join("deploy/monitoring")
}

/// `$PROMTOOL_BIN`, else the one `scripts/test` extracts into `.tools/`.
fn promtool() -> PathBuf {
    let bin = std::env::var_os("PROMTOOL_BIN").map_or_else(
        || workspace_root().join(".tools/promtool/usr/bin/promtool"),
        PathBuf::from,
    );
    assert!(
        bin.is_file(),
        "promtool not found at {}: run scripts/test (it extracts Debian's) or set PROMTOOL_BIN",
        bin.display()
    );
    bin
}

#[test]
fn the_alert_rules_and_the_scrape_config_pass_promtool() {
    for args in [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
        ["check", "config", "prometheus.yml"],
    ] {
        let out = Command::new(promtool())
            .args(args)
            .current_dir(monitoring())
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && said.contains("SUCCESS"),
            "promtool {args:?}: {said}"
        );
    }
}

/// The `sequex_*` metric names a file mentions, histogram series mapped to their metric.
fn metric_names(file: &str) -> BTreeSet<String> {
    let text = std::fs::read_to_string(monitoring().join(file)).unwrap();
    let mut names = BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("sequex_") {
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        let name = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name)
            .to_string();
        // `sequex-ingest` (the job) and `sequex_` alone are not metrics.
        if name.len() > "sequex_".len() {
            names.insert(name);
        }
    }
    names
}

#[tokio::test]
async fn every_metric_the_rules_and_the_dashboard_use_exists() {
    let (server, _client) = bus().await;
    let (frames, expected) = btcusdt(500);
    let (_fake, daemon) = replay(&server, frames.into(), &[]).await;
    eventually(Duration::from_secs(30), "published", || async {
        daemon.metric("sequex_published_messages_total", &[]).await >= expected.len() as f64
    })
    .await;
    // The stream watcher's gauges appear after its first samples.
    eventually(Duration::from_secs(20), "the watcher's gauges", || async {
        daemon.get("/metrics").await.is_some_and(|(_, body)| {
            body.contains("sequex_bus_lost_messages_estimate")
                && body.contains("sequex_stream_source_lag_seconds")
        })
    })
    .await;
    let (_, body) = daemon.get("/metrics").await.unwrap();
    let exported: BTreeSet<&str> = body
        .lines()
        .filter(|l| l.starts_with("sequex_"))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(|n| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| n.strip_suffix(s))
                .unwrap_or(n)
        })
        .collect();
    for file in ["alerts.yml", "dashboard.json"] {
        let used = metric_names(file);
        assert!(used.len() >= 10, "{file}: {used:?}");
        let missing: Vec<&String> = used
            .iter()
            .filter(|n| !exported.contains(n.as_str()))
            .collect();
        assert!(
            missing.is_empty(),
            "{file} uses metrics the daemon does not export: {missing:?}"
        );
    }
}

/// A unit of `deploy/systemd/`, with the binaries it runs pointed at this build's (and
/// the drop-ins of its `.d/` folder appended, as systemd would merge them).
fn unit_for_this_build(name: &str) -> String {
    let dir = workspace_root().join("deploy/systemd");
    let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_sequex-ingest"));
    let bin_dir = bin_dir.parent().unwrap().display().to_string();
    let nats = sequex_testkit::nats_server::nats_server_bin().unwrap();
    let mut text = std::fs::read_to_string(dir.join(name)).unwrap();
    if let Ok(dropins) = std::fs::read_dir(dir.join(format!("{name}.d"))) {
        for dropin in dropins {
            text.push('\n');
            text.push_str(&std::fs::read_to_string(dropin.unwrap().path()).unwrap());
        }
    }
    text.replace("/usr/local/bin/nats-server", &nats.display().to_string())
        .replace("/usr/local/bin/", &format!("{bin_dir}/"))
}

#[test]
fn every_systemd_unit_passes_systemd_analyze_verify() {
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        panic!("systemd-analyze is missing: apt-get install systemd");
    };
    assert!(version.status.success());
    let dir = std::env::temp_dir().join(format!("sequex-units-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The template is verified as an instance, as systemd would load it.
    for (unit, file) in [
        ("nats-server.service", "nats-server.service"),
        (
            "sequex-ingest@.service",
            "sequex-ingest@binance-spot.service",
        ),
        ("sequex-streams.service", "sequex-streams.service"),
    ] {
        let path = dir.join(file);
        std::fs::write(&path, unit_for_this_build(unit)).unwrap();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr).to_string()
            + &String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && said.trim().is_empty(),
            "{unit}: {said}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Every instance the repository ships an environment file for, started with exactly its
/// unit's command line and environment (only the addresses moved to this test's): each
/// reaches ready against the fake exchange (OKX's by its subscribe protocol).
#[tokio::test]
async fn every_instance_started_as_its_unit_says_reaches_ready() {
    let (server, _client) = bus().await;
    let (frames, _) = btcusdt(300);
    let fake = sequex_testkit::FakeBinance::start(frames.into())
        .await
        .unwrap();
    for venue in ["binance-spot", "binance-usdm", "binance-coinm", "okx"] {
        instance_reaches_ready(venue, &server.url(), &fake).await;
    }
}

async fn instance_reaches_ready(venue: &str, nats: &str, fake: &sequex_testkit::FakeBinance) {
    let unit = unit_for_this_build("sequex-ingest@.service").replace("%i", venue);
    let exec = unit
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .expect("ExecStart in the unit");
    let mut words = exec.split_whitespace();
    let bin = words.next().unwrap().to_string();
    let args: Vec<&str> = words.collect();
    let env_file = std::fs::read_to_string(
        workspace_root().join(format!("deploy/systemd/ingest-{venue}.env")),
    )
    .unwrap();
    let (ws, rest) = (fake.url(), fake.rest_url());
    // The environment file as systemd reads it; only the addresses change, to this test's.
    // The unit's own Environment= lines (the venue, from the instance name), then its file.
    let lines: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix("Environment="))
        .filter(|l| !l.contains("%d"))
        .chain(env_file.lines())
        .collect();
    let mut env: Vec<(String, String)> = lines
        .iter()
        .map(|l| l.trim())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert!(
        env.iter().any(|(k, _)| k == "SEQUEX_SYMBOLS"),
        "the env file sets the symbols"
    );
    for (k, v) in [
        ("NATS_URL", nats),
        ("SEQUEX_WS_URL", &ws),
        ("SEQUEX_REST_URL", &rest),
    ] {
        env.retain(|(key, _)| key != k);
        env.push((k.to_string(), v.to_string()));
    }
    env.retain(|(k, _)| k != "SEQUEX_METRICS_ADDR");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let daemon = sequex_testkit::Daemon::start_with_env(std::path::Path::new(&bin), &args, &env);
    eventually(Duration::from_secs(30), &format!("{venue} ready"), || {
        daemon.ready()
    })
    .await;
    assert!(
        daemon.logs().contains(&format!(r#""venue":"{venue}""#)),
        "the instance name is the venue"
    );
    // The image's HEALTHCHECK: `sequex-ingest healthcheck` asks /readyz.
    let probe = |addr: &str| {
        Command::new(env!("CARGO_BIN_EXE_sequex-ingest"))
            .arg("healthcheck")
            .env("SEQUEX_METRICS_ADDR", addr)
            .output()
            .unwrap()
    };
    assert!(probe(&daemon.metrics_addr).status.success(), "healthy");
    let dead = probe(&sequex_testkit::daemon::free_addr());
    assert_eq!(dead.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&dead.stderr).contains("cannot reach /readyz"));
    assert!(
        daemon.logs().lines().any(|l| l.starts_with('{')),
        "--log-format json, as the unit says"
    );
}

/// The offline demo's replay server (`scripts/run --demo`): a real binary that loops the
/// capture with rising ids, so that the daemon sees one continuous feed across rounds.
#[tokio::test]
async fn the_replay_server_loops_the_capture_as_one_continuous_feed() {
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_sequex-ingest")).with_file_name("sequex-replay");
    assert!(
        bin.is_file(),
        "{} is missing: cargo build -p sequex-replay",
        bin.display()
    );
    let capture =
        sequex_testkit::capture::fixtures_dir().join(sequex_testkit::capture::SPOT_BTCUSDT);
    let mut replay = tokio::process::Command::new(bin)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--rest-listen",
            "127.0.0.1:0",
            "--fast",
            "--capture",
        ])
        .arg(capture)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = tokio::io::BufReader::new(replay.stdout.take().unwrap());
    tokio::io::AsyncBufReadExt::read_line(&mut out, &mut line)
        .await
        .unwrap();
    // "replaying N frames at ws://ADDR (REST http://ADDR); ..."
    let ws = line
        .split_whitespace()
        .find(|w| w.starts_with("ws://"))
        .unwrap()
        .to_string();
    let rest = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap();
    let rest = rest.trim_end_matches([')', ';']).to_string();

    let (server, client) = bus().await;
    let seen = common::collect(&client).await;
    let one_round = btcusdt(usize::MAX).0.len();
    let nats = server.url();
    let _daemon = common::start_daemon(&[
        "--symbols",
        "btcusdt",
        "--ws-url",
        &ws,
        "--rest-url",
        &rest,
        "--nats-url",
        &nats,
    ]);
    common::all_arrive(&seen, one_round * 2 + 100, 120).await;
    let messages = common::stored(&seen.lock().unwrap());
    let holes = common::assert_every_hole_flagged(&messages, common::Flags::Exact);
    assert_eq!(holes, 0, "two rounds and more, without a gap");
}
