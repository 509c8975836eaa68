//! Fuzzes the config loader: any UTF-8 text gives a `Config` or a `ConfigError` naming the
//! file, never a panic. An accepted config keeps the invariants `Config::validate` promises,
//! serializes to a file that loads back to the same config (the server writes its first config
//! that way), and its `Debug` output shows no token or admin key; an error shows none either.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use secure_server::Config;
use serde_json::Value;

const PATH: &str = "fuzz.json";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, Path::new(PATH)) {
        Ok(config) => check_accepted(text, &config),
        Err(error) => {
            let message = error.to_string();
            assert!(message.starts_with(PATH), "error names the file: {message}");
            for token in secrets_in(text) {
                assert!(!message.contains(&token), "error shows a token: {message}");
            }
        }
    }
});

fn check_accepted(text: &str, config: &Config) {
    let within = |value: u64, least: u64, most: u64| (least..=most).contains(&value);
    assert!(within(config.max_username_length as u64, 1, 1_000));
    assert!(within(config.max_message_length as u64, 1, 1_000_000));
    assert!(within(config.tokenauth_timeout_secs, 1, 86_400));
    assert!(within(config.max_frame_bytes as u64, 256, 16 << 20));
    assert!(within(config.outbound_queue as u64, 1, 1 << 20));
    assert!(within(config.write_timeout_secs, 1, 3_600));
    let well_formed = |s: &str| !s.trim().is_empty() && !s.chars().any(char::is_control);
    assert!(config.tokens.keys().all(|t| well_formed(t)));
    assert!(config.bots.keys().all(|t| well_formed(t)));
    assert!(config.bots.values().all(|bot| well_formed(bot.name())));
    assert!(config.filter.iter().all(|word| !word.trim().is_empty()));
    if let Some(url) = config.public_url() {
        assert!(
            url.starts_with("http://") || url.starts_with("https://"),
            "{url}"
        );
        assert!(
            !url.ends_with('/') && !url.contains(char::is_whitespace),
            "{url}"
        );
    }

    // What the server writes, it can read back.
    let written = serde_json::to_string_pretty(config).expect("a Config serializes");
    let reread = Config::parse(&written, Path::new(PATH))
        .unwrap_or_else(|e| panic!("written config does not load: {e}\n{written}"));
    assert_eq!(&reread, config, "{written}");

    let debug = format!("{config:?}");
    for token in secrets_in(text) {
        assert!(!debug.contains(&token), "Debug shows a token: {debug}");
    }
}

/// Secrets of the config text that must never be shown: keys of `tokens` and `bots`, and the
/// `admin_key`, that are
/// ASCII letters and digits, at least 12 of them, holding both (so that neither a key name the
/// error lists, like `write_timeout_secs`, nor a number it echoes can match), and found in no
/// other string of the file (a name, a filtered word or a URL may be shown).
fn secrets_in(text: &str) -> Vec<String> {
    let Ok(root) = serde_json::from_str::<Value>(text) else {
        return Vec::new();
    };
    let mut strings = Vec::new();
    all_strings(&root, &mut strings);
    let admin_key = root.get("admin_key").and_then(Value::as_str);
    ["tokens", "bots"]
        .iter()
        .filter_map(|section| root.get(*section)?.as_object())
        .flat_map(|map| map.keys().map(String::as_str))
        .chain(admin_key)
        .filter(|t| {
            t.len() >= 12
                && t.chars().all(|c| c.is_ascii_alphanumeric())
                && t.chars().any(|c| c.is_ascii_digit())
                && t.chars().any(|c| c.is_ascii_alphabetic())
        })
        .filter(|t| strings.iter().filter(|s| s.contains(*t)).count() == 1)
        .map(str::to_owned)
        .collect()
}

/// Every string in a JSON value, keys included.
fn all_strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| all_strings(v, out)),
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k);
                all_strings(v, out);
            }
        }
        _ => {}
    }
}
