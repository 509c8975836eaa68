//! The `cluster` object of `secureconfig.json` ([`ClusterConfig`]): where the cluster's Redis
//! is (one URL, or the master a set of Redis Sentinels names), how to reach it (passwords, TLS),
//! who this node is, and the checks that the keys make sense together.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::secrets;

/// The `cluster` object: where the cluster's Redis is, and who this node is.
///
/// Exactly one of `redis` (one Redis) and `sentinels` (Redis Sentinel) is given. Its `Debug`
/// output never shows a password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// One Redis every node uses: `redis://[:PASSWORD@]HOST[:PORT][/DB]`, or `rediss://...` to
    /// speak TLS to it. Default: none (then `sentinels`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<String>,
    /// Redis Sentinel: the sentinels' addresses, `HOST:PORT` (`[ADDRESS]:PORT` for IPv6). Each
    /// time a node connects it asks them which Redis is the master now, so that the nodes follow
    /// a failover. Default: none (then `redis`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentinels: Option<Vec<String>>,
    /// With `sentinels`, and required with them: the name of the master they watch (the name in
    /// `sentinel monitor NAME ...`). Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// With `sentinels`: the password of the master and its replicas (their `requirepass`).
    /// Default: none. With `redis`, the password goes in the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// With `sentinels`: the sentinels' own password (`requirepass` in their config). Default:
    /// none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentinel_password: Option<String>,
    /// With `sentinels`: the database number. Default `0`. With `redis`, it is the URL's path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<u32>,
    /// With `sentinels`: speak TLS to the sentinels and to Redis. Default `false`. With
    /// `redis`, the scheme `rediss://` does.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tls: bool,
    /// The certificate authorities (PEM) that Redis's TLS certificates must chain to, instead of
    /// the system's; relative paths are relative to the config file. Only with TLS. Default:
    /// none (the system's trust store).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// This node's name, unique in the cluster: letters, digits, `.`, `_` and `-`, at most 64.
    /// Default: `node-` and 8 random hex digits, new at every start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// Seconds after its last heartbeat that a silent node is declared dead, its users' names
    /// and tokens released and their disconnects announced. Default `10`.
    #[serde(default = "ClusterConfig::default_node_ttl_secs")]
    pub node_ttl_secs: u64,
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured so that a new field cannot be forgotten here.
        let ClusterConfig {
            redis,
            sentinels,
            master,
            password,
            sentinel_password,
            db,
            tls,
            ca_file,
            node_id,
            node_ttl_secs,
        } = self;
        let set = |secret: &Option<String>| secret.as_ref().map(|_| "<set>");
        f.debug_struct("ClusterConfig")
            .field(
                "redis",
                &redis.as_deref().map(secrets::url_without_password),
            )
            .field("sentinels", sentinels)
            .field("master", master)
            .field("password", &set(password))
            .field("sentinel_password", &set(sentinel_password))
            .field("db", db)
            .field("tls", tls)
            .field("ca_file", ca_file)
            .field("node_id", node_id)
            .field("node_ttl_secs", node_ttl_secs)
            .finish()
    }
}

impl ClusterConfig {
    fn default_node_ttl_secs() -> u64 {
        10
    }

    /// A cluster on the one Redis at `url`, every other key at its default.
    pub fn on_redis(url: impl Into<String>) -> ClusterConfig {
        ClusterConfig {
            redis: Some(url.into()),
            sentinels: None,
            master: None,
            password: None,
            sentinel_password: None,
            db: None,
            tls: false,
            ca_file: None,
            node_id: None,
            node_ttl_secs: ClusterConfig::default_node_ttl_secs(),
        }
    }

    /// How long a node may go without a heartbeat before the others declare it dead.
    pub fn node_ttl(&self) -> Duration {
        Duration::from_secs(self.node_ttl_secs)
    }

    /// Whether the node speaks TLS to Redis (`rediss://`, or `tls` with sentinels).
    pub fn uses_tls(&self) -> bool {
        match &self.redis {
            Some(url) => url.starts_with("rediss://"),
            None => self.tls,
        }
    }

    /// The sentinels as host and port (those that parse; validation reports
    /// the others).
    pub fn sentinel_addrs(&self) -> Vec<(String, u16)> {
        self.sentinels
            .iter()
            .flatten()
            .filter_map(|address| host_port(address))
            .collect()
    }

    /// What is wrong with these keys together, if anything: the key (`cluster.redis`, or
    /// `cluster` for the object) and the reason. Never quotes a password.
    pub(crate) fn problem(&self) -> Option<(&'static str, String)> {
        let only_with_sentinels = "only with `sentinels` (with `redis`, put it in the URL)";
        match (&self.redis, &self.sentinels) {
            (None, None) => {
                return Some((
                    "cluster",
                    "required: one Redis (`redis`) or Redis Sentinel (`sentinels` and `master`)"
                        .to_owned(),
                ));
            }
            (Some(_), Some(_)) => {
                return Some((
                    "cluster.sentinels",
                    "give `redis` (one Redis) or `sentinels` (Redis Sentinel), not both".to_owned(),
                ));
            }
            (Some(url), None) => {
                if let Err(error) = redis::Client::open(url.as_str()) {
                    // The error may quote the URL, and with it a password: say what kind it is.
                    let message = format!(
                        "must be redis://[:PASSWORD@]HOST[:PORT][/DB] or rediss://... ({})",
                        error.category()
                    );
                    return Some(("cluster.redis", message));
                }
                let extra = [
                    ("cluster.master", self.master.is_some()),
                    ("cluster.password", self.password.is_some()),
                    (
                        "cluster.sentinel_password",
                        self.sentinel_password.is_some(),
                    ),
                    ("cluster.db", self.db.is_some()),
                    ("cluster.tls", self.tls),
                ];
                if let Some((key, _)) = extra.into_iter().find(|(_, given)| *given) {
                    let why = if key == "cluster.tls" {
                        "only with `sentinels` (with `redis`, use a rediss:// URL)"
                    } else if key == "cluster.master" {
                        "only with `sentinels`"
                    } else {
                        only_with_sentinels
                    };
                    return Some((key, why.to_owned()));
                }
            }
            (None, Some(sentinels)) => {
                if sentinels.is_empty() {
                    return Some(("cluster.sentinels", "at least one HOST:PORT".to_owned()));
                }
                if let Some(bad) = sentinels.iter().position(|s| host_port(s).is_none()) {
                    // Not quoted: a URL put there by mistake may hold a password.
                    let message = format!("entry {} is not HOST:PORT", bad + 1);
                    return Some(("cluster.sentinels", message));
                }
                match self.master.as_deref() {
                    None => {
                        return Some((
                            "cluster.master",
                            "required with `sentinels`: the name they watch the master under"
                                .to_owned(),
                        ));
                    }
                    Some(name)
                        if name.is_empty()
                            || name.contains(|c: char| c.is_whitespace() || c.is_control()) =>
                    {
                        return Some((
                            "cluster.master",
                            "must be a name without spaces".to_owned(),
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        if self.ca_file.is_some() && !self.uses_tls() {
            return Some((
                "cluster.ca_file",
                "only with TLS: a rediss:// URL, or `tls: true` with `sentinels`".to_owned(),
            ));
        }
        if self.node_id.as_deref().is_some_and(|id| !valid_node_id(id)) {
            return Some((
                "cluster.node_id",
                "must be 1 to 64 letters, digits, '.', '_' or '-'".to_owned(),
            ));
        }
        None
    }
}

/// Whether `id` may name a cluster node: it becomes part of Redis keys.
pub fn valid_node_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `HOST:PORT` or `[ADDRESS]:PORT` as host and port (a port from 1).
fn host_port(address: &str) -> Option<(String, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let port: u16 = port.parse().ok().filter(|&port| port > 0)?;
    let host = match host.strip_prefix('[') {
        Some(bracketed) => bracketed.strip_suffix(']')?,
        None if host.contains(':') => return None,
        None => host,
    };
    let plain = !host.is_empty()
        && !host.contains(|c: char| c.is_whitespace() || c.is_control() || "/@[]".contains(c));
    plain.then(|| (host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_addresses_parse() {
        assert_eq!(
            host_port("10.0.0.1:26379"),
            Some(("10.0.0.1".into(), 26379))
        );
        assert_eq!(host_port("sentinel-a:1"), Some(("sentinel-a".into(), 1)));
        assert_eq!(host_port("[::1]:26379"), Some(("::1".into(), 26379)));
        for bad in [
            "host",
            "host:0",
            "host:x",
            ":26379",
            "::1:26379",
            "redis://h:1",
            "a b:1",
        ] {
            assert_eq!(host_port(bad), None, "{bad}");
        }
    }
}
