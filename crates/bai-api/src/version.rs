//! API versions: the header-only versioning of the reference (api-auth-client.md §2).

use http::HeaderMap;

use crate::error::ApiError;

/// The compatibility level this server implements.
pub const LATEST_API_VERSION: &str = "v8.20240315";
/// The reference release whose API this server speaks.
pub const COMPATIBLE_MANAGER_VERSION: &str = "24.03.11";

/// Every version a client may send; anything else is refused, even on `GET /`.
pub const VALID_VERSIONS: [&str; 12] = [
    "v4.20181215",
    "v4.20190115",
    "v4.20190315",
    "v4.20190615",
    "v5.20191215",
    "v6.20200815",
    "v6.20210815",
    "v6.20220315",
    "v6.20220615",
    "v6.20230315",
    "v7.20230615",
    LATEST_API_VERSION,
];

/// The version a request was made with: `(major, "YYYYMMDD")`, compared as a tuple.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion {
    pub major: u32,
    pub date: &'static str,
}

impl ApiVersion {
    /// What a request without a version header gets (the reference's default is v5, not the latest).
    pub const DEFAULT: ApiVersion = ApiVersion {
        major: 5,
        date: "20191215",
    };

    /// The version of a request: `X-BackendAI-Version`, else the legacy `X-Sorna-Version`.
    pub fn from_headers(headers: &HeaderMap) -> Result<ApiVersion, ApiError> {
        let Some(raw) = version_header(headers) else {
            return Ok(Self::DEFAULT);
        };
        let unsupported = || ApiError::bad_request("Unsupported API version.");
        let raw = raw.value.to_str().map_err(|_| unsupported())?;
        let known = VALID_VERSIONS
            .iter()
            .find(|known| **known == raw)
            .ok_or_else(unsupported)?;
        let (major, date) = known[1..].split_once('.').ok_or_else(unsupported)?;
        Ok(ApiVersion {
            major: major.parse().map_err(|_| unsupported())?,
            date,
        })
    }
}

/// A version header as sent, with the lower-case name it is signed under.
pub(crate) struct VersionHeader<'a> {
    pub signed_name: &'static str,
    pub value: &'a http::HeaderValue,
}

pub(crate) fn version_header(headers: &HeaderMap) -> Option<VersionHeader<'_>> {
    if let Some(value) = headers.get("x-backendai-version") {
        return Some(VersionHeader {
            signed_name: "x-backendai-version",
            value,
        });
    }
    headers.get("x-sorna-version").map(|value| VersionHeader {
        signed_name: "x-sorna-version",
        value,
    })
}

#[cfg(test)]
mod tests {
    use http::{HeaderMap, HeaderValue};

    use super::ApiVersion;

    fn headers(name: &'static str, value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn absent_header_means_v5() {
        assert_eq!(
            ApiVersion::from_headers(&HeaderMap::new()).unwrap(),
            ApiVersion::DEFAULT
        );
    }

    #[test]
    fn known_versions_parse_and_order_as_tuples() {
        let v7 = ApiVersion::from_headers(&headers("x-backendai-version", "v7.20230615")).unwrap();
        let v4 = ApiVersion::from_headers(&headers("x-sorna-version", "v4.20190315")).unwrap();
        assert_eq!((v7.major, v7.date), (7, "20230615"));
        assert!(v4 < v7);
    }

    #[test]
    fn unknown_versions_are_refused() {
        for bad in ["v3.20170615", "v9.20300101", "latest", "v8.20240315 "] {
            let error = ApiVersion::from_headers(&headers("x-backendai-version", bad)).unwrap_err();
            assert_eq!(error.status(), 400, "{bad}");
            assert_eq!(error.msg.as_deref(), Some("Unsupported API version."));
        }
    }
}
