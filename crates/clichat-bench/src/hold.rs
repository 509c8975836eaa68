//! `hold`: log N connections in and keep them; report the server's memory per connection, then
//! check that one message from an extra connection still reaches every one of them.
//!
//! One process may open at most `ulimit -Hn` files (20,000 on the benchmark machines), so the
//! connections are split over worker processes ([`crate::worker`]); each notes the probe's
//! arrival on its connections and answers [`Request::Probe`].

use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::Setup;
use crate::login::login;
use crate::pool::Epoch;
use crate::report::{Counts, CpuShare, CpuWindow, Run, Table, counts_text, rss_kib_sum};
use crate::worker::{PER_WORKER, Reply, Request, ShareSpec, Shares, add};

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
    let spec = ShareSpec {
        range: 0..count,
        marker: Some(marker.clone()),
        epoch: Epoch::now(),
        sample_every: 0,
    };
    let mut shares = Shares::start(setup, &spec, workers, worker_args)?;
    // The workers have only just started: their CPU so far is negligible.
    let login_cpu = CpuWindow::start(shares.pids(), &setup.watched);
    let (held, failures) = shares.ready().await?;
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
    let probe = Request::Probe {
        timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
    };
    let (mut probe_received, mut open_at_end, mut closed) = (0, 0, Counts::new());
    for reply in shares.ask(&probe).await? {
        match reply {
            Reply::Probed {
                received,
                open,
                closed: c,
            } => {
                probe_received += received;
                open_at_end += open;
                add(&mut closed, c);
            }
            other => anyhow::bail!("a worker said {other:?} instead of its check"),
        }
    }
    let probe_s = probe_sent.elapsed().as_secs_f64();
    shares.exit().await;

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
