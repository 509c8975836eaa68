//! Held sessions across a single server's restart: when the server stops, the sessions held for
//! a resume (every session that asked for `resume`, since a stop tells them to come back) are
//! written to `<config stem>.sessions.json` beside the config file, and the next start holds them
//! again for a fresh window, so that their clients resume as if nothing happened. The file holds
//! each session's name, role and token key and its resume token's key, never a token; it is
//! read once and removed. A cluster keeps its held sessions in Redis instead.

use std::path::{Path, PathBuf};

use tracing::{info, warn};

use crate::Server;
use crate::config::edit::write_atomically;
use crate::hub::HeldSession;

/// The file that goes with a config file.
pub fn path_for(config: &Path) -> PathBuf {
    let stem = config.file_stem().unwrap_or_default().to_string_lossy();
    config.with_file_name(format!("{stem}.sessions.json"))
}

/// Holds again what the last stop kept, and removes the file.
pub(crate) async fn restore(server: &Server) {
    let Some(path) = server.config_file.as_deref().map(path_for) else {
        return;
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return,
        Err(error) => {
            warn!(path = %path.display(), %error, "cannot read the held sessions");
            return;
        }
    };
    let sessions: Vec<HeldSession> = match serde_json::from_str(&text) {
        Ok(sessions) => sessions,
        Err(error) => {
            warn!(path = %path.display(), %error, "held sessions file unreadable; ignored");
            Vec::new()
        }
    };
    let mut held = 0;
    for session in sessions {
        held += usize::from(server.hub.restore_held(session).await);
    }
    if let Err(error) = std::fs::remove_file(&path) {
        warn!(path = %path.display(), %error, "cannot remove the held sessions file");
    }
    info!(held, "sessions held again for a resume after the restart");
}

/// Writes the sessions held now, for the next start; called once every session has ended.
pub(crate) fn keep(server: &Server) {
    let Some(path) = server.config_file.as_deref().map(path_for) else {
        return;
    };
    let window = server.settings().config.resume_window();
    let sessions = server.hub.held_sessions(window);
    if sessions.is_empty() {
        return;
    }
    let text = serde_json::to_string(&sessions).expect("held sessions serialize");
    match write_atomically(&path, text.as_bytes()) {
        Ok(()) => {
            info!(held = sessions.len(), path = %path.display(), "held sessions kept for the restart")
        }
        Err(error) => warn!(path = %path.display(), %error, "cannot keep the held sessions"),
    }
}
