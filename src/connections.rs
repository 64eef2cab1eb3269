//! How long a connection may stay open, on every listener.
//!
//! Each accepted connection is served by [`Supervised`], which closes it
//! when its client takes longer than `header_read` to send a complete
//! request header (counted from the connection's start, or on a kept
//! HTTP/1.1 connection from the first byte of the next request), when it
//! has been idle (no request in flight, nothing sent) for `idle`, or when
//! the listener shuts down: then the requests in flight get `grace` to
//! finish before the connection is dropped. [`serve`] is the accept loop
//! around it: it stops accepting at shutdown and returns once every
//! connection has ended, so shutdown is bounded by `grace`.
//!
//! The timing is the gate's own rather than hyper's: hyper's HTTP/1.1
//! header timeout also runs while a kept connection waits for its next
//! request, which would cut controllers' keep-alive pools short, and its
//! HTTP/2 server has no header or idle timeout at all.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper_util::server::graceful::GracefulConnection;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};

/// The timeouts of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time to send a complete request header.
    pub header_read: Duration,
    /// Time a connection with nothing in flight stays open.
    pub idle: Duration,
    /// Time the requests in flight get once the connection is asked to
    /// close (shutdown, or `max_age`).
    pub grace: Duration,
    /// A connection is asked to close once it is this old (`listen.https`).
    pub max_age: Option<Duration>,
}

/// "No time": the first byte of the next request has not arrived.
const UNSET: u64 = u64::MAX;

/// What the connection's IO, its requests and its supervisor share.
/// Times are milliseconds since `start`.
#[derive(Debug)]
pub(crate) struct Activity {
    start: Instant,
    in_flight: AtomicUsize,
    /// When the header now being read began (the connection's start for
    /// its first request); `UNSET` when no header is being read.
    header_since: AtomicU64,
    /// When the last request was answered (or the connection started).
    idle_since: AtomicU64,
    /// Bytes read count as the start of a header (HTTP/1.1). HTTP/2 sends
    /// frames of its own between requests: there only the first request's
    /// header is timed, and a stream that never completes its header is
    /// bounded by the idle timeout.
    watch_reads: AtomicBool,
}

impl Activity {
    pub(crate) fn new(watch_reads: bool) -> Arc<Self> {
        Arc::new(Activity {
            start: Instant::now(),
            in_flight: AtomicUsize::new(0),
            header_since: AtomicU64::new(0),
            idle_since: AtomicU64::new(0),
            watch_reads: AtomicBool::new(watch_reads),
        })
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    fn bytes_read(&self) {
        if self.watch_reads.load(Ordering::Relaxed)
            && self.header_since.load(Ordering::Relaxed) == UNSET
        {
            let _ = self.header_since.compare_exchange(
                UNSET,
                self.now(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    fn request_started(&self, http2: bool) {
        if http2 {
            self.watch_reads.store(false, Ordering::Relaxed);
        }
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.header_since.store(UNSET, Ordering::Relaxed);
    }

    fn request_ended(&self) {
        // The body of the request was read after its header: what came in
        // until now belonged to it.
        self.header_since.store(UNSET, Ordering::Relaxed);
        self.idle_since.store(self.now(), Ordering::Relaxed);
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// The next timeout, if nothing changes, and whether it is the header's.
    fn deadline(&self, limits: &Limits) -> Option<(Instant, Expiry)> {
        if self.in_flight.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let header = self.header_since.load(Ordering::Relaxed);
        if header != UNSET {
            return Some((self.at(header) + limits.header_read, Expiry::Header));
        }
        let idle = self.idle_since.load(Ordering::Relaxed);
        Some((self.at(idle) + limits.idle, Expiry::Idle))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    Header,
    Idle,
    Age,
}

/// A connection's byte stream, noting when a request header starts.
#[derive(Debug)]
pub(crate) struct Io<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Io<T> {
    pub(crate) fn new(inner: T, activity: Arc<Activity>) -> Self {
        Io { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Io<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if buf.filled().len() > before {
            self.activity.bytes_read();
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Io<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A connection's service, counting the requests in flight.
#[derive(Debug, Clone)]
pub(crate) struct Counted<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Counted<S> {
    pub(crate) fn new(inner: S, activity: Arc<Activity>) -> Self {
        Counted { inner, activity }
    }
}

/// Ends a request's count when its answer is ready or it is dropped.
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

pin_project_lite::pin_project! {
    /// The answer of a [`Counted`] service.
    pub(crate) struct CountedFuture<F> {
        #[pin]
        inner: F,
        in_flight: InFlight,
    }
}

impl<F: Future> Future for CountedFuture<F> {
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.project().inner.poll(cx)
    }
}

impl<S, B> hyper::service::Service<http::Request<B>> for Counted<S>
where
    S: hyper::service::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = CountedFuture<S::Future>;

    fn call(&self, req: http::Request<B>) -> Self::Future {
        self.activity
            .request_started(req.version() == http::Version::HTTP_2);
        CountedFuture {
            in_flight: InFlight(self.activity.clone()),
            inner: self.inner.call(req),
        }
    }
}

/// A listener's shutdown, as each of its connections sees it.
pub(crate) type Stop = watch::Receiver<bool>;

/// Serves one connection within [`Limits`]; completes when the
/// connection ends or is dropped.
pub(crate) struct Supervised<C> {
    conn: Pin<Box<C>>,
    activity: Arc<Activity>,
    limits: Limits,
    stop: Pin<Box<dyn Future<Output = ()> + Send>>,
    timer: Pin<Box<Sleep>>,
    armed: Instant,
    /// Set once the connection was asked to close: it is dropped then.
    closing: Option<Instant>,
}

impl<C: GracefulConnection> Supervised<C> {
    pub(crate) fn new(conn: C, activity: Arc<Activity>, limits: Limits, mut stop: Stop) -> Self {
        let far = activity.start + Duration::from_secs(86_400 * 365);
        Supervised {
            conn: Box::pin(conn),
            activity,
            limits,
            stop: Box::pin(async move {
                let _ = stop.wait_for(|s| *s).await;
            }),
            timer: Box::pin(tokio::time::sleep_until(far)),
            armed: far,
            closing: None,
        }
    }

    fn deadline(&self) -> Option<(Instant, Expiry)> {
        let age = self
            .limits
            .max_age
            .map(|a| (self.activity.start + a, Expiry::Age));
        match (self.activity.deadline(&self.limits), age) {
            (Some(a), Some(b)) => Some(if b.0 < a.0 { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    fn arm(&mut self, at: Instant) {
        self.armed = at;
        self.timer.as_mut().reset(at);
    }

    /// Asks the connection to finish what is in flight and close; it is
    /// dropped after `grace` in any case.
    fn close_gracefully(&mut self) {
        self.conn.as_mut().graceful_shutdown();
        let until = Instant::now() + self.limits.grace;
        self.closing = Some(until);
        self.arm(until);
    }
}

impl<C: GracefulConnection> Future for Supervised<C> {
    type Output = Result<(), C::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        loop {
            if let Poll::Ready(r) = this.conn.as_mut().poll(cx) {
                return Poll::Ready(r);
            }
            if this.closing.is_some() {
                // Past the grace period: drop the connection.
                ready!(this.timer.as_mut().poll(cx));
                return Poll::Ready(Ok(()));
            }
            if this.stop.as_mut().poll(cx).is_ready() {
                this.close_gracefully();
                continue;
            }
            // The timer may fire early (the deadline moved later since it
            // was armed); it is only ever moved earlier here.
            let due = this.deadline();
            if let Some((at, _)) = due
                && at < this.armed
            {
                this.arm(at);
            }
            ready!(this.timer.as_mut().poll(cx));
            match due {
                Some((at, why)) if at <= Instant::now() => {
                    if why == Expiry::Header {
                        // Nothing to answer and nothing to wait for.
                        return Poll::Ready(Ok(()));
                    }
                    this.close_gracefully();
                }
                Some((at, _)) => this.arm(at),
                None => {
                    let far = this.armed + Duration::from_secs(86_400);
                    this.arm(far);
                }
            }
        }
    }
}

/// Accepts connections on `listener` until `shutdown` completes, serving
/// each with `connection(stream, stop)` as a task of its own; then stops
/// accepting and waits for the open connections, which close within
/// `grace` of `stop`. `name` is the configuration key, for logs.
pub(crate) async fn serve<F, Fut>(
    name: &'static str,
    listener: TcpListener,
    grace: Duration,
    shutdown: impl Future<Output = ()>,
    mut connection: F,
) where
    F: FnMut(TcpStream, Stop) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => break,
            // Reap finished connections as they go.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: keep serving the
                    // open connections and try again shortly.
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Answers of a few hundred bytes must go out at once, not wait for
        // Nagle's algorithm.
        let _ = stream.set_nodelay(true);
        connections.spawn(connection(stream, stop_rx.clone()));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Each connection ends within `grace`; the margin covers the wake-ups.
    let drained = tokio::time::timeout(grace + Duration::from_secs(1), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            listener = name,
            "connections still open after the shutdown grace period are dropped"
        );
    }
}
