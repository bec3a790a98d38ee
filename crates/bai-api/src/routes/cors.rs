//! CORS as the reference configures aiohttp-cors on every route (origin `*`, no credentials,
//! `expose_headers="*"`, `allow_headers="*"`, no max-age): a request without `Origin` gets no
//! `Access-Control-*` header at all, so that a proxy in front of us (backend.ai-webserver, which adds
//! its own CORS headers and refuses to find ours already there) sees what the reference sends.
//!
//! Only routed paths take part, as in aiohttp where unmatched paths and 405s have no CORS resource:
//! the router wraps its routes with [`actual_request`] and adds [`preflight`] as every path's
//! `OPTIONS` handler.

use axum::body::{Body, HttpBody};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::Method;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::error::{ApiError, ErrorKind};

/// The response headers a browser shows to scripts anyway (aiohttp-cors's
/// `_SIMPLE_RESPONSE_HEADERS`), left out of `Access-Control-Expose-Headers`.
const SIMPLE_RESPONSE_HEADERS: [HeaderName; 6] = [
    header::CACHE_CONTROL,
    header::CONTENT_LANGUAGE,
    header::CONTENT_TYPE,
    header::EXPIRES,
    header::LAST_MODIFIED,
    header::PRAGMA,
];

/// The CORS headers of an actual (non-preflight) request that carries `Origin`: the origin echoed
/// and every non-simple response header exposed.
pub(super) async fn actual_request(request: Request, next: Next) -> Response {
    if request.method() == Method::OPTIONS {
        return next.run(request).await;
    }
    let Some(origin) = request.headers().get(header::ORIGIN).cloned() else {
        return next.run(request).await;
    };
    let mut response = next.run(request).await;
    let exposed = exposed_headers(&response);
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, exposed);
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    response
}

/// The answer to `OPTIONS` on a routed path: 200 with the origin, the requested method and the
/// requested headers (upper-cased, as aiohttp-cors answers them) allowed. Without `Origin` or
/// `Access-Control-Request-Method` aiohttp-cors raises 403, which the reference's exception
/// middleware turns into 400 `generic-bad-request`.
pub(super) async fn preflight(headers: HeaderMap) -> Result<Response, ApiError> {
    let bad_request = || ApiError::new(ErrorKind::GenericBadRequest);
    let origin = headers.get(header::ORIGIN).ok_or_else(bad_request)?;
    let method = headers
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .ok_or_else(bad_request)?;
    let mut response = (
        [(header::CONTENT_TYPE, "application/octet-stream")],
        Body::empty(),
    )
        .into_response();
    let answer = response.headers_mut();
    answer.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    answer.insert(header::ACCESS_CONTROL_ALLOW_METHODS, method.clone());
    if let Some(requested) = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS) {
        let allowed = requested_headers(requested.as_bytes());
        if !allowed.is_empty() {
            let allowed = HeaderValue::from_bytes(&allowed.join(&b","[..]))
                .expect("parts of a header value are a header value");
            answer.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, allowed);
        }
    }
    Ok(response)
}

/// `Access-Control-Request-Headers` split at commas, stripped of spaces and tabs, upper-cased, empty
/// parts dropped and each name once.
fn requested_headers(value: &[u8]) -> Vec<Vec<u8>> {
    let is_blank = |byte: &u8| *byte == b' ' || *byte == b'\t';
    let mut names: Vec<Vec<u8>> = Vec::new();
    for part in value.split(|&byte| byte == b',') {
        let start = part.iter().position(|byte| !is_blank(byte));
        let end = part.iter().rposition(|byte| !is_blank(byte));
        let (Some(start), Some(end)) = (start, end) else {
            continue;
        };
        let name = part[start..=end].to_ascii_uppercase();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// The names of the response's headers except the simple ones, comma-separated. aiohttp runs the
/// CORS hook after it has set `Content-Length`, `Date` and `Server`; here the HTTP connection adds
/// the first two and an outer layer the last, so they are named too.
fn exposed_headers(response: &Response) -> HeaderValue {
    let mut names: Vec<&str> = Vec::new();
    let sized = response.body().size_hint().exact().is_some();
    let added_later = [
        (header::CONTENT_LENGTH, sized),
        (header::DATE, true),
        (header::SERVER, true),
    ];
    let present = response
        .headers()
        .keys()
        .filter(|name| !SIMPLE_RESPONSE_HEADERS.contains(name));
    let later = added_later
        .iter()
        .filter(|(_, added)| *added)
        .map(|(name, _)| name);
    for name in present.chain(later) {
        if !names.contains(&name.as_str()) {
            names.push(name.as_str());
        }
    }
    HeaderValue::from_str(&names.join(",")).expect("header names are a header value")
}
