//! [`EditError`]: why an edit of the config file failed.

use std::path::{Path, PathBuf};

use crate::config::ConfigError;

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

/// An I/O error about `path`.
pub(super) fn io_error(path: &Path, source: std::io::Error) -> EditError {
    EditError::Io {
        path: path.to_owned(),
        source,
    }
}
