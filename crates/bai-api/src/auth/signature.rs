//! The request signature of api-auth-client.md §3: the string to sign, the date-and-host derived
//! key, the `Authorization` header and the `Date` header. Pure functions, checked against the
//! spec's test vectors.

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeDelta, Utc};
use hmac::digest::Digest;
use hmac::digest::core_api::BlockSizeUser;
use hmac::{Mac, SimpleHmac};

use crate::error::ApiError;

/// How far a request's `Date` may be from our clock, exclusive, either way.
pub const CLOCK_SKEW: TimeDelta = TimeDelta::minutes(15);

/// The hash functions a client may sign with (`signMethod=HMAC-<hash>`). The reference accepts any
/// of Python's guaranteed hashlib algorithms; clients only ever use SHA-256. We accept the SHA-1 and
/// SHA-2 family and refuse MD5 and the rest (docs/compat.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignatureHash {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl SignatureHash {
    /// The hash of `signMethod` (`HMAC-SHA256`): MAC type must be HMAC.
    pub fn from_sign_method(sign_method: &str) -> Result<SignatureHash, ApiError> {
        let Some((mac, hash)) = sign_method.split_once('-') else {
            return Err(ApiError::auth_failed("Invalid signature"));
        };
        if !mac.eq_ignore_ascii_case("hmac") {
            return Err(ApiError::invalid_auth(
                "Unsupported request signing method (MAC type)",
            ));
        }
        match hash.to_ascii_lowercase().as_str() {
            "sha1" => Ok(Self::Sha1),
            "sha224" => Ok(Self::Sha224),
            "sha256" => Ok(Self::Sha256),
            "sha384" => Ok(Self::Sha384),
            "sha512" => Ok(Self::Sha512),
            _ => Err(ApiError::invalid_auth(
                "Unsupported request signing method (hash type)",
            )),
        }
    }

    fn mac(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha1 => hmac::<sha1::Sha1>(key, message),
            Self::Sha224 => hmac::<sha2::Sha224>(key, message),
            Self::Sha256 => hmac::<sha2::Sha256>(key, message),
            Self::Sha384 => hmac::<sha2::Sha384>(key, message),
            Self::Sha512 => hmac::<sha2::Sha512>(key, message),
        }
    }

    /// The hex digest of an empty body: every API version we accept signs no body.
    pub fn empty_body_hash(self) -> String {
        hex::encode(match self {
            Self::Sha1 => sha1::Sha1::digest(b"").to_vec(),
            Self::Sha224 => sha2::Sha224::digest(b"").to_vec(),
            Self::Sha256 => sha2::Sha256::digest(b"").to_vec(),
            Self::Sha384 => sha2::Sha384::digest(b"").to_vec(),
            Self::Sha512 => sha2::Sha512::digest(b"").to_vec(),
        })
    }
}

fn hmac<D: Digest + BlockSizeUser>(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = <SimpleHmac<D> as hmac::digest::KeyInit>::new_from_slice(key)
        .expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// What a request contributes to its signature, each piece exactly as received.
#[derive(Clone, Debug)]
pub struct SignedParts<'a> {
    pub method: &'a str,
    /// The request target: path and `?query`, byte for byte.
    pub raw_path: &'a str,
    /// The `Date` header as sent.
    pub raw_date: &'a str,
    /// The date parsed from it, in the offset it was written in.
    pub date: DateTime<FixedOffset>,
    /// The `Host` header as sent.
    pub host: &'a str,
    /// The `Content-Type` header as sent, if any.
    pub content_type: Option<&'a str>,
    /// `x-backendai-version` or `x-sorna-version`, whichever header carried the version.
    pub version_header_name: &'a str,
    pub version: &'a str,
}

impl SignedParts<'_> {
    /// The newline-joined string the signature covers (no trailing newline).
    pub fn string_to_sign(&self, hash: SignatureHash) -> String {
        format!(
            "{}\n{}\n{}\nhost:{}\ncontent-type:{}\n{}:{}\n{}",
            self.method,
            self.raw_path,
            self.raw_date,
            self.host,
            signed_content_type(self.content_type),
            self.version_header_name,
            self.version,
            hash.empty_body_hash(),
        )
    }

    /// The lower-case hex signature a client holding `secret_key` would send.
    pub fn signature(&self, secret_key: &str, hash: SignatureHash) -> String {
        let day = self.date.format("%Y%m%d").to_string();
        let date_key = hash.mac(secret_key.as_bytes(), day.as_bytes());
        let host_key = hash.mac(&date_key, self.host.as_bytes());
        hex::encode(hash.mac(&host_key, self.string_to_sign(hash).as_bytes()))
    }
}

/// The media type as signed: parameters dropped, trimmed, lower-cased; a missing header is
/// `application/octet-stream` (WebSocket and SSE requests send none), an empty or slash-less one
/// `text/plain`.
pub fn signed_content_type(header: Option<&str>) -> String {
    let Some(header) = header else {
        return "application/octet-stream".to_owned();
    };
    let media_type = header.split(';').next().unwrap_or("").trim();
    if media_type.is_empty() || !media_type.contains('/') {
        return "text/plain".to_owned();
    }
    media_type.to_ascii_lowercase()
}

/// The parsed `Authorization: BackendAI signMethod=HMAC-SHA256, credential=AK:SIG` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationHeader {
    pub access_key: String,
    pub signature: String,
    pub sign_method: String,
}

impl AuthorizationHeader {
    pub fn parse(raw: &str) -> Result<AuthorizationHeader, ApiError> {
        let Some((scheme, rest)) = raw.split_once(' ') else {
            return Err(ApiError::invalid_auth("Malformed authorization header"));
        };
        if scheme != "BackendAI" && scheme != "Sorna" {
            return Err(ApiError::invalid_auth("Invalid authorization type name"));
        }
        let malformed = || ApiError::invalid_auth("Missing or malformed authorization parameters");
        let mut credential = None;
        let mut sign_method = None;
        for piece in rest.split(',') {
            // The reference crashes (500) on a piece without `=`; it is a malformed header.
            let (key, value) = piece.trim().split_once('=').ok_or_else(malformed)?;
            match key.trim() {
                "credential" => credential = Some(value.trim()),
                "signMethod" => sign_method = Some(value.trim()),
                _ => {}
            }
        }
        let (access_key, signature) = credential
            .and_then(|credential| credential.split_once(':'))
            .ok_or_else(malformed)?;
        let sign_method = sign_method.ok_or_else(malformed)?;
        Ok(AuthorizationHeader {
            access_key: access_key.to_owned(),
            signature: signature.to_owned(),
            sign_method: sign_method.to_owned(),
        })
    }
}

/// A `Date` header as the reference's lenient parser reads what clients send: ISO 8601 with or
/// without fraction and offset (`T` or a space between date and time), and RFC 1123/2822
/// (`Wed, 01 May 2024 12:34:56 GMT`). A time without offset is UTC.
pub fn parse_date(raw: &str) -> Option<DateTime<FixedOffset>> {
    let raw = raw.trim();
    if let Ok(date) = DateTime::parse_from_rfc3339(raw) {
        return Some(date);
    }
    if let Ok(date) = DateTime::parse_from_rfc2822(raw) {
        return Some(date);
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z"] {
        if let Ok(date) = DateTime::parse_from_str(raw, format) {
            return Some(date);
        }
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(raw, format) {
            return Some(naive.and_utc().fixed_offset());
        }
    }
    None
}

/// Whether `date` lies strictly within the clock-skew window around `now`.
pub fn within_clock_skew(date: DateTime<FixedOffset>, now: DateTime<Utc>) -> bool {
    let date = date.with_timezone(&Utc);
    now - CLOCK_SKEW < date && date < now + CLOCK_SKEW
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const DATE: &str = "2024-05-01T12:34:56.789012+00:00";

    fn parts<'a>(method: &'a str, path: &'a str, content_type: &'a str) -> SignedParts<'a> {
        SignedParts {
            method,
            raw_path: path,
            raw_date: DATE,
            date: parse_date(DATE).unwrap(),
            host: "127.0.0.1:8081",
            content_type: Some(content_type),
            version_header_name: "x-backendai-version",
            version: "v7.20230615",
        }
    }

    #[test]
    fn derived_keys_match_the_spec() {
        let hash = SignatureHash::Sha256;
        let date_key = hash.mac(SECRET.as_bytes(), b"20240501");
        assert_eq!(
            hex::encode(&date_key),
            "e6fcca521cd6e8ae05b52aa17ed9ac9cdc043d25ca68b208f48acd99eabd5fcf"
        );
        assert_eq!(
            hex::encode(hash.mac(&date_key, b"127.0.0.1:8081")),
            "bb627f0435106903b99c909a4c1750f0f651aeb8ffb109c9332e5c84b8c8ac36"
        );
    }

    #[test]
    fn signatures_match_the_spec_vectors() {
        let hash = SignatureHash::from_sign_method("HMAC-SHA256").unwrap();
        let get_root = parts("GET", "/", "text/plain");
        assert_eq!(
            get_root.string_to_sign(hash),
            "GET\n/\n2024-05-01T12:34:56.789012+00:00\nhost:127.0.0.1:8081\n\
             content-type:text/plain\nx-backendai-version:v7.20230615\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        for (parts, expected) in [
            (
                get_root,
                "e2f20e358f4c06c9c080d398c489a9546bd0884f06d6bfa8fcf495f4b2279dfe",
            ),
            (
                parts("POST", "/admin/gql", "application/json"),
                "ffbb5fc144c9283fb32a35ad107da1f6eb2ca4d647c2f2be94ef801b7c6b796e",
            ),
            (
                parts("GET", "/scaling-groups?group=default", "text/plain"),
                "6d0a9bbcf2a5b9d3eb0773e67f0ddc70148fd8b298ae5b849a035c651f63361e",
            ),
        ] {
            assert_eq!(
                parts.signature(SECRET, hash),
                expected,
                "{}",
                parts.raw_path
            );
        }
    }

    #[test]
    fn key_date_is_the_calendar_day_in_the_headers_own_offset() {
        let late = "2024-05-01T23:30:00-05:00";
        let mut with_offset = parts("GET", "/", "text/plain");
        with_offset.raw_date = late;
        with_offset.date = parse_date(late).unwrap();
        let mut as_utc = with_offset.clone();
        as_utc.date = with_offset.date.with_timezone(&Utc).fixed_offset();
        assert_ne!(
            with_offset.signature(SECRET, SignatureHash::Sha256),
            as_utc.signature(SECRET, SignatureHash::Sha256),
            "20240501 vs 20240502"
        );
    }

    #[test]
    fn content_type_is_signed_as_a_bare_lower_case_media_type() {
        assert_eq!(signed_content_type(None), "application/octet-stream");
        assert_eq!(signed_content_type(Some("")), "text/plain");
        assert_eq!(signed_content_type(Some("json")), "text/plain");
        assert_eq!(
            signed_content_type(Some(" Multipart/Form-Data; boundary=xyz")),
            "multipart/form-data"
        );
    }

    #[test]
    fn authorization_header_forms() {
        let parsed = AuthorizationHeader::parse(
            "BackendAI signMethod=HMAC-SHA256, credential=AKIAIOSFODNN7EXAMPLE:abc",
        )
        .unwrap();
        assert_eq!(parsed.access_key, "AKIAIOSFODNN7EXAMPLE");
        assert_eq!(parsed.signature, "abc");
        assert_eq!(parsed.sign_method, "HMAC-SHA256");
        assert!(
            AuthorizationHeader::parse("Sorna credential = AK:sig ,signMethod= HMAC-SHA1").is_ok()
        );
        for (raw, msg) in [
            ("BackendAI", "Malformed authorization header"),
            ("Bearer abc", "Invalid authorization type name"),
            (
                "BackendAI signMethod=HMAC-SHA256",
                "Missing or malformed authorization parameters",
            ),
            (
                "BackendAI credential=AKnocolon, signMethod=HMAC-SHA256",
                "Missing or malformed authorization parameters",
            ),
            (
                "BackendAI garbage",
                "Missing or malformed authorization parameters",
            ),
        ] {
            let error = AuthorizationHeader::parse(raw).unwrap_err();
            assert_eq!(
                (error.status().as_u16(), error.msg.as_deref()),
                (400, Some(msg)),
                "{raw}"
            );
        }
    }

    #[test]
    fn sign_methods() {
        assert_eq!(
            SignatureHash::from_sign_method("hmac-sha512").unwrap(),
            SignatureHash::Sha512
        );
        let no_dash = SignatureHash::from_sign_method("HMACSHA256").unwrap_err();
        assert_eq!(
            (no_dash.status().as_u16(), no_dash.msg.as_deref()),
            (401, Some("Invalid signature"))
        );
        let mac = SignatureHash::from_sign_method("CMAC-SHA256").unwrap_err();
        assert_eq!(
            mac.msg.as_deref(),
            Some("Unsupported request signing method (MAC type)")
        );
        let hash = SignatureHash::from_sign_method("HMAC-MD4").unwrap_err();
        assert_eq!(
            hash.msg.as_deref(),
            Some("Unsupported request signing method (hash type)")
        );
    }

    #[test]
    fn dates_in_the_forms_clients_send() {
        let expected = Utc.with_ymd_and_hms(2024, 5, 1, 12, 34, 56).unwrap();
        for raw in [
            "2024-05-01T12:34:56+00:00",
            "2024-05-01T12:34:56Z",
            "2024-05-01 12:34:56",
            "2024-05-01T12:34:56",
            "2024-05-01T21:34:56+09:00",
            "2024-05-01T12:34:56+0000",
            "Wed, 01 May 2024 12:34:56 GMT",
        ] {
            assert_eq!(
                parse_date(raw).map(|d| d.with_timezone(&Utc)),
                Some(expected),
                "{raw}"
            );
        }
        assert_eq!(parse_date("yesterday"), None);
    }

    #[test]
    fn clock_skew_window_is_exclusive() {
        let now = Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
        let at = |minutes: i64, seconds: i64| {
            (now + TimeDelta::minutes(minutes) + TimeDelta::seconds(seconds)).fixed_offset()
        };
        assert!(within_clock_skew(at(14, 59), now));
        assert!(within_clock_skew(at(-14, -59), now));
        assert!(!within_clock_skew(at(15, 0), now));
        assert!(!within_clock_skew(at(-15, 0), now));
    }
}
