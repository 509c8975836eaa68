//! The test config: four generic tokens, one bot, a word filter, and limits no test meets by
//! accident. A test changes what it is about with `overrides`, merged over the top-level keys.

use std::path::{Path, PathBuf};

use secure_server::Config;
use serde_json::{Value, json};

/// The generic tokens in the test config.
pub const TOKENS: [&str; 4] = ["token-one", "token-two", "token-three", "token-four"];
/// The bot's name in the test config (it shows in the room as `[BOT] botusr`).
pub const BOT_NAME: &str = "botusr";
/// The bot's token in the test config.
pub const BOT_TOKEN: &str = "bot-token-secret";

/// Limits too generous for any test to meet by accident; the tests of the limits set their own.
pub fn generous_limits() -> Value {
    json!({
        "max_connections_per_ip": 100_000,
        "logins_per_ip_per_minute": 1_000_000,
        "login_burst": 1_000_000,
        "messages_per_second": 1_000_000,
        "message_burst": 1_000_000,
        "page_requests_per_ip_per_minute": 1_000_000,
        "websockets_per_ip_per_minute": 1_000_000,
    })
}

/// The test config as JSON (for a config file), with each top-level key of `overrides`
/// replacing the default's: `{"limits": {...}}` replaces all of the generous limits.
///
/// # Panics
/// If `overrides` is not a JSON object.
pub fn config_json(overrides: Value) -> Value {
    let mut base = json!({
        "tokens": Value::Object(TOKENS.iter().map(|t| (t.to_string(), json!({}))).collect()),
        "bots": { BOT_TOKEN: BOT_NAME },
        "limits": generous_limits(),
        "filter": ["badword"],
    });
    for (k, v) in overrides.as_object().expect("overrides are an object") {
        base[k] = v.clone();
    }
    base
}

/// The test config, with `overrides` merged as [`config_json`] does, parsed and checked as the
/// server checks a config file.
///
/// # Panics
/// If the result is not a valid config.
pub fn config(overrides: Value) -> Config {
    let text = config_json(overrides).to_string();
    Config::parse(&text, Path::new("test-config.json")).expect("test config is valid")
}

/// A config file holding the test config with `overrides`, in a fresh temporary folder that
/// lives as long as the returned guard: for tests of a server started from a file.
pub fn config_file(overrides: Value) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("secureconfig.json");
    write_config(&path, &config_json(overrides));
    (dir, path)
}

/// Writes `config` to the file at `path` in one step (as the owner's tools do), so that a
/// server watching it sees one change, never half a file.
pub fn write_config(path: &Path, config: &Value) {
    secure_server::config_file::write_atomically(path, config.to_string().as_bytes())
        .expect("the test config is written");
}
