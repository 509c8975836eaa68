//! The owner's tokens: which configured generic and bot tokens admit whom, and with what
//! label and role.
//!
//! Configured tokens are looked up by their [`TokenKey`] (their SHA-256 digest), so that the
//! lookup's timing depends on a hash an attacker cannot steer, not on how many leading
//! characters of a guess are right; the token found is then compared in constant time. The
//! secrets themselves (generation, comparison, masking, fingerprints) are in [`crate::secrets`].

use std::collections::HashMap;

use crate::config::{Config, Role};
use crate::secrets::secret_eq;

pub use crate::secrets::TokenKey;
// At its earlier path, for the hub's token pages.
pub(crate) use crate::secrets::generate_page_id;

/// The owner's tokens, ready for constant-time checks. Its `Debug` output shows counts only.
#[derive(Default)]
pub struct Tokens {
    users: HashMap<TokenKey, Stored>,
    bots: HashMap<TokenKey, Stored>,
}

/// A configured token, kept for the constant-time comparison, with what it grants.
struct Stored {
    token: String,
    /// The bot's name (bots only).
    name: String,
    label: Option<String>,
    role: Role,
}

/// A configured token that was presented correctly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The token's identity.
    pub key: TokenKey,
    /// The owner's label for the token, if any.
    pub label: Option<String>,
    /// What its holder may do.
    pub role: Role,
}

impl Tokens {
    /// Indexes the tokens of a config.
    pub fn new(config: &Config) -> Tokens {
        Tokens {
            users: config
                .tokens
                .iter()
                .map(|(t, entry)| {
                    let stored = Stored {
                        token: t.clone(),
                        name: String::new(),
                        label: entry.label.clone(),
                        role: entry.role,
                    };
                    (TokenKey::of(t), stored)
                })
                .collect(),
            bots: config
                .bots
                .iter()
                .map(|(t, bot)| {
                    let stored = Stored {
                        token: t.clone(),
                        name: bot.name().to_owned(),
                        label: None,
                        role: bot.role(),
                    };
                    (TokenKey::of(t), stored)
                })
                .collect(),
        }
    }

    /// What a configured generic token grants, or `None` if `presented` is not one.
    pub fn check_user(&self, presented: &str) -> Option<Grant> {
        let key = TokenKey::of(presented);
        let stored = self.users.get(&key)?;
        secret_eq(&stored.token, presented).then(|| stored.grant(key))
    }

    /// What the token of the bot called `name` grants, or `None` if `presented` is not it.
    pub fn check_bot(&self, name: &str, presented: &str) -> Option<Grant> {
        let key = TokenKey::of(presented);
        let stored = self.bots.get(&key)?;
        (secret_eq(&stored.token, presented) && stored.name == name).then(|| stored.grant(key))
    }

    /// The keys of every configured token, user and bot.
    pub fn keys(&self) -> impl Iterator<Item = &TokenKey> {
        self.users.keys().chain(self.bots.keys())
    }

    /// The role the token with this key has now (a reload may have changed it); `None` once it
    /// is not configured any more.
    pub fn role_of(&self, key: &TokenKey) -> Option<Role> {
        self.users
            .get(key)
            .or_else(|| self.bots.get(key))
            .map(|stored| stored.role)
    }

    /// Whether the token with this key is still configured (as a user or bot token).
    pub fn contains(&self, key: &TokenKey) -> bool {
        self.users.contains_key(key) || self.bots.contains_key(key)
    }
}

impl Stored {
    fn grant(&self, key: TokenKey) -> Grant {
        Grant {
            key,
            label: self.label.clone(),
            role: self.role,
        }
    }
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("users", &self.users.len())
            .field("bots", &self.bots.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_tokens() {
        let config: Config = serde_json::from_str(
            r#"{"tokens": {"user-token": {}, "mod-token": {"label": "m", "role": "mod"}},
                "bots": {"bot-token": "echo", "admin-bot": {"name": "boss", "role": "admin"}}}"#,
        )
        .unwrap();
        let tokens = Tokens::new(&config);
        let user = tokens.check_user("user-token").unwrap();
        assert_eq!((user.role, user.label), (Role::User, None));
        let moderator = tokens.check_user("mod-token").unwrap();
        assert_eq!(
            (moderator.role, moderator.label.as_deref()),
            (Role::Mod, Some("m"))
        );
        assert!(tokens.check_user("user-toke").is_none());
        assert!(tokens.check_user("bot-token").is_none());
        assert_eq!(
            tokens.check_bot("echo", "bot-token").unwrap().role,
            Role::User
        );
        assert_eq!(
            tokens.check_bot("boss", "admin-bot").unwrap().role,
            Role::Admin
        );
        assert!(tokens.check_bot("other", "bot-token").is_none());
        assert!(tokens.check_bot("echo", "user-token").is_none());
        assert!(tokens.contains(&TokenKey::of("admin-bot")));
        assert!(!tokens.contains(&TokenKey::of("nope")));
    }
}
