//! The first run: when there is no config file, one is written with the defaults and a
//! freshly generated generic token, shown to the owner once. An existing file is never
//! overwritten.

use std::io::Write;
use std::path::Path;

use crate::config::{Config, ConfigError, TokenEntry};
use crate::secrets;

/// A config file freshly written with the defaults. Deliberately not `Debug`: it holds a token.
pub struct Created {
    /// The config as written.
    pub config: Config,
    /// The generated generic token, to show the owner once.
    pub token: String,
}

/// Loads the config at `path`, or, when there is no file there, writes one with the defaults
/// and a freshly generated generic token. An existing file is never overwritten.
///
/// # Errors
/// As [`Config::load`], or [`ConfigError::Io`] when the new file cannot be written.
pub fn load_or_create(path: &Path) -> Result<(Config, Option<Created>), ConfigError> {
    match std::fs::symlink_metadata(path) {
        Ok(_) => Ok((Config::load(path)?, None)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let created = create(path)?;
            Ok((created.config.clone(), Some(created)))
        }
        Err(source) => Err(ConfigError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes a new config file with the defaults and one generated token; fails if the file
/// exists (`create_new`), so that nothing is ever overwritten.
fn create(path: &Path) -> Result<Created, ConfigError> {
    let token = secrets::generate_generic_token();
    let mut config = Config::default();
    config.tokens.insert(token.clone(), TokenEntry::default());
    let io_err = |source| ConfigError::Io {
        path: path.to_owned(),
        source,
    };
    let mut text = serde_json::to_string_pretty(&config).expect("a Config always serializes");
    text.push('\n');
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        // It holds secrets: readable by its owner only.
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io_err)?;
    file.write_all(text.as_bytes()).map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    Ok(Created { config, token })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_file_is_created_once_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secureconfig.json");
        let (config, created) = load_or_create(&path).unwrap();
        let created = created.expect("a new file");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "only its owner may read it: {mode:o}");
        }
        assert!(created.token.len() >= 32);
        assert!(config.tokens.contains_key(&created.token));
        assert_eq!(Config::load(&path).unwrap(), config);

        let (again, created_again) = load_or_create(&path).unwrap();
        assert!(created_again.is_none());
        assert_eq!(again, config);
    }
}
