//! `clichat-bench`: a load generator for CLIChat servers, this project's and the original.
//!
//! It speaks the real protocol (the frames of `clichat-proto`), including the full SAUTH2 login:
//! `auth`, an HTTP GET of the token page the `authmsg` link names, then `tokenauth`. Scenarios:
//! `fanout` (deliveries per second and latency in one busy room), `logins` (SAUTH2 logins per
//! second while the room fills), `hold` (many connections at once: the server's memory per
//! connection, and whether a message still reaches all of them), `junk` (what connections that
//! send ignored frames as fast as they can cost the server), `resume` (every connection cut at once
//! without a close frame: resumes per second, and no message lost or seen twice). `config N` writes a
//! `secureconfig.json` with enough tokens for the runs.
//!
//! Logins go through the client library (`clichat-client`); after login the bench takes the raw
//! tokio-tungstenite socket from it for the fast paths. The tool must not be what saturates
//! first: receivers count frames by their first bytes and decode only a sample (see [`pool`]);
//! every report gives the CPU split between the bench and the server (`--pid`) so a reader can
//! tell which one was the limit.
//!
//! # Layout
//! - [`login`]: SAUTH2 and bot logins through the client library, on a TCP connection from a
//!   chosen local address, each step timed; the token page fetched as a person would.
//! - [`creds`]: the config generator, and the tokens and bots of a config.
//! - [`pool`]: connections that log in at a set concurrency and keep reading, with counters.
//! - [`worker`]: shares of the connections held in worker processes (past one process's
//!   open-file limit), driven over JSON lines.
//! - [`fanout`], [`logins`], [`hold`], [`junk`], [`resume`]: the scenarios.
//! - [`report`]: tables, latency summaries, CPU and memory from `/proc`.

mod creds;
mod fanout;
mod hold;
mod junk;
mod login;
mod logins;
mod pool;
mod report;
mod resume;
mod worker;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::creds::{Credential, Credentials, LoginMode};
use crate::login::Target;

/// Load generator for CLIChat servers (this project's secure-server, or the original).
///
/// Every scenario prints a table, or one JSON object with --json. Exit status: 0 when the run
/// completed cleanly, 2 when it completed with losses or failures, 1 when it could not run.
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// R receivers and S senders in the one room, each sender at a set rate for a set time:
    /// messages sent, deliveries received and expected, deliveries/s, latency.
    Fanout(FanoutArgs),
    /// N logins at a set concurrency, all kept open: logins/s overall and per tenth, failures by
    /// reason.
    Logins(LoginsArgs),
    /// Log in N connections and keep them: the server's memory per connection (with --pid), and
    /// whether one message from an extra connection reaches all of them.
    Hold(HoldArgs),
    /// C connections send frames the server ignores as fast as they can, reconnecting whenever
    /// closed: frames sent, how the server ended the connections, and its CPU (with --pid).
    Junk(JunkArgs),
    /// N receivers with history and resume, a sender sending numbered messages, and all N TCP
    /// connections cut at once halfway (no close frame): resumes/s, resume time, and messages
    /// lost or seen twice (both must be 0).
    Resume(ResumeArgs),
    /// Write a secureconfig.json with N generic tokens and N bots (b0, b1, ...), 1UPT on, and
    /// the server's abuse limits lifted for benchmarking.
    Config(ConfigArgs),
    /// One worker process of `hold` or `fanout` (started by them).
    #[command(hide = true)]
    Worker(WorkerArgs),
}

/// Options every scenario shares.
#[derive(Debug, Clone, Args)]
struct Common {
    /// The server: HOST, HOST:PORT (port 70 when left out) or ws://HOST:PORT/PATH. Plain ws only.
    /// Several, comma-separated, are the nodes of one cluster that share one room: connection i
    /// goes to node i mod n, and each SAUTH2 token page is fetched from its connection's node.
    /// (Give --pid every node's process id.)
    #[arg(
        long,
        short,
        visible_alias = "addr",
        value_delimiter = ',',
        value_name = "ADDR,...",
        default_value = "127.0.0.1:70"
    )]
    server: Vec<String>,
    /// The secureconfig.json whose `tokens` and `bots` the connections log in with (the
    /// server's own, or one written by `clichat-bench config N`).
    #[arg(long, short, value_name = "PATH", default_value = "secureconfig.json")]
    config: PathBuf,
    /// How connections log in: full SAUTH2 (auth, token page, tokenauth) or as bots.
    #[arg(long, value_enum, default_value_t = LoginMode::Sauth2)]
    login: LoginMode,
    /// Logins in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// SAUTH2 usernames are PREFIX0, PREFIX1, ... (at most 15 characters in all).
    #[arg(long, default_value = "bench")]
    name_prefix: String,
    /// Local addresses to connect from, round-robin (comma-separated). Default: 127.0.0.2 to
    /// 127.0.0.9 when the server is on a loopback address (each has its own ephemeral ports),
    /// else the OS's choice.
    #[arg(long, value_delimiter = ',', value_name = "IP,...")]
    source: Vec<IpAddr>,
    /// Let the OS choose the local address of every connection.
    #[arg(long, conflicts_with = "source")]
    no_source: bool,
    /// Seconds each login step (upgrade, authmsg, page, id) may take.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    step_timeout: u64,
    /// Protocol extensions each connection asks for (`history`, `presence`, comma-separated).
    /// Default: none, the original protocol. With `history`, every login gets the room's
    /// history and every message its number; with `presence`, every login gets the member list.
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    caps: Vec<String>,
    /// The server's process id: its CPU use (and for `hold` and `fanout`, its memory) is
    /// reported. Several, comma-separated (the nodes of a cluster), are summed, and each node's
    /// CPU is shown too.
    #[arg(long, value_delimiter = ',', value_name = "PID,...")]
    pid: Vec<u32>,
    /// Another process to report beside the server, e.g. the cluster's Redis: `redis=PID`. Its
    /// CPU use over each measured window (and for `fanout`, its memory) is reported under the
    /// label. May be repeated.
    #[arg(long, value_name = "LABEL=PID", value_parser = report::parse_labeled_pid)]
    also_pid: Vec<(String, u32)>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

impl Common {
    /// The arguments that give a worker process the same setup.
    fn worker_args(&self) -> Vec<String> {
        let mut args = vec![
            "--server".to_owned(),
            self.server.join(","),
            "--config".to_owned(),
            self.config.display().to_string(),
            "--login".to_owned(),
            self.login.as_str().to_owned(),
            "--concurrency".to_owned(),
            self.concurrency.to_string(),
            "--name-prefix".to_owned(),
            self.name_prefix.clone(),
            "--step-timeout".to_owned(),
            self.step_timeout.to_string(),
        ];
        if !self.caps.is_empty() {
            args.push("--caps".to_owned());
            args.push(self.caps.join(","));
        }
        if self.no_source {
            args.push("--no-source".to_owned());
        } else if !self.source.is_empty() {
            let list: Vec<String> = self.source.iter().map(IpAddr::to_string).collect();
            args.push("--source".to_owned());
            args.push(list.join(","));
        }
        args
    }
}

#[derive(Debug, Args)]
struct FanoutArgs {
    #[command(flatten)]
    common: Common,
    /// Connections that only receive.
    #[arg(long, short, default_value_t = 1000)]
    receivers: usize,
    /// Connections that send (they also receive each other's messages).
    #[arg(long = "senders", short = 'S', default_value_t = 10)]
    senders: usize,
    /// Messages per second per sender; 0 sends as fast as the socket takes them.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Seconds the senders send.
    #[arg(long, short, default_value_t = 10.0)]
    duration: f64,
    /// The longest wait, in seconds, for deliveries in flight after the senders stop.
    #[arg(long, default_value_t = 10.0)]
    drain: f64,
    /// Time one message frame in this many (per receiver), so that timing costs little.
    #[arg(long, default_value_t = 64)]
    sample_every: u64,
    /// After the steady sending (if any: `-d 0` skips it), the senders send N messages at once,
    /// split between them, and the run reports the time until every connection has all of
    /// them, and their latency.
    #[arg(long, value_name = "N", default_value_t = 0)]
    burst: u64,
    /// Worker processes to split the receivers over (each process may open at most
    /// `ulimit -Hn` files); 0 holds them in this process. The senders stay in this process.
    /// Default: 0 up to 10,000 connections in all, else one per 10,000 receivers.
    #[arg(long)]
    workers: Option<usize>,
    /// Seconds to wait at most, after the logins, for the server to be idle (below 10% of a core
    /// per --pid) before sending; the nodes' memory is read after it.
    #[arg(long, default_value_t = 30.0)]
    settle_max: f64,
}

#[derive(Debug, Args)]
struct LoginsArgs {
    #[command(flatten)]
    common: Common,
    /// Logins to make (all kept open until the end).
    #[arg(long, short = 'n', default_value_t = 15_000)]
    count: usize,
    /// Seconds to wait after the last login before counting who is still open.
    #[arg(long, default_value_t = 1.0)]
    settle: f64,
}

#[derive(Debug, Args)]
struct HoldArgs {
    #[command(flatten)]
    common: Common,
    /// Connections to hold (the config needs one credential more, for the probe).
    #[arg(long, short = 'n', default_value_t = 19_000)]
    count: usize,
    /// Worker processes to split the connections over (each process may open at most
    /// `ulimit -Hn` files); 0 holds them all in this process. Default: one per 10,000.
    #[arg(long)]
    workers: Option<usize>,
    /// Seconds to wait after the last login before measuring the server's memory; with --pid
    /// the wait goes on while the server is still busy, up to --settle-max.
    #[arg(long, default_value_t = 2.0)]
    settle: f64,
    /// See --settle.
    #[arg(long, default_value_t = 120.0)]
    settle_max: f64,
    /// Seconds the probe message may take to reach everyone.
    #[arg(long, default_value_t = 30.0)]
    probe_timeout: f64,
}

#[derive(Debug, Args)]
struct JunkArgs {
    #[command(flatten)]
    common: Common,
    /// Connections sending junk at once.
    #[arg(long = "connections", short = 'n', default_value_t = 1)]
    connections: usize,
    /// Bytes of each junk frame.
    #[arg(long, default_value_t = 11_000)]
    size: usize,
    /// Seconds to send.
    #[arg(long, short, default_value_t = 5.0)]
    duration: f64,
    /// Log in first (see --login), and send the junk from inside the room.
    #[arg(long)]
    logged_in: bool,
}

#[derive(Debug, Args)]
struct ResumeArgs {
    #[command(flatten)]
    common: Common,
    /// Receivers, all cut at once.
    #[arg(long, short, default_value_t = 1000)]
    receivers: usize,
    /// Messages the sender sends (at least 2); the cut comes after half of them.
    #[arg(long, short, default_value_t = 200)]
    messages: usize,
    /// Messages per second.
    #[arg(long, default_value_t = 100.0)]
    rate: f64,
    /// Seconds to wait for the receivers after the last message (and for the first half
    /// before the cut).
    #[arg(long, default_value_t = 30.0)]
    drain: f64,
}

#[derive(Debug, Args)]
struct ConfigArgs {
    /// Generic tokens and bots to write.
    count: usize,
    /// Where to write.
    #[arg(long, short, default_value = "secureconfig.json")]
    out: PathBuf,
    /// Replace the file if it exists.
    #[arg(long)]
    force: bool,
    /// Turn 1UPT off (tokens may then be shared).
    #[arg(long)]
    no_1upt: bool,
    /// Leave out the `limits` object. By default it lifts the per-address login, page and
    /// connection limits and the per-connection message rate, which a load generator on one
    /// machine trips by design; leave it out for a server that has no `limits` key.
    #[arg(long)]
    no_limits: bool,
    /// Set the server's `announce_presence_up_to`: joins and departures are then announced
    /// only while the room has at most N members, so that a login storm does not cost N²
    /// join frames.
    #[arg(long, value_name = "N")]
    announce_presence_up_to: Option<usize>,
    /// Write no generic tokens, only the N bots: for runs with `--login bot`, so that the
    /// server's config holds no more credentials than the run uses.
    #[arg(long)]
    bots_only: bool,
    /// Write the configs of a cluster's nodes on this Redis (`redis://HOST:PORT/DB`): one file
    /// per node, the same tokens and bots in each, with `"cluster": {"redis": URL, "node_id":
    /// "nK"}`. The files are --out with `-n1`, `-n2`, ... before its extension.
    #[arg(long, value_name = "URL")]
    cluster: Option<String>,
    /// Nodes to write configs for, with --cluster.
    #[arg(long, default_value_t = 3, requires = "cluster")]
    nodes: usize,
}

#[derive(Debug, Args)]
struct WorkerArgs {
    #[command(flatten)]
    common: Common,
    /// The first credential number of this worker's share.
    #[arg(long)]
    offset: usize,
    /// Connections in this worker's share.
    #[arg(long)]
    count: usize,
    /// The text the probe message carries, if the parent sends one.
    #[arg(long)]
    marker: Option<String>,
    /// The run's epoch, in nanoseconds since the Unix epoch: message send times count from it.
    #[arg(long)]
    epoch_ns: u64,
    /// Time one message frame in this many; 0 times none.
    #[arg(long, default_value_t = 0)]
    sample_every: u64,
}

impl WorkerArgs {
    fn spec(&self) -> worker::ShareSpec {
        worker::ShareSpec {
            range: self.offset..self.offset + self.count,
            marker: self.marker.clone(),
            epoch: pool::Epoch::from_unix_nanos(self.epoch_ns),
            sample_every: self.sample_every,
        }
    }
}

/// What every scenario works with: where to connect and what to log in with.
#[derive(Debug)]
pub struct Setup {
    /// The server: its nodes, and how to connect.
    pub target: Arc<Target>,
    /// The config's tokens and bots.
    pub creds: Arc<Credentials>,
    /// SAUTH2 or bot logins.
    pub mode: LoginMode,
    /// Username prefix.
    pub prefix: String,
    /// Logins in flight at once.
    pub concurrency: usize,
    /// The server's processes, and others to report beside it.
    pub watched: report::Watched,
}

impl Setup {
    async fn new(common: &Common) -> anyhow::Result<Setup> {
        let sources = if common.no_source {
            Some(Vec::new())
        } else if common.source.is_empty() {
            None
        } else {
            Some(common.source.clone())
        };
        let step_timeout = Duration::from_secs(common.step_timeout.max(1));
        let mut target = Target::new(&common.server, sources, step_timeout).await?;
        target.caps.clone_from(&common.caps);
        Ok(Setup {
            target: Arc::new(target),
            creds: Arc::new(Credentials::load(&common.config)?),
            mode: common.login,
            prefix: common.name_prefix.clone(),
            concurrency: common.concurrency.max(1),
            watched: report::Watched {
                servers: common.pid.clone(),
                also: common.also_pid.clone(),
            },
        })
    }

    /// The credential of connection number `index`.
    pub fn credential(&self, index: usize) -> Credential {
        self.creds.get(self.mode, index, &self.prefix)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(error) => {
            eprintln!("clichat-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a command; `Ok(false)` when a scenario completed but found losses or failures.
fn run(cli: Cli) -> anyhow::Result<bool> {
    if let Command::Config(args) = &cli.command {
        write_configs(args)?;
        return Ok(true);
    }
    report::raise_open_files_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        match cli.command {
            Command::Fanout(args) => {
                let setup = Setup::new(&args.common).await?;
                let params = fanout::Params {
                    receivers: args.receivers,
                    senders: args.senders,
                    rate: args.rate.max(0.0),
                    duration: secs(args.duration),
                    drain: secs(args.drain),
                    sample_every: args.sample_every,
                    burst: args.burst,
                    workers: args.workers,
                    settle_max: secs(args.settle_max),
                };
                let report = fanout::run(&setup, &params, &args.common.worker_args()).await?;
                output(&report, report.table(), args.common.json, report.ok)
            }
            Command::Logins(args) => {
                let setup = Setup::new(&args.common).await?;
                let report = logins::run(&setup, args.count, secs(args.settle)).await?;
                output(&report, report.table(), args.common.json, report.ok)
            }
            Command::Hold(args) => {
                let setup = Setup::new(&args.common).await?;
                let params = hold::Params {
                    count: args.count,
                    workers: args.workers,
                    settle: secs(args.settle),
                    settle_max: secs(args.settle_max),
                    probe_timeout: secs(args.probe_timeout),
                };
                let report = hold::run(&setup, &params, &args.common.worker_args()).await?;
                output(&report, report.table(), args.common.json, report.ok)
            }
            Command::Junk(args) => {
                let setup = Arc::new(Setup::new(&args.common).await?);
                let params = junk::Params {
                    connections: args.connections.max(1),
                    size: args.size,
                    duration: secs(args.duration),
                    logged_in: args.logged_in,
                };
                let report = junk::run(&setup, &params).await?;
                output(&report, report.table(), args.common.json, report.ok)
            }
            Command::Resume(mut args) => {
                for cap in ["history", "resume"] {
                    if !args.common.caps.iter().any(|c| c == cap) {
                        args.common.caps.push(cap.to_owned());
                    }
                }
                let setup = Setup::new(&args.common).await?;
                let params = resume::Params {
                    receivers: args.receivers.max(1),
                    messages: args.messages.max(2),
                    rate: args.rate.max(0.001),
                    drain: secs(args.drain),
                };
                let report = resume::run(&setup, &params).await?;
                output(&report, report.table(), args.common.json, report.ok)
            }
            Command::Worker(args) => {
                let setup = Setup::new(&args.common).await?;
                worker::worker_main(&setup, &args.spec()).await?;
                Ok(true)
            }
            Command::Config(_) => unreachable!("handled above"),
        }
    })
}

/// The `config` command: one config, or one per node of a cluster.
fn write_configs(args: &ConfigArgs) -> anyhow::Result<()> {
    let mut config = creds::generate_config(args.count, !args.no_1upt, !args.no_limits);
    if let Some(limit) = args.announce_presence_up_to {
        config["announce_presence_up_to"] = limit.into();
    }
    if args.bots_only {
        config["tokens"] = serde_json::json!({});
    }
    let files = match &args.cluster {
        Some(redis) => {
            anyhow::ensure!(args.nodes >= 1, "--nodes must be at least 1");
            creds::cluster_configs(&config, redis, args.nodes, &args.out)
        }
        None => vec![(args.out.clone(), config)],
    };
    for (path, config) in &files {
        creds::write_config(path, config, args.force)?;
    }
    let written: Vec<String> = files.iter().map(|(p, _)| p.display().to_string()).collect();
    println!(
        "wrote {}: {} generic tokens, {} bots (b0..b{}), 1UPT {}, {}{}",
        written.join(", "),
        if args.bots_only { 0 } else { args.count },
        args.count,
        args.count.saturating_sub(1),
        if args.no_1upt { "off" } else { "on" },
        if args.no_limits {
            "no limits key"
        } else {
            "rate limits lifted for benchmarking"
        },
        match &args.cluster {
            Some(redis) => format!(", nodes n1..n{} of the cluster on {redis}", args.nodes),
            None => String::new(),
        }
    );
    Ok(())
}

fn secs(seconds: f64) -> Duration {
    Duration::try_from_secs_f64(seconds).unwrap_or(Duration::ZERO)
}

/// Prints a report as JSON or as its table; returns whether it was clean.
fn output(
    report: &impl Serialize,
    table: report::Table,
    json: bool,
    ok: bool,
) -> anyhow::Result<bool> {
    if json {
        println!("{}", serde_json::to_string(report)?);
    } else {
        print!("{}", table.render());
    }
    Ok(ok)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn common(args: &[&str]) -> Common {
        let cli = Cli::try_parse_from(["clichat-bench", "fanout"].iter().chain(args)).unwrap();
        match cli.command {
            Command::Fanout(args) => args.common,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn one_server_by_default() {
        assert_eq!(common(&[]).server, ["127.0.0.1:70"]);
        assert_eq!(common(&["-s", "127.0.0.1:7070"]).server, ["127.0.0.1:7070"]);
    }

    #[test]
    fn pids_of_every_node_and_labeled_others() {
        let one = common(&["--pid", "17"]);
        assert_eq!(one.pid, [17]);
        assert!(one.also_pid.is_empty());
        let cluster = common(&[
            "--pid",
            "11,12,13",
            "--also-pid",
            "redis=9",
            "--also-pid",
            "proxy=8",
        ]);
        assert_eq!(cluster.pid, [11, 12, 13]);
        assert_eq!(
            cluster.also_pid,
            [("redis".to_owned(), 9), ("proxy".to_owned(), 8)]
        );
        assert!(common(&[]).pid.is_empty());
        for bad in [
            ["--also-pid", "9"],
            ["--also-pid", "redis=x"],
            ["--pid", "a"],
        ] {
            let args = ["clichat-bench", "fanout"].into_iter().chain(bad);
            assert!(Cli::try_parse_from(args).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn fanout_burst_and_workers() {
        let cli = Cli::try_parse_from([
            "clichat-bench",
            "fanout",
            "-S",
            "1",
            "--rate",
            "2",
            "-d",
            "60",
            "--burst",
            "20",
            "--workers",
            "10",
        ])
        .unwrap();
        let Command::Fanout(args) = cli.command else {
            panic!("not fanout")
        };
        assert_eq!((args.senders, args.burst, args.workers), (1, 20, Some(10)));
        assert_eq!((args.rate, args.duration), (2.0, 60.0));
        let Command::Fanout(args) = Cli::try_parse_from(["clichat-bench", "fanout"])
            .unwrap()
            .command
        else {
            panic!("not fanout")
        };
        assert_eq!(
            (args.burst, args.workers),
            (0, None),
            "no burst, workers by size"
        );
    }

    #[test]
    fn a_worker_gets_the_runs_setup_and_its_share() {
        let parent = common(&[
            "-s",
            "127.0.0.1:7001,127.0.0.1:7002",
            "--login",
            "bot",
            "--caps",
            "history",
            "--pid",
            "5",
        ]);
        let spec = worker::ShareSpec {
            range: 3..10,
            marker: None,
            epoch: pool::Epoch::from_unix_nanos(1_234_567_890),
            sample_every: 64,
        };
        let mut args = vec!["clichat-bench".to_owned(), "worker".to_owned()];
        args.extend(parent.worker_args());
        args.extend(spec.args());
        let Command::Worker(worker) = Cli::try_parse_from(args).unwrap().command else {
            panic!("not a worker")
        };
        assert_eq!(worker.common.server, parent.server);
        assert_eq!(worker.common.login, LoginMode::Bot);
        assert_eq!(worker.common.caps, ["history"]);
        assert!(
            worker.common.pid.is_empty(),
            "workers do not measure the server"
        );
        let got = worker.spec();
        assert_eq!(got.range, 3..10);
        assert_eq!(got.epoch, spec.epoch);
        assert_eq!((got.sample_every, got.marker), (64, None));
    }

    #[test]
    fn addr_takes_several_nodes_comma_separated() {
        let nodes = common(&["--addr", "127.0.0.1:7001,127.0.0.1:7002"]);
        assert_eq!(nodes.server, ["127.0.0.1:7001", "127.0.0.1:7002"]);
        let repeated = common(&["--server", "a:1", "--server", "b:2,c:3"]);
        assert_eq!(repeated.server, ["a:1", "b:2", "c:3"]);
        // hold's workers get the same list back as one argument.
        let args = nodes.worker_args();
        let at = args.iter().position(|a| a == "--server").unwrap();
        assert_eq!(args[at + 1], "127.0.0.1:7001,127.0.0.1:7002");
    }
}
