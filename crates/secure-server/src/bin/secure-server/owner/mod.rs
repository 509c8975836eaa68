//! The owner's command-line tools, behind the binary's subcommands:
//! `secure-server tokens ...` edits `secureconfig.json` (through
//! [`secure_server::config::edit`]), and `secure-server admin ...` acts on a running server
//! through its owner API under `/admin/`.
//!
//! The binary parses a [`Command`] with clap and calls [`run`]. What a script wants (a new
//! token, tables, `--json` answers) goes to stdout; explanations for people go to stderr, so
//! that `TOKEN=$(secure-server tokens add)` holds just the token. No token is ever logged, and
//! only a newly made one is ever printed whole.
//!
//! Its parts:
//! - this file: the subcommands ([`Command`]), what they share ([`Context`], [`OwnerError`],
//!   the config file, the running server's address), and [`run`].
//! - `tokens`: `tokens add|list|show|revoke`, on the config file.
//! - `admin`: `admin ...`, through `admin_client`, the owner API's HTTP client.
//! - `cert`: `cert self-signed`.
//! - `history`: `history clear`, through the owner API or on the history file.
//! - `check`: `check`, the config validated and the settings in force shown.
//! - `table` and `output`: what is printed, for scripts (stdout) and for people (stderr).

mod admin;
mod admin_client;
mod cert;
mod check;
mod history;
mod output;
mod table;
mod tokens;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use secure_server::config::edit::{ConfigFile, EditError};
use secure_server::config::{Config, Role};
use serde_json::Value;

use admin::AdminArgs;
use admin_client::AdminError;
use cert::CertCommand;
use history::HistoryCommand;
use tokens::TokensCommand;

/// What the binary can do besides serving.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add, list, show and revoke tokens in the config file; a running server picks changes up
    /// by itself
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Act on a running server through its owner API under /admin/ (on when `admin_key` is set
    /// in its config)
    Admin(AdminArgs),
    /// Certificates for `tls`
    #[command(subcommand)]
    Cert(CertCommand),
    /// The room's kept history
    #[command(subcommand)]
    History(HistoryCommand),
    /// Check the config file and print the settings in force, secrets masked (exit 0 if the
    /// server would start on it, 1 if not)
    Check,
}

/// The token to make: a user token with an optional label, or a bot's.
#[derive(Debug, Clone, Args)]
pub struct NewToken {
    /// A name for the token, to tell tokens apart and revoke one without writing it.
    #[arg(long, value_name = "TEXT", conflicts_with = "bot")]
    pub label: Option<String>,
    /// What its holder may do.
    #[arg(long, value_enum, default_value_t = RoleArg::User)]
    pub role: RoleArg,
    /// Make a bot token for the bot called NAME (it logs in with `botauth`).
    #[arg(long, value_name = "NAME")]
    pub bot: Option<String>,
}

/// A [`Role`] on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// Chat only.
    User,
    /// May also kick, ban and unban users.
    Mod,
    /// May do what a mod may, to mods as well.
    Admin,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Role {
        match role {
            RoleArg::User => Role::User,
            RoleArg::Mod => Role::Mod,
            RoleArg::Admin => Role::Admin,
        }
    }
}

/// What the subcommands share with the server: the config file and the overrides of the
/// command line.
#[derive(Debug, Clone)]
pub struct Context {
    /// The config file (`--config`).
    pub config: PathBuf,
    /// `--port`: the running server's port, instead of the config's.
    pub port: Option<u16>,
    /// `--bind`: the running server's address, instead of the config's.
    pub bind: Option<IpAddr>,
}

/// Why a subcommand failed. The binary prints it and exits with status 1.
#[derive(Debug, thiserror::Error)]
pub enum OwnerError {
    /// Reading, changing or writing the config file.
    #[error(transparent)]
    Edit(#[from] EditError),
    /// Calling the owner API.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The config file does not exist.
    #[error("{0}: no such file; start the server once to create it, or name another with --config")]
    NoConfig(PathBuf),
    /// stdout, stderr or stdin failed.
    #[error("cannot {0}: {1}")]
    Terminal(&'static str, std::io::Error),
    /// A certificate could not be made or written.
    #[error("cannot write the certificate: {0}")]
    Certificate(String),
    /// The history file could not be cleared.
    #[error("cannot clear the history: {0}")]
    History(String),
    /// The runtime for the HTTP calls could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// Runs a subcommand to the end.
///
/// # Errors
/// [`OwnerError`], with a message that names what failed (the file, the URL, the token's label).
pub fn run(command: Command, context: &Context) -> Result<(), OwnerError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(OwnerError::Runtime)?;
    runtime.block_on(async {
        match command {
            Command::Tokens(command) => tokens::tokens(command, context).await,
            Command::Admin(args) => admin::admin(args, context).await,
            Command::Cert(CertCommand::SelfSigned { hosts, out_dir }) => {
                cert::self_signed(hosts, &out_dir)
            }
            Command::History(command) => history::history(command, context).await,
            Command::Check => check::check(context),
        }
    })
}

/// Opens the config file, with a hint when there is none.
pub(super) fn open(path: &Path) -> Result<(ConfigFile, Value), OwnerError> {
    ConfigFile::open(path).map_err(|e| match e {
        EditError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            OwnerError::NoConfig(path.to_owned())
        }
        e => e.into(),
    })
}

/// A positional token argument; `-` reads it from stdin (so that it stays out of the shell's
/// history and the process list).
pub(super) fn argument(given: String) -> Result<String, OwnerError> {
    if given != "-" {
        return Ok(given);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| OwnerError::Terminal("read stdin", e))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Where a tool on this machine reaches the server started from the config at `path`: where
/// the running server says it listens (its `.listening` file beside the config), else the
/// config's bind address and port; loopback when it listens on every address. `--bind` and
/// `--port` override both.
pub fn server_addr(
    path: &Path,
    config: &Config,
    port: Option<u16>,
    bind: Option<IpAddr>,
) -> SocketAddr {
    let running = std::fs::read_to_string(secure_server::listening_file(path))
        .ok()
        .and_then(|text| text.trim().parse::<SocketAddr>().ok());
    match running {
        Some(addr) if port.is_none() && bind.is_none() => {
            let mut at = config.clone();
            at.bind = addr.ip();
            local_addr(&at, Some(addr.port()), None)
        }
        _ => local_addr(config, port, bind),
    }
}

/// Where a tool on this machine reaches the server: its bind address, or loopback when it
/// listens on every address; its port. `--bind` and `--port` override the config.
pub fn local_addr(config: &Config, port: Option<u16>, bind: Option<IpAddr>) -> SocketAddr {
    let ip = match bind.unwrap_or(config.bind) {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, port.unwrap_or(config.port))
}

pub(super) fn http_client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    // No proxy: these calls go to this machine, and the admin key must not pass a proxy.
    reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .build()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::admin::AdminAction;
    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Command,
    }

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("secure-server").chain(args.iter().copied()))
            .map(|c| c.command)
    }

    #[test]
    fn tokens_arguments() {
        let Command::Tokens(TokensCommand::Add { new, json }) =
            parse(&["tokens", "add", "--label", "alice", "--role", "mod"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(new.label.as_deref(), Some("alice"));
        assert_eq!(new.role, RoleArg::Mod);
        assert!(!json);
        assert!(parse(&["tokens", "add", "--role", "boss"]).is_err());
        assert!(parse(&["tokens", "add", "--bot", "b", "--label", "l"]).is_err());
        assert!(parse(&["tokens", "show"]).is_err());
        assert!(parse(&["tokens"]).is_err());
    }

    #[test]
    fn admin_arguments() {
        let Command::Admin(args) = parse(&[
            "admin",
            "--key",
            "k",
            "ban",
            "bob",
            "--minutes",
            "5",
            "--json",
        ])
        .unwrap() else {
            panic!()
        };
        assert!(args.json);
        assert!(matches!(
            args.action,
            AdminAction::Ban {
                minutes: Some(5),
                reason: None,
                ..
            }
        ));
        assert!(parse(&["admin", "unban"]).is_err(), "needs a target");
        assert!(parse(&["admin", "unban", "--username", "a", "--label", "b"]).is_err());
        assert!(parse(&["admin", "unban", "--label", "b"]).is_ok());
        assert!(parse(&["admin", "add-token", "--bot", "b", "--role", "admin"]).is_ok());
    }

    #[test]
    fn local_addr_is_loopback_for_any_address() {
        let config = Config::default();
        assert_eq!(
            local_addr(&config, Some(7070), None).to_string(),
            "127.0.0.1:7070"
        );
        assert_eq!(
            local_addr(&config, None, Some("::".parse().unwrap())).to_string(),
            "[::1]:70"
        );
        assert_eq!(
            local_addr(&config, None, Some("10.1.2.3".parse().unwrap())).to_string(),
            "10.1.2.3:70"
        );
    }
}
