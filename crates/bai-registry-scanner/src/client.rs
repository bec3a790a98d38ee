//! The HTTP side of one registry: requests with a timeout, TLS verification as `ssl_verify` says,
//! the scan-wide limit on requests in flight, `Link` pagination, and authentication.
//!
//! Authentication follows the registry's own `WWW-Authenticate` challenge rather than a ping before
//! every repository (what the reference does): a request goes out with what worked before; a `401`
//! with a `Bearer` challenge makes us fetch a token for the request's scope from the challenge's
//! realm (with the registry's credentials as HTTP Basic, when configured) and retry once, a `Basic`
//! challenge makes us retry with the credentials. Tokens are cached per scope until shortly before
//! they expire, so a scan asks the token server once per repository.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use data_encoding::BASE64;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, LINK, WWW_AUTHENTICATE};
use reqwest::{StatusCode, Url};
use serde::Deserialize;
use tokio::sync::Semaphore;

/// Why a request to a registry failed; the message names the URL.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    /// `reason` holds the whole chain of causes (reqwest's own message names only the URL).
    #[error("GET {url}: {reason}")]
    Transport { url: Url, reason: String },
    #[error("GET {url}: HTTP {status}{detail}")]
    Status {
        url: Url,
        status: StatusCode,
        /// The registry's own error text, prefixed with ": ", or empty.
        detail: String,
    },
    #[error("GET {url}: the response is not the JSON expected: {source}")]
    Json {
        url: Url,
        #[source]
        source: serde_json::Error,
    },
    #[error("token server {realm} (scope {scope}): {what}")]
    Token {
        realm: String,
        scope: String,
        what: String,
    },
}

/// A registry's username and password; never printed.
#[derive(Clone)]
pub(crate) struct Credentials {
    pub(crate) username: String,
    pub(crate) password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"*****")
            .finish()
    }
}

/// What a request of this client answered: status, headers and the whole body.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) url: Url,
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: bytes::Bytes,
}

impl Reply {
    /// The body as `T`, or an error naming the URL.
    pub(crate) fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, FetchError> {
        serde_json::from_slice(&self.body).map_err(|source| FetchError::Json {
            url: self.url.clone(),
            source,
        })
    }

    /// The media type of `Content-Type`, without parameters.
    pub(crate) fn media_type(&self) -> Option<&str> {
        let value = self.headers.get(CONTENT_TYPE)?.to_str().ok()?;
        Some(value.split(';').next().unwrap_or(value).trim())
    }

    /// The URL of the `Link` header's `rel="next"` entry, resolved against this reply's URL.
    pub(crate) fn next_page(&self) -> Option<Url> {
        self.headers
            .get_all(LINK)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .find_map(|link| {
                let (target, params) = link.split_once(';')?;
                let is_next = params.split(';').any(|param| {
                    let param = param.trim().replace(' ', "");
                    param == "rel=\"next\"" || param == "rel=next"
                });
                let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
                if is_next {
                    self.url.join(target).ok()
                } else {
                    None
                }
            })
    }
}

/// How the registry wants to be authenticated, as its last challenge said.
#[derive(Clone, Debug)]
enum Scheme {
    /// No challenge seen yet: send the credentials as HTTP Basic when there are any.
    Unknown,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// A bearer token and when to stop using it.
#[derive(Clone, Debug)]
struct Token {
    value: String,
    renew_at: Instant,
}

/// The HTTP client of one registry during one scan.
#[derive(Debug)]
pub(crate) struct RegistryClient {
    http: reqwest::Client,
    base: Url,
    credentials: Option<Credentials>,
    /// Shared by every registry of the scan: requests in flight at once.
    limit: Arc<Semaphore>,
    scheme: Mutex<Scheme>,
    /// Scope -> token; the async lock per scope makes concurrent requests of one repository wait
    /// for one token instead of each fetching its own.
    tokens: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Token>>>>>,
}

/// Tokens are renewed this long before the server says they expire.
const TOKEN_MARGIN: Duration = Duration::from_secs(10);
/// Docker's token specification: a token without `expires_in` lasts 60 seconds.
const DEFAULT_TOKEN_LIFETIME: u64 = 60;

impl RegistryClient {
    pub(crate) fn new(
        base_url: &str,
        credentials: Option<Credentials>,
        ssl_verify: bool,
        timeout: Duration,
        limit: Arc<Semaphore>,
    ) -> Result<RegistryClient, String> {
        let mut base =
            Url::parse(base_url).map_err(|error| format!("invalid URL {base_url:?}: {error}"))?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .danger_accept_invalid_certs(!ssl_verify)
            .danger_accept_invalid_hostnames(!ssl_verify)
            .redirect(reqwest::redirect::Policy::limited(5))
            .user_agent(concat!("bai-manager/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| format!("cannot create an HTTP client: {error}"))?;
        Ok(RegistryClient {
            http,
            base,
            credentials,
            limit,
            scheme: Mutex::new(Scheme::Unknown),
            tokens: Mutex::new(HashMap::new()),
        })
    }

    /// `path` (relative, e.g. `v2/_catalog?n=100`) resolved against the registry's URL.
    pub(crate) fn url(&self, path: &str) -> Url {
        self.base.join(path).unwrap_or_else(|_| self.base.clone())
    }

    /// GET `url` with `accept`, authenticated for `scope` (a token scope such as
    /// `repository:stable/python:pull`; `None` for Harbor's REST API, which takes HTTP Basic).
    /// Any status is returned; only transport and authentication failures are errors.
    pub(crate) async fn get(
        &self,
        url: &Url,
        accept: &str,
        scope: Option<&str>,
    ) -> Result<Reply, FetchError> {
        let mut retried = false;
        loop {
            let authorization = match scope {
                Some(scope) => self.authorization(scope).await?,
                None => self.basic(),
            };
            let reply = self.send(url, accept, authorization).await?;
            if reply.status != StatusCode::UNAUTHORIZED || retried {
                return Ok(reply);
            }
            retried = true;
            let Some(challenge) = reply
                .headers
                .get(WWW_AUTHENTICATE)
                .and_then(|value| value.to_str().ok())
                .and_then(parse_challenge)
            else {
                return Ok(reply);
            };
            if matches!(challenge, Scheme::Basic) && self.credentials.is_none() {
                return Ok(reply);
            }
            *lock(&self.scheme) = challenge;
            if let Some(scope) = scope {
                self.forget_token(scope);
            }
        }
    }

    /// Learns how the registry API (`/v2/`) authenticates before requests run concurrently, so that
    /// they do not each meet the challenge. Failures are left to the requests that follow.
    pub(crate) async fn learn_scheme(&self) {
        let url = self.url("v2/");
        if let Ok(reply) = self.send(&url, "application/json", None).await
            && let Some(challenge) = reply
                .headers
                .get(WWW_AUTHENTICATE)
                .and_then(|value| value.to_str().ok())
                .and_then(parse_challenge)
        {
            *lock(&self.scheme) = challenge;
        }
    }

    /// GET `url` and fail unless the status is 2xx.
    pub(crate) async fn get_ok(
        &self,
        url: &Url,
        accept: &str,
        scope: Option<&str>,
    ) -> Result<Reply, FetchError> {
        let reply = self.get(url, accept, scope).await?;
        if reply.status.is_success() {
            Ok(reply)
        } else {
            Err(status_error(&reply))
        }
    }

    async fn send(
        &self,
        url: &Url,
        accept: &str,
        authorization: Option<String>,
    ) -> Result<Reply, FetchError> {
        let transport = |error: reqwest::Error| FetchError::Transport {
            url: url.clone(),
            reason: causes(&error),
        };
        // The permit covers the whole exchange, body included: that is what loads the registry.
        let _permit = self.limit.acquire().await.ok();
        let mut request = self.http.get(url.clone()).header(ACCEPT, accept);
        if let Some(authorization) = authorization {
            request = request.header(AUTHORIZATION, authorization);
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(transport)?;
        Ok(Reply {
            url: url.clone(),
            status,
            headers,
            body,
        })
    }

    fn basic(&self) -> Option<String> {
        self.credentials.as_ref().map(|credentials| {
            format!(
                "Basic {}",
                BASE64.encode(
                    format!("{}:{}", credentials.username, credentials.password).as_bytes()
                )
            )
        })
    }

    /// The `Authorization` value for a request in `scope`, fetching a token when the registry
    /// wants bearer tokens and the cached one is missing or about to expire.
    async fn authorization(&self, scope: &str) -> Result<Option<String>, FetchError> {
        let scheme = lock(&self.scheme).clone();
        let (realm, service) = match scheme {
            Scheme::Unknown | Scheme::Basic => return Ok(self.basic()),
            Scheme::Bearer { realm, service } => (realm, service),
        };
        let slot = Arc::clone(lock(&self.tokens).entry(scope.to_owned()).or_default());
        let mut cached = slot.lock().await;
        if let Some(token) = cached
            .as_ref()
            .filter(|token| token.renew_at > Instant::now())
        {
            return Ok(Some(format!("Bearer {}", token.value)));
        }
        let token = self.fetch_token(&realm, service.as_deref(), scope).await?;
        let value = format!("Bearer {}", token.value);
        *cached = Some(token);
        Ok(Some(value))
    }

    fn forget_token(&self, scope: &str) {
        lock(&self.tokens).remove(scope);
    }

    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<Token, FetchError> {
        let failure = |what: String| FetchError::Token {
            realm: realm.to_owned(),
            scope: scope.to_owned(),
            what,
        };
        let mut url =
            Url::parse(realm).map_err(|error| failure(format!("invalid realm: {error}")))?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            query.append_pair("scope", scope);
            query.append_pair("client_id", "bai-manager");
        }
        let reply = self.send(&url, "application/json", self.basic()).await?;
        if !reply.status.is_success() {
            let refused = if reply.status == StatusCode::UNAUTHORIZED {
                if self.credentials.is_some() {
                    " (the registry's username or password is wrong)"
                } else {
                    " (the registry has no username and password in etcd)"
                }
            } else {
                ""
            };
            return Err(failure(format!("HTTP {}{refused}", reply.status)));
        }
        #[derive(Deserialize)]
        struct TokenReply {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let answer: TokenReply = reply.json().map_err(|error| failure(error.to_string()))?;
        let value = answer
            .token
            .or(answer.access_token)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| failure("the answer holds neither token nor access_token".into()))?;
        let lifetime = Duration::from_secs(answer.expires_in.unwrap_or(DEFAULT_TOKEN_LIFETIME));
        Ok(Token {
            value,
            renew_at: Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN),
        })
    }
}

/// `error` and its causes, outermost first, without repeating a cause its parent already quotes.
fn causes(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_owned()
    } else {
        error.to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// The error for a reply whose status is not a success, with the registry's own message when its
/// body has one (`{"errors": [{"code", "message"}]}` for registries and Harbor alike).
pub(crate) fn status_error(reply: &Reply) -> FetchError {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<ErrorEntry>,
    }
    #[derive(Deserialize)]
    struct ErrorEntry {
        code: Option<String>,
        message: Option<String>,
    }
    let detail = serde_json::from_slice::<Errors>(&reply.body)
        .ok()
        .map(|errors| {
            errors
                .errors
                .into_iter()
                .map(|entry| match (entry.code, entry.message) {
                    (Some(code), Some(message)) => format!("{code}: {message}"),
                    (Some(text), None) | (None, Some(text)) => text,
                    (None, None) => String::new(),
                })
                .filter(|text| !text.is_empty())
                .collect::<Vec<_>>()
                .join("; ")
        })
        .filter(|text| !text.is_empty())
        .map(|text| format!(": {text}"))
        .unwrap_or_default();
    FetchError::Status {
        url: reply.url.clone(),
        status: reply.status,
        detail,
    }
}

/// `Bearer realm="...",service="...",scope="..."` or `Basic realm="..."`.
fn parse_challenge(header: &str) -> Option<Scheme> {
    let (kind, params) = header.trim().split_once(' ').unwrap_or((header.trim(), ""));
    if kind.eq_ignore_ascii_case("basic") {
        return Some(Scheme::Basic);
    }
    if !kind.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = challenge_params(params);
    let realm = params.get("realm")?.clone();
    Some(Scheme::Bearer {
        realm,
        service: params.get("service").cloned(),
    })
}

/// `key="value", key=value, ...` of a challenge; quoted values may contain commas.
fn challenge_params(text: &str) -> HashMap<String, String> {
    let mut params = HashMap::new();
    let mut rest = text.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = match after.strip_prefix('"') {
            Some(quoted) => match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            },
            None => match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            },
        };
        params.insert(key, value.to_owned());
        rest = remaining.trim_start().trim_start_matches(',');
    }
    params
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave their maps half-written.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_of_distribution_and_harbor() {
        let Some(Scheme::Bearer { realm, service }) = parse_challenge(
            r#"Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push""#,
        ) else {
            panic!("bearer expected");
        };
        assert_eq!(realm, "https://auth.example.com/token");
        assert_eq!(service.as_deref(), Some("registry.example.com"));
        assert!(matches!(
            parse_challenge(r#"Basic realm="basic-realm""#),
            Some(Scheme::Basic)
        ));
        assert!(parse_challenge("Negotiate").is_none());
    }

    #[test]
    fn basic_credentials_are_base64() {
        let client = |username: &str, password: &str| {
            let credentials = Credentials {
                username: username.to_owned(),
                password: password.to_owned(),
            };
            RegistryClient::new(
                "https://registry.example.org",
                Some(credentials),
                true,
                Duration::from_secs(1),
                Arc::new(Semaphore::new(1)),
            )
            .unwrap()
        };
        assert_eq!(
            client("user", "pass").basic().as_deref(),
            Some("Basic dXNlcjpwYXNz")
        );
        assert_eq!(client("", "ab").basic().as_deref(), Some("Basic OmFi"));
    }

    #[test]
    fn next_page_from_link_headers() {
        let mut headers = HeaderMap::new();
        headers.insert(
            LINK,
            r#"</v2/_catalog?last=b&n=2>; rel="next""#.parse().unwrap(),
        );
        let reply = Reply {
            url: Url::parse("http://127.0.0.1:5000/v2/_catalog?n=2").unwrap(),
            status: StatusCode::OK,
            headers,
            body: bytes::Bytes::new(),
        };
        assert_eq!(
            reply.next_page().unwrap().as_str(),
            "http://127.0.0.1:5000/v2/_catalog?last=b&n=2"
        );
    }
}
