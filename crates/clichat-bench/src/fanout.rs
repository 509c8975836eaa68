//! `fanout`: R receivers and S senders in the one room; each sender sends at a set rate for a set
//! time, and every other connection must get every message.
//!
//! A message's text is `SENDER:SEQ:NANOS`, `NANOS` being its send time on the run's [`Epoch`];
//! receivers count `message` frames by their first bytes and decode one in `--sample-every` to
//! time it. After the senders stop, the run waits (bounded) for deliveries still in flight, then
//! compares what arrived with what was due: each message goes to every authenticated connection
//! but its sender.
//!
//! With several nodes (`--server A,B,C`, the nodes of a cluster that share one room) the
//! connections are spread over them round-robin, senders included; what is due stays the same,
//! since every node delivers to the whole room.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::bail;
use clichat_client::WebSocket;
use clichat_proto::ClientFrame;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use crate::Setup;
use crate::login::{LoginError, login};
use crate::pool::{self, ConnStats, CountSink, Ended, Epoch, Sampler};
use crate::report::{Counts, CpuShare, CpuWindow, Latency, Run, Table, counts_text};

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
    /// How long the senders send.
    pub duration: Duration,
    /// The longest wait for deliveries in flight after the senders stop.
    pub drain: Duration,
    /// One message frame in this many is timed.
    pub sample_every: u64,
}

/// The result of a `fanout` run.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The scenario, where it connected and how it logged in.
    #[serde(flatten)]
    pub run: Run,
    /// Receiving connections.
    pub receivers: usize,
    /// Sending connections.
    pub senders: usize,
    /// Messages per second asked of each sender (0: unpaced).
    pub rate_per_sender: f64,
    /// Seconds the senders were asked to send.
    pub duration_s: f64,
    /// Seconds to log everyone in and let the join announcements settle.
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
    /// Nothing lost, nobody closed, no sender failed.
    pub ok: bool,
}

impl Report {
    /// The human table.
    pub fn table(&self) -> Table {
        let mut t = Table::default();
        t.row("scenario", "fanout")
            .server(&self.run.nodes)
            .row(
                "connections",
                format!(
                    "{} receivers + {} senders ({} logins), setup {:.1} s",
                    self.receivers, self.senders, self.run.login, self.setup_s
                ),
            )
            .row(
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
            .row("closed by server", counts_text(&self.closed))
            .row("sender errors", counts_text(&self.sender_errors))
            .row("latency", self.latency.text())
            .row("cpu", self.cpu.text())
            .row(
                "machine",
                self.cpu
                    .machine
                    .map_or_else(|| "?".to_owned(), |m| m.text()),
            )
            .row("server per delivery", self.per_delivery_text())
            .row("server writes", self.writes_text())
            .row("result", if self.ok { "ok" } else { "FAILED" });
        t
    }

    /// The server's CPU nanoseconds per delivery, when its pids were given.
    fn per_delivery_text(&self) -> String {
        match self.cpu.server_cpu_s {
            Some(cpu_s) => format!(
                "{:.0} ns of CPU",
                cpu_s * 1e9 / self.delivered.max(1) as f64
            ),
            None => "? (give --pid)".to_owned(),
        }
    }

    /// The server's socket writes per second, and deliveries per write.
    fn writes_text(&self) -> String {
        match self.server_writes {
            Some(writes) => format!(
                "{:.0}/s, {:.1} deliveries a write",
                writes as f64 / self.cpu.seconds.max(1e-9),
                self.delivered as f64 / writes.max(1) as f64
            ),
            None => "? (the server's /_status does not say)".to_owned(),
        }
    }
}

/// What a sender did.
#[derive(Debug)]
struct Sent {
    sent: u64,
    elapsed: Duration,
    error: Option<String>,
}

/// The run's side of one sender: the start signal it waits for, and what it did.
struct SenderControl {
    start: oneshot::Sender<()>,
    done: oneshot::Receiver<Sent>,
}

/// The sender's side: what to send, and where to answer.
struct Sending {
    index: usize,
    params: Params,
    epoch: Epoch,
    start: oneshot::Receiver<()>,
    done: oneshot::Sender<Sent>,
}

/// Runs the scenario.
///
/// # Errors
/// When the config lacks credentials or a login fails (the run needs every connection).
pub async fn run(setup: &Setup, params: &Params) -> anyhow::Result<Report> {
    let n = params.receivers + params.senders;
    anyhow::ensure!(
        params.senders >= 1 && n >= 2,
        "a fan-out needs at least one sender and one other connection"
    );
    setup.creds.check(setup.mode, n)?;

    let sampler = Arc::new(Sampler::new(Epoch::now(), params.sample_every));
    let setup_started = Instant::now();
    let stats: Vec<Arc<ConnStats>> = (0..n).map(|_| Arc::default()).collect();
    let (logged_tx, mut logged_rx) = mpsc::unbounded_channel::<Result<(), LoginError>>();
    let permits = Arc::new(Semaphore::new(setup.concurrency.max(1)));
    let mut tasks: Vec<JoinHandle<()>> = Vec::with_capacity(n);
    let mut senders = Vec::with_capacity(params.senders);
    for (index, conn_stats) in stats.iter().enumerate() {
        let sending = (index < params.senders).then(|| {
            let (start_tx, start) = oneshot::channel();
            let (done, done_rx) = oneshot::channel();
            senders.push(SenderControl {
                start: start_tx,
                done: done_rx,
            });
            Sending {
                index,
                params: params.clone(),
                epoch: sampler.epoch,
                start,
                done,
            }
        });
        let credential = setup.credential(index);
        let target = Arc::clone(&setup.target);
        let permits = Arc::clone(&permits);
        let logged_tx = logged_tx.clone();
        let conn_stats = Arc::clone(conn_stats);
        let sampler = Arc::clone(&sampler);
        tasks.push(tokio::spawn(async move {
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
            conn_stats.logged_in.store(true, Ordering::Relaxed);
            let (mut ws, welcome) = logged.client.into_websocket();
            let _ = logged_tx.send(Ok(()));
            let mut sink = CountSink::new(&conn_stats, None, Some(&sampler));
            // One owner per socket: a sender reads in the same loop it sends from.
            let ended = match sending {
                Some(sending) => send_and_read(&mut ws, &mut sink, welcome.id, sending).await,
                None => pool::read_to_end(&mut ws, &mut sink).await,
            };
            let _ = conn_stats.ended.set(ended);
        }));
    }
    drop(logged_tx);

    let mut failures = Counts::new();
    for _ in 0..n {
        let Some(result) = logged_rx.recv().await else {
            break;
        };
        if let Err(error) = result {
            *failures.entry(error.reason()).or_default() += 1;
        }
    }
    let abort_all = |tasks: &[JoinHandle<()>]| tasks.iter().for_each(JoinHandle::abort);
    if !failures.is_empty() {
        abort_all(&tasks);
        let failed: u64 = failures.values().sum();
        bail!(
            "{failed} of {n} logins failed ({}); a fan-out needs every connection",
            counts_text(&failures)
        );
    }
    settle_joins(&stats, n).await;
    let setup_s = setup_started.elapsed().as_secs_f64();

    let writes_before = setup.target.socket_writes().await;
    let cpu = CpuWindow::start(&[], &setup.watched);
    let start = Instant::now();
    let mut done = Vec::with_capacity(senders.len());
    for sender in senders {
        let _ = sender.start.send(());
        done.push(sender.done);
    }

    let delivered = || pool::total(&stats, |s| &s.messages);
    let mut per_second = Vec::new();
    let mut counted = 0;
    for second in 1..=params.duration.as_secs() {
        tokio::time::sleep_until((start + Duration::from_secs(second)).into()).await;
        let now = delivered();
        per_second.push(now - counted);
        counted = now;
    }
    let mut sent = Vec::with_capacity(done.len());
    for done in done {
        sent.push(done.await.unwrap_or_else(|_| Sent {
            sent: 0,
            elapsed: Duration::ZERO,
            error: Some("the connection ended before the start".to_owned()),
        }));
    }
    let sent_total: u64 = sent.iter().map(|s| s.sent).sum();
    let send_elapsed = sent.iter().map(|s| s.elapsed).max().unwrap_or_default();
    let expected = sent_total * (n as u64 - 1);

    // Deliveries still in flight: wait until all are in, or the drain time is up.
    let senders_done = Instant::now();
    let mut last = (delivered(), Instant::now());
    loop {
        let now = delivered();
        if now != last.0 {
            last = (now, Instant::now());
        }
        if now >= expected || senders_done.elapsed() >= params.drain {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let cpu = cpu.finish();
    let server_writes = setup
        .target
        .socket_writes()
        .await
        .zip(writes_before)
        .map(|(after, before)| after.saturating_sub(before));
    let (delivered_total, last_delivery) = last;
    let active = last_delivery.max(senders_done).duration_since(start);

    let complete_connections = stats
        .iter()
        .enumerate()
        .filter(|(index, s)| {
            let own = sent.get(*index).map_or(0, |s| s.sent);
            s.messages.load(Ordering::Relaxed) == sent_total - own
        })
        .count();
    let closed = pool::endings(&stats);
    let mut sender_errors = Counts::new();
    for error in sent.iter().filter_map(|s| s.error.clone()) {
        *sender_errors.entry(error).or_default() += 1;
    }
    let latency = Latency::of(&sampler.take());
    abort_all(&tasks);

    let lost = expected.saturating_sub(delivered_total);
    Ok(Report {
        run: Run::of("fanout", setup),
        receivers: params.receivers,
        senders: params.senders,
        rate_per_sender: params.rate,
        duration_s: params.duration.as_secs_f64(),
        setup_s,
        sent: sent_total,
        send_rate: sent_total as f64 / send_elapsed.as_secs_f64().max(1e-9),
        expected,
        delivered: delivered_total,
        lost,
        deliveries_per_s: delivered_total as f64 / active.as_secs_f64().max(1e-9),
        drain_s: last_delivery
            .saturating_duration_since(senders_done)
            .as_secs_f64(),
        per_second,
        complete_connections,
        connections: n,
        ok: lost == 0
            && closed.is_empty()
            && sender_errors.is_empty()
            && delivered_total == expected,
        closed,
        sender_errors,
        latency,
        cpu,
        server_writes,
    })
}

/// Waits until every connection has heard every later login announced (n(n-1)/2 `join`
/// frames), or the room has been quiet for a moment, so that sending starts in a calm room.
async fn settle_joins(stats: &[Arc<ConnStats>], n: usize) {
    let all = (n * (n - 1) / 2) as u64;
    let deadline = Instant::now() + JOINS_SETTLE_MAX;
    let mut last = (u64::MAX, Instant::now());
    loop {
        let joins = pool::total(stats, |s| &s.joins);
        if joins >= all || Instant::now() >= deadline {
            return;
        }
        if joins != last.0 {
            last = (joins, Instant::now());
        } else if last.1.elapsed() >= JOINS_QUIET {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A sender's connection: reads (counting, answering pings) until the run starts, then sends
/// `SENDER:SEQ:NANOS` messages on schedule while reading, then reads on until the end.
///
/// Message k is due at k/rate seconds; whatever is due is written in one go (one flush), then
/// the sender reads until the next is due.
async fn send_and_read(
    ws: &mut WebSocket,
    sink: &mut CountSink<'_>,
    id: u64,
    sending: Sending,
) -> Ended {
    let Sending {
        index,
        params,
        epoch,
        start,
        done,
    } = sending;
    let go = tokio::select! {
        ended = pool::read_to_end(ws, sink) => return ended,
        go = start => go,
    };
    if go.is_err() {
        // The run gave up before starting.
        return pool::read_to_end(ws, sink).await;
    }
    let start = Instant::now();
    let end = start + params.duration;
    let (mut queued, mut sent) = (0u64, 0u64);
    let mut outcome = Ok(());
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let due = if params.rate > 0.0 {
            (now.duration_since(start).as_secs_f64() * params.rate) as u64 + 1
        } else {
            queued + MAX_BATCH
        };
        let batch_end = due.min(queued + MAX_BATCH);
        if queued < batch_end {
            let written = async {
                while queued < batch_end {
                    let nanos = epoch.nanos();
                    let frame = ClientFrame::Msg {
                        id: Some(id),
                        text: Some(format!("{index}:{queued}:{nanos}")),
                    };
                    ws.feed(Message::text(frame.encode())).await?;
                    queued += 1;
                }
                ws.flush().await
            }
            .await;
            if let Err(error) = written {
                outcome = Err(Ended::Error(error.to_string()));
                break;
            }
            sent = queued;
        }
        let next = if params.rate > 0.0 {
            start + Duration::from_secs_f64(queued as f64 / params.rate)
        } else {
            Instant::now()
        };
        if let Err(ended) = read_until(ws, sink, next.min(end)).await {
            outcome = Err(ended);
            break;
        }
        if params.rate <= 0.0 {
            tokio::task::yield_now().await;
        }
    }
    let error = outcome.as_ref().err().map(Ended::label);
    let _ = done.send(Sent {
        sent,
        elapsed: start.elapsed(),
        error,
    });
    match outcome {
        Ok(()) => pool::read_to_end(ws, sink).await,
        Err(ended) => ended,
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
