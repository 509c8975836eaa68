//! Moderation frames (APIv2): `kick`, `ban`, `unban` and `who`. Users may not moderate; mods
//! act on users, admins on users and mods, as their roles are in force now; in a cluster, on
//! every node.

use std::sync::Arc;

use clichat_proto::{ClientFrame, ServerFrame, refusal};
use tracing::{info, warn};

use super::{LOG_TARGET, Session};
use crate::Server;
use crate::config::Role;
use crate::hub::MemberInfo;
use crate::names;

impl Session {
    /// Carries out a moderation frame (APIv2) from `actor`; returns the answer to send, if any.
    /// Users may not moderate; mods act on users, admins on users and mods.
    /// In a cluster it acts on every node; while the cluster cannot be reached it is refused.
    pub(super) async fn moderate(
        server: Arc<Server>,
        actor: &str,
        role: Role,
        frame: ClientFrame,
    ) -> Option<ServerFrame> {
        let not_permitted = Some(ServerFrame::Refusal(refusal::NOT_PERMITTED.to_owned()));
        if role < Role::Mod {
            return not_permitted;
        }
        let hub = &server.hub;
        match frame {
            ClientFrame::Who => Some(match hub.who().await {
                Ok(names) => ServerFrame::Users(names),
                Err(_) => ServerFrame::Refusal(refusal::CLUSTER_UNAVAILABLE.to_owned()),
            }),
            ClientFrame::Kick { username, reason } => {
                let reason = reason.unwrap_or_default();
                let target = match target_of(&server, username.as_deref(), role).await {
                    Ok(target) => target,
                    Err(answer) => return answer,
                };
                if hub.remove(&target, &refusal::kicked(&reason)) {
                    info!(target: LOG_TARGET, ?actor, target = ?target.name, ?reason, "kicked");
                }
                None
            }
            ClientFrame::Ban {
                username,
                reason,
                minutes,
            } => {
                let reason = reason.unwrap_or_default();
                let target = match target_of(&server, username.as_deref(), role).await {
                    Ok(target) => target,
                    Err(answer) => return answer,
                };
                if let Err(error) = server.ban_member(&target, &reason, minutes) {
                    warn!(target: LOG_TARGET, %error, "the ban holds, but could not be saved");
                }
                info!(
                    target: LOG_TARGET,
                    ?actor,
                    target = ?target.name,
                    ?reason,
                    ?minutes,
                    "banned"
                );
                None
            }
            ClientFrame::Unban {
                username,
                token_label,
            } => {
                // As with kicks: only bans of lower roles.
                let lifted = server.lift_bans(|ban| {
                    ban.role < role
                        && (username
                            .as_deref()
                            .is_some_and(|n| names::look_alike(n, &ban.username))
                            || token_label.is_some() && token_label == ban.label)
                });
                match lifted {
                    Ok(lifted) => info!(target: LOG_TARGET, ?actor, lifted, "unbanned"),
                    Err(error) => {
                        warn!(target: LOG_TARGET, %error, "the unban holds, but could not be saved")
                    }
                }
                None
            }
            _ => None,
        }
    }
}

/// The member a kick or ban by someone of `role` aims at, on any node; otherwise the answer to
/// send: nothing if nobody of that name is connected, a refusal if the target's role (as in
/// force now) is not lower or the cluster cannot be asked.
async fn target_of(
    server: &Server,
    username: Option<&str>,
    role: Role,
) -> Result<MemberInfo, Option<ServerFrame>> {
    let answer = |text: &str| Some(ServerFrame::Refusal(text.to_owned()));
    let found = server
        .hub
        .find(username.ok_or(None)?)
        .await
        .map_err(|_| answer(refusal::CLUSTER_UNAVAILABLE))?;
    let target = found.ok_or(None)?;
    if server.role_of(&target.profile) >= role {
        return Err(answer(refusal::NOT_PERMITTED));
    }
    Ok(target)
}
