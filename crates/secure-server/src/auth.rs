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

use crate::config::Config;

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
    pub(crate) fn of(token: &str) -> TokenKey {
        TokenKey(Sha256::digest(token.as_bytes()).into())
    }
}

/// The owner's tokens, ready for constant-time checks. Its `Debug` output shows counts only.
#[derive(Default)]
pub struct Tokens {
    users: HashMap<TokenKey, String>,
    /// Bot token digest -> (token, bot name).
    bots: HashMap<TokenKey, (String, String)>,
}

impl Tokens {
    /// Indexes the tokens of a config.
    pub fn new(config: &Config) -> Tokens {
        Tokens {
            users: config
                .tokens
                .keys()
                .map(|t| (TokenKey::of(t), t.clone()))
                .collect(),
            bots: config
                .bots
                .iter()
                .map(|(t, name)| (TokenKey::of(t), (t.clone(), name.clone())))
                .collect(),
        }
    }

    /// The key of a configured generic token, or `None` if `presented` is not one.
    pub fn check_user(&self, presented: &str) -> Option<TokenKey> {
        let key = TokenKey::of(presented);
        let stored = self.users.get(&key)?;
        secret_eq(stored, presented).then_some(key)
    }

    /// Whether `presented` is the token of the bot called `name`.
    pub fn check_bot(&self, name: &str, presented: &str) -> bool {
        self.bots
            .get(&TokenKey::of(presented))
            .is_some_and(|(stored, bot)| secret_eq(stored, presented) && bot == name)
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
        let config: Config =
            serde_json::from_str(r#"{"tokens":{"user-token":{}},"bots":{"bot-token":"echo"}}"#)
                .unwrap();
        let tokens = Tokens::new(&config);
        assert!(tokens.check_user("user-token").is_some());
        assert!(tokens.check_user("user-toke").is_none());
        assert!(tokens.check_user("bot-token").is_none());
        assert!(tokens.check_bot("echo", "bot-token"));
        assert!(!tokens.check_bot("other", "bot-token"));
        assert!(!tokens.check_bot("echo", "user-token"));
    }

    #[test]
    fn masks_tokens() {
        assert_eq!(mask("abcdefghijklmnop"), "abcd…");
        assert_eq!(mask("short"), "****");
    }
}
