//! The pod's TCP listener, bounded: at most `max` connections open at once
//! (more are closed as they arrive, so the ones in progress keep their
//! memory and file descriptors), and a connection that sends nothing within
//! a deadline is closed. Without these, idle sockets from one client are
//! enough to exhaust a pod that serves every tenant.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// How long a new connection may take to send its first byte: a real
/// client (Twilio, a widget) sends its request at once.
pub const FIRST_BYTE_DEADLINE: Duration = Duration::from_secs(10);

/// A listener that holds at most `max` connections.
pub struct BoundedListener {
    inner: TcpListener,
    permits: Arc<Semaphore>,
    first_byte: Duration,
    shed: Counter,
}

impl BoundedListener {
    /// Bounds `inner` to `max` open connections; `shed` counts the ones
    /// closed for it.
    pub fn new(inner: TcpListener, max: usize, first_byte: Duration, shed: Counter) -> Self {
        Self {
            inner,
            permits: Arc::new(Semaphore::new(max)),
            first_byte,
            shed,
        }
    }
}

impl axum::serve::Listener for BoundedListener {
    type Io = BoundedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
            match self.permits.clone().try_acquire_owned() {
                Ok(permit) => {
                    let deadline = Box::pin(tokio::time::sleep(self.first_byte));
                    return (
                        BoundedStream {
                            stream,
                            first_byte: Some(deadline),
                            _permit: permit,
                        },
                        addr,
                    );
                }
                Err(_) => {
                    self.shed.inc();
                    drop(stream);
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// An accepted connection: gives its place back when dropped.
pub struct BoundedStream {
    stream: TcpStream,
    /// Until the first byte arrives.
    first_byte: Option<Pin<Box<Sleep>>>,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for BoundedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.first_byte = None;
                }
                Poll::Ready(result)
            }
            Poll::Pending => {
                let expired = this
                    .first_byte
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if expired {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "nothing sent within the first-byte deadline",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for BoundedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn bounded(max: usize, first_byte: Duration) -> (BoundedListener, SocketAddr, Counter) {
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let shed = Counter::default();
        (
            BoundedListener::new(inner, max, first_byte, shed.clone()),
            addr,
            shed,
        )
    }

    #[tokio::test]
    async fn connections_past_the_cap_are_closed_and_a_freed_place_is_reused() {
        use axum::serve::Listener as _;
        let (mut listener, addr, shed) = bounded(2, Duration::from_secs(30)).await;
        let _a = TcpStream::connect(addr).await.unwrap();
        let (first, _) = listener.accept().await;
        let _b = TcpStream::connect(addr).await.unwrap();
        let (_second, _) = listener.accept().await;
        let mut third = TcpStream::connect(addr).await.unwrap();
        let mut fourth = TcpStream::connect(addr).await.unwrap();
        let accepting = tokio::spawn(async move {
            let (stream, _) = listener.accept().await;
            (listener, stream)
        });
        // Both arrive while the pod is full: closed on arrival.
        for _ in 0..500 {
            if shed.get() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut byte = [0u8; 1];
        assert_eq!(third.read(&mut byte).await.unwrap_or(0), 0, "closed");
        assert_eq!(fourth.read(&mut byte).await.unwrap_or(0), 0, "closed");
        // A place given back is taken by the next connection.
        drop(first);
        let mut fifth = TcpStream::connect(addr).await.unwrap();
        let (_listener, mut accepted) = accepting.await.unwrap();
        fifth.write_all(b"x").await.unwrap();
        accepted.read_exact(&mut byte).await.unwrap();
        assert_eq!(&byte, b"x");
        assert_eq!(shed.get(), 2);
    }

    #[tokio::test]
    async fn a_connection_that_sends_nothing_is_closed_after_the_deadline() {
        use axum::serve::Listener as _;
        let (mut listener, addr, _) = bounded(4, Duration::from_millis(100)).await;
        let _silent = TcpStream::connect(addr).await.unwrap();
        let (mut silent, _) = listener.accept().await;
        let mut buf = [0u8; 8];
        let err = silent.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);

        let mut talker = TcpStream::connect(addr).await.unwrap();
        let (mut accepted, _) = listener.accept().await;
        talker.write_all(b"GET").await.unwrap();
        assert_eq!(accepted.read(&mut buf).await.unwrap(), 3);
        // Once it has spoken, waiting is the protocol's business.
        let waited =
            tokio::time::timeout(Duration::from_millis(300), accepted.read(&mut buf)).await;
        assert!(waited.is_err(), "no deadline after the first byte");
    }
}
