//! Reporting: the human table, latency summaries, and what `/proc` says about CPU and memory.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// What every report starts with: the scenario, where it connected, and how it logged in.
#[derive(Debug, Serialize)]
pub struct Run {
    /// The scenario's name.
    pub scenario: &'static str,
    /// The server address; the nodes' addresses comma-separated when there are several.
    pub server: String,
    /// The nodes connections were spread over, round-robin (one for a single server).
    pub nodes: Vec<String>,
    /// `sauth2` or `bot`.
    pub login: &'static str,
}

impl Run {
    /// The start of `scenario`'s report, run with `setup`.
    pub fn of(scenario: &'static str, setup: &crate::Setup) -> Run {
        let nodes = setup.target.node_addresses();
        Run {
            scenario,
            server: nodes.join(","),
            nodes,
            login: setup.mode.as_str(),
        }
    }
}

/// A two-column table printed for people; `--json` prints the report struct instead.
#[derive(Debug, Default)]
pub struct Table {
    rows: Vec<(String, String)>,
}

impl Table {
    /// Adds a row.
    pub fn row(&mut self, label: impl Into<String>, value: impl ToString) -> &mut Table {
        self.rows.push((label.into(), value.to_string()));
        self
    }

    /// Adds where the run connected: a `server` row for one node (as it always was), a `nodes`
    /// row naming every node for several.
    pub fn server(&mut self, nodes: &[String]) -> &mut Table {
        match nodes {
            [one] => self.row("server", one),
            _ => self.row(
                "nodes",
                format!("{} (round-robin): {}", nodes.len(), nodes.join(", ")),
            ),
        }
    }

    /// Adds a section heading.
    pub fn section(&mut self, title: &str) -> &mut Table {
        self.rows.push((String::new(), String::new()));
        self.rows.push((format!("-- {title}"), String::new()));
        self
    }

    /// Renders the table.
    pub fn render(&self) -> String {
        let width = self.rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
        let mut out = String::new();
        for (label, value) in &self.rows {
            if value.is_empty() {
                out.push_str(label);
            } else {
                out.push_str(&format!("{label:<width$}  {value}"));
            }
            out.push('\n');
        }
        out
    }
}

/// Counts of things by a text key (failure reasons, close codes).
pub type Counts = BTreeMap<String, u64>;

/// Formats counts for the table: `none`, or `3 × close 1008, 1 × eof`.
pub fn counts_text(counts: &Counts) -> String {
    if counts.is_empty() {
        return "none".to_owned();
    }
    counts
        .iter()
        .map(|(k, n)| format!("{n} × {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A histogram of durations in microseconds, 1 µs to 10 minutes, 3 significant digits.
pub fn micros_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant bounds are valid")
}

/// Records a duration into a [`micros_histogram`] (clamped to its range).
pub fn record(histogram: &mut Histogram<u64>, duration: Duration) {
    let micros = u64::try_from(duration.as_micros()).unwrap_or(u64::MAX);
    histogram.saturating_record(micros.max(1));
}

/// Percentiles of a latency histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    /// Number of values recorded.
    pub samples: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest value.
    pub max_ms: f64,
}

impl Latency {
    /// Summarizes a [`micros_histogram`].
    pub fn of(histogram: &Histogram<u64>) -> Latency {
        if histogram.is_empty() {
            return Latency::default();
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Latency {
            samples: histogram.len(),
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            max_ms: ms(histogram.max()),
        }
    }

    /// `p50 0.41 ms, p90 ..., p99 ..., max ...` for the table.
    pub fn text(&self) -> String {
        if self.samples == 0 {
            return "no samples".to_owned();
        }
        format!(
            "p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} samples)",
            self.p50_ms, self.p90_ms, self.p99_ms, self.max_ms, self.samples
        )
    }
}

/// The resident memory of process `pid` in KiB (`VmRSS` of `/proc/PID/status`).
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
}

/// CPU time (user + system, all threads) of process `pid` so far; `None` if it is gone.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it are plain numbers.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; `fields` starts at field 3.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let per_second = rustix::param::clock_ticks_per_second().max(1);
    Some(Duration::from_secs_f64(ticks as f64 / per_second as f64))
}

/// Measures how much CPU the bench (this process and its workers) and the server use over a
/// window of wall time.
#[derive(Debug)]
pub struct CpuWindow {
    started: Instant,
    bench_pids: Vec<u32>,
    bench: Duration,
    server_pid: Option<u32>,
    server: Option<Duration>,
}

/// CPU use over a window, in percent of one core (200% is both cores of a 2-core machine).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CpuShare {
    /// The window's wall time.
    pub seconds: f64,
    /// The bench's processes together.
    pub bench_pct: f64,
    /// The server, when its pid was given.
    pub server_pct: Option<f64>,
    /// The server's CPU time over the window, in seconds, when its pid was given.
    pub server_cpu_s: Option<f64>,
}

impl CpuShare {
    /// `bench 35%, server 160% (of one core) over 10.0 s` for the table.
    pub fn text(&self) -> String {
        let server = self.server_pct.map_or_else(
            || "server ? (give --pid)".to_owned(),
            |p| format!("server {p:.0}%"),
        );
        format!(
            "bench {:.0}%, {server} of one core, over {:.1} s",
            self.bench_pct, self.seconds
        )
    }
}

impl CpuWindow {
    /// Starts a window over this process and `workers`, and the server when `server_pid` is
    /// given.
    pub fn start(workers: &[u32], server_pid: Option<u32>) -> CpuWindow {
        let mut bench_pids = vec![std::process::id()];
        bench_pids.extend_from_slice(workers);
        let bench = bench_pids.iter().filter_map(|&p| cpu_time(p)).sum();
        CpuWindow {
            started: Instant::now(),
            bench_pids,
            bench,
            server_pid,
            server: server_pid.and_then(cpu_time),
        }
    }

    /// The CPU used since the window started.
    pub fn finish(&self) -> CpuShare {
        let seconds = self.started.elapsed().as_secs_f64().max(1e-9);
        let bench: Duration = self.bench_pids.iter().filter_map(|&p| cpu_time(p)).sum();
        let pct = |used: Duration| used.as_secs_f64() / seconds * 100.0;
        let server = self
            .server_pid
            .and_then(cpu_time)
            .zip(self.server)
            .map(|(now, then)| now.saturating_sub(then));
        CpuShare {
            seconds,
            bench_pct: pct(bench.saturating_sub(self.bench)),
            server_pct: server.map(pct),
            server_cpu_s: server.map(|used| used.as_secs_f64()),
        }
    }
}

/// Raises this process's soft limit on open files to its hard limit (every connection is a
/// file); returns the limit in force.
pub fn raise_open_files_limit() -> Option<u64> {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
    getrlimit(Resource::Nofile).current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_readable() {
        let pid = std::process::id();
        assert!(rss_kib(pid).unwrap() > 0);
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {}
        assert!(cpu_time(pid).unwrap() > Duration::ZERO);
        assert_eq!(rss_kib(u32::MAX), None);
    }

    #[test]
    fn latency_percentiles_in_milliseconds() {
        let mut h = micros_histogram();
        for ms in 1..=100 {
            record(&mut h, Duration::from_millis(ms));
        }
        let latency = Latency::of(&h);
        assert_eq!(latency.samples, 100);
        assert!((latency.p50_ms - 50.0).abs() < 0.1, "{latency:?}");
        assert!((latency.p99_ms - 99.0).abs() < 0.1, "{latency:?}");
        assert!((latency.max_ms - 100.0).abs() < 0.1, "{latency:?}");
        assert_eq!(Latency::of(&micros_histogram()).samples, 0);
    }

    #[test]
    fn table_aligns_values() {
        let mut table = Table::default();
        table.row("a", 1).row("longer", "x");
        assert_eq!(table.render(), "a       1\nlonger  x\n");
    }
}
