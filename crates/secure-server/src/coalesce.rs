//! Write coalescing under every WebSocket: small writes gather in one buffer and reach the
//! socket together when the session flushes, and the buffer is freed once it has all gone.
//!
//! A session drains a batch of queued room frames and flushes once. The frames were framed once
//! for all receivers, so the session copies them straight into this buffer
//! ([`Coalesced::staging`]); tungstenite writes its own frames (logins, refusals, pings and
//! pongs, closes) through it at once, keeping no buffer of its own. The batch leaves in one
//! `write` system call. Unlike `tokio::io::BufWriter`, whose buffer is allocated up front and
//! kept, an idle connection here holds no buffer at all, which is what lets one process hold
//! 19,000 of them.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::limits::ReadBudget;

/// Bytes gathered before they are written without waiting for a flush: about one batch of
/// chat frames.
pub(crate) const WRITE_CHUNK: usize = 16 * 1024;

/// Writes made to client sockets since the start, over every connection: what the write path
/// costs in system calls (`/_status` and `/metrics` report it; `/proc` cannot, since sockets
/// are written with `send`).
static SOCKET_WRITES: AtomicU64 = AtomicU64::new(0);

/// The writes made to client sockets since the start.
pub(crate) fn socket_writes() -> u64 {
    SOCKET_WRITES.load(Ordering::Relaxed)
}

/// Counts one write to a client socket.
fn wrote() {
    SOCKET_WRITES.fetch_add(1, Ordering::Relaxed);
}

/// An `AsyncRead + AsyncWrite` stream whose writes are gathered until a flush (or until
/// [`WRITE_CHUNK`] bytes are waiting). Reads pass straight through, charged to a
/// [`ReadBudget`] when it has one: past it, reads fail with [`OverBudget`].
#[derive(Debug)]
pub(crate) struct Coalesced<S> {
    inner: S,
    /// Bytes accepted and not yet written; empty, with no allocation, whenever all were.
    pending: Vec<u8>,
    /// How many bytes at the front of `pending` the socket has already taken.
    written: usize,
    /// What the peer may send, in bytes.
    reads: Option<ReadBudget>,
}

/// The error of a read past the stream's [`ReadBudget`].
#[derive(Debug, thiserror::Error)]
#[error("the peer sent more than its byte budget")]
pub(crate) struct OverBudget;

impl<S> Coalesced<S> {
    pub(crate) fn new(inner: S) -> Coalesced<S> {
        Coalesced {
            inner,
            pending: Vec::new(),
            written: 0,
            reads: None,
        }
    }

    /// The same stream, its reads charged to `budget`.
    pub(crate) fn with_read_budget(mut self, budget: ReadBudget) -> Coalesced<S> {
        self.reads = Some(budget);
        self
    }

    /// The bytes the next flush writes, to append to (the room's frames, copied as they are).
    /// The caller bounds how much it adds before flushing.
    pub(crate) fn staging(&mut self) -> &mut Vec<u8> {
        &mut self.pending
    }
}

impl<S: AsyncWrite + Unpin> Coalesced<S> {
    /// Writes out everything pending, then frees the buffer.
    fn poll_write_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            wrote();
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending = Vec::new();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Coalesced<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.pending.len() + data.len() > WRITE_CHUNK {
            ready!(this.poll_write_pending(cx))?;
        }
        if data.len() >= WRITE_CHUNK {
            // Nothing is pending now: a large write goes straight to the socket.
            let written = ready!(Pin::new(&mut this.inner).poll_write(cx, data));
            wrote();
            return Poll::Ready(written);
        }
        this.pending.extend_from_slice(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_pending(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_write_pending(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Coalesced<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(budget)) = (&read, &this.reads) {
            if !budget.spend(buf.filled().len() - before) {
                return Poll::Ready(Err(io::Error::other(OverBudget)));
            }
        }
        read
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A socket that takes at most `per_write` bytes per call and counts its calls.
    #[derive(Default)]
    struct Socket {
        received: Vec<u8>,
        writes: usize,
        per_write: usize,
        flushes: usize,
    }

    impl AsyncWrite for Socket {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            data: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = data.len().min(self.per_write);
            self.received.extend_from_slice(&data[..n]);
            self.writes += 1;
            Poll::Ready(Ok(n))
        }

        fn poll_flush(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            self.flushes += 1;
            Poll::Ready(Ok(()))
        }

        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn socket(per_write: usize) -> Coalesced<Socket> {
        Coalesced::new(Socket {
            per_write,
            ..Socket::default()
        })
    }

    #[tokio::test]
    async fn small_writes_leave_together_on_flush_and_free_the_buffer() {
        let mut io = socket(usize::MAX);
        for frame in [&b"one"[..], b"two", b"three"] {
            io.write_all(frame).await.unwrap();
        }
        assert_eq!(io.inner.writes, 0, "nothing is written before the flush");
        io.flush().await.unwrap();
        assert_eq!(io.inner.received, b"onetwothree");
        assert_eq!((io.inner.writes, io.inner.flushes), (1, 1));
        assert_eq!(
            io.pending.capacity(),
            0,
            "a flushed connection holds no buffer"
        );
    }

    #[tokio::test]
    async fn a_full_chunk_is_written_without_a_flush() {
        let mut io = socket(usize::MAX);
        let frame = vec![b'x'; 1000];
        for _ in 0..=WRITE_CHUNK / 1000 {
            io.write_all(&frame).await.unwrap();
        }
        assert_eq!(io.inner.writes, 1);
        assert_eq!(io.inner.received.len(), WRITE_CHUNK / 1000 * 1000);
        io.flush().await.unwrap();
        assert_eq!(io.inner.received.len(), (WRITE_CHUNK / 1000 + 1) * 1000);
    }

    #[tokio::test]
    async fn partial_writes_keep_order_and_large_writes_pass_through() {
        let mut io = socket(7);
        io.write_all(b"abcdefghijklmnopqrstuvwxyz").await.unwrap();
        let large: Vec<u8> = (0..WRITE_CHUNK + 10).map(|i| (i % 251) as u8).collect();
        io.write_all(&large).await.unwrap();
        io.shutdown().await.unwrap();
        let mut expected = b"abcdefghijklmnopqrstuvwxyz".to_vec();
        expected.extend_from_slice(&large);
        assert_eq!(io.inner.received, expected);
    }

    #[tokio::test]
    async fn staged_bytes_follow_written_ones_on_the_next_flush() {
        let mut io = socket(usize::MAX);
        io.write_all(b"[").await.unwrap();
        io.staging().extend_from_slice(b"\x81\x02hi");
        io.write_all(b"]").await.unwrap();
        assert_eq!(io.inner.writes, 0);
        io.flush().await.unwrap();
        assert_eq!(io.inner.received, b"[\x81\x02hi]");
    }

    #[tokio::test]
    async fn reads_pass_through() {
        let (mut near, far) = tokio::io::duplex(64);
        let mut io = Coalesced::new(far);
        near.write_all(b"hello").await.unwrap();
        let mut got = [0u8; 5];
        io.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello");
        io.write_all(b"back").await.unwrap();
        io.flush().await.unwrap();
        let mut back = [0u8; 4];
        near.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"back");
    }
}
