//! [`ConfigFile`]: a config file as read, saved back with an edit only if nobody changed it
//! meanwhile, validated, atomically, and with its keys in their order.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::atomic::{Lock, remove_stale_temp_files, replace};
use super::error::{EditError, io_error};
use super::pretty::{Shape, write_pretty};
use crate::config::Config;

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
    /// [`ConfigFile::open`] read. See [the editing module](crate::config::edit) for how.
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::config::edit::fixtures::{CONFIG, keys_in};
    use crate::config::edit::{add_bot, add_token};
    use crate::config::{ConfigError, Role};

    fn file_with(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secureconfig.json");
        fs::write(&path, text).unwrap();
        (dir, path)
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
}
