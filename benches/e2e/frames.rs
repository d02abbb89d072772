//! Endless frames in the real capture's shape: the spot mix's trade and depth frames,
//! replayed in their captured order and spread round-robin over any number of symbols,
//! with ids rewritten to keep rising (so that nothing is a duplicate) and `E` set to the
//! send time in ns since the bench started (so that a subscriber can read its latency
//! straight from the payload).

use std::fmt::Write;

use sequex_testkit::capture::{self, CapturedFrame};

/// One captured frame, cut where the rewritten fields go.
struct Template {
    depth: bool,
    /// `u - U` of a depth frame.
    span: u64,
    /// Everything after the last rewritten number, through the closing `}}`.
    tail: String,
}

/// One stream of the generated feed.
struct Stream {
    name: String,
    symbol: String,
    next_id: u64,
}

/// Generates frames for `symbols × {trade, depth}` streams.
pub(crate) struct FrameGen {
    templates: Vec<Template>,
    // [symbol][0 = trade, 1 = depth]
    streams: Vec<[Stream; 2]>,
    k: usize,
}

impl FrameGen {
    /// `symbols` symbols (BTCUSDT for one, then S0001USDT...).
    pub(crate) fn new(symbols: usize) -> Self {
        let templates = [capture::SPOT_BTCUSDT, capture::SPOT_ETHUSDT]
            .into_iter()
            .flat_map(|name| capture::load(name).expect("load capture"))
            .filter_map(|f| template(&f))
            .collect();
        let streams = (0..symbols)
            .map(|i| {
                let symbol = if i == 0 {
                    "BTCUSDT".to_string()
                } else {
                    format!("S{i:04}USDT")
                };
                let lower = symbol.to_ascii_lowercase();
                [
                    Stream {
                        name: format!("{lower}@trade"),
                        symbol: symbol.clone(),
                        next_id: 1_000_000,
                    },
                    Stream {
                        name: format!("{lower}@depth@100ms"),
                        symbol,
                        next_id: 1_000_000,
                    },
                ]
            })
            .collect();
        FrameGen {
            templates,
            streams,
            k: 0,
        }
    }

    /// The symbols, for `--symbols`.
    pub(crate) fn symbols(&self) -> String {
        self.streams
            .iter()
            .map(|s| s[0].symbol.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The next frame.
    pub(crate) fn next(&mut self, sent_ns: u64) -> String {
        let template = &self.templates[self.k % self.templates.len()];
        let symbol = self.k % self.streams.len();
        self.k += 1;
        let stream = &mut self.streams[symbol][usize::from(template.depth)];
        let mut out = String::with_capacity(template.tail.len() + 128);
        let first = stream.next_id;
        let last = first + template.span;
        stream.next_id = last + 1;
        // Writing into a Vec cannot fail.
        let _ = if template.depth {
            write!(
                out,
                r#"{{"stream":"{}","data":{{"e":"depthUpdate","E":{sent_ns},"s":"{}","U":{first},"u":{last}"#,
                stream.name, stream.symbol
            )
        } else {
            write!(
                out,
                r#"{{"stream":"{}","data":{{"e":"trade","E":{sent_ns},"s":"{}","t":{first}"#,
                stream.name, stream.symbol
            )
        };
        out.push_str(&template.tail);
        out
    }
}

fn template(frame: &CapturedFrame) -> Option<Template> {
    let text = frame.text.as_str();
    let (depth, key) = match frame.stream()? {
        s if s.ends_with("@trade") => (false, r#","t":"#),
        s if s.ends_with("@depth@100ms") => (true, r#","u":"#),
        _ => return None,
    };
    let start = text.find(key)? + key.len();
    let digits = text[start..].find(|c: char| !c.is_ascii_digit())?;
    let number = |key: &str| -> Option<u64> {
        let at = text.find(key)? + key.len();
        let len = text[at..].find(|c: char| !c.is_ascii_digit())?;
        text[at..at + len].parse().ok()
    };
    let span = if depth {
        number(r#","u":"#)? - number(r#","U":"#)?
    } else {
        0
    };
    Some(Template {
        depth,
        span,
        tail: text[start + digits..].to_string(),
    })
}

/// The `E` value of a payload or frame: the send time, ns since the bench started.
pub(crate) fn sent_ns(payload: &[u8]) -> Option<u64> {
    let at = memchr::memmem::find(payload, br#""E":"#)? + 4;
    let digits = payload[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&payload[at..at + digits])
        .ok()?
        .parse()
        .ok()
}
