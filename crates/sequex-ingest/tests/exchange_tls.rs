//! The exchange's certificate is verified against the system trust store and
//! `--ws-tls-ca`, over a real `wss://` fake exchange whose certificate a test CA signed:
//! refused without the CA, accepted with it, accepted when the CA is in the system store.

mod common;

use std::time::Duration;

use common::{all_arrive, btcusdt, bus, collect, eventually, start_daemon_with_env};
use sequex_testkit::FakeBinance;
use sequex_testkit::tls::TestPki;

/// Replays 200 frames over `wss://` to a daemon started with `args` and `env`; returns
/// whether they all arrived, and the daemon's log.
async fn over_tls(pki: &TestPki, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let (server, client) = bus().await;
    let seen = collect(&client).await;
    let (frames, expected) = btcusdt(200);
    let fake = FakeBinance::start_tls(frames.into(), pki.acceptor().unwrap())
        .await
        .unwrap();
    let (ws, nats) = (fake.url(), server.url());
    let mut all = vec!["--symbols", "btcusdt", "--ws-url", &ws, "--nats-url", &nats];
    all.extend_from_slice(args);
    let daemon = start_daemon_with_env(&all, env);
    let arrived = tokio::time::timeout(
        Duration::from_secs(10),
        all_arrive(&seen, expected.len(), 10),
    )
    .await
    .is_ok();
    if !arrived {
        eventually(
            Duration::from_secs(10),
            "a refused connection is retried",
            || async {
                daemon
                    .metric("sequex_reconnects_total", &["reason=\"connect_failed\""])
                    .await
                    >= 1.0
            },
        )
        .await;
        assert!(
            !daemon.ready().await,
            "not ready without a trusted exchange"
        );
    }
    (arrived, daemon.logs())
}

#[tokio::test]
async fn the_exchange_certificate_is_checked_against_the_system_store_and_ws_tls_ca() {
    let pki = TestPki::new().unwrap();
    let ca = std::env::temp_dir().join(format!("sequex-test-ca-{}.pem", std::process::id()));
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    let ca = ca.display().to_string();

    let flag = ["--ws-tls-ca", ca.as_str()];
    // The system store: rustls-native-certs reads SSL_CERT_FILE as OpenSSL does.
    let store = [("SSL_CERT_FILE", ca.as_str())];
    let (untrusted, with_flag, in_store) = tokio::join!(
        over_tls(&pki, &[], &[]),
        over_tls(&pki, &flag, &[]),
        over_tls(&pki, &[], &store),
    );
    assert!(!untrusted.0, "refused without the CA");
    assert!(
        untrusted
            .1
            .contains("invalid peer certificate: UnknownIssuer"),
        "says why: {}",
        untrusted.1
    );
    assert!(with_flag.0, "accepted with --ws-tls-ca: {}", with_flag.1);
    assert!(
        in_store.0,
        "accepted with the CA in the system store: {}",
        in_store.1
    );
    let _ = std::fs::remove_file(&ca);
}

#[tokio::test]
async fn an_unreadable_ws_tls_ca_exits_2_with_what_is_wrong() {
    let (server, _client) = bus().await;
    let nats = server.url();
    let daemon = common::start_daemon(&[
        "--symbols",
        "btcusdt",
        "--nats-url",
        &nats,
        "--ws-tls-ca",
        "/nonexistent/ca.pem",
    ]);
    let (status, logs) = daemon.exit(Duration::from_secs(20)).await;
    assert_eq!(status.code(), Some(2), "{logs}");
    assert!(
        logs.contains("cannot use --ws-tls-ca /nonexistent/ca.pem"),
        "{logs}"
    );
}
