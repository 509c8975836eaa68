//! Who a member is: what moderation, the owner API and revocations need to know of it.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::auth::TokenKey;
use crate::config::Role;

/// What kind of login a member made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A person, through SAUTH2.
    #[default]
    User,
    /// A bot, with its bot token.
    Bot,
}

impl Kind {
    /// `"user"` or `"bot"`, as logs and metrics name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::User => "user",
            Kind::Bot => "bot",
        }
    }
}

/// Who a member is, beyond its name: for moderation, the owner API and revocations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Profile {
    /// A user or a bot.
    pub kind: Kind,
    /// What the member may do (as it logged in; the server looks up the role in force).
    pub role: Role,
    /// The token it logged in with (generic or bot).
    pub token: Option<TokenKey>,
    /// The owner's label for that token.
    pub label: Option<String>,
    /// Where it connected from.
    pub peer: Option<SocketAddr>,
}

/// A member as the owner API and moderators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberInfo {
    /// The node it is connected to; `None` for this one.
    pub node: Option<String>,
    /// The connection's id (unique on its node).
    pub id: u64,
    /// The display name.
    pub name: String,
    /// Who it is.
    pub profile: Profile,
}
