//! Replacing a file so that a crash at any moment leaves the old file or the new one: a
//! temporary file beside it, synced, renamed over it, and the directory synced; and the lock a
//! config save holds from its "unchanged?" check to its rename.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::error::{EditError, io_error};

/// Replaces the file at `path` with `bytes` so that a crash at any moment leaves the old file
/// or the new one, never a mix: a temporary file beside it (created readable by its owner
/// only), synced, renamed over `path`, and the directory synced. For state files the server
/// alone writes (the ban list); the config goes through
/// [`ConfigFile::save`](super::ConfigFile::save), which also checks for concurrent edits.
///
/// # Errors
/// [`EditError::Io`] naming the file; the old file is then as it was.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), EditError> {
    replace(path, path, bytes, None)
}

/// Writes `bytes` to a temporary file beside `target` (with the owner, group and mode of
/// `like`, when given), syncs it, renames it over `target` and syncs the directory. `shown` is
/// the path errors name.
pub(super) fn replace(
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
pub(super) struct Lock {
    pub(super) file: File,
    pub(super) contents: Vec<u8>,
}

impl Lock {
    pub(super) fn acquire(target: &Path, shown: &Path) -> Result<Lock, EditError> {
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
pub(super) fn remove_stale_temp_files(dir: &Path, name: &str) {
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
