//! Who is in the room, here and on every node: for `who`, `members`, moderation, the owner API
//! and "in use" reports.

use std::collections::HashSet;

use super::{Hub, MemberInfo, Refused};
use crate::auth::TokenKey;
use crate::names;

impl Hub {
    /// Everyone in the room here, in the order they joined.
    pub fn members(&self) -> Vec<MemberInfo> {
        let room = self.room();
        let mut members: Vec<MemberInfo> = room
            .members
            .iter()
            .map(|(&id, member)| member.info(id))
            .collect();
        drop(room);
        members.sort_by_key(|member| member.id);
        members
    }

    /// The member called `name` (or a name that looks the same: compared by [`names::key`], as
    /// names are reserved), on any node.
    pub async fn find(&self, name: &str) -> Result<Option<MemberInfo>, Refused> {
        let keys = names::keys(name);
        let here = {
            let room = self.room();
            room.members
                .iter()
                .find(|(_, member)| member.leases.name.keys.iter().any(|k| keys.contains(k)))
                .map(|(&id, member)| member.info(id))
        };
        let key = &keys[0];
        match here {
            Some(member) => Ok(Some(member)),
            None => Ok(self.backplane().find(key).await?),
        }
    }

    /// Everyone in the room, on every node: this node's in the order they joined (with `node`
    /// `None`), then the others' (with their node's name).
    pub async fn everyone(&self) -> Result<Vec<MemberInfo>, Refused> {
        let mut members = self.members();
        members.extend(self.backplane().others().await?);
        Ok(members)
    }

    /// The tokens held by members on every node (and by logins under way here), for "in use"
    /// reports; this node's alone while the others cannot be asked.
    pub async fn tokens_in_use(&self) -> HashSet<TokenKey> {
        let mut held: HashSet<TokenKey> = self.held_tokens().into_iter().collect();
        if let Ok(others) = self.backplane().others().await {
            held.extend(others.into_iter().filter_map(|member| member.profile.token));
        }
        held
    }

    /// The names of everyone in the room, on every node: this node's in the order they
    /// joined, then the others'.
    pub async fn who(&self) -> Result<Vec<String>, Refused> {
        let here = self.members().into_iter().map(|m| m.name);
        let others = self.backplane().others().await?;
        Ok(here.chain(others.into_iter().map(|m| m.name)).collect())
    }

    /// The tokens held now (under 1UPT, or not), for "in use" reports.
    pub fn held_tokens(&self) -> Vec<TokenKey> {
        self.login().holds.keys().copied().collect()
    }
}
