//! Response bodies as the reference's aiohttp `json_response` sends them: the bytes Python's
//! `json.dumps` writes (`bai-pyjson`), with its content type.

use axum::response::{IntoResponse, Response};
use bai_pyjson::Layout;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, StatusCode};
use serde::Serialize;

/// `value` as Python's `json.dumps(value)` would write it.
pub fn to_python_json<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Serializing our own response types into memory cannot fail: they have string keys only.
    bai_pyjson::to_vec(value, Layout::Compact).unwrap_or_else(|_| b"null".to_vec())
}

/// The content type of aiohttp's `json_response`.
pub(crate) const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// A JSON response body with `Content-Type: application/json; charset=utf-8`, like aiohttp's
/// `json_response`.
#[derive(Debug)]
pub struct PyJson<T>(pub T);

impl<T: Serialize> IntoResponse for PyJson<T> {
    fn into_response(self) -> Response {
        json_response(StatusCode::OK, &self.0, JSON_CONTENT_TYPE)
    }
}

pub(crate) fn json_response<T: Serialize + ?Sized>(
    status: StatusCode,
    body: &T,
    content_type: &'static str,
) -> Response {
    let mut response = (status, to_python_json(body)).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
