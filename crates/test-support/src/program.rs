//! The outside programs some tests drive (tmux, a headless Chromium and its driver,
//! redis-server). The README's test command must pass on a machine without them, and CI must
//! never pass by leaving them out: a test that needs one looks for it first with
//! [`require_program`], which skips the test with one line saying what to install, or, under
//! `CI=true`, fails it.

use std::io::Write;
use std::path::{Path, PathBuf};

/// `program` as the system would run it: the path itself if it has a `/` and is a file,
/// otherwise the first file of that name in a directory of `PATH`.
pub fn find_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        let path = Path::new(program);
        return path.is_file().then(|| path.to_owned());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// Where `program` is, for a test that cannot run without it; `None` when it is not installed,
/// and the test should return at once (it is skipped).
///
/// A skip is said in one line on the test process's standard error, written past the test
/// harness's capture so that it shows in a plain `cargo test` run:
/// `skipped: needs tmux (Debian package tmux), in tmux::a_person_logs_in` (the test's name,
/// when the harness gave its thread one).
///
/// ```no_run
/// # fn a_test() {
/// let Some(tmux) = test_support::require_program("tmux", "tmux") else {
///     return;
/// };
/// # }
/// ```
///
/// # Panics
/// When `program` is missing and the environment variable `CI` is set (to anything but empty,
/// `0` or `false`; CI services set `CI=true`): a CI run has installed everything, so a missing
/// program there is a broken setup, never a reason to skip.
#[track_caller]
pub fn require_program(program: &str, package: &str) -> Option<PathBuf> {
    if let Some(path) = find_program(program) {
        return Some(path);
    }
    let need = format!("needs {program} (Debian package {package})");
    if let Some(ci) = ci() {
        panic!("{need}, not found on PATH; CI={ci}, so the test fails instead of skipping");
    }
    let test = std::thread::current()
        .name()
        .filter(|name| *name != "main")
        .map(|name| format!(", in {name}"))
        .unwrap_or_default();
    // Past the capture of `println!`/`eprintln!`, which would hide the line unless the test
    // fails; in one write, so that the harness's own lines do not cut into it.
    let line = format!("skipped: {need}{test}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    None
}

/// The value of `CI` when this is a CI run, as CI services say it: `CI` set to anything but
/// empty, `0` or `false`.
fn ci() -> Option<String> {
    std::env::var("CI")
        .ok()
        .filter(|ci| !matches!(ci.trim(), "" | "0" | "false"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_program_on_the_path_and_by_its_path() {
        let sh = find_program("sh").expect("sh is on PATH");
        assert!(sh.is_absolute(), "{}", sh.display());
        assert_eq!(find_program(&sh.to_string_lossy()), Some(sh));
        assert_eq!(find_program("no-such-program-anywhere"), None);
        assert_eq!(find_program("/no/such/program"), None);
    }
}
