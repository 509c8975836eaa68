//! Connections that log in and then keep reading: what every scenario holds.
//!
//! Every logged-in connection must read all the time, even when only held: each login is
//! announced to everyone (`["join", name]`), and a connection that stops reading fills its
//! server-side queue and is dropped as a slow consumer; reading is also what answers the server's
//! pings (tungstenite queues the pong and sends it on the next poll of the socket).
//!
//! Readers take the raw socket from the client library ([`Client::into_websocket`]) and count
//! text frames by their first bytes, decoding only the sampled ones; each count is published
//! with a plain store of the connection's own total, so a frame costs no locked instruction.
//!
//! [`Client::into_websocket`]: clichat_client::Client::into_websocket

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clichat_client::WebSocket;
use clichat_proto::ServerFrame;
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::Setup;
use crate::login::{LoginError, Timings, login};
use crate::report::Counts;

/// How a connection ended, as its reader saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// The server sent a close frame (with its code, if any).
    Close(Option<u16>),
    /// The socket ended without a close frame.
    Eof,
    /// The socket failed or the server broke the framing rules.
    Error(String),
}

impl Ended {
    /// A short label to group endings by: `close 1008`, `eof`, `error: ...`.
    pub fn label(&self) -> String {
        match self {
            Ended::Close(Some(code)) => format!("close {code}"),
            Ended::Close(None) => "close (no code)".to_owned(),
            Ended::Eof => "eof".to_owned(),
            Ended::Error(error) => format!("error: {error}"),
        }
    }
}

/// Hands one item read from the socket to `sink`; how the connection ended, if it did.
pub fn on_frame(
    item: Option<Result<Message, tungstenite::Error>>,
    sink: &mut CountSink<'_>,
) -> Option<Ended> {
    match item {
        Some(Ok(Message::Text(text))) => {
            sink.text(text.as_bytes());
            None
        }
        Some(Ok(Message::Close(frame))) => Some(Ended::Close(frame.map(|f| f.code.into()))),
        // Pings are answered by tungstenite itself; CLIChat sends no binary frames.
        Some(Ok(_)) => None,
        Some(Err(error)) => Some(Ended::Error(error.to_string())),
        None => Some(Ended::Eof),
    }
}

/// Reads frames into `sink` until the connection ends. Cancel-safe: frames not read yet stay
/// in the socket.
pub async fn read_to_end(ws: &mut WebSocket, sink: &mut CountSink<'_>) -> Ended {
    loop {
        if let Some(ended) = on_frame(ws.next().await, sink) {
            return ended;
        }
    }
}

/// The type of a CLIChat frame (`message` in `["message","a","hi"]`), read off its first bytes
/// without decoding the JSON. `None` if the text does not start like a frame.
pub fn frame_type(payload: &[u8]) -> Option<&[u8]> {
    let rest = skip_space(payload).strip_prefix(b"[")?;
    let rest = skip_space(rest).strip_prefix(b"\"")?;
    let end = rest.iter().position(|&b| b == b'"' || b == b'\\')?;
    (rest[end] == b'"').then(|| &rest[..end])
}

fn skip_space(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    &bytes[start..]
}

/// What one connection's reader has seen.
#[derive(Debug, Default)]
pub struct ConnStats {
    /// Set once the login succeeded.
    pub logged_in: AtomicBool,
    /// `join` frames.
    pub joins: AtomicU64,
    /// `message` frames.
    pub messages: AtomicU64,
    /// Whether a `message` holding the probe marker came.
    pub marker_seen: AtomicBool,
    /// Set once the connection has ended.
    pub ended: OnceLock<Ended>,
}

impl ConnStats {
    /// Whether the connection logged in and is still open.
    pub fn is_open(&self) -> bool {
        self.logged_in.load(Ordering::Relaxed) && self.ended.get().is_none()
    }
}

/// Sums over connections.
pub fn total(stats: &[Arc<ConnStats>], field: impl Fn(&ConnStats) -> &AtomicU64) -> u64 {
    stats.iter().map(|s| field(s).load(Ordering::Relaxed)).sum()
}

/// How connections ended, by [`Ended::label`].
pub fn endings(stats: &[Arc<ConnStats>]) -> Counts {
    let mut counts = Counts::new();
    for ended in stats.iter().filter_map(|s| s.ended.get()) {
        *counts.entry(ended.label()).or_default() += 1;
    }
    counts
}

/// The clock fan-out messages carry their send time on: nanoseconds since a shared moment, read
/// off the system's real-time clock, so that the bench's processes (all on one machine) agree
/// on it. A worker process is handed the moment as [`Epoch::unix_nanos`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch(SystemTime);

impl Epoch {
    /// Now.
    pub fn now() -> Epoch {
        Epoch(SystemTime::now())
    }

    /// The moment `nanos` after the Unix epoch.
    pub fn from_unix_nanos(nanos: u64) -> Epoch {
        Epoch(UNIX_EPOCH + Duration::from_nanos(nanos))
    }

    /// This moment, in nanoseconds since the Unix epoch.
    pub fn unix_nanos(self) -> u64 {
        nanos(self.0.duration_since(UNIX_EPOCH).unwrap_or_default())
    }

    /// Nanoseconds from this moment to now (0 if the clock was set back past it).
    pub fn nanos(self) -> u64 {
        nanos(self.0.elapsed().unwrap_or_default())
    }
}

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Latency sampling of fan-out messages, whose text is `SENDER:SEQ:NANOS` with `NANOS` the send
/// time on the run's [`Epoch`].
#[derive(Debug)]
pub struct Sampler {
    /// The moment send times count from, shared by all the run's processes.
    pub epoch: Epoch,
    /// One message frame in this many is decoded and timed.
    pub every: u64,
    /// The latencies, in microseconds.
    pub histogram: Mutex<Histogram<u64>>,
}

impl Sampler {
    /// A sampler with an empty histogram.
    pub fn new(epoch: Epoch, every: u64) -> Sampler {
        Sampler {
            epoch,
            every: every.max(1),
            histogram: Mutex::new(crate::report::micros_histogram()),
        }
    }

    /// The latencies sampled so far; the sampler starts a new histogram (the next phase's).
    pub fn take(&self) -> Histogram<u64> {
        let mut histogram = self.histogram.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::replace(&mut histogram, crate::report::micros_histogram())
    }

    /// The latency of one message frame, if its text has the fan-out shape.
    fn latency(&self, payload: &[u8]) -> Option<Duration> {
        let text = std::str::from_utf8(payload).ok()?;
        let Ok(ServerFrame::Message { text, .. }) = ServerFrame::decode(text) else {
            return None;
        };
        let sent: u64 = text.rsplit(':').next()?.parse().ok()?;
        Some(Duration::from_nanos(
            self.epoch.nanos().saturating_sub(sent),
        ))
    }
}

/// Counts the frames of one connection; see the module doc.
pub struct CountSink<'a> {
    stats: &'a ConnStats,
    /// This connection's totals; only its reader writes `stats`, so a store publishes them.
    joins: u64,
    messages: u64,
    marker: Option<&'a [u8]>,
    sampler: Option<&'a Sampler>,
    countdown: u64,
}

impl<'a> CountSink<'a> {
    /// A sink that counts into `stats`, watches for `marker` in messages, and times one message
    /// in `sampler.every`.
    pub fn new(
        stats: &'a ConnStats,
        marker: Option<&'a [u8]>,
        sampler: Option<&'a Sampler>,
    ) -> CountSink<'a> {
        CountSink {
            stats,
            joins: stats.joins.load(Ordering::Relaxed),
            messages: stats.messages.load(Ordering::Relaxed),
            marker,
            sampler,
            // Receivers start their sampling at different offsets.
            countdown: sampler.map_or(0, |s| 1 + rand::random::<u64>() % s.every.max(1)),
        }
    }

    /// Counts one text frame.
    pub fn text(&mut self, payload: &[u8]) {
        match frame_type(payload) {
            Some(b"message") => {
                self.messages += 1;
                self.stats.messages.store(self.messages, Ordering::Relaxed);
                if let Some(sampler) = self.sampler {
                    self.countdown -= 1;
                    if self.countdown == 0 {
                        self.countdown = sampler.every.max(1);
                        if let Some(latency) = sampler.latency(payload) {
                            let mut histogram =
                                sampler.histogram.lock().unwrap_or_else(|e| e.into_inner());
                            crate::report::record(&mut histogram, latency);
                        }
                    }
                }
                if let Some(marker) = self.marker
                    && payload.windows(marker.len()).any(|w| w == marker)
                {
                    self.stats.marker_seen.store(true, Ordering::Relaxed);
                }
            }
            Some(b"join") => {
                self.joins += 1;
                self.stats.joins.store(self.joins, Ordering::Relaxed);
            }
            _ => {}
        }
    }
}

/// What a wait for messages found ([`wait_for_messages`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Waited {
    /// `message` frames received, all connections, since they logged in.
    pub messages: u64,
    /// Connections that have exactly what was due to them.
    pub complete: usize,
    /// When (nanoseconds on the run's [`Epoch`]) the total last grew during the wait; `None` if
    /// it did not grow.
    pub last_ns: Option<u64>,
}

/// How often a wait looks at the counters: the resolution of "the last delivery".
const WAIT_POLL: Duration = Duration::from_millis(1);

/// Waits until every open connection (number `i` of `stats`) has at least `due(i)` messages,
/// or `deadline`, noting when their total last grew.
///
/// Each look reads every connection's count once, and the answer comes from the last look
/// alone: the total and the connections that have exactly what was due agree with each other
/// (messages go on arriving between two reads of the same counter).
pub async fn wait_for_messages(
    stats: &[Arc<ConnStats>],
    due: impl Fn(usize) -> u64,
    deadline: Instant,
    epoch: Epoch,
) -> Waited {
    let mut last_ns = None;
    let mut previous = None;
    let mut counts = Vec::with_capacity(stats.len());
    loop {
        counts.clear();
        counts.extend(stats.iter().map(|s| s.messages.load(Ordering::Relaxed)));
        let messages: u64 = counts.iter().sum();
        if previous.is_some_and(|p| p != messages) {
            last_ns = Some(epoch.nanos());
        }
        previous = Some(messages);
        let waiting = stats
            .iter()
            .zip(&counts)
            .enumerate()
            .any(|(i, (s, &count))| s.is_open() && count < due(i));
        if !waiting || Instant::now() >= deadline {
            return Waited {
                messages,
                complete: counts
                    .iter()
                    .enumerate()
                    .filter(|&(i, &count)| count == due(i))
                    .count(),
                last_ns,
            };
        }
        tokio::time::sleep(WAIT_POLL).await;
    }
}

/// One finished login attempt.
#[derive(Debug)]
pub struct LoginDone {
    /// When the attempt finished.
    pub at: Instant,
    /// Its step timings, or why it failed.
    pub result: Result<Timings, LoginError>,
}

/// Connections being logged in, at most `concurrency` at a time, each then read until the end.
/// Dropping this closes them all.
#[derive(Debug)]
pub struct Held {
    /// One per connection, in index order (from `range.start`).
    pub stats: Vec<Arc<ConnStats>>,
    /// Finished logins, in the order they finish.
    pub results: mpsc::UnboundedReceiver<LoginDone>,
    tasks: Vec<JoinHandle<()>>,
}

impl Held {
    /// Starts logging in connections `range` (credential numbers), all watching for `marker`
    /// and timing messages with `sampler`.
    pub fn spawn(
        setup: &Setup,
        range: Range<usize>,
        marker: Option<Arc<[u8]>>,
        sampler: Option<Arc<Sampler>>,
    ) -> Held {
        let (done_tx, results) = mpsc::unbounded_channel();
        let permits = Arc::new(Semaphore::new(setup.concurrency.max(1)));
        let mut stats = Vec::with_capacity(range.len());
        let mut tasks = Vec::with_capacity(range.len());
        for index in range {
            let conn_stats = Arc::new(ConnStats::default());
            stats.push(Arc::clone(&conn_stats));
            let credential = setup.credential(index);
            let target = Arc::clone(&setup.target);
            let permits = Arc::clone(&permits);
            let done_tx = done_tx.clone();
            let marker = marker.clone();
            let sampler = sampler.clone();
            tasks.push(tokio::spawn(async move {
                let Ok(permit) = permits.acquire().await else {
                    return;
                };
                let result = login(&target, &credential, index).await;
                drop(permit);
                let (timings, mut logged) = match result {
                    Ok(logged) => {
                        conn_stats.logged_in.store(true, Ordering::Relaxed);
                        (Ok(logged.timings), Some(logged))
                    }
                    Err(error) => (Err(error), None),
                };
                let _ = done_tx.send(LoginDone {
                    at: Instant::now(),
                    result: timings,
                });
                if let Some(logged) = logged.take() {
                    let (mut ws, _welcome) = logged.client.into_websocket();
                    let mut sink =
                        CountSink::new(&conn_stats, marker.as_deref(), sampler.as_deref());
                    let ended = read_to_end(&mut ws, &mut sink).await;
                    let _ = conn_stats.ended.set(ended);
                }
            }));
        }
        Held {
            stats,
            results,
            tasks,
        }
    }

    /// Connections still open.
    pub fn open(&self) -> usize {
        self.stats.iter().filter(|s| s.is_open()).count()
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_types_are_read_without_decoding() {
        assert_eq!(frame_type(br#"["message","a","b"]"#), Some(&b"message"[..]));
        assert_eq!(frame_type(b" [ \"join\" , \"a\"]"), Some(&b"join"[..]));
        assert_eq!(frame_type(br#"{"message":1}"#), None);
        assert_eq!(frame_type(br#"["mess\"age"]"#), None);
        assert_eq!(frame_type(b"[5]"), None);
        assert_eq!(frame_type(b""), None);
    }

    #[test]
    fn sampled_messages_are_timed_and_counted() {
        let stats = ConnStats::default();
        let sampler = Sampler::new(Epoch::now(), 2);
        let mut sink = CountSink::new(&stats, Some(b"probe-1"), Some(&sampler));
        sink.text(br#"["join","a"]"#);
        for _ in 0..4 {
            sink.text(br#"["message","a","0:1:0"]"#);
        }
        sink.text(br#"["message","a","probe probe-1"]"#);
        assert_eq!(stats.joins.load(Ordering::Relaxed), 1);
        assert_eq!(stats.messages.load(Ordering::Relaxed), 5);
        assert!(stats.marker_seen.load(Ordering::Relaxed));
        assert_eq!(sampler.take().len(), 2);
        assert_eq!(sampler.take().len(), 0, "taking starts a new histogram");
    }

    /// Messages arriving while the wait looks: what it answers is one consistent reading (in
    /// the 100,000 run, 32 deliveries came between the total and the check, and were reported
    /// lost although every connection had them all).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_wait_answers_one_consistent_reading() {
        let stats: Vec<Arc<ConnStats>> = (0..200).map(|_| Arc::default()).collect();
        for s in &stats {
            s.logged_in.store(true, Ordering::Relaxed);
        }
        let feeding = stats.clone();
        let feeder = tokio::spawn(async move {
            for round in 1..=50 {
                for s in &feeding {
                    s.messages.store(round, Ordering::Relaxed);
                }
                tokio::task::yield_now().await;
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        let waited = wait_for_messages(&stats, |_| 50, deadline, Epoch::now()).await;
        feeder.await.unwrap();
        assert_eq!(waited.complete, 200);
        assert_eq!(
            waited.messages,
            200 * 50,
            "complete, so every message counted"
        );
        assert!(waited.last_ns.is_some());

        // One connection short at the deadline, another closed: counted as they are.
        stats[0].messages.store(49, Ordering::Relaxed);
        let _ = stats[1].ended.set(Ended::Eof);
        stats[1].messages.store(3, Ordering::Relaxed);
        let waited = wait_for_messages(&stats, |_| 50, Instant::now(), Epoch::now()).await;
        assert_eq!(waited.complete, 198);
        assert_eq!(waited.messages, 198 * 50 + 49 + 3);
        assert_eq!(waited.last_ns, None, "nothing arrived during the wait");
    }

    #[test]
    fn the_epoch_crosses_processes_as_unix_nanos() {
        let epoch = Epoch::now();
        let again = Epoch::from_unix_nanos(epoch.unix_nanos());
        assert_eq!(again, epoch);
        std::thread::sleep(Duration::from_millis(5));
        let elapsed = again.nanos();
        assert!((5_000_000..5_000_000_000).contains(&elapsed), "{elapsed}");
        // A message sent 3 ms after the epoch, timed now: about 2 ms plus the sleep.
        let sampler = Sampler::new(Epoch::from_unix_nanos(epoch.unix_nanos() - 10_000_000), 1);
        let stats = ConnStats::default();
        let mut sink = CountSink::new(&stats, None, Some(&sampler));
        sink.text(br#"["message","a","0:0:3000000"]"#);
        let latency = crate::report::Latency::of(&sampler.take());
        assert!(
            latency.max_ms >= 12.0 && latency.max_ms < 5000.0,
            "{latency:?}"
        );
    }
}
