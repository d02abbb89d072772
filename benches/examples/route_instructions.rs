//! Routes the spot mix once with a fresh router, for instruction counts that do not depend
//! on the machine's noise. `route` is inlined, so count the whole run and subtract a run
//! that loads the mix without routing it:
//!   valgrind --tool=callgrind target/release/examples/route_instructions none|plain|headers
//! (Ir(plain) - Ir(none)) / frames is the cost per frame.

use sequex_ingest::bench::BinanceSpot;
use sequex_ingest::bench::DepthSpeed;
use sequex_ingest::bench::{Routed, Router, StreamSpec};
use sequex_subjects::{Channel, Symbol};

fn main() {
    let mode = std::env::args().nth(1).unwrap_or_default();
    let headers = mode == "headers";
    let frames = sequex_benches::spot_mix();
    if mode == "none" {
        println!("{} frames loaded", frames.len());
        return;
    }
    if mode == "classify" {
        use sequex_ingest::bench::{Frame, Venue};
        let mut n = 0u64;
        for frame in &frames {
            if let Ok(Frame::Data { payload, .. }) = BinanceSpot::classify(frame) {
                n += payload.start as u64;
            }
        }
        println!("{n}");
        return;
    }
    if mode == "fields" {
        use sequex_ingest::bench::{Frame, Venue};
        let mut n = 0u64;
        for frame in &frames {
            if let Ok(Frame::Data { stream, payload }) = BinanceSpot::classify(frame) {
                let channel = if stream.ends_with(b"@trade") {
                    Channel::Trade
                } else {
                    Channel::Depth
                };
                n += BinanceSpot::fields(channel, &frame[payload]).map_or(0, |f| f.event_time_ms);
            }
        }
        println!("{n}");
        return;
    }
    let specs: Vec<StreamSpec> = ["BTCUSDT", "ETHUSDT"]
        .into_iter()
        .flat_map(|s| {
            Channel::ALL.map(|channel| StreamSpec {
                symbol: Symbol::from_static(s),
                channel,
            })
        })
        .collect();
    let mut router = Router::<BinanceSpot>::new(&specs, DepthSpeed::Ms100, headers);
    let mut routed = 0usize;
    for frame in &frames {
        // Committed, as the feed does once NATS took the message.
        if let Ok(Routed::Message(m)) = router.route(frame, 1_723_161_255_000_000_000) {
            router.commit(m.commit);
            routed += 1;
        }
    }
    println!("{} frames routed (headers: {headers})", routed);
}
