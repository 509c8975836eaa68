//! Editing `secureconfig.json` in place: the owner's `tokens` commands and the admin API.
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
//! - **A mistake.** The new text is validated with [`Config::parse`] before anything is
//!   written, so a save never leaves a file the server would refuse.
//!
//! The file keeps its owner, group and permission bits, and a symbolic link keeps pointing to
//! it (the link's target is what gets replaced).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::config::{Config, ConfigError, Role};
use crate::secrets;

pub use crate::secrets::fingerprint;

/// Longest token label, in Unicode scalar values.
pub const MAX_LABEL_LEN: usize = 64;

/// Why an edit of the config file failed. Every message names what it is about; none shows a
/// whole token.
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    /// The file (as read, or as it would be written) is not a valid config.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The file, its directory or a temporary file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file changed after it was read; nothing was written.
    #[error(
        "{path} changed after it was read (someone else edited it); nothing was written, \
         try again"
    )]
    Changed {
        /// The config file.
        path: PathBuf,
    },
    /// No token, token label or bot name matches.
    #[error("no token, token label or bot name `{0}` in the config")]
    NotFound(String),
    /// The text is both a token label and a bot name.
    #[error("`{0}` is both a token label and a bot name; give the token itself")]
    Ambiguous(String),
    /// A token with this label exists already.
    #[error("a token labelled `{0}` exists already; choose another label")]
    DuplicateLabel(String),
    /// A bot with this name exists already.
    #[error("a bot named `{0}` exists already; choose another name")]
    DuplicateBot(String),
    /// A label or name that cannot be used, or a config whose `tokens`/`bots` are not objects.
    #[error("{0}")]
    Invalid(String),
}

/// A config file as read, ready to be saved back only if nobody changed it meanwhile.
///
/// Deliberately not `Debug`: it holds the file's bytes, tokens included.
pub struct ConfigFile {
    path: PathBuf,
    original: Vec<u8>,
    /// The key order of every object in the file, to write them back in the same order.
    shape: Shape,
    config: Config,
}

impl ConfigFile {
    /// Reads the config file at `path`, and returns it with its contents as a JSON value to
    /// edit.
    ///
    /// # Errors
    /// [`EditError::Io`] if it cannot be read (or is not UTF-8); [`EditError::Config`] if it is
    /// not a valid config (the same error the server would give).
    pub fn open(path: &Path) -> Result<(ConfigFile, Value), EditError> {
        let original = fs::read(path).map_err(|source| io_error(path, source))?;
        let text = std::str::from_utf8(&original).map_err(|e| {
            io_error(
                path,
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })?;
        let config = Config::parse(text, path)?;
        // Config::parse accepted the text, so neither can fail; still no panic.
        let invalid = |e: serde_json::Error| EditError::Invalid(format!("{}: {e}", path.display()));
        let value: Value = serde_json::from_str(text).map_err(invalid)?;
        let shape: Shape = serde_json::from_str(text).map_err(invalid)?;
        let file = ConfigFile {
            path: path.to_owned(),
            original,
            shape,
            config,
        };
        Ok((file, value))
    }

    /// The path the file was opened at.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The config as read.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Writes `value` (pretty-printed) as the new file, if the file still holds what
    /// [`ConfigFile::open`] read. See the module documentation for how.
    ///
    /// This blocks (a file lock, file I/O and fsyncs): call it from `spawn_blocking` in async
    /// code. It may be called again after a failure; after a success, open the file again
    /// before the next edit (a second save would find its own write and refuse).
    ///
    /// # Errors
    /// [`EditError::Config`] if `value` is not a valid config (nothing is written);
    /// [`EditError::Changed`] if the file changed since it was read; [`EditError::Io`] if
    /// reading, writing, syncing or renaming fails (the file is then as it was).
    pub fn save(&self, value: &Value) -> Result<(), EditError> {
        let mut text = String::new();
        write_pretty(&mut text, value, Some(&self.shape), 0);
        text.push('\n');
        Config::parse(&text, &self.path)?;

        // A link keeps pointing to the file: the target is what gets replaced.
        let target = fs::canonicalize(&self.path).map_err(|e| io_error(&self.path, e))?;
        let dir = target.parent().unwrap_or(Path::new("/"));
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();

        let lock = Lock::acquire(&target, &self.path)?;
        if lock.contents != self.original {
            return Err(EditError::Changed {
                path: self.path.clone(),
            });
        }
        remove_stale_temp_files(dir, &name);
        replace(&target, &self.path, text.as_bytes(), Some(&lock.file))?;
        drop(lock);
        Ok(())
    }
}

/// Replaces the file at `path` with `bytes` so that a crash at any moment leaves the old file
/// or the new one, never a mix: a temporary file beside it (created readable by its owner
/// only), synced, renamed over `path`, and the directory synced. For state files the server
/// alone writes (the ban list); the config goes through [`ConfigFile::save`], which also checks
/// for concurrent edits.
///
/// # Errors
/// [`EditError::Io`] naming the file; the old file is then as it was.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), EditError> {
    replace(path, path, bytes, None)
}

/// Writes `bytes` to a temporary file beside `target` (with the owner, group and mode of
/// `like`, when given), syncs it, renames it over `target` and syncs the directory. `shown` is
/// the path errors name.
fn replace(
    target: &Path,
    shown: &Path,
    bytes: &[u8],
    like: Option<&File>,
) -> Result<(), EditError> {
    let dir = match target.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = TempFile::create(dir, &name)?;
    temp.write(bytes, like)?;
    fs::rename(&temp.path, target).map_err(|e| io_error(shown, e))?;
    temp.renamed();
    // The rename is durable once the directory is synced.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, e))
}

/// An exclusive `flock` on the config file, held from the "unchanged?" check to the rename,
/// with the file's contents as read under it.
struct Lock {
    file: File,
    contents: Vec<u8>,
}

impl Lock {
    fn acquire(target: &Path, shown: &Path) -> Result<Lock, EditError> {
        let mut file = File::open(target).map_err(|e| io_error(shown, e))?;
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io_error(shown, e.into()))?;
        // Another writer may have renamed a new file over the path while we waited for the
        // lock on the old one: then the file has changed, whatever it holds.
        let locked = file.metadata().map_err(|e| io_error(shown, e))?;
        let now = fs::metadata(target).map_err(|e| io_error(shown, e))?;
        if !same_file(&locked, &now) {
            return Err(EditError::Changed {
                path: shown.to_owned(),
            });
        }
        let mut contents = Vec::new();
        file.read_to_end(&mut contents)
            .map_err(|e| io_error(shown, e))?;
        Ok(Lock { file, contents })
    }
}

#[cfg(unix)]
fn same_file(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    (a.dev(), a.ino()) == (b.dev(), b.ino())
}

#[cfg(not(unix))]
fn same_file(_: &fs::Metadata, _: &fs::Metadata) -> bool {
    true
}

/// The prefix of the temporary files of saves of the file called `name`.
fn temp_prefix(name: &str) -> String {
    format!(".{name}.tmp-")
}

/// Removes temporary files left by writers that were killed before their rename. Called under
/// the lock, so no live writer owns one.
fn remove_stale_temp_files(dir: &Path, name: &str) {
    let prefix = temp_prefix(name);
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// A temporary file next to the config; removed on drop unless it was renamed.
struct TempFile {
    path: PathBuf,
    file: Option<File>,
    renamed: bool,
}

impl TempFile {
    fn create(dir: &Path, name: &str) -> Result<TempFile, EditError> {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let random: u64 = rand::random();
        let path = dir.join(format!(
            "{}{}-{random:016x}",
            temp_prefix(name),
            std::process::id()
        ));
        let file = options.open(&path).map_err(|e| io_error(&path, e))?;
        Ok(TempFile {
            path,
            file: Some(file),
            renamed: false,
        })
    }

    /// Writes and syncs `bytes`, and gives the file the owner, group and mode of `like`.
    fn write(&self, bytes: &[u8], like: Option<&File>) -> Result<(), EditError> {
        let file = self.file.as_ref().expect("open until renamed");
        let err = |e| io_error(&self.path, e);
        (&*file).write_all(bytes).map_err(err)?;
        #[cfg(unix)]
        if let Some(like) = like {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            let want = like.metadata().map_err(err)?;
            let have = file.metadata().map_err(err)?;
            if (want.uid(), want.gid()) != (have.uid(), have.gid()) {
                // Typically root editing a service user's file: the server must still be able
                // to read it.
                std::os::unix::fs::fchown(file, Some(want.uid()), Some(want.gid())).map_err(err)?;
            }
            file.set_permissions(fs::Permissions::from_mode(want.mode() & 0o7777))
                .map_err(err)?;
        }
        #[cfg(not(unix))]
        let _ = like;
        file.sync_all().map_err(err)
    }

    fn renamed(mut self) {
        self.renamed = true;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        drop(self.file.take());
        if !self.renamed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// The key order of a JSON text: every object's keys as they were written, and the same for
/// the values inside.
#[derive(Debug, Default, PartialEq)]
enum Shape {
    /// An object's keys in their order, each with its value's shape.
    Object(Vec<(String, Shape)>),
    /// An array's items' shapes.
    Array(Vec<Shape>),
    /// Anything else.
    #[default]
    Other,
}

impl<'de> Deserialize<'de> for Shape {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Shape, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Shape;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Shape, A::Error> {
                let mut keys: Vec<(String, Shape)> = Vec::new();
                while let Some((key, shape)) = map.next_entry::<String, Shape>()? {
                    // A repeated key: the value is the last one, the place the first one.
                    match keys.iter_mut().find(|(k, _)| *k == key) {
                        Some(entry) => entry.1 = shape,
                        None => keys.push((key, shape)),
                    }
                }
                Ok(Shape::Object(keys))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Shape, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Shape>()? {
                    items.push(item);
                }
                Ok(Shape::Array(items))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Shape, E> {
                Ok(Shape::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Shape, E> {
                Ok(Shape::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Shape, E> {
                Ok(Shape::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Shape, E> {
                Ok(Shape::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<Shape, E> {
                Ok(Shape::Other)
            }
            fn visit_unit<E>(self) -> Result<Shape, E> {
                Ok(Shape::Other)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Appends `value` as pretty JSON (two-space indents, as `serde_json::to_string_pretty`), each
/// object's keys in the order of `shape` first and any others after them.
fn write_pretty(out: &mut String, value: &Value, shape: Option<&Shape>, indent: usize) {
    let pad = |out: &mut String, n: usize| out.extend(std::iter::repeat_n(' ', n));
    match value {
        Value::Object(map) if !map.is_empty() => {
            let known: &[(String, Shape)] = match shape {
                Some(Shape::Object(keys)) => keys,
                _ => &[],
            };
            let ordered = known
                .iter()
                .filter_map(|(key, shape)| Some((key, map.get(key)?, Some(shape))))
                .chain(
                    map.iter()
                        .filter(|(key, _)| !known.iter().any(|(k, _)| k == *key))
                        .map(|(key, value)| (key, value, None)),
                );
            out.push('{');
            for (i, (key, value, shape)) in ordered.enumerate() {
                out.push_str(if i == 0 { "\n" } else { ",\n" });
                pad(out, indent + 2);
                out.push_str(&Value::from(key.as_str()).to_string());
                out.push_str(": ");
                write_pretty(out, value, shape, indent + 2);
            }
            out.push('\n');
            pad(out, indent);
            out.push('}');
        }
        Value::Array(items) if !items.is_empty() => {
            let shapes: &[Shape] = match shape {
                Some(Shape::Array(items)) => items,
                _ => &[],
            };
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                out.push_str(if i == 0 { "\n" } else { ",\n" });
                pad(out, indent + 2);
                write_pretty(out, item, shapes.get(i), indent + 2);
            }
            out.push('\n');
            pad(out, indent);
            out.push(']');
        }
        // Leaves, `{}` and `[]`: as serde_json writes them.
        other => out.push_str(&other.to_string()),
    }
}

fn io_error(path: &Path, source: std::io::Error) -> EditError {
    EditError::Io {
        path: path.to_owned(),
        source,
    }
}

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
fn matching<'a>(config: &'a Config, query: &str) -> Result<Vec<(&'a str, TokenInfo)>, EditError> {
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

/// Adds a new generic token (from the CSPRNG) with `label` and `role` to the config `value`,
/// and returns it.
///
/// # Errors
/// [`EditError::DuplicateLabel`] if a token has this label already; [`EditError::Invalid`] if
/// the label is blank, too long, holds control characters or is a bot's name, or if `value` is
/// not a valid config.
pub fn add_token(value: &mut Value, label: Option<&str>, role: Role) -> Result<String, EditError> {
    let config = as_config(value)?;
    if let Some(label) = label {
        check_text("label", label, MAX_LABEL_LEN)?;
        if config
            .tokens
            .values()
            .any(|e| e.label.as_deref() == Some(label))
        {
            return Err(EditError::DuplicateLabel(label.to_owned()));
        }
        if config.bots.values().any(|b| b.name() == label) {
            return Err(EditError::Invalid(format!(
                "`{label}` is a bot's name; choose another label"
            )));
        }
    }
    let token = new_token(&config);
    let mut entry = Map::new();
    if let Some(label) = label {
        entry.insert("label".into(), json!(label));
    }
    entry.insert("role".into(), json!(role));
    section(value, "tokens")?.insert(token.clone(), Value::Object(entry));
    Ok(token)
}

/// Adds a new bot token (from the CSPRNG) for the bot `name` with `role` to the config `value`,
/// and returns it. A `user` bot is written in the original's form, `"TOKEN": "name"`.
///
/// # Errors
/// [`EditError::DuplicateBot`] if a bot has this name already; [`EditError::Invalid`] if the
/// name is blank, has white space at either end, holds control characters, is a token's
/// label, or if `value` is not a valid config.
pub fn add_bot(value: &mut Value, name: &str, role: Role) -> Result<String, EditError> {
    let config = as_config(value)?;
    check_text("bot name", name, usize::MAX)?;
    if name.trim() != name {
        return Err(EditError::Invalid(
            "a bot name may not begin or end with white space".into(),
        ));
    }
    if config.bots.values().any(|b| b.name() == name) {
        return Err(EditError::DuplicateBot(name.to_owned()));
    }
    if config
        .tokens
        .values()
        .any(|e| e.label.as_deref() == Some(name))
    {
        return Err(EditError::Invalid(format!(
            "`{name}` is a token's label; choose another bot name"
        )));
    }
    let token = new_token(&config);
    let entry = match role {
        Role::User => json!(name),
        role => json!({"name": name, "role": role}),
    };
    section(value, "bots")?.insert(token.clone(), entry);
    Ok(token)
}

/// Removes from the config `value` the tokens that `token_or_label` names (see [`find`]), and
/// returns what was removed.
///
/// # Errors
/// As [`find`], or [`EditError::Invalid`] if `value` is not a valid config.
pub fn revoke(value: &mut Value, token_or_label: &str) -> Result<Vec<TokenInfo>, EditError> {
    let config = as_config(value)?;
    let found = matching(&config, token_or_label)?;
    for (token, info) in &found {
        let key = match info.kind {
            TokenKind::User => "tokens",
            TokenKind::Bot => "bots",
        };
        section(value, key)?.remove(*token);
    }
    Ok(found.into_iter().map(|(_, info)| info).collect())
}

/// The config that `value` holds.
fn as_config(value: &Value) -> Result<Config, EditError> {
    Config::deserialize(value).map_err(|e| EditError::Invalid(format!("not a valid config: {e}")))
}

/// The `tokens` or `bots` object of the config, created if missing.
fn section<'a>(value: &'a mut Value, key: &str) -> Result<&'a mut Map<String, Value>, EditError> {
    let invalid = || EditError::Invalid(format!("`{key}` in the config is not an object"));
    value
        .as_object_mut()
        .ok_or_else(|| EditError::Invalid("the config is not a JSON object".into()))?
        .entry(key)
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(invalid)
}

/// A token that is neither a user nor a bot token yet.
fn new_token(config: &Config) -> String {
    loop {
        let token = secrets::generate_generic_token();
        if !config.tokens.contains_key(&token) && !config.bots.contains_key(&token) {
            return token;
        }
    }
}

fn check_text(what: &str, text: &str, max: usize) -> Result<(), EditError> {
    if text.trim().is_empty() {
        return Err(EditError::Invalid(format!("the {what} is blank")));
    }
    if text.chars().any(char::is_control) {
        return Err(EditError::Invalid(format!(
            "the {what} holds control characters"
        )));
    }
    if text.chars().count() > max {
        return Err(EditError::Invalid(format!(
            "the {what} is longer than {max} characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"{
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

    fn file_with(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secureconfig.json");
        fs::write(&path, text).unwrap();
        (dir, path)
    }

    /// The keys of the object at `path` (keys from the top) in a JSON text, in their order.
    fn keys_in(text: &str, path: &[&str]) -> Vec<String> {
        let mut shape = serde_json::from_str::<Shape>(text).unwrap();
        for key in path {
            let Shape::Object(keys) = shape else { panic!() };
            shape = keys.into_iter().find(|(k, _)| k == key).unwrap().1;
        }
        let Shape::Object(keys) = shape else { panic!() };
        keys.into_iter().map(|(k, _)| k).collect()
    }

    #[test]
    fn add_and_save_keeps_the_other_keys_in_their_order() {
        let (_dir, path) = file_with(CONFIG);
        let (file, mut value) = ConfigFile::open(&path).unwrap();
        let token = add_token(&mut value, Some("bob"), Role::Mod).unwrap();
        let bot = add_bot(&mut value, "helper", Role::Admin).unwrap();
        let plain_bot = add_bot(&mut value, "plain", Role::User).unwrap();
        file.save(&value).unwrap();

        let config = Config::load(&path).unwrap();
        assert_eq!(config.port, 7070);
        assert_eq!(config.filter, ["badword"]);
        assert_eq!(config.admin_key.as_deref(), Some("k"));
        assert_eq!(config.tokens[&token].label.as_deref(), Some("bob"));
        assert_eq!(config.tokens[&token].role, Role::Mod);
        assert_eq!(config.bots[&bot].name(), "helper");
        assert_eq!(config.bots[&bot].role(), Role::Admin);
        let text = fs::read_to_string(&path).unwrap();
        let saved: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            keys_in(&text, &[]),
            ["port", "tokens", "filter", "bots", "admin_key"]
        );
        assert_eq!(saved["bots"][&plain_bot], json!("plain"), "original form");
        assert_eq!(
            keys_in(&text, &["tokens"]),
            [
                "existing-token-number-one-abcdef",
                "an-existing-token-number-two-abc",
                &token
            ],
            "the new token comes last"
        );
        assert_eq!(
            saved["tokens"]["an-existing-token-number-two-abc"],
            json!({"inuse": false, "count": 0}),
            "other entries are kept as they are"
        );
    }

    /// The conflict check: a change made between open and save is never overwritten, and the
    /// error names the file.
    #[test]
    fn a_file_changed_after_open_is_not_overwritten() {
        let (_dir, path) = file_with(CONFIG);
        let (file, mut value) = ConfigFile::open(&path).unwrap();
        add_token(&mut value, Some("bob"), Role::User).unwrap();
        let edited = CONFIG.replace("7070", "7071");
        fs::write(&path, &edited).unwrap();

        let err = file.save(&value).unwrap_err();
        assert!(matches!(err, EditError::Changed { .. }), "{err}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert_eq!(fs::read_to_string(&path).unwrap(), edited);
        assert_eq!(temp_files(&path), 0);

        // Replaced by a rename (as another writer does): changed too.
        let (file, value) = ConfigFile::open(&path).unwrap();
        let other = path.with_extension("new");
        fs::write(&other, CONFIG).unwrap();
        fs::rename(&other, &path).unwrap();
        assert!(matches!(file.save(&value), Err(EditError::Changed { .. })));
    }

    /// Writers racing each other: each either saves or is told the file changed (and tries
    /// again); no addition is lost.
    #[test]
    fn racing_writers_lose_no_update() {
        let (_dir, path) = file_with(CONFIG);
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let path = path.clone();
                std::thread::spawn(move || {
                    loop {
                        let (file, mut value) = ConfigFile::open(&path).unwrap();
                        let token = add_token(&mut value, Some(&format!("t{i}")), Role::User);
                        match file.save(&value) {
                            Ok(()) => return token.unwrap(),
                            Err(EditError::Changed { .. }) => continue,
                            Err(e) => panic!("{e}"),
                        }
                    }
                })
            })
            .collect();
        let tokens: Vec<String> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        let config = Config::load(&path).unwrap();
        assert_eq!(config.tokens.len(), 2 + tokens.len());
        assert!(tokens.iter().all(|t| config.tokens.contains_key(t)));
    }

    #[test]
    fn an_invalid_config_is_never_written() {
        let (_dir, path) = file_with(CONFIG);
        let (file, mut value) = ConfigFile::open(&path).unwrap();
        value["max_frame_bytes"] = json!(1);
        let err = file.save(&value).unwrap_err();
        assert!(err.to_string().contains("max_frame_bytes"), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), CONFIG);
    }

    #[test]
    fn a_broken_file_is_refused_with_its_error() {
        let (_dir, path) = file_with("{\n\"port\": 70,\n");
        let err = ConfigFile::open(&path).err().unwrap();
        assert!(
            matches!(err, EditError::Config(ConfigError::Syntax { line: 3, .. })),
            "{err}"
        );
        let (_dir, path) = file_with(r#"{"tokens": {"x": {"lable": "typo"}}}"#);
        let err = ConfigFile::open(&path).err().unwrap().to_string();
        assert!(err.contains("lable"), "{err}");
    }

    fn temp_files(path: &Path) -> usize {
        fs::read_dir(path.parent().unwrap())
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .contains(".tmp-")
            })
            .count()
    }

    #[test]
    fn leftover_temp_files_are_removed_by_the_next_save() {
        let (_dir, path) = file_with(CONFIG);
        let stale = path
            .parent()
            .unwrap()
            .join(".secureconfig.json.tmp-1-0123456789abcdef");
        fs::write(&stale, "{half a fi").unwrap();
        let (file, mut value) = ConfigFile::open(&path).unwrap();
        add_token(&mut value, None, Role::User).unwrap();
        file.save(&value).unwrap();
        assert_eq!(temp_files(&path), 0);
    }

    #[cfg(unix)]
    #[test]
    fn the_file_keeps_its_mode_and_a_link_keeps_pointing_to_it() {
        use std::os::unix::fs::PermissionsExt;
        let (dir, real) = file_with(CONFIG);
        fs::set_permissions(&real, fs::Permissions::from_mode(0o640)).unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&real, &link).unwrap();

        let (file, mut value) = ConfigFile::open(&link).unwrap();
        let token = add_token(&mut value, None, Role::User).unwrap();
        file.save(&value).unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(Config::load(&real).unwrap().tokens.contains_key(&token));
        let mode = fs::metadata(&real).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o640);
    }

    #[test]
    fn duplicate_labels_and_bot_names_are_refused() {
        let mut value: Value = serde_json::from_str(CONFIG).unwrap();
        let before = value.clone();
        assert!(matches!(
            add_token(&mut value, Some("alice"), Role::User),
            Err(EditError::DuplicateLabel(l)) if l == "alice"
        ));
        assert!(matches!(
            add_bot(&mut value, "echo", Role::User),
            Err(EditError::DuplicateBot(n)) if n == "echo"
        ));
        assert!(matches!(
            add_token(&mut value, Some("echo"), Role::User),
            Err(EditError::Invalid(_))
        ));
        assert!(matches!(
            add_bot(&mut value, "alice", Role::User),
            Err(EditError::Invalid(_))
        ));
        for bad in ["", "  ", "a\nb"] {
            assert!(add_token(&mut value, Some(bad), Role::User).is_err());
            assert!(add_bot(&mut value, bad, Role::User).is_err());
        }
        assert!(add_bot(&mut value, " padded", Role::User).is_err());
        assert_eq!(value, before);
    }

    #[test]
    fn revoke_by_token_label_or_bot_name() {
        let mut value: Value = serde_json::from_str(CONFIG).unwrap();
        let revoked = revoke(&mut value, "an-existing-token-number-two-abc").unwrap();
        assert_eq!(revoked.len(), 1);
        assert_eq!(revoked[0].kind, TokenKind::User);
        assert_eq!(revoked[0].masked, "an-e…");
        assert_eq!(
            revoked[0].fingerprint,
            fingerprint("an-existing-token-number-two-abc")
        );

        let revoked = revoke(&mut value, "alice").unwrap();
        assert_eq!(revoked[0].label.as_deref(), Some("alice"));
        let revoked = revoke(&mut value, "echo").unwrap();
        assert_eq!(revoked[0].kind, TokenKind::Bot);
        assert_eq!(revoked[0].name.as_deref(), Some("echo"));
        assert_eq!(value["tokens"], json!({}));
        assert_eq!(value["bots"], json!({}));
        assert!(value["port"] == 7070 && value["filter"] == json!(["badword"]));

        let err = revoke(&mut value, "alice").unwrap_err();
        assert!(matches!(err, EditError::NotFound(_)), "{err}");
        // A token-sized query is masked in the message.
        let err = revoke(&mut value, "a-long-token-that-is-not-configured")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("not-configured"), "{err}");
    }

    #[test]
    fn a_label_shared_by_hand_edited_tokens_revokes_them_all() {
        let mut value = json!({"tokens": {"t1": {"label": "x"}, "t2": {"label": "x"}, "t3": {}}});
        assert_eq!(revoke(&mut value, "x").unwrap().len(), 2);
        assert_eq!(value, json!({"tokens": {"t3": {}}}));
    }

    #[test]
    fn a_label_that_is_also_a_bot_name_is_ambiguous() {
        let mut value = json!({"tokens": {"t1": {"label": "x"}}, "bots": {"b1": "x"}});
        assert!(matches!(
            revoke(&mut value, "x"),
            Err(EditError::Ambiguous(_))
        ));
        assert_eq!(revoke(&mut value, "b1").unwrap()[0].kind, TokenKind::Bot);
    }

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

    /// The file is written as serde_json's pretty printer would, but for the order of keys.
    #[test]
    fn pretty_printing_matches_serde_json() {
        let value = json!({
            "a": [], "b": {}, "c": [1, {"x": null, "y": [true, 2.5]}], "d": "q\"\u{1}é\n",
            "e": {"f": {"g": -1}}, "h\"": u64::MAX
        });
        let mut text = String::new();
        write_pretty(&mut text, &value, None, 0);
        assert_eq!(text, serde_json::to_string_pretty(&value).unwrap());

        let original =
            r#"{"z": 1, "limits": {"b": 1, "a": 2}, "list": [{"y": 1, "x": 2}], "m": 3}"#;
        let shape = serde_json::from_str::<Shape>(original).unwrap();
        let mut value: Value = serde_json::from_str(original).unwrap();
        value["new"] = json!(0);
        value.as_object_mut().unwrap().remove("m");
        let mut text = String::new();
        write_pretty(&mut text, &value, Some(&shape), 0);
        assert_eq!(keys_in(&text, &[]), ["z", "limits", "list", "new"]);
        assert_eq!(keys_in(&text, &["limits"]), ["b", "a"]);
        assert!(text.contains("\"y\": 1,\n      \"x\": 2"), "{text}");
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), value);
    }
}
