//! `fanout`: R receivers and S senders in the one room; each sender sends at a set rate for a set
//! time (the steady phase), then, with `--burst N`, N messages at once (the burst), and every
//! other connection must get every message.
//!
//! A message's text is `SENDER:SEQ:NANOS`, `NANOS` being its send time on the run's [`Epoch`]
//! (the real-time clock, so that every process of the run reads the same time); receivers count
//! `message` frames by their first bytes and decode one in `--sample-every` to time it. After
//! each phase the run waits (bounded) for deliveries still in flight, then compares what arrived
//! with what was due: each message goes to every authenticated connection but its sender.
//!
//! The senders are connections of this process; the receivers are held in shares
//! ([`crate::worker`]): in this process, or split over worker processes when there are more
//! than one process may open. Each share counts its own connections and samples their latency;
//! the run adds up what the shares answer, and merges their latency histograms.
//!
//! With several nodes (`--server A,B,C`, the nodes of a cluster that share one room) the
//! connections are spread over them round-robin, senders included; what is due stays the same,
//! since every node delivers to the whole room.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::bail;
use clichat_client::WebSocket;
use clichat_proto::ClientFrame;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::Setup;
use crate::login::{LoginError, login};
use crate::pool::{self, ConnStats, CountSink, Ended, Epoch, Sampler, wait_for_messages};
use crate::report::{
    Counts, CpuShare, CpuWindow, Latency, Run, Table, add_counts, counts_text, rss_kib_sum,
};
use crate::worker::{Reply, Request, ShareSpec, Shares, add, default_workers};

/// Most messages a sender writes in one go when it has fallen behind its schedule.
const MAX_BATCH: u64 = 256;
/// How long the room may stay quiet before the join announcements count as settled.
const JOINS_QUIET: Duration = Duration::from_millis(500);
/// The longest wait for join announcements to settle before sending starts.
const JOINS_SETTLE_MAX: Duration = Duration::from_secs(60);

/// What to run.
#[derive(Debug, Clone)]
pub struct Params {
    /// Connections that only receive.
    pub receivers: usize,
    /// Connections that send (and receive each other's messages).
    pub senders: usize,
    /// Messages per second per sender; 0 sends as fast as the socket takes them.
    pub rate: f64,
    /// How long the senders send; zero skips the steady phase.
    pub duration: Duration,
    /// The longest wait for deliveries in flight after each phase.
    pub drain: Duration,
    /// One message frame in this many is timed.
    pub sample_every: u64,
    /// Messages sent at once after the steady phase, split between the senders; 0: no burst.
    pub burst: u64,
    /// Worker processes for the receivers; `None` picks [`default_workers`].
    pub workers: Option<usize>,
    /// The longest wait after the logins for the server to be idle.
    pub settle_max: Duration,
}

/// The result of a `fanout` run. The top-level delivery figures are the steady phase's.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The scenario, where it connected and how it logged in.
    #[serde(flatten)]
    pub run: Run,
    /// Receiving connections.
    pub receivers: usize,
    /// Sending connections.
    pub senders: usize,
    /// Worker processes holding the receivers (0: this process).
    pub workers: usize,
    /// Messages per second asked of each sender (0: unpaced).
    pub rate_per_sender: f64,
    /// Seconds the senders were asked to send.
    pub duration_s: f64,
    /// Seconds to log everyone in.
    pub login_s: f64,
    /// Logins per second over that time.
    pub logins_per_s: f64,
    /// CPU used while logging in.
    pub login_cpu: CpuShare,
    /// Seconds to log everyone in and let the join announcements (and the server) settle.
    pub setup_s: f64,
    /// Messages sent, all senders.
    pub sent: u64,
    /// Messages per second actually sent, all senders.
    pub send_rate: f64,
    /// Deliveries due: each message to every connection of the run but its sender.
    pub expected: u64,
    /// `message` frames received by the run's connections.
    pub delivered: u64,
    /// Deliveries due that never came.
    pub lost: u64,
    /// Deliveries per second, from the first send to the last delivery.
    pub deliveries_per_s: f64,
    /// Seconds from the senders' stop to the last delivery (bounded by `--drain`).
    pub drain_s: f64,
    /// Deliveries counted in each whole second of the sending window.
    pub per_second: Vec<u64>,
    /// Connections that got exactly what was due to them.
    pub complete_connections: usize,
    /// All connections of the run.
    pub connections: usize,
    /// Connections the server closed during the run (e.g. `close 1008`: slow consumer).
    pub closed: Counts,
    /// Senders whose socket failed, by error.
    pub sender_errors: Counts,
    /// Send-to-receive latency of the sampled messages.
    pub latency: Latency,
    /// CPU used from the first send to the end of the drain.
    pub cpu: CpuShare,
    /// Writes the server made to client sockets over the same window (from its `/_status`).
    pub server_writes: Option<u64>,
    /// The burst, with `--burst`.
    pub burst: Option<Burst>,
    /// The server's memory (with `--pid`), and the other processes'.
    pub memory: Memory,
    /// Nothing lost, nobody closed, no sender failed, in either phase.
    pub ok: bool,
}

/// The burst phase: N messages sent at once.
#[derive(Debug, Serialize)]
pub struct Burst {
    /// Messages sent.
    pub sent: u64,
    /// Deliveries due.
    pub expected: u64,
    /// `message` frames received during the phase.
    pub delivered: u64,
    /// Deliveries due that never came.
    pub lost: u64,
    /// Seconds from the sending to the last delivery: when every connection had them all.
    pub time_to_all_s: f64,
    /// Connections that got exactly what was due to them (over the whole run).
    pub complete_connections: usize,
    /// Senders whose socket failed, by error.
    pub sender_errors: Counts,
    /// Send-to-receive latency of the sampled messages.
    pub latency: Latency,
    /// CPU used from the sending to the end of the drain.
    pub cpu: CpuShare,
    /// Writes the server made to client sockets over the same window.
    pub server_writes: Option<u64>,
}

/// Resident memory, in KiB, where the pids were given.
#[derive(Debug, Default, Serialize)]
pub struct Memory {
    /// Connections in the room.
    pub members: usize,
    /// The server's processes together, before the logins.
    pub server_before_kib: Option<u64>,
    /// The same with everyone in, before sending.
    pub server_in_kib: Option<u64>,
    /// The same at the end of the run.
    pub server_end_kib: Option<u64>,
    /// `server_in_kib / members`: what the room costs the server per member, all told.
    pub per_member_kib: Option<f64>,
    /// `server_end_kib / members`.
    pub per_member_end_kib: Option<f64>,
    /// `(server_in_kib - server_before_kib) / members`, in bytes: what joining adds.
    pub added_per_member_bytes: Option<f64>,
    /// The `--also-pid` processes with everyone in, by label.
    pub also_in_kib: BTreeMap<String, u64>,
    /// The same at the end.
    pub also_end_kib: BTreeMap<String, u64>,
    /// The bench's own processes with everyone in.
    pub bench_kib: Option<u64>,
}

impl Memory {
    fn rows(&self, t: &mut Table) {
        let kib = |v: Option<u64>| v.map_or_else(|| "?".to_owned(), |k| format!("{k} KiB"));
        if self.server_in_kib.is_some() {
            t.row(
                "server rss",
                format!(
                    "{} before the logins, {} with everyone in, {} at the end",
                    kib(self.server_before_kib),
                    kib(self.server_in_kib),
                    kib(self.server_end_kib)
                ),
            );
            t.row(
                "per member",
                format!(
                    "{:.2} KiB with everyone in, {:.2} KiB at the end ({} members); joining added {:.0} bytes each",
                    self.per_member_kib.unwrap_or_default(),
                    self.per_member_end_kib.unwrap_or_default(),
                    self.members,
                    self.added_per_member_bytes.unwrap_or_default()
                ),
            );
        } else {
            t.row("server rss", "? (give --pid)");
        }
        for (label, end) in &self.also_end_kib {
            let at_in = self.also_in_kib.get(label).copied();
            t.row(
                format!("{label} rss"),
                format!("{} with everyone in, {end} KiB at the end", kib(at_in)),
            );
        }
        t.row("bench rss", kib(self.bench_kib));
    }
}

impl Report {
    /// The human table.
    pub fn table(&self) -> Table {
        let mut t = Table::default();
        let receivers = if self.workers > 0 {
            format!(
                "{} receivers over {} worker processes",
                self.receivers, self.workers
            )
        } else {
            format!("{} receivers", self.receivers)
        };
        t.row("scenario", "fanout")
            .server(&self.run.nodes)
            .row(
                "connections",
                format!(
                    "{receivers} + {} sender{} ({} logins), setup {:.1} s",
                    self.senders,
                    if self.senders == 1 { "" } else { "s" },
                    self.run.login,
                    self.setup_s
                ),
            )
            .row(
                "logins",
                format!(
                    "{} in {:.1} s ({:.0}/s)",
                    self.connections, self.login_s, self.logins_per_s
                ),
            )
            .row("login cpu", self.login_cpu.text());
        if self.burst.is_some() {
            t.section("steady");
        }
        if self.duration_s > 0.0 {
            t.row(
                "asked",
                format!(
                    "{} msg/s per sender for {:.1} s",
                    self.rate_per_sender, self.duration_s
                ),
            )
            .row(
                "sent",
                format!("{} messages ({:.0} msg/s)", self.sent, self.send_rate),
            )
            .row("expected", self.expected)
            .row("delivered", self.delivered)
            .row("lost", self.lost)
            .row("deliveries/s", format!("{:.0}", self.deliveries_per_s))
            .row(
                "per second",
                self.per_second
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
            )
            .row("drain", format!("{:.2} s", self.drain_s))
            .row(
                "complete",
                format!(
                    "{} of {} connections",
                    self.complete_connections, self.connections
                ),
            )
            .row("sender errors", counts_text(&self.sender_errors))
            .row("latency", self.latency.text());
            cpu_rows(&mut t, &self.cpu, self.delivered, self.server_writes);
        } else {
            t.row("asked", "no steady phase (--duration 0)");
        }
        if let Some(burst) = &self.burst {
            t.section("burst");
            t.row(
                "sent",
                format!(
                    "{} messages at once from {} sender{}",
                    burst.sent,
                    self.senders,
                    if self.senders == 1 { "" } else { "s" }
                ),
            )
            .row("expected", burst.expected)
            .row("delivered", burst.delivered)
            .row("lost", burst.lost)
            .row("time to all", format!("{:.3} s", burst.time_to_all_s))
            .row(
                "complete",
                format!(
                    "{} of {} connections",
                    burst.complete_connections, self.connections
                ),
            )
            .row("sender errors", counts_text(&burst.sender_errors))
            .row("latency", burst.latency.text());
            cpu_rows(&mut t, &burst.cpu, burst.delivered, burst.server_writes);
            t.section("memory");
        }
        self.memory.rows(&mut t);
        t.row("closed by server", counts_text(&self.closed))
            .row("result", if self.ok { "ok" } else { "FAILED" });
        t
    }
}

/// The CPU rows of a phase: the split, the machine, the server's CPU per delivery and its
/// writes.
fn cpu_rows(t: &mut Table, cpu: &CpuShare, delivered: u64, writes: Option<u64>) {
    t.row("cpu", cpu.text());
    if let Some(machine) = &cpu.machine {
        t.row("machine", machine.text());
    }
    let per_delivery = match cpu.server_cpu_s {
        Some(cpu_s) => format!("{:.0} ns of CPU", cpu_s * 1e9 / delivered.max(1) as f64),
        None => "? (give --pid)".to_owned(),
    };
    let writes = match writes {
        Some(writes) => format!(
            "{:.0}/s, {:.1} deliveries a write",
            writes as f64 / cpu.seconds.max(1e-9),
            delivered as f64 / writes.max(1) as f64
        ),
        None => "? (the server's /_status does not say)".to_owned(),
    };
    t.row("server per delivery", per_delivery)
        .row("server writes", writes);
}

/// What a sender did in one phase.
#[derive(Debug)]
struct Sent {
    sent: u64,
    elapsed: Duration,
    error: Option<String>,
}

/// What the run asks of a sender; each answers on its `done`.
enum Order {
    /// Send `rate` messages a second (0: as fast as the socket takes them) for `duration`.
    Steady {
        rate: f64,
        duration: Duration,
        done: oneshot::Sender<Sent>,
    },
    /// Send `count` messages at once.
    Burst {
        count: u64,
        done: oneshot::Sender<Sent>,
    },
}

/// A sender as the run sees it.
struct Sender {
    orders: mpsc::UnboundedSender<Order>,
    /// Messages it has sent, all phases.
    sent: u64,
}

/// The connections of the run: the senders here, the receivers in shares.
struct Room {
    senders: Vec<Sender>,
    sender_stats: Vec<Arc<ConnStats>>,
    shares: Shares,
    sampler: Arc<Sampler>,
    epoch: Epoch,
    tasks: Vec<JoinHandle<()>>,
}

/// Totals over every connection.
#[derive(Debug, Default)]
struct Totals {
    joins: u64,
    messages: u64,
    closed: Counts,
}

/// A wait for a phase's deliveries, over every connection.
#[derive(Debug, Default)]
struct Drained {
    messages: u64,
    complete: usize,
    last_ns: Option<u64>,
}

impl Room {
    /// Messages sent by all senders, all phases.
    fn sent(&self) -> u64 {
        self.senders.iter().map(|s| s.sent).sum()
    }

    async fn totals(&mut self) -> anyhow::Result<Totals> {
        let mut totals = Totals {
            joins: pool::total(&self.sender_stats, |s| &s.joins),
            messages: pool::total(&self.sender_stats, |s| &s.messages),
            closed: pool::endings(&self.sender_stats),
        };
        for reply in self.shares.ask(&Request::Totals).await? {
            match reply {
                Reply::Totals {
                    joins,
                    messages,
                    closed,
                    ..
                } => {
                    totals.joins += joins;
                    totals.messages += messages;
                    add(&mut totals.closed, closed);
                }
                other => bail!("a worker said {other:?} instead of its totals"),
            }
        }
        Ok(totals)
    }

    /// Asks the shares to wait for everything sent so far plus `coming` (which `send` then
    /// orders), waits for the senders here, and adds up what all found.
    async fn drain(
        &mut self,
        coming: &[u64],
        timeout: Duration,
        send: impl FnOnce(&[Sender]),
    ) -> anyhow::Result<Drained> {
        let all = self.sent() + coming.iter().sum::<u64>();
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        self.shares
            .send_all(&Request::Wait {
                each: all,
                timeout_ms,
            })
            .await?;
        send(&self.senders);
        let own: Vec<u64> = (self.senders.iter().zip(coming))
            .map(|(s, c)| s.sent + c)
            .collect();
        let here = wait_for_messages(
            &self.sender_stats,
            |i| all - own[i],
            Instant::now() + timeout,
            self.epoch,
        )
        .await;
        let mut drained = Drained {
            messages: here.messages,
            complete: here.complete,
            last_ns: here.last_ns,
        };
        for reply in self.shares.recv_all().await? {
            match reply {
                Reply::Waited {
                    messages,
                    complete,
                    last_ns,
                    ..
                } => {
                    drained.messages += messages;
                    drained.complete += complete;
                    drained.last_ns = drained.last_ns.max(last_ns);
                }
                other => bail!("a worker said {other:?} instead of waiting"),
            }
        }
        Ok(drained)
    }

    /// The latencies sampled since the last call, all processes.
    async fn latency(&mut self) -> anyhow::Result<Histogram<u64>> {
        let mut histogram = self.sampler.take();
        for reply in self.shares.ask(&Request::Latency).await? {
            match reply {
                Reply::Latency { counts } => add_counts(&mut histogram, &counts),
                other => bail!("a worker said {other:?} instead of its latencies"),
            }
        }
        Ok(histogram)
    }

    /// Waits until every connection has heard every later login announced (n(n-1)/2 `join`
    /// frames), or the room has been quiet for a moment, so that sending starts in a calm room.
    async fn settle_joins(&mut self, n: usize) -> anyhow::Result<()> {
        let all = (n * n.saturating_sub(1) / 2) as u64;
        let deadline = Instant::now() + JOINS_SETTLE_MAX;
        let mut last = (u64::MAX, Instant::now());
        loop {
            let joins = self.totals().await?.joins;
            if joins >= all || Instant::now() >= deadline {
                return Ok(());
            }
            if joins != last.0 {
                last = (joins, Instant::now());
            } else if last.1.elapsed() >= JOINS_QUIET {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for Room {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

/// Runs the scenario; `worker_args` are the common arguments to hand to worker processes.
///
/// # Errors
/// When the config lacks credentials, a login fails (the run needs every connection), or a
/// worker process fails.
pub async fn run(setup: &Setup, params: &Params, worker_args: &[String]) -> anyhow::Result<Report> {
    let n = params.receivers + params.senders;
    anyhow::ensure!(
        params.senders >= 1 && n >= 2,
        "a fan-out needs at least one sender and one other connection"
    );
    anyhow::ensure!(
        !params.duration.is_zero() || params.burst > 0,
        "nothing to send: --duration 0 and no --burst"
    );
    setup.creds.check(setup.mode, n)?;
    let watched = &setup.watched;
    let mut memory = Memory {
        members: n,
        server_before_kib: rss_kib_sum(&watched.servers),
        ..Memory::default()
    };

    let epoch = Epoch::now();
    let setup_started = Instant::now();
    // The receivers, connections senders..n, in their shares.
    let workers = params
        .workers
        .unwrap_or_else(|| default_workers(params.receivers, n));
    let spec = ShareSpec {
        range: params.senders..n,
        marker: None,
        epoch,
        sample_every: params.sample_every.max(1),
    };
    let shares = Shares::start(setup, &spec, workers, worker_args)?;
    let login_cpu = CpuWindow::start(shares.pids(), watched);
    let mut room = Room {
        senders: Vec::with_capacity(params.senders),
        sender_stats: Vec::with_capacity(params.senders),
        shares,
        sampler: Arc::new(Sampler::new(epoch, params.sample_every)),
        epoch,
        tasks: Vec::with_capacity(params.senders),
    };
    let (logged_tx, mut logged_rx) = mpsc::unbounded_channel::<Result<(), LoginError>>();
    let permits = Arc::new(Semaphore::new(setup.concurrency.max(1)));
    for index in 0..params.senders {
        let (orders, orders_rx) = mpsc::unbounded_channel();
        let stats = Arc::new(ConnStats::default());
        room.senders.push(Sender { orders, sent: 0 });
        room.sender_stats.push(Arc::clone(&stats));
        let credential = setup.credential(index);
        let target = Arc::clone(&setup.target);
        let permits = Arc::clone(&permits);
        let logged_tx = logged_tx.clone();
        let sampler = Arc::clone(&room.sampler);
        room.tasks.push(tokio::spawn(async move {
            let Ok(permit) = permits.acquire().await else {
                return;
            };
            let logged = login(&target, &credential, index).await;
            drop(permit);
            let logged = match logged {
                Ok(logged) => logged,
                Err(error) => {
                    let _ = logged_tx.send(Err(error));
                    return;
                }
            };
            stats.logged_in.store(true, Ordering::Relaxed);
            let (mut ws, welcome) = logged.client.into_websocket();
            let _ = logged_tx.send(Ok(()));
            let mut sink = CountSink::new(&stats, None, Some(&sampler));
            let sending = Sending {
                index,
                id: welcome.id,
                epoch: sampler.epoch,
                orders: orders_rx,
            };
            let ended = send_and_read(&mut ws, &mut sink, sending).await;
            let _ = stats.ended.set(ended);
        }));
    }
    drop(logged_tx);

    let mut failures = Counts::new();
    for _ in 0..params.senders {
        let Some(result) = logged_rx.recv().await else {
            break;
        };
        if let Err(error) = result {
            *failures.entry(error.reason()).or_default() += 1;
        }
    }
    let (_, share_failures) = room.shares.ready().await?;
    add(&mut failures, share_failures);
    let login_s = setup_started.elapsed().as_secs_f64();
    let login_cpu = login_cpu.finish();
    if !failures.is_empty() {
        let failed: u64 = failures.values().sum();
        bail!(
            "{failed} of {n} logins failed ({}); a fan-out needs every connection",
            counts_text(&failures)
        );
    }
    room.settle_joins(n).await?;
    watched.settle(Duration::ZERO, params.settle_max).await;
    let setup_s = setup_started.elapsed().as_secs_f64();
    memory.server_in_kib = rss_kib_sum(&watched.servers);
    memory.also_in_kib = watched.also_rss_kib();
    let mut bench_pids = vec![std::process::id()];
    bench_pids.extend_from_slice(room.shares.pids());
    memory.bench_kib = rss_kib_sum(&bench_pids);

    let steady = if params.duration.is_zero() {
        None
    } else {
        Some(steady(setup, params, &mut room, n).await?)
    };
    let burst = if params.burst > 0 {
        Some(burst(setup, params, &mut room, n).await?)
    } else {
        None
    };

    let closed = room.totals().await?.closed;
    memory.server_end_kib = rss_kib_sum(&watched.servers);
    memory.also_end_kib = watched.also_rss_kib();
    let per_member = |kib: Option<u64>| kib.map(|k| k as f64 / n as f64);
    memory.per_member_kib = per_member(memory.server_in_kib);
    memory.per_member_end_kib = per_member(memory.server_end_kib);
    memory.added_per_member_bytes = memory
        .server_before_kib
        .zip(memory.server_in_kib)
        .map(|(before, at_in)| (at_in as f64 - before as f64) * 1024.0 / n as f64);
    room.shares.exit().await;
    drop(room);

    let steady = steady.unwrap_or_default();
    let steady_ok =
        steady.lost == 0 && steady.delivered == steady.expected && steady.errors.is_empty();
    let burst_ok = burst
        .as_ref()
        .is_none_or(|b| b.lost == 0 && b.delivered == b.expected && b.sender_errors.is_empty());
    Ok(Report {
        run: Run::of("fanout", setup),
        receivers: params.receivers,
        senders: params.senders,
        workers,
        rate_per_sender: params.rate,
        duration_s: params.duration.as_secs_f64(),
        login_s,
        logins_per_s: n as f64 / login_s.max(1e-9),
        login_cpu,
        setup_s,
        sent: steady.sent,
        send_rate: steady.sent as f64 / steady.send_elapsed.as_secs_f64().max(1e-9),
        expected: steady.expected,
        delivered: steady.delivered,
        lost: steady.lost,
        deliveries_per_s: steady.delivered as f64 / steady.active.as_secs_f64().max(1e-9),
        drain_s: steady.drain.as_secs_f64(),
        per_second: steady.per_second,
        complete_connections: steady.complete,
        connections: n,
        ok: steady_ok && burst_ok && closed.is_empty(),
        closed,
        sender_errors: steady.errors,
        latency: steady.latency,
        cpu: steady.cpu,
        server_writes: steady.writes,
        burst,
        memory,
    })
}

/// What the steady phase found.
#[derive(Debug, Default)]
struct Steady {
    sent: u64,
    send_elapsed: Duration,
    expected: u64,
    delivered: u64,
    lost: u64,
    /// From the first send to the last delivery (or the senders' stop).
    active: Duration,
    drain: Duration,
    per_second: Vec<u64>,
    complete: usize,
    errors: Counts,
    latency: Latency,
    cpu: CpuShare,
    writes: Option<u64>,
}

/// The steady phase: every sender at its rate for the duration; then the drain.
async fn steady(
    setup: &Setup,
    params: &Params,
    room: &mut Room,
    n: usize,
) -> anyhow::Result<Steady> {
    let before = room.totals().await?.messages;
    let writes_before = setup.target.socket_writes().await;
    let cpu = CpuWindow::start(room.shares.pids(), &setup.watched);
    let start = Instant::now();
    let start_ns = room.epoch.nanos();
    let mut done = Vec::with_capacity(room.senders.len());
    for sender in &room.senders {
        let (tx, rx) = oneshot::channel();
        let _ = sender.orders.send(Order::Steady {
            rate: params.rate,
            duration: params.duration,
            done: tx,
        });
        done.push(rx);
    }

    let mut per_second = Vec::new();
    let mut counted = before;
    for second in 1..=params.duration.as_secs() {
        tokio::time::sleep_until((start + Duration::from_secs(second)).into()).await;
        let now = room.totals().await?.messages;
        per_second.push(now - counted);
        counted = now;
    }
    let sent = collect(done).await;
    let sent_total: u64 = sent.iter().map(|s| s.sent).sum();
    let send_elapsed = sent.iter().map(|s| s.elapsed).max().unwrap_or_default();
    for (sender, s) in room.senders.iter_mut().zip(&sent) {
        sender.sent += s.sent;
    }
    let expected = sent_total * (n as u64 - 1);

    // Deliveries still in flight: wait until all are in, or the drain time is up.
    let senders_done = room.epoch.nanos();
    let drained = room
        .drain(&vec![0; room.senders.len()], params.drain, |_| {})
        .await?;
    let cpu = cpu.finish();
    let writes = writes_after(setup, writes_before).await;
    let last_ns = drained.last_ns.unwrap_or(senders_done).max(senders_done);
    let delivered = drained.messages - before;
    Ok(Steady {
        sent: sent_total,
        send_elapsed,
        expected,
        delivered,
        lost: expected.saturating_sub(delivered),
        active: Duration::from_nanos(last_ns.saturating_sub(start_ns)),
        drain: Duration::from_nanos(last_ns - senders_done),
        per_second,
        complete: drained.complete,
        errors: errors(&sent),
        latency: Latency::of(&room.latency().await?),
        cpu,
        writes,
    })
}

/// The burst: `params.burst` messages split between the senders, each sending its part at
/// once; then the drain.
async fn burst(setup: &Setup, params: &Params, room: &mut Room, n: usize) -> anyhow::Result<Burst> {
    let before = room.totals().await?.messages;
    // Whatever the steady phase left in flight is not this phase's latency.
    room.latency().await?;
    let writes_before = setup.target.socket_writes().await;
    let parts = split_burst(params.burst, room.senders.len());
    let cpu = CpuWindow::start(room.shares.pids(), &setup.watched);
    let start_ns = room.epoch.nanos();
    let mut done = Vec::with_capacity(parts.len());
    let drained = room
        .drain(&parts, params.drain, |senders| {
            for (sender, &count) in senders.iter().zip(&parts) {
                let (tx, rx) = oneshot::channel();
                let _ = sender.orders.send(Order::Burst { count, done: tx });
                done.push(rx);
            }
        })
        .await?;
    let cpu = cpu.finish();
    let writes = writes_after(setup, writes_before).await;
    let sent = collect(done).await;
    let sent_total: u64 = sent.iter().map(|s| s.sent).sum();
    for (sender, s) in room.senders.iter_mut().zip(&sent) {
        sender.sent += s.sent;
    }
    let expected = sent_total * (n as u64 - 1);
    let delivered = drained.messages - before;
    let last_ns = drained.last_ns.unwrap_or(start_ns);
    Ok(Burst {
        sent: sent_total,
        expected,
        delivered,
        lost: expected.saturating_sub(delivered),
        time_to_all_s: Duration::from_nanos(last_ns.saturating_sub(start_ns)).as_secs_f64(),
        complete_connections: drained.complete,
        sender_errors: errors(&sent),
        latency: Latency::of(&room.latency().await?),
        cpu,
        server_writes: writes,
    })
}

/// `count` messages split between `senders`, as evenly as can be (the first get one more).
pub fn split_burst(count: u64, senders: usize) -> Vec<u64> {
    let senders = senders.max(1) as u64;
    (0..senders)
        .map(|i| count / senders + u64::from(i < count % senders))
        .collect()
}

async fn collect(done: Vec<oneshot::Receiver<Sent>>) -> Vec<Sent> {
    let mut sent = Vec::with_capacity(done.len());
    for done in done {
        sent.push(done.await.unwrap_or_else(|_| Sent {
            sent: 0,
            elapsed: Duration::ZERO,
            error: Some("the connection ended before the start".to_owned()),
        }));
    }
    sent
}

fn errors(sent: &[Sent]) -> Counts {
    let mut errors = Counts::new();
    for error in sent.iter().filter_map(|s| s.error.clone()) {
        *errors.entry(error).or_default() += 1;
    }
    errors
}

async fn writes_after(setup: &Setup, before: Option<u64>) -> Option<u64> {
    setup
        .target
        .socket_writes()
        .await
        .zip(before)
        .map(|(after, before)| after.saturating_sub(before))
}

/// The sender's side: who it is, and where its orders come from.
struct Sending {
    index: usize,
    id: u64,
    epoch: Epoch,
    orders: mpsc::UnboundedReceiver<Order>,
}

/// A sender's connection: reads (counting, answering pings) while it waits for orders, and
/// carries each out while reading; `SENDER:SEQ:NANOS` messages, SEQ counting on across phases.
async fn send_and_read(ws: &mut WebSocket, sink: &mut CountSink<'_>, sending: Sending) -> Ended {
    let Sending {
        index,
        id,
        epoch,
        mut orders,
    } = sending;
    let mut seq = 0u64;
    loop {
        let order = tokio::select! {
            ended = pool::read_to_end(ws, sink) => return ended,
            order = orders.recv() => order,
        };
        let Some(order) = order else {
            // The run is over.
            return pool::read_to_end(ws, sink).await;
        };
        let started = Instant::now();
        let (outcome, done) = match order {
            Order::Steady {
                rate,
                duration,
                done,
            } => {
                let from = seq;
                let outcome =
                    steady_send(ws, sink, (index, id, epoch), &mut seq, rate, duration).await;
                (outcome.map(|()| seq - from), done)
            }
            Order::Burst { count, done } => {
                let written = async {
                    for _ in 0..count {
                        ws.feed(Message::text(text_frame(index, id, epoch, seq)))
                            .await?;
                        seq += 1;
                    }
                    ws.flush().await
                }
                .await;
                (
                    written
                        .map(|()| count)
                        .map_err(|e| Ended::Error(e.to_string())),
                    done,
                )
            }
        };
        let (sent, error) = match &outcome {
            Ok(sent) => (*sent, None),
            Err(ended) => (0, Some(ended.label())),
        };
        let _ = done.send(Sent {
            sent,
            elapsed: started.elapsed(),
            error,
        });
        if let Err(ended) = outcome {
            return ended;
        }
    }
}

/// The frame of message `seq` of sender `index`, stamped now.
fn text_frame(index: usize, id: u64, epoch: Epoch, seq: u64) -> String {
    let nanos = epoch.nanos();
    ClientFrame::Msg {
        id: Some(id),
        text: Some(format!("{index}:{seq}:{nanos}")),
    }
    .encode()
}

/// Sends at `rate` for `duration` while reading: message k is due at k/rate seconds; whatever
/// is due is written in one go (one flush), then the sender reads until the next is due.
async fn steady_send(
    ws: &mut WebSocket,
    sink: &mut CountSink<'_>,
    (index, id, epoch): (usize, u64, Epoch),
    seq: &mut u64,
    rate: f64,
    duration: Duration,
) -> Result<(), Ended> {
    let start = Instant::now();
    let end = start + duration;
    let first = *seq;
    loop {
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        let queued = *seq - first;
        let due = if rate > 0.0 {
            (now.duration_since(start).as_secs_f64() * rate) as u64 + 1
        } else {
            queued + MAX_BATCH
        };
        let batch_end = due.min(queued + MAX_BATCH);
        if queued < batch_end {
            let written = async {
                for _ in queued..batch_end {
                    ws.feed(Message::text(text_frame(index, id, epoch, *seq)))
                        .await?;
                    *seq += 1;
                }
                ws.flush().await
            }
            .await;
            written.map_err(|error| Ended::Error(error.to_string()))?;
        }
        let next = if rate > 0.0 {
            start + Duration::from_secs_f64((*seq - first) as f64 / rate)
        } else {
            Instant::now()
        };
        read_until(ws, sink, next.min(end)).await?;
        if rate <= 0.0 {
            tokio::task::yield_now().await;
        }
    }
}

/// Reads frames into `sink` until `deadline` (at least whatever has already arrived); the
/// connection's end if it ends first.
async fn read_until(
    ws: &mut WebSocket,
    sink: &mut CountSink<'_>,
    deadline: Instant,
) -> Result<(), Ended> {
    let sleep = tokio::time::sleep_until(deadline.into());
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            // Reading first: frames that have arrived are taken before the next send.
            biased;
            item = ws.next() => {
                if let Some(ended) = pool::on_frame(item, sink) {
                    return Err(ended);
                }
            }
            () = &mut sleep => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_split_between_the_senders() {
        assert_eq!(split_burst(20, 1), [20]);
        assert_eq!(split_burst(20, 3), [7, 7, 6]);
        assert_eq!(split_burst(2, 4), [1, 1, 0, 0]);
        assert_eq!(split_burst(5, 0), [5], "at least one sender");
        assert_eq!(split_burst(100, 7).iter().sum::<u64>(), 100);
    }

    #[test]
    fn message_texts_carry_sender_sequence_and_send_time() {
        let epoch = Epoch::from_unix_nanos(Epoch::now().unix_nanos() - 1_000_000);
        let frame = text_frame(3, 42, epoch, 17);
        let value: serde_json::Value = serde_json::from_str(&frame).unwrap();
        assert_eq!(value[0], "msg");
        assert_eq!(value[1]["id"], 42);
        let text = value[1]["msg"].as_str().unwrap();
        let parts: Vec<&str> = text.split(':').collect();
        assert_eq!(parts[..2], ["3", "17"]);
        assert!(parts[2].parse::<u64>().unwrap() >= 1_000_000, "{text}");
    }
}
