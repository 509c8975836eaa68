//! Bans: tokens refused at login until a time, or until lifted.
//!
//! A ban names the token by its SHA-256 digest (never the token itself), with the banned
//! user's name, the token's label and role, the reason and the end. A login without a token (an
//! open room's, `"SAUTH2": false`) is banned by its name (compared by `names::key`) and the
//! address it came from instead. With a config file, bans
//! live in a state file beside it (`secureconfig.bans.json` for `secureconfig.json`), rewritten
//! atomically on every change, so they survive restarts; without one (tests, embedding) they
//! live in memory.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::Role;
use crate::secrets::TokenKey;

/// One ban.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ban {
    /// The name the banned connection had.
    pub username: String,
    /// The SHA-256 digest of the banned token, as hex; `None` for a login without a token,
    /// banned by name and address instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// For a login without a token: the address it came from, refused under any name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
    /// The token's label, if the owner gave it one.
    #[serde(default)]
    pub label: Option<String>,
    /// The banned token's role, so that a mod cannot lift an admin's ban.
    #[serde(default)]
    pub role: Role,
    /// Why, as given by whoever banned.
    pub reason: String,
    /// When the ban ends, in seconds since the Unix epoch; `None`: until lifted.
    pub until: Option<u64>,
}

/// The longest ban with an end: longer ones (a moderator may ask for 2^64 - 1 minutes) are cut
/// to this, about a thousand years.
pub const MAX_MINUTES: u64 = 1_000 * 366 * 24 * 60;
/// The last second RFC 3339 can write (9999-12-31T23:59:59Z): an end in a file past it is shown
/// as it.
const LAST_WRITABLE_SECS: u64 = 253_402_300_799;

impl Ban {
    /// The end of a ban of `minutes` from now (cut to [`MAX_MINUTES`]), in seconds since the
    /// Unix epoch; `None` for a ban until lifted.
    pub fn end_after(minutes: Option<u64>) -> Option<u64> {
        minutes.map(|m| now_secs().saturating_add(m.min(MAX_MINUTES) * 60))
    }

    /// The end of the ban as an RFC 3339 UTC time, or `None` for a ban until lifted.
    pub fn until_text(&self) -> Option<String> {
        self.until.map(|secs| {
            let end = UNIX_EPOCH + Duration::from_secs(secs.min(LAST_WRITABLE_SECS));
            humantime::format_rfc3339_seconds(end).to_string()
        })
    }

    fn active(&self, now: u64) -> bool {
        self.until.is_none_or(|until| until > now)
    }
}

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Why the ban list could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum BansError {
    /// The state file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The state file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The state file could not be saved.
    #[error(transparent)]
    Save(crate::config::edit::EditError),
    /// The state file is not a ban list.
    #[error("{path}: not a ban list: {source}")]
    Syntax {
        /// The state file.
        path: PathBuf,
        /// What is wrong.
        source: serde_json::Error,
    },
}

/// The server's bans.
#[derive(Debug)]
pub struct Bans {
    file: Option<PathBuf>,
    list: Mutex<Vec<Ban>>,
}

impl Bans {
    /// Bans kept in memory only.
    pub fn in_memory() -> Bans {
        Bans {
            file: None,
            list: Mutex::default(),
        }
    }

    /// The state file that goes with the config file at `config`.
    pub fn file_for(config: &Path) -> PathBuf {
        let stem = config
            .file_stem()
            .map_or_else(|| "secureconfig".into(), |s| s.to_string_lossy());
        config.with_file_name(format!("{stem}.bans.json"))
    }

    /// Loads the bans kept in `file` (none if it does not exist yet).
    ///
    /// # Errors
    /// [`BansError`] when the file exists but cannot be read or is not a ban list.
    pub fn load(file: PathBuf) -> Result<Bans, BansError> {
        let list = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| BansError::Syntax {
                path: file.clone(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(BansError::Io { path: file, source }),
        };
        Ok(Bans {
            file: Some(file),
            list: Mutex::new(list),
        })
    }

    fn list(&self) -> MutexGuard<'_, Vec<Ban>> {
        self.list.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The ban in force on the token `key` now, if any.
    pub fn check(&self, key: &TokenKey) -> Option<Ban> {
        let hex = key.to_hex();
        let now = now_secs();
        self.list()
            .iter()
            .find(|ban| ban.token.as_deref() == Some(hex.as_str()) && ban.active(now))
            .cloned()
    }

    /// The ban in force now on a login without a token called `name` (or a look-alike) or
    /// coming from `address`, if any.
    pub fn check_tokenless(&self, name: &str, address: Option<IpAddr>) -> Option<Ban> {
        let now = now_secs();
        self.list()
            .iter()
            .filter(|ban| ban.token.is_none() && ban.active(now))
            .find(|ban| {
                crate::names::look_alike(&ban.username, name)
                    || address.is_some_and(|ip| ban.address == Some(ip))
            })
            .cloned()
    }

    /// Every ban in force now.
    pub fn active(&self) -> Vec<Ban> {
        let now = now_secs();
        self.list()
            .iter()
            .filter(|ban| ban.active(now))
            .cloned()
            .collect()
    }

    /// Adds a ban (replacing an earlier ban of the same token, or of the same name for a login
    /// without a token) and saves the list.
    ///
    /// # Errors
    /// [`BansError::Io`] when the state file cannot be written; the ban holds in memory anyway.
    pub fn add(&self, ban: Ban) -> Result<(), BansError> {
        let mut list = self.list();
        let now = now_secs();
        let same = |old: &Ban| match (&old.token, &ban.token) {
            (Some(old), Some(new)) => old == new,
            (None, None) => crate::names::look_alike(&old.username, &ban.username),
            _ => false,
        };
        list.retain(|old| !same(old) && old.active(now));
        list.push(ban);
        self.save(&list)
    }

    /// Lifts the bans that `matches` picks; saves the list. Returns the bans lifted.
    ///
    /// # Errors
    /// [`BansError::Io`] when the state file cannot be written.
    pub fn lift(&self, matches: impl Fn(&Ban) -> bool) -> Result<Vec<Ban>, BansError> {
        let mut list = self.list();
        let now = now_secs();
        let (lifted, kept) = list
            .drain(..)
            .filter(|ban| ban.active(now))
            .partition(|ban| matches(ban));
        *list = kept;
        self.save(&list)?;
        Ok(lifted)
    }

    fn save(&self, list: &[Ban]) -> Result<(), BansError> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let mut text = serde_json::to_string_pretty(list).unwrap_or_else(|_| "[]".to_owned());
        text.push('\n');
        crate::config::edit::write_atomically(file, text.as_bytes()).map_err(BansError::Save)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(name: &str, role: Role, until: Option<u64>) -> Ban {
        Ban {
            username: name.to_owned(),
            token: Some(TokenKey::of(name).to_hex()),
            address: None,
            label: Some(format!("{name}-label")),
            role,
            reason: "spam".to_owned(),
            until,
        }
    }

    #[test]
    fn bans_hold_until_they_end_and_survive_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let file = Bans::file_for(&dir.path().join("secureconfig.json"));
        assert!(file.ends_with("secureconfig.bans.json"));
        let bans = Bans::load(file.clone()).unwrap();
        bans.add(ban("alice", Role::User, None)).unwrap();
        bans.add(ban("bob", Role::User, Some(now_secs() + 60)))
            .unwrap();
        bans.add(ban("old", Role::User, Some(now_secs() - 1)))
            .unwrap();

        let reloaded = Bans::load(file).unwrap();
        assert!(reloaded.check(&TokenKey::of("alice")).is_some());
        let bob = reloaded.check(&TokenKey::of("bob")).unwrap();
        assert!(bob.until_text().unwrap().ends_with('Z'));
        assert!(reloaded.check(&TokenKey::of("old")).is_none(), "expired");
        assert!(reloaded.check(&TokenKey::of("carol")).is_none());
    }

    #[test]
    fn lifting_removes_the_matching_bans_only() {
        let bans = Bans::in_memory();
        bans.add(ban("user", Role::User, None)).unwrap();
        bans.add(ban("boss", Role::Admin, None)).unwrap();
        assert_eq!(bans.lift(|b| b.role < Role::Mod).unwrap().len(), 1);
        assert!(bans.check(&TokenKey::of("user")).is_none());
        assert!(bans.check(&TokenKey::of("boss")).is_some());
        assert_eq!(
            bans.lift(|b| b.label.as_deref() == Some("boss-label"))
                .unwrap()
                .len(),
            1
        );
        assert!(bans.active().is_empty());
    }

    #[test]
    fn logins_without_a_token_are_banned_by_name_and_address() {
        let bans = Bans::in_memory();
        let address: IpAddr = "203.0.113.5".parse().unwrap();
        let tokenless = Ban {
            token: None,
            address: Some(address),
            ..ban("troll", Role::User, None)
        };
        bans.add(tokenless).unwrap();
        assert!(bans.check_tokenless("TROLL", None).is_some(), "by name");
        assert!(
            bans.check_tokenless("tr0ll", None).is_some(),
            "a look-alike"
        );
        assert!(
            bans.check_tokenless("friend", Some(address)).is_some(),
            "by address"
        );
        assert!(
            bans.check_tokenless("friend", Some("203.0.113.6".parse().unwrap()))
                .is_none()
        );
        assert!(
            bans.check(&TokenKey::of("troll")).is_none(),
            "no token banned"
        );
        // Files written before tokenless bans still load.
        let old: Vec<Ban> =
            serde_json::from_str(r#"[{"username":"a","token":"ab","reason":"r","until":null}]"#)
                .unwrap();
        assert_eq!(old[0].token.as_deref(), Some("ab"));
    }

    #[test]
    fn a_broken_state_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.bans.json");
        std::fs::write(&file, "{not json").unwrap();
        let err = Bans::load(file).unwrap_err().to_string();
        assert!(err.contains("x.bans.json"), "{err}");
    }
}
