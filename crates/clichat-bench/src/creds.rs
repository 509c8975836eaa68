//! Credentials: generating a `secureconfig.json` for benchmark runs, and reading the tokens and
//! bot tokens of one.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::{Value, json};

/// How connections log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoginMode {
    /// Full SAUTH2 user logins: `auth`, the token page over HTTP, `tokenauth`.
    Sauth2,
    /// Bot logins (`botauth`): no page; the config must list enough bots.
    Bot,
}

impl LoginMode {
    /// The name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginMode::Sauth2 => "sauth2",
            LoginMode::Bot => "bot",
        }
    }
}

/// What one connection logs in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A user: username and generic token.
    User {
        /// The username.
        name: String,
        /// The generic token.
        token: String,
    },
    /// A bot: its name and token, as the config pairs them.
    Bot {
        /// The bot's name.
        name: String,
        /// The bot token.
        token: String,
    },
}

/// The tokens and bots of a config file.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    tokens: Vec<String>,
    /// (name, token), in natural name order (`b2` before `b10`).
    bots: Vec<(String, String)>,
    one_user_per_token: bool,
}

/// The keys of `secureconfig.json` the bench reads; everything else in the file is ignored.
#[derive(Deserialize)]
struct ConfigFile {
    #[serde(default)]
    tokens: BTreeMap<String, Value>,
    #[serde(default)]
    bots: BTreeMap<String, String>,
    #[serde(rename = "1UPT", default = "yes")]
    one_user_per_token: bool,
}

fn yes() -> bool {
    true
}

impl Credentials {
    /// Reads the `tokens`, `bots` and `1UPT` keys of a `secureconfig.json`.
    ///
    /// # Errors
    /// When the file cannot be read or those keys have the wrong shape.
    pub fn load(path: &Path) -> anyhow::Result<Credentials> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Credentials::parse(&text).with_context(|| format!("{}", path.display()))
    }

    fn parse(text: &str) -> anyhow::Result<Credentials> {
        let file: ConfigFile = serde_json::from_str(text)?;
        let mut bots: Vec<(String, String)> = file
            .bots
            .into_iter()
            .map(|(token, name)| (name, token))
            .collect();
        bots.sort_by(|a, b| (a.0.len(), &a.0).cmp(&(b.0.len(), &b.0)));
        Ok(Credentials {
            tokens: file.tokens.into_keys().collect(),
            bots,
            one_user_per_token: file.one_user_per_token,
        })
    }

    /// Checks that `count` connections can be logged in at once with `mode`: enough bots, or
    /// enough generic tokens under 1UPT (without 1UPT tokens are reused).
    ///
    /// # Errors
    /// Saying how many are needed and how many there are.
    pub fn check(&self, mode: LoginMode, count: usize) -> anyhow::Result<()> {
        match mode {
            LoginMode::Bot if self.bots.len() < count => bail!(
                "{count} bot logins need {count} bots; the config has {} (clichat-bench config {count} writes enough)",
                self.bots.len()
            ),
            LoginMode::Sauth2 if self.tokens.is_empty() => {
                bail!("the config has no generic tokens (clichat-bench config {count} writes some)")
            }
            LoginMode::Sauth2 if self.one_user_per_token && self.tokens.len() < count => bail!(
                "{count} logins at once need {count} tokens under 1UPT; the config has {} (clichat-bench config {count} writes enough)",
                self.tokens.len()
            ),
            _ => Ok(()),
        }
    }

    /// The credential of connection number `index`: bot `index`, or the user `{prefix}{index}`
    /// with token `index` (wrapping around when tokens may be shared).
    pub fn get(&self, mode: LoginMode, index: usize, prefix: &str) -> Credential {
        match mode {
            LoginMode::Bot => {
                let (name, token) = &self.bots[index % self.bots.len().max(1)];
                Credential::Bot {
                    name: name.clone(),
                    token: token.clone(),
                }
            }
            LoginMode::Sauth2 => Credential::User {
                name: format!("{prefix}{index}"),
                token: self.tokens[index % self.tokens.len().max(1)].clone(),
            },
        }
    }
}

/// The `limits` a benchmark config sets: a load generator on one machine makes thousands of
/// logins and messages a second from a handful of addresses, which the server's abuse limits
/// (per address and per connection) exist to stop. Everything else keeps its default.
pub fn bench_limits() -> Value {
    json!({
        "max_connections_per_ip": 10_000_000,
        "logins_per_ip_per_minute": 10_000_000,
        "login_burst": 10_000_000,
        "page_requests_per_ip_per_minute": 10_000_000,
        "websockets_per_ip_per_minute": 10_000_000,
        "messages_per_second": 1_000_000,
        "message_burst": 1_000_000,
    })
}

/// A `secureconfig.json` with `count` generic tokens and `count` bots named `b0`, `b1`, ...,
/// `/metrics` served to loopback, and (when `limits`) the [`bench_limits`]. Tokens are random
/// (32 hex digits): the file holds secrets, like any server config.
pub fn generate_config(count: usize, one_user_per_token: bool, limits: bool) -> Value {
    let token = || format!("{:032x}", rand::random::<u128>());
    let tokens: serde_json::Map<String, Value> = (0..count).map(|_| (token(), json!({}))).collect();
    let bots: serde_json::Map<String, Value> = (0..count)
        .map(|i| (token(), json!(format!("b{i}"))))
        .collect();
    let mut config = json!({
        "1UPT": one_user_per_token,
        "tokens": tokens,
        "bots": bots,
        // The bench reads the server's socket writes here (cheap, unlike a cluster node's
        // `/_status`); loopback only, as `/_status` is.
        "metrics": {"allow_from": ["127.0.0.1", "::1"]},
    });
    if limits {
        config["limits"] = bench_limits();
    }
    config
}

/// The configs of a cluster's `nodes` nodes on the Redis at `redis`, to be written beside `out`:
/// `config` (the same tokens and bots) with `"cluster": {"redis": redis, "node_id": "nK"}`, at
/// `out` with `-nK` before its extension (`node.json` → `node-n1.json`, `node-n2.json`, ...).
pub fn cluster_configs(
    config: &Value,
    redis: &str,
    nodes: usize,
    out: &Path,
) -> Vec<(std::path::PathBuf, Value)> {
    (1..=nodes)
        .map(|k| {
            let node_id = format!("n{k}");
            let mut node = config.clone();
            node["cluster"] = json!({"redis": redis, "node_id": node_id});
            let stem = out.file_stem().unwrap_or_default().to_string_lossy();
            let name = match out.extension() {
                Some(ext) => format!("{stem}-{node_id}.{}", ext.to_string_lossy()),
                None => format!("{stem}-{node_id}"),
            };
            (out.with_file_name(name), node)
        })
        .collect()
}

/// Writes `config` to `path`, readable by its owner only; refuses to replace a file unless
/// `force`.
///
/// # Errors
/// When the file exists (without `force`) or cannot be written.
pub fn write_config(path: &Path, config: &Value, force: bool) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).mode(0o600);
    if force {
        options.create(true).truncate(true);
    } else {
        options.create_new(true);
    }
    let mut file = options.open(path).with_context(|| {
        if path.exists() && !force {
            format!("{} exists; pass --force to replace it", path.display())
        } else {
            format!("cannot write {}", path.display())
        }
    })?;
    let text = serde_json::to_string_pretty(config)?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_config_has_count_tokens_and_bots() {
        let config = generate_config(12, true, true);
        assert_eq!(config["1UPT"], true);
        assert_eq!(config["limits"]["messages_per_second"], 1_000_000);
        assert_eq!(config["metrics"]["allow_from"][0], "127.0.0.1");
        assert!(generate_config(1, true, false).get("limits").is_none());
        assert_eq!(config["tokens"].as_object().unwrap().len(), 12);
        let bots = config["bots"].as_object().unwrap();
        assert_eq!(bots.len(), 12);
        let mut names: Vec<&str> = bots.values().map(|v| v.as_str().unwrap()).collect();
        names.sort_unstable();
        assert!(names.contains(&"b0") && names.contains(&"b11"));
        for token in config["tokens"].as_object().unwrap().keys() {
            assert_eq!(token.len(), 32);
            assert!(!bots.contains_key(token), "user and bot tokens differ");
        }
        let creds = Credentials::parse(&config.to_string()).unwrap();
        assert_eq!(creds.tokens.len(), 12);
        assert!(creds.check(LoginMode::Sauth2, 12).is_ok());
        assert!(creds.check(LoginMode::Sauth2, 13).is_err());
        assert!(creds.check(LoginMode::Bot, 12).is_ok());
        assert!(creds.check(LoginMode::Bot, 13).is_err());
    }

    #[test]
    fn bots_come_in_natural_order_and_users_get_distinct_tokens() {
        let creds = Credentials::parse(
            r#"{"tokens": {"t1": {}, "t2": {"inuse": false, "count": 0}},
                "bots": {"x": "b10", "y": "b2", "z": "b1"}, "port": 70}"#,
        )
        .unwrap();
        let names: Vec<String> = (0..3)
            .map(|i| match creds.get(LoginMode::Bot, i, "") {
                Credential::Bot { name, .. } => name,
                Credential::User { .. } => unreachable!(),
            })
            .collect();
        assert_eq!(names, ["b1", "b2", "b10"]);
        assert_eq!(
            creds.get(LoginMode::Sauth2, 1, "u"),
            Credential::User {
                name: "u1".into(),
                token: "t2".into()
            }
        );
    }

    #[test]
    fn without_1upt_tokens_are_shared() {
        let creds = Credentials::parse(r#"{"1UPT": false, "tokens": {"t": {}}}"#).unwrap();
        assert!(creds.check(LoginMode::Sauth2, 1000).is_ok());
        assert!(matches!(
            creds.get(LoginMode::Sauth2, 999, "u"),
            Credential::User { token, .. } if token == "t"
        ));
    }

    #[test]
    fn cluster_nodes_get_the_same_credentials_and_their_own_ids() {
        let config = generate_config(3, true, true);
        let nodes = cluster_configs(
            &config,
            "redis://127.0.0.1:6390/0",
            2,
            Path::new("/tmp/run/node.json"),
        );
        let paths: Vec<_> = nodes.iter().map(|(p, _)| p.to_str().unwrap()).collect();
        assert_eq!(paths, ["/tmp/run/node-n1.json", "/tmp/run/node-n2.json"]);
        for (k, (_, node)) in nodes.iter().enumerate() {
            assert_eq!(node["cluster"]["redis"], "redis://127.0.0.1:6390/0");
            assert_eq!(node["cluster"]["node_id"], format!("n{}", k + 1));
            assert_eq!(node["bots"], config["bots"]);
            assert_eq!(node["tokens"], config["tokens"]);
            assert_eq!(node["limits"], config["limits"]);
        }
        let bare = cluster_configs(&config, "redis://r", 1, Path::new("cfg"));
        assert_eq!(bare[0].0, Path::new("cfg-n1"));
    }

    #[test]
    fn config_files_are_private_and_not_overwritten() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secureconfig.json");
        write_config(&path, &generate_config(2, true, false), false).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let error = write_config(&path, &generate_config(3, true, false), false).unwrap_err();
        assert!(error.to_string().contains("--force"), "{error}");
        write_config(&path, &generate_config(3, true, false), true).unwrap();
        assert_eq!(Credentials::load(&path).unwrap().tokens.len(), 3);
    }
}
