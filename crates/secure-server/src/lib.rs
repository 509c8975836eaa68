//! CLIChat Secure Server: a chat room for the command line with SAUTH2 logins, bot logins and
//! one user per token, serving its token pages (HTTP) and its chat (WebSocket) on one port.
//!
//! The binary (`secure-server`) parses arguments, loads the config, binds and calls [`run`];
//! tests and benchmarks call the same [`run`] on `127.0.0.1:0`.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use secure_server::{Config, run, shutdown::Signals};
//!
//! let config = Config::load("secureconfig.json".as_ref())?;
//! let listener = tokio::net::TcpListener::bind(("0.0.0.0", config.port)).await?;
//! let signals = Signals::install()?;
//! run(listener, config, signals.recv()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! And in a test, on a port of the OS's choosing, on a task of its own ([`Running`]):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
//! let server = secure_server::Running::start(listener, Default::default()).unwrap();
//! assert!(tokio::net::TcpStream::connect(server.local_addr()).await.is_ok());
//! server.stop().await.unwrap();
//! # }
//! ```
//!
//! # Layout
//! In reading order, from the listening socket inwards. This file holds what every connection
//! shares (`Server`, its `Settings`), [`run`], [`Running`] and `serve`, which starts the rest.
//! - [`config`]: `secureconfig.json`: its schema, loading, first-run file and editing in place.
//! - [`shutdown`]: SIGINT/SIGTERM handlers, installed before the server listens.
//! - `listener`: the accept loop: each socket's place under the connection limits, or a 503.
//! - [`tls`]: HTTPS and WSS on the same port, with certificates replaced live.
//! - `http`: each socket's HTTP/1.1: WebSocket upgrades, token pages, probes, owner API, web app.
//! - [`proxy`]: trusted reverse proxies, and the client address they forward.
//! - `origin`: which web pages may open a WebSocket to the server.
//! - `session`: one connection's life: login, chat, moderation, close.
//! - `coalesce`: gathers each connection's small writes into one per flush.
//! - [`auth`]: the owner's tokens: which admit whom, with what label and role.
//! - [`secrets`]: tokens and page ids (CSPRNG), constant-time checks, masking, fingerprints.
//! - [`names`]: usernames people can trust: their shape, and the key look-alikes share.
//! - [`rules`]: what a username and a message must pass, and the refusals.
//! - [`limits`]: connection caps, login, page, message and frame rates, and the open-file limit.
//! - [`bans`]: banned tokens, kept beside the config file.
//! - [`hub`]: what connections share (names, holds, pages, the room) and fan-out, written once
//!   over a [`hub::Backplane`]: [`hub::Local`] for a single server.
//! - `cluster`: cluster mode's backplane, the room shared with the other nodes through Redis.
//! - `reload`: watching the config file (and SIGHUP) and applying changes live.
//! - `metrics`: Prometheus metrics for `GET /metrics`.
//!
//! The binary, `src/bin/secure-server/`, adds the owner's tools (`tokens`, `admin`, `cert`).

pub mod auth;
pub mod bans;
mod cluster;
mod coalesce;
pub mod config;
mod engine;
pub mod held_file;
pub mod history_db;
mod http;
pub mod hub;
pub mod limits;
mod listener;
mod metrics;
pub mod names;
mod origin;
pub mod proxy;
mod reload;
pub mod rules;
pub mod secrets;
mod session;
pub mod shutdown;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;
/// Editing the config file in place: [`config::edit`], at its earlier path.
pub use config::edit as config_file;

/// What the server says, at start and at a reload that opens the room, when `SAUTH2` is off.
const OPEN_ROOM: &str = "SAUTH2 is off: the room is open to anyone who can reach this port, \
                         under any free name, with no token";

/// The file beside the config at `config` in which a running server says where it listens
/// (`secureconfig.listening` for `secureconfig.json`): one line, the address. The owner's tools
/// read it to find the server without `--port`; the server removes it when it stops.
pub fn listening_file(config: &std::path::Path) -> PathBuf {
    let stem = config
        .file_stem()
        .map_or_else(|| "secureconfig".into(), |s| s.to_string_lossy());
    config.with_file_name(format!("{stem}.listening"))
}

/// The version text sent in `["id", ID, VERSION]`.
pub const VERSION: &str = concat!(
    "secure-server ",
    env!("CARGO_PKG_VERSION"),
    " (CLIChat Secure Server in Rust)"
);

/// How long a cluster node may take to write what is queued and leave the cluster at shutdown.
const CLUSTER_LEAVE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// What can stop [`run`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listener failed.
    #[error("listener failed: {0}")]
    Io(#[from] std::io::Error),
    /// The ban list beside the config file cannot be read.
    #[error(transparent)]
    Bans(#[from] bans::BansError),
    /// The TLS certificate or key, or the cluster's CA file (`cluster.ca_file`), cannot be used.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The history file beside the config file cannot be used.
    #[error(transparent)]
    History(#[from] history_db::HistoryDbError),
}

/// What a config file (or an in-memory config) sets up; replaced whole by a reload.
#[derive(Debug)]
pub(crate) struct Settings {
    config: Config,
    tokens: auth::Tokens,
    rules: rules::Rules,
    rates: Arc<limits::Rates>,
}

impl Settings {
    /// Settings for `config`, keeping `previous` rates when the limits did not change (so that
    /// a reload does not hand every address a fresh budget).
    fn new(config: Config, previous: Option<&Settings>) -> Settings {
        let rates = match previous {
            Some(previous) if previous.rates.config() == &config.limits => {
                Arc::clone(&previous.rates)
            }
            _ => Arc::new(limits::Rates::new(&config.limits)),
        };
        Settings {
            tokens: auth::Tokens::new(&config),
            rules: rules::Rules::new(&config),
            rates,
            config,
        }
    }
}

/// Everything the connections of one server share.
#[derive(Debug)]
pub(crate) struct Server {
    settings: ArcSwap<Settings>,
    /// The config file, when the server was started from one: watched, and reloaded.
    config_file: Option<PathBuf>,
    hub: hub::Hub,
    connections: limits::Connections,
    bans: bans::Bans,
    /// HTTPS and WSS, when the config has `tls`.
    tls: Option<tls::Tls>,
    metrics: metrics::Metrics,
    /// Cancelled when the server shuts down; every connection watches it.
    shutdown: CancellationToken,
    /// Every live session, so that [`run`] can wait for them.
    sessions: TaskTracker,
    /// The clock of the sessions that gather the room's frames between writes.
    ticker: Arc<session::Ticker>,
    /// Changed after every ban and every reload that revoked a token: logins waiting for their
    /// `tokenauth` check again whether their token still admits them.
    expulsions: tokio::sync::watch::Sender<()>,
    local_addr: SocketAddr,
}

impl Server {
    /// The settings in force now. Hold them for one step (a login, a frame), not for a
    /// connection's life, so that a reload takes effect.
    fn settings(&self) -> Arc<Settings> {
        self.settings.load_full()
    }

    /// Whether a login called `name` with `profile` may be in the room: its token configured
    /// (not revoked) and not banned, or, without a token (an open room's), its name and address
    /// not banned; otherwise the refusal to send. Checked at login, after `tokenauth`, and again
    /// inside [`hub::Hub::join`], so that no revocation or ban can fall between the check and
    /// the join.
    fn admits(&self, name: &str, profile: &hub::Profile) -> Result<(), String> {
        match &profile.token {
            Some(key) => self.admits_token(key),
            None => match self
                .bans
                .check_tokenless(name, profile.peer.map(|peer| peer.ip()))
            {
                Some(ban) => Err(banned(&ban)),
                None => Ok(()),
            },
        }
    }

    /// Whether the token with `key` still admits its holder: configured and not banned.
    fn admits_token(&self, key: &auth::TokenKey) -> Result<(), String> {
        if !self.settings().tokens.contains(key) {
            return Err(clichat_proto::refusal::TOKEN_REVOKED.to_owned());
        }
        match self.bans.check(key) {
            Some(ban) => Err(banned(&ban)),
            None => Ok(()),
        }
    }

    /// What a member with `profile` may do now: its token's role in the config in force (a
    /// reload may have promoted or demoted it), or the role it logged in with when its token
    /// is not (any more) configured here.
    fn role_of(&self, profile: &hub::Profile) -> config::Role {
        profile
            .token
            .and_then(|key| self.settings().tokens.role_of(&key))
            .unwrap_or(profile.role)
    }

    /// Bans `target` for `reason`, for `minutes` (at most [`bans::MAX_MINUTES`]) or until
    /// lifted, here and on every node: its token, closing every session and pending login of
    /// that token on every node; or, for a login without a token (an open room's), its name and
    /// address, closing the target. Returns the ban's end as RFC 3339 text, if it has one.
    ///
    /// # Errors
    /// As [`bans::Bans::add`]: the ban holds, but this node could not save it.
    fn ban_member(
        &self,
        target: &hub::MemberInfo,
        reason: &str,
        minutes: Option<u64>,
    ) -> Result<Option<String>, bans::BansError> {
        let key = target.profile.token;
        let ban = bans::Ban {
            username: target.name.clone(),
            token: key.map(|key| key.to_hex()),
            address: key
                .is_none()
                .then(|| target.profile.peer.map(|peer| peer.ip()))
                .flatten(),
            label: target.profile.label.clone(),
            role: target.profile.role,
            reason: reason.to_owned(),
            until: bans::Ban::end_after(minutes),
        };
        let until = ban.until_text();
        let told = clichat_proto::refusal::banned(reason, until.as_deref());
        self.hub
            .request(&hub::NodeRequest::Ban { ban: ban.clone() });
        let saved = self.bans.add(ban);
        // After the ban is in force: a login that joins from now on is refused at its join.
        match &key {
            Some(key) => {
                self.hub.remove_token(key, &told);
            }
            None => {
                self.hub.remove(target, &told);
            }
        }
        self.expulsions.send_replace(());
        saved.map(|()| until)
    }

    /// Carries out another node's ban or unban here.
    fn obey(&self, request: hub::NodeRequest) {
        let saved = match request {
            hub::NodeRequest::Ban { ban } => {
                let saved = self.bans.add(ban);
                // Logins waiting here for their `tokenauth` check their token again.
                self.expulsions.send_replace(());
                saved
            }
            hub::NodeRequest::Unban { tokens, names } => self
                .bans
                .lift(|ban| match &ban.token {
                    Some(token) => tokens.contains(token),
                    None => names.contains(&ban.username),
                })
                .map(drop),
            hub::NodeRequest::Remove { .. }
            | hub::NodeRequest::RemoveToken { .. }
            | hub::NodeRequest::ClearHistory
            | hub::NodeRequest::Forget { .. } => Ok(()),
        };
        if let Err(error) = saved {
            tracing::warn!(%error, "another node's ban holds here, but could not be saved");
        }
    }

    /// Lifts the bans `matches` picks here and, in cluster mode, on every node. Returns how
    /// many were lifted here.
    ///
    /// # Errors
    /// As [`bans::Bans::lift`].
    fn lift_bans(&self, matches: impl Fn(&bans::Ban) -> bool) -> Result<usize, bans::BansError> {
        let lifted = self.bans.lift(matches)?;
        if !lifted.is_empty() {
            let tokens = lifted.iter().filter_map(|ban| ban.token.clone()).collect();
            let names = lifted
                .iter()
                .filter(|ban| ban.token.is_none())
                .map(|ban| ban.username.clone())
                .collect();
            self.hub.request(&hub::NodeRequest::Unban { tokens, names });
        }
        Ok(lifted.len())
    }
}

/// The refusal a banned login gets, saying until when.
fn banned(ban: &bans::Ban) -> String {
    clichat_proto::refusal::banned(&ban.reason, ban.until_text().as_deref())
}

/// Says, once at start, where people go: the web page, and the terminal client's command.
fn say_where(server: &Server) {
    let settings = server.settings();
    let base = match settings.config.public_url() {
        Some(url) => url.to_owned(),
        None => {
            let scheme = if server.tls.is_some() {
                "https"
            } else {
                "http"
            };
            let ip = match server.local_addr.ip() {
                ip if ip.is_unspecified() => "localhost".to_owned(),
                std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                ip => ip.to_string(),
            };
            format!("{scheme}://{ip}:{}", server.local_addr.port())
        }
    };
    let server_arg = base
        .strip_prefix("http://")
        .map_or_else(|| base.replacen("https://", "wss://", 1), str::to_owned);
    tracing::info!(
        "chat in a browser at {base}/ or in a terminal with: secure-client {server_arg} --username NAME"
    );
}

/// Carries out what the other nodes cause, in the order they caused it, until the backplane
/// stops (the node left) or the server is gone.
async fn follow_other_nodes(
    server: std::sync::Weak<Server>,
    mut events: mpsc::Receiver<hub::Event>,
) {
    while let Some(event) = events.recv().await {
        let Some(server) = server.upgrade() else {
            return;
        };
        if let Some(request) = server.hub.apply(event) {
            server.obey(request);
        }
    }
}

/// Serves chat and token pages on `listener` until `shutdown` completes, then closes every
/// session with WebSocket code 1001 and returns once all of them have ended. Bans are kept in
/// memory; see [`run_from_file`] for a server that owns a config file.
///
/// Each accepted socket takes a place under `limits.max_connections` (by default what the
/// open-file limit allows) and `limits.max_connections_per_ip`; a socket over either limit is
/// answered HTTP 503 and closed.
///
/// # Errors
/// [`Error::Io`] if the listener cannot report its address.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    serve(listener, config, None, shutdown).await
}

/// A server running on a task of its own, as tests, benchmarks and programs that embed one
/// start it. Dropping it shuts the server down too, without waiting.
#[derive(Debug)]
pub struct Running {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), Error>>,
}

impl Running {
    /// Starts [`run`] on `listener` with `config`.
    ///
    /// # Errors
    /// When the listener cannot report its address.
    pub fn start(listener: TcpListener, config: Config) -> std::io::Result<Running> {
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel();
        Ok(Running::spawn(
            addr,
            stop,
            run(listener, config, signal(stopped)),
        ))
    }

    /// Starts [`run_from_file`] on `listener` with `config`, loaded from `path`.
    ///
    /// # Errors
    /// When the listener cannot report its address.
    pub fn start_from_file(
        listener: TcpListener,
        config: Config,
        path: PathBuf,
    ) -> std::io::Result<Running> {
        let addr = listener.local_addr()?;
        let (stop, stopped) = oneshot::channel();
        let server = run_from_file(listener, config, path, signal(stopped));
        Ok(Running::spawn(addr, stop, server))
    }

    fn spawn(
        addr: SocketAddr,
        stop: oneshot::Sender<()>,
        server: impl Future<Output = Result<(), Error>> + Send + 'static,
    ) -> Running {
        Running {
            addr,
            stop: Some(stop),
            task: tokio::spawn(server),
        }
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Shuts the server down as a signal would (every session closed with WebSocket code
    /// 1001) and waits until it has.
    ///
    /// # Errors
    /// What [`run`] returned.
    ///
    /// # Panics
    /// If the server's task panicked, with its panic.
    pub async fn stop(mut self) -> Result<(), Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(result) => result,
            Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
            Err(_cancelled) => Err(Error::Io(std::io::Error::other(
                "the server's task was cancelled",
            ))),
        }
    }
}

/// Completes when `stopped` is sent to, or its sender dropped.
async fn signal(stopped: oneshot::Receiver<()>) {
    let _ = stopped.await;
}

/// As [`run`], for a server started from the config file at `path` (already loaded as
/// `config`): the file is watched, and reloaded on change and on SIGHUP (new tokens work at once,
/// revoked tokens' holders are closed, a broken file is refused and the last good config kept);
/// bans are kept beside it and survive restarts.
///
/// # Errors
/// [`Error::Io`] if the listener cannot report its address; [`Error::Bans`] if the ban list
/// beside the config exists but cannot be read.
pub async fn run_from_file(
    listener: TcpListener,
    config: Config,
    path: PathBuf,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    serve(listener, config, Some(path), shutdown).await
}

async fn serve(
    listener: TcpListener,
    config: Config,
    config_file: Option<PathBuf>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let local_addr = listener.local_addr()?;
    let bans = match &config_file {
        Some(path) => bans::Bans::load(bans::Bans::file_for(path))?,
        None => bans::Bans::in_memory(),
    };
    let tls = config.tls.as_ref().map(tls::Tls::new).transpose()?;
    let engine::Engine {
        backplane,
        events,
        kept,
    } = engine::start(&config, config_file.as_deref())?;
    let hub = hub::Hub::with_backplane(
        config.one_user_per_token,
        config.outbound_queue,
        config.history,
        backplane,
    );
    hub.remember(kept);
    hub.announce_presence_up_to(config.announce_presence_up_to);
    let server = Arc::new(Server {
        tls,
        metrics: metrics::Metrics::new(),
        hub,
        connections: limits::Connections::new(&config.limits, limits::open_file_capacity()),
        settings: ArcSwap::from_pointee(Settings::new(config, None)),
        config_file,
        bans,
        shutdown: CancellationToken::new(),
        sessions: TaskTracker::new(),
        ticker: Arc::default(),
        expulsions: tokio::sync::watch::Sender::new(()),
        local_addr,
    });
    let hangups = server.config_file.as_ref().and_then(|_| reload::hangups());
    tracing::info!(
        addr = %local_addr,
        tls = server.tls.is_some(),
        max_connections = server.connections.max(),
        "listening"
    );
    if !server.settings().config.sauth2 {
        tracing::warn!("{OPEN_ROOM}");
    }
    say_where(&server);
    let listening = server.config_file.as_deref().map(listening_file);
    if let Some(file) = &listening {
        let line = format!("{local_addr}\n");
        if let Err(error) = config::edit::write_atomically(file, line.as_bytes()) {
            tracing::warn!(%error, "cannot say where the server listens; tools need --port");
        }
    }
    tokio::spawn({
        let server = Arc::clone(&server);
        async move {
            shutdown.await;
            server.hub.close();
            server.shutdown.cancel();
        }
    });
    if server.settings().config.cluster.is_none() {
        held_file::restore(&server).await;
    }
    tokio::spawn({
        let ticker = Arc::clone(&server.ticker);
        let stop = server.shutdown.clone();
        async move { ticker.run(stop).await }
    });
    tokio::spawn(forget_idle_addresses(Arc::clone(&server)));
    if let Some(events) = events {
        tokio::spawn(follow_other_nodes(Arc::downgrade(&server), events));
    }
    if server.config_file.is_some() {
        tokio::spawn(reload::watch(Arc::clone(&server), hangups));
    }

    listener::accept_until_shutdown(&server, listener).await;
    // Upgraded connections are not HTTP requests any more: the sessions watch the cancellation
    // token themselves (each closes with 1001 within a bounded time), and we wait for the last
    // one here.
    server.sessions.close();
    server.sessions.wait().await;
    tracing::info!("all sessions closed");
    if let Some(file) = &listening {
        let _ = std::fs::remove_file(file);
    }
    if server.settings().config.cluster.is_none() {
        held_file::keep(&server);
    }
    server.hub.leave(CLUSTER_LEAVE_GRACE).await;
    Ok(())
}

/// Every minute, forgets the rate-limit state of addresses that have been quiet.
async fn forget_idle_addresses(server: Arc<Server>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tokio::select! {
            () = server.shutdown.cancelled() => return,
            _ = every.tick() => server.settings().rates.forget_idle(),
        }
    }
}
