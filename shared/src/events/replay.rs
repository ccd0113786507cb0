//! What a reader can be told from a user's log: which events follow a client's mark, and
//! whether a missing seq is still on its way or gone for good.
//!
//! A writer reserves its seq before it writes Firestore and records the entry after, so a
//! reserved seq can be missing from the log for three reasons: its writer is still at work,
//! its writer died (or could not record), or the entry outlived the retention window. No
//! writer outlives `settle` (longer than any invocation can run), so a missing seq reserved
//! more than `settle` ago will never arrive. When it was reserved is bounded from above by
//! what the log keeps: every entry carries the reservation time of the seq just before it
//! (exact for that seq, and an upper bound for every seq below, since seqs are handed out in
//! time order), and the head carries the reservation times of the last seq and the one
//! before it. Clocks of different writers may disagree by a little; `settle` has room for it.

use std::time::Duration;

use crate::registry::{Head, LogEntry, LogPage, RecordedEvent};

/// How soon a reader should ask again when a seq it needs is still on its way.
pub const PENDING_RETRY: Duration = Duration::from_millis(1000);

/// How a replay ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Everything up to the head was replayed.
    Done,
    /// Everything up to the mark was replayed; ask again from it after `retry_after` (zero
    /// when only the page ended, more while a writer is still at work).
    More { retry_after: Duration },
    /// Something after the mark is lost (a dead writer, or past the retention window), or
    /// the reader is ahead of the log: bootstrap again.
    Resync,
}

/// The answer to "what follows `since`?".
#[derive(Clone, Debug, PartialEq)]
pub struct Replay {
    /// The events to send, in seq order (seqs that carry none are passed over).
    pub events: Vec<RecordedEvent>,
    /// Every seq up to this one has been replayed or carries nothing.
    pub mark: u64,
    pub head: u64,
    pub ending: Ending,
}

/// Whether a missing seq whose reservation happened no later than `reserved_by_ms` can
/// still be recorded.
fn in_flight(reserved_by_ms: i64, now_ms: i64, settle: Duration) -> bool {
    let settle_ms = i64::try_from(settle.as_millis()).unwrap_or(i64::MAX);
    reserved_by_ms > now_ms.saturating_sub(settle_ms)
}

/// The replay of `entries` (the live entries after `since`, oldest first; `has_more` when
/// the page stopped short) against `head`.
/// [`replay`] of a page of the log read just now, with `settle` the writer lease.
pub fn replay_page(since: u64, page: &LogPage, settle: Duration) -> Replay {
    let now = chrono::Utc::now().timestamp_millis();
    replay(since, page.head, &page.entries, page.has_more, now, settle)
}

pub fn replay(
    since: u64,
    head: Head,
    entries: &[LogEntry],
    has_more: bool,
    now_ms: i64,
    settle: Duration,
) -> Replay {
    let mut out = Replay {
        events: Vec::new(),
        mark: since,
        head: head.seq,
        ending: Ending::Done,
    };
    if since > head.seq {
        out.ending = Ending::Resync;
        return out;
    }
    // The latest a missing seq can have been reserved, from the head alone.
    let head_bound = |seq: u64| {
        if seq < head.seq {
            head.prev_reserved_at_ms
        } else {
            head.reserved_at_ms
        }
    };
    let missing = |reserved_by_ms: i64| {
        if in_flight(reserved_by_ms, now_ms, settle) {
            Ending::More {
                retry_after: PENDING_RETRY,
            }
        } else {
            Ending::Resync
        }
    };
    for (i, entry) in entries.iter().enumerate() {
        if entry.seq != out.mark + 1 {
            // `mark + 1` is missing: reserved before every later entry's predecessor was.
            let reserved_by = entries[i..]
                .iter()
                .map(|e| e.prev_reserved_at_ms)
                .fold(head_bound(out.mark + 1), i64::min);
            out.ending = missing(reserved_by);
            return out;
        }
        if let Some(event) = &entry.event {
            out.events.push(event.clone());
        }
        out.mark = entry.seq;
    }
    out.ending = if has_more {
        Ending::More {
            retry_after: Duration::ZERO,
        }
    } else if out.mark < head.seq {
        missing(head_bound(out.mark + 1))
    } else {
        Ending::Done
    };
    out
}

/// Where a bootstrap's client must resume from, scanning the log from the top: below the
/// lowest seq that is still on its way (its write may land after the bootstrap reads the
/// data), else the head. `entries` are the newest live entries, newest first; `exhausted`
/// when there are none below them. `None` when the scan needs entries below the last one.
pub fn bootstrap_mark(
    head: Head,
    entries: &[LogEntry],
    exhausted: bool,
    now_ms: i64,
    settle: Duration,
) -> Option<u64> {
    let mut reserved_by = head.reserved_at_ms;
    let mut lowest_in_flight = None;
    let mut next = entries.iter().peekable();
    let mut seq = head.seq;
    while seq > 0 {
        // `reserved_by` bounds when `seq` was reserved; once that is long enough ago, nothing
        // at or below `seq` can still be in flight.
        if !in_flight(reserved_by, now_ms, settle) {
            break;
        }
        match next.peek() {
            Some(entry) if entry.seq == seq => {
                reserved_by = reserved_by.min(entry.prev_reserved_at_ms);
                next.next();
            }
            None if !exhausted => return None,
            _ => lowest_in_flight = Some(seq),
        }
        if seq == head.seq {
            reserved_by = reserved_by.min(head.prev_reserved_at_ms);
        }
        seq -= 1;
    }
    Some(lowest_in_flight.map_or(head.seq, |s| s - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTLE: Duration = Duration::from_secs(60);
    const NOW: i64 = 1_000_000_000;
    const OLD: i64 = NOW - 61_000;
    const RECENT: i64 = NOW - 1_000;

    fn event(seq: u64, prev: i64) -> LogEntry {
        LogEntry {
            seq,
            prev_reserved_at_ms: prev,
            event: Some(RecordedEvent {
                seq,
                event: "product:updated".into(),
                ts: "2026-11-24T23:42:22.169Z".into(),
                data: serde_json::json!({"n": seq}),
            }),
        }
    }

    fn skipped(seq: u64, prev: i64) -> LogEntry {
        LogEntry {
            seq,
            prev_reserved_at_ms: prev,
            event: None,
        }
    }

    /// A head whose previous seq was reserved when its latest entry says (`at` if unsure).
    fn head(seq: u64, at: i64) -> Head {
        Head {
            seq,
            reserved_at_ms: at,
            prev_reserved_at_ms: at,
        }
    }

    fn seqs(r: &Replay) -> Vec<u64> {
        r.events.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn a_full_log_replays_everything_and_passes_over_skipped_seqs() {
        let entries = [event(3, OLD), skipped(4, OLD), event(5, OLD)];
        let r = replay(2, head(5, OLD), &entries, false, NOW, SETTLE);
        assert_eq!(seqs(&r), vec![3, 5]);
        assert_eq!((r.mark, r.head, r.ending), (5, 5, Ending::Done));
        let r = replay(5, head(5, OLD), &[], false, NOW, SETTLE);
        assert_eq!((r.mark, r.ending), (5, Ending::Done));
    }

    #[test]
    fn a_reader_ahead_of_the_log_must_resync() {
        let r = replay(9, head(5, OLD), &[], false, NOW, SETTLE);
        assert_eq!(r.ending, Ending::Resync);
    }

    #[test]
    fn a_recent_hole_is_waited_for_and_an_old_one_is_lost() {
        // 4 is missing; 5 says 4 was reserved recently: its writer may still record it.
        let entries = [event(3, OLD), event(5, RECENT)];
        let r = replay(2, head(5, RECENT), &entries, false, NOW, SETTLE);
        assert_eq!(seqs(&r), vec![3]);
        assert_eq!(r.mark, 3);
        assert_eq!(
            r.ending,
            Ending::More {
                retry_after: PENDING_RETRY
            }
        );
        // 5 says 4 was reserved over a minute ago: gone for good.
        let entries = [event(3, OLD), event(5, OLD)];
        let r = replay(2, head(5, RECENT), &entries, false, NOW, SETTLE);
        assert_eq!(r.ending, Ending::Resync);
        assert_eq!(r.mark, 3);
    }

    #[test]
    fn a_missing_head_is_judged_by_the_head_reservation_time() {
        let entries = [event(3, OLD)];
        let waiting = replay(2, head(4, RECENT), &entries, false, NOW, SETTLE);
        assert!(
            matches!(waiting.ending, Ending::More { retry_after } if retry_after > Duration::ZERO)
        );
        let lost = replay(2, head(4, OLD), &entries, false, NOW, SETTLE);
        assert_eq!(lost.ending, Ending::Resync);
    }

    #[test]
    fn entries_past_retention_mean_resync() {
        // The client stopped at 2; 3..=9 expired; 10 was reserved long after 9.
        let entries = [event(10, OLD), event(11, RECENT)];
        let r = replay(2, head(11, RECENT), &entries, false, NOW, SETTLE);
        assert_eq!(r.ending, Ending::Resync);
    }

    #[test]
    fn a_page_limit_asks_for_more_at_once() {
        let entries = [event(1, 0), event(2, OLD)];
        let r = replay(0, head(9, OLD), &entries, true, NOW, SETTLE);
        assert_eq!(r.mark, 2);
        assert_eq!(
            r.ending,
            Ending::More {
                retry_after: Duration::ZERO
            }
        );
    }

    #[test]
    fn the_bootstrap_mark_stays_below_every_write_in_flight() {
        // All recorded: the head.
        let entries = [event(5, OLD), event(4, OLD), event(3, OLD)];
        assert_eq!(
            bootstrap_mark(head(5, OLD), &entries, false, NOW, SETTLE),
            Some(5)
        );
        // 4 in flight (reserved recently, as 5 says): resume from 3.
        let entries = [event(5, RECENT), event(3, OLD)];
        assert_eq!(
            bootstrap_mark(head(5, RECENT), &entries, false, NOW, SETTLE),
            Some(3)
        );
        // The head itself in flight.
        let entries = [event(4, OLD)];
        assert_eq!(
            bootstrap_mark(head(5, RECENT), &entries, true, NOW, SETTLE),
            Some(4)
        );
        // 4 lost long ago: not waited for.
        let entries = [event(5, OLD), event(3, OLD)];
        assert_eq!(
            bootstrap_mark(head(5, OLD), &entries, true, NOW, SETTLE),
            Some(5)
        );
    }

    #[test]
    fn the_bootstrap_mark_passes_over_expired_entries_after_a_quiet_day() {
        // 1..=9 expired; 10 was just written, and says 9 was reserved long ago.
        let entries = [event(10, OLD)];
        assert_eq!(
            bootstrap_mark(head(10, RECENT), &entries, true, NOW, SETTLE),
            Some(10)
        );
        // The same with 10 still in flight: the head knows 9 is old; only 10 is waited for.
        let top = Head {
            seq: 10,
            reserved_at_ms: RECENT,
            prev_reserved_at_ms: OLD,
        };
        assert_eq!(bootstrap_mark(top, &[], true, NOW, SETTLE), Some(9));
        let r = replay(9, top, &[], false, NOW, SETTLE);
        assert!(matches!(r.ending, Ending::More { .. }));
    }

    #[test]
    fn the_bootstrap_mark_asks_for_more_entries_when_it_must() {
        let entries = [event(5, RECENT), event(4, RECENT)];
        assert_eq!(
            bootstrap_mark(head(5, RECENT), &entries, false, NOW, SETTLE),
            None
        );
        assert_eq!(bootstrap_mark(head(0, 0), &[], true, NOW, SETTLE), Some(0));
    }
}
