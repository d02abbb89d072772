//! Property tests: every accepted symbol yields well-formed subjects that parse back.

use proptest::prelude::*;
use sequex_subjects::{Channel, Filter, Stream, Subject, Symbol, Venue};

fn any_stream() -> impl Strategy<Value = Stream> {
    prop::sample::select(Stream::ALL.to_vec())
}

fn any_channel() -> impl Strategy<Value = Channel> {
    prop::sample::select(Channel::ALL.to_vec())
}

fn any_venue() -> impl Strategy<Value = Venue> {
    prop::sample::select(Venue::ALL.to_vec())
}

/// Instrument names in the venues' styles: `BTCUSDT`, `BTCUSD_PERP`, `BTC-USDT-SWAP`.
const INSTRUMENT: &str = "[A-Z0-9]{1,12}([_-][A-Z0-9]{1,8}){0,2}";

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

    /// Every (stream, venue, channel, instrument) has one subject, which parses back to
    /// it: so no two of them share a subject.
    #[test]
    fn every_venue_subject_parses_back_to_what_built_it(
        sym in INSTRUMENT, stream in any_stream(), venue in any_venue(), channel in any_channel()
    ) {
        let symbol = Symbol::new(&sym).unwrap();
        let subject = Subject::of(stream, venue, channel, &symbol);
        let parsed = Subject::parse(subject.as_str()).unwrap();
        prop_assert_eq!(&parsed, &subject);
        prop_assert_eq!(
            (parsed.stream(), parsed.venue(), parsed.channel(), parsed.symbol()),
            (stream, venue, channel, sym.as_str())
        );
        prop_assert!(Filter::channel(stream, channel).matches(&subject), "the stream captures it");
    }

    /// The venue filters select exactly their venue's subjects, and the instrument filter
    /// exactly one instrument of one venue.
    #[test]
    fn venue_filters_select_exactly_their_venue(
        a in INSTRUMENT, b in INSTRUMENT, stream in any_stream(), channel in any_channel(),
        va in any_venue(), vb in any_venue(),
    ) {
        let (sa, sb) = (Symbol::new(&a).unwrap(), Symbol::new(&b).unwrap());
        let subject = Subject::of(stream, vb, channel, &sb);
        prop_assert_eq!(Filter::venue(stream, va).matches(&subject), va == vb);
        for c in Channel::ALL {
            prop_assert_eq!(
                Filter::venue_channel(stream, va, c).matches(&subject),
                va == vb && c == channel
            );
        }
        prop_assert_eq!(
            Filter::instrument(stream, va, &sa).matches(&subject),
            va == vb && a == b
        );
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

#[test]
fn spot_is_not_a_venue_token_and_unknown_venues_are_refused() {
    use sequex_subjects::SubjectErrorKind;
    for input in [
        "TRADE.trade.binance-spot.BTCUSDT",
        "TRADE.trade.bybit.BTCUSDT",
    ] {
        assert_eq!(
            Subject::parse(input).unwrap_err().kind(),
            SubjectErrorKind::UnknownVenue,
            "{input}"
        );
    }
}
