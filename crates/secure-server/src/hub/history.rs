//! The room's recent messages, in the order the room delivered them: what a member that asks
//! for history gets on joining. Kept in memory under the room's lock (the backplane keeps them
//! beyond the process), bounded by `keep` and `max_age_hours`.

use std::collections::VecDeque;

use clichat_proto::HistoryEntry;

use crate::config::HistoryConfig;
use crate::history_db::now_ms;

#[derive(Debug)]
pub(super) struct Recent {
    entries: VecDeque<HistoryEntry>,
    config: HistoryConfig,
}

impl Recent {
    pub(super) fn new(config: HistoryConfig) -> Recent {
        Recent {
            entries: VecDeque::new(),
            config,
        }
    }

    /// Adds a message the room delivers now; `false` (and nothing added) if its number is not
    /// past the newest one's: a message heard of twice is delivered once.
    pub(super) fn push(&mut self, entry: HistoryEntry) -> bool {
        if self
            .entries
            .back()
            .is_some_and(|newest| newest.stamp.seq >= entry.stamp.seq)
        {
            return false;
        }
        if self.entries.len() == self.config.keep {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
        true
    }

    /// The newest of the messages not past their age, at most `on_join` of them, oldest first.
    pub(super) fn on_join(&self) -> Vec<HistoryEntry> {
        let cutoff = now_ms()
            .saturating_sub(u64::try_from(self.config.max_age().as_millis()).unwrap_or(u64::MAX));
        let young = self
            .entries
            .iter()
            .rev()
            .take(self.config.on_join)
            .take_while(|entry| entry.stamp.time_ms >= cutoff)
            .count();
        self.entries
            .iter()
            .skip(self.entries.len() - young)
            .cloned()
            .collect()
    }

    /// The messages numbered after `since`, oldest first, but those `from` said (a sender
    /// never gets its own back), and whether they are all there are (`false`: messages after
    /// `since` were dropped, being past `keep` or their age).
    pub(super) fn since(&self, since: u64, from: &str) -> (Vec<HistoryEntry>, bool) {
        let complete = self
            .entries
            .front()
            .is_none_or(|oldest| oldest.stamp.seq <= since.saturating_add(1));
        let start = self
            .entries
            .partition_point(|entry| entry.stamp.seq <= since);
        let missed = self
            .entries
            .range(start..)
            .filter(|entry| entry.from != from)
            .cloned()
            .collect();
        (missed, complete)
    }

    /// The newest message's number, if any is kept.
    pub(super) fn newest(&self) -> Option<u64> {
        self.entries.back().map(|entry| entry.stamp.seq)
    }

    pub(super) fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history_db::tests::entry;

    #[test]
    fn keeps_the_newest_once_each_and_young_enough() {
        let mut recent = Recent::new(HistoryConfig {
            on_join: 2,
            keep: 3,
            max_age_hours: 1,
        });
        let now = now_ms();
        assert!(recent.push(entry(1, now - 2 * 3_600_000)));
        assert!(recent.push(entry(2, now)));
        assert!(!recent.push(entry(2, now)), "heard of twice");
        assert!(!recent.push(entry(1, now)), "older than the newest");
        let seqs = |entries: Vec<HistoryEntry>| -> Vec<u64> {
            entries.into_iter().map(|e| e.stamp.seq).collect()
        };
        assert_eq!(seqs(recent.on_join()), [2], "the old one is not shown");
        assert!(recent.push(entry(3, now)));
        assert!(recent.push(entry(4, now)));
        assert_eq!(recent.entries.len(), 3);
        assert_eq!(seqs(recent.on_join()), [3, 4]);
        let (missed, complete) = recent.since(2, "b");
        assert_eq!(seqs(missed), [3, 4]);
        assert!(complete, "everything after 2 is kept");
        let (missed, complete) = recent.since(0, "b");
        assert_eq!(seqs(missed), [2, 3, 4]);
        assert!(!complete, "1 was dropped past keep");
        let (mine, _) = recent.since(2, "a");
        assert!(
            mine.is_empty(),
            "a sender's own messages are not given back"
        );
        assert_eq!(recent.newest(), Some(4));
        recent.clear();
        assert!(recent.on_join().is_empty());
    }
}
