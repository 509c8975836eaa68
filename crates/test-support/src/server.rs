//! [`TestServer`]: a real server in the test's process on a port of the OS's choosing, started
//! through [`secure_server::Running`] as the binary starts it, and stopped with a deadline.

use std::net::SocketAddr;
use std::path::Path;

use secure_server::{Config, Running};
use serde_json::json;
use tokio::net::TcpListener;

use crate::config::config;
use crate::wait::WAIT;

/// A running server. Dropping it shuts the server down in the background; [`TestServer::stop`]
/// shuts it down and waits until it has.
pub struct TestServer {
    /// Where it listens: `127.0.0.1` and the port the OS chose.
    pub addr: SocketAddr,
    running: Running,
}

impl TestServer {
    /// A server on `config`, on `127.0.0.1:0`.
    ///
    /// # Panics
    /// If it cannot listen.
    pub async fn start(config: Config) -> TestServer {
        TestServer::start_at("127.0.0.1:0".parse().unwrap(), config).await
    }

    /// A server on `config` at `addr`: a test that stops a server and starts another where the
    /// first one was (clients reconnecting) passes the first one's [`TestServer::addr`].
    ///
    /// # Panics
    /// If it cannot listen at `addr`.
    pub async fn start_at(addr: SocketAddr, config: Config) -> TestServer {
        let listener = TcpListener::bind(addr).await.unwrap();
        TestServer::from(Running::start(listener, config).unwrap())
    }

    /// A server on the test config ([`config`] with no overrides).
    pub async fn default() -> TestServer {
        TestServer::start(config(json!({}))).await
    }

    /// A server started from the config file at `path`, as the binary starts: it watches the
    /// file (reloading it on change) and keeps its bans beside it.
    ///
    /// # Panics
    /// If the file is not a valid config, or the server cannot listen.
    pub async fn start_from_file(path: &Path) -> TestServer {
        let config = Config::load(path).expect("the test config file is valid");
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        TestServer::from(Running::start_from_file(listener, config, path.to_owned()).unwrap())
    }

    fn from(running: Running) -> TestServer {
        TestServer {
            addr: running.local_addr(),
            running,
        }
    }

    /// `127.0.0.1:PORT`, as a person types it into a client.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// The URL of `path` (which starts with `/`) on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The WebSocket URL a client connects to.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/", self.addr)
    }

    /// Shuts the server down as a signal would (every session closed with code 1001) and waits
    /// for it to finish.
    ///
    /// # Panics
    /// If it takes longer than [`WAIT`], or the server ends with an error.
    pub async fn stop(self) {
        tokio::time::timeout(WAIT, self.running.stop())
            .await
            .expect("run returns after shutdown")
            .unwrap();
    }
}
