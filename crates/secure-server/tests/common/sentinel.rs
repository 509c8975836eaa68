//! Redis replicated and watched by Redis Sentinel, for the failover tests: a master, a replica
//! and three sentinels, each on a free loopback port, with short failure timeouts so that a
//! failover takes seconds.
//!
//! The replica may replicate through a [`Hold`], a relay the test can stop: the master's newest
//! writes then never reach the replica, as when a master dies before it has sent them.
//!
//! A test starts it with [`Replicated::start_if_installed`]: without `redis-server` or
//! `redis-sentinel` the test is skipped, with one line saying so (failed instead under
//! `CI=true`).

use std::process::Stdio;

use redis::aio::MultiplexedConnection;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

use super::eventually;

/// The name the sentinels watch the master under.
pub const MASTER_NAME: &str = "clichat";
/// How long the sentinels wait for a silent master before they call it down.
const DOWN_AFTER_MS: u32 = 400;
/// The sentinels' failover timeout: also how soon they may try again.
const FAILOVER_TIMEOUT_MS: u32 = 2000;

/// One process on a loopback port; killed when dropped.
pub struct Process {
    pub port: u16,
    child: Child,
}

/// A master, its replicas and three sentinels.
pub struct Replicated {
    pub master: Process,
    pub replicas: Vec<Process>,
    pub sentinels: Vec<Process>,
    /// Where the replica replicates through, if it does through a relay.
    pub hold: Option<Hold>,
    /// The CA and certificate every process speaks TLS with, if they do.
    pub tls: Option<TlsFiles>,
    /// The Redis servers' folders, and the sentinels' config files (they rewrite them).
    _dir: tempfile::TempDir,
}

/// How the master and its replicas are set up.
#[derive(Debug, Clone, Copy, Default)]
pub struct Setup {
    /// Replicas besides the first.
    pub more_replicas: usize,
    /// The first replica replicates through a [`Hold`].
    pub held: bool,
    /// `min-replicas-to-write 1`: a master without a replica refuses writes (`NOREPLICAS`).
    pub min_replicas_to_write: bool,
    /// Every Redis and sentinel speaks TLS only, with a certificate from a CA of its own
    /// ([`Replicated::tls`]), and replicates and watches over TLS.
    pub tls: bool,
}

impl Replicated {
    /// [`Replicated::start`], or `None` when `redis-server` or `redis-sentinel` is not
    /// installed: the test returns at once, skipped (under `CI=true` this panics instead).
    pub async fn start_if_installed(setup: Setup) -> Option<Replicated> {
        super::require_program("redis-server", "redis-server")?;
        super::require_program("redis-sentinel", "redis-sentinel")?;
        Some(Replicated::start(setup).await)
    }

    /// Starts the master, the replicas (the first through a [`Hold`] if `setup.held`), waits
    /// until they are in sync, then starts the sentinels and waits until each knows the
    /// replicas and the other two sentinels (a failover needs two of the three to agree).
    pub async fn start(setup: Setup) -> Replicated {
        let guard: &[&str] = if setup.min_replicas_to_write {
            &[
                "--min-replicas-to-write",
                "1",
                "--min-replicas-max-lag",
                "10",
            ]
        } else {
            &[]
        };
        let dir = tempfile::tempdir().unwrap();
        let tls = setup.tls.then(TlsFiles::new);
        let master = redis_server(dir.path(), guard, tls.as_ref()).await;
        let hold = if setup.held {
            Some(Hold::start(master.port).await)
        } else {
            None
        };
        let mut replicas = Vec::new();
        for index in 0..=setup.more_replicas {
            let upstream = match &hold {
                Some(hold) if index == 0 => hold.port,
                _ => master.port,
            };
            let upstream = upstream.to_string();
            let mut args = vec!["--replicaof", "127.0.0.1", &upstream];
            args.extend_from_slice(guard);
            replicas.push(redis_server(dir.path(), &args, tls.as_ref()).await);
        }
        let mut conn = connect_to(master.port, tls.as_ref()).await;
        eventually("the replicas in sync with the master", async || {
            let role: redis::Role = redis::cmd("ROLE").query_async(&mut conn).await.unwrap();
            match role {
                redis::Role::Primary {
                    replicas: online, ..
                } => replicas
                    .iter()
                    .all(|replica| online.iter().any(|r| r.port == replica.port)),
                _ => false,
            }
        })
        .await;
        let mut sentinels = Vec::new();
        for index in 0..3 {
            let port = free_port();
            let path = dir.path().join(format!("sentinel-{index}.conf"));
            let listen = match &tls {
                None => format!("port {port}\n"),
                Some(tls) => format!(
                    "port 0\ntls-port {port}\ntls-cert-file {}\ntls-key-file {}\n\
                     tls-ca-cert-file {}\ntls-auth-clients no\ntls-replication yes\n",
                    tls.cert, tls.key, tls.ca
                ),
            };
            let config = format!(
                "{listen}bind 127.0.0.1\n\
                 sentinel monitor {MASTER_NAME} 127.0.0.1 {} 2\n\
                 sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n\
                 sentinel failover-timeout {MASTER_NAME} {FAILOVER_TIMEOUT_MS}\n",
                master.port
            );
            std::fs::write(&path, config).unwrap();
            let child = spawn(
                "redis-sentinel",
                &[path.to_str().unwrap().to_owned()],
                "+monitor master",
            )
            .await;
            sentinels.push(Process { port, child });
        }
        let replicated = Replicated {
            master,
            replicas,
            sentinels,
            hold,
            tls,
            _dir: dir,
        };
        for sentinel in &replicated.sentinels {
            let mut conn = replicated.connect(sentinel.port).await;
            let what = format!("sentinel {} sees two others and the replica", sentinel.port);
            eventually(what, async || {
                let quorum: redis::RedisResult<String> = redis::cmd("SENTINEL")
                    .arg("CKQUORUM")
                    .arg(MASTER_NAME)
                    .query_async(&mut conn)
                    .await;
                let replicas: Vec<redis::Value> = redis::cmd("SENTINEL")
                    .arg("REPLICAS")
                    .arg(MASTER_NAME)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                let quorum = quorum.unwrap_or_else(|error| error.to_string());
                if quorum.starts_with("OK 3 ") && replicas.len() == replicated.replicas.len() {
                    Ok(())
                } else {
                    Err(quorum)
                }
            })
            .await;
        }
        replicated
    }

    /// A connection to the Redis (or sentinel) on `port`, over TLS if they speak it.
    pub async fn connect(&self, port: u16) -> MultiplexedConnection {
        connect_to(port, self.tls.as_ref()).await
    }

    /// The sentinels' addresses, for `cluster.sentinels`.
    pub fn sentinel_addrs(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|sentinel| format!("127.0.0.1:{}", sentinel.port))
            .collect()
    }

    /// Kills the master (SIGKILL): every connection to it breaks at once, and the sentinels
    /// find it silent.
    pub async fn kill_master(&mut self) {
        self.master.child.kill().await.unwrap();
        if let Some(hold) = &self.hold {
            hold.drop_all();
        }
    }

    /// Which port the first sentinel names the master's now (`SENTINEL
    /// get-master-addr-by-name`).
    pub async fn named_master(sentinel: &mut MultiplexedConnection) -> u16 {
        let (_, port): (String, u16) = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(MASTER_NAME)
            .query_async(sentinel)
            .await
            .unwrap();
        port
    }

    /// Waits until every sentinel names one of the replicas the master; returns its port.
    pub async fn wait_new_master(&self) -> u16 {
        let mut named = Vec::new();
        for sentinel in &self.sentinels {
            let mut conn = self.connect(sentinel.port).await;
            let what = format!("sentinel {} naming a replica the master", sentinel.port);
            named.push(
                eventually(what, async || {
                    let port = Replicated::named_master(&mut conn).await;
                    if self.replicas.iter().any(|replica| replica.port == port) {
                        Ok(port)
                    } else {
                        Err(port.to_string())
                    }
                })
                .await,
            );
        }
        named.dedup();
        assert_eq!(named.len(), 1, "the sentinels agree: {named:?}");
        named[0]
    }
}

/// A connection to the Redis (or sentinel) on `port`.
pub async fn connect(port: u16) -> MultiplexedConnection {
    connect_to(port, None).await
}

/// A connection to the Redis (or sentinel) on `port`, over TLS trusting `tls`'s CA if given.
async fn connect_to(port: u16, tls: Option<&TlsFiles>) -> MultiplexedConnection {
    let client = match tls {
        None => redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap(),
        Some(tls) => redis::Client::build_with_tls(
            format!("rediss://127.0.0.1:{port}/"),
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(tls.ca_pem.clone()),
            },
        )
        .unwrap(),
    };
    client.get_multiplexed_async_connection().await.unwrap()
}

/// A CA of its own, and a certificate for 127.0.0.1 it signed, as PEM files in a folder of
/// their own.
pub struct TlsFiles {
    pub ca: String,
    pub cert: String,
    pub key: String,
    ca_pem: Vec<u8>,
    _dir: tempfile::TempDir,
}

impl TlsFiles {
    pub fn new() -> TlsFiles {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let named = |names: Vec<String>, common_name: &str| {
            let mut params = rcgen::CertificateParams::new(names).unwrap();
            // Names of their own: OpenSSL (Redis's replicas) takes a certificate whose
            // subject is its issuer's for a self-signed one.
            params.distinguished_name = rcgen::DistinguishedName::new();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, common_name);
            params
        };
        let mut ca_params = named(Vec::new(), "clichat test CA");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = named(vec!["127.0.0.1".to_owned()], "127.0.0.1")
            .signed_by(&key, &ca, &ca_key)
            .unwrap();
        let write = |name: &str, pem: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).unwrap();
            path.to_str().unwrap().to_owned()
        };
        TlsFiles {
            ca: write("ca.pem", ca.pem()),
            cert: write("redis.pem", cert.pem()),
            key: write("redis.key", key.serialize_pem()),
            ca_pem: ca.pem().into_bytes(),
            _dir: dir,
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A single `redis-server` speaking TLS only, with `tls`'s certificate, on a free port, working
/// in `dir`; once it accepts connections.
pub async fn tls_redis(dir: &std::path::Path, tls: &TlsFiles) -> Process {
    redis_server(dir, &[], Some(tls)).await
}

/// `redis-server` on a free port, with no persistence and no delay before a replica's sync,
/// and `extra` arguments; once it accepts connections. It works in a folder of its own, which
/// it is given: a replica writes the master's data there when it syncs, and a Redis started
/// where such a file is would load it. With `tls`, it speaks TLS only (and replicates over
/// TLS), asking clients for no certificate.
async fn redis_server(dir: &std::path::Path, extra: &[&str], tls: Option<&TlsFiles>) -> Process {
    let port = free_port();
    let dir = dir.join(format!("redis-{port}"));
    std::fs::create_dir(&dir).unwrap();
    let port_text = port.to_string();
    let listen: Vec<&str> = match tls {
        None => vec!["--port", &port_text],
        Some(tls) => vec![
            "--port",
            "0",
            "--tls-port",
            &port_text,
            "--tls-cert-file",
            &tls.cert,
            "--tls-key-file",
            &tls.key,
            "--tls-ca-cert-file",
            &tls.ca,
            "--tls-auth-clients",
            "no",
            "--tls-replication",
            "yes",
        ],
    };
    let mut args: Vec<String> = listen.iter().map(|arg| (*arg).to_owned()).collect();
    args.extend(
        [
            "--dir",
            dir.to_str().unwrap(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--repl-diskless-sync-delay",
            "0",
        ]
        .iter()
        .map(|arg| (*arg).to_owned()),
    );
    args.extend(extra.iter().map(|arg| (*arg).to_owned()));
    let child = spawn("redis-server", &args, "Ready to accept connections").await;
    Process { port, child }
}

/// Starts `program` with `args` and waits until it logs a line holding `ready`; then keeps
/// reading its log so that it never blocks on a full pipe.
async fn spawn(program: &str, args: &[String], ready: &str) -> Child {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| panic!("{program} starts: {error}"));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains(ready) {
                return;
            }
        }
        panic!("{program} exited before it was ready");
    };
    tokio::time::timeout(super::WAIT, started)
        .await
        .unwrap_or_else(|_| panic!("{program} ready in time"));
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

/// A TCP relay from a replica to its master that can be held: while held, nothing passes
/// either way (the master's writes wait in the relay, the replica's acknowledgements too), as
/// on a replication link that has fallen behind. Whatever was held is dropped with the
/// connections when the master is killed.
pub struct Hold {
    pub port: u16,
    held: tokio::sync::watch::Sender<bool>,
    connections: CancellationToken,
}

impl Hold {
    async fn start(master: u16) -> Hold {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (held, _) = tokio::sync::watch::channel(false);
        let connections = CancellationToken::new();
        let (watch, stop) = (held.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect(("127.0.0.1", master)).await else {
                    continue;
                };
                // As fast as a direct link: Nagle's wait would add 40 ms to every `WAIT`.
                let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                for (from, to) in [
                    (
                        Box::new(in_read) as Box<dyn AsyncRead>,
                        Box::new(out_write) as Box<dyn AsyncWrite>,
                    ),
                    (Box::new(out_read), Box::new(in_write)),
                ] {
                    let (held, stop) = (watch.subscribe(), stop.clone());
                    tokio::spawn(async move {
                        tokio::select! {
                            () = relay(from, to, held) => {}
                            () = stop.cancelled() => {}
                        }
                    });
                }
            }
        });
        Hold {
            port,
            held,
            connections,
        }
    }

    /// From now on nothing passes, either way.
    pub fn hold(&self) {
        self.held.send_replace(true);
    }

    /// Breaks every relayed connection, dropping what was held.
    fn drop_all(&self) {
        self.connections.cancel();
    }
}

trait AsyncRead: tokio::io::AsyncRead + Unpin + Send {}
impl<T: tokio::io::AsyncRead + Unpin + Send> AsyncRead for T {}
trait AsyncWrite: tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncWrite + Unpin + Send> AsyncWrite for T {}

/// Copies `from` to `to`, reading only while not held.
async fn relay(
    mut from: Box<dyn AsyncRead>,
    mut to: Box<dyn AsyncWrite>,
    mut held: tokio::sync::watch::Receiver<bool>,
) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        if held.wait_for(|held| !held).await.is_err() {
            return;
        }
        let read = tokio::select! {
            read = from.read(&mut buffer) => read,
            // Held while waiting for data: stop reading at once.
            _ = held.wait_for(|held| *held) => continue,
        };
        match read {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.write_all(&buffer[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}
