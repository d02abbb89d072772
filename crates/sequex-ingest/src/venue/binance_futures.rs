//! Binance futures market streams: USD-M (`fstream`) and COIN-M (`dstream`), one family.
//!
//! References:
//! <https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams>,
//! <https://developers.binance.com/docs/derivatives/coin-margined-futures/websocket-market-streams>
//! - combined streams at `/stream?streams=a/b/c`, each event wrapped as spot's
//!   `{"stream":"<name>","data":<event>}` (the envelope is read as spot's);
//! - at most 1024 streams per connection, 10 incoming messages per second (we send only
//!   pongs and a close);
//! - a ping every 3 minutes, disconnection after 10 without a pong;
//! - connections live 24 hours;
//! - individual trades on `<symbol>@trade`, depth diffs on `<symbol>@depth@100ms`
//!   (`<symbol>@depth`: 250 ms); a depth event's `pu` is the previous event's `u`, its ids
//!   are not consecutive;
//! - instruments: `BTCUSDT` (USD-M perpetual), `BTCUSD_PERP`, `BTCUSD_240927` (COIN-M),
//!   lower case in stream names.
//!
//! Old trades by id need an API key on both (`historicalTrades` is `MARKET_DATA`), so trade
//! gaps are flagged but not filled from REST.

use std::time::Duration;

use bytes::Bytes;
use sequex_subjects::{Channel, Symbol};

use super::binance::{BinanceSpot, Continuity, fields_in_any_layout, fields_in_usual_layout};
use super::{DepthSpeed, Fields, Frame, FrameError, RestTrades, Venue};

/// Stream name suffixes.
mod wire {
    pub(super) const TRADE_SUFFIX: &str = "@trade";
    pub(super) const DEPTH_100MS_SUFFIX: &str = "@depth@100ms";
    pub(super) const DEPTH_250MS_SUFFIX: &str = "@depth";
}

/// Binance USD-M futures.
#[derive(Debug)]
pub struct BinanceUsdm;

/// Binance COIN-M futures.
#[derive(Debug)]
pub struct BinanceCoinm;

macro_rules! futures_venue {
    ($venue:ty, $id:ident, $url:literal) => {
        impl Venue for $venue {
            const VENUE: sequex_subjects::Venue = sequex_subjects::Venue::$id;
            const DEFAULT_URL: &'static str = $url;
            const MAX_STREAMS_PER_CONNECTION: usize = 1024;
            // Not documented for futures: spot's limit, which the docs state per IP.
            const CONNECTS_PER_WINDOW: usize = 300;
            const CONNECT_WINDOW: Duration = Duration::from_secs(5 * 60);
            const CONNECTION_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

            fn stream_name(symbol: &Symbol, channel: Channel, depth: DepthSpeed) -> String {
                stream_name(symbol, channel, depth)
            }

            fn connect_url(base: &str, streams: &[String]) -> String {
                BinanceSpot::connect_url(base, streams)
            }

            fn check_symbol(symbol: &Symbol) -> Result<(), &'static str> {
                super::binance::check_symbol(symbol)
            }

            fn classify(frame: &[u8]) -> Result<Frame<'_>, FrameError> {
                BinanceSpot::classify(frame)
            }

            #[inline(always)]
            fn fields(channel: Channel, payload: &[u8]) -> Result<Fields, FrameError> {
                match fields_in_usual_layout::<true>(channel, payload) {
                    Some(fields) => Ok(fields),
                    None => fields(channel, payload),
                }
            }

            fn is_shutdown_notice(event: &[u8]) -> bool {
                BinanceSpot::is_shutdown_notice(event)
            }
        }

        impl RestTrades for $venue {
            const AVAILABLE: bool = false;
            const REST_URL: &'static str = "";
            const REST_TRADES_PER_PAGE: u64 = 0;

            fn trades_path(_: &Symbol, _: u64, _: u64) -> String {
                String::new()
            }

            fn parse_trades(_: &Symbol, _: &[u8]) -> Result<Vec<(u64, Bytes)>, String> {
                Err("old trades need an API key on Binance futures".into())
            }
        }
    };
}

futures_venue!(BinanceUsdm, BinanceUsdm, "wss://fstream.binance.com");
futures_venue!(BinanceCoinm, BinanceCoinm, "wss://dstream.binance.com");

fn stream_name(symbol: &Symbol, channel: Channel, depth: DepthSpeed) -> String {
    let suffix = match (channel, depth) {
        (Channel::Trade, _) => wire::TRADE_SUFFIX,
        (Channel::Depth, DepthSpeed::Ms100) => wire::DEPTH_100MS_SUFFIX,
        (Channel::Depth, DepthSpeed::Ms1000) => wire::DEPTH_250MS_SUFFIX,
    };
    format!("{}{suffix}", symbol.as_str().to_ascii_lowercase())
}

/// Events in another layout: the generic scan.
#[cold]
#[inline(never)]
fn fields(channel: Channel, payload: &[u8]) -> Result<Fields, FrameError> {
    fields_in_any_layout(channel, payload, Continuity::Chained)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::venue::Ids;

    // From the USD-M capture (shared/fixtures/binance/usdm_btcusdt_20240808.gz); the
    // depth event's arrays shortened.
    const TRADE: &str = r#"{"e":"trade","E":1723161256322,"T":1723161256322,"s":"BTCUSDT","t":5266583935,"p":"61800.30","q":"0.006","X":"MARKET","m":false}"#;
    const DEPTH: &str = r#"{"e":"depthUpdate","E":1723161256352,"T":1723161256352,"s":"BTCUSDT","U":5123107837801,"u":5123107842679,"pu":5123107837557,"b":[["1000.00","606.675"]],"a":[]}"#;

    #[test]
    fn tc0_usdm_trade_and_depth() {
        assert_eq!(
            BinanceUsdm::fields(Channel::Trade, TRADE.as_bytes()),
            Ok(Fields {
                ids: Ids::Trade { id: 5266583935 },
                event_time_ms: 1723161256322
            })
        );
        assert_eq!(
            BinanceUsdm::fields(Channel::Depth, DEPTH.as_bytes()),
            Ok(Fields {
                ids: Ids::ChainedDepth {
                    first: 5123107837801,
                    last: 5123107842679,
                    prev: 5123107837557
                },
                event_time_ms: 1723161256352
            })
        );
        let no_pu = br#"{"e":"depthUpdate","E":1,"U":2,"u":3}"#;
        assert_eq!(
            BinanceUsdm::fields(Channel::Depth, no_pu),
            Err(FrameError::BadField("pu"))
        );
    }

    #[test]
    fn the_usual_layout_reads_as_the_generic_scan_does() {
        let coinm_depth = r#"{"e":"depthUpdate","E":1723161256352,"T":1723161256352,"s":"BTCUSD_PERP","ps":"BTCUSD","U":17,"u":21,"pu":16,"b":[],"a":[]}"#;
        for (channel, event) in [
            (Channel::Trade, TRADE),
            (Channel::Depth, DEPTH),
            (Channel::Depth, coinm_depth),
        ] {
            let fast = fields_in_usual_layout::<true>(channel, event.as_bytes());
            assert!(fast.is_some(), "{event}");
            assert_eq!(
                fast.ok_or(()),
                fields(channel, event.as_bytes()).map_err(|_| ())
            );
        }
        // Spot's layout is not the futures': the generic scan reads it.
        let spot = br#"{"e":"trade","E":1,"s":"BTCUSDT","t":2,"p":"1","q":"1","T":1,"m":true}"#;
        assert_eq!(fields_in_usual_layout::<true>(Channel::Trade, spot), None);
    }

    #[test]
    fn depth_continuity_is_pu_equals_the_previous_u() {
        let next = |prev| Ids::ChainedDepth {
            first: 500,
            last: 600,
            prev,
        };
        assert_eq!(BinanceUsdm::gap(400, next(400)), None);
        assert_eq!(BinanceUsdm::gap(400, next(450)), Some(401..451));
        assert_eq!(
            BinanceUsdm::gap(400, next(390)),
            None,
            "an overlap is no gap"
        );
    }

    #[test]
    fn stream_names_and_urls() {
        let perp = Symbol::from_static("BTCUSD_PERP");
        assert_eq!(
            BinanceCoinm::stream_name(&perp, Channel::Depth, DepthSpeed::Ms100),
            "btcusd_perp@depth@100ms"
        );
        assert_eq!(
            BinanceUsdm::connect_url(BinanceUsdm::DEFAULT_URL, &["btcusdt@trade".into()]),
            "wss://fstream.binance.com/stream?streams=btcusdt@trade"
        );
        assert_eq!(BinanceCoinm::ID, "binance-coinm");
    }
}
