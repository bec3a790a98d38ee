//! How much and how slowly a client may send as a request body, checked before authentication.
//!
//! Every route accepts bodies up to `[manager] client-max-size` (aiohttp's `client_max_size`,
//! 1 MiB by default) unless it sets a limit of its own ([`super::Route::body_limit`]). A
//! `Content-Length` above the limit is refused before anything is read; a body without one (chunked)
//! or whose bytes run past the limit fails the handler's read, and the answer is replaced. Either
//! way: 413 with a problem document of the reference's kind for it (`generic-bad-request`: the
//! reference answers 400 there). A body must arrive at [`BODY_MIN_RATE`] on average after
//! [`BODY_GRACE`]; a slower one fails the read and is answered 408. Neither answer reads the rest
//! of the body: hyper closes the connection instead.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use http::StatusCode;
use tokio::time::Instant;

use crate::error::{ApiError, ErrorKind};

/// The average rate below which a body is too slow, after [`BODY_GRACE`].
pub(super) const BODY_MIN_RATE: u64 = 4096;
/// How long a body may take regardless of its rate.
pub(super) const BODY_GRACE: Duration = Duration::from_secs(30);

/// The limits of one route's bodies.
#[derive(Clone, Copy, Debug)]
pub(super) struct BodyLimit {
    /// Bytes.
    max: u64,
    grace: Duration,
}

impl BodyLimit {
    pub(super) fn new(max: u64) -> BodyLimit {
        BodyLimit {
            max,
            grace: BODY_GRACE,
        }
    }
}

/// What went wrong while the handler read the body.
const READ_OK: u8 = 0;
const READ_TOO_LARGE: u8 = 1;
const READ_TOO_SLOW: u8 = 2;

#[derive(Debug, thiserror::Error)]
enum BodyRefused {
    #[error("the request body exceeds {0} bytes")]
    TooLarge(u64),
    #[error("the request body arrives too slowly")]
    TooSlow,
}

/// The middleware: refuses a declared oversized body, guards the others while the handler reads.
pub(super) async fn limit_body(
    State(BodyLimit { max: limit, grace }): State<BodyLimit>,
    request: Request,
    next: Next,
) -> Response {
    let declared = request
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return too_large(limit);
    }
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let outcome = Arc::new(AtomicU8::new(READ_OK));
    let request = request.map(|body| guarded(body, limit, grace, Arc::clone(&outcome)));
    let response = next.run(request).await;
    match outcome.load(Ordering::Acquire) {
        READ_TOO_LARGE => too_large(limit),
        READ_TOO_SLOW => too_slow(),
        _ => response,
    }
}

/// `body`, failing once more than `limit` bytes arrived or when it falls behind the minimum rate,
/// and noting which in `outcome`.
fn guarded(body: Body, limit: u64, grace: Duration, outcome: Arc<AtomicU8>) -> Body {
    struct Reading {
        stream: axum::body::BodyDataStream,
        received: u64,
        started: Instant,
        outcome: Arc<AtomicU8>,
        done: bool,
    }
    let reading = Reading {
        stream: body.into_data_stream(),
        received: 0,
        started: Instant::now(),
        outcome,
        done: false,
    };
    let stream = futures_util::stream::unfold(reading, move |mut reading| async move {
        if reading.done {
            return None;
        }
        let deadline = reading.started
            + grace
            + Duration::from_secs_f64(reading.received as f64 / BODY_MIN_RATE as f64);
        let refused = match tokio::time::timeout_at(deadline, reading.stream.next()).await {
            Ok(None) => return None,
            Ok(Some(Err(error))) => {
                reading.done = true;
                return Some((Err(error), reading));
            }
            Ok(Some(Ok(bytes))) => {
                reading.received = reading
                    .received
                    .saturating_add(u64::try_from(bytes.len()).unwrap_or(u64::MAX));
                if reading.received <= limit {
                    return Some((Ok::<Bytes, axum::Error>(bytes), reading));
                }
                reading.outcome.store(READ_TOO_LARGE, Ordering::Release);
                BodyRefused::TooLarge(limit)
            }
            Err(_) => {
                reading.outcome.store(READ_TOO_SLOW, Ordering::Release);
                BodyRefused::TooSlow
            }
        };
        reading.done = true;
        Some((Err(axum::Error::new(refused)), reading))
    });
    Body::from_stream(stream)
}

fn too_large(limit: u64) -> Response {
    refusal(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("The request body exceeds the limit of {limit} bytes"),
    )
}

fn too_slow() -> Response {
    refusal(
        StatusCode::REQUEST_TIMEOUT,
        format!(
            "The request body arrived too slowly (below {BODY_MIN_RATE} bytes per second after \
             {} seconds)",
            BODY_GRACE.as_secs()
        ),
    )
}

/// A `generic-bad-request` problem document with another status: the reference has no kind of
/// its own for these.
fn refusal(status: StatusCode, msg: String) -> Response {
    let mut response = ApiError::with_msg(ErrorKind::GenericBadRequest, msg).into_response();
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use axum::Router;
    use axum::routing::post;
    use tower::ServiceExt;

    use super::*;

    fn app(limit: u64) -> Router {
        app_with(BodyLimit::new(limit))
    }

    fn app_with(limit: BodyLimit) -> Router {
        Router::new()
            .route(
                "/",
                post(|body: Bytes| async move {
                    match body.len() {
                        0 => "empty".to_owned(),
                        n => format!("{n} bytes"),
                    }
                }),
            )
            .route_layer(axum::middleware::from_fn_with_state(limit, limit_body))
    }

    async fn answer(response: Response) -> (StatusCode, String, String) {
        let status = response.status();
        let content_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .map(|value| value.to_str().unwrap_or("").to_owned())
            .unwrap_or_default();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        (
            status,
            content_type,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    #[tokio::test]
    async fn bodies_up_to_the_limit_pass() {
        let request = Request::post("/")
            .body(Body::from(vec![b'x'; 100]))
            .unwrap();
        let (status, _, body) = answer(app(100).oneshot(request).await.unwrap()).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "100 bytes"));
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_413_unread() {
        let request = Request::post("/")
            .header(http::header::CONTENT_LENGTH, "101")
            .body(Body::from(vec![b'x'; 101]))
            .unwrap();
        let (status, content_type, body) = answer(app(100).oneshot(request).await.unwrap()).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(content_type, "application/problem+json; charset=utf-8");
        assert_eq!(
            body,
            r#"{"type": "https://api.backend.ai/probs/generic-bad-request", "title": "Bad request.", "msg": "The request body exceeds the limit of 100 bytes"}"#
        );
    }

    #[tokio::test]
    async fn a_streamed_body_over_the_limit_is_413() {
        let chunks = futures_util::stream::iter(
            (0..5).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 30]))),
        );
        let request = Request::post("/").body(Body::from_stream(chunks)).unwrap();
        let (status, _, body) = answer(app(100).oneshot(request).await.unwrap()).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
        assert!(body.contains("generic-bad-request"), "{body}");
    }

    #[tokio::test]
    async fn a_body_below_the_minimum_rate_is_408() {
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        sender.send(Ok(Bytes::from_static(b"x"))).await.unwrap();
        let stream = tokio_stream_from(receiver);
        let request = Request::post("/").body(Body::from_stream(stream)).unwrap();
        let limit = BodyLimit {
            max: 100,
            grace: Duration::from_millis(200),
        };
        let response = app_with(limit).oneshot(request).await.unwrap();
        drop(sender);
        let (status, _, body) = answer(response).await;
        assert_eq!(status, StatusCode::REQUEST_TIMEOUT, "{body}");
    }

    fn tokio_stream_from(
        receiver: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    ) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send {
        futures_util::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|item| (item, receiver))
        })
    }
}
