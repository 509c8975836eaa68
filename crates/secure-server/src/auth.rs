//! SAUTH2 secrets: the owner's generic and bot tokens, and the temporary tokens and page ids
//! made for each login.
//!
//! Every secret comes from a CSPRNG (`rand`'s thread RNG, a ChaCha stream cipher seeded from
//! the OS), and every comparison of a presented secret is constant-time (`subtle`). Configured
//! tokens are looked up by their SHA-256 digest, so that the lookup's timing depends on a hash
//! an attacker cannot steer, not on how many leading characters of a guess are right.

use std::collections::HashMap;

use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{Config, Role};

/// The characters of a temporary token: letters, digits and `.` (as the original).
const TEMP_TOKEN_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.";
/// Length of a temporary token, as the original.
pub const TEMP_TOKEN_LEN: usize = 100;
/// Length of a generated generic token: 43 alphanumerics, about 256 bits.
const GENERIC_TOKEN_LEN: usize = 43;

/// A configured token's identity: the SHA-256 digest of its text. Used as the key of token
/// holds so that the hub never stores token texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenKey([u8; 32]);

impl TokenKey {
    /// The key of a token text.
    pub fn of(token: &str) -> TokenKey {
        TokenKey(Sha256::digest(token.as_bytes()).into())
    }

    /// The whole digest as 64 hex digits: how the ban list names a token without keeping it.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The key written as [`TokenKey::to_hex`] writes it; `None` for anything else.
    pub fn from_hex(hex: &str) -> Option<TokenKey> {
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut key = [0; 32];
        for (byte, pair) in key.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
            let pair = std::str::from_utf8(pair).ok()?;
            *byte = u8::from_str_radix(pair, 16).ok()?;
        }
        Some(TokenKey(key))
    }

    /// The first 16 hex digits of the digest: enough to tell the owner's tokens apart in
    /// "in use" reports, useless for logging in.
    pub fn fingerprint(&self) -> String {
        self.to_hex()[..16].to_owned()
    }
}

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

/// Constant-time equality of two secrets (the length is not secret).
pub fn secret_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

fn random_string(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

/// A new 100-character temporary token of `[A-Za-z0-9.]`.
pub fn generate_temp_token() -> String {
    random_string(TEMP_TOKEN_CHARS, TEMP_TOKEN_LEN)
}

/// A new generic token for a fresh config file: 43 characters of `[A-Za-z0-9]`.
pub fn generate_generic_token() -> String {
    random_string(&TEMP_TOKEN_CHARS[..62], GENERIC_TOKEN_LEN)
}

/// A new token page id: 128 random bits as 32 lowercase hex digits (URL-safe).
pub fn generate_page_id() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A token shortened for messages: its first four characters and an ellipsis, or `****` for a
/// short one, so that no message ever shows a whole token.
pub fn mask(token: &str) -> String {
    if token.chars().count() < 12 {
        return "****".to_owned();
    }
    let head: String = token.chars().take(4).collect();
    format!("{head}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_tokens_have_the_original_shape() {
        let a = generate_temp_token();
        let b = generate_temp_token();
        assert_eq!(a.len(), 100);
        assert!(a.bytes().all(|c| TEMP_TOKEN_CHARS.contains(&c)));
        assert_ne!(a, b);
    }

    #[test]
    fn page_ids_are_128_bit_hex() {
        let id = generate_page_id();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(id, generate_page_id());
    }

    #[test]
    fn generic_tokens_are_long_alphanumerics() {
        let t = generate_generic_token();
        assert!(t.len() >= 32);
        assert!(t.bytes().all(|c| c.is_ascii_alphanumeric()));
    }

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

    #[test]
    fn masks_tokens() {
        assert_eq!(mask("abcdefghijklmnop"), "abcd…");
        assert_eq!(mask("short"), "****");
    }
}
