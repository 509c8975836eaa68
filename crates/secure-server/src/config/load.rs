//! Loading `secureconfig.json`: reading, parsing and validating it, with errors
//! ([`ConfigError`]) that name the file, and the line or the key, and never show a token.

use std::path::{Path, PathBuf};

use crate::config::{ClusterConfig, Config};
use crate::secrets;

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The config file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not valid JSON.
    #[error("{path}: line {line} column {column}: {message}")]
    Syntax {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A key is unknown, or its value has the wrong type or is out of range.
    #[error("{path}: key `{key}`{}: {message}", .line.map(|l| format!(" (line {l})")).unwrap_or_default())]
    Key {
        /// The config file.
        path: PathBuf,
        /// The key, as a dotted path (`tokens.abcd…`); token values are masked.
        key: String,
        /// 1-based line of the offending value, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
}

impl Config {
    /// Reads and validates the config file at `path`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file and the line or key when the file cannot be read, is not
    /// JSON, has an unknown key or a wrong type, or fails [`Config::validate`].
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates config text; `path` is only used in error messages.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let de = &mut serde_json::Deserializer::from_str(text);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|err| {
            let inner = err.inner();
            let key = key_path(err.path());
            if inner.is_syntax() || inner.is_eof() {
                ConfigError::Syntax {
                    path: path.to_owned(),
                    line: inner.line(),
                    column: inner.column(),
                    message: strip_position(&inner.to_string()),
                }
            } else {
                ConfigError::Key {
                    path: path.to_owned(),
                    key,
                    line: Some(inner.line()),
                    message: strip_position(&inner.to_string()),
                }
            }
        })?;
        config.validate(path)?;
        // TLS files are found beside the config, as an owner expects.
        let mut config = config;
        if let Some(dir) = path.parent() {
            if let Some(tls) = &mut config.tls {
                tls.cert = dir.join(&tls.cert);
                tls.key = dir.join(&tls.key);
            }
            if let Some(ca_file) = config.cluster.as_mut().and_then(|c| c.ca_file.as_mut()) {
                *ca_file = dir.join(&*ca_file);
            }
        }
        Ok(config)
    }

    /// Checks values that parse but make no sense.
    ///
    /// # Errors
    /// [`ConfigError::Key`] for the first offending key.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let fail = |key: &str, message: &str| {
            Err(ConfigError::Key {
                path: path.to_owned(),
                key: key.to_owned(),
                line: None,
                message: message.to_owned(),
            })
        };
        // (key, value, least, most): the most keeps memory and timers sane.
        let ranges = [
            (
                "max_username_length",
                self.max_username_length as u64,
                1,
                1_000,
            ),
            (
                "max_message_length",
                self.max_message_length as u64,
                1,
                1_000_000,
            ),
            (
                "tokenauth_timeout_secs",
                self.tokenauth_timeout_secs,
                1,
                86_400,
            ),
            (
                "max_frame_bytes",
                self.max_frame_bytes as u64,
                256,
                16 << 20,
            ),
            ("outbound_queue", self.outbound_queue as u64, 1, 1 << 20),
            ("write_timeout_secs", self.write_timeout_secs, 1, 3_600),
            (
                "announce_presence_up_to",
                self.announce_presence_up_to.unwrap_or(0) as u64,
                0,
                10_000_000,
            ),
            ("resume_window_secs", self.resume_window_secs, 1, 86_400),
            (
                "history.on_join",
                self.history.map_or(0, |h| h.on_join as u64),
                0,
                self.history.map_or(0, |h| h.keep as u64),
            ),
            (
                "history.keep",
                self.history.map_or(1, |h| h.keep as u64),
                1,
                1_000_000,
            ),
            (
                "history.max_age_hours",
                self.history.map_or(1, |h| h.max_age_hours),
                1,
                24 * 366 * 100,
            ),
            (
                "limits.max_connections",
                self.limits.max_connections.unwrap_or(1) as u64,
                1,
                10_000_000,
            ),
            (
                "limits.max_connections_per_ip",
                self.limits.max_connections_per_ip as u64,
                1,
                10_000_000,
            ),
            (
                "limits.logins_per_ip_per_minute",
                self.limits.logins_per_ip_per_minute.into(),
                1,
                10_000_000,
            ),
            (
                "limits.login_burst",
                self.limits.login_burst.into(),
                1,
                10_000_000,
            ),
            (
                "limits.failed_login_cost",
                self.limits.failed_login_cost.into(),
                1,
                1_000,
            ),
            (
                "limits.messages_per_second",
                self.limits.messages_per_second.into(),
                1,
                1_000_000,
            ),
            (
                "limits.message_burst",
                self.limits.message_burst.into(),
                1,
                1_000_000,
            ),
            (
                "limits.slow_downs_per_minute",
                self.limits.slow_downs_per_minute.into(),
                1,
                1_000_000,
            ),
            (
                "limits.auth_timeout_secs",
                self.limits.auth_timeout_secs,
                1,
                3_600,
            ),
            (
                "limits.http_timeout_secs",
                self.limits.http_timeout_secs,
                1,
                3_600,
            ),
            (
                "limits.ping_interval_secs",
                self.limits.ping_interval_secs,
                1,
                86_400,
            ),
            (
                "limits.max_page_views",
                self.limits.max_page_views.into(),
                1,
                1_000,
            ),
            (
                "limits.page_requests_per_ip_per_minute",
                self.limits.page_requests_per_ip_per_minute.into(),
                1,
                10_000_000,
            ),
            (
                "limits.websockets_per_ip_per_minute",
                self.limits.websockets_per_ip_per_minute.into(),
                1,
                10_000_000,
            ),
            (
                "limits.frames_per_second",
                self.limits.frames_per_second.into(),
                1,
                10_000_000,
            ),
            (
                "limits.frame_burst",
                self.limits.frame_burst.into(),
                1,
                10_000_000,
            ),
            (
                "limits.bytes_per_second",
                self.limits.bytes_per_second.into(),
                256,
                u32::MAX.into(),
            ),
        ];
        let node_ttl = self.cluster.as_ref().map_or(10, |c| c.node_ttl_secs);
        let ranges = ranges
            .into_iter()
            .chain([("cluster.node_ttl_secs", node_ttl, 2, 3_600)]);
        for (key, value, least, most) in ranges {
            if !(least..=most).contains(&value) {
                return fail(key, &format!("must be from {least} to {most}"));
            }
        }
        for token in self.tokens.keys().chain(self.bots.keys()) {
            if token.trim().is_empty() || token.chars().any(char::is_control) {
                let section = if self.tokens.contains_key(token) {
                    "tokens"
                } else {
                    "bots"
                };
                return fail(section, "a token is blank or holds control characters");
            }
        }
        for (token, bot) in &self.bots {
            let name = bot.name();
            if name.trim().is_empty() || name.chars().any(char::is_control) {
                return fail(
                    &format!("bots.{}", secrets::mask(token)),
                    "bot name is blank or holds control characters",
                );
            }
        }
        if self.filter.iter().any(|w| w.trim().is_empty()) {
            return fail(
                "filter",
                "a filtered word is empty (it would match everything)",
            );
        }
        if let Some(url) = &self.public_url {
            let rest = url
                .strip_prefix("http://")
                .or_else(|| url.strip_prefix("https://"));
            if rest.is_none_or(|r| {
                r.trim_end_matches('/').is_empty() || r.contains(char::is_whitespace)
            }) {
                return fail(
                    "public_url",
                    "must look like http://host[:port] or https://host[:port]",
                );
            }
        }
        if let Some(origin) = self
            .allowed_origins
            .iter()
            .find(|origin| !crate::origin::is_origin(origin))
        {
            return fail(
                "allowed_origins",
                &format!("{origin:?} is not an origin: http(s)://host[:port], nothing after"),
            );
        }
        if let Some((key, message)) = self.cluster.as_ref().and_then(ClusterConfig::problem) {
            return fail(key, &message);
        }
        Ok(())
    }
}

/// The dotted key path of a deserialization error, with the token in `tokens.<token>` or
/// `bots.<token>` masked, so that errors never print a token (even one holding dots).
fn key_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut parts: Vec<String> = Vec::new();
    for segment in path.iter() {
        let in_token_map = parts.len() == 1 && matches!(parts[0].as_str(), "tokens" | "bots");
        parts.push(match segment {
            Segment::Map { key } if in_token_map => secrets::mask(key),
            Segment::Map { key } | Segment::Enum { variant: key } => key.clone(),
            Segment::Seq { index } => index.to_string(),
            Segment::Unknown => "?".to_owned(),
        });
    }
    if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join(".")
    }
}

/// serde_json appends " at line L column C"; the error types carry the position separately.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("secureconfig.json"))
    }

    #[test]
    fn empty_object_is_the_defaults() {
        assert_eq!(parse("{}").unwrap(), Config::default());
    }

    #[test]
    fn original_file_loads_as_is() {
        let config = parse(r#"{"1UPT": false}"#).unwrap();
        assert!(!config.one_user_per_token);
        assert_eq!(config.port, 70);
    }

    #[test]
    fn original_token_runtime_fields_are_accepted_and_counted() {
        let config = parse(r#"{"tokens": {"T1": {"inuse": true, "count": 3}, "T2": {}}}"#).unwrap();
        assert_eq!(config.tokens.len(), 2);
        assert_eq!(config.tokens_with_runtime_fields(), 1);
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse("{\n  \"prot\": 70\n}").unwrap_err().to_string();
        assert!(err.starts_with("secureconfig.json: "), "{err}");
        assert!(err.contains("unknown field `prot`"), "{err}");
        assert!(err.contains("(line 2)"), "{err}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let err = parse(r#"{"port": "seventy"}"#).unwrap_err().to_string();
        assert!(err.contains("key `port`"), "{err}");
        let err = parse(r#"{"max_message_length": -1}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("key `max_message_length`"), "{err}");
        let err = parse(r#"{"bind": "not-an-ip"}"#).unwrap_err().to_string();
        assert!(err.contains("key `bind`"), "{err}");
    }

    /// Errors inside `tokens` and `bots` name the key with the token masked, even a token
    /// holding dots (which a naive split of the key path would cut in the wrong place).
    #[test]
    fn errors_mask_the_token() {
        for (text, key) in [
            (
                r#"{"tokens": {"SECRET-TOKEN-VALUE": {"inuse": "yes"}}}"#,
                "tokens.SECR….inuse",
            ),
            (
                r#"{"bots": {"abcd.efgh.SECRETSECRETSECRET": 5}}"#,
                "bots.abcd…",
            ),
            (
                r#"{"tokens": {"abcd.efgh.SECRETSECRET": {"inuse": 1}}}"#,
                "tokens.abcd….inuse",
            ),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(&format!("key `{key}`")), "{text}: {err}");
            assert!(!err.contains("SECRET"), "{text}: {err}");
        }
    }

    #[test]
    fn huge_values_are_refused() {
        for (text, key) in [
            (r#"{"outbound_queue": 1000000000000}"#, "outbound_queue"),
            (
                r#"{"max_frame_bytes": 18446744073709551615}"#,
                "max_frame_bytes",
            ),
            (
                r#"{"tokenauth_timeout_secs": 18446744073709551615}"#,
                "tokenauth_timeout_secs",
            ),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(&format!("key `{key}`")), "{text}: {err}");
        }
    }

    #[test]
    fn broken_json_names_the_line() {
        let err = parse("{\n\"port\": 70,\n").unwrap_err();
        assert!(matches!(err, ConfigError::Syntax { line: 3, .. }), "{err}");
    }

    #[test]
    fn cluster_config_loads_and_never_shows_its_url() {
        let text = r#"{"cluster": {"redis": "redis://:hunter2@db:6379/2", "node_id": "n-1.a_b"}}"#;
        let config = parse(text).unwrap();
        let cluster = config.cluster.as_ref().unwrap();
        assert_eq!(cluster.node_id.as_deref(), Some("n-1.a_b"));
        assert_eq!(cluster.node_ttl(), Duration::from_secs(10));
        assert!(!format!("{config:?}").contains("hunter2"));
        let bad = r#"{"cluster": {"redis": "redis://:hunter2@db:notaport/2"}}"#;
        let err = parse(bad).unwrap_err().to_string();
        assert!(
            err.contains("cluster.redis") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn sentinel_config_loads_its_ca_beside_the_file_and_never_shows_a_password() {
        let text = r#"{"cluster": {"sentinels": ["10.0.0.1:26379", "[::1]:26380"],
            "master": "clichat", "password": "hunter2", "sentinel_password": "s3cret",
            "db": 3, "tls": true, "ca_file": "ca.pem"}}"#;
        let config = Config::parse(text, Path::new("/etc/clichat/secureconfig.json")).unwrap();
        let cluster = config.cluster.as_ref().unwrap();
        assert_eq!(
            cluster.sentinel_addrs(),
            [("10.0.0.1".to_owned(), 26379), ("::1".to_owned(), 26380)]
        );
        assert_eq!(cluster.master.as_deref(), Some("clichat"));
        assert!(cluster.uses_tls());
        assert_eq!(
            cluster.ca_file.as_deref(),
            Some(Path::new("/etc/clichat/ca.pem"))
        );
        let shown = format!("{config:?}");
        assert!(
            shown.contains("clichat") && shown.contains("26380"),
            "{shown}"
        );
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cret"),
            "{shown}"
        );
        let url = r#"{"cluster": {"redis": "rediss://:hunter2@db:6380/1", "ca_file": "/ca.pem"}}"#;
        let config = parse(url).unwrap();
        assert!(config.cluster.as_ref().unwrap().uses_tls());
        assert!(!format!("{config:?}").contains("hunter2"));
        // A URL put among the sentinels by mistake is not quoted back.
        let bad = r#"{"cluster": {"sentinels": ["redis://:hunter2@s:1"], "master": "m"}}"#;
        let err = parse(bad).unwrap_err().to_string();
        assert!(
            err.contains("cluster.sentinels") && !err.contains("hunter2"),
            "{err}"
        );
    }

    #[test]
    fn validation_names_the_key() {
        for (text, key) in [
            (r#"{"max_username_length": 0}"#, "max_username_length"),
            (r#"{"filter": ["ok", " "]}"#, "filter"),
            (r#"{"public_url": "chat.example.com"}"#, "public_url"),
            (r#"{"tokens": {" ": {}}}"#, "tokens"),
            (r#"{"bots": {"BT": ""}}"#, "bots.****"),
            (r#"{"max_frame_bytes": 10}"#, "max_frame_bytes"),
            (r#"{"cluster": {"redis": "http://x"}}"#, "cluster.redis"),
            (
                r#"{"cluster": {"redis": "redis://x", "node_id": "a b"}}"#,
                "cluster.node_id",
            ),
            (
                r#"{"cluster": {"redis": "redis://x", "node_ttl_secs": 1}}"#,
                "cluster.node_ttl_secs",
            ),
            (r#"{"cluster": {"node_id": "n1"}}"#, "cluster"),
            (
                r#"{"cluster": {"redis": "redis://x", "sentinels": ["s:1"], "master": "m"}}"#,
                "cluster.sentinels",
            ),
            (r#"{"cluster": {"sentinels": ["s:1"]}}"#, "cluster.master"),
            (
                r#"{"cluster": {"sentinels": [], "master": "m"}}"#,
                "cluster.sentinels",
            ),
            (
                r#"{"cluster": {"sentinels": ["s:1", "s"], "master": "m"}}"#,
                "cluster.sentinels",
            ),
            (
                r#"{"cluster": {"sentinels": ["s:1"], "master": "a b"}}"#,
                "cluster.master",
            ),
            (
                r#"{"cluster": {"redis": "redis://x", "master": "m"}}"#,
                "cluster.master",
            ),
            (
                r#"{"cluster": {"redis": "redis://x", "password": "p"}}"#,
                "cluster.password",
            ),
            (
                r#"{"cluster": {"redis": "redis://x", "tls": true}}"#,
                "cluster.tls",
            ),
            (
                r#"{"cluster": {"redis": "redis://x", "ca_file": "ca.pem"}}"#,
                "cluster.ca_file",
            ),
            (
                r#"{"cluster": {"sentinels": ["s:1"], "master": "m", "ca_file": "ca.pem"}}"#,
                "cluster.ca_file",
            ),
            (
                r#"{"cluster": {"redis": "redis://x", "ttl": 3}}"#,
                "cluster.ttl",
            ),
        ] {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(&format!("key `{key}`")), "{text}: {err}");
        }
    }

    #[test]
    fn example_config_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../secureconfig.example.json");
        let config = Config::load(&path).unwrap();
        assert_eq!(config.tokens.len(), 2);
        assert_eq!(config.tokens_with_runtime_fields(), 1);
        assert_eq!(config.bots.len(), 1);
        assert_eq!(config.public_url(), Some("http://chat.example.com:70"));
        // It shows every key: its values are the defaults but for tokens, bots, filter and
        // public_url.
        let defaults = Config {
            tokens: config.tokens.clone(),
            bots: config.bots.clone(),
            filter: config.filter.clone(),
            public_url: config.public_url.clone(),
            ..Config::default()
        };
        assert_eq!(config, defaults);
    }
}
