//! Connections before tonic sees them: caps on how many are open in all
//! (`limits.max_connections`) and per client address
//! (`limits.max_connections_per_address`, IPv6 by its /64, trusted proxies
//! exempt), and a deadline for a connection's first bytes
//! (`limits.first_bytes_timeout_ms`: the whole HTTP/2 preface or an
//! HTTP/1.1 request line, for TLS after the handshake), so sockets that
//! never speak, or stop after a few bytes, are closed instead of held
//! forever. Limits reached are logged at most
//! once a second per kind, with how many were not. At start-up the
//! open-file limit is raised to what the caps need, where it can be.

use std::{
    collections::HashMap,
    future::Future,
    io,
    net::IpAddr,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf},
    net::TcpStream,
    task::JoinSet,
    time::Sleep,
};
use tokio_stream::Stream;
use tonic::transport::server::{Connected, TcpIncoming};

use super::limits::caller::{bucket, Cidr};
use super::throttle::Throttle;
use crate::config::LimitConfig;

/// At most this many connections are taken from the listener in one go
/// before ready ones are handed on.
const ACCEPT_BATCH: usize = 64;

/// How long accepting pauses after the listener fails (out of descriptors,
/// say), instead of retrying in a busy loop.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// The most of a connection's first bytes read (and replayed) at once.
const FIRST_READ: usize = 4096;

/// Open connections, in all and per address bucket.
#[derive(Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// The connection limits of `[limits]` and the connections they count.
pub(crate) struct ConnLimits {
    first_bytes_timeout: Duration,
    max_total: usize,
    max_per_address: usize,
    trusted: Vec<Cidr>,
    open: Mutex<Open>,
    /// One log line per kind a second: `connections_total`,
    /// `connections_per_address`, `silent`, `accept`.
    log: Throttle,
}

impl ConnLimits {
    /// The limits of `config` (checked by `Config::validate`; proxies that
    /// do not parse are left out here).
    pub(crate) fn new(config: &LimitConfig) -> ConnLimits {
        ConnLimits {
            first_bytes_timeout: Duration::from_millis(config.first_bytes_timeout_ms),
            max_total: config.max_connections,
            max_per_address: config.max_connections_per_address,
            trusted: (config.trusted_proxies.iter())
                .filter_map(|p| Cidr::parse(p))
                .collect(),
            open: Mutex::default(),
            log: Throttle::default(),
        }
    }

    /// Counts a connection from `peer`, or refuses it (and logs that,
    /// throttled) when a cap is reached. Trusted proxies count in all but
    /// not per address: many clients come through one.
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<ConnGuard> {
        let key = (!self.trusted.iter().any(|c| c.contains(peer))).then(|| bucket(peer));
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if open.total >= self.max_total {
            drop(open);
            crate::metrics::shed("connections_total");
            if let Some(suppressed) = self.log.pass("connections_total") {
                tracing::warn!(
                    peer = %peer,
                    limit = self.max_total,
                    suppressed,
                    "connection refused: the server has limits.max_connections open"
                );
            }
            return None;
        }
        if let Some(key) = key {
            let count = open.by_address.entry(key).or_insert(0);
            if *count >= self.max_per_address {
                drop(open);
                crate::metrics::shed("connections_per_address");
                if let Some(suppressed) = self.log.pass("connections_per_address") {
                    tracing::warn!(
                        peer = %peer,
                        address = %key,
                        limit = self.max_per_address,
                        suppressed,
                        "connection refused: this address has limits.max_connections_per_address open"
                    );
                }
                return None;
            }
            *count += 1;
        }
        open.total += 1;
        Some(ConnGuard {
            limits: self.clone(),
            key,
        })
    }

    fn silent(&self, peer: IpAddr, error: &io::Error) {
        crate::metrics::shed("silent");
        if let Some(suppressed) = self.log.pass("silent") {
            tracing::info!(
                peer = %peer,
                timeout_ms = self.first_bytes_timeout.as_millis() as u64,
                suppressed,
                error = %error,
                "connection closed: nothing received within limits.first_bytes_timeout_ms"
            );
        }
    }

    /// Open connections, for tests.
    #[cfg(test)]
    fn open(&self) -> usize {
        self.open.lock().unwrap().total
    }
}

/// Descriptors the server keeps for itself besides its connections: the
/// stores, the index, the logs, outgoing connections.
const OWN_DESCRIPTORS: u64 = 256;

/// Raises the process's soft open-file limit to its hard one (unlimited
/// counts as 2^20, Linux's usual ceiling) and logs the change: a soft
/// limit of 1,024, a common default, would refuse connections by accept
/// errors long before `limits.max_connections` (10,000). Warns when even
/// the hard limit falls short of the cap.
pub(crate) fn raise_open_files_limit(max_connections: usize) {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let limit = getrlimit(Resource::Nofile);
    let ceiling = limit.maximum.unwrap_or(1 << 20);
    let mut soft = limit.current.unwrap_or(u64::MAX);
    if soft < ceiling {
        let raised = rustix::process::Rlimit {
            current: Some(ceiling),
            maximum: limit.maximum,
        };
        match setrlimit(Resource::Nofile, raised) {
            Ok(()) => {
                tracing::info!(from = soft, to = ceiling, "open-file limit raised");
                soft = ceiling;
            }
            Err(e) => tracing::warn!(
                limit = soft,
                error = %e,
                "cannot raise the open-file limit"
            ),
        }
    }
    let needed = max_connections as u64 + OWN_DESCRIPTORS;
    if soft < needed {
        tracing::warn!(
            limit = soft,
            max_connections,
            "the open-file limit is below limits.max_connections plus {OWN_DESCRIPTORS}: \
             connections past it are refused by accept errors; raise the hard limit \
             (ulimit -Hn, LimitNOFILE=) or lower limits.max_connections"
        );
    }
}

/// One open connection's place in the counts, given back when dropped.
pub(crate) struct ConnGuard {
    limits: Arc<ConnLimits>,
    key: Option<IpAddr>,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|e| e.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(key) = self.key {
            if let Some(count) = open.by_address.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    open.by_address.remove(&key);
                }
            }
        }
    }
}

/// A connection handed to tonic: the stream, its first bytes (read to see
/// that it speaks, given back before anything else) and its place in the
/// counts, held as long as the connection. tonic gets the stream's own
/// connect info, so `Request::remote_addr()` (and `peer_certs()` over TLS)
/// work as before.
pub(crate) struct Conn<S> {
    inner: S,
    first: Vec<u8>,
    replayed: usize,
    _guard: ConnGuard,
}

impl<S: AsyncRead + Unpin> AsyncRead for Conn<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.replayed < this.first.len() {
            let rest = &this.first[this.replayed..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.replayed += n;
            if this.replayed == this.first.len() {
                this.first = Vec::new();
                this.replayed = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Conn<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: Connected> Connected for Conn<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// What is done to a TCP connection before its first bytes are awaited
/// (nothing, or the TLS handshake under its own timeout).
pub(crate) type Prepare<S> =
    Arc<dyn Fn(TcpStream) -> Pin<Box<dyn Future<Output = io::Result<S>> + Send>> + Send + Sync>;

/// The [`Prepare`] of an async `step`.
pub(crate) fn prepare<S, F, Fut>(step: F) -> Prepare<S>
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = io::Result<S>> + Send + 'static,
{
    Arc::new(
        move |tcp| -> Pin<Box<dyn Future<Output = io::Result<S>> + Send>> { Box::pin(step(tcp)) },
    )
}

/// What an HTTP/2 client sends first.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Whether `first` is a whole opening: the HTTP/2 preface, a line (an
/// HTTP/1.1 request line), or as much as is read at once. A part of the
/// preface is not one, so a client that sends a few bytes and stalls is
/// as silent as one that sends none.
fn opened(first: &[u8]) -> bool {
    let n = first.len().min(PREFACE.len());
    if first[..n] == PREFACE[..n] {
        return first.len() >= PREFACE.len();
    }
    first.contains(&b'\n') || first.len() >= FIRST_READ
}

/// Reads the first bytes of `stream`, up to a whole opening ([`opened`]),
/// within `timeout`.
async fn first_bytes<S: AsyncRead + Unpin>(
    stream: &mut S,
    timeout: Duration,
) -> io::Result<Vec<u8>> {
    let read = async {
        let mut first = vec![0; FIRST_READ];
        let mut n = 0;
        while !opened(&first[..n]) {
            match stream.read(&mut first[n..]).await? {
                0 => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("closed after {n} bytes, before its preface or request line"),
                    ))
                }
                read => n += read,
            }
        }
        first.truncate(n);
        Ok(first)
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(read) => read,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no whole preface or request line within {timeout:?}"),
        )),
    }
}

/// The listener's connections for tonic's `serve_with_incoming`: each one
/// is counted (or refused at once past a cap), then prepared and awaited
/// for its first bytes in its own task, so a slow or silent client holds up
/// no one; a connection that sends nothing in time is closed. Accept errors
/// (out of descriptors, say) are logged, throttled, and pause accepting
/// briefly instead of spinning. Dropping the stream (tonic does when it
/// stops accepting) closes the listener and ends the waits under way.
pub(crate) struct Connections<S> {
    tcp: TcpIncoming,
    limits: Arc<ConnLimits>,
    prepare: Prepare<S>,
    waiting: JoinSet<Option<Conn<S>>>,
    tcp_done: bool,
    pause: Option<Pin<Box<Sleep>>>,
}

impl<S> Connections<S>
where
    S: AsyncRead + Unpin + Send + 'static,
{
    pub(crate) fn new(
        tcp: TcpIncoming,
        limits: Arc<ConnLimits>,
        prepare: Prepare<S>,
    ) -> Connections<S> {
        Connections {
            tcp,
            limits,
            prepare,
            waiting: JoinSet::new(),
            tcp_done: false,
            pause: None,
        }
    }

    /// Counts `tcp` and starts waiting for it, or closes it past a cap.
    fn take(&mut self, tcp: TcpStream) {
        let Ok(peer) = tcp.peer_addr() else { return };
        let peer = peer.ip();
        let Some(guard) = self.limits.admit(peer) else {
            return;
        };
        let prepare = self.prepare.clone();
        let limits = self.limits.clone();
        self.waiting.spawn(async move {
            let mut stream = prepare(tcp).await.ok()?;
            match first_bytes(&mut stream, limits.first_bytes_timeout).await {
                Ok(first) => Some(Conn {
                    inner: stream,
                    first,
                    replayed: 0,
                    _guard: guard,
                }),
                Err(e) => {
                    limits.silent(peer, &e);
                    None
                }
            }
        });
    }
}

impl<S> Stream for Connections<S>
where
    S: AsyncRead + Unpin + Send + 'static,
{
    type Item = io::Result<Conn<S>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(pause) = &mut this.pause {
            if pause.as_mut().poll(cx).is_ready() {
                this.pause = None;
            }
        }
        let mut accepted = 0;
        while !this.tcp_done && this.pause.is_none() {
            match Pin::new(&mut this.tcp).poll_next(cx) {
                Poll::Ready(Some(Ok(tcp))) => {
                    this.take(tcp);
                    accepted += 1;
                    if accepted == ACCEPT_BATCH {
                        // More may wait: come back after handing some on.
                        cx.waker().wake_by_ref();
                        break;
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    if let Some(suppressed) = this.limits.log.pass("accept") {
                        tracing::warn!(
                            error = %e,
                            suppressed,
                            open = this.limits.open.lock().map(|o| o.total).unwrap_or(0),
                            "cannot accept connections (out of file descriptors?): pausing 100 ms"
                        );
                    }
                    let mut pause = Box::pin(tokio::time::sleep(ACCEPT_PAUSE));
                    // Registers the waker for the end of the pause.
                    let _ = pause.as_mut().poll(cx);
                    this.pause = Some(pause);
                }
                Poll::Ready(None) => this.tcp_done = true,
                Poll::Pending => break,
            }
        }
        loop {
            match this.waiting.poll_join_next(cx) {
                Poll::Ready(Some(Ok(Some(conn)))) => return Poll::Ready(Some(Ok(conn))),
                // Refused, failed or silent: closed (and logged).
                Poll::Ready(Some(Ok(None))) => {}
                Poll::Ready(Some(Err(e))) => {
                    tracing::warn!(error = %e, "a connection's setup task failed")
                }
                // Nothing under way: the listener's or the pause's waker is set.
                Poll::Ready(None) if !this.tcp_done => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(total: usize, per_address: usize, proxies: &[&str]) -> Arc<ConnLimits> {
        Arc::new(ConnLimits::new(&LimitConfig {
            max_connections: total,
            max_connections_per_address: per_address,
            trusted_proxies: proxies.iter().map(|p| p.to_string()).collect(),
            ..LimitConfig::default()
        }))
    }

    #[test]
    fn caps_count_per_address_and_in_all_and_give_back_on_drop() {
        let l = limits(4, 2, &["10.0.0.1"]);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let b_same_64: IpAddr = "2001:db8::ffff".parse().unwrap();
        let first = l.admit(a).unwrap();
        let _second = l.admit(a).unwrap();
        assert!(l.admit(a).is_none(), "a third from one address");
        let _v6 = l.admit(b).unwrap();
        let _v6_again = l.admit(b_same_64).unwrap();
        assert!(l.admit(b).is_none(), "one /64 counts as one address");
        assert_eq!(l.open(), 4);
        drop(first);
        assert_eq!(l.open(), 3);
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        let _p = l.admit(proxy).unwrap();
        assert!(l.admit(proxy).is_none(), "the total cap holds for proxies");
        assert!(l.admit(a).is_none());
    }

    #[test]
    fn an_opening_is_the_whole_preface_or_a_line() {
        assert!(!opened(b""));
        assert!(!opened(b"PRI"), "a part of the preface");
        assert!(!opened(&PREFACE[..23]));
        assert!(opened(PREFACE));
        assert!(opened(&[PREFACE, b"\0\0\x12\x04"].concat()));
        assert!(
            !opened(b"POST /xingweinong.v1.Ma"),
            "a part of a request line"
        );
        assert!(opened(b"GET / HTTP/1.1\r\n"));
        assert!(opened(&[b'x'; FIRST_READ]), "as much as is read at once");
    }

    #[tokio::test]
    async fn a_few_bytes_then_silence_is_silent() {
        let (mut client, mut server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut client, b"PRI")
            .await
            .unwrap();
        let e = first_bytes(&mut server, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        let (mut client, mut server) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut client, PREFACE)
            .await
            .unwrap();
        let first = first_bytes(&mut server, Duration::from_millis(50)).await;
        assert_eq!(first.unwrap(), PREFACE);
    }

    #[test]
    fn trusted_proxies_are_exempt_from_the_per_address_cap() {
        let l = limits(10, 1, &["10.0.0.0/8"]);
        let proxy: IpAddr = "10.1.2.3".parse().unwrap();
        let held: Vec<_> = (0..5).map(|_| l.admit(proxy).unwrap()).collect();
        assert_eq!(held.len(), 5);
    }
}
