//! The owner's command-line tools, behind the binary's subcommands:
//! `secure-server tokens ...` edits `secureconfig.json` (through [`crate::config::edit`]), and
//! `secure-server admin ...` acts on a running server through its owner API under `/admin/`.
//!
//! The binary parses a [`Command`] with clap and calls [`run`]. What a script wants (a new
//! token, tables, `--json` answers) goes to stdout; explanations for people go to stderr, so
//! that `TOKEN=$(secure-server tokens add)` holds just the token. No token is ever logged, and
//! only a newly made one is ever printed whole.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{ArgGroup, Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use crate::config::edit::{self, ConfigFile, EditError, TokenInfo, TokenKind};
use crate::config::{Config, Role};

/// How long `tokens list` and `tokens show` wait for the running server's `/_status`.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);
/// How long an `admin` request may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The environment variable that holds the admin key.
pub const ADMIN_KEY_ENV: &str = "CLICHAT_ADMIN_KEY";

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
}

/// `secure-server cert ...`.
#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Write a self-signed certificate and key, for testing TLS (clients must be told to trust
    /// it; use a certificate from a real authority for a public server)
    SelfSigned {
        /// A name (or IP address) the certificate is for; repeat for several. Default:
        /// localhost.
        #[arg(long = "host", value_name = "NAME")]
        hosts: Vec<String>,
        /// Where to write cert.pem and key.pem.
        #[arg(long, value_name = "DIR", default_value = ".")]
        out_dir: PathBuf,
    },
}

/// `secure-server tokens ...`.
#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Generate a new token (or bot token), add it to the config file and print it, once
    Add {
        /// What to add.
        #[command(flatten)]
        new: NewToken,
        /// Print `{"token": ..., "kind": ..., ...}` as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List the tokens: kind, label or bot name, role, the token masked, whether it is in use
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show one token (the original's `seetokendata`): given the token, its label or a bot's
    /// name; `-` reads it from stdin
    Show {
        /// The token, its label or a bot's name (`-`: read a line from stdin).
        #[arg(value_name = "TOKEN|LABEL")]
        token_or_label: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove tokens from the config file: the token, every token with that label, or a bot by
    /// its name; `-` reads it from stdin
    Revoke {
        /// The token, its label or a bot's name (`-`: read a line from stdin).
        #[arg(value_name = "TOKEN|LABEL")]
        token_or_label: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
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

/// `secure-server admin ...`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// Base URL of the owner API [default: http://127.0.0.1:PORT/admin/, PORT from the config
    /// or --port]
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// The admin key [default: $CLICHAT_ADMIN_KEY, else `admin_key` in the config]. Other users
    /// of the machine may see command lines: prefer those two.
    #[arg(long, value_name = "KEY")]
    pub key: Option<String>,
    /// Print the API's JSON answer as it is.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub action: AdminAction,
}

/// One call of the owner API.
#[derive(Debug, Subcommand)]
pub enum AdminAction {
    /// List the open chat connections
    Connections,
    /// Disconnect a user
    Kick {
        /// The user's name.
        name: String,
        /// Why (the user is told).
        #[arg(long, value_name = "R")]
        reason: Option<String>,
    },
    /// Ban a user (and disconnect them)
    Ban {
        /// The user's name.
        name: String,
        /// Why (the user is told).
        #[arg(long, value_name = "R")]
        reason: Option<String>,
        /// How long; without it, until unbanned.
        #[arg(long, value_name = "M")]
        minutes: Option<u64>,
    },
    /// Lift bans: on a user name, or on the token with a label
    #[command(group(ArgGroup::new("target").required(true).args(["username", "label"])))]
    Unban {
        /// The banned user's name.
        #[arg(long, value_name = "N")]
        username: Option<String>,
        /// The label of the banned token.
        #[arg(long, value_name = "L")]
        label: Option<String>,
    },
    /// List the configured tokens, with whether each is in use
    Tokens,
    /// Add a token (or bot token) to the running server's config and print it, once
    AddToken(NewToken),
    /// Revoke tokens: the token, every token with that label, or a bot by its name
    Revoke {
        /// The token, its label or a bot's name (`-`: read a line from stdin).
        #[arg(value_name = "TOKEN|LABEL")]
        token_or_label: String,
    },
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
            Command::Tokens(command) => tokens(command, context).await,
            Command::Admin(args) => admin(args, context).await,
            Command::Cert(CertCommand::SelfSigned { hosts, out_dir }) => {
                self_signed(hosts, &out_dir)
            }
        }
    })
}

/// Writes `cert.pem` and `key.pem` (new files only, the key readable by its owner alone) and
/// says how to use and trust them.
fn self_signed(mut hosts: Vec<String>, dir: &Path) -> Result<(), OwnerError> {
    if hosts.is_empty() {
        hosts.push("localhost".to_owned());
    }
    let (cert, key) =
        crate::tls::self_signed(&hosts).map_err(|e| OwnerError::Certificate(e.to_string()))?;
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    for (path, text) in [(&cert_path, &cert), (&key_path, &key)] {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        options
            .open(path)
            .and_then(|mut file| std::io::Write::write_all(&mut file, text.as_bytes()))
            .map_err(|e| OwnerError::Certificate(format!("{}: {e}", path.display())))?;
    }
    let host = &hosts[0];
    let mut out = std::io::stdout();
    std::io::Write::write_all(
        &mut out,
        format!(
            "Wrote {cert} and {key} for {names}.\n\n\
             Use them in secureconfig.json:\n    \"tls\": {{\"cert\": \"{cert}\", \"key\": \"{key}\"}}\n\n\
             They are self-signed: clients must be told to trust {cert}, e.g.\n    \
             secure-client --trust-cert {cert} wss://{host}:70\n    \
             curl --cacert {cert} https://{host}:70/\n\
             For a public server, use a certificate from a real authority (e.g. Let's Encrypt).\n",
            cert = cert_path.display(),
            key = key_path.display(),
            names = hosts.join(", "),
        )
        .as_bytes(),
    )
    .map_err(|e| OwnerError::Terminal("write to stdout", e))
}

async fn tokens(command: TokensCommand, context: &Context) -> Result<(), OwnerError> {
    match command {
        TokensCommand::Add { new, json } => {
            let (file, mut value) = open(&context.config)?;
            let role = Role::from(new.role);
            let (token, info) = match &new.bot {
                Some(name) => {
                    let token = edit::add_bot(&mut value, name, role)?;
                    let info = TokenInfo::bot(&token, name, role);
                    (token, info)
                }
                None => {
                    let label = new.label.as_deref();
                    let token = edit::add_token(&mut value, label, role)?;
                    let info = TokenInfo::user(&token, label, role);
                    (token, info)
                }
            };
            file.save(&value)?;
            print_new_token(
                &token,
                &info,
                json,
                &format!("to {}", file.path().display()),
            )
        }
        TokensCommand::List { json } => {
            let (file, _) = open(&context.config)?;
            let held = held(status_addr(file.config(), context)).await;
            let rows: Vec<_> = edit::list(file.config())
                .into_iter()
                .map(|info| {
                    let in_use = held.in_use(&info);
                    (info, in_use)
                })
                .collect();
            if json {
                return print_json(&Value::Array(
                    rows.iter().map(|(i, u)| with_in_use(i, *u)).collect(),
                ));
            }
            let mut text = if rows.is_empty() {
                format!("No tokens in {}.\n", file.path().display())
            } else {
                token_table(&rows)
            };
            if let Held::Unknown(why) = &held {
                text.push_str(&format!("in use: unknown ({why})\n"));
            }
            print(&text)
        }
        TokensCommand::Show {
            token_or_label,
            json,
        } => {
            let query = argument(token_or_label)?;
            let (file, _) = open(&context.config)?;
            let found = edit::find(file.config(), &query)?;
            let held = held(status_addr(file.config(), context)).await;
            if json {
                return print_json(&Value::Array(
                    found
                        .iter()
                        .map(|i| with_in_use(i, held.in_use(i)))
                        .collect(),
                ));
            }
            let text: Vec<String> = found.iter().map(|i| details(i, &held)).collect();
            print(&text.join("\n"))
        }
        TokensCommand::Revoke {
            token_or_label,
            json,
        } => {
            let query = argument(token_or_label)?;
            let (file, mut value) = open(&context.config)?;
            let revoked = edit::revoke(&mut value, &query)?;
            file.save(&value)?;
            if json {
                return print_json(&json!({ "revoked": revoked }));
            }
            let mut text = String::new();
            for info in &revoked {
                text.push_str(&format!("Revoked {}.\n", describe(info)));
            }
            text.push_str(&format!(
                "Removed from {}; a running server picks the change up by itself.\n",
                file.path().display()
            ));
            print(&text)
        }
    }
}

/// Opens the config file, with a hint when there is none.
fn open(path: &Path) -> Result<(ConfigFile, Value), OwnerError> {
    ConfigFile::open(path).map_err(|e| match e {
        EditError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            OwnerError::NoConfig(path.to_owned())
        }
        e => e.into(),
    })
}

/// A positional token argument; `-` reads it from stdin (so that it stays out of the shell's
/// history and the process list).
fn argument(given: String) -> Result<String, OwnerError> {
    if given != "-" {
        return Ok(given);
    }
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| OwnerError::Terminal("read stdin", e))?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
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

fn status_addr(config: &Config, context: &Context) -> SocketAddr {
    local_addr(config, context.port, context.bind)
}

/// Which tokens the running server holds now, as far as can be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// The fingerprints ([`edit::fingerprint`]) of the held tokens.
    Known(BTreeSet<String>),
    /// Not known, and why.
    Unknown(String),
}

impl Held {
    /// Whether `info`'s token is held, if known.
    pub fn in_use(&self, info: &TokenInfo) -> Option<bool> {
        match self {
            Held::Known(held) => Some(held.contains(&info.fingerprint)),
            Held::Unknown(_) => None,
        }
    }
}

/// Asks the server at `addr` (`GET /_status`, answered to loopback addresses only) which tokens
/// it holds.
pub async fn held(addr: SocketAddr) -> Held {
    let unknown = |why: &str| Held::Unknown(why.to_owned());
    let Ok(client) = http_client(STATUS_TIMEOUT) else {
        return unknown("no HTTP client");
    };
    let response = match client.get(format!("http://{addr}/_status")).send().await {
        Ok(response) => response,
        Err(e) if e.is_connect() => return unknown("server not running"),
        Err(_) => return Held::Unknown(format!("no answer from {addr}")),
    };
    if !response.status().is_success() {
        return Held::Unknown(format!(
            "{addr} answered /_status with HTTP {}",
            response.status().as_u16()
        ));
    }
    let status: Option<Value> = match response.bytes().await {
        Ok(body) => serde_json::from_slice(&body).ok(),
        Err(_) => None,
    };
    match status.as_ref().and_then(|s| s.get("held")?.as_array()) {
        Some(held) => Held::Known(
            held.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        ),
        None => unknown("the running server does not report which tokens are held"),
    }
}

fn http_client(timeout: Duration) -> reqwest::Result<reqwest::Client> {
    // No proxy: these calls go to this machine, and the admin key must not pass a proxy.
    reqwest::Client::builder()
        .timeout(timeout)
        .no_proxy()
        .build()
}

/// A token's info as JSON with `in_use` (`null` when unknown), as the admin API gives it.
fn with_in_use(info: &TokenInfo, in_use: Option<bool>) -> Value {
    let mut value = json!(info);
    value["in_use"] = json!(in_use);
    value
}

/// A table of tokens.
pub fn token_table(rows: &[(TokenInfo, Option<bool>)]) -> String {
    table(
        &[
            "KIND",
            "LABEL/NAME",
            "ROLE",
            "TOKEN",
            "FINGERPRINT",
            "IN USE",
        ],
        rows.iter()
            .map(|(info, in_use)| {
                vec![
                    info.kind.as_str().to_owned(),
                    info.title().unwrap_or("-").to_owned(),
                    info.role.as_str().to_owned(),
                    info.masked.clone(),
                    info.fingerprint.clone(),
                    yes_no(*in_use).to_owned(),
                ]
            })
            .collect(),
    )
}

fn yes_no(in_use: Option<bool>) -> &'static str {
    match in_use {
        Some(true) => "yes",
        Some(false) => "no",
        None => "?",
    }
}

/// One token, a line per field.
fn details(info: &TokenInfo, held: &Held) -> String {
    let mut text = format!("kind:        {}\n", info.kind.as_str());
    match info.kind {
        TokenKind::User => text.push_str(&format!(
            "label:       {}\n",
            info.label.as_deref().unwrap_or("-")
        )),
        TokenKind::Bot => text.push_str(&format!(
            "name:        {}\n",
            info.name.as_deref().unwrap_or("-")
        )),
    }
    text.push_str(&format!("role:        {}\n", info.role.as_str()));
    text.push_str(&format!("token:       {}\n", info.masked));
    text.push_str(&format!("fingerprint: {}\n", info.fingerprint));
    let in_use = match held {
        Held::Known(_) => yes_no(held.in_use(info)).to_owned(),
        Held::Unknown(why) => format!("unknown ({why})"),
    };
    text.push_str(&format!("in use:      {in_use}\n"));
    text
}

/// "the user token abcd… labelled "alice" (role mod)", for messages.
fn describe(info: &TokenInfo) -> String {
    match info.kind {
        TokenKind::User => format!(
            "the user token {}{} (role {})",
            info.masked,
            info.label
                .as_deref()
                .map(|l| format!(" labelled \"{l}\""))
                .unwrap_or_default(),
            info.role.as_str()
        ),
        TokenKind::Bot => format!(
            "the token {} of the bot \"{}\" (role {})",
            info.masked,
            info.name.as_deref().unwrap_or("?"),
            info.role.as_str()
        ),
    }
}

/// Prints a new token: alone on stdout (or in JSON), with what it is and how to use it on
/// stderr.
fn print_new_token(token: &str, info: &TokenInfo, json: bool, to: &str) -> Result<(), OwnerError> {
    if json {
        let mut value = json!({ "token": token });
        if let (Some(out), Value::Object(fields)) = (value.as_object_mut(), json!(info)) {
            out.extend(fields);
        }
        return print_json(&value);
    }
    let (what, how) = match (info.kind, info.name.as_deref()) {
        (TokenKind::Bot, Some(name)) => (
            format!("a token for the bot \"{name}\""),
            format!(
                "The bot logs in with [\"botauth\", {{\"botusername\": {}, \"bottoken\": \
                 \"<this token>\"}}].",
                json!(name)
            ),
        ),
        _ => (
            format!(
                "a user token{}",
                info.label
                    .as_deref()
                    .map(|l| format!(" labelled \"{l}\""))
                    .unwrap_or_default()
            ),
            "Users log in with it (SAUTH2).".to_owned(),
        ),
    };
    note(&format!(
        "Added {what} (role {}) {to}. It is shown only this once:",
        info.role.as_str()
    ))?;
    print(&format!("{token}\n"))?;
    note(&format!(
        "{how} A running server accepts it without a restart. Fingerprint: {}.",
        info.fingerprint
    ))
}

fn print(text: &str) -> Result<(), OwnerError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|e| OwnerError::Terminal("write to stdout", e))
}

fn print_json(value: &Value) -> Result<(), OwnerError> {
    let text = serde_json::to_string_pretty(value).expect("a Value always serializes");
    print(&format!("{text}\n"))
}

/// A line for people, on stderr.
fn note(text: &str) -> Result<(), OwnerError> {
    writeln!(std::io::stderr(), "{text}").map_err(|e| OwnerError::Terminal("write to stderr", e))
}

/// Left-aligned columns, two spaces apart; widths count characters (the mask's `…` is one).
fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header = headers.iter().map(|h| (*h).to_owned()).collect();
    let mut text = String::new();
    for row in std::iter::once(header).chain(rows) {
        let last = row.len().saturating_sub(1);
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i == last {
                text.push_str(cell);
            } else {
                let pad = width - cell.chars().count() + 2;
                text.push_str(cell);
                text.push_str(&" ".repeat(pad));
            }
        }
        text.push('\n');
    }
    text
}

/// Why a call of the owner API failed. No message shows the key.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// No key was given and none is configured.
    #[error(
        "no admin key: give --key, set {ADMIN_KEY_ENV}, or set `admin_key` in {}",
        .0.display()
    )]
    NoKey(PathBuf),
    /// `--url` is not an `http://` URL.
    #[error(
        "--url {0}: not an http:// URL (this client speaks plain HTTP; reach a remote server \
         through an SSH tunnel to its loopback address)"
    )]
    BadUrl(String),
    /// Nothing answered at the URL.
    #[error(
        "cannot reach the owner API at {url}: {cause} (is the server running, and is the URL right?)"
    )]
    Unreachable {
        /// What was called.
        url: String,
        /// Why it failed.
        cause: String,
    },
    /// The API answered with an error.
    #[error("{method} {url}: HTTP {status}: {message}{hint}")]
    Refused {
        /// `GET` or `POST`.
        method: &'static str,
        /// What was called.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The API's `error` text, or the status's reason.
        message: String,
        /// What to check, if there is an obvious thing.
        hint: &'static str,
    },
    /// The API answered success with something that is not JSON.
    #[error("{method} {url}: the answer is not JSON: {cause}")]
    BadAnswer {
        /// `GET` or `POST`.
        method: &'static str,
        /// What was called.
        url: String,
        /// Why it could not be read.
        cause: String,
    },
}

/// A client of the owner API. Deliberately not `Debug`: it holds the key.
pub struct AdminClient {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl AdminClient {
    /// A client of the API at `base` (e.g. `http://127.0.0.1:70/admin/`) with bearer `key`.
    ///
    /// # Errors
    /// [`AdminError::BadUrl`] unless `base` is an `http://` URL.
    pub fn new(base: &str, key: &str) -> Result<AdminClient, AdminError> {
        if !base.starts_with("http://") || base.len() <= "http://".len() {
            return Err(AdminError::BadUrl(base.to_owned()));
        }
        let http = http_client(ADMIN_TIMEOUT).map_err(|e| AdminError::Unreachable {
            url: base.to_owned(),
            cause: e.to_string(),
        })?;
        Ok(AdminClient {
            base: format!("{}/", base.trim_end_matches('/')),
            key: key.to_owned(),
            http,
        })
    }

    /// `GET {base}{path}`; the JSON answer.
    ///
    /// # Errors
    /// [`AdminError`]: unreachable, refused (the API's `error` text), or not JSON.
    pub async fn get(&self, path: &str) -> Result<Value, AdminError> {
        self.call("GET", path, None).await
    }

    /// `POST {base}{path}` with a JSON body; the JSON answer.
    ///
    /// # Errors
    /// As [`AdminClient::get`].
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, AdminError> {
        self.call("POST", path, Some(body)).await
    }

    async fn call(
        &self,
        method: &'static str,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, AdminError> {
        let url = format!("{}{path}", self.base);
        let mut request = match body {
            Some(body) => self
                .http
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.to_string()),
            None => self.http.get(&url),
        };
        request = request.bearer_auth(&self.key);
        let response = request.send().await.map_err(|e| AdminError::Unreachable {
            url: url.clone(),
            cause: cause(&e),
        })?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| AdminError::Unreachable {
                url: url.clone(),
                cause: cause(&e),
            })?;
        let parsed = serde_json::from_slice::<Value>(&body);
        if !status.is_success() {
            let message = parsed
                .as_ref()
                .ok()
                .and_then(|v| v.get("error")?.as_str().map(str::to_owned));
            let hint = match (status.as_u16(), &message) {
                (401, _) => " (check --key, CLICHAT_ADMIN_KEY or `admin_key` in the config)",
                (404, None) => {
                    " (is `admin_key` set in the server's config, and is the URL right?)"
                }
                _ => "",
            };
            return Err(AdminError::Refused {
                method,
                url,
                status: status.as_u16(),
                message: message
                    .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned()),
                hint,
            });
        }
        parsed.map_err(|e| AdminError::BadAnswer {
            method,
            url,
            cause: e.to_string(),
        })
    }
}

/// The innermost cause of an HTTP client error ("Connection refused (os error 111)"), which
/// says more than the outer "error sending request".
fn cause(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "no answer in time".to_owned();
    }
    let mut inner: &dyn std::error::Error = error;
    while let Some(source) = inner.source() {
        inner = source;
    }
    inner.to_string()
}

/// The API's URL and key: `--url`, `--key` and the environment first, the config file for
/// what they leave open.
fn admin_client(args: &AdminArgs, context: &Context) -> Result<AdminClient, OwnerError> {
    let env_key = std::env::var(ADMIN_KEY_ENV).ok().filter(|k| !k.is_empty());
    let given_key = args.key.clone().or(env_key);
    let config = if args.url.is_none() || given_key.is_none() {
        match open(&context.config) {
            Ok((file, _)) => Some(file),
            // Only the key was wanted from it: say that the key is missing.
            Err(OwnerError::NoConfig(_)) if args.url.is_some() => None,
            Err(e) => return Err(e),
        }
    } else {
        None
    };
    let url = args
        .url
        .clone()
        .or_else(|| {
            let addr = local_addr(config.as_ref()?.config(), context.port, context.bind);
            Some(format!("http://{addr}/admin/"))
        })
        .ok_or_else(|| OwnerError::NoConfig(context.config.clone()))?;
    let key = given_key
        .or_else(|| config.and_then(|f| f.config().admin_key.clone()))
        .ok_or_else(|| AdminError::NoKey(context.config.clone()))?;
    Ok(AdminClient::new(&url, &key)?)
}

async fn admin(args: AdminArgs, context: &Context) -> Result<(), OwnerError> {
    let client = admin_client(&args, context)?;
    let json = args.json;
    let shown = |answer: &Value, text: String| {
        if json {
            print_json(answer)
        } else {
            print(&text)
        }
    };
    match args.action {
        AdminAction::Connections => {
            let answer = client.get("connections").await?;
            let rows: Vec<Vec<String>> = answer
                .as_array()
                .map(|list| {
                    list.iter()
                        .map(|c| {
                            ["id", "name", "kind", "role", "label", "peer"]
                                .iter()
                                .map(|k| cell(&c[*k]))
                                .collect()
                        })
                        .collect()
                })
                .unwrap_or_default();
            let text = if rows.is_empty() {
                "No connections.\n".to_owned()
            } else {
                table(&["ID", "NAME", "KIND", "ROLE", "LABEL", "PEER"], rows)
            };
            shown(&answer, text)
        }
        AdminAction::Kick { name, reason } => {
            let mut body = json!({ "username": name });
            if let Some(reason) = reason {
                body["reason"] = json!(reason);
            }
            let answer = client.post("kick", &body).await?;
            let text = format!("Kicked {}.\n", cell(&answer["kicked"]));
            shown(&answer, text)
        }
        AdminAction::Ban {
            name,
            reason,
            minutes,
        } => {
            let mut body = json!({ "username": name });
            if let Some(reason) = reason {
                body["reason"] = json!(reason);
            }
            if let Some(minutes) = minutes {
                body["minutes"] = json!(minutes);
            }
            let answer = client.post("ban", &body).await?;
            let until = match answer["until"].as_str() {
                Some(until) => format!("until {until}"),
                None => "until unbanned".to_owned(),
            };
            let text = format!("Banned {} {until}.\n", cell(&answer["banned"]));
            shown(&answer, text)
        }
        AdminAction::Unban { username, label } => {
            let body = match (username, label) {
                (Some(name), _) => json!({ "username": name }),
                (None, label) => json!({ "token_label": label }),
            };
            let answer = client.post("unban", &body).await?;
            let text = format!("Lifted {} ban(s).\n", cell(&answer["unbanned"]));
            shown(&answer, text)
        }
        AdminAction::Tokens => {
            let answer = client.get("tokens").await?;
            let rows: Vec<(TokenInfo, Option<bool>)> = answer
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| {
                    let info = serde_json::from_value(t.clone()).ok()?;
                    Some((info, t["in_use"].as_bool()))
                })
                .collect();
            let text = if rows.is_empty() {
                "No tokens.\n".to_owned()
            } else {
                token_table(&rows)
            };
            shown(&answer, text)
        }
        AdminAction::AddToken(new) => {
            let mut body = json!({ "role": Role::from(new.role) });
            if let Some(label) = new.label {
                body["label"] = json!(label);
            }
            if let Some(bot) = new.bot {
                body["bot"] = json!(bot);
            }
            let answer = client.post("tokens", &body).await?;
            if json {
                return print_json(&answer);
            }
            let token = answer["token"].as_str();
            let info = serde_json::from_value::<TokenInfo>(answer.clone());
            match (token, info) {
                (Some(token), Ok(info)) => {
                    print_new_token(token, &info, false, "to the running server's config")
                }
                _ => Err(AdminError::BadAnswer {
                    method: "POST",
                    url: format!("{}tokens", client.base),
                    cause: "no token in the answer".to_owned(),
                }
                .into()),
            }
        }
        AdminAction::Revoke { token_or_label } => {
            let query = argument(token_or_label)?;
            let answer = client
                .post("tokens/revoke", &json!({ "token_or_label": query }))
                .await?;
            let text = format!("Revoked {} token(s).\n", cell(&answer["revoked"]));
            shown(&answer, text)
        }
    }
}

/// A JSON value in a table cell or message: strings bare, `null` as `-`.
fn cell(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

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

    #[test]
    fn tables_align_by_characters() {
        let text = table(
            &["A", "B", "C"],
            vec![
                vec!["abcd…".into(), "x".into(), "1".into()],
                vec!["-".into(), "longer".into(), "2".into()],
            ],
        );
        assert_eq!(
            text,
            "A      B       C\nabcd…  x       1\n-      longer  2\n"
        );
    }
}
