//! When a session writes the room's frames: the adaptive flush, and the clock it keeps.
//!
//! A write to a socket costs a system call and the kernel's whole TCP path (on loopback about
//! 2.5 µs, the receiver's side included), and waking the session to make it costs about as much
//! again: more than everything else a delivery costs. In a busy room the frames for one
//! receiver arrive a fraction of a millisecond apart, so writing each at once spends a write
//! and a wake-up on every frame.
//!
//! A session therefore waits on the room's ring only while its socket is quiet, and writes what
//! wakes it at once. After every write of room frames it waits instead for the next tick of the
//! server's [`Ticker`], one clock for every session: the frames that arrive meanwhile wake
//! nobody, and leave together at the tick. If the tick brought nothing, the session waits on
//! the ring again. A quiet room is as instant as before; a streaming one costs one wake-up and
//! one write per tick per receiver, however many frames the tick brought, for at most a tick of
//! added latency. The receivers of a busy room all wake at the tick, in one burst the runtime
//! works through at once, rather than each on a timer of its own spread over the tick; and the
//! clock sleeps while no session gathers.
//!
//! The tick was chosen by measuring (docs/BENCHMARKS.md, "CPU per delivery"): 200 receivers
//! at 1M deliveries/s cost the server about 260 ns of CPU per delivery with a 5 ms tick, with
//! latency at p99 near 6.3 ms; shorter ticks cost more (a 1 ms tick about twice as much). A
//! chat message that waits 5 ms more in a busy room is not one a person can tell.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;
use tokio::sync::futures::Notified;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The longest a frame waits for others to leave with it.
pub(crate) const TICK: Duration = Duration::from_millis(5);

/// What a session waits for after a write of room frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    /// The write had nothing of the room's: wait on the ring (the socket is quiet).
    Ring,
    /// Frames are streaming: wait for the next tick.
    Tick,
}

impl Next {
    /// What to wait for after a write of `frames` room frames.
    pub(super) fn after(frames: usize) -> Next {
        if frames == 0 { Next::Ring } else { Next::Tick }
    }
}

/// The server's one clock for gathering sessions: a task wakes every session that waits for
/// the tick, once a tick, and sleeps while none does.
#[derive(Debug, Default)]
pub(crate) struct Ticker {
    /// Woken at each tick: every session waiting for it.
    tick: Notify,
    /// A session has asked for a tick since the last one.
    wanted: AtomicBool,
    /// Wakes the clock from its sleep.
    start: Notify,
}

impl Ticker {
    /// The next tick, for a session to wait on. Registered as soon as it is made, so no tick
    /// after this call is missed; the clock runs until it comes.
    pub(super) fn next(&self) -> Notified<'_> {
        let tick = self.tick.notified();
        // A plain load first: while the flag is up, a tick is coming, and every session of a
        // busy room asks in the same moment.
        if !self.wanted.load(Ordering::Acquire) && !self.wanted.swap(true, Ordering::AcqRel) {
            self.start.notify_one();
        }
        tick
    }

    /// Ticks while sessions wait for ticks, until `stop` is cancelled. The ticks fall on one
    /// grid (every [`TICK`] from the clock's start), however long it slept between.
    pub(crate) async fn run(&self, stop: CancellationToken) {
        let start = Instant::now();
        loop {
            if !self.wanted.swap(false, Ordering::AcqRel) {
                // Nobody asked since the last tick: sleep until somebody does.
                tokio::select! {
                    () = self.start.notified() => {}
                    () = stop.cancelled() => return,
                }
                self.wanted.store(false, Ordering::Release);
            }
            tokio::select! {
                () = tokio::time::sleep_until(next_tick(start, Instant::now())) => {}
                () = stop.cancelled() => return,
            }
            self.tick.notify_waiters();
        }
    }
}

/// The first tick after `now` on the grid that starts at `start`.
fn next_tick(start: Instant, now: Instant) -> Instant {
    let tick = TICK.as_nanos();
    let ticks = now.saturating_duration_since(start).as_nanos() / tick + 1;
    start + Duration::from_nanos(u64::try_from(ticks * tick).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_write_of_frames_waits_for_the_tick_and_one_of_none_for_the_ring() {
        assert_eq!(Next::after(3), Next::Tick);
        assert_eq!(Next::after(0), Next::Ring);
    }

    #[test]
    fn ticks_fall_on_the_grid() {
        let start = Instant::now();
        assert_eq!(next_tick(start, start), start + TICK);
        assert_eq!(next_tick(start, start + TICK / 5), start + TICK);
        assert_eq!(next_tick(start, start + TICK), start + 2 * TICK);
        assert_eq!(next_tick(start, start + TICK * 9 / 2), start + 5 * TICK);
    }

    #[tokio::test(start_paused = true)]
    async fn sessions_waiting_for_a_tick_wake_together_and_later_waits_keep_to_the_grid() {
        let ticker = Arc::new(Ticker::default());
        let stop = CancellationToken::new();
        let clock = tokio::spawn({
            let ticker = Arc::clone(&ticker);
            let stop = stop.clone();
            async move { ticker.run(stop).await }
        });
        let t0 = Instant::now();
        let (a, b) = (ticker.next(), ticker.next());
        let within_a_tick = |tick| tokio::time::timeout(TICK + Duration::from_millis(1), tick);
        within_a_tick(a).await.expect("a tick within a tick");
        within_a_tick(b).await.expect("the same tick");
        let woke = Instant::now();
        assert!(woke > t0 && woke <= t0 + TICK, "at the next tick");
        // Nobody waits for a while (the clock sleeps); the next wait ends at a tick of the grid.
        tokio::time::sleep(TICK * 7 / 2).await;
        let asked = Instant::now();
        within_a_tick(ticker.next())
            .await
            .expect("the clock wakes for a new wait");
        let woke = Instant::now();
        assert!(woke > asked && woke <= asked + TICK);
        assert_eq!(
            (woke - t0).as_nanos() % TICK.as_nanos(),
            0,
            "the ticks keep to one grid"
        );
        stop.cancel();
        clock.await.unwrap();
    }
}
