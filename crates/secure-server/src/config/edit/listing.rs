//! What may be shown of the configured tokens ([`TokenInfo`]: everything but the token), and
//! finding tokens by the token, its label or a bot's name.

use serde::{Deserialize, Serialize};

use super::error::EditError;
use crate::config::{Config, Role};
use crate::secrets::{self, fingerprint};

/// Whether a configured token is a generic (user) token or a bot's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// A generic token (`tokens`), for SAUTH2 logins.
    User,
    /// A bot token (`bots`), for `botauth`.
    Bot,
}

impl TokenKind {
    /// `"user"` or `"bot"`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::User => "user",
            TokenKind::Bot => "bot",
        }
    }
}

/// What may be shown about a configured token: everything but the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// User or bot token.
    pub kind: TokenKind,
    /// The owner's label (user tokens).
    #[serde(default)]
    pub label: Option<String>,
    /// The bot's name (bot tokens).
    #[serde(default)]
    pub name: Option<String>,
    /// What its holder may do.
    pub role: Role,
    /// The token's first characters ([`secrets::mask`]).
    pub masked: String,
    /// [`fingerprint`] of the token: tells tokens apart, and matches the `held` list of
    /// `/_status`, without showing them.
    pub fingerprint: String,
}

impl TokenInfo {
    /// The info of a generic token.
    pub fn user(token: &str, label: Option<&str>, role: Role) -> TokenInfo {
        TokenInfo {
            kind: TokenKind::User,
            label: label.map(str::to_owned),
            name: None,
            role,
            masked: secrets::mask(token),
            fingerprint: fingerprint(token),
        }
    }

    /// The info of a bot token.
    pub fn bot(token: &str, name: &str, role: Role) -> TokenInfo {
        TokenInfo {
            kind: TokenKind::Bot,
            label: None,
            name: Some(name.to_owned()),
            role,
            masked: secrets::mask(token),
            fingerprint: fingerprint(token),
        }
    }

    /// The label of a user token or the name of a bot, for tables.
    pub fn title(&self) -> Option<&str> {
        self.label.as_deref().or(self.name.as_deref())
    }
}

/// Every configured token (user tokens, then bots), by label or name, without the tokens.
pub fn list(config: &Config) -> Vec<TokenInfo> {
    let mut users: Vec<TokenInfo> = config
        .tokens
        .iter()
        .map(|(token, entry)| TokenInfo::user(token, entry.label.as_deref(), entry.role))
        .collect();
    let mut bots: Vec<TokenInfo> = config
        .bots
        .iter()
        .map(|(token, bot)| TokenInfo::bot(token, bot.name(), bot.role()))
        .collect();
    // Sorted by what the owner sees, not by the (secret) tokens.
    let order = |a: &TokenInfo, b: &TokenInfo| {
        (a.title().is_none(), a.title(), &a.fingerprint).cmp(&(
            b.title().is_none(),
            b.title(),
            &b.fingerprint,
        ))
    };
    users.sort_by(order);
    bots.sort_by(order);
    users.extend(bots);
    users
}

/// The configured tokens that `query` names: a user or bot token given in full, or else every
/// user token with that label or every bot with that name.
///
/// # Errors
/// [`EditError::NotFound`] if nothing matches; [`EditError::Ambiguous`] if `query` is both a
/// token label and a bot name.
pub fn find(config: &Config, query: &str) -> Result<Vec<TokenInfo>, EditError> {
    Ok(matching(config, query)?
        .into_iter()
        .map(|(_, info)| info)
        .collect())
}

/// The matches of `query`, with their tokens.
pub(super) fn matching<'a>(
    config: &'a Config,
    query: &str,
) -> Result<Vec<(&'a str, TokenInfo)>, EditError> {
    let users = || {
        config
            .tokens
            .iter()
            .map(|(t, e)| (t.as_str(), TokenInfo::user(t, e.label.as_deref(), e.role)))
    };
    let bots = || {
        config
            .bots
            .iter()
            .map(|(t, b)| (t.as_str(), TokenInfo::bot(t, b.name(), b.role())))
    };
    // Every token is compared (no early exit), in constant time.
    let by_token: Vec<_> = users()
        .chain(bots())
        .filter(|(token, _)| secrets::secret_eq(token, query))
        .collect();
    if !by_token.is_empty() {
        return Ok(by_token);
    }
    let by_label: Vec<_> = users()
        .filter(|(_, info)| info.label.as_deref() == Some(query))
        .collect();
    let by_name: Vec<_> = bots()
        .filter(|(_, info)| info.name.as_deref() == Some(query))
        .collect();
    match (by_label.is_empty(), by_name.is_empty()) {
        (true, true) => Err(EditError::NotFound(shown(query))),
        (false, false) => Err(EditError::Ambiguous(query.to_owned())),
        (false, true) => Ok(by_label),
        (true, false) => Ok(by_name),
    }
}

/// `query` as it may appear in a message: masked when it is long enough to be a token.
fn shown(query: &str) -> String {
    if query.chars().count() >= 24 {
        secrets::mask(query)
    } else {
        query.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::edit::fixtures::CONFIG;

    #[test]
    fn list_shows_no_token() {
        let config = Config::parse(CONFIG, Path::new("c.json")).unwrap();
        let infos = list(&config);
        assert_eq!(infos.len(), 3);
        assert_eq!(infos[0].label.as_deref(), Some("alice"));
        assert_eq!(infos[1].label, None);
        assert_eq!(infos[2].name.as_deref(), Some("echo"));
        let text = serde_json::to_string(&infos).unwrap();
        assert!(!text.contains("existing-"), "{text}");
        assert!(text.contains(r#""kind":"bot""#), "{text}");
    }
}
