//! `logins`: N full logins at a set concurrency, every connection kept open (and reading) until
//! the end, so that the last logins happen with N-1 others in the room. The rate is reported
//! overall and per tenth of the logins, so that a cost growing with N shows.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::Setup;
use crate::pool::{self, Held};
use crate::report::{
    Counts, CpuShare, CpuWindow, Latency, Run, Table, counts_text, micros_histogram, record,
};

/// The result of a `logins` run.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The scenario, where it connected and how it logged in.
    #[serde(flatten)]
    pub run: Run,
    /// Logins attempted.
    pub count: usize,
    /// Logins in flight at once.
    pub concurrency: usize,
    /// Logins that got an `id`.
    pub succeeded: usize,
    /// Logins that did not.
    pub failed: usize,
    /// Failures by reason (the server's refusal text, or the step that failed).
    pub failures: Counts,
    /// Seconds from the first attempt to the last one finishing.
    pub seconds: f64,
    /// Successful logins per second, overall.
    pub logins_per_s: f64,
    /// The same per tenth of the attempts, in the order they finished.
    pub tenths: Vec<Tenth>,
    /// The last tenth's rate over the first's (1.0 is flat).
    pub last_over_first: f64,
    /// Whole login, connect to `id`.
    pub latency: Latency,
    /// Each step: connect+upgrade, auth→authmsg, page GET, tokenauth→id.
    pub steps: Steps,
    /// Connections still open at the end (after `--settle`).
    pub held_at_end: usize,
    /// Connections the server closed after their login, by how.
    pub closed: Counts,
    /// CPU used during the logins.
    pub cpu: CpuShare,
    /// Every login succeeded and every connection stayed open.
    pub ok: bool,
}

/// One tenth of the attempts.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Tenth {
    /// Attempts `first..=last` (1-based, in finishing order).
    pub first: usize,
    /// See `first`.
    pub last: usize,
    /// Successful logins among them.
    pub succeeded: usize,
    /// Seconds the tenth took (from the previous tenth's last finish).
    pub seconds: f64,
    /// `succeeded / seconds`.
    pub logins_per_s: f64,
}

/// Latency of each login step.
#[derive(Debug, Serialize)]
pub struct Steps {
    /// TCP connect and WebSocket upgrade.
    pub connect: Latency,
    /// `auth` to `authmsg`.
    pub authmsg: Latency,
    /// The token page's GET.
    pub page: Latency,
    /// `tokenauth` (or `botauth`) to `id`.
    pub id: Latency,
}

impl Report {
    /// The human table.
    pub fn table(&self) -> Table {
        let mut t = Table::default();
        t.row("scenario", "logins")
            .server(&self.run.nodes)
            .row(
                "logins",
                format!(
                    "{} {} logins, {} at a time",
                    self.count, self.run.login, self.concurrency
                ),
            )
            .row("succeeded", self.succeeded)
            .row(
                "failed",
                format!("{} ({})", self.failed, counts_text(&self.failures)),
            )
            .row("time", format!("{:.2} s", self.seconds))
            .row("logins/s", format!("{:.0}", self.logins_per_s))
            .row("last/first tenth", format!("{:.2}", self.last_over_first))
            .row("latency", self.latency.text())
            .row("  connect", self.steps.connect.text())
            .row("  auth→authmsg", self.steps.authmsg.text())
            .row("  page GET", self.steps.page.text())
            .row("  →id", self.steps.id.text())
            .row(
                "held at end",
                format!("{} of {}", self.held_at_end, self.succeeded),
            )
            .row("closed by server", counts_text(&self.closed))
            .row("cpu", self.cpu.text());
        t.section("per tenth");
        for tenth in &self.tenths {
            t.row(
                format!("logins {}..{}", tenth.first, tenth.last),
                format!(
                    "{:>6.0} logins/s ({:.2} s)",
                    tenth.logins_per_s, tenth.seconds
                ),
            );
        }
        t.row("result", if self.ok { "ok" } else { "FAILED" });
        t
    }
}

/// Runs the scenario: `count` logins, keeping them open; `settle` is waited after the last one
/// before counting who is still open.
///
/// # Errors
/// When the config lacks credentials.
pub async fn run(setup: &Setup, count: usize, settle: Duration) -> anyhow::Result<Report> {
    anyhow::ensure!(count >= 1, "nothing to do: --count is 0");
    setup.creds.check(setup.mode, count)?;
    let cpu = CpuWindow::start(&[], &setup.watched);
    let start = Instant::now();
    let mut held = Held::spawn(setup, 0..count, None, None);

    let mut finished = Vec::with_capacity(count);
    let mut failures = Counts::new();
    let (mut total, mut connect, mut authmsg, mut page, mut id) = (
        micros_histogram(),
        micros_histogram(),
        micros_histogram(),
        micros_histogram(),
        micros_histogram(),
    );
    while finished.len() < count {
        let Some(done) = held.results.recv().await else {
            break;
        };
        let since_start = done.at.duration_since(start);
        match done.result {
            Ok(timings) => {
                finished.push((since_start, true));
                record(&mut total, timings.total());
                record(&mut connect, timings.connect);
                record(&mut id, timings.id);
                if !timings.authmsg.is_zero() {
                    record(&mut authmsg, timings.authmsg);
                    record(&mut page, timings.page);
                }
            }
            Err(error) => {
                finished.push((since_start, false));
                *failures.entry(error.reason()).or_default() += 1;
            }
        }
    }
    let cpu = cpu.finish();
    let seconds = finished.last().map_or(0.0, |(at, _)| at.as_secs_f64());
    let succeeded = finished.iter().filter(|(_, ok)| *ok).count();
    tokio::time::sleep(settle).await;
    let held_at_end = held.open();
    let closed = pool::endings(&held.stats);
    drop(held);

    let tenths = tenths(&finished);
    let last_over_first = match (tenths.first(), tenths.last()) {
        (Some(first), Some(last)) if first.logins_per_s > 0.0 => {
            last.logins_per_s / first.logins_per_s
        }
        _ => 0.0,
    };
    Ok(Report {
        run: Run::of("logins", setup),
        count,
        concurrency: setup.concurrency,
        succeeded,
        failed: count - succeeded,
        failures,
        seconds,
        logins_per_s: succeeded as f64 / seconds.max(1e-9),
        tenths,
        last_over_first,
        latency: Latency::of(&total),
        steps: Steps {
            connect: Latency::of(&connect),
            authmsg: Latency::of(&authmsg),
            page: Latency::of(&page),
            id: Latency::of(&id),
        },
        ok: succeeded == count && held_at_end == count,
        held_at_end,
        closed,
        cpu,
    })
}

/// Splits attempts (time since the start at which each finished, and whether it succeeded, in
/// finishing order) into ten equal parts (fewer when there are fewer than ten).
pub fn tenths(finished: &[(Duration, bool)]) -> Vec<Tenth> {
    let n = finished.len();
    let parts = n.min(10);
    (0..parts)
        .map(|i| {
            let (lo, hi) = (i * n / parts, (i + 1) * n / parts);
            let began = if lo == 0 {
                Duration::ZERO
            } else {
                finished[lo - 1].0
            };
            let seconds = finished[hi - 1].0.saturating_sub(began).as_secs_f64();
            let succeeded = finished[lo..hi].iter().filter(|(_, ok)| *ok).count();
            Tenth {
                first: lo + 1,
                last: hi,
                succeeded,
                seconds,
                logins_per_s: succeeded as f64 / seconds.max(1e-9),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenths_show_a_slowing_rate() {
        // 100 logins: the first 50 at 1 ms each, the last 50 at 2 ms each; one failure.
        let mut at = Duration::ZERO;
        let finished: Vec<(Duration, bool)> = (0..100)
            .map(|i| {
                at += Duration::from_millis(if i < 50 { 1 } else { 2 });
                (at, i != 3)
            })
            .collect();
        let tenths = tenths(&finished);
        assert_eq!(tenths.len(), 10);
        assert_eq!(
            (tenths[0].first, tenths[0].last, tenths[0].succeeded),
            (1, 10, 9)
        );
        assert!((tenths[0].seconds - 0.010).abs() < 1e-9);
        assert!((tenths[9].logins_per_s - 500.0).abs() < 1e-6);
        assert!((tenths[1].logins_per_s - 1000.0).abs() < 1e-6);
    }

    #[test]
    fn fewer_than_ten_attempts() {
        let finished = [
            (Duration::from_millis(5), true),
            (Duration::from_millis(9), false),
        ];
        let tenths = tenths(&finished);
        assert_eq!(tenths.len(), 2);
        assert_eq!(
            (tenths[1].first, tenths[1].last, tenths[1].succeeded),
            (2, 2, 0)
        );
        assert!(super::tenths(&[]).is_empty());
    }
}
