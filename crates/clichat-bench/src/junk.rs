//! `junk`: connections that send frames the server ignores, as fast as their sockets take them,
//! and reconnect whenever the server closes them. It measures what abuse costs: the server's
//! CPU while it happens (with `--pid`), how many frames got through, and how the server ended
//! the connections (its frame budget closes them with 1008 "too many frames").
//!
//! `--logged-in` sends the junk after a login (bots, or SAUTH2 with `--login sauth2`); without
//! it, the connections never log in. All connections come from the bench's source addresses:
//! `--source 127.0.0.2` makes them one address's worth (at most `max_connections_per_ip`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::net::TcpSocket;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

use crate::Setup;
use crate::login::login;
use crate::report::{Counts, CpuShare, CpuWindow, Run, Table, counts_text};

/// What to run.
#[derive(Debug, Clone)]
pub struct Params {
    /// Connections sending at once.
    pub connections: usize,
    /// Bytes of each junk frame's text.
    pub size: usize,
    /// How long to send.
    pub duration: Duration,
    /// Log in before sending.
    pub logged_in: bool,
}

/// What a run found.
#[derive(Debug, Serialize)]
pub struct Report {
    #[serde(flatten)]
    run: Run,
    connections: usize,
    frame_bytes: usize,
    logged_in: bool,
    seconds: f64,
    /// Frames the server took (written to the socket before it closed).
    frames_sent: u64,
    frames_per_s: f64,
    /// Connections made, first ones and reconnections.
    connects: u64,
    /// How connections ended, by the server's close code and reason, or how they failed.
    endings: Counts,
    cpu: CpuShare,
    /// Whether every connection could connect (and log in) at least once.
    pub ok: bool,
}

impl Report {
    /// The human table.
    pub fn table(&self) -> Table {
        let mut t = Table::default();
        t.row("scenario", "junk")
            .server(&self.run.nodes)
            .row(
                "connections",
                format!(
                    "{}, {} ({} B frames)",
                    self.connections,
                    if self.logged_in {
                        "logged in"
                    } else {
                        "never logged in"
                    },
                    self.frame_bytes
                ),
            )
            .row("frames sent", self.frames_sent)
            .row("frames/s", format!("{:.0}", self.frames_per_s))
            .row("connects", self.connects)
            .row("endings", counts_text(&self.endings))
            .row("cpu", self.cpu.text());
        t
    }
}

/// Shared counters of one run.
#[derive(Default)]
struct Tally {
    frames: AtomicU64,
    connects: AtomicU64,
    endings: Mutex<Counts>,
}

/// Runs the scenario.
///
/// # Errors
/// Never for the server's behaviour; only when the run cannot be set up.
pub async fn run(setup: &Arc<Setup>, params: &Params) -> anyhow::Result<Report> {
    let tally = Arc::new(Tally::default());
    let deadline = Instant::now() + params.duration;
    let text = junk_text(params.size);
    let cpu = CpuWindow::start(&[], &setup.watched);
    let started = Instant::now();
    let tasks: Vec<_> = (0..params.connections)
        .map(|index| {
            let setup = Arc::clone(setup);
            let tally = Arc::clone(&tally);
            let text = text.clone();
            let logged_in = params.logged_in;
            tokio::spawn(async move {
                let mut connected = false;
                while Instant::now() < deadline {
                    let ending = match open(&setup, index, logged_in).await {
                        Ok(socket) => {
                            connected = true;
                            tally.connects.fetch_add(1, Ordering::Relaxed);
                            send_until_closed(socket, &text, deadline, &tally).await
                        }
                        Err(error) => {
                            // Refused or over a limit: wait a moment rather than spin.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            error
                        }
                    };
                    *tally.endings.lock().await.entry(ending).or_default() += 1;
                }
                connected
            })
        })
        .collect();
    let mut ok = true;
    for task in tasks {
        ok &= task.await.unwrap_or(false);
    }
    let seconds = started.elapsed().as_secs_f64();
    let cpu = cpu.finish();
    let frames_sent = tally.frames.load(Ordering::Relaxed);
    let endings = std::mem::take(&mut *tally.endings.lock().await);
    Ok(Report {
        run: Run::of("junk", setup),
        connections: params.connections,
        frame_bytes: text.len(),
        logged_in: params.logged_in,
        seconds,
        frames_sent,
        frames_per_s: frames_sent as f64 / seconds.max(1e-9),
        connects: tally.connects.load(Ordering::Relaxed),
        endings,
        cpu,
        ok,
    })
}

/// A frame the server ignores: a JSON array of an unknown type, `size` bytes long.
fn junk_text(size: usize) -> String {
    let padding = size.saturating_sub(r#"["junk",""]"#.len());
    format!(r#"["junk","{}"]"#, "x".repeat(padding))
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connection number `index`, logged in when `logged_in`; otherwise how it failed.
async fn open(setup: &Setup, index: usize, logged_in: bool) -> Result<Socket, String> {
    if logged_in {
        let credential = setup.credential(index);
        let joined = login(&setup.target, &credential, index)
            .await
            .map_err(|e| e.reason())?;
        return Ok(joined.client.into_websocket().0);
    }
    let node = setup.target.node(index);
    let socket = if node.socket.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(|e| format!("connect: {e}"))?;
    if let Some(ip) = setup.target.source(index) {
        socket
            .bind(std::net::SocketAddr::new(ip, 0))
            .map_err(|e| format!("connect: {e}"))?;
    }
    let stream = socket
        .connect(node.socket)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let url = node.address.to_string();
    let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    match tokio_tungstenite::client_async(url, stream).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(format!(
            "upgrade refused: HTTP {}",
            response.status().as_u16()
        )),
        Err(error) => Err(format!("upgrade failed: {error}")),
    }
}

/// Sends `text` frames until the server ends the connection or the run is over; returns how
/// it ended.
async fn send_until_closed(socket: Socket, text: &str, deadline: Instant, tally: &Tally) -> String {
    let (mut sink, mut stream) = socket.split();
    let frame = Message::text(text);
    let until = tokio::time::Instant::from_std(deadline);
    loop {
        tokio::select! {
            biased;
            () = tokio::time::sleep_until(until) => return "still open at the end".to_owned(),
            message = stream.next() => match message {
                Some(Ok(Message::Close(Some(close)))) => {
                    return format!("close {} {}", u16::from(close.code), close.reason);
                }
                Some(Ok(Message::Close(None))) => return "close, no code".to_owned(),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return "socket error".to_owned(),
            },
            sent = sink.send(frame.clone()) => {
                if sent.is_err() {
                    return "socket error".to_owned();
                }
                tally.frames.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn junk_is_an_unknown_frame_of_the_size_asked() {
        let text = junk_text(100);
        assert_eq!(text.len(), 100);
        let frame: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(frame[0], "junk");
        assert_eq!(
            junk_text(1),
            r#"["junk",""]"#,
            "no shorter than an empty one"
        );
    }
}
