//! The monitoring files under `deploy/monitoring/` against the daemon they watch: the
//! alert rules pass `promtool check rules` and their unit tests, and every metric the rules
//! and the dashboard name exists in the daemon's `/metrics` after a replay, so that they
//! cannot drift apart.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{btcusdt, bus, eventually, replay};
use sequex_testkit::{Script, workspace_root};

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
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    for args in [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
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
    let (_fake, daemon) = replay(
        &server,
        Script {
            frames,
            ..Script::default()
        },
        &[],
    )
    .await;
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
