//! Live reload: the running server notices changes to its config file (a file watch, and
//! SIGHUP) and applies them without dropping anyone.
//!
//! - New tokens and bots work at once; a revoked token's holders get
//!   `["refusal", "Your token was revoked."]` and are closed, and so is a login still waiting
//!   for its `tokenauth` with that token. A changed role applies to live sessions at once (the
//!   session looks its token's role up at each moderation frame).
//! - The filter, the length rules and the limits apply to new input (a changed `limits` starts
//!   every address with a fresh budget); `max_frame_bytes`, timeouts and `public_url` apply to
//!   new connections; `announce_presence_up_to` to the next join or departure.
//! - `port`, `bind`, `1UPT`, `outbound_queue`, `cluster`, `history`, and turning `tls` on or off need a
//!   restart: a change is logged as such and not applied.
//! - A file that no longer loads is refused with a log line naming the problem, and the server
//!   keeps running on the last good config.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use clichat_proto::refusal;
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::config::Config;
use crate::secrets::TokenKey;
use crate::{Server, Settings};

/// Listens for SIGHUP. Called before the server says it is listening, so that a SIGHUP sent
/// from then on reloads instead of ending the process (the default action).
pub(crate) fn hangups() -> Option<Signal> {
    match signal(SignalKind::hangup()) {
        Ok(hangup) => Some(hangup),
        Err(error) => {
            warn!(%error, "cannot listen for SIGHUP");
            None
        }
    }
}

/// How long to wait after a change for more of the same burst (an editor's write, then its
/// rename) before reading the file.
const SETTLE: Duration = Duration::from_millis(100);

/// Watches the server's config file (and its TLS certificate and key) and SIGHUP until
/// shutdown, reloading on each.
pub(crate) async fn watch(server: Arc<Server>, mut hangup: Option<Signal>) {
    let Some(path) = server.config_file.clone() else {
        return;
    };
    let (changed, mut changes) = mpsc::channel::<()>(1);
    let mut files = vec![path.clone()];
    if let Some(tls) = &server.settings().config.tls {
        files.extend([tls.cert.clone(), tls.key.clone()]);
    }
    let _watchers: Vec<_> = files
        .iter()
        .filter_map(|file| match watch_file(file, changed.clone()) {
            Ok(watcher) => Some(watcher),
            Err(error) => {
                warn!(file = %file.display(), %error, "cannot watch the file; reload with SIGHUP");
                None
            }
        })
        .collect();
    // What the file said about the settings that need a restart, to tell when they change.
    let mut restart_only = Config::load(&path).ok().map(|c| RestartOnly::of(&c));
    loop {
        tokio::select! {
            () = server.shutdown.cancelled() => return,
            Some(()) = changes.recv() => {}
            Some(()) = async {
                match &mut hangup {
                    Some(hangup) => hangup.recv().await,
                    None => std::future::pending().await,
                }
            } => info!("SIGHUP: reloading the config"),
        }
        tokio::time::sleep(SETTLE).await;
        while changes.try_recv().is_ok() {}
        apply(&server, &path, &mut restart_only);
        reload_certificate(&server);
    }
}

/// Reads the TLS certificate and key again; a pair that cannot be used is logged and the old
/// one kept.
fn reload_certificate(server: &Server) {
    let (Some(tls), Some(files)) = (&server.tls, server.settings().config.tls.clone()) else {
        return;
    };
    match tls.reload(&files) {
        Ok(()) => info!(cert = %files.cert.display(), "TLS certificate loaded"),
        Err(error) => warn!(%error, "new TLS certificate refused; keeping the one in use"),
    }
}

/// A watch on the directory holding `path` (editors and atomic writers replace the file by
/// renaming, which a watch on the file itself would lose), reporting changes to `path` only.
fn watch_file(path: &Path, changed: mpsc::Sender<()>) -> notify::Result<impl Watcher> {
    let name = path.file_name().map(ToOwned::to_owned);
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => Path::new(".").to_owned(),
    };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        let ours = event.paths.iter().any(|p| p.file_name() == name.as_deref());
        if ours && !matches!(event.kind, EventKind::Access(_)) {
            // A full channel already holds a pending reload, which will read the file anew.
            let _ = changed.try_send(());
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

/// The settings a running server cannot change.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RestartOnly {
    port: u16,
    bind: std::net::IpAddr,
    one_user_per_token: bool,
    outbound_queue: usize,
    cluster: Option<crate::config::ClusterConfig>,
    history: Option<crate::config::HistoryConfig>,
    /// Whether `tls` is on: the port speaks one or the other from its start (a renewed
    /// certificate, or one at another path, is taken live).
    tls: bool,
}

impl RestartOnly {
    fn of(config: &Config) -> RestartOnly {
        RestartOnly {
            port: config.port,
            bind: config.bind,
            one_user_per_token: config.one_user_per_token,
            outbound_queue: config.outbound_queue,
            cluster: config.cluster.clone(),
            history: config.history,
            tls: config.tls.is_some(),
        }
    }

    /// Copies these settings, as `old` has them, into `config`.
    fn keep_in(&self, config: &mut Config, old: &Config) {
        if config.tls.is_some() != self.tls {
            config.tls.clone_from(&old.tls);
        }
        config.port = self.port;
        config.bind = self.bind;
        config.one_user_per_token = self.one_user_per_token;
        config.outbound_queue = self.outbound_queue;
        config.cluster.clone_from(&self.cluster);
        config.history = self.history;
    }
}

/// Reads the config file and puts it in force now (after the owner API changed it), as the
/// watcher would a moment later.
pub(crate) fn reload_now(server: &Server) {
    if let Some(path) = &server.config_file {
        apply(server, path, &mut None);
    }
}

/// Loads the file and puts it in force.
fn apply(server: &Server, path: &Path, file_restart_only: &mut Option<RestartOnly>) {
    let mut config = match Config::load(path) {
        Ok(config) => config,
        Err(error) => {
            warn!(%error, "config reload refused; keeping the last good config");
            return;
        }
    };
    let old = server.settings();
    let from_file = RestartOnly::of(&config);
    if let Some(before) = file_restart_only.as_ref() {
        if *before != from_file {
            warn!(
                "port, bind, 1UPT, outbound_queue, cluster, history or tls on/off changed in \
                 the config file: they take effect at the next restart"
            );
        }
    }
    *file_restart_only = Some(from_file);
    RestartOnly::of(&old.config).keep_in(&mut config, &old.config);

    let settings = Settings::new(config, Some(&old));
    let revoked: Vec<TokenKey> = old
        .tokens
        .keys()
        .filter(|key| !settings.tokens.contains(key))
        .copied()
        .collect();
    let added = settings
        .tokens
        .keys()
        .filter(|key| !old.tokens.contains(key))
        .count();
    server.connections.configure(&settings.config.limits);
    server
        .hub
        .announce_presence_up_to(settings.config.announce_presence_up_to);
    server.settings.store(Arc::new(settings));
    // After the new settings are in force: a login that joins from now on is refused at its
    // join, and one waiting for its `tokenauth` is woken to check.
    for key in &revoked {
        for name in server.hub.remove_token(key, refusal::TOKEN_REVOKED) {
            info!(?name, "closed: its token was revoked");
        }
    }
    if !revoked.is_empty() {
        server.expulsions.send_replace(());
    }
    let sauth2 = server.settings().config.sauth2;
    info!(added, revoked = revoked.len(), sauth2, "config reloaded");
    if old.config.sauth2 && !sauth2 {
        warn!("{}", crate::OPEN_ROOM);
    }
}
