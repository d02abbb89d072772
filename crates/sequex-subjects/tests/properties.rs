//! Property tests: every accepted symbol yields well-formed subjects that parse back.

use proptest::prelude::*;
use sequex_subjects::{Channel, Filter, Stream, Subject, Symbol};

fn any_stream() -> impl Strategy<Value = Stream> {
    prop::sample::select(Stream::ALL.to_vec())
}

fn any_channel() -> impl Strategy<Value = Channel> {
    prop::sample::select(Channel::ALL.to_vec())
}

proptest! {
    #[test]
    fn build_then_parse_round_trips(sym in "[A-Z0-9_-]{1,64}", stream in any_stream(), channel in any_channel()) {
        let symbol = Symbol::new(&sym).unwrap();
        let subject = Subject::new(stream, channel, &symbol);
        let parsed = Subject::parse(subject.as_str()).unwrap();
        prop_assert_eq!(&parsed, &subject);
        prop_assert_eq!((parsed.stream(), parsed.channel(), parsed.symbol()), (stream, channel, sym.as_str()));
        prop_assert!(Filter::stream(stream).matches(&subject));
        prop_assert!(Filter::channel(stream, channel).matches(&subject));
        prop_assert!(Filter::symbol(stream, &symbol).matches(&subject));
    }

    /// Whatever the input, an accepted symbol never smuggles a token or a wildcard into
    /// a subject.
    #[test]
    fn accepted_symbols_are_one_plain_token(input in any::<String>(), ascii in "[ -~]{0,70}") {
        for candidate in [input.as_str(), ascii.as_str()] {
            for symbol in [Symbol::new(candidate), Symbol::normalize(candidate)].into_iter().flatten() {
                for stream in Stream::ALL {
                    for channel in Channel::ALL {
                        let subject = Subject::new(stream, channel, &symbol);
                        let text = subject.as_str();
                        prop_assert_eq!(text.split('.').count(), 3);
                        prop_assert!(!text.contains(['*', '>', ' ']));
                        prop_assert!(text.bytes().all(|b| b.is_ascii_graphic()));
                    }
                }
            }
        }
    }

    #[test]
    fn parse_never_panics(input in any::<String>()) {
        let _ = Subject::parse(&input);
    }
}

#[test]
fn filter_matching_follows_nats_rules() {
    let btc = Subject::parse("TRADE.trade.BTCUSDT").unwrap();
    let rec = btc.in_stream(Stream::Record);
    assert!(!Filter::stream(Stream::Record).matches(&btc));
    assert!(Filter::stream(Stream::Record).matches(&rec));
    assert!(!Filter::symbol(Stream::Trade, &Symbol::from_static("ETHUSDT")).matches(&btc));
    assert!(Filter::exact(&btc).matches(&btc));
    assert!(!Filter::exact(&btc).matches(&rec));
}
