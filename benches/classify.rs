//! Classify and route, per frame, over the real spot mix (BTCUSDT and ETHUSDT trades and
//! depth@100ms, in receive order), beside the alternatives the design was chosen over.
//!
//! Every variant does the same job: find the stream, the event type, the event time and
//! the sequence ids, pick the subject, and produce the payload. `sequex/*` is the
//! daemon's own `Router::route`, exactly as it runs.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sequex_benches::spot_mix;
use sequex_ingest::bench::BinanceSpot;
use sequex_ingest::bench::DepthSpeed;
use sequex_ingest::bench::{
    BinanceCoinm, BinanceUsdm, FrameError, Okx, Routed, Router, StreamSpec, Venue,
};
use sequex_subjects::{Channel, Subject, Symbol, SymbolSubjects};
use serde::Deserialize;
use serde_json::value::RawValue;

fn specs() -> Vec<StreamSpec> {
    specs_of(&["BTCUSDT", "ETHUSDT"])
}

/// The straightforward forwarder: a `Value` per frame, `format!` for the subject and id,
/// the payload re-serialised (which also reorders its keys: not even byte-identical).
fn naive(frame: &[u8]) -> Option<(String, Vec<u8>, String)> {
    let v: serde_json::Value = serde_json::from_slice(frame).ok()?;
    let (symbol, _) = v["stream"].as_str()?.split_once('@')?;
    let data = &v["data"];
    let (channel, id) = match data["e"].as_str()? {
        "trade" => ("trade", data["t"].as_u64()?),
        "depthUpdate" => ("depth", data["u"].as_u64()?),
        _ => return None,
    };
    let symbol = symbol.to_uppercase();
    let subject = format!("TRADE.{channel}.{symbol}");
    let msg_id = format!("binance-spot:{channel}:{symbol}:{id}");
    Some((subject, serde_json::to_vec(data).ok()?, msg_id))
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    stream: &'a str,
    #[serde(borrow)]
    data: &'a RawValue,
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow)]
    e: &'a str,
    #[serde(rename = "E")]
    time: u64,
    t: Option<u64>,
    #[serde(rename = "U")]
    first: Option<u64>,
    u: Option<u64>,
}

/// serde with borrowed fields and a `RawValue` payload (zero-copy), the same pre-built
/// routing table, no headers.
fn borrowed<'a>(
    frame: &Bytes,
    table: &'a HashMap<&'static str, Subject>,
) -> Option<(&'a Subject, Bytes, (u64, u64), u64)> {
    let envelope: Envelope<'_> = serde_json::from_slice(frame).ok()?;
    let subject = table.get(envelope.stream)?;
    let event: Event<'_> = serde_json::from_str(envelope.data.get()).ok()?;
    // The same ids sequex reads: the trade id, or the depth event's first and final ids.
    let ids = if event.e == "trade" {
        (event.t?, event.t?)
    } else {
        (event.first?, event.u?)
    };
    Some((
        subject,
        frame.slice_ref(envelope.data.get().as_bytes()),
        ids,
        event.time,
    ))
}

/// simd-json: it parses in place, so each frame is copied first (counted here).
fn simd(
    frame: &Bytes,
    scratch: &mut Vec<u8>,
    table: &HashMap<&'static str, Subject>,
) -> Option<(Subject, u64, u64)> {
    use simd_json::prelude::*;
    scratch.clear();
    scratch.extend_from_slice(frame);
    let v = simd_json::to_borrowed_value(scratch).ok()?;
    let subject = table.get(v.get("stream")?.as_str()?)?.clone();
    let data = v.get("data")?;
    let id = match data.get("e")?.as_str()? {
        "trade" => data.get("t")?.as_u64()?,
        _ => data.get("u")?.as_u64()?,
    };
    Some((subject, id, data.get("E")?.as_u64()?))
}

/// The routing table the alternatives share: stream name to pre-built subject.
fn table() -> HashMap<&'static str, Subject> {
    let mut table = HashMap::new();
    for (symbol, lower) in [("BTCUSDT", "btcusdt"), ("ETHUSDT", "ethusdt")] {
        let subjects = SymbolSubjects::new(&Symbol::from_static(symbol));
        let trade: &'static str = Box::leak(format!("{lower}@trade").into_boxed_str());
        let depth: &'static str = Box::leak(format!("{lower}@depth@100ms").into_boxed_str());
        table.insert(trade, subjects.live(Channel::Trade).clone());
        table.insert(depth, subjects.live(Channel::Depth).clone());
    }
    table
}

fn classify_route(c: &mut Criterion) {
    let frames = spot_mix();
    let bytes: usize = frames.iter().map(Bytes::len).sum();
    let table = table();
    // Every variant must do the whole job on every frame, or the comparison means nothing.
    let mut check = Router::<BinanceSpot>::new(&specs(), DepthSpeed::Ms100, true);
    let mut scratch = Vec::with_capacity(1 << 16);
    for f in &frames {
        assert!(check.route(f, 0).is_ok(), "sequex routes every frame");
        assert!(naive(f).is_some() && borrowed(f, &table).is_some());
        assert!(simd(f, &mut scratch, &table).is_some());
    }
    println!("spot mix: {} frames, {} bytes", frames.len(), bytes);

    // Each variant runs over the mix in windows of WINDOW frames; a window is read once
    // (untimed) before it is routed, as the websocket layer has just written each frame
    // when the daemon classifies it. Routing the 10 MB mix cold instead measures cache
    // misses, not code: see BENCHMARKS.md.
    let mut group = c.benchmark_group("classify_route");
    group.throughput(Throughput::Elements(frames.len() as u64));
    for headers in [false, true] {
        let name = if headers {
            "sequex/headers"
        } else {
            "sequex/no_headers"
        };
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                // A fresh router per pass: a replayed mix would otherwise be all repeats.
                hot(
                    &frames,
                    iters,
                    || Router::<BinanceSpot>::new(&specs(), DepthSpeed::Ms100, headers),
                    |router, frame| route(router, frame, 1_723_161_255_000_000_000),
                )
            })
        });
    }
    group.bench_function("naive_serde_value", |b| {
        b.iter_custom(|iters| hot(&frames, iters, || (), |(), f| drop(black_box(naive(f)))))
    });
    group.bench_function("serde_borrowed", |b| {
        b.iter_custom(|iters| {
            hot(
                &frames,
                iters,
                || (),
                |(), f| drop(black_box(borrowed(f, &table))),
            )
        })
    });
    group.bench_function("simd_json_with_copy", |b| {
        b.iter_custom(|iters| {
            hot(
                &frames,
                iters,
                || Vec::with_capacity(1 << 16),
                |scratch, f| drop(black_box(simd(f, scratch, &table))),
            )
        })
    });
    group.finish();

    let mut group = c.benchmark_group("classify_route_bytes");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("sequex/no_headers", |b| {
        b.iter_custom(|iters| {
            hot(
                &frames,
                iters,
                || Router::<BinanceSpot>::new(&specs(), DepthSpeed::Ms100, false),
                |router, frame| route(router, frame, 0),
            )
        })
    });
    let mut router = Router::<BinanceSpot>::new(&specs(), DepthSpeed::Ms100, false);
    group.bench_function("sequex/no_headers_cold", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                router = Router::<BinanceSpot>::new(&specs(), DepthSpeed::Ms100, false);
                let start = Instant::now();
                for frame in &frames {
                    route(&mut router, frame, 0);
                }
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
}

/// Frames per window: about 15 KB of the mix, well inside L2.
const WINDOW: usize = 32;

/// `iters` passes over `frames`; each pass gets fresh state from `setup`, each window is
/// touched before its frames are timed through `work`.
fn hot<S>(
    frames: &[Bytes],
    iters: u64,
    mut setup: impl FnMut() -> S,
    mut work: impl FnMut(&mut S, &Bytes),
) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let mut state = setup();
        for window in frames.chunks(WINDOW) {
            let touched: u64 = window
                .iter()
                .flat_map(|f| f.iter().step_by(64))
                .map(|&b| u64::from(b))
                .sum();
            black_box(touched);
            let start = Instant::now();
            for frame in window {
                work(&mut state, frame);
            }
            total += start.elapsed();
        }
    }
    total
}

/// Per venue, each over its own real capture, no headers: what a frame costs each venue's
/// reader (USD-M events put `T` before `s`, so they take the generic field scan).
fn classify_route_per_venue(c: &mut Criterion) {
    let spot = spot_mix();
    let usdm = sequex_benches::usdm_mix();
    let mut group = c.benchmark_group("classify_route_venue");
    group.throughput(Throughput::Elements(spot.len() as u64));
    group.bench_function("binance-spot", |b| {
        b.iter_custom(|iters| {
            hot(
                &spot,
                iters,
                || Router::<BinanceSpot>::new(&specs(), DepthSpeed::Ms100, false),
                |router, frame| route(router, frame, 0),
            )
        })
    });
    per_venue::<BinanceUsdm>(&mut group, &usdm, &specs_of(&["BTCUSDT"]));
    per_venue::<BinanceCoinm>(
        &mut group,
        &sequex_benches::coinm_mix(),
        &specs_of(&["BTCUSD_PERP"]),
    );
    per_venue::<Okx>(
        &mut group,
        &sequex_benches::okx_mix(),
        &specs_of(&["BTC-USDT", "UNI-USD-SWAP", "BTC-USD-220527"]),
    );
    group.finish();
}

/// Trade and depth streams of `symbols`.
fn specs_of(symbols: &[&str]) -> Vec<StreamSpec> {
    symbols
        .iter()
        .flat_map(|s| {
            Channel::ALL.map(|channel| StreamSpec {
                symbol: Symbol::new(s).expect("a valid symbol"),
                channel,
            })
        })
        .collect()
}

/// `V`'s frames through its router, per frame (an OKX frame may hold several events).
fn per_venue<V: Venue>(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    frames: &[Bytes],
    specs: &[StreamSpec],
) {
    let mut check = Router::<V>::new(specs, DepthSpeed::Ms100, false);
    assert!(
        frames.iter().all(|f| check.route(f, 0).is_ok()),
        "every {} frame routes",
        V::ID
    );
    group.throughput(Throughput::Elements(frames.len() as u64));
    group.bench_function(V::ID, |b| {
        b.iter_custom(|iters| {
            hot(
                frames,
                iters,
                || Router::<V>::new(specs, DepthSpeed::Ms100, false),
                |router, frame| route(router, frame, 0),
            )
        })
    });
}

criterion_group!(benches, classify_route, classify_route_per_venue);
criterion_main!(benches);

/// Routes a frame and commits what it routed, as the feed does once NATS took it: the
/// sequence checks then see the stream as it runs, not one that never moves.
fn route<V: Venue>(router: &mut Router<V>, frame: &Bytes, received_ns: u64) {
    let routed = router.route(frame, received_ns);
    commit(router, routed);
    if V::EVENT_ARRAYS {
        while let Some(next) = router.next_event(frame, received_ns) {
            commit(router, next);
        }
    }
}

fn commit<V: Venue>(router: &mut Router<V>, routed: Result<Routed, FrameError>) {
    if let Ok(Routed::Message(m)) = black_box(routed) {
        router.commit(m.commit);
        black_box(m);
    }
}
