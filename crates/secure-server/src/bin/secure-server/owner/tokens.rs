//! `secure-server tokens ...`: adding, listing, showing and revoking tokens in the config file,
//! with whether the running server holds them (its `/_status`, on this machine).

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use clap::Subcommand;
use secure_server::config::edit::{self, TokenInfo, TokenKind};
use secure_server::config::{Config, Role};
use serde_json::{Value, json};

use super::output::{print, print_json, print_new_token};
use super::table::{token_table, yes_no};
use super::{Context, NewToken, OwnerError, argument, http_client, open, server_addr};

/// How long `tokens list` and `tokens show` wait for the running server's `/_status`.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);

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

pub(super) async fn tokens(command: TokensCommand, context: &Context) -> Result<(), OwnerError> {
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

fn status_addr(config: &Config, context: &Context) -> SocketAddr {
    server_addr(&context.config, config, context.port, context.bind)
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

/// A token's info as JSON with `in_use` (`null` when unknown), as the admin API gives it.
pub(super) fn with_in_use(info: &TokenInfo, in_use: Option<bool>) -> Value {
    let mut value = json!(info);
    value["in_use"] = json!(in_use);
    value
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
