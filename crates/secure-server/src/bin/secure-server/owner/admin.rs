//! `secure-server admin ...`: one call of a running server's owner API under `/admin/`, its
//! URL and key found from the command line, the environment or the config file.

use clap::{ArgGroup, Args, Subcommand};
use secure_server::config::Role;
use secure_server::config::edit::TokenInfo;
use serde_json::{Value, json};

use super::admin_client::{ADMIN_KEY_ENV, AdminClient, AdminError};
use super::output::{print, print_json, print_new_token};
use super::table::{cell, table, token_table};
use super::{Context, NewToken, OwnerError, argument, open, server_addr};

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
    /// Drop the room's kept history (every node's, in a cluster); messages go on numbered
    /// from where they were
    ClearHistory,
    /// Revoke tokens: the token, every token with that label, or a bot by its name
    Revoke {
        /// The token, its label or a bot's name (`-`: read a line from stdin).
        #[arg(value_name = "TOKEN|LABEL")]
        token_or_label: String,
    },
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
            let addr = server_addr(
                &context.config,
                config.as_ref()?.config(),
                context.port,
                context.bind,
            );
            Some(format!("http://{addr}/admin/"))
        })
        .ok_or_else(|| OwnerError::NoConfig(context.config.clone()))?;
    let key = given_key
        .or_else(|| config.and_then(|f| f.config().admin_key.clone()))
        .ok_or_else(|| AdminError::NoKey(context.config.clone()))?;
    Ok(AdminClient::new(&url, &key)?)
}

pub(super) async fn admin(args: AdminArgs, context: &Context) -> Result<(), OwnerError> {
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
                            ["node", "id", "name", "kind", "role", "label", "peer"]
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
                table(
                    &["NODE", "ID", "NAME", "KIND", "ROLE", "LABEL", "PEER"],
                    rows,
                )
            };
            shown(&answer, text)
        }
        AdminAction::ClearHistory => {
            let answer = client.post("history/clear", &json!({})).await?;
            shown(&answer, "History cleared.\n".to_owned())
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
