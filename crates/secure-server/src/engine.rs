//! Which engine the room runs on, from the config: a single server's ([`hub::Local`], with its
//! history file beside the config file) or a cluster's (Redis).

use std::path::Path;
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::config::Config;
use crate::history_db::HistoryDb;
use crate::{cluster, hub};

/// The room's engine, and what it brings.
pub(crate) struct Engine {
    pub(crate) backplane: Arc<dyn hub::Backplane>,
    /// What the other nodes cause (a cluster only).
    pub(crate) events: Option<mpsc::Receiver<hub::Event>>,
    /// The history kept from before this start, oldest first (a cluster's arrives as an event).
    pub(crate) kept: Vec<clichat_proto::HistoryEntry>,
}

/// Starts the engine `config` asks for. A single server with history on and a config file
/// keeps its history in the file beside it; without a file, in memory only.
///
/// # Errors
/// The history file cannot be opened; a cluster's CA file cannot be read.
pub(crate) fn start(config: &Config, config_file: Option<&Path>) -> Result<Engine, crate::Error> {
    if let Some(cluster) = &config.cluster {
        let (redis, events) = cluster::start(cluster, config.history)?;
        return Ok(Engine {
            backplane: redis,
            events: Some(events),
            kept: Vec::new(),
        });
    }
    let (local, kept) = match (config.history, config_file) {
        (Some(history), Some(file)) => {
            let opened = HistoryDb::open(&HistoryDb::path_for(file), history)?;
            (
                hub::Local::with_history(opened.db, opened.next_seq),
                opened.recent,
            )
        }
        _ => (hub::Local::new(), Vec::new()),
    };
    Ok(Engine {
        backplane: Arc::new(local),
        events: None,
        kept,
    })
}
