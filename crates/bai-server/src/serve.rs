//! Serving HTTP/1.1 and HTTP/2 connections (plain or TLS) from one listener until shutdown, then
//! draining: the listener closes at once, connections finish the requests they are in the middle
//! of (HTTP/1 stops keep-alive, HTTP/2 sends GOAWAY) and are cut after the grace period.
//!
//! Every connection is held to the [`ConnectionLimits`]: idle and head timeouts (its
//! [`Activity`]), header sizes and HTTP/2 limits (hyper's settings), and at most
//! `max_connections` at once per listener (accepting pauses at the limit).

use std::convert::Infallible;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::activity::{Activity, Expiry, Tracked, TrackedIo};
use crate::limits::{
    ConnectionLimits, H2_KEEPALIVE_INTERVAL, H2_KEEPALIVE_TIMEOUT, H2_MAX_CONCURRENT_STREAMS,
    H2_MAX_HEADER_LIST_SIZE, MAX_HEADER_SIZE, MAX_HEADERS,
};

type BoxError = Box<dyn StdError + Send + Sync>;

/// How long a client may take for the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a worker at its connection limit says so.
const AT_LIMIT_WARNING_EVERY: Duration = Duration::from_secs(60);

/// Accepts connections on `listener` and serves each with the service `make_service` returns for
/// the peer's address, within `limits`, until `shutdown` completes. Then it stops accepting, gives
/// open connections `grace` to finish their requests, and closes whatever is left.
pub async fn serve<M, S, B>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    mut make_service: M,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    limits: ConnectionLimits,
) where
    M: FnMut(SocketAddr) -> S,
    S: tower::Service<Request<Incoming>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    let builder = connection_builder();
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut warned_at_limit: Option<Instant> = None;
    tokio::pin!(shutdown);

    loop {
        if slots.available_permits() == 0
            && warned_at_limit.is_none_or(|at| at.elapsed() >= AT_LIMIT_WARNING_EVERY)
        {
            tracing::warn!(
                "holding {} connections, the limit (max-connections-per-worker): not accepting \
                 more until one closes",
                limits.max_connections
            );
            warned_at_limit = Some(Instant::now());
        }
        // At the limit this waits: new connections queue in the listen backlog meanwhile.
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(&error).await;
                    continue;
                }
            },
        };
        // Reap finished connections so that the set only holds open ones.
        while connections.try_join_next().is_some() {}
        let _ = stream.set_nodelay(true);
        let activity = Activity::new();
        let stream = TrackedIo::new(stream, Arc::clone(&activity));
        let service =
            TowerToHyperService::new(Tracked::new(make_service(peer), Arc::clone(&activity)));
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        connections.spawn(async move {
            let _slot = slot;
            let served = async {
                match tls {
                    None => {
                        let connection = builder
                            .serve_connection_with_upgrades(TokioIo::new(stream), service)
                            .into_owned();
                        watcher.watch(connection).await
                    }
                    Some(acceptor) => {
                        let Some(stream) = handshake(&acceptor, stream, peer).await else {
                            return Ok(());
                        };
                        let connection = builder
                            .serve_connection_with_upgrades(TokioIo::new(stream), service)
                            .into_owned();
                        watcher.watch(connection).await
                    }
                }
            };
            // No request is in flight when the activity expires: dropping the connection loses
            // nothing but an idle socket or a head that is too slow.
            let result = tokio::select! {
                result = served => result,
                expiry = activity.expired(&limits) => {
                    match expiry {
                        Expiry::Idle => tracing::debug!("connection from {peer}: idle, closed"),
                        Expiry::SlowHead => tracing::debug!(
                            "connection from {peer}: request head not complete within {:.1} s, closed",
                            limits.header_read_timeout.as_secs_f64()
                        ),
                    }
                    Ok(())
                }
            };
            if let Err(error) = result {
                tracing::debug!("connection from {peer}: {error}");
            }
        });
    }

    drop(listener);
    let open = graceful.count();
    if open > 0 {
        tracing::debug!("waiting up to {grace:?} for {open} open connections");
    }
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        while connections.try_join_next().is_some() {}
        tracing::warn!(
            "{} connections still open after {:.1} s of shutdown; closing them",
            connections.len(),
            grace.as_secs_f64()
        );
    }
    connections.shutdown().await;
}

/// HTTP/1.1 and HTTP/2 with the header and stream limits of [`crate::limits`]. Timeouts between
/// requests are the connection's [`Activity`], not hyper's header timer (which would also run
/// while a keep-alive connection is idle).
fn connection_builder() -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_headers(MAX_HEADERS)
        // A head that does not fit in the read buffer is answered 431 (hyper-util's builder has
        // no separate head limit).
        .max_buf_size(MAX_HEADER_SIZE);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_CONCURRENT_STREAMS)
        .max_header_list_size(H2_MAX_HEADER_LIST_SIZE)
        .keep_alive_interval(H2_KEEPALIVE_INTERVAL)
        .keep_alive_timeout(H2_KEEPALIVE_TIMEOUT);
    builder
}

async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TrackedIo<TcpStream>,
    peer: SocketAddr,
) -> Option<tokio_rustls::server::TlsStream<TrackedIo<TcpStream>>> {
    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Some(stream),
        Ok(Err(error)) => {
            tracing::debug!("TLS handshake with {peer} failed: {error}");
            None
        }
        Err(_) => {
            tracing::debug!("TLS handshake with {peer} timed out");
            None
        }
    }
}

/// After a failed `accept`: errors of a single connection are ignored; running out of file
/// descriptors or memory pauses accepting briefly instead of spinning.
async fn accept_failed(error: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    ) {
        return;
    }
    tracing::warn!("accepting a connection failed: {error}; pausing for 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
