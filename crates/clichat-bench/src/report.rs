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

/// A histogram's recorded values as `(value, count)` pairs, one per bucket that has any: how a
/// worker process hands its latencies to the parent (as JSON), which adds them up with
/// [`add_counts`]. Each value is its bucket's highest equivalent value, so it lands in the same
/// bucket again.
pub fn histogram_counts(histogram: &Histogram<u64>) -> Vec<(u64, u64)> {
    histogram
        .iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

/// Adds [`histogram_counts`] (of another process) to `histogram`.
pub fn add_counts(histogram: &mut Histogram<u64>, counts: &[(u64, u64)]) {
    for &(value, count) in counts {
        histogram.saturating_record_n(value, count);
    }
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

/// The summed resident memory of `pids` in KiB; `None` when there are none or one is gone.
pub fn rss_kib_sum(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    pids.iter().map(|&pid| rss_kib(pid)).sum()
}

/// CPU time (user + system, all threads) of process `pid` so far; `None` if it is gone.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it are plain numbers.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; `fields` starts at field 3.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks_to_duration(ticks))
}

fn ticks_to_duration(ticks: u64) -> Duration {
    let per_second = rustix::param::clock_ticks_per_second().max(1);
    Duration::from_secs_f64(ticks as f64 / per_second as f64)
}

/// While the server uses more than this share of a core (per process), it is still busy.
pub const BUSY_CPU: f64 = 0.10;

/// The processes a run reports on besides its own: the server (one pid, or one per node of a
/// cluster, summed) and others beside it, each under a label (Redis).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Watched {
    /// The server's processes (`--pid`).
    pub servers: Vec<u32>,
    /// Other processes, by label (`--also-pid LABEL=PID`).
    pub also: Vec<(String, u32)>,
}

impl Watched {
    /// The summed CPU time of the server's processes; `None` without any, or if one is gone.
    pub fn server_cpu(&self) -> Option<Duration> {
        if self.servers.is_empty() {
            return None;
        }
        self.servers.iter().map(|&pid| cpu_time(pid)).sum()
    }

    /// Waits `least`, then (when the server's pids are known) on while the server is still
    /// busy (above [`BUSY_CPU`] of a core per process: announcing joins, writing to Redis), up
    /// to `most` in all.
    pub async fn settle(&self, least: Duration, most: Duration) {
        let started = Instant::now();
        tokio::time::sleep(least).await;
        let window = Duration::from_millis(500);
        let busy = BUSY_CPU * self.servers.len() as f64;
        while started.elapsed() < most {
            let Some(before) = self.server_cpu() else {
                return;
            };
            tokio::time::sleep(window).await;
            let Some(after) = self.server_cpu() else {
                return;
            };
            if after.saturating_sub(before).as_secs_f64() / window.as_secs_f64() < busy {
                return;
            }
        }
    }

    /// The resident memory of each `also` process, in KiB, by label (those still running).
    pub fn also_rss_kib(&self) -> BTreeMap<String, u64> {
        self.also
            .iter()
            .filter_map(|(label, pid)| Some((label.clone(), rss_kib(*pid)?)))
            .collect()
    }
}

/// Parses `LABEL=PID` (`--also-pid redis=1234`).
///
/// # Errors
/// When there is no `=`, the label is empty, or the pid is not a number.
pub fn parse_labeled_pid(text: &str) -> Result<(String, u32), String> {
    let (label, pid) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected LABEL=PID, e.g. redis=1234"))?;
    let label = label.trim();
    if label.is_empty() {
        return Err(format!("{text:?}: the label before = is empty"));
    }
    let pid = pid
        .trim()
        .parse()
        .map_err(|_| format!("{text:?}: {pid:?} is not a process id"))?;
    Ok((label.to_owned(), pid))
}

/// The machine's CPU time so far, from the first line of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MachineTicks {
    /// Cores (`cpuN` lines).
    pub cores: usize,
    /// `user` and `nice`.
    pub user: u64,
    /// `system`.
    pub system: u64,
    /// `irq` and `softirq` (the loopback path's receive side runs here).
    pub interrupts: u64,
    /// `idle` and `iowait`.
    pub idle: u64,
    /// `steal` (another guest on the same host).
    pub steal: u64,
}

impl MachineTicks {
    /// Reads `/proc/stat`; `None` where there is none.
    pub fn now() -> Option<MachineTicks> {
        MachineTicks::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// Parses the text of `/proc/stat`.
    pub fn parse(stat: &str) -> Option<MachineTicks> {
        let mut lines = stat.lines();
        let total = lines.next()?.strip_prefix("cpu ")?;
        let f: Vec<u64> = total
            .split_whitespace()
            .map(|n| n.parse().ok())
            .collect::<Option<_>>()?;
        let at = |i: usize| f.get(i).copied().unwrap_or(0);
        let cores = lines
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .count();
        Some(MachineTicks {
            cores,
            user: at(0) + at(1),
            system: at(2),
            idle: at(3) + at(4),
            interrupts: at(5) + at(6),
            steal: at(7),
        })
    }

    fn busy(&self) -> u64 {
        self.user + self.system + self.interrupts + self.steal
    }
}

/// What the whole machine did over a window, in percent of one core (a 2-core machine has
/// 200%).
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct MachineShare {
    /// Cores.
    pub cores: usize,
    /// Busy, all cores together.
    pub busy_pct: f64,
    /// In user space (`user` and `nice`).
    pub user_pct: f64,
    /// In the kernel for processes (`system`).
    pub system_pct: f64,
    /// In interrupts (`irq` and `softirq`).
    pub interrupts_pct: f64,
    /// Busy, less what the run's processes (the bench, the server, the `also` ones) used: other
    /// processes, and interrupts served while none of them ran.
    pub rest_pct: f64,
}

impl MachineShare {
    fn between(before: &MachineTicks, after: &MachineTicks, seconds: f64, ours: Duration) -> Self {
        let pct = |ticks: u64| ticks_to_duration(ticks).as_secs_f64() / seconds * 100.0;
        let busy = pct(after.busy().saturating_sub(before.busy()));
        MachineShare {
            cores: after.cores,
            busy_pct: busy,
            user_pct: pct(after.user.saturating_sub(before.user)),
            system_pct: pct(after.system.saturating_sub(before.system)),
            interrupts_pct: pct(after.interrupts.saturating_sub(before.interrupts)),
            rest_pct: (busy - ours.as_secs_f64() / seconds * 100.0).max(0.0),
        }
    }

    /// `190% of 200% busy (user 80%, system 90%, interrupts 20%), 5% outside the run's processes`.
    pub fn text(&self) -> String {
        format!(
            "{:.0}% of {}% busy (user {:.0}%, system {:.0}%, interrupts {:.0}%), {:.0}% outside the run's processes",
            self.busy_pct,
            self.cores * 100,
            self.user_pct,
            self.system_pct,
            self.interrupts_pct,
            self.rest_pct
        )
    }
}

/// Measures how much CPU the bench (this process and its workers), the server and the watched
/// processes use over a window of wall time, and the machine as a whole.
#[derive(Debug)]
pub struct CpuWindow {
    started: Instant,
    bench: Vec<(u32, Duration)>,
    servers: Vec<(u32, Option<Duration>)>,
    also: Vec<(String, u32, Option<Duration>)>,
    machine: Option<MachineTicks>,
}

/// CPU use over a window, in percent of one core (200% is both cores of a 2-core machine).
#[derive(Debug, Clone, Default, Serialize)]
pub struct CpuShare {
    /// The window's wall time.
    pub seconds: f64,
    /// The bench's processes together.
    pub bench_pct: f64,
    /// The bench's processes: this one and its workers.
    pub bench_processes: usize,
    /// The busiest of them.
    pub bench_busiest_pct: f64,
    /// The server (its processes together), when its pid was given.
    pub server_pct: Option<f64>,
    /// The server's CPU time over the window, in seconds, when its pid was given.
    pub server_cpu_s: Option<f64>,
    /// Each of the server's processes (the nodes of a cluster), in `--pid` order.
    pub servers_pct: Vec<f64>,
    /// The `--also-pid` processes, by label.
    pub also_pct: BTreeMap<String, f64>,
    /// The whole machine, where `/proc/stat` says.
    pub machine: Option<MachineShare>,
}

impl CpuShare {
    /// `bench 35%, server 160% of one core, over 10.0 s` for the table; with several nodes or
    /// bench processes, each group's size and its busiest member too.
    pub fn text(&self) -> String {
        let bench = if self.bench_processes > 1 {
            format!(
                "bench {:.0}% ({} processes, busiest {:.0}%)",
                self.bench_pct, self.bench_processes, self.bench_busiest_pct
            )
        } else {
            format!("bench {:.0}%", self.bench_pct)
        };
        let server = match (self.server_pct, self.servers_pct.as_slice()) {
            (None, _) => "server ? (give --pid)".to_owned(),
            (Some(p), [] | [_]) => format!("server {p:.0}%"),
            (Some(p), each) => format!(
                "nodes {p:.0}% ({})",
                each.iter()
                    .map(|p| format!("{p:.0}"))
                    .collect::<Vec<_>>()
                    .join(" + ")
            ),
        };
        let also: String = self
            .also_pct
            .iter()
            .map(|(label, p)| format!(", {label} {p:.0}%"))
            .collect();
        format!(
            "{bench}, {server}{also} of one core, over {:.1} s",
            self.seconds
        )
    }
}

impl CpuWindow {
    /// Starts a window over this process and `workers` (the bench), and `watched`.
    pub fn start(workers: &[u32], watched: &Watched) -> CpuWindow {
        let machine = MachineTicks::now();
        let mut bench_pids = vec![std::process::id()];
        bench_pids.extend_from_slice(workers);
        CpuWindow {
            started: Instant::now(),
            bench: bench_pids
                .into_iter()
                .map(|p| (p, cpu_time(p).unwrap_or_default()))
                .collect(),
            servers: watched.servers.iter().map(|&p| (p, cpu_time(p))).collect(),
            also: watched
                .also
                .iter()
                .map(|(label, p)| (label.clone(), *p, cpu_time(*p)))
                .collect(),
            machine,
        }
    }

    /// The CPU used since the window started.
    pub fn finish(&self) -> CpuShare {
        let seconds = self.started.elapsed().as_secs_f64().max(1e-9);
        let pct = |used: Duration| used.as_secs_f64() / seconds * 100.0;
        let used = |pid: u32, then: Duration| cpu_time(pid).map(|now| now.saturating_sub(then));
        let bench: Vec<Duration> = self
            .bench
            .iter()
            .map(|&(pid, then)| used(pid, then).unwrap_or_default())
            .collect();
        let servers: Option<Vec<Duration>> = self
            .servers
            .iter()
            .map(|&(pid, then)| used(pid, then?))
            .collect();
        let servers = servers.filter(|s| !s.is_empty());
        let server_total = servers.as_ref().map(|s| s.iter().sum::<Duration>());
        let also: Vec<(String, Duration)> = self
            .also
            .iter()
            .filter_map(|(label, pid, then)| Some((label.clone(), used(*pid, (*then)?)?)))
            .collect();
        let ours = bench.iter().sum::<Duration>()
            + server_total.unwrap_or_default()
            + also.iter().map(|(_, d)| *d).sum::<Duration>();
        let machine = self
            .machine
            .zip(MachineTicks::now())
            .map(|(before, after)| MachineShare::between(&before, &after, seconds, ours));
        CpuShare {
            seconds,
            bench_pct: pct(bench.iter().sum()),
            bench_processes: bench.len(),
            bench_busiest_pct: bench.iter().map(|&d| pct(d)).fold(0.0, f64::max),
            server_pct: server_total.map(pct),
            server_cpu_s: server_total.map(|d| d.as_secs_f64()),
            servers_pct: servers
                .map(|s| s.into_iter().map(pct).collect())
                .unwrap_or_default(),
            also_pct: also.into_iter().map(|(l, d)| (l, pct(d))).collect(),
            machine,
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
    fn histograms_merge_across_processes() {
        // Two workers' latencies, carried as pairs and added up, give the percentiles of all.
        let (mut a, mut b, mut all) = (micros_histogram(), micros_histogram(), micros_histogram());
        for ms in 1..=60 {
            record(&mut a, Duration::from_millis(ms));
            record(&mut all, Duration::from_millis(ms));
        }
        for ms in 61..=100 {
            record(&mut b, Duration::from_millis(ms));
            record(&mut b, Duration::from_millis(ms));
            record(&mut all, Duration::from_millis(ms));
            record(&mut all, Duration::from_millis(ms));
        }
        let wire = serde_json::to_string(&histogram_counts(&b)).unwrap();
        let mut merged = micros_histogram();
        add_counts(&mut merged, &histogram_counts(&a));
        add_counts(
            &mut merged,
            &serde_json::from_str::<Vec<(u64, u64)>>(&wire).unwrap(),
        );
        assert_eq!(merged.len(), 140);
        let (m, e) = (Latency::of(&merged), Latency::of(&all));
        assert_eq!(
            (m.p50_ms, m.p90_ms, m.p99_ms, m.max_ms),
            (e.p50_ms, e.p90_ms, e.p99_ms, e.max_ms)
        );
        assert!((m.p50_ms - 65.0).abs() < 0.1, "{m:?}");
        assert!(histogram_counts(&micros_histogram()).is_empty());
    }

    #[test]
    fn labeled_pids() {
        assert_eq!(parse_labeled_pid("redis=42"), Ok(("redis".to_owned(), 42)));
        assert_eq!(parse_labeled_pid(" db = 7 "), Ok(("db".to_owned(), 7)));
        assert!(parse_labeled_pid("42").is_err());
        assert!(parse_labeled_pid("=42").is_err());
        assert!(parse_labeled_pid("redis=x").is_err());
        assert!(parse_labeled_pid("redis=").is_err());
    }

    #[test]
    fn memory_and_cpu_sum_over_processes() {
        let me = std::process::id();
        let one = rss_kib(me).unwrap();
        let twice = rss_kib_sum(&[me, me]).unwrap();
        // Allocations between the readings move it a little.
        assert!(twice.abs_diff(2 * one) < one / 2, "{one} {twice}");
        assert_eq!(rss_kib_sum(&[]), None);
        assert_eq!(rss_kib_sum(&[me, u32::MAX]), None, "a process gone");
        let watched = Watched {
            servers: vec![me, me],
            also: vec![("self".to_owned(), me), ("gone".to_owned(), u32::MAX)],
        };
        assert!(watched.server_cpu().is_some());
        assert_eq!(Watched::default().server_cpu(), None);
        assert_eq!(watched.also_rss_kib().keys().collect::<Vec<_>>(), ["self"]);
        let window = CpuWindow::start(&[], &watched);
        let spin = Instant::now();
        while spin.elapsed() < Duration::from_millis(30) {}
        let share = window.finish();
        assert_eq!(share.servers_pct.len(), 2);
        assert_eq!(share.bench_processes, 1);
        assert!(share.server_pct.unwrap() > 0.0);
        assert!(share.also_pct.contains_key("self") && !share.also_pct.contains_key("gone"));
        let text = share.text();
        assert!(
            text.starts_with("bench ") && text.contains("nodes ") && text.contains(", self "),
            "{text}"
        );
    }

    #[test]
    fn machine_ticks_from_proc_stat() {
        let stat = "cpu  100 5 40 800 10 1 9 2 0 0\ncpu0 50 2 20 400 5 1 4 1 0 0\ncpu1 50 3 20 400 5 0 5 1 0 0\nintr 1\n";
        let ticks = MachineTicks::parse(stat).unwrap();
        assert_eq!(
            ticks,
            MachineTicks {
                cores: 2,
                user: 105,
                system: 40,
                interrupts: 10,
                idle: 810,
                steal: 2
            }
        );
        assert_eq!(MachineTicks::parse("intr 1\n"), None);
        assert!(MachineTicks::now().is_some_and(|t| t.cores >= 1));
    }

    #[test]
    fn table_aligns_values() {
        let mut table = Table::default();
        table.row("a", 1).row("longer", "x");
        assert_eq!(table.render(), "a       1\nlonger  x\n");
    }
}
