//! A real `redis-server` for the cluster tests: one per test, on a free loopback port, with no
//! persistence (a restart comes back empty, as a crashed cache would).
//!
//! A test starts it first, with [`Redis::start_if_installed`]: without `redis-server` the test
//! is skipped, with one line saying so (failed instead under `CI=true`; see
//! `test_support::require_program`).

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A `redis-server` process; killed when dropped.
pub struct Redis {
    pub port: u16,
    child: Option<Child>,
}

impl Redis {
    /// [`Redis::start`], or `None` when `redis-server` is not installed: the test returns at
    /// once, skipped (under `CI=true` this panics instead).
    pub async fn start_if_installed() -> Option<Redis> {
        super::require_program("redis-server", "redis-server")?;
        Some(Redis::start().await)
    }

    /// Starts `redis-server` on a free port and waits until it accepts connections.
    pub async fn start() -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Redis {
            port,
            child: Some(spawn(port).await),
        }
    }

    /// The URL for `cluster.redis`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (SIGKILL): every connection to it breaks at once.
    pub async fn kill(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().await.unwrap();
    }

    /// Starts it again on the same port, empty.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "killed first");
        self.child = Some(spawn(self.port).await);
    }
}

async fn spawn(port: u16) -> Child {
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server is installed (.ci/run installs it)");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("Ready to accept connections") {
                return;
            }
        }
        panic!("redis-server exited before it was ready");
    };
    tokio::time::timeout(super::WAIT, ready)
        .await
        .expect("redis-server ready in time");
    // Keep draining its log so that it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    child
}

/// A TCP relay to a Redis that can be cut and restored, so that one node loses Redis while the
/// others keep it (a network partition).
pub struct Relay {
    pub port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Cancelled to break every relayed connection at once.
    generation: std::sync::Arc<std::sync::Mutex<tokio_util::sync::CancellationToken>>,
}

impl Relay {
    /// Relays `127.0.0.1:<port>` to `redis`.
    pub async fn start(redis: &Redis) -> Relay {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = format!("127.0.0.1:{}", redis.port);
        let relay = Relay {
            port,
            cut: Default::default(),
            generation: Default::default(),
        };
        let (cut, generation) = (relay.cut.clone(), relay.generation.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if cut.load(Ordering::SeqCst) {
                    continue; // dropped: the node sees its connection refused at once
                }
                let stop = generation.lock().unwrap().clone();
                let target = target.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        () = stop.cancelled() => {}
                    }
                });
            }
        });
        relay
    }

    /// The URL for `cluster.redis`, through the relay.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Breaks every relayed connection and refuses new ones until [`Relay::restore`].
    pub fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut generation = self.generation.lock().unwrap();
        generation.cancel();
        *generation = tokio_util::sync::CancellationToken::new();
    }

    pub fn restore(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A node of a cluster as the real binary (for the tests that kill one), on the config
/// `config` written into `dir`, once its link is up.
pub async fn node_process(
    dir: &std::path::Path,
    config: &serde_json::Value,
) -> super::process::Running {
    let path = dir.join("secureconfig.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let node = super::process::start(&path, "info").await;
    super::status::wait_link(&format!("http://{}/_status", node.addr), "up").await;
    node
}
