//! Logging in through the client library (`clichat-client`), with each step timed: SAUTH2
//! (`auth`, the token page over HTTP, `tokenauth`) and bots.
//!
//! The bench adds what the library leaves to its caller: the TCP connection, bound to a chosen
//! local address so that many connections do not run out of ephemeral ports
//! ([`clichat_client::connect_on`]); the person's part of SAUTH2, fetching the token page
//! ([`clichat_client::page::token_from_page`]); a timeout per step; and failures grouped by the
//! server's refusal text.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::Context;
use clichat_client::{Client, ConnectOptions, Connection, LoginStep, ServerAddress};
use tokio::net::TcpSocket;

use crate::creds::Credential;

/// Source addresses used for a loopback server when none are given: eight addresses, each with
/// its own ~28,000 ephemeral ports.
const LOOPBACK_SOURCES: std::ops::RangeInclusive<u8> = 2..=9;

/// One server node: an address as given, and where it resolved to.
#[derive(Debug)]
pub struct Node {
    /// The node as given.
    pub address: ServerAddress,
    /// Its socket address, resolved once.
    pub socket: SocketAddr,
}

/// Where and how to connect.
#[derive(Debug)]
pub struct Target {
    /// The server's nodes (one for a single server); connection `i` goes to node `i % n`.
    nodes: Vec<Node>,
    http: reqwest::Client,
    sources: Vec<IpAddr>,
    /// The most each login step may take.
    pub step_timeout: Duration,
    /// The protocol extensions each login asks for (none: the original protocol).
    pub caps: Vec<String>,
}

impl Target {
    /// Resolves each of `addresses` once: the nodes of one server (nodes of a cluster that share
    /// one room), connections spread over them round-robin. `sources` are the local addresses to
    /// connect from, round-robin too; `None` picks 127.0.0.2 to 127.0.0.9 when every node is on
    /// a loopback IPv4 address and the OS's choice otherwise.
    ///
    /// # Errors
    /// When there is no address, or one is not a `ws://` address or does not resolve.
    pub async fn new(
        addresses: &[impl AsRef<str>],
        sources: Option<Vec<IpAddr>>,
        step_timeout: Duration,
    ) -> anyhow::Result<Target> {
        anyhow::ensure!(!addresses.is_empty(), "no server address given");
        let mut nodes = Vec::with_capacity(addresses.len());
        for address in addresses {
            nodes.push(resolve(address.as_ref()).await?);
        }
        let all_loopback_v4 = nodes
            .iter()
            .all(|node| matches!(node.socket.ip(), IpAddr::V4(ip) if ip.is_loopback()));
        let sources = sources.unwrap_or_else(|| {
            if all_loopback_v4 {
                LOOPBACK_SOURCES
                    .map(|last| IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)))
                    .collect()
            } else {
                Vec::new()
            }
        });
        let http = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .timeout(step_timeout)
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Target {
            nodes,
            http,
            sources,
            step_timeout,
            caps: Vec::new(),
        })
    }

    /// The node connection number `index` goes to: round-robin over the nodes.
    pub fn node(&self, index: usize) -> &Node {
        &self.nodes[index % self.nodes.len()]
    }

    /// The nodes' addresses, in the order given, for reports.
    pub fn node_addresses(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.address.to_string()).collect()
    }

    /// The writes the server has made to client sockets since it started, summed over its
    /// nodes: each node's `/metrics` (`clichat_socket_writes_total`; `clichat-bench config`
    /// opens it to loopback), else its `/_status` (served to loopback only). `None` when a node
    /// says neither (another server, or not on this machine).
    ///
    /// `/metrics` first, because a cluster node's `/_status` also lists the tokens in use on
    /// every node, which it reads from Redis: every member record of the cluster, each time.
    pub async fn socket_writes(&self) -> Option<u64> {
        let mut total = 0;
        for node in &self.nodes {
            let base = format!("http://{}", node.address.authority());
            total += match self.get(&format!("{base}/metrics")).await {
                Some(text) if metric_value(&text, "clichat_socket_writes_total").is_some() => {
                    metric_value(&text, "clichat_socket_writes_total")?
                }
                _ => {
                    let body = self.get(&format!("{base}/_status")).await?;
                    let status: serde_json::Value = serde_json::from_str(&body).ok()?;
                    status.get("socket_writes")?.as_u64()?
                }
            };
        }
        Some(total)
    }

    /// The body of a successful GET, if any.
    async fn get(&self, url: &str) -> Option<String> {
        let response = self.http.get(url).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        response.text().await.ok()
    }

    /// The local address for connection number `index`.
    pub fn source(&self, index: usize) -> Option<IpAddr> {
        (!self.sources.is_empty()).then(|| self.sources[index % self.sources.len()])
    }

    /// The local addresses connections are spread over (empty: the OS's choice).
    pub fn sources(&self) -> &[IpAddr] {
        &self.sources
    }
}

/// The value of the sample `name` (no labels) in Prometheus or OpenMetrics text.
pub fn metric_value(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        let value: f64 = value.split_whitespace().next()?.parse().ok()?;
        (value >= 0.0).then_some(value as u64)
    })
}

/// Parses one node's address and resolves it.
async fn resolve(address: &str) -> anyhow::Result<Node> {
    let address = ServerAddress::parse(address)?;
    anyhow::ensure!(
        !address.is_tls(),
        "{address}: wss:// is not supported; the bench speaks plain ws://"
    );
    let host = address.authority();
    let socket = tokio::net::lookup_host(&host)
        .await
        .with_context(|| format!("cannot resolve {host}"))?
        .next()
        .with_context(|| format!("{host} resolves to no address"))?;
    Ok(Node { address, socket })
}

/// How long each step of one login took.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// TCP connect and WebSocket upgrade.
    pub connect: Duration,
    /// `auth` to `authmsg` (zero for bots).
    pub authmsg: Duration,
    /// The token page's HTTP GET (zero for bots).
    pub page: Duration,
    /// `tokenauth` (or `botauth`) to `id`.
    pub id: Duration,
}

impl Timings {
    /// The whole login.
    pub fn total(&self) -> Duration {
        self.connect + self.authmsg + self.page + self.id
    }
}

/// A connection that is in the room.
#[derive(Debug)]
pub struct LoggedIn {
    /// The library's client; frames after `id` are still unread in it. The fast paths take its
    /// raw socket with [`Client::into_websocket`].
    pub client: Client,
    /// How long each step took.
    pub timings: Timings,
}

/// Why a login failed. [`LoginError::reason`] groups failures for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginError {
    /// TCP connect or WebSocket upgrade failed.
    Connect(String),
    /// The server refused, in its words.
    Refused(String),
    /// The server closed before the login finished (`code 1008`, `eof`).
    Closed(String),
    /// The token page could not be read.
    Page(String),
    /// A step took longer than the step timeout.
    Timeout(&'static str),
    /// The server sent something that makes no sense here.
    Protocol(String),
}

impl fmt::Display for LoginError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoginError::Connect(e) => write!(f, "connect: {e}"),
            LoginError::Refused(e) => write!(f, "refused: {e}"),
            LoginError::Closed(e) => write!(f, "closed during login: {e}"),
            LoginError::Page(e) => write!(f, "token page: {e}"),
            LoginError::Timeout(step) => write!(f, "timeout waiting for {step}"),
            LoginError::Protocol(e) => write!(f, "protocol: {e}"),
        }
    }
}

impl std::error::Error for LoginError {}

impl LoginError {
    /// The text failures are grouped by.
    pub fn reason(&self) -> String {
        self.to_string()
    }
}

impl From<clichat_client::Error> for LoginError {
    fn from(error: clichat_client::Error) -> LoginError {
        use clichat_client::Error;
        match error {
            Error::Refused(text) => LoginError::Refused(text),
            Error::Closed(closed) => LoginError::Closed(match (closed.code, closed.reason) {
                (Some(code), reason) if reason.is_empty() => format!("code {code}"),
                (Some(code), reason) => format!("code {code}: {reason}"),
                (None, reason) if reason.is_empty() => "eof".to_owned(),
                (None, reason) => reason,
            }),
            Error::Unexpected(kind) => LoginError::Protocol(format!("unexpected {kind}")),
            Error::WebSocket(e) => LoginError::Closed(e.to_string()),
            Error::Connect(e) => LoginError::Connect(e.to_string()),
            other @ (Error::InvalidAddress { .. } | Error::Certificate { .. }) => {
                LoginError::Connect(other.to_string())
            }
        }
    }
}

/// Logs connection number `index` in with `credential`: a full SAUTH2 login for a user (the
/// page is fetched over HTTP, as a person's browser would), `botauth` for a bot. A plain
/// (non-secure) server that answers `auth` with `id` directly is fine too.
///
/// # Errors
/// A [`LoginError`] naming the step that failed.
pub async fn login(
    target: &Target,
    credential: &Credential,
    index: usize,
) -> Result<LoggedIn, LoginError> {
    login_keeping(target, credential, index, None).await
}

/// [`login`], keeping in `cut` a second handle to the TCP connection (the same socket), so
/// that the caller can shut it down under the client, the way a network fails: no close frame
/// (the `resume` scenario).
///
/// # Errors
/// As [`login`].
pub async fn login_keeping(
    target: &Target,
    credential: &Credential,
    index: usize,
    cut: Option<&mut Option<std::net::TcpStream>>,
) -> Result<LoggedIn, LoginError> {
    let mut timings = Timings::default();
    let started = Instant::now();
    let connection = step(target, "the WebSocket upgrade", connect(target, index, cut)).await??;
    timings.connect = started.elapsed();

    let (name, token) = match credential {
        Credential::Bot { name, token } => {
            let sent = Instant::now();
            let client = step(target, "id", connection.login_bot(name, token)).await??;
            timings.id = sent.elapsed();
            return Ok(LoggedIn { client, timings });
        }
        Credential::User { name, token } => (name, token),
    };
    let sent = Instant::now();
    let pending = match step(
        target,
        "the answer to auth",
        connection.login(name, Some(token)),
    )
    .await??
    {
        LoginStep::Joined(client) => {
            timings.id = sent.elapsed();
            return Ok(LoggedIn { client, timings });
        }
        LoginStep::TokenNeeded(pending) => pending,
    };
    timings.authmsg = sent.elapsed();

    let fetched = Instant::now();
    let temp = step(
        target,
        "the token page",
        page_token(&target.http, pending.link()),
    )
    .await??;
    timings.page = fetched.elapsed();

    let sent = Instant::now();
    let client = step(target, "id", pending.token_auth(&temp)).await??;
    timings.id = sent.elapsed();
    Ok(LoggedIn { client, timings })
}

async fn step<T>(
    target: &Target,
    name: &'static str,
    work: impl Future<Output = T>,
) -> Result<T, LoginError> {
    tokio::time::timeout(target.step_timeout, work)
        .await
        .map_err(|_elapsed| LoginError::Timeout(name))
}

/// Opens the TCP connection from connection `index`'s source address to its node, then lets
/// the library upgrade it to WebSocket. The `authmsg` link then names that node (the server
/// builds it from the upgrade's `Host`, or the library resolves `SERVERIPHERE` to the address
/// it was given), so the token page comes from the node that holds the login.
async fn connect(
    target: &Target,
    index: usize,
    cut: Option<&mut Option<std::net::TcpStream>>,
) -> Result<Connection, LoginError> {
    let io = |e: std::io::Error| LoginError::Connect(e.to_string());
    let node = target.node(index);
    let socket = if node.socket.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(io)?;
    if let Some(ip) = target.source(index) {
        socket.bind(SocketAddr::new(ip, 0)).map_err(io)?;
    }
    let mut stream = socket.connect(node.socket).await.map_err(io)?;
    stream.set_nodelay(true).map_err(io)?;
    if let Some(cut) = cut {
        let std = stream.into_std().map_err(io)?;
        *cut = Some(std.try_clone().map_err(io)?);
        stream = tokio::net::TcpStream::from_std(std).map_err(io)?;
    }
    let caps: Vec<&str> = target.caps.iter().map(String::as_str).collect();
    let options = ConnectOptions::default().ask_only(&caps);
    Ok(clichat_client::connect_on(stream, &node.address, &options).await?)
}

/// GETs the token page at `url` and reads the temporary token off it.
async fn page_token(http: &reqwest::Client, url: &str) -> Result<String, LoginError> {
    let response = http
        .get(url)
        .send()
        .await
        .map_err(|e| LoginError::Page(e.without_url().to_string()))?;
    let status = response.status();
    if !status.is_success() {
        return Err(LoginError::Page(format!("HTTP {}", status.as_u16())));
    }
    let body = response
        .text()
        .await
        .map_err(|e| LoginError::Page(e.without_url().to_string()))?;
    clichat_client::page::token_from_page(&body)
        .map(str::to_owned)
        .ok_or_else(|| LoginError::Page("no token on the page".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn default_sources_spread_loopback_only() {
        let timeout = Duration::from_secs(1);
        let local = Target::new(&["127.0.0.1:7070"], None, timeout)
            .await
            .unwrap();
        assert_eq!(local.sources().len(), 8);
        assert_eq!(local.source(0), Some("127.0.0.2".parse().unwrap()));
        assert_eq!(local.source(9), Some("127.0.0.3".parse().unwrap()));
        let v6 = Target::new(&["ws://[::1]:7070/chat"], None, timeout)
            .await
            .unwrap();
        assert_eq!(v6.source(0), None);
        assert_eq!(v6.node(0).address.as_str(), "ws://[::1]:7070/chat");
        let none = Target::new(&["127.0.0.1:7070"], Some(Vec::new()), timeout)
            .await
            .unwrap();
        assert_eq!(none.source(3), None);
        assert!(
            Target::new(&["wss://127.0.0.1"], None, timeout)
                .await
                .is_err()
        );
        // One node off loopback: the OS chooses, as for a single such server.
        let mixed = Target::new(&["127.0.0.1:7001", "[::1]:7002"], None, timeout)
            .await
            .unwrap();
        assert_eq!(mixed.source(0), None);
    }

    #[tokio::test]
    async fn connections_go_to_the_nodes_round_robin() {
        let timeout = Duration::from_secs(1);
        let nodes = ["127.0.0.1:7001", "127.0.0.1:7002", "127.0.0.1:7003"];
        let target = Target::new(&nodes, None, timeout).await.unwrap();
        assert_eq!(
            target.node_addresses(),
            [
                "ws://127.0.0.1:7001/",
                "ws://127.0.0.1:7002/",
                "ws://127.0.0.1:7003/"
            ]
        );
        let ports: Vec<u16> = (0..7).map(|i| target.node(i).socket.port()).collect();
        assert_eq!(ports, [7001, 7002, 7003, 7001, 7002, 7003, 7001]);
        // Sources still rotate by connection, independently of the nodes.
        assert_eq!(target.sources().len(), 8);

        let single = Target::new(&["127.0.0.1:7070"], None, timeout)
            .await
            .unwrap();
        assert!((0..5).all(|i| single.node(i).socket.port() == 7070));
        let no_nodes: [&str; 0] = [];
        assert!(Target::new(&no_nodes, None, timeout).await.is_err());
    }

    #[test]
    fn socket_writes_read_off_the_metrics_text() {
        let text = "# HELP clichat_socket_writes Writes made to client sockets\n\
                    # TYPE clichat_socket_writes counter\n\
                    clichat_socket_writes_total 1234\n\
                    clichat_socket_writes_total_extra 9\n\
                    clichat_deliveries_total 5e3\n# EOF\n";
        assert_eq!(
            metric_value(text, "clichat_socket_writes_total"),
            Some(1234)
        );
        assert_eq!(metric_value(text, "clichat_deliveries_total"), Some(5000));
        assert_eq!(
            metric_value(text, "clichat_socket_writes"),
            None,
            "the family, not a sample"
        );
        assert_eq!(metric_value(text, "clichat_missing_total"), None);
    }

    #[test]
    fn library_errors_keep_the_servers_words() {
        let refused = LoginError::from(clichat_client::Error::Refused("Token refused".into()));
        assert_eq!(refused.reason(), "refused: Token refused");
        let closed = clichat_client::Closed {
            code: Some(1008),
            reason: String::new(),
        };
        let closed = LoginError::from(clichat_client::Error::Closed(closed));
        assert_eq!(closed.reason(), "closed during login: code 1008");
    }
}
