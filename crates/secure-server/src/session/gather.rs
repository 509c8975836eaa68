//! When a session writes the room's frames: the adaptive flush.
//!
//! A write to a socket costs a system call and the kernel's whole TCP path (on loopback about
//! 2.5 µs, the receiver's side included), and waking the session to make it costs about as much
//! again: more than everything else a delivery costs. In a busy room the frames for one
//! receiver arrive a fraction of a millisecond apart, so writing each at once spends a write
//! on every frame. A session therefore writes at once only when its socket has been quiet for
//! a [`TICK`]; while frames are streaming, it gathers them and writes once a tick has passed
//! since its last write. A quiet room is as instant as before, and a streaming one pays one
//! write per tick per receiver, however many frames that tick brought, for at most about a
//! tick of added latency (plus up to a millisecond: the runtime's timers have that
//! resolution).
//!
//! The tick was chosen by measuring (docs/BENCHMARKS.md, "CPU per delivery"): 200 receivers
//! at 1M deliveries/s cost the server 540 ns of CPU per delivery with a 1 ms tick, 460 with
//! 2 ms, 390 with 3 ms and 350 with 4 ms, and latency stayed well under 10 ms at p99 with
//! each. A chat message that waits 4 ms more in a busy room is not one a person can tell.
//!
//! While it gathers, the session does not wait on the room's ring, so the frames that arrive
//! meanwhile do not wake it: they wait in the ring and leave with the next write.

use tokio::time::{Duration, Instant};

/// The longest a frame waits for others to leave with it.
pub(super) const TICK: Duration = Duration::from_millis(4);

/// A session's flush state.
#[derive(Debug, Default)]
pub(super) struct Gather {
    /// When the last write of room frames was made.
    last_write: Option<Instant>,
    /// While gathering: when the gathered frames are to be written.
    due: Option<Instant>,
    /// The last write took a full batch and left frames waiting: the next goes at once.
    backlog: bool,
}

impl Gather {
    /// Whether the session should wait on the room's ring now (it is not gathering).
    pub(super) fn accepts(&self) -> bool {
        self.due.is_none()
    }

    /// Frames arrived at `now`: `None` to write them at once, the socket having been quiet for
    /// a tick (or a backlog being worked off); else when to write them, gathering until then.
    pub(super) fn arrived(&mut self, now: Instant) -> Option<Instant> {
        match self.last_write {
            Some(last) if !self.backlog && now < last + TICK => {
                self.due = Some(last + TICK);
                self.due
            }
            _ => None,
        }
    }

    /// The tick is up: the gathered frames are written now.
    pub(super) fn due_now(&mut self) {
        self.due = None;
    }

    /// A write of `frames` room frames (out of a batch of at most `batch`) was made at `now`.
    pub(super) fn wrote(&mut self, frames: usize, batch: usize, now: Instant) {
        if frames > 0 {
            self.last_write = Some(now);
        }
        self.backlog = frames >= batch;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_socket_writes_at_once() {
        let mut gather = Gather::default();
        let t0 = Instant::now();
        assert_eq!(gather.arrived(t0), None, "the first frames ever");
        gather.wrote(1, 256, t0);
        assert_eq!(
            gather.arrived(t0 + TICK),
            None,
            "frames a whole tick after the last write"
        );
        assert!(gather.accepts());
    }

    #[test]
    fn streaming_frames_wait_for_the_tick() {
        let mut gather = Gather::default();
        let t0 = Instant::now();
        gather.wrote(1, 256, t0);
        assert_eq!(
            gather.arrived(t0 + TICK / 5),
            Some(t0 + TICK),
            "due a tick after the last write"
        );
        assert!(
            !gather.accepts(),
            "the ring is not waited on while gathering"
        );
        gather.due_now();
        assert!(gather.accepts());
    }

    #[test]
    fn a_full_batch_lets_the_next_go_at_once() {
        let mut gather = Gather::default();
        let t0 = Instant::now();
        gather.wrote(256, 256, t0);
        assert_eq!(gather.arrived(t0), None, "the backlog is worked off");
        gather.wrote(3, 256, t0);
        assert!(gather.arrived(t0).is_some());
    }

    #[test]
    fn a_write_of_nothing_leaves_the_socket_quiet() {
        let mut gather = Gather::default();
        let t0 = Instant::now();
        gather.wrote(0, 256, t0);
        assert_eq!(gather.arrived(t0), None);
    }
}
