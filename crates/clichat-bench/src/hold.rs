//! `hold`: log N connections in and keep them; report the server's memory per connection, then
//! check that one message from an extra connection still reaches every one of them.
//!
//! One process may open at most `ulimit -Hn` files (20,000 on the benchmark machines), so the
//! connections are split over worker processes (this binary again, as the hidden `hold-worker`
//! subcommand). The parent talks to each worker over its stdin and stdout, one line at a time:
//! the worker prints a [`WorkerLine::Ready`] JSON line once its share is logged in, answers
//! `check MILLIS` with a [`WorkerLine::Checked`] line, and exits on `exit` or end of input.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;

use crate::Setup;
use crate::login::login;
use crate::pool::{self, Held};
use crate::report::{Counts, CpuShare, CpuWindow, Run, Table, counts_text, rss_kib_sum};

/// Connections per worker process when `--workers` is not given: well under the 20,000 files
/// one process may open.
pub const PER_WORKER: usize = 10_000;

/// What to run.
#[derive(Debug, Clone)]
pub struct Params {
    /// Connections to hold.
    pub count: usize,
    /// Worker processes; `Some(0)` holds everything in this process; `None` picks one per
    /// [`PER_WORKER`] connections.
    pub workers: Option<usize>,
    /// Time to wait after the last login before measuring memory; longer while the server is
    /// still busy (when its pid is known), up to `settle_max`.
    pub settle: Duration,
    /// See `settle`.
    pub settle_max: Duration,
    /// The longest wait for the probe message to reach everyone.
    pub probe_timeout: Duration,
}

/// A worker's reports to its parent, one JSON line each.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum WorkerLine {
    /// Every login of the worker's share has finished.
    Ready {
        /// Connections logged in.
        held: usize,
        /// Failed logins by reason.
        failures: Counts,
    },
    /// The answer to `check`.
    Checked {
        /// Connections that got the probe message.
        received: usize,
        /// Connections still open.
        open: usize,
        /// Connections the server closed, by how.
        closed: Counts,
    },
}

/// One share of the connections, held in this process.
pub struct Worker {
    held: Held,
}

impl Worker {
    /// Logs in connections `offset..offset + count`, all watching for `marker`, and returns once
    /// every login has finished.
    pub async fn start(
        setup: &Setup,
        offset: usize,
        count: usize,
        marker: &str,
    ) -> (Worker, WorkerLine) {
        let marker: Arc<[u8]> = Arc::from(marker.as_bytes());
        let mut held = Held::spawn(setup, offset..offset + count, Some(marker));
        let mut failures = Counts::new();
        let mut logged_in = 0;
        for _ in 0..count {
            let Some(done) = held.results.recv().await else {
                break;
            };
            match done.result {
                Ok(_) => logged_in += 1,
                Err(error) => *failures.entry(error.reason()).or_default() += 1,
            }
        }
        let ready = WorkerLine::Ready {
            held: logged_in,
            failures,
        };
        (Worker { held }, ready)
    }

    /// Waits until every open connection has seen the probe, or `timeout`.
    pub async fn check(&self, timeout: Duration) -> WorkerLine {
        let deadline = Instant::now() + timeout;
        loop {
            let stats = &self.held.stats;
            let received = stats
                .iter()
                .filter(|s| s.marker_seen.load(Ordering::Relaxed))
                .count();
            let open = self.held.open();
            let waiting = stats
                .iter()
                .any(|s| s.is_open() && !s.marker_seen.load(Ordering::Relaxed));
            if !waiting || Instant::now() >= deadline {
                return WorkerLine::Checked {
                    received,
                    open,
                    closed: pool::endings(stats),
                };
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The hidden `hold-worker` subcommand: holds one share, driven over stdin and stdout.
///
/// # Errors
/// When stdin or stdout fail, or a command is malformed.
pub async fn worker_main(
    setup: &Setup,
    offset: usize,
    count: usize,
    marker: &str,
) -> anyhow::Result<()> {
    let (worker, ready) = Worker::start(setup, offset, count, marker).await;
    print_line(&ready)?;
    let mut commands = BufReader::new(tokio::io::stdin()).lines();
    while let Some(command) = commands.next_line().await? {
        if let Some(millis) = command.strip_prefix("check ") {
            let timeout = Duration::from_millis(millis.trim().parse().context("check MILLIS")?);
            print_line(&worker.check(timeout).await)?;
        } else if command.trim() == "exit" {
            break;
        }
    }
    Ok(())
}

fn print_line(line: &WorkerLine) -> anyhow::Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", serde_json::to_string(line)?)?;
    stdout.flush()?;
    Ok(())
}

/// A share of the connections: a worker process, or held here.
enum Share {
    Process(Box<WorkerProcess>),
    Local(Worker, Option<WorkerLine>),
}

/// A worker process and its pipes.
struct WorkerProcess {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Share {
    async fn next_line(&mut self) -> anyhow::Result<WorkerLine> {
        match self {
            Share::Process(process) => {
                let line = process
                    .lines
                    .next_line()
                    .await?
                    .context("a worker process exited early (its errors are above)")?;
                serde_json::from_str(&line).with_context(|| format!("worker said {line:?}"))
            }
            Share::Local(_, line) => line.take().context("no line from the local worker"),
        }
    }

    async fn command(&mut self, command: &str) -> anyhow::Result<()> {
        match self {
            Share::Process(process) => {
                let line = format!("{command}\n");
                process.stdin.write_all(line.as_bytes()).await?;
                process.stdin.flush().await?;
            }
            Share::Local(worker, line) => {
                if let Some(millis) = command.strip_prefix("check ") {
                    let timeout = Duration::from_millis(millis.parse()?);
                    *line = Some(worker.check(timeout).await);
                }
            }
        }
        Ok(())
    }
}

/// The result of a `hold` run.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The scenario, where it connected and how it logged in.
    #[serde(flatten)]
    pub run: Run,
    /// Connections asked for.
    pub count: usize,
    /// Worker processes (0: all in this process).
    pub workers: usize,
    /// Connections logged in.
    pub held: usize,
    /// Failed logins by reason.
    pub failures: Counts,
    /// Seconds to log everyone in.
    pub login_s: f64,
    /// Logins per second over that time.
    pub logins_per_s: f64,
    /// CPU used while logging in.
    pub login_cpu: CpuShare,
    /// Seconds waited after the logins before measuring memory.
    pub settle_s: f64,
    /// The server's resident memory before the first login (with `--pid`).
    pub rss_before_kib: Option<u64>,
    /// The same with everyone held.
    pub rss_held_kib: Option<u64>,
    /// `(rss_held - rss_before) / held`.
    pub bytes_per_connection: Option<f64>,
    /// Connections that got the probe message.
    pub probe_received: usize,
    /// Seconds from sending the probe to the last connection getting it.
    pub probe_s: f64,
    /// Why the probe connection failed, if it did.
    pub probe_error: Option<String>,
    /// Connections still open at the end.
    pub open_at_end: usize,
    /// Connections the server closed, by how.
    pub closed: Counts,
    /// Everyone logged in, stayed, and got the probe.
    pub ok: bool,
}

impl Report {
    /// The human table.
    pub fn table(&self) -> Table {
        let mut t = Table::default();
        let kib =
            |v: Option<u64>| v.map_or_else(|| "? (give --pid)".to_owned(), |k| format!("{k} KiB"));
        t.row("scenario", "hold")
            .server(&self.run.nodes)
            .row(
                "connections",
                format!(
                    "{} {} logins over {} worker processes",
                    self.count, self.run.login, self.workers
                ),
            )
            .row("held", self.held)
            .row("failed", counts_text(&self.failures))
            .row(
                "login time",
                format!("{:.1} s ({:.0} logins/s)", self.login_s, self.logins_per_s),
            )
            .row("login cpu", self.login_cpu.text())
            .row("settled", format!("{:.1} s", self.settle_s))
            .row("server rss before", kib(self.rss_before_kib))
            .row("server rss held", kib(self.rss_held_kib))
            .row(
                "per connection",
                self.bytes_per_connection.map_or_else(
                    || "?".to_owned(),
                    |b| format!("{b:.0} bytes ({:.2} KiB)", b / 1024.0),
                ),
            )
            .row(
                "probe received",
                format!(
                    "{} of {} in {:.2} s{}",
                    self.probe_received,
                    self.held,
                    self.probe_s,
                    self.probe_error
                        .as_ref()
                        .map(|e| format!(" (probe failed: {e})"))
                        .unwrap_or_default()
                ),
            )
            .row("open at end", self.open_at_end)
            .row("closed by server", counts_text(&self.closed))
            .row("result", if self.ok { "ok" } else { "FAILED" });
        t
    }
}

/// Runs the scenario; `worker_args` are the common arguments to hand to worker processes.
///
/// # Errors
/// When the config lacks credentials or a worker process fails.
pub async fn run(setup: &Setup, params: &Params, worker_args: &[String]) -> anyhow::Result<Report> {
    let count = params.count;
    anyhow::ensure!(count >= 1, "nothing to do: --count is 0");
    // The probe is one more connection.
    setup
        .creds
        .check(setup.mode, count + 1)
        .context("hold needs one credential more than --count, for the probe")?;
    let marker = format!("probe-{:016x}", rand::random::<u64>());
    let workers = params.workers.unwrap_or_else(|| count.div_ceil(PER_WORKER));
    let rss_before = rss_kib_sum(&setup.watched.servers);

    let started = Instant::now();
    let mut shares = Vec::new();
    let mut worker_pids = Vec::new();
    if workers == 0 {
        let (worker, ready) = Worker::start(setup, 0, count, &marker).await;
        shares.push(Share::Local(worker, Some(ready)));
    } else {
        let exe = std::env::current_exe().context("cannot find this program to start workers")?;
        for w in 0..workers {
            let (offset, end) = (w * count / workers, (w + 1) * count / workers);
            let mut child = Command::new(&exe)
                .arg("hold-worker")
                .args(worker_args)
                .args(["--offset", &offset.to_string()])
                .args(["--count", &(end - offset).to_string()])
                .args(["--marker", &marker])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .kill_on_drop(true)
                .spawn()
                .context("cannot start a worker process")?;
            worker_pids.extend(child.id());
            let stdin = child.stdin.take().context("worker stdin")?;
            let stdout = child.stdout.take().context("worker stdout")?;
            shares.push(Share::Process(Box::new(WorkerProcess {
                child,
                stdin,
                lines: BufReader::new(stdout).lines(),
            })));
        }
    }
    // The workers have only just started: their CPU so far is negligible.
    let login_cpu = CpuWindow::start(&worker_pids, &setup.watched);

    let mut held = 0;
    let mut failures = Counts::new();
    for share in &mut shares {
        match share.next_line().await? {
            WorkerLine::Ready {
                held: h,
                failures: f,
            } => {
                held += h;
                for (reason, n) in f {
                    *failures.entry(reason).or_default() += n;
                }
            }
            other => anyhow::bail!("worker said {other:?} before it was ready"),
        }
    }
    let login_s = started.elapsed().as_secs_f64();
    let login_cpu = login_cpu.finish();

    let settled = Instant::now();
    setup.watched.settle(params.settle, params.settle_max).await;
    let settle_s = settled.elapsed().as_secs_f64();
    let rss_held = rss_kib_sum(&setup.watched.servers);

    // The probe: one more connection says something; everyone held must hear it.
    let probe_sent = Instant::now();
    let probe = login(&setup.target, &setup.credential(count), count).await;
    let mut probe_error = None;
    let _probe_conn = match probe {
        Ok(logged) => {
            if let Err(e) = logged.client.send(&format!("probe {marker}")).await {
                probe_error = Some(e.to_string());
            }
            // Kept reading (so that it answers pings) until the checks are done.
            let mut client = logged.client;
            Some(AbortOnDrop(tokio::spawn(async move {
                while client.next_event().await.is_some() {}
            })))
        }
        Err(error) => {
            probe_error = Some(error.reason());
            None
        }
    };
    let timeout = if probe_error.is_some() {
        Duration::ZERO
    } else {
        params.probe_timeout
    };
    let check = format!("check {}", timeout.as_millis());
    for share in &mut shares {
        share.command(&check).await?;
    }
    let (mut probe_received, mut open_at_end, mut closed) = (0, 0, Counts::new());
    for share in &mut shares {
        match share.next_line().await? {
            WorkerLine::Checked {
                received,
                open,
                closed: c,
            } => {
                probe_received += received;
                open_at_end += open;
                for (how, n) in c {
                    *closed.entry(how).or_default() += n;
                }
            }
            other => anyhow::bail!("worker said {other:?} instead of its check"),
        }
    }
    let probe_s = probe_sent.elapsed().as_secs_f64();

    for share in &mut shares {
        if let Share::Process(process) = share {
            let _ = process.stdin.write_all(b"exit\n").await;
            let child = &mut process.child;
            if tokio::time::timeout(Duration::from_secs(10), child.wait())
                .await
                .is_err()
            {
                let _ = child.start_kill();
            }
        }
    }

    let bytes_per_connection = rss_before
        .zip(rss_held)
        .filter(|_| held > 0)
        .map(|(before, after)| (after as f64 - before as f64) * 1024.0 / held as f64);
    Ok(Report {
        run: Run::of("hold", setup),
        count,
        workers,
        held,
        failures,
        login_s,
        logins_per_s: held as f64 / login_s.max(1e-9),
        login_cpu,
        settle_s,
        rss_before_kib: rss_before,
        rss_held_kib: rss_held,
        bytes_per_connection,
        ok: held == count
            && probe_received == count
            && open_at_end == count
            && probe_error.is_none(),
        probe_received,
        probe_s,
        probe_error,
        open_at_end,
        closed,
    })
}

/// A task that ends with its owner.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
