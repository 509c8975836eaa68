//! The schema of `secureconfig.json`: [`Config`] and its parts ([`Limits`], [`Role`],
//! [`TokenEntry`], [`BotEntry`], [`TlsFiles`], [`MetricsConfig`], [`ClusterConfig`]), each key
//! with its default, and the durations the server reads from them.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ClusterConfig;
use crate::proxy::Cidr;

/// The server's configuration, as read from `secureconfig.json`.
///
/// Its `Debug` output shows how many tokens and bots there are, never the tokens.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// TCP port for both the token pages (HTTP) and the chat (WebSocket). Default `70`, as in
    /// the original; `--port` overrides it.
    pub port: u16,
    /// Address to listen on. Default `0.0.0.0`; `--bind` overrides it.
    pub bind: IpAddr,
    /// One user per token (1UPT): a generic token serves one connection at a time, held from
    /// `auth` until that connection closes. Default `true`.
    #[serde(rename = "1UPT")]
    pub one_user_per_token: bool,
    /// SAUTH2: users log in with a generic token and the temporary token of a web page.
    /// `false` opens the room to anyone who can reach the port, as the plain CLIChat server:
    /// `auth` with a username joins at once, with no token (bots still log in with theirs).
    /// Default `true`.
    #[serde(rename = "SAUTH2")]
    pub sauth2: bool,
    /// Generic user tokens, the key being the token. Default: none (a new config file gets one
    /// freshly generated token).
    pub tokens: BTreeMap<String, TokenEntry>,
    /// Bot tokens: token -> bot username (`"TOKEN": "name"`, the original's form) or
    /// `"TOKEN": {"name": "name", "role": "mod"}`. Default: none.
    pub bots: BTreeMap<String, BotEntry>,
    /// Words refused in usernames and messages (case-insensitive substring match). Default: none.
    pub filter: Vec<String>,
    /// Longest username, in Unicode scalar values. Default `15`.
    pub max_username_length: usize,
    /// Longest message, in Unicode scalar values. Default `200`.
    pub max_message_length: usize,
    /// Base of the `authmsg` link, e.g. `http://chat.example.com:70`. Default `null`: the link
    /// is built from the `Host` header of the client's WebSocket upgrade request.
    pub public_url: Option<String>,
    /// Seconds a client has to send `tokenauth` after `authmsg`. Default `300`.
    pub tokenauth_timeout_secs: u64,
    /// Largest WebSocket frame or message accepted, in bytes; a larger one closes the connection
    /// with code 1009. Default `16384`.
    pub max_frame_bytes: usize,
    /// Frames that may wait for one connection's socket; a connection whose queue is full is a
    /// slow consumer and is disconnected with close code 1008. Default `1024`.
    pub outbound_queue: usize,
    /// Seconds one write to a client may take before the client is dropped as dead. Default
    /// `10`.
    pub write_timeout_secs: u64,
    /// Joins and departures are announced while the room, counting whoever joins or leaves,
    /// has at most this many members (this node's, in a cluster); past it they are not, as in
    /// a large channel's "auditorium" mode. Every login into a room of N announces itself to N
    /// people, so a login storm costs N² frames; this bounds it. Default `null`: always
    /// announced, as the original did.
    pub announce_presence_up_to: Option<usize>,
    /// How long a session whose connection was lost is held for its client to resume it
    /// (extension `resume`): its name and token stay reserved and the room is not told, until
    /// then. Default 120 seconds.
    pub resume_window_secs: u64,
    /// Abuse limits: connections, login and message rates, timeouts, page views.
    pub limits: Limits,
    /// Bearer key of the owner API under `/admin/`. Default `null`: the API is off (404).
    pub admin_key: Option<String>,
    /// `{"cert": PATH, "key": PATH}` (PEM; the chain in the cert file; relative paths are
    /// relative to the config file): the port then speaks HTTPS and WSS only. Default `null`:
    /// plain HTTP and WebSocket.
    pub tls: Option<TlsFiles>,
    /// `{"allow_from": [IP, ...], "key": KEY}`: serves `GET /metrics` (Prometheus text) to those
    /// addresses (default: loopback only), or to anyone with `Authorization: Bearer KEY`.
    /// Default `null`: no metrics (404).
    pub metrics: Option<MetricsConfig>,
    /// `{"redis": "redis://HOST:PORT/DB", "node_id": NAME}` (or `{"sentinels": [...], "master":
    /// NAME, ...}`): run as one node of a cluster that shares one room through Redis (see
    /// [`ClusterConfig`] and `docs/CLUSTER.md`). Default `null`: a single server with its room in
    /// memory.
    pub cluster: Option<ClusterConfig>,
    /// Reverse proxies in front of the server: addresses (`"127.0.0.1"`) or CIDR ranges
    /// (`"10.0.0.0/8"`). A request from one of them is taken to be from the client its
    /// `X-Forwarded-For` names (the rightmost hop that is not a trusted proxy), for the
    /// per-address limits, logs and `authmsg` links, and is never served `/_status` or key-less
    /// `/metrics`. Default: none (forwarded headers are ignored).
    pub trusted_proxies: Vec<Cidr>,
    /// Origins (`"https://chat.example.com"`) besides the server's own whose pages may open a
    /// WebSocket to it. An upgrade that carries any other `Origin` is refused (403); clients
    /// that send none (terminal clients, bots) are not affected. Default: none.
    pub allowed_origins: Vec<String>,
    /// `{"on_join": 50, "keep": 10000, "max_age_hours": 168}`: the room's recent messages are
    /// kept (single server: in `<config stem>.history.db` beside the config file; cluster: in
    /// Redis) and sent to clients that ask for `history` when they join. `null`: nothing is kept
    /// and `history` is not granted. Needs a restart to change.
    pub history: Option<HistoryConfig>,
}

/// The `history` object: how much of the room's past is kept, and shown on joining.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryConfig {
    /// Messages sent to a client that asks for history, right after it joins (at most).
    pub on_join: usize,
    /// Messages kept, at most: the newest.
    pub keep: usize,
    /// Messages older than this many hours are dropped.
    pub max_age_hours: u64,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            on_join: 50,
            keep: 10_000,
            max_age_hours: 168,
        }
    }
}

impl HistoryConfig {
    /// How old a kept message may be.
    pub fn max_age(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.max_age_hours.saturating_mul(3600))
    }
}

/// The certificate and key files of `tls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// The certificate chain, PEM, the server's own certificate first.
    pub cert: PathBuf,
    /// The private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Who may read `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Addresses that may read the metrics without a key. Default: `127.0.0.1` and `::1`.
    pub allow_from: Vec<IpAddr>,
    /// A bearer key that lets any address read them. Default `null`.
    pub key: Option<String>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            allow_from: vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            ],
            key: None,
        }
    }
}

/// Abuse limits, the `limits` object of `secureconfig.json`. Every key is optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Most open connections (HTTP and WebSocket together). Default `null`: as many as the
    /// process's open-file limit allows, less 64 descriptors kept for the server itself; a
    /// larger number is lowered to that, with a warning. Over the limit, a new connection gets
    /// HTTP 503 before any upgrade.
    pub max_connections: Option<usize>,
    /// Most open connections from one IP address. Default `64`. Over it: HTTP 503.
    pub max_connections_per_ip: usize,
    /// Login attempts (`auth`, `botauth`) one IP address may make per minute, on average.
    /// Default `60`.
    pub logins_per_ip_per_minute: u32,
    /// Login attempts one IP address may make at once before the per-minute rate applies.
    /// Default `20`.
    pub login_burst: u32,
    /// What a wrong generic token, bot token or temporary token costs, in login attempts, so
    /// that guessing tokens is slow. Default `5`.
    pub failed_login_cost: u32,
    /// Messages one connection may send per second, on average. Over it, the message is
    /// refused with a request to slow down and the connection stays. Default `5`.
    pub messages_per_second: u32,
    /// Messages one connection may send at once before the per-second rate applies. Default
    /// `20`.
    pub message_burst: u32,
    /// "Slow down" refusals a connection may earn per minute; one more is a flood, and the
    /// connection is closed. Default `10`.
    pub slow_downs_per_minute: u32,
    /// Seconds a new WebSocket has to send `auth` or `botauth`. Default `10`.
    pub auth_timeout_secs: u64,
    /// Seconds a client has to send a whole HTTP request head (pages and WebSocket upgrades).
    /// Default `10`.
    pub http_timeout_secs: u64,
    /// Seconds between pings to a quiet chat connection; one that has not answered (or sent
    /// anything) by the next ping is closed. Default `30`.
    pub ping_interval_secs: u64,
    /// How often one pending token page may be viewed (a person may reload it). Default `10`.
    pub max_page_views: u32,
    /// Page requests one IP address may make per minute; a request for an unknown or closed
    /// page costs 5. Over it: HTTP 429. Default `120`.
    pub page_requests_per_ip_per_minute: u32,
    /// WebSocket connections one IP address may open per minute, on average, with as many as
    /// `max_connections_per_ip` at once. Over it: HTTP 429 instead of the upgrade, so that an
    /// address cannot get a fresh frame budget by reconnecting. Default `120`.
    pub websockets_per_ip_per_minute: u32,
    /// WebSocket frames of any kind (messages, ignored frames, pings) one connection may send
    /// per second, on average; never less than `messages_per_second`. Over it the connection is
    /// closed (1008), so that junk frames cannot cost the server a core. Default `50`.
    pub frames_per_second: u32,
    /// Frames one connection may send at once; never less than `message_burst`. Default `200`.
    pub frame_burst: u32,
    /// Bytes of frames one connection may send per second, on average, with one second's worth
    /// (at least one frame of `max_frame_bytes`) at once; never less than `messages_per_second`
    /// frames of `max_frame_bytes`. Over it the connection is closed (1008). Default `1048576`
    /// (1 MiB).
    pub bytes_per_second: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: None,
            max_connections_per_ip: 64,
            logins_per_ip_per_minute: 60,
            login_burst: 20,
            failed_login_cost: 5,
            messages_per_second: 5,
            message_burst: 20,
            slow_downs_per_minute: 10,
            auth_timeout_secs: 10,
            http_timeout_secs: 10,
            ping_interval_secs: 30,
            max_page_views: 10,
            page_requests_per_ip_per_minute: 120,
            websockets_per_ip_per_minute: 120,
            frames_per_second: 50,
            frame_burst: 200,
            bytes_per_second: 1 << 20,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured so that a new field cannot be forgotten here.
        let Config {
            port,
            bind,
            one_user_per_token,
            sauth2,
            tokens,
            bots,
            filter,
            max_username_length,
            max_message_length,
            public_url,
            tokenauth_timeout_secs,
            max_frame_bytes,
            outbound_queue,
            write_timeout_secs,
            announce_presence_up_to,
            resume_window_secs,
            limits,
            admin_key,
            tls,
            metrics,
            cluster,
            trusted_proxies,
            allowed_origins,
            history,
        } = self;
        f.debug_struct("Config")
            .field("port", port)
            .field("bind", bind)
            .field("1UPT", one_user_per_token)
            .field("SAUTH2", sauth2)
            .field("tokens", &format_args!("<{} tokens>", tokens.len()))
            .field(
                "bots",
                &format_args!(
                    "<{} bots: {:?}>",
                    bots.len(),
                    bots.values().map(BotEntry::name).collect::<Vec<_>>()
                ),
            )
            .field("filter", filter)
            .field("max_username_length", max_username_length)
            .field("max_message_length", max_message_length)
            .field("public_url", public_url)
            .field("tokenauth_timeout_secs", tokenauth_timeout_secs)
            .field("max_frame_bytes", max_frame_bytes)
            .field("outbound_queue", outbound_queue)
            .field("write_timeout_secs", write_timeout_secs)
            .field("announce_presence_up_to", announce_presence_up_to)
            .field("resume_window_secs", resume_window_secs)
            .field("limits", limits)
            .field("admin_key", &admin_key.as_ref().map(|_| "<set>"))
            .field("tls", tls)
            .field(
                "metrics",
                &metrics
                    .as_ref()
                    .map(|m| (&m.allow_from, m.key.as_ref().map(|_| "<key>"))),
            )
            // Its own Debug shows no password.
            .field("cluster", cluster)
            .field("trusted_proxies", trusted_proxies)
            .field("allowed_origins", allowed_origins)
            .field("history", history)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            port: 70,
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            one_user_per_token: true,
            sauth2: true,
            tokens: BTreeMap::new(),
            bots: BTreeMap::new(),
            filter: Vec::new(),
            max_username_length: 15,
            max_message_length: 200,
            public_url: None,
            tokenauth_timeout_secs: 300,
            max_frame_bytes: 16 * 1024,
            outbound_queue: 1024,
            write_timeout_secs: 10,
            announce_presence_up_to: None,
            resume_window_secs: 120,
            limits: Limits::default(),
            admin_key: None,
            tls: None,
            metrics: None,
            cluster: None,
            trusted_proxies: Vec::new(),
            allowed_origins: Vec::new(),
            history: Some(HistoryConfig::default()),
        }
    }
}

/// What a token (or bot) may do in the room.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Chat only.
    #[default]
    User,
    /// May also kick, ban and unban users (not admins), and list who is in.
    Mod,
    /// May do what a mod may, to mods as well.
    Admin,
}

impl Role {
    /// The role's name as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Mod => "mod",
            Role::Admin => "admin",
        }
    }
}

/// A generic user token's settings.
///
/// The original kept `{"inuse": false, "count": 0}` here; those were its runtime state. They are
/// accepted so that old files load, and ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    /// A name for the token, so that the owner can tell tokens apart (and revoke one) without
    /// writing the token itself. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// What the token's holder may do. Default `user`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub role: Role,
    /// The original's "token is in use" flag. Ignored: holds are tracked at run time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inuse: Option<bool>,
    /// The original's use counter. Ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// A bot: `"name"` (the original's form) or `{"name": "name", "role": "mod"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum BotEntry {
    /// Just the bot's name; its role is `user`.
    Name(String),
    /// The bot's name and role.
    Full(BotSpec),
}

/// A bot written out in full.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BotSpec {
    /// The bot's name (shown as `[BOT] name`).
    pub name: String,
    /// What the bot may do. Default `user`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub role: Role,
}

impl BotEntry {
    /// The bot's name.
    pub fn name(&self) -> &str {
        match self {
            BotEntry::Name(name) | BotEntry::Full(BotSpec { name, .. }) => name,
        }
    }

    /// The bot's role.
    pub fn role(&self) -> Role {
        match self {
            BotEntry::Name(_) => Role::User,
            BotEntry::Full(spec) => spec.role,
        }
    }
}

impl<'de> Deserialize<'de> for BotEntry {
    // By hand rather than `untagged`, so that a mistake inside the object form is reported
    // precisely (which key, what is wrong) instead of "matched no variant".
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = BotEntry;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a bot name, or {\"name\": ..., \"role\": ...}")
            }
            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<BotEntry, E> {
                Ok(BotEntry::Name(name.to_owned()))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<BotEntry, A::Error> {
                BotSpec::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(BotEntry::Full)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl TokenEntry {
    /// Whether this entry carries the original's runtime fields (which are ignored).
    pub fn has_runtime_fields(&self) -> bool {
        self.inuse.is_some() || self.count.is_some()
    }
}

impl Config {
    /// The `authmsg` link base from `public_url`, without a trailing slash.
    pub fn public_url(&self) -> Option<&str> {
        self.public_url.as_deref().map(|u| u.trim_end_matches('/'))
    }

    /// How long a client may take to send `tokenauth`.
    pub fn tokenauth_timeout(&self) -> Duration {
        Duration::from_secs(self.tokenauth_timeout_secs)
    }

    /// How long one write to a client may take.
    pub fn write_timeout(&self) -> Duration {
        Duration::from_secs(self.write_timeout_secs)
    }

    /// How long a lost session is held for a resume.
    pub fn resume_window(&self) -> Duration {
        Duration::from_secs(self.resume_window_secs)
    }

    /// How long a new WebSocket may take to send its first `auth` or `botauth`.
    pub fn auth_timeout(&self) -> Duration {
        Duration::from_secs(self.limits.auth_timeout_secs)
    }

    /// How long a client may take to send an HTTP request head.
    pub fn http_timeout(&self) -> Duration {
        Duration::from_secs(self.limits.http_timeout_secs)
    }

    /// How often a quiet chat connection is pinged.
    pub fn ping_interval(&self) -> Duration {
        Duration::from_secs(self.limits.ping_interval_secs)
    }

    /// How many tokens carry the original's ignored runtime fields (`inuse`, `count`).
    pub fn tokens_with_runtime_fields(&self) -> usize {
        self.tokens
            .values()
            .filter(|t| t.has_runtime_fields())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::ConfigError;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("secureconfig.json"))
    }

    #[test]
    fn debug_output_never_shows_a_token() {
        let config =
            parse(r#"{"tokens": {"USER-SECRET": {}}, "bots": {"BOT-SECRET": "echo"}}"#).unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("SECRET"), "{debug}");
        assert!(debug.contains("echo"), "{debug}");
    }

    #[test]
    fn public_url_loses_its_trailing_slash() {
        let config = parse(r#"{"public_url": "http://chat.example.com:70/"}"#).unwrap();
        assert_eq!(config.public_url(), Some("http://chat.example.com:70"));
    }
}
