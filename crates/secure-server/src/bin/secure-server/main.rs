//! `secure-server`: runs a CLIChat Secure Server from `secureconfig.json`, or one of the owner's
//! tools (`tokens`, `admin`, `cert`), which live beside this file, in `owner/`.
//!
//! The server itself is the library (`secure_server`): this file parses the arguments, sets up
//! logging, loads (or creates) the config, binds, and calls [`secure_server::run_from_file`].

mod owner;

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use secure_server::config::{self, Config};
use secure_server::limits;
use secure_server::shutdown::Signals;
use tracing_subscriber::EnvFilter;

/// CLIChat Secure Server: chat over WebSocket with SAUTH2 logins, bots and one user per token,
/// token pages and chat on one port.
///
/// Without a subcommand it runs the server; `tokens` and `admin` are the owner's tools.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The config file. If there is none at this path, the server creates one with the defaults
    /// and a freshly generated token, which is printed once.
    #[arg(
        long,
        short,
        value_name = "PATH",
        default_value = "secureconfig.json",
        global = true
    )]
    config: PathBuf,
    /// Port to listen on (overrides `port` in the config; default 70). For `tokens` and
    /// `admin`: the running server's port.
    #[arg(long, short, global = true)]
    port: Option<u16>,
    /// Address to listen on (overrides `bind` in the config; default 0.0.0.0). For `tokens`
    /// and `admin`: the running server's address.
    #[arg(long, value_name = "ADDR", global = true)]
    bind: Option<IpAddr>,
    /// How log lines are written to stderr: `text` for people, or `json` (one JSON object a
    /// line, with the same fields) for a log collector.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    log_format: LogFormat,
    /// The owner's tools; without one, the server runs.
    #[command(subcommand)]
    command: Option<owner::Command>,
}

/// The format of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// `2026-12-01T12:00:00Z  INFO secure_server::session: logged in peer=... name="alice"`.
    Text,
    /// `{"timestamp":"...","level":"INFO","target":"secure_server::session","message":"logged in","name":"\"alice\""}`.
    Json,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(log_filter())
        .with_writer(std::io::stderr)
        // A closed stderr must not take the server down: tracing would report the failed
        // write with eprintln!, which panics when stderr is gone.
        .log_internal_errors(false);
    match args.log_format {
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => logs.json().flatten_event(true).with_ansi(false).init(),
    }
    if let Some(command) = args.command {
        let context = owner::Context {
            config: args.config,
            port: args.port,
            bind: args.bind,
        };
        return match owner::run(command, &context) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                let _ = writeln!(std::io::stderr(), "secure-server: {error}");
                ExitCode::FAILURE
            }
        };
    }
    match start(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("secure-server: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `RUST_LOG` (default `info`), except that the WebSocket library never logs: at trace level it
/// prints whole frames, tokens included, and no level may log a token.
fn log_filter() -> EnvFilter {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    ["tungstenite=off", "tokio_tungstenite=off"]
        .into_iter()
        .filter_map(|directive| directive.parse().ok())
        .fold(filter, EnvFilter::add_directive)
}

fn start(args: Args) -> anyhow::Result<()> {
    let (mut config, created) = config::load_or_create(&args.config)?;
    if let Some(created) = created {
        // Written to the terminal, not the log, and only this once. A closed stdout loses
        // nothing: the token is in the file.
        let _ = writeln!(
            std::io::stdout(),
            "Created {} with the default settings and a new generic token:\n\n    {}\n\n\
             Users log in with it. It is printed only this once; it is kept in that file.",
            args.config.display(),
            created.token
        );
    }
    let stale = config.tokens_with_runtime_fields();
    if stale > 0 {
        tracing::warn!(
            tokens = stale,
            "the original's runtime fields `inuse`/`count` are ignored"
        );
    }
    if let Some(port) = args.port {
        config.port = port;
    }
    if let Some(bind) = args.bind {
        config.bind = bind;
    }

    report_connection_capacity(&config);

    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let signals = Signals::install().context("cannot install the SIGINT/SIGTERM handlers")?;
        let listener = bind(&config).await?;
        secure_server::run_from_file(listener, config, args.config, signals.recv()).await?;
        Ok(())
    })
}

/// Raises the open-file limit as far as allowed and says how many connections it allows: each
/// connection is one open file, and past the limit the server answers 503 instead of failing.
fn report_connection_capacity(config: &Config) {
    if let Err(error) = limits::raise_open_file_limit() {
        tracing::warn!(%error, "cannot raise the open-file limit");
    }
    let configured = config.limits.max_connections;
    match limits::open_file_capacity() {
        Some(capacity) => tracing::info!(
            capacity,
            configured,
            reserved = limits::RESERVED_FILES,
            "the open-file limit allows {capacity} connections; more are refused with HTTP 503"
        ),
        None => tracing::info!(configured, "no open-file limit"),
    }
}

async fn bind(config: &Config) -> anyhow::Result<tokio::net::TcpListener> {
    let addr = SocketAddr::new(config.bind, config.port);
    tokio::net::TcpListener::bind(addr).await.map_err(|error| {
        let hint = match error.kind() {
            std::io::ErrorKind::AddrInUse => format!(
                "port {} is already in use on {}; stop the other server or choose another port with --port",
                config.port, config.bind
            ),
            std::io::ErrorKind::PermissionDenied => format!(
                "no permission to listen on port {} (ports below 1024 need root or CAP_NET_BIND_SERVICE); \
                 choose another port with --port, e.g. --port 7070",
                config.port
            ),
            _ => format!("cannot listen on {addr}"),
        };
        anyhow::Error::new(error).context(hint)
    })
}
