//! Request signing of the Backend.AI API (HMAC-SHA256 keypair auth), as the official Python client
//! does it, so that `bench server` can send authenticated requests with a load generator that
//! cannot compute HMACs itself (wrk): the headers are computed here and passed to it verbatim.
//!
//! The algorithm (spec: api-auth-client.md §3): the signing key is derived from the secret key,
//! the calendar date of the `Date` header and the `Host` header; the signature is an HMAC over the
//! method, raw path with query, raw `Date`, host, media type, API version and the SHA-256 of an
//! empty body (bodies are not signed since API v4.20181215).

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// The API version the 24.03 client negotiates with a 24.03 manager.
pub const API_VERSION: &str = "v8.20240315";

/// An API keypair.
#[derive(Debug, Clone, Copy)]
pub struct Keypair<'a> {
    pub access_key: &'a str,
    pub secret_key: &'a str,
}

/// The superadmin keypair of the example fixtures (`fixtures/manager/example-keypairs.json`,
/// user `admin@lablup.com`), well-known development values.
pub const EXAMPLE_SUPERADMIN: Keypair<'static> = Keypair {
    access_key: "AKIAIOSFODNN7EXAMPLE",
    secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
};

/// What of a request enters its signature.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Upper case, as sent.
    pub method: &'a str,
    /// The raw request target: path and `?query`, byte for byte as sent.
    pub path: &'a str,
    /// The `Host` header as sent (with the port when the URL has one).
    pub host: &'a str,
    /// The media type sent in `Content-Type`; the client sends `text/plain` for a request without
    /// a body.
    pub content_type: &'a str,
    /// The `X-BackendAI-Version` header.
    pub api_version: &'a str,
}

/// The headers that authenticate `request` at time `now`: `Date`, `X-BackendAI-Version`,
/// `Content-Type` and `Authorization`. The manager accepts them for 15 minutes around `now`.
pub fn headers(
    keypair: Keypair<'_>,
    request: &Request<'_>,
    now: DateTime<Utc>,
) -> Vec<(&'static str, String)> {
    let date = client_date(now);
    let key_date = now.format("%Y%m%d").to_string();
    let signature = signature(keypair.secret_key, request, &date, &key_date);
    vec![
        ("Date", date),
        ("X-BackendAI-Version", request.api_version.to_owned()),
        ("Content-Type", request.content_type.to_owned()),
        (
            "Authorization",
            format!(
                "BackendAI signMethod=HMAC-SHA256, credential={}:{signature}",
                keypair.access_key
            ),
        ),
    ]
}

/// The lowercase hex signature of `request` with the raw `Date` header `date`, whose calendar
/// date (in the offset it is written in) is `key_date` (`YYYYMMDD`).
pub fn signature(secret_key: &str, request: &Request<'_>, date: &str, key_date: &str) -> String {
    let key = signing_key(secret_key, key_date, request.host);
    hex(&hmac(&key, string_to_sign(request, date).as_bytes()))
}

/// `HMAC(HMAC(secret, key_date), host)`: the key a request of that day to that host is signed with.
pub fn signing_key(secret_key: &str, key_date: &str, host: &str) -> [u8; 32] {
    let date_key = hmac(secret_key.as_bytes(), key_date.as_bytes());
    hmac(&date_key, host.as_bytes())
}

/// The seven lines the signature covers, joined by `\n` without a trailing newline.
fn string_to_sign(request: &Request<'_>, date: &str) -> String {
    let empty_body_hash = hex(&Sha256::digest(b""));
    [
        request.method.to_owned(),
        request.path.to_owned(),
        date.to_owned(),
        format!("host:{}", request.host),
        format!("content-type:{}", request.content_type.to_ascii_lowercase()),
        format!("x-backendai-version:{}", request.api_version),
        empty_body_hash,
    ]
    .join("\n")
}

/// `datetime.now(UTC).isoformat()` as the Python client writes it: microseconds, omitted when
/// they are zero, and `+00:00`.
fn client_date(now: DateTime<Utc>) -> String {
    if now.timestamp_subsec_micros() == 0 {
        now.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
    } else {
        format!(
            "{}.{:06}+00:00",
            now.format("%Y-%m-%dT%H:%M:%S"),
            now.timestamp_subsec_micros()
        )
    }
}

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    /// The worked example of api-auth-client.md §3.4 (checked against the 23.09.10 client).
    const DATE: &str = "2024-05-01T12:34:56.789012+00:00";
    const HOST: &str = "127.0.0.1:8081";

    fn request<'a>(method: &'a str, path: &'a str, content_type: &'a str) -> Request<'a> {
        Request {
            method,
            path,
            host: HOST,
            content_type,
            api_version: "v7.20230615",
        }
    }

    fn example_now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, 12, 34, 56).unwrap()
            + chrono::Duration::microseconds(789_012)
    }

    #[test]
    fn derives_the_keys_of_the_spec_example() {
        let secret = EXAMPLE_SUPERADMIN.secret_key;
        assert_eq!(
            hex(&hmac(secret.as_bytes(), b"20240501")),
            "e6fcca521cd6e8ae05b52aa17ed9ac9cdc043d25ca68b208f48acd99eabd5fcf"
        );
        assert_eq!(
            hex(&signing_key(secret, "20240501", HOST)),
            "bb627f0435106903b99c909a4c1750f0f651aeb8ffb109c9332e5c84b8c8ac36"
        );
    }

    #[test]
    fn signs_the_spec_test_vectors() {
        let secret = EXAMPLE_SUPERADMIN.secret_key;
        for (request, expected) in [
            (
                request("GET", "/", "text/plain"),
                "e2f20e358f4c06c9c080d398c489a9546bd0884f06d6bfa8fcf495f4b2279dfe",
            ),
            (
                request("POST", "/admin/gql", "application/json"),
                "ffbb5fc144c9283fb32a35ad107da1f6eb2ca4d647c2f2be94ef801b7c6b796e",
            ),
            (
                request("GET", "/scaling-groups?group=default", "text/plain"),
                "6d0a9bbcf2a5b9d3eb0773e67f0ddc70148fd8b298ae5b849a035c651f63361e",
            ),
        ] {
            assert_eq!(
                signature(secret, &request, DATE, "20240501"),
                expected,
                "{request:?}"
            );
        }
    }

    #[test]
    fn string_to_sign_matches_the_spec_example() {
        assert_eq!(
            string_to_sign(&request("GET", "/", "text/plain"), DATE),
            "GET\n/\n2024-05-01T12:34:56.789012+00:00\nhost:127.0.0.1:8081\n\
             content-type:text/plain\nx-backendai-version:v7.20230615\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn headers_carry_the_client_date_and_signature() {
        let headers = headers(
            EXAMPLE_SUPERADMIN,
            &request("GET", "/", "text/plain"),
            example_now(),
        );
        let expected = [
            ("Date", DATE),
            ("X-BackendAI-Version", "v7.20230615"),
            ("Content-Type", "text/plain"),
            (
                "Authorization",
                "BackendAI signMethod=HMAC-SHA256, credential=AKIAIOSFODNN7EXAMPLE:\
                 e2f20e358f4c06c9c080d398c489a9546bd0884f06d6bfa8fcf495f4b2279dfe",
            ),
        ];
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        assert_eq!(headers, expected);
    }

    #[test]
    fn client_date_omits_zero_microseconds() {
        let whole = Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 5).unwrap();
        assert_eq!(client_date(whole), "2024-05-01T00:00:05+00:00");
        assert_eq!(client_date(example_now()), DATE);
    }
}
