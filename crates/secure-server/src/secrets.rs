//! Secrets and what may be shown of them: new generic tokens, temporary tokens and page ids
//! (CSPRNG), constant-time comparison, masking, and a token's identity ([`TokenKey`]) and
//! [`fingerprint`].
//!
//! Every secret comes from a CSPRNG (`rand`'s thread RNG, a ChaCha stream cipher seeded from
//! the OS), and every comparison of a presented secret is constant-time (`subtle`). A token is
//! known elsewhere by its SHA-256 digest, so that lookups' timing depends on a hash an attacker
//! cannot steer, and so that nothing needs to keep the token's text. This module uses nothing
//! else of the crate.

use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

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
    /// "in use" reports, useless for logging in. The one definition of a token's fingerprint
    /// (see [`fingerprint`]).
    pub fn fingerprint(&self) -> String {
        self.to_hex()[..16].to_owned()
    }
}

/// A token's fingerprint: the first 16 hex digits of its SHA-256 ([`TokenKey::fingerprint`]).
/// Safe to show and to log; the same token always has the same fingerprint.
pub fn fingerprint(token: &str) -> String {
    TokenKey::of(token).fingerprint()
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

/// A new resume token: 43 characters of `[A-Za-z0-9]`, about 256 bits. The server keeps only
/// its [`TokenKey`].
pub fn generate_resume_token() -> String {
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

/// A Redis URL with any password in it replaced by `****`, for logs and `check`: the rest (the
/// scheme, user, host, port and database) is what an owner needs to see.
pub fn url_without_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme + 3 => {
            let user_info = &url[scheme + 3..at];
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{}{user}:****{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
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
    fn passwords_leave_urls() {
        assert_eq!(
            url_without_password("redis://:hunter2@10.0.0.1:6379/0"),
            "redis://:****@10.0.0.1:6379/0"
        );
        assert_eq!(
            url_without_password("rediss://user:pw@h/1"),
            "rediss://user:****@h/1"
        );
        assert_eq!(url_without_password("redis://h:6379"), "redis://h:6379");
    }

    #[test]
    fn masks_tokens() {
        assert_eq!(mask("abcdefghijklmnop"), "abcd…");
        assert_eq!(mask("short"), "****");
    }

    #[test]
    fn fingerprints_are_16_hex_digits() {
        let f = fingerprint("abc");
        assert_eq!(f, "ba7816bf8f01cfea", "SHA-256 of abc");
    }
}
