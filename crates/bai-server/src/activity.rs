//! What one connection is doing, for the idle and head timeouts of [`crate::limits`]: how many
//! requests it has in flight (from the service call until the response body is done or dropped),
//! since when it has had none, and when the client sent the first byte after that.
//!
//! The socket wrapper ([`TrackedIo`]) notes the first byte, the service wrapper ([`Tracked`])
//! counts requests, and [`Activity::expired`] completes when the connection has been idle too
//! long or a head is taking too long; the connection's task then drops the connection.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

use crate::limits::ConnectionLimits;

/// No head started since the connection became idle.
const NO_HEAD: u64 = u64::MAX;

/// The shared state of one connection; times are milliseconds since it was accepted.
#[derive(Debug)]
pub(crate) struct Activity {
    accepted: Instant,
    in_flight: AtomicUsize,
    idle_since: AtomicU64,
    head_started: AtomicU64,
    /// Wakes [`Activity::expired`] when a head starts: its deadline comes nearer.
    head_noticed: Notify,
}

impl Activity {
    pub(crate) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            accepted: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            head_started: AtomicU64::new(NO_HEAD),
            head_noticed: Notify::new(),
        })
    }

    fn now(&self) -> u64 {
        u64::try_from(self.accepted.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn bytes_read(&self) {
        if self.in_flight.load(Ordering::Acquire) == 0
            && self.head_started.load(Ordering::Acquire) == NO_HEAD
        {
            self.head_started.store(self.now(), Ordering::Release);
            self.head_noticed.notify_one();
        }
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
    }

    fn request_ended(&self) {
        if self.in_flight.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle_since.store(self.now(), Ordering::Release);
            self.head_started.store(NO_HEAD, Ordering::Release);
        }
    }

    /// When the connection is due to close as things stand (`None`: a request is in flight).
    fn deadline(&self, limits: &ConnectionLimits) -> Option<u64> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let millis = |duration: Duration| u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        let head_started = self.head_started.load(Ordering::Acquire);
        Some(if head_started == NO_HEAD {
            self.idle_since
                .load(Ordering::Acquire)
                .saturating_add(millis(limits.keepalive_timeout))
        } else {
            head_started.saturating_add(millis(limits.header_read_timeout))
        })
    }

    /// Completes when the connection has had no request in flight for the keep-alive timeout, or
    /// a request head begun on it has not been complete within the header timeout.
    pub(crate) async fn expired(&self, limits: &ConnectionLimits) -> Expiry {
        loop {
            let now = self.now();
            let wait = match self.deadline(limits) {
                Some(deadline) if deadline <= now => {
                    return if self.head_started.load(Ordering::Acquire) == NO_HEAD {
                        Expiry::Idle
                    } else {
                        Expiry::SlowHead
                    };
                }
                Some(deadline) => Duration::from_millis(deadline - now),
                // Busy: whatever happens next, no deadline is nearer than this.
                None => limits.keepalive_timeout.min(limits.header_read_timeout),
            };
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.head_noticed.notified() => {}
            }
        }
    }
}

/// Why [`Activity::expired`] completed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expiry {
    Idle,
    SlowHead,
}

/// A socket that tells its connection's [`Activity`] when bytes arrive.
#[derive(Debug)]
pub(crate) struct TrackedIo<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> TrackedIo<T> {
    pub(crate) fn new(inner: T, activity: Arc<Activity>) -> TrackedIo<T> {
        TrackedIo { inner, activity }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TrackedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.bytes_read();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TrackedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
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
}

/// A request in flight; ends when dropped.
#[derive(Debug)]
struct InFlight(Arc<Activity>);

impl InFlight {
    fn start(activity: &Arc<Activity>) -> InFlight {
        activity.request_started();
        InFlight(Arc::clone(activity))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

/// A service whose requests count as in flight until their response bodies are done.
#[derive(Clone, Debug)]
pub(crate) struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    pub(crate) fn new(inner: S, activity: Arc<Activity>) -> Tracked<S> {
        Tracked { inner, activity }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, R, B> tower::Service<Request<R>> for Tracked<S>
where
    S: tower::Service<Request<R>, Response = Response<B>, Error = Infallible>,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<TrackedBody<B>>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<R>) -> Self::Future {
        let in_flight = InFlight::start(&self.activity);
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| TrackedBody {
                inner: Box::pin(body),
                _in_flight: in_flight,
            }))
        })
    }
}

/// A response body that keeps its request in flight until it is dropped.
pub(crate) struct TrackedBody<B> {
    inner: Pin<Box<B>>,
    _in_flight: InFlight,
}

impl<B: http_body::Body> http_body::Body for TrackedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        self.inner.as_mut().poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> ConnectionLimits {
        ConnectionLimits {
            keepalive_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1,
        }
    }

    #[test]
    fn deadlines_follow_the_connections_state() {
        let activity = Activity::new();
        assert_eq!(activity.deadline(&limits()), Some(30_000));
        let request = InFlight::start(&activity);
        activity.bytes_read();
        assert_eq!(activity.deadline(&limits()), None);
        drop(request);
        let idle_since = activity.idle_since.load(Ordering::Acquire);
        assert_eq!(activity.deadline(&limits()), Some(idle_since + 30_000));
        activity.bytes_read();
        let head = activity.head_started.load(Ordering::Acquire);
        assert_eq!(activity.deadline(&limits()), Some(head + 10_000));
        // Later bytes of the same head do not move its deadline.
        std::thread::sleep(Duration::from_millis(5));
        activity.bytes_read();
        assert_eq!(activity.deadline(&limits()), Some(head + 10_000));
    }
}
