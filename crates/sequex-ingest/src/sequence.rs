//! Sequence continuity of one venue stream: which events are repeats, which ids are
//! missing, and when the venue started its ids again.
//!
//! The anchor is the last event handed to NATS, not the last one routed: an event that
//! was routed but dropped before NATS (queue full, NATS down) leaves the anchor where it
//! was, so the next published event's gap covers it. What the client took may still be
//! lost with its connection: the feed confirms anchors with a round trip to the server
//! (`snapshot`, then `confirm` once the server answered), and when the connection drops
//! it `rewind`s to the last confirmed anchor, so that the next gap covers what was in
//! flight too (some of which may have arrived: a gap after a disconnect may name more).
//!
//! One frame's word is never enough to move the anchor far: an event whose ids jump
//! backwards (with a newer event time, so it is not a repeat) or forwards by more than
//! [`MAX_ID_JUMP`] is held as a suspect and not published. The next event decides: if it
//! continues the anchor, the suspect was an outlier and is lost alone; if it continues the
//! suspect, the venue really moved (a reset, or a very long gap) and the route re-anchors.

use std::ops::Range;

use crate::venue::Ids;

/// The largest forward jump in ids taken on one event's word: about nine hours of the
/// busiest Binance depth stream (BTCUSDT, ~530 update ids a second in the captures) and
/// days of its trades. A longer real gap costs one more event, flagged like the rest.
pub(crate) const MAX_ID_JUMP: u64 = 1 << 24;

/// What the sequence says about an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Publish it. `gap`: the ids missing before it. `reset`: the last id of the sequence
    /// it replaces, when the venue started its ids again.
    Publish {
        /// Ids missing before this event.
        gap: Option<Range<u64>>,
        /// The last id before the venue restarted its sequence.
        reset: Option<u64>,
    },
    /// Already published (the overlap of two connections).
    Duplicate,
    /// Out of line with the sequence; held back until the next event says whether the
    /// sequence moved or this one was an outlier.
    Suspect,
}

/// The state of one stream.
#[derive(Clone, Debug, Default)]
pub(crate) struct Sequence {
    /// The last id and event time handed to NATS.
    anchor: Option<(u64, u64)>,
    /// An event out of line with the anchor: its ids and event time.
    suspect: Option<(Ids, u64)>,
    /// The anchor when the last confirming round trip to NATS was sent.
    pending: Option<(u64, u64)>,
    /// The last anchor NATS confirmed having received.
    confirmed: Option<(u64, u64)>,
}

impl Sequence {
    /// Judges an event; `gap` is the venue's continuity rule (previous last id, next ids).
    #[inline(always)]
    pub(crate) fn check(
        &mut self,
        ids: Ids,
        time_ms: u64,
        gap: impl Fn(u64, Ids) -> Option<Range<u64>>,
    ) -> Verdict {
        let Some((last, last_time)) = self.anchor else {
            return Verdict::Publish {
                gap: None,
                reset: None,
            };
        };
        if ids.last() > last && ids.first().saturating_sub(last) <= MAX_ID_JUMP {
            return Verdict::Publish {
                gap: gap(last, ids),
                reset: None,
            };
        }
        // Ids and event times only rise: an older id, not newer in time and not absurdly far
        // back, is a repeat.
        if ids.last() <= last && time_ms <= last_time && last - ids.last() <= MAX_ID_JUMP {
            return Verdict::Duplicate;
        }
        self.discontinuity(ids, time_ms, last)
    }

    #[cold]
    #[inline(never)]
    fn discontinuity(&mut self, ids: Ids, time_ms: u64, last: u64) -> Verdict {
        match ids {
            // The anchor again, as its own predecessor: nothing changed (OKX's keepalive).
            Ids::Snapshot { id } if id == last => return Verdict::Duplicate,
            // A whole book stands alone: a lower id is the venue's new sequence.
            Ids::Snapshot { id } => {
                return Verdict::Publish {
                    gap: None,
                    reset: (id < last).then_some(last),
                };
            }
            Ids::ChainedDepth { prev, last: id, .. } if prev == last && id == last => {
                return Verdict::Duplicate;
            }
            _ => {}
        }
        match self.suspect {
            Some((suspect, suspect_time))
                if ids.first() > suspect.last()
                    && ids.first() - suspect.last() <= MAX_ID_JUMP
                    && time_ms >= suspect_time =>
            {
                // The suspect was the first event of where the venue really went; it was
                // not published, so it is part of the gap.
                if ids.last() < last {
                    Verdict::Publish {
                        gap: Some(suspect.first()..ids.first()),
                        reset: Some(last),
                    }
                } else {
                    Verdict::Publish {
                        gap: Some(last + 1..ids.first()),
                        reset: None,
                    }
                }
            }
            _ => {
                self.suspect = Some((ids, time_ms));
                Verdict::Suspect
            }
        }
    }

    /// The event was handed to NATS: it is the new anchor.
    #[inline(always)]
    pub(crate) fn commit(&mut self, last_id: u64, time_ms: u64) {
        self.anchor = Some((last_id, time_ms));
        self.suspect = None;
    }

    /// A round trip to NATS is sent now: once it returns, the anchor of now is confirmed.
    pub(crate) fn snapshot(&mut self) {
        self.pending = self.anchor;
    }

    /// The round trip sent at the last [`Sequence::snapshot`] returned.
    pub(crate) fn confirm(&mut self) {
        if self.pending.is_some() {
            self.confirmed = self.pending;
        }
    }

    /// The connection to NATS was lost: what was not confirmed may be lost with it.
    pub(crate) fn rewind(&mut self) {
        if self.confirmed.is_some() {
            self.anchor = self.confirmed;
        }
        self.suspect = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trade(id: u64) -> Ids {
        Ids::Trade { id }
    }

    fn binance_gap(prev: u64, next: Ids) -> Option<Range<u64>> {
        let expected = prev + 1;
        (next.first() > expected).then(|| expected..next.first())
    }

    /// Feeds `(id, time)` trades, committing what is published; returns the verdicts.
    fn run(seq: &mut Sequence, events: &[(u64, u64)]) -> Vec<Verdict> {
        events
            .iter()
            .map(|&(id, time)| {
                let verdict = seq.check(trade(id), time, binance_gap);
                if matches!(verdict, Verdict::Publish { .. }) {
                    seq.commit(id, time);
                }
                verdict
            })
            .collect()
    }

    const OK: Verdict = Verdict::Publish {
        gap: None,
        reset: None,
    };

    #[test]
    fn continuous_gaps_and_repeats() {
        let mut seq = Sequence::default();
        let verdicts = run(
            &mut seq,
            &[(7, 1), (8, 1), (11, 2), (9, 1), (11, 2), (12, 2)],
        );
        assert_eq!(
            verdicts,
            [
                OK,
                OK,
                Verdict::Publish {
                    gap: Some(9..11),
                    reset: None
                },
                Verdict::Duplicate,
                Verdict::Duplicate,
                OK
            ]
        );
    }

    #[test]
    fn an_uncommitted_event_stays_in_the_next_gap() {
        let mut seq = Sequence::default();
        run(&mut seq, &[(7, 1)]);
        // 8 and 9 are routed but never committed (dropped before NATS).
        assert_eq!(seq.check(trade(8), 1, binance_gap), OK);
        let nine = seq.check(trade(9), 1, binance_gap);
        assert_eq!(
            nine,
            Verdict::Publish {
                gap: Some(8..9),
                reset: None
            }
        );
        assert_eq!(
            run(&mut seq, &[(10, 2)]),
            [Verdict::Publish {
                gap: Some(8..10),
                reset: None
            }]
        );
    }

    #[test]
    fn one_absurd_id_costs_that_event_alone() {
        let mut seq = Sequence::default();
        let n = 3_735_683_259;
        let verdicts = run(&mut seq, &[(n, 1), (u64::MAX, 1), (n + 1, 1), (n + 2, 2)]);
        assert_eq!(verdicts, [OK, Verdict::Suspect, OK, OK]);
        // An absurd id backwards, in a newer millisecond or the same one, likewise.
        let verdicts = run(&mut seq, &[(0, 3), (n + 3, 3), (0, 3), (n + 4, 4)]);
        assert_eq!(verdicts, [Verdict::Suspect, OK, Verdict::Suspect, OK]);
    }

    #[test]
    fn a_reset_is_confirmed_by_the_next_event_and_re_anchors() {
        let mut seq = Sequence::default();
        let verdicts = run(&mut seq, &[(5_000, 1), (5_001, 1), (1, 2), (2, 2), (3, 3)]);
        assert_eq!(
            verdicts,
            [
                OK,
                OK,
                Verdict::Suspect,
                Verdict::Publish {
                    gap: Some(1..2),
                    reset: Some(5_001)
                },
                OK
            ]
        );
        // Repeats of the new sequence are repeats.
        assert_eq!(run(&mut seq, &[(2, 3)]), [Verdict::Duplicate]);
    }

    #[test]
    fn a_very_long_real_gap_costs_one_more_event_flagged() {
        let mut seq = Sequence::default();
        let far = 10 + MAX_ID_JUMP * 3;
        let verdicts = run(&mut seq, &[(10, 1), (far, 2), (far + 1, 2)]);
        assert_eq!(
            verdicts,
            [
                OK,
                Verdict::Suspect,
                Verdict::Publish {
                    gap: Some(11..far + 1),
                    reset: None
                }
            ]
        );
    }

    #[test]
    fn a_lost_connection_rewinds_to_what_nats_confirmed() {
        let mut seq = Sequence::default();
        run(&mut seq, &[(1, 1), (2, 1)]);
        seq.snapshot();
        run(&mut seq, &[(3, 1)]);
        seq.confirm();
        run(&mut seq, &[(4, 1), (5, 1)]);
        seq.snapshot(); // never confirmed: the connection drops first
        seq.rewind();
        assert_eq!(
            run(&mut seq, &[(7, 2)]),
            [Verdict::Publish {
                gap: Some(3..7),
                reset: None
            }]
        );
    }

    #[test]
    fn two_disagreeing_outliers_keep_the_anchor() {
        let mut seq = Sequence::default();
        let verdicts = run(&mut seq, &[(100, 1), (u64::MAX, 1), (1, 2), (101, 2)]);
        assert_eq!(verdicts, [OK, Verdict::Suspect, Verdict::Suspect, OK]);
    }

    #[test]
    fn snapshots_stand_alone_and_keepalives_change_nothing() {
        use crate::venue::{Venue, okx::Okx};
        let chained = |prev, id| Ids::ChainedDepth {
            first: id,
            last: id,
            prev,
        };
        let mut seq = Sequence::default();
        let mut step = |ids: Ids, time| {
            let verdict = seq.check(ids, time, Okx::gap);
            if matches!(verdict, Verdict::Publish { .. }) {
                seq.commit(ids.last(), time);
            }
            verdict
        };
        assert_eq!(step(Ids::Snapshot { id: 100 }, 1), OK);
        assert_eq!(step(chained(100, 107), 2), OK);
        // OKX's keepalive: the same id, named as its own predecessor.
        assert_eq!(step(chained(107, 107), 3), Verdict::Duplicate);
        assert_eq!(
            step(chained(120, 130), 4),
            Verdict::Publish {
                gap: Some(108..121),
                reset: None
            }
        );
        // A snapshot after a reconnect is no gap, whatever was missed.
        assert_eq!(step(Ids::Snapshot { id: 500 }, 5), OK);
        assert_eq!(step(Ids::Snapshot { id: 500 }, 6), Verdict::Duplicate);
        // The venue started its ids again: the snapshot is published, as a reset.
        assert_eq!(
            step(Ids::Snapshot { id: 3 }, 7),
            Verdict::Publish {
                gap: None,
                reset: Some(500)
            }
        );
        assert_eq!(step(chained(3, 9), 8), OK);
    }
}
