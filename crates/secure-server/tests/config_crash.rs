//! A writer of `secureconfig.json` killed (`kill -9`) at any moment leaves the old file or the
//! new one, never a broken one; what a killed writer leaves behind (a temporary file) is removed
//! by the next write.
//!
//! The moments of the kills are random, from a seed the test prints (`seed = N; replay with
//! CRASH_SEED=N`, shown with a failure); `CRASH_SEED=N` replays them, each at the same fraction
//! of a whole run:
//!
//! ```text
//! CRASH_SEED=N cargo test -p secure-server --test config_crash
//! ```

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use secure_server::Config;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_secure-server");
/// Most kills; the loop also stops at [`BUDGET`].
const ROUNDS: usize = 200;
/// How long the loop may run, so that the test stays short in debug builds on a busy machine.
const BUDGET: Duration = Duration::from_secs(25);

fn add_token(config: &Path, label: &str) -> Command {
    let mut command = Command::new(BIN);
    command
        .arg("--config")
        .arg(config)
        .args(["tokens", "add", "--label", label])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// The tokens in the file, with their labels; panics if the file does not load.
fn tokens(config: &Path) -> BTreeSet<(String, Option<String>)> {
    let loaded = Config::load(config).unwrap_or_else(|e| panic!("the file is whole: {e}"));
    loaded
        .tokens
        .into_iter()
        .map(|(token, entry)| (token, entry.label))
        .collect()
}

/// The seed of the kill moments: `CRASH_SEED` when set, else a fresh one; printed either way.
fn seed() -> u64 {
    let seed = match std::env::var("CRASH_SEED") {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("CRASH_SEED={text:?} is not a u64")),
        Err(_) => rand::rng().random(),
    };
    eprintln!("seed = {seed}; replay with CRASH_SEED={seed}");
    seed
}

fn temp_files(config: &Path) -> Vec<String> {
    std::fs::read_dir(config.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".tmp-"))
        .collect()
}

#[test]
fn a_writer_killed_at_any_moment_leaves_a_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secureconfig.json");
    // A large file (about 100 KB), so that writing it takes long enough to be killed halfway.
    let padding: serde_json::Map<String, Value> = (0..1500)
        .map(|i| {
            (
                format!("padding-token-{i:05}-{}", "x".repeat(24)),
                json!({}),
            )
        })
        .collect();
    let config = json!({"port": 7070, "filter": ["badword"], "tokens": padding});
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();

    // How long a whole run takes: kills are spread over all of it, start to exit.
    let started = Instant::now();
    assert!(add_token(&path, "warm-up").status().unwrap().success());
    let whole_run = started.elapsed().max(Duration::from_millis(5));

    let mut rng = StdRng::seed_from_u64(seed());
    let (mut kept_old, mut wrote_new, mut left_temp) = (0, 0, 0);
    let deadline = Instant::now() + BUDGET;
    for round in 0..ROUNDS {
        if Instant::now() > deadline {
            break;
        }
        let before = tokens(&path);
        let label = format!("l{round}");
        if round % 10 == 9 {
            // Sometimes it finishes.
            let finished = add_token(&path, &label)
                .stderr(Stdio::piped())
                .output()
                .unwrap();
            assert!(
                finished.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&finished.stderr)
            );
        } else {
            let mut writer = add_token(&path, &label).spawn().unwrap();
            // Anywhere from the start to a little past a whole run's length.
            std::thread::sleep(whole_run.mul_f64(rng.random_range(0.0..1.2)));
            writer.kill().unwrap(); // SIGKILL
            writer.wait().unwrap();
        }

        let after = tokens(&path);
        if after == before {
            kept_old += 1;
        } else {
            let added: Vec<_> = after.difference(&before).collect();
            assert!(before.is_subset(&after), "round {round}: nothing is lost");
            assert_eq!(added.len(), 1, "round {round}: one token added");
            assert_eq!(added[0].1.as_deref(), Some(label.as_str()), "round {round}");
            wrote_new += 1;
        }
        if !temp_files(&path).is_empty() {
            left_temp += 1;
        }
        let kept: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(kept["filter"], json!(["badword"]), "round {round}");
    }
    eprintln!(
        "{} rounds: old file kept {kept_old}, new file written {wrote_new}, temporary file \
         left {left_temp} (a whole run takes {whole_run:?})",
        kept_old + wrote_new
    );
    assert!(kept_old > 0 && wrote_new > 0);

    // A temporary file left by a killed writer is removed by the next write.
    std::fs::write(dir.path().join(".secureconfig.json.tmp-1-00"), "{\"half").unwrap();
    assert!(add_token(&path, "last").status().unwrap().success());
    assert_eq!(temp_files(&path), Vec::<String>::new());
    assert!(
        tokens(&path)
            .iter()
            .any(|(_, l)| l.as_deref() == Some("last"))
    );
}
