//! `secure-server history clear`: drops the room's kept history. A running server is asked
//! through its owner API (it keeps recent messages in memory too); a stopped single server's
//! history file is cleared in place.

use std::net::TcpStream;
use std::time::Duration;

use clap::Subcommand;
use secure_server::history_db::HistoryDb;

use super::admin::{AdminAction, AdminArgs};
use super::output::print;
use super::{Context, OwnerError, open, server_addr};

/// `secure-server history ...`.
#[derive(Debug, Subcommand)]
pub enum HistoryCommand {
    /// Drop every message kept: through the running server's owner API (needs `admin_key`),
    /// or in the history file beside the config while the server is stopped
    Clear,
}

pub(super) async fn history(command: HistoryCommand, context: &Context) -> Result<(), OwnerError> {
    let HistoryCommand::Clear = command;
    let (file, _) = open(&context.config)?;
    let config = file.config();
    let addr = server_addr(&context.config, config, context.port, context.bind);
    let running = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok();
    if running || config.cluster.is_some() {
        // A cluster keeps its history in Redis, which the owner API of any node clears.
        let args = AdminArgs {
            url: None,
            key: None,
            json: false,
            action: AdminAction::ClearHistory,
        };
        return super::admin::admin(args, context).await;
    }
    let path = HistoryDb::path_for(&context.config);
    let dropped = HistoryDb::clear_file(&path).map_err(|e| OwnerError::History(e.to_string()))?;
    print(&format!(
        "Dropped {dropped} messages from {}.\n",
        path.display()
    ))
}
