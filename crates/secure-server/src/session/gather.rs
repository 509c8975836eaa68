//! When a session writes the room's frames: the adaptive flush.
//!
//! A write to a socket costs a system call and the kernel's whole TCP path (on loopback about
//! 2.5 µs, the receiver's side included), and waking the session to make it costs about as much
//! again: more than everything else a delivery costs. In a busy room the frames for one
//! receiver arrive a fraction of a millisecond apart, so writing each at once spends a write
//! and a wake-up on every frame.
//!
//! A session therefore waits on the room's ring only while its socket is quiet, and writes what
//! wakes it at once. After every write of room frames it stops waiting on the ring until the
//! next [`TICK`] of one clock shared by every session: the frames that arrive meanwhile wake
//! nobody, and leave together when the tick comes. If the tick brought nothing, the session
//! waits on the ring again. A quiet room is as instant as before; a streaming one costs one
//! wake-up and one write per tick per receiver, however many frames the tick brought, for at
//! most a tick of added latency. The shared clock makes the receivers of a room wake together,
//! in one burst the runtime works through at once, rather than each on a timer of its own
//! spread over the tick.
//!
//! The tick was chosen by measuring (docs/BENCHMARKS.md, "CPU per delivery"): 200 receivers
//! at 1M deliveries/s cost the server about 260 ns of CPU per delivery with a 5 ms tick, with
//! latency at p99 near 6.3 ms; shorter ticks cost more (a 1 ms tick about twice as much). A
//! chat message that waits 5 ms more in a busy room is not one a person can tell.

use std::sync::OnceLock;

use tokio::time::{Duration, Instant};

/// The longest a frame waits for others to leave with it.
pub(super) const TICK: Duration = Duration::from_millis(5);

/// A session's flush state.
#[derive(Debug, Default)]
pub(super) struct Gather {
    /// While frames stream: when the ring is read next. `None` while the session waits on the
    /// ring.
    due: Option<Instant>,
}

impl Gather {
    /// Whether the session should wait on the room's ring now (it is not gathering).
    pub(super) fn waits(&self) -> bool {
        self.due.is_none()
    }

    /// A write of `frames` room frames (out of a batch of at most `batch`) was made at `now`.
    /// Returns when to read the ring next: a tick later after a write, at once after a full
    /// batch (a backlog is worked off), or `None` (wait on the ring) after a tick that brought
    /// nothing.
    pub(super) fn wrote(&mut self, frames: usize, batch: usize, now: Instant) -> Option<Instant> {
        self.due = match frames {
            0 => None,
            frames if frames >= batch => Some(now),
            _ => Some(next_tick(now)),
        };
        self.due
    }
}

/// The first tick after `now` on one clock for the whole process: the sessions of a streaming
/// room wake together, once a tick, rather than each on a timer of its own.
fn next_tick(now: Instant) -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    let tick = TICK.as_nanos();
    let ticks = now.saturating_duration_since(start).as_nanos() / tick + 1;
    start + Duration::from_nanos(u64::try_from(ticks * tick).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_socket_waits_on_the_ring() {
        let gather = Gather::default();
        assert!(gather.waits(), "the first frames ever are written at once");
    }

    #[test]
    fn after_a_write_frames_gather_until_the_next_tick() {
        let mut gather = Gather::default();
        let t0 = Instant::now();
        let due = gather.wrote(1, 256, t0).unwrap();
        assert!(t0 < due && due <= t0 + TICK, "within a tick");
        assert!(!gather.waits(), "the ring is not waited on while gathering");
        assert_eq!(
            gather.wrote(30, 256, due),
            Some(due + TICK),
            "frames keep streaming, a tick apart"
        );
    }

    #[test]
    fn sessions_that_write_within_a_tick_wake_together() {
        let (mut a, mut b) = (Gather::default(), Gather::default());
        let t0 = next_tick(Instant::now());
        assert_eq!(
            a.wrote(1, 256, t0 + TICK / 5),
            b.wrote(1, 256, t0 + TICK * 4 / 5)
        );
    }

    #[test]
    fn a_tick_that_brought_nothing_goes_back_to_the_ring() {
        let mut gather = Gather::default();
        let t0 = Instant::now();
        gather.wrote(1, 256, t0);
        assert_eq!(gather.wrote(0, 256, t0 + TICK), None);
        assert!(gather.waits());
    }

    #[test]
    fn a_full_batch_lets_the_next_go_at_once() {
        let mut gather = Gather::default();
        let t0 = Instant::now();
        assert_eq!(
            gather.wrote(256, 256, t0),
            Some(t0),
            "the backlog is worked off"
        );
        assert_eq!(gather.wrote(3, 256, t0), Some(next_tick(t0)));
    }
}
