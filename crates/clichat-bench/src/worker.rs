//! Shares: a scenario's receiving connections split over worker processes, so that a run can
//! hold more connections than one process may open files (`ulimit -Hn`, 20,000 on the benchmark
//! machines). `hold` and `fanout` both use them.
//!
//! A worker process is this binary again, as the hidden `worker` subcommand, holding
//! connections `offset..offset + count` ([`Receivers`]). The parent talks to it over its stdin
//! and stdout, one JSON line at a time: the worker prints [`Reply::Ready`] once every login of
//! its share has finished, then answers each [`Request`] with one [`Reply`], and exits on
//! [`Request::Exit`] or end of input. A share held in the parent process instead (`--workers 0`)
//! runs the same loop in a task, over channels, so a scenario drives both alike ([`Shares`]).
//!
//! Times cross processes on the run's [`Epoch`] (the real-time clock, one machine); latencies
//! cross as histogram buckets ([`histogram_counts`]) that the parent adds up.

use std::ops::Range;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::Setup;
use crate::pool::{self, Epoch, Held, Sampler, wait_for_messages};
use crate::report::{Counts, histogram_counts};

/// Connections per worker process when `--workers` is not given: well under the 20,000 files
/// one process may open.
pub const PER_WORKER: usize = 10_000;

/// What the parent asks of a share, one JSON line each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Request {
    /// What the share's connections have received so far.
    Totals,
    /// Wait until every open connection has seen the probe marker, at most `timeout_ms`.
    Probe {
        /// The longest wait, in milliseconds.
        timeout_ms: u64,
    },
    /// Wait until every open connection has at least `each` messages, at most `timeout_ms`.
    Wait {
        /// Messages due to each connection, since it logged in.
        each: u64,
        /// The longest wait, in milliseconds.
        timeout_ms: u64,
    },
    /// The latencies sampled since the last `Latency` (or the start); a new histogram starts.
    Latency,
    /// Close the connections and exit.
    Exit,
}

/// What a share answers, one JSON line each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Reply {
    /// Every login of the share has finished.
    Ready {
        /// Connections logged in.
        held: usize,
        /// Failed logins by reason.
        failures: Counts,
    },
    /// The answer to [`Request::Totals`].
    Totals {
        /// `join` frames received, all connections.
        joins: u64,
        /// `message` frames received, all connections.
        messages: u64,
        /// Connections still open.
        open: usize,
        /// Connections the server closed, by how.
        closed: Counts,
    },
    /// The answer to [`Request::Probe`].
    Probed {
        /// Connections that got the probe message.
        received: usize,
        /// Connections still open.
        open: usize,
        /// Connections the server closed, by how.
        closed: Counts,
    },
    /// The answer to [`Request::Wait`].
    Waited {
        /// `message` frames received, all connections.
        messages: u64,
        /// Connections with exactly `each` messages.
        complete: usize,
        /// When (nanoseconds on the run's epoch) their total last grew during the wait.
        last_ns: Option<u64>,
        /// Connections the server closed, by how.
        closed: Counts,
    },
    /// The answer to [`Request::Latency`]: `(microseconds, count)` pairs.
    Latency {
        /// The histogram's buckets.
        counts: Vec<(u64, u64)>,
    },
}

/// What a share holds: which connections, what they watch for, and the run's clock.
#[derive(Debug, Clone)]
pub struct ShareSpec {
    /// Credential numbers of the share's connections.
    pub range: Range<usize>,
    /// Text whose arrival in a message each connection notes (the `hold` probe).
    pub marker: Option<String>,
    /// The run's clock.
    pub epoch: Epoch,
    /// Time one message frame in this many; 0 times none.
    pub sample_every: u64,
}

impl ShareSpec {
    /// The arguments that give a worker process this share (after the common ones).
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--offset".to_owned(),
            self.range.start.to_string(),
            "--count".to_owned(),
            self.range.len().to_string(),
            "--epoch-ns".to_owned(),
            self.epoch.unix_nanos().to_string(),
            "--sample-every".to_owned(),
            self.sample_every.to_string(),
        ];
        if let Some(marker) = &self.marker {
            args.extend(["--marker".to_owned(), marker.clone()]);
        }
        args
    }
}

/// One share of the connections, held in this process.
pub struct Receivers {
    held: Held,
    count: usize,
    epoch: Epoch,
    sampler: Option<Arc<Sampler>>,
}

impl Receivers {
    /// Starts logging in the share's connections.
    pub fn spawn(setup: &Setup, spec: &ShareSpec) -> Receivers {
        let marker = spec.marker.as_ref().map(|m| Arc::from(m.as_bytes()));
        let sampler =
            (spec.sample_every > 0).then(|| Arc::new(Sampler::new(spec.epoch, spec.sample_every)));
        Receivers {
            held: Held::spawn(setup, spec.range.clone(), marker, sampler.clone()),
            count: spec.range.len(),
            epoch: spec.epoch,
            sampler,
        }
    }

    /// Waits until every login has finished.
    pub async fn ready(&mut self) -> Reply {
        let mut failures = Counts::new();
        let mut held = 0;
        for _ in 0..self.count {
            let Some(done) = self.held.results.recv().await else {
                break;
            };
            match done.result {
                Ok(_) => held += 1,
                Err(error) => *failures.entry(error.reason()).or_default() += 1,
            }
        }
        Reply::Ready { held, failures }
    }

    /// Answers one request (`None` for [`Request::Exit`]).
    pub async fn answer(&self, request: &Request) -> Option<Reply> {
        let stats = &self.held.stats;
        Some(match *request {
            Request::Totals => Reply::Totals {
                joins: pool::total(stats, |s| &s.joins),
                messages: pool::total(stats, |s| &s.messages),
                open: self.held.open(),
                closed: pool::endings(stats),
            },
            Request::Probe { timeout_ms } => {
                let deadline = Instant::now() + Duration::from_millis(timeout_ms);
                let seen = |s: &pool::ConnStats| s.marker_seen.load(Ordering::Relaxed);
                loop {
                    let waiting = stats.iter().any(|s| s.is_open() && !seen(s));
                    if !waiting || Instant::now() >= deadline {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Reply::Probed {
                    received: stats.iter().filter(|s| seen(s)).count(),
                    open: self.held.open(),
                    closed: pool::endings(stats),
                }
            }
            Request::Wait { each, timeout_ms } => {
                let deadline = Instant::now() + Duration::from_millis(timeout_ms);
                let waited = wait_for_messages(stats, |_| each, deadline, self.epoch).await;
                Reply::Waited {
                    messages: waited.messages,
                    complete: waited.complete,
                    last_ns: waited.last_ns,
                    closed: pool::endings(stats),
                }
            }
            Request::Latency => Reply::Latency {
                counts: self
                    .sampler
                    .as_ref()
                    .map(|s| histogram_counts(&s.take()))
                    .unwrap_or_default(),
            },
            Request::Exit => return None,
        })
    }
}

/// The hidden `worker` subcommand: holds one share, driven over stdin and stdout.
///
/// # Errors
/// When stdin or stdout fail, or a request is malformed.
pub async fn worker_main(setup: &Setup, spec: &ShareSpec) -> anyhow::Result<()> {
    let mut receivers = Receivers::spawn(setup, spec);
    print_line(&receivers.ready().await)?;
    let mut requests = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = requests.next_line().await? {
        let request: Request =
            serde_json::from_str(&line).with_context(|| format!("request {line:?}"))?;
        match receivers.answer(&request).await {
            Some(reply) => print_line(&reply)?,
            None => break,
        }
    }
    Ok(())
}

fn print_line(reply: &Reply) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", serde_json::to_string(reply)?)?;
    stdout.flush()?;
    Ok(())
}

/// A worker process and its pipes.
struct WorkerProcess {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

/// A share as the parent sees it: a worker process, or a task of this process.
enum Share {
    Process(Box<WorkerProcess>),
    Local {
        requests: mpsc::UnboundedSender<Request>,
        replies: mpsc::UnboundedReceiver<Reply>,
        task: JoinHandle<()>,
    },
}

impl Share {
    async fn send(&mut self, request: &Request) -> anyhow::Result<()> {
        match self {
            Share::Process(process) => {
                let mut line = serde_json::to_string(request)?;
                line.push('\n');
                process.stdin.write_all(line.as_bytes()).await?;
                process.stdin.flush().await?;
            }
            Share::Local { requests, .. } => {
                requests
                    .send(request.clone())
                    .ok()
                    .context("the local share has stopped")?;
            }
        }
        Ok(())
    }

    async fn recv(&mut self) -> anyhow::Result<Reply> {
        match self {
            Share::Process(process) => {
                let line = process
                    .lines
                    .next_line()
                    .await?
                    .context("a worker process exited early (its errors are above)")?;
                serde_json::from_str(&line).with_context(|| format!("worker said {line:?}"))
            }
            Share::Local { replies, .. } => {
                replies.recv().await.context("the local share has stopped")
            }
        }
    }
}

/// A scenario's receiving connections, in shares: worker processes, or one share in this
/// process. Dropping it kills the workers.
pub struct Shares {
    shares: Vec<Share>,
    pids: Vec<u32>,
}

impl Shares {
    /// Starts `workers` worker processes (0: one share in this process) that split `range`
    /// evenly, each logging in its share; `worker_args` are the common arguments.
    ///
    /// # Errors
    /// When a worker process cannot be started.
    pub fn start(
        setup: &Setup,
        spec: &ShareSpec,
        workers: usize,
        worker_args: &[String],
    ) -> anyhow::Result<Shares> {
        let mut shares = Vec::new();
        let mut pids = Vec::new();
        if workers == 0 {
            let (requests, mut requests_rx) = mpsc::unbounded_channel();
            let (replies_tx, replies) = mpsc::unbounded_channel();
            let mut receivers = Receivers::spawn(setup, spec);
            let task = tokio::spawn(async move {
                let _ = replies_tx.send(receivers.ready().await);
                while let Some(request) = requests_rx.recv().await {
                    match receivers.answer(&request).await {
                        Some(reply) => {
                            let _ = replies_tx.send(reply);
                        }
                        None => break,
                    }
                }
            });
            shares.push(Share::Local {
                requests,
                replies,
                task,
            });
            return Ok(Shares { shares, pids });
        }
        let exe = std::env::current_exe().context("cannot find this program to start workers")?;
        for range in split(spec.range.clone(), workers) {
            let spec = ShareSpec {
                range,
                ..spec.clone()
            };
            let mut child = Command::new(&exe)
                .arg("worker")
                .args(worker_args)
                .args(spec.args())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .context("cannot start a worker process")?;
            pids.extend(child.id());
            let stdin = child.stdin.take().context("worker stdin")?;
            let stdout = child.stdout.take().context("worker stdout")?;
            shares.push(Share::Process(Box::new(WorkerProcess {
                child,
                stdin,
                lines: BufReader::new(stdout).lines(),
            })));
        }
        Ok(Shares { shares, pids })
    }

    /// The worker processes' ids (none for a share in this process).
    pub fn pids(&self) -> &[u32] {
        &self.pids
    }

    /// Waits for every share's logins: connections logged in, and failures by reason.
    ///
    /// # Errors
    /// When a worker fails or answers something else.
    pub async fn ready(&mut self) -> anyhow::Result<(usize, Counts)> {
        let mut held = 0;
        let mut failures = Counts::new();
        for reply in self.recv_all().await? {
            match reply {
                Reply::Ready {
                    held: h,
                    failures: f,
                } => {
                    held += h;
                    add(&mut failures, f);
                }
                other => anyhow::bail!("a worker said {other:?} before it was ready"),
            }
        }
        Ok((held, failures))
    }

    /// Sends `request` to every share (they work on it at once).
    ///
    /// # Errors
    /// When a share has stopped.
    pub async fn send_all(&mut self, request: &Request) -> anyhow::Result<()> {
        for share in &mut self.shares {
            share.send(request).await?;
        }
        Ok(())
    }

    /// Every share's next reply, in share order.
    ///
    /// # Errors
    /// When a share has stopped or said something that is not a reply.
    pub async fn recv_all(&mut self) -> anyhow::Result<Vec<Reply>> {
        join_all(self.shares.iter_mut().map(Share::recv))
            .await
            .into_iter()
            .collect()
    }

    /// [`Shares::send_all`], then [`Shares::recv_all`].
    ///
    /// # Errors
    /// As those.
    pub async fn ask(&mut self, request: &Request) -> anyhow::Result<Vec<Reply>> {
        self.send_all(request).await?;
        self.recv_all().await
    }

    /// Asks every share to exit and waits a moment for the processes to do so (killing any
    /// that do not).
    pub async fn exit(&mut self) {
        for share in &mut self.shares {
            let _ = share.send(&Request::Exit).await;
            match share {
                Share::Process(process) => {
                    let child = &mut process.child;
                    if tokio::time::timeout(Duration::from_secs(10), child.wait())
                        .await
                        .is_err()
                    {
                        let _ = child.start_kill();
                    }
                }
                Share::Local { task, .. } => {
                    let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
                }
            }
        }
    }
}

/// Adds counts by reason into `into`.
pub fn add(into: &mut Counts, counts: Counts) {
    for (reason, n) in counts {
        *into.entry(reason).or_default() += n;
    }
}

/// Splits `range` into `parts` ranges whose lengths differ by at most one (fewer parts when the
/// range is shorter; none for an empty one).
pub fn split(range: Range<usize>, parts: usize) -> Vec<Range<usize>> {
    let len = range.len();
    let parts = parts.min(len);
    (0..parts)
        .map(|w| range.start + w * len / parts..range.start + (w + 1) * len / parts)
        .collect()
}

/// Worker processes for `receivers` connections when `--workers` is not given: one per
/// [`PER_WORKER`]; none (this process) while the whole run fits in one, as it always did.
pub fn default_workers(receivers: usize, all: usize) -> usize {
    if all <= PER_WORKER {
        0
    } else {
        receivers.div_ceil(PER_WORKER)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_split_evenly_and_cover_the_range() {
        assert_eq!(split(10..20, 3), [10..13, 13..16, 16..20]);
        assert_eq!(
            split(0..100_000, 6).iter().map(Range::len).max(),
            Some(16_667)
        );
        assert_eq!(split(5..7, 4), [5..6, 6..7], "no empty shares");
        assert!(split(3..3, 2).is_empty());
        let parts = split(1..100_001, 10);
        assert_eq!(parts.first().unwrap().start, 1);
        assert_eq!(parts.last().unwrap().end, 100_001);
        assert!(parts.windows(2).all(|w| w[0].end == w[1].start));
    }

    #[test]
    fn workers_by_default_only_past_one_process() {
        assert_eq!(default_workers(1000, 1010), 0);
        assert_eq!(default_workers(10_000, 10_000), 0);
        assert_eq!(default_workers(99_999, 100_000), 10);
        assert_eq!(default_workers(20_001, 20_002), 3);
    }

    #[test]
    fn requests_and_replies_are_json_lines() {
        let wait = Request::Wait {
            each: 122,
            timeout_ms: 10_000,
        };
        let line = serde_json::to_string(&wait).unwrap();
        assert_eq!(line, r#"{"cmd":"wait","each":122,"timeout_ms":10000}"#);
        assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), wait);
        assert_eq!(
            serde_json::from_str::<Request>(r#"{"cmd":"exit"}"#).unwrap(),
            Request::Exit
        );
        let waited = Reply::Waited {
            messages: 7,
            complete: 1,
            last_ns: None,
            closed: Counts::from([("close 1008".to_owned(), 2)]),
        };
        let line = serde_json::to_string(&waited).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<Reply>(&line).unwrap(), waited);
        let latency = Reply::Latency {
            counts: vec![(1023, 5)],
        };
        let line = serde_json::to_string(&latency).unwrap();
        assert_eq!(line, r#"{"event":"latency","counts":[[1023,5]]}"#);
    }

    #[test]
    fn the_share_spec_becomes_worker_arguments() {
        let epoch = Epoch::from_unix_nanos(1_700_000_000_123_456_789);
        let spec = ShareSpec {
            range: 10..30,
            marker: Some("probe-1".to_owned()),
            epoch,
            sample_every: 64,
        };
        assert_eq!(
            spec.args(),
            [
                "--offset",
                "10",
                "--count",
                "20",
                "--epoch-ns",
                "1700000000123456789",
                "--sample-every",
                "64",
                "--marker",
                "probe-1"
            ]
        );
    }
}
