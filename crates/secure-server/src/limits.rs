//! Abuse limits: how many connections the server and each IP address may have, how fast an
//! address may try to log in or fetch pages, how fast a connection may talk, and a log of
//! refusals that says how many there were instead of one line per socket.
//!
//! Rates are token buckets from `governor`. Per-address buckets forget addresses that have been
//! quiet long enough to be full again (see `Rates::forget_idle`), so their memory follows the
//! addresses seen recently, not all addresses ever seen.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use governor::clock::DefaultClock;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config;

/// Descriptors kept back from the open-file limit for the listener, logs, the config file and
/// the runtime itself, so that a connection over the limit can still be accepted and answered.
pub const RESERVED_FILES: u64 = 64;

/// What a request for an unknown or closed token page costs, in page requests.
pub const UNKNOWN_PAGE_COST: u32 = 5;

/// How often a throttled log line may repeat.
const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// How many connections the process's open-file limit (its soft `RLIMIT_NOFILE`) allows, or
/// `None` when it is unlimited.
pub fn open_file_capacity() -> Option<usize> {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    limit
        .current
        .map(|files| usize::try_from(files.saturating_sub(RESERVED_FILES)).unwrap_or(usize::MAX))
}

/// Raises the soft open-file limit to the hard one, as servers holding many sockets do.
/// Returns the new soft limit.
///
/// # Errors
/// When the OS refuses.
pub fn raise_open_file_limit() -> std::io::Result<Option<u64>> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        setrlimit(Resource::Nofile, limit)?;
    }
    Ok(limit.current)
}

/// The connection caps, with their counts. Lives as long as the server; a config reload
/// changes the caps, not the counts.
#[derive(Debug)]
pub(crate) struct Connections {
    max_total: AtomicUsize,
    max_per_ip: AtomicUsize,
    file_capacity: Option<usize>,
    counts: Arc<Mutex<Counts>>,
    refused: LogThrottle,
}

impl Connections {
    /// Caps as configured, the total lowered to what `file_capacity` allows.
    pub(crate) fn new(config: &config::Limits, file_capacity: Option<usize>) -> Connections {
        let connections = Connections {
            max_total: AtomicUsize::new(0),
            max_per_ip: AtomicUsize::new(0),
            file_capacity,
            counts: Arc::default(),
            refused: LogThrottle::default(),
        };
        connections.configure(config);
        connections
    }

    /// Applies the caps of a (re)loaded config.
    pub(crate) fn configure(&self, config: &config::Limits) {
        let max_total = match (config.max_connections, self.file_capacity) {
            (Some(configured), Some(capacity)) if configured > capacity => {
                tracing::warn!(
                    configured,
                    capacity,
                    "limits.max_connections is more than the open-file limit allows; lowered"
                );
                capacity
            }
            (Some(configured), _) => configured,
            (None, Some(capacity)) => capacity,
            (None, None) => usize::MAX,
        };
        self.max_total.store(max_total, Ordering::Relaxed);
        self.max_per_ip
            .store(config.max_connections_per_ip, Ordering::Relaxed);
    }

    /// The most connections the server takes at once.
    pub(crate) fn max(&self) -> usize {
        self.max_total.load(Ordering::Relaxed)
    }

    /// Open connections now.
    pub(crate) fn open(&self) -> usize {
        lock(&self.counts).total
    }

    /// Takes a connection slot for a socket from `ip`, held until the returned slot is
    /// dropped; `None` when the server or the address is at its limit (logged, at most once per
    /// interval). A trusted proxy's sockets (`per_ip` false) count only towards the total: its
    /// clients are counted by address when their requests say who they are
    /// ([`Connections::admit_client`]).
    pub(crate) fn admit(&self, ip: IpAddr, per_ip: bool) -> Option<ConnectionSlot> {
        self.take(ip, true, per_ip)
    }

    /// Takes a place for a client whose address a trusted proxy forwarded (its socket holds a
    /// place in the total already); `None` when the address is at its limit.
    pub(crate) fn admit_client(&self, ip: IpAddr) -> Option<ConnectionSlot> {
        self.take(ip, false, true)
    }

    fn take(&self, ip: IpAddr, in_total: bool, per_ip: bool) -> Option<ConnectionSlot> {
        let max_total = if in_total { self.max() } else { usize::MAX };
        let max_per_ip = if per_ip {
            self.max_per_ip.load(Ordering::Relaxed)
        } else {
            usize::MAX
        };
        let mut counts = lock(&self.counts);
        let for_ip = counts.per_ip.get(&ip).copied().unwrap_or(0);
        if counts.total >= max_total || for_ip >= max_per_ip {
            let open = counts.total;
            drop(counts);
            if let Some(refused) = self.refused.hit() {
                tracing::warn!(
                    refused,
                    open,
                    max = max_total,
                    max_per_ip,
                    "refused connections over the limits (HTTP 503)"
                );
            }
            return None;
        }
        if per_ip {
            *counts.per_ip.entry(ip).or_default() += 1;
        }
        counts.total += usize::from(in_total);
        Some(ConnectionSlot {
            counts: Arc::clone(&self.counts),
            ip: per_ip.then_some(ip),
            in_total,
        })
    }
}

/// Login, page and message rates: token buckets built from one config. A reload that changes
/// `limits` builds new ones (and so forgets what addresses spent).
#[derive(Debug)]
pub(crate) struct Rates {
    config: config::Limits,
    logins: DefaultKeyedRateLimiter<IpAddr>,
    pages: DefaultKeyedRateLimiter<IpAddr>,
    /// WebSocket upgrades per address: what bounds the cost of an address that closes and
    /// opens connections to get fresh frame budgets.
    websockets: DefaultKeyedRateLimiter<IpAddr>,
    /// The clock every connection's message budget reads. Made once: making one calibrates it
    /// (CPUID and timer reads), which cost a sixth of the server's time in a login storm when
    /// each budget made its own.
    clock: DefaultClock,
}

impl Rates {
    pub(crate) fn new(config: &config::Limits) -> Rates {
        Rates {
            logins: RateLimiter::keyed(
                Quota::per_minute(nonzero(config.logins_per_ip_per_minute))
                    .allow_burst(nonzero(config.login_burst)),
            ),
            pages: RateLimiter::keyed(
                Quota::per_minute(nonzero(config.page_requests_per_ip_per_minute))
                    .allow_burst(nonzero(config.page_requests_per_ip_per_minute)),
            ),
            websockets: RateLimiter::keyed(
                Quota::per_minute(nonzero(config.websockets_per_ip_per_minute)).allow_burst(
                    nonzero(
                        u32::try_from(config.max_connections_per_ip)
                            .unwrap_or(u32::MAX)
                            .max(config.websockets_per_ip_per_minute),
                    ),
                ),
            ),
            config: config.clone(),
            clock: DefaultClock::default(),
        }
    }

    /// The limits these rates were built from.
    pub(crate) fn config(&self) -> &config::Limits {
        &self.config
    }

    /// Spends one login attempt of `ip`; `false` when it has none left.
    pub(crate) fn login_attempt(&self, ip: IpAddr) -> bool {
        self.logins.check_key(&ip).is_ok()
    }

    /// Charges `ip` the rest of a failed login's cost (the attempt itself was paid already).
    pub(crate) fn login_failed(&self, ip: IpAddr) {
        if let Some(extra) = NonZeroU32::new(self.config.failed_login_cost - 1) {
            // Whatever is left is spent; an address that cannot pay is refused next time.
            if self.logins.check_key_n(&ip, extra).is_err() {
                let _ = self.logins.check_key(&ip);
            }
        }
    }

    /// Spends one WebSocket upgrade of `ip`; `false` when it has none left.
    pub(crate) fn websocket(&self, ip: IpAddr) -> bool {
        self.websockets.check_key(&ip).is_ok()
    }

    /// Spends `cost` page requests of `ip`; `false` when it cannot.
    pub(crate) fn page_request(&self, ip: IpAddr, cost: u32) -> bool {
        matches!(self.pages.check_key_n(&ip, nonzero(cost)), Ok(Ok(())))
    }

    /// A fresh message budget for one connection.
    pub(crate) fn message_budget(&self) -> MessageBudget {
        MessageBudget {
            messages: RateLimiter::direct_with_clock(
                Quota::per_second(nonzero(self.config.messages_per_second))
                    .allow_burst(nonzero(self.config.message_burst)),
                self.clock.clone(),
            ),
            slow_downs: RateLimiter::direct_with_clock(
                Quota::per_minute(nonzero(self.config.slow_downs_per_minute)),
                self.clock.clone(),
            ),
        }
    }

    /// A fresh frame budget for one connection: frames of any kind (messages, pings, ignored
    /// frames). Never stricter than the message budget, so that a raised message rate does not
    /// close the connections that use it.
    pub(crate) fn frame_budget(&self) -> FrameBudget {
        let config = &self.config;
        let frames = config.frames_per_second.max(config.messages_per_second);
        let burst = config.frame_burst.max(config.message_burst);
        FrameBudget {
            frames: RateLimiter::direct_with_clock(
                Quota::per_second(nonzero(frames)).allow_burst(nonzero(burst)),
                self.clock.clone(),
            ),
        }
    }

    /// A fresh budget of the bytes one connection's socket may deliver, whose frames are at most
    /// `max_frame_bytes`: one second's worth at once (at least one frame of the largest size),
    /// and never less than `messages_per_second` frames of that size a second. Counted as the
    /// socket is read, below the WebSocket layer, so that no framing (empty fragments, control
    /// frames) escapes it.
    pub(crate) fn read_budget(&self, max_frame_bytes: usize) -> ReadBudget {
        let config = &self.config;
        let max_frame = u32::try_from(max_frame_bytes).unwrap_or(u32::MAX);
        let bytes = config
            .bytes_per_second
            .max(config.messages_per_second.saturating_mul(max_frame));
        ReadBudget {
            bytes: RateLimiter::direct_with_clock(
                Quota::per_second(nonzero(bytes)).allow_burst(nonzero(bytes.max(max_frame))),
                self.clock.clone(),
            ),
        }
    }

    /// Drops the per-address state of addresses whose buckets are full again.
    pub(crate) fn forget_idle(&self) {
        for limiter in [&self.logins, &self.pages, &self.websockets] {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Counts are updated in one step each, so a panic elsewhere cannot leave them torn.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN)
}

/// Open connections, in all and per address.
#[derive(Debug, Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// One admitted connection's place; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct ConnectionSlot {
    counts: Arc<Mutex<Counts>>,
    /// The address whose count it holds, if it holds one.
    ip: Option<IpAddr>,
    /// Whether it holds a place in the total.
    in_total: bool,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = lock(&self.counts);
        counts.total -= usize::from(self.in_total);
        let Some(ip) = self.ip else { return };
        if let Some(for_ip) = counts.per_ip.get_mut(&ip) {
            *for_ip -= 1;
            if *for_ip == 0 {
                counts.per_ip.remove(&ip);
            }
        }
    }
}

/// One connection's message rate.
#[derive(Debug)]
pub(crate) struct MessageBudget {
    messages: DefaultDirectRateLimiter,
    slow_downs: DefaultDirectRateLimiter,
}

/// What the budget says about one more message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MessageVerdict {
    /// Within the rate.
    Send,
    /// Over the rate: refuse this message, keep the connection.
    SlowDown,
    /// Over the rate again and again: close the connection.
    Flood,
}

impl MessageBudget {
    /// Spends one message.
    pub(crate) fn spend(&self) -> MessageVerdict {
        if self.messages.check().is_ok() {
            MessageVerdict::Send
        } else if self.slow_downs.check().is_ok() {
            MessageVerdict::SlowDown
        } else {
            MessageVerdict::Flood
        }
    }
}

/// One connection's budget of frames of any kind: what it may cost the server to decode,
/// whatever the frames say.
#[derive(Debug)]
pub(crate) struct FrameBudget {
    frames: DefaultDirectRateLimiter,
}

impl FrameBudget {
    /// Spends one frame; `false` when the connection is over its budget.
    pub(crate) fn spend(&self) -> bool {
        self.frames.check().is_ok()
    }
}

/// One connection's budget of bytes read from its socket.
#[derive(Debug)]
pub(crate) struct ReadBudget {
    bytes: DefaultDirectRateLimiter,
}

impl ReadBudget {
    /// Spends `len` bytes just read; `false` when the connection is over its budget.
    pub(crate) fn spend(&self, len: usize) -> bool {
        match NonZeroU32::new(u32::try_from(len).unwrap_or(u32::MAX)) {
            Some(n) => matches!(self.bytes.check_n(n), Ok(Ok(()))),
            None => true,
        }
    }
}

/// Lets a repeated log line through once per interval, counting the ones it held back.
#[derive(Debug)]
pub(crate) struct LogThrottle {
    state: Mutex<(Option<Instant>, u64)>,
}

impl Default for LogThrottle {
    fn default() -> Self {
        LogThrottle {
            state: Mutex::new((None, 0)),
        }
    }
}

impl LogThrottle {
    /// Records one event; `Some(n)` when the line is due, `n` being the events since the last
    /// line (this one included).
    pub(crate) fn hit(&self) -> Option<u64> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (last, count) = &mut *state;
        *count += 1;
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < LOG_INTERVAL) {
            return None;
        }
        *last = Some(now);
        Some(std::mem::take(count))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_slots_count_per_address_and_in_all() {
        let config = config::Limits {
            max_connections: Some(3),
            max_connections_per_ip: 2,
            ..Default::default()
        };
        let limits = Connections::new(&config, None);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = limits.admit(a, true).unwrap();
        let _a2 = limits.admit(a, true).unwrap();
        assert!(limits.admit(a, true).is_none(), "per-address limit");
        let _b1 = limits.admit(b, true).unwrap();
        assert!(limits.admit(b, true).is_none(), "total limit");
        assert_eq!(limits.open(), 3);
        drop(a1);
        assert_eq!(limits.open(), 2);
        let b2 = limits.admit(b, true);
        assert!(b2.is_some(), "a freed place is taken again");
        limits.configure(&config::Limits {
            max_connections: Some(4),
            ..config
        });
        assert!(limits.admit(b, true).is_none(), "still two per address");
        assert!(
            limits.admit("10.0.0.3".parse().unwrap(), true).is_some(),
            "a reload raised the cap"
        );
    }

    #[test]
    fn a_proxys_clients_are_counted_by_their_own_address() {
        let config = config::Limits {
            max_connections: Some(3),
            max_connections_per_ip: 1,
            ..Default::default()
        };
        let limits = Connections::new(&config, None);
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        let sockets: Vec<_> = (0..3).map(|_| limits.admit(proxy, false)).collect();
        assert!(sockets.iter().all(Option::is_some), "no per-address cap");
        assert!(
            limits.admit(proxy, false).is_none(),
            "the total still holds"
        );
        let client: IpAddr = "10.0.0.1".parse().unwrap();
        let first = limits.admit_client(client).unwrap();
        assert!(
            limits.admit_client(client).is_none(),
            "one per client address"
        );
        assert_eq!(limits.open(), 3, "clients take no place in the total");
        drop(first);
        assert!(limits.admit_client(client).is_some());
    }

    #[test]
    fn the_open_file_limit_caps_connections() {
        let config = config::Limits {
            max_connections: Some(50_000),
            ..Default::default()
        };
        assert_eq!(Connections::new(&config, Some(19_936)).max(), 19_936);
        assert_eq!(Connections::new(&config, None).max(), 50_000);
        let auto = config::Limits::default();
        assert_eq!(Connections::new(&auto, Some(1_000)).max(), 1_000);
        assert!(open_file_capacity().is_none_or(|n| n > 0));
    }

    #[test]
    fn failed_logins_cost_more_than_good_ones() {
        let limits = Rates::new(&config::Limits {
            login_burst: 10,
            logins_per_ip_per_minute: 1,
            failed_login_cost: 5,
            ..Default::default()
        });
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(limits.login_attempt(ip));
        limits.login_failed(ip);
        assert!(limits.login_attempt(ip));
        limits.login_failed(ip);
        assert!(
            !limits.login_attempt(ip),
            "two failures spent the burst of ten"
        );
        for _ in 0..10 {
            assert!(
                limits.login_attempt(other),
                "other addresses are not affected"
            );
        }
    }

    #[test]
    fn messages_over_the_rate_slow_down_then_flood() {
        let limits = Rates::new(&config::Limits {
            messages_per_second: 1,
            message_burst: 3,
            slow_downs_per_minute: 2,
            ..Default::default()
        });
        let budget = limits.message_budget();
        let verdicts: Vec<_> = (0..7).map(|_| budget.spend()).collect();
        use MessageVerdict::*;
        assert_eq!(
            verdicts,
            [Send, Send, Send, SlowDown, SlowDown, Flood, Flood],
            "three at once, then two refusals, then a flood"
        );
    }

    #[test]
    fn frames_are_budgeted_by_count_and_reads_by_bytes() {
        let limits = Rates::new(&config::Limits {
            frames_per_second: 1,
            frame_burst: 3,
            bytes_per_second: 1_000,
            messages_per_second: 1,
            message_burst: 1,
            ..Default::default()
        });
        let budget = limits.frame_budget();
        assert!((0..3).all(|_| budget.spend()), "the burst");
        assert!(!budget.spend(), "then one a second");

        let reads = limits.read_budget(256);
        assert!(reads.spend(1_000), "a second's bytes at once");
        assert!(!reads.spend(1), "and no more");
        assert!(reads.spend(0), "nothing read costs nothing");

        let reads = limits.read_budget(4_000);
        assert!(
            reads.spend(4_000),
            "one frame of the largest size always fits"
        );
    }

    #[test]
    fn the_frame_budget_is_never_below_the_message_budget() {
        let limits = Rates::new(&config::Limits {
            frames_per_second: 1,
            frame_burst: 1,
            messages_per_second: 100,
            message_burst: 100,
            ..Default::default()
        });
        let budget = limits.frame_budget();
        assert!((0..100).all(|_| budget.spend()));
    }

    #[test]
    fn websockets_are_budgeted_per_address_with_a_burst_of_the_connection_cap() {
        let limits = Rates::new(&config::Limits {
            websockets_per_ip_per_minute: 1,
            max_connections_per_ip: 3,
            ..Default::default()
        });
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(
            (0..3).all(|_| limits.websocket(ip)),
            "as many as may be open"
        );
        assert!(!limits.websocket(ip));
        assert!(limits.websocket("10.0.0.2".parse().unwrap()));
    }

    #[test]
    fn page_requests_are_charged_by_cost() {
        let limits = Rates::new(&config::Limits {
            page_requests_per_ip_per_minute: 10,
            ..Default::default()
        });
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(limits.page_request(ip, UNKNOWN_PAGE_COST));
        assert!(limits.page_request(ip, UNKNOWN_PAGE_COST));
        assert!(!limits.page_request(ip, 1));
    }

    #[test]
    fn the_log_throttle_counts_what_it_held_back() {
        let throttle = LogThrottle::default();
        assert_eq!(throttle.hit(), Some(1));
        assert_eq!(throttle.hit(), None);
        assert_eq!(throttle.hit(), None);
        let mut state = throttle.state.lock().unwrap();
        state.0 = Some(Instant::now() - LOG_INTERVAL);
        drop(state);
        assert_eq!(throttle.hit(), Some(3));
    }
}
