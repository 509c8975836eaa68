//! Taking a lost connection back (extension `resume`).
//!
//! When a connection is lost (see [`crate::Events::next_event`]), the receiving half starts a
//! [`Reconnect`]: a task of its own that dials the same address with the same TLS settings,
//! extensions and local IP address, and sends `["resume", {"token", "since"}]` in place of a
//! login, pausing between attempts with exponential backoff and jitter. It ends with the new
//! connection and the server's answer, or with the reason it gave up: the server refused the
//! token, or the session expired (`expires_in` passed since the loss) before it was reached.
//! Running in a task keeps `next_event` cancel-safe: dropping that future mid-attempt does not
//! drop a connection that has already spent the token.

use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clichat_proto::{ResumeToken, refusal};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client::{Connection, handshake};
use crate::{Closed, ConnectOptions, Error, ServerAddress, WebSocket};

/// The default pauses between attempts: 100 ms, doubling up to 10 s.
pub(crate) const BACKOFF: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(10));

/// The longest one attempt (connect, TLS, WebSocket, resume answer) may take.
const ATTEMPT: Duration = Duration::from_secs(10);

/// Where a connection was opened and how, to open another like it.
#[derive(Debug, Clone)]
pub(crate) struct Dial {
    pub(crate) address: ServerAddress,
    pub(crate) options: ConnectOptions,
    /// The local IP address the caller opened the first connection from, if it chose one.
    pub(crate) bind: Option<IpAddr>,
}

impl Dial {
    /// Opens a new connection like the first one.
    async fn connect(&self) -> Result<Connection, Error> {
        let io = |e: std::io::Error| Error::Connect(e.into());
        let stream = match self.bind {
            None => TcpStream::connect(self.address.authority())
                .await
                .map_err(io)?,
            Some(local) => {
                let remote = tokio::net::lookup_host(self.address.authority())
                    .await
                    .map_err(io)?
                    .find(|remote| remote.is_ipv4() == local.is_ipv4())
                    .ok_or_else(|| {
                        io(std::io::Error::new(
                            std::io::ErrorKind::NotFound,
                            "no address of the server's family",
                        ))
                    })?;
                let socket = if local.is_ipv4() {
                    TcpSocket::new_v4()
                } else {
                    TcpSocket::new_v6()
                }
                .map_err(io)?;
                socket.bind(SocketAddr::new(local, 0)).map_err(io)?;
                socket.connect(remote).await.map_err(io)?
            }
        };
        let _ = stream.set_nodelay(true);
        handshake(stream, &self.address, &self.options, self.bind).await
    }
}

/// A resume token and how long the server holds a lost session for it.
pub(crate) struct Held {
    pub(crate) token: ResumeToken,
    pub(crate) expires_in: Duration,
}

impl std::fmt::Debug for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // ResumeToken's own Debug output is redacted.
        f.debug_struct("Held")
            .field("token", &self.token)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// An accepted resume: the new connection and the server's answer after `id`, its last frame
/// being the fresh `session`.
pub(crate) struct Resumed {
    pub(crate) ws: WebSocket,
    pub(crate) id: u64,
    pub(crate) frames: Vec<String>,
}

/// A resume under way, in a task of its own (aborted when dropped).
pub(crate) struct Reconnect {
    task: JoinHandle<Result<Resumed, String>>,
}

impl std::fmt::Debug for Reconnect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reconnect")
    }
}

impl Drop for Reconnect {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Reconnect {
    /// How it ended: the resumed connection, or why it gave up. Cancel-safe.
    pub(crate) async fn outcome(&mut self) -> Result<Resumed, String> {
        match (&mut self.task).await {
            Ok(outcome) => outcome,
            Err(e) => Err(format!("the reconnecting task failed: {e}")),
        }
    }
}

/// Starts taking the session back with `held`, asking for every message after `since`.
pub(crate) fn start(dial: Dial, held: Held, since: Option<u64>) -> Reconnect {
    Reconnect {
        task: tokio::spawn(async move { reconnect(&dial, &held, since).await }),
    }
}

/// Attempts to resume until one is accepted, the server refuses, or the session expires.
async fn reconnect(dial: &Dial, held: &Held, since: Option<u64>) -> Result<Resumed, String> {
    let deadline = Instant::now() + held.expires_in;
    let (first, longest) = dial.options.backoff();
    let mut pause = first;
    let mut last = String::from("no attempt was made");
    loop {
        // Pause first, the first time too: a server that just dropped every connection is not
        // hit by all its clients at once.
        let wait = jitter(pause);
        if Instant::now() + wait >= deadline {
            return Err(format!(
                "the session expired before the server could be reached again ({last})"
            ));
        }
        tokio::time::sleep(wait).await;
        pause = (pause * 2).min(longest);
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left.min(ATTEMPT), attempt(dial, held, since)).await {
            Ok(Ok(resumed)) => return Ok(resumed),
            Ok(Err(Attempt::Final(reason))) => return Err(reason),
            Ok(Err(Attempt::Again(reason))) => last = reason,
            Err(_elapsed) => last = "an attempt timed out".to_owned(),
        }
    }
}

/// Why one attempt failed.
enum Attempt {
    /// Worth another try (the server is not there, or restarting).
    Again(String),
    /// The server said no for good.
    Final(String),
}

/// One attempt: connect, `caps`, `resume`, the answer.
async fn attempt(dial: &Dial, held: &Held, since: Option<u64>) -> Result<Resumed, Attempt> {
    let connection = dial
        .connect()
        .await
        .map_err(|e| Attempt::Again(e.to_string()))?;
    connection
        .resume(&held.token, since)
        .await
        .map_err(|e| match e {
            // Busy, not a judgement on the token: try again.
            Error::Refused(text)
                if text == refusal::TOO_MANY_LOGINS || text == refusal::CLUSTER_UNAVAILABLE =>
            {
                Attempt::Again(text)
            }
            Error::Refused(text) => Attempt::Final(text),
            Error::Closed(ref closed) if !lost(closed) => Attempt::Final(e.to_string()),
            other => Attempt::Again(other.to_string()),
        })
}

/// Whether a connection that ended this way was lost (to be resumed) rather than closed on
/// purpose: no close frame, `1001` (going away) or `1012` (restarting).
pub(crate) fn lost(closed: &Closed) -> bool {
    matches!(
        closed.code,
        None | Some(1001) | Some(clichat_proto::CLOSE_RESTARTING)
    )
}

/// `pause` varied by ±50%, from the standard library's per-process random keys (no random
/// number crate for a few bits of jitter).
fn jitter(pause: Duration) -> Duration {
    let bits = RandomState::new().hash_one(std::time::SystemTime::now());
    let fraction = (bits % 1_000_001) as f64 / 1_000_000.0;
    pause.mul_f64(0.5 + fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_half_either_way_and_varies() {
        let pause = Duration::from_millis(1000);
        let pauses: Vec<Duration> = (0..200).map(|_| jitter(pause)).collect();
        for p in &pauses {
            assert!(*p >= Duration::from_millis(500) && *p <= Duration::from_millis(1500));
        }
        let distinct: std::collections::BTreeSet<_> = pauses.iter().collect();
        assert!(
            distinct.len() > 100,
            "jitter varies: {} distinct",
            distinct.len()
        );
    }

    #[test]
    fn only_a_loss_is_resumed() {
        let closed = |code| Closed {
            code,
            reason: String::new(),
        };
        assert!(lost(&closed(None)));
        assert!(lost(&closed(Some(1001))));
        assert!(lost(&closed(Some(1012))));
        assert!(!lost(&closed(Some(1000))));
        assert!(!lost(&closed(Some(1008))));
    }

    #[test]
    fn a_held_token_stays_out_of_debug_output() {
        let held = Held {
            token: ResumeToken("SECRET-RESUME".into()),
            expires_in: Duration::from_secs(30),
        };
        assert!(!format!("{held:?}").contains("SECRET-RESUME"));
    }
}
