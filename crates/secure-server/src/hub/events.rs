//! What the other nodes cause, carried out here: frames for this node's members, requests to
//! remove someone, and the backplane's questions when it re-claims what this node holds.

use clichat_proto::ServerFrame;

use super::backplane::{Departure, Event, Holdings, NodeRequest};
use super::room::Dropped;
use super::{Hub, Payload};
use crate::auth::TokenKey;

impl Hub {
    /// Carries out what another node caused. Returns the requests that are not the room's (bans
    /// and unbans) for the server to carry out.
    pub fn apply(&self, event: Event) -> Option<NodeRequest> {
        match event {
            Event::Deliver(payload) => {
                let dropped = self.room().fan_out(u64::MAX, payload, false);
                dropped.log();
            }
            Event::Said { sender, entry } => {
                let plain = Payload::from(
                    ServerFrame::Message {
                        from: entry.from.clone(),
                        text: entry.text.clone(),
                        stamp: None,
                    }
                    .encode(),
                );
                let dropped = self.room().said(sender.unwrap_or(u64::MAX), entry, &plain);
                dropped.log();
            }
            Event::Recent(kept) => self.remember(kept),
            Event::Request(NodeRequest::Forget { node, id }) => {
                let ours = self.node_status().is_some_and(|status| status.node == node);
                if ours {
                    self.forget_held(id);
                }
            }
            Event::Request(NodeRequest::ClearHistory) => {
                if let Some(recent) = self.room().recent.as_mut() {
                    recent.clear();
                }
            }
            Event::Request(NodeRequest::Remove { node, id, reason }) => {
                // Ids are per node: only the member's own node acts.
                let ours = self.node_status().is_some_and(|status| status.node == node);
                if let Some(name) = ours.then(|| self.remove_here(id, &reason)).flatten() {
                    tracing::info!(?name, ?reason, "removed at another node's request");
                }
            }
            Event::Request(NodeRequest::RemoveToken { token, reason }) => {
                if let Some(key) = TokenKey::from_hex(&token) {
                    for name in self.remove_token_here(&key, &reason) {
                        tracing::info!(?name, ?reason, "removed at another node's request");
                    }
                }
            }
            Event::Request(request @ (NodeRequest::Ban { .. } | NodeRequest::Unban { .. })) => {
                return Some(request);
            }
            Event::Holdings(reply) => {
                let _ = reply.send(self.holdings());
            }
            Event::Lost {
                names,
                holds,
                removed,
            } => {
                let _ = removed.send(self.release_lost(&names, &holds));
            }
        }
        None
    }

    /// What this node holds, for the backplane to re-claim after losing touch.
    fn holdings(&self) -> Holdings {
        let room = self.room();
        let members = room
            .members
            .iter()
            .map(|(&id, member)| (member.key.clone(), member.info(id)))
            .collect();
        let login = self.login();
        let holds = if self.inner.one_user_per_token {
            login.holds.keys().copied().collect()
        } else {
            Vec::new()
        };
        Holdings {
            names: login.names.iter().cloned().collect(),
            holds,
            members,
        }
    }

    /// Closes the members whose names (keys) or tokens another node took while this one was
    /// out of touch, and marks them so that logins under way with them are refused at
    /// [`Hub::join`]. The departures are announced here only: the other nodes heard of them
    /// when this one was declared dead (or, if it was not, the name now belongs to someone else
    /// there). Returns the name keys of the members closed.
    fn release_lost(&self, names: &[String], holds: &[TokenKey]) -> Vec<String> {
        let mut room = self.room();
        {
            let mut login = self.login();
            for name in names {
                if login.names.contains(name) {
                    login.lost_names.insert(name.clone());
                }
            }
            for key in holds {
                if login.holds.contains_key(key) {
                    login.lost_holds.insert(*key);
                }
            }
        }
        let lost: Vec<u64> = room
            .members
            .iter()
            .filter(|(_, member)| {
                member
                    .leases
                    .name
                    .keys
                    .iter()
                    .any(|key| names.contains(key))
                    || member.profile.token.is_some_and(|key| holds.contains(&key))
            })
            .map(|(&id, _)| id)
            .collect();
        let mut removed = Vec::new();
        let mut dropped = Dropped::none();
        for id in lost {
            if let Some(member) = room.take(id) {
                let _ = member
                    .reason
                    .set(clichat_proto::refusal::CLUSTER_CONFLICT.to_owned());
                member.evicted.cancel();
                let left = member.leave();
                room.backplane.departed(left.key.clone(), Departure::Silent);
                let bye = Payload::from(ServerFrame::Disconnect(left.name).encode());
                dropped.extend(room.fan_out(id, bye, false));
                removed.push(left.key);
            }
        }
        drop(room);
        dropped.log();
        removed
    }
}
