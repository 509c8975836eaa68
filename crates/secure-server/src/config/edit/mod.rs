//! Editing `secureconfig.json` in place: the owner's `tokens` commands and the owner API.
//!
//! [`ConfigFile::open`] reads the file and keeps its bytes; the editing helpers ([`add_token`],
//! [`add_bot`], [`revoke`]) change the JSON value; [`ConfigFile::save`] writes it back. Every
//! other key is kept, and so is the order of the keys: the new text lists every object's keys
//! in the order the file had them, new keys last (without serde_json's `preserve_order`, which
//! would change key order for every crate of the workspace).
//!
//! A save is safe against the three ways an edit can go wrong:
//! - **Someone else wrote first.** The save re-reads the file and refuses
//!   ([`EditError::Changed`]) if it no longer holds the bytes that were read. Writers that go
//!   through this module hold an exclusive `flock` on the file from that check to the rename, so
//!   two of them cannot both pass the check.
//! - **A crash or `kill -9` mid-write.** The new text goes to a temporary file in the same
//!   directory (`.NAME.tmp-PID-RANDOM`, created exclusively, mode 0600), is synced, and is
//!   renamed over the file, and the directory is synced: the path always holds the old file or
//!   the new one, never a mix. A temporary file left by a killed writer is ignored by everything
//!   and removed by the next save.
//! - **A mistake.** The new text is validated with
//!   [`Config::parse`](crate::config::Config::parse) before anything is written, so a save never
//!   leaves a file the server would refuse.
//!
//! The file keeps its owner, group and permission bits, and a symbolic link keeps pointing to
//! it (the link's target is what gets replaced).
//!
//! Its parts:
//! - `file`: [`ConfigFile`], the file as read, and its save.
//! - `atomic`: the temporary file, rename and syncs of a save, and its lock; also
//!   [`write_atomically`] for the server's own state files (the ban list).
//! - `pretty`: the JSON printer that keeps the file's key order.
//! - `listing`: what may be shown of a token ([`TokenInfo`]), [`list`] and [`find`].
//! - `tokens`: [`add_token`], [`add_bot`] and [`revoke`].
//! - `error`: [`EditError`].
//!
//! Also at its earlier path, `secure_server::config_file`.

mod atomic;
mod error;
mod file;
mod listing;
mod pretty;
mod tokens;

pub use atomic::write_atomically;
pub use error::EditError;
pub use file::ConfigFile;
pub use listing::{TokenInfo, TokenKind, find, list};
pub use tokens::{MAX_LABEL_LEN, add_bot, add_token, revoke};

pub use crate::secrets::fingerprint;

/// What the tests of the editing modules share.
#[cfg(test)]
mod fixtures {
    use super::pretty::Shape;

    pub(super) const CONFIG: &str = r#"{
  "port": 7070,
  "tokens": {
    "existing-token-number-one-abcdef": {"label": "alice"},
    "an-existing-token-number-two-abc": {"inuse": false, "count": 0}
  },
  "filter": ["badword"],
  "bots": {"existing-bot-token-abcdefghij": "echo"},
  "admin_key": "k"
}
"#;

    /// The keys of the object at `path` (keys from the top) in a JSON text, in their order.
    pub(super) fn keys_in(text: &str, path: &[&str]) -> Vec<String> {
        let mut shape = serde_json::from_str::<Shape>(text).unwrap();
        for key in path {
            let Shape::Object(keys) = shape else { panic!() };
            shape = keys.into_iter().find(|(k, _)| k == key).unwrap().1;
        }
        let Shape::Object(keys) = shape else { panic!() };
        keys.into_iter().map(|(k, _)| k).collect()
    }
}
