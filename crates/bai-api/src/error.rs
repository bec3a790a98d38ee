//! API errors as RFC 7807 problem documents, with the reference's type URLs, titles and statuses
//! (api-auth-client.md §4). Clients key on `type`; `msg` and `data` appear only when given.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::Value;

use bai_stores::UnavailableStore;

use crate::json::json_response;

/// The kinds of API error this server produces, each with the reference's status, type and title.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    UrlNotFound,
    ObjectNotFound(&'static str),
    GenericBadRequest,
    InvalidCredentials,
    GenericForbidden,
    InsufficientPrivilege,
    MethodNotAllowed,
    InternalServerError,
    ServerMisconfigured,
    ServiceUnavailable,
    InvalidAuthParameters,
    AuthorizationFailed,
    PasswordExpired,
    InvalidApiParameters,
    NotImplemented,
    /// A route the reference keeps only to say it moved (`DeprecatedAPI`).
    Deprecated,
    GraphQlError,
    RateLimitExceeded,
    ServerFrozen,
    SessionAlreadyExists,
    QuotaExceeded,
    TooManySessionsMatched,
    /// An agent failed a call on a kernel (`KernelExecutionFailed`); the error's data is the
    /// agent's details.
    KernelExecutionFailed,
    /// A storage proxy refused a folder operation (`VFolderOperationFailed`).
    VFolderOperationFailed,
    /// A dotfile could not be stored (`DotfileCreationFailed`): no room left, too many, too big.
    DotfileCreationFailed,
    /// A dotfile with that path exists (`DotfileAlreadyExists`).
    DotfileAlreadyExists,
}

impl ErrorKind {
    pub fn status(self) -> StatusCode {
        match self {
            Self::UrlNotFound | Self::ObjectNotFound(_) | Self::TooManySessionsMatched => {
                StatusCode::NOT_FOUND
            }
            Self::SessionAlreadyExists => StatusCode::BAD_REQUEST,
            Self::QuotaExceeded => StatusCode::PRECONDITION_FAILED,
            Self::GenericBadRequest
            | Self::InvalidCredentials
            | Self::InvalidAuthParameters
            | Self::InvalidApiParameters
            | Self::NotImplemented
            | Self::Deprecated
            | Self::VFolderOperationFailed
            | Self::DotfileCreationFailed
            | Self::DotfileAlreadyExists
            | Self::GraphQlError => StatusCode::BAD_REQUEST,
            Self::GenericForbidden | Self::InsufficientPrivilege => StatusCode::FORBIDDEN,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::InternalServerError | Self::ServerMisconfigured | Self::KernelExecutionFailed => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Self::ServiceUnavailable | Self::ServerFrozen => StatusCode::SERVICE_UNAVAILABLE,
            Self::AuthorizationFailed | Self::PasswordExpired => StatusCode::UNAUTHORIZED,
            Self::RateLimitExceeded => StatusCode::TOO_MANY_REQUESTS,
        }
    }

    /// The last segment of the type URL.
    pub fn slug(self) -> &'static str {
        match self {
            Self::UrlNotFound => "url-not-found",
            Self::ObjectNotFound(_) => "object-not-found",
            Self::GenericBadRequest | Self::DotfileCreationFailed | Self::DotfileAlreadyExists => {
                "generic-bad-request"
            }
            Self::InvalidCredentials => "invalid-credentials",
            Self::GenericForbidden => "generic-forbidden",
            Self::InsufficientPrivilege => "insufficient-privilege",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::InternalServerError => "internal-server-error",
            Self::ServerMisconfigured => "server-misconfigured",
            Self::ServiceUnavailable => "service-unavailable",
            Self::InvalidAuthParameters => "invalid-auth-params",
            Self::AuthorizationFailed => "auth-failed",
            Self::PasswordExpired => "password-expired",
            Self::InvalidApiParameters => "invalid-api-params",
            Self::NotImplemented => "not-implemented",
            Self::Deprecated => "deprecated",
            Self::GraphQlError => "graphql-error",
            Self::RateLimitExceeded => "rate-limit-exceeded",
            Self::ServerFrozen => "server-frozen",
            Self::SessionAlreadyExists => "session-already-exists",
            Self::QuotaExceeded => "quota-exceeded",
            Self::TooManySessionsMatched => "too-many-sessions-matched",
            Self::KernelExecutionFailed => "kernel-execution-failed",
            Self::VFolderOperationFailed => "vfolder-operation-failed",
        }
    }

    pub fn title(self) -> String {
        match self {
            Self::UrlNotFound => "Unknown URL path.".into(),
            Self::ObjectNotFound(object) => format!("No such {object}."),
            Self::GenericBadRequest => "Bad request.".into(),
            Self::InvalidCredentials => "Invalid credentials for authentication.".into(),
            Self::GenericForbidden => "Forbidden operation.".into(),
            Self::InsufficientPrivilege => "Insufficient privilege.".into(),
            Self::MethodNotAllowed => "HTTP Method Not Allowed.".into(),
            Self::InternalServerError => "Internal server error.".into(),
            Self::ServerMisconfigured => "Service misconfigured.".into(),
            // The reference's misspelling is part of the wire format.
            Self::ServiceUnavailable => "Serivce unavailable.".into(),
            Self::InvalidAuthParameters => "Missing or invalid authorization parameters.".into(),
            Self::AuthorizationFailed => "Credential/signature mismatch.".into(),
            Self::PasswordExpired => "Password has expired.".into(),
            Self::InvalidApiParameters => "Missing or invalid API parameters.".into(),
            Self::NotImplemented => "This API is not implemented.".into(),
            Self::Deprecated => "This API is deprecated.".into(),
            Self::GraphQlError => "GraphQL-generated error.".into(),
            Self::RateLimitExceeded => "You have reached your API query rate limit.".into(),
            Self::ServerFrozen => {
                "The server is frozen due to maintenance. Please try again later.".into()
            }
            Self::SessionAlreadyExists => {
                "The session already exists but you requested not to reuse existing one.".into()
            }
            Self::QuotaExceeded => "You have reached your resource limit.".into(),
            Self::TooManySessionsMatched => "Too many sessions matched.".into(),
            Self::KernelExecutionFailed => "Executing user code in the kernel has failed.".into(),
            Self::VFolderOperationFailed => "Virtual folder operation has failed.".into(),
            Self::DotfileCreationFailed => "Dotfile creation has failed.".into(),
            Self::DotfileAlreadyExists => "Dotfile already exists.".into(),
        }
    }

    /// The reference's `BackendAgentError`s: their body carries `agent-details` instead of
    /// `msg` and `data`.
    pub fn is_agent_error(self) -> bool {
        matches!(self, Self::KernelExecutionFailed)
    }

    pub fn type_url(self) -> String {
        format!("https://api.backend.ai/probs/{}", self.slug())
    }
}

/// An error answered to the client as `application/problem+json`.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub msg: Option<String>,
    pub data: Option<Value>,
}

impl ApiError {
    pub fn new(kind: ErrorKind) -> Self {
        Self {
            kind,
            msg: None,
            data: None,
        }
    }

    pub fn with_msg(kind: ErrorKind, msg: impl Into<String>) -> Self {
        Self {
            kind,
            msg: Some(msg.into()),
            data: None,
        }
    }

    pub fn data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    pub fn invalid_params(msg: impl Into<String>) -> Self {
        Self::with_msg(ErrorKind::InvalidApiParameters, msg)
    }

    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::with_msg(ErrorKind::GenericBadRequest, msg)
    }

    pub fn auth_failed(msg: impl Into<String>) -> Self {
        Self::with_msg(ErrorKind::AuthorizationFailed, msg)
    }

    pub fn invalid_auth(msg: impl Into<String>) -> Self {
        Self::with_msg(ErrorKind::InvalidAuthParameters, msg)
    }

    pub fn not_found(object: &'static str) -> Self {
        Self::new(ErrorKind::ObjectNotFound(object))
    }

    /// An agent-originated error (`kind` one of [`ErrorKind::is_agent_error`]) with the agent's
    /// details: `{"type": <agent error type URL>, "title": ...[, "exception": ...]}`.
    pub fn agent(kind: ErrorKind, agent_details: Value) -> Self {
        Self::new(kind).data(agent_details)
    }

    /// A failure of ours, logged in full here and answered without internal detail (addresses,
    /// SQL, credentials). A store that is down or unreachable (some error in the source chain
    /// says so, see [`UnavailableStore::of`]) is answered 503 `service-unavailable` naming the
    /// store, logged as a warning: the client may retry, and it comes back by itself. Anything
    /// else (a bug, a refused statement) is a bare 500, logged as an error.
    pub fn internal(context: &str, error: &(dyn std::error::Error + 'static)) -> Self {
        match UnavailableStore::of(error) {
            Some(store) => {
                tracing::warn!(target: "bai_api", "{context}: {store} is unavailable: {}", ErrorChain(error));
                Self::with_msg(
                    ErrorKind::ServiceUnavailable,
                    format!("{store} is unavailable"),
                )
            }
            None => {
                tracing::error!(target: "bai_api", "{context}: {}", ErrorChain(error));
                Self::new(ErrorKind::InternalServerError)
            }
        }
    }

    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    fn body(&self) -> Value {
        let mut body = serde_json::Map::new();
        body.insert("type".into(), Value::String(self.kind.type_url()));
        body.insert("title".into(), Value::String(self.kind.title()));
        if let Some(msg) = &self.msg {
            body.insert("msg".into(), Value::String(msg.clone()));
        }
        if let Some(data) = &self.data {
            let key = if self.kind.is_agent_error() {
                "agent-details"
            } else {
                "data"
            };
            body.insert(key.into(), data.clone());
        }
        Value::Object(body)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status().as_u16(), self.kind.title())?;
        if let Some(msg) = &self.msg {
            write!(f, " ({msg})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ApiError {}

/// Marks a response as an error answer, so that the middleware adds no rate-limit headers to it
/// (the reference adds them to successful responses only).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ProblemResponse;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // `serde_json::Map` is sorted, but the reference writes `type` and `title` first; build the
        // object in that order by hand.
        let body = self.body();
        let mut response = json_response(
            self.status(),
            &OrderedProblem(&body),
            "application/problem+json; charset=utf-8",
        );
        response.extensions_mut().insert(ProblemResponse);
        response
    }
}

/// Serializes a problem object with `type`, `title`, `msg`, `data`, `agent-details` in that
/// order.
struct OrderedProblem<'a>(&'a Value);

impl serde::Serialize for OrderedProblem<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Value::Object(map) = self.0 else {
            return self.0.serialize(serializer);
        };
        let mut out = serializer.serialize_map(Some(map.len()))?;
        for key in ["type", "title", "msg", "data", "agent-details"] {
            if let Some(value) = map.get(key) {
                out.serialize_entry(key, value)?;
            }
        }
        out.end()
    }
}

/// An error with its sources, `a: b: c`, for logs.
pub(crate) struct ErrorChain<'a>(pub &'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse;
    use http::header::CONTENT_TYPE;

    use super::{ApiError, ErrorKind};

    #[tokio::test]
    async fn problem_body_is_ordered_and_omits_empty_fields() {
        let response = ApiError::auth_failed("Signature mismatch").into_response();
        assert_eq!(response.status(), 401);
        assert_eq!(
            response.headers()[CONTENT_TYPE],
            "application/problem+json; charset=utf-8"
        );
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"type": "https://api.backend.ai/probs/auth-failed", "title": "Credential/signature mismatch.", "msg": "Signature mismatch"}"#
        );
    }

    #[tokio::test]
    async fn an_unavailable_store_is_a_503_naming_it() {
        let error = bai_db_models::DbError::Query {
            context: "SELECT 1".into(),
            source: sea_orm::DbErr::ConnectionAcquire(sea_orm::ConnAcquireErr::Timeout),
        };
        let response = ApiError::internal("reading a keypair", &error).into_response();
        assert_eq!(response.status(), 503);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"type": "https://api.backend.ai/probs/service-unavailable", "title": "Serivce unavailable.", "msg": "PostgreSQL is unavailable"}"#
        );
        let refused = bai_db_models::DbError::Query {
            context: "SELECT 1".into(),
            source: sea_orm::DbErr::RecordNotFound("x".into()),
        };
        assert_eq!(ApiError::internal("x", &refused).status(), 500);
    }

    #[test]
    fn object_not_found_names_the_object() {
        let error = ApiError::not_found("scaling group");
        assert_eq!(error.kind.title(), "No such scaling group.");
        assert_eq!(error.status(), 404);
        assert_eq!(
            ErrorKind::ServiceUnavailable.title(),
            "Serivce unavailable."
        );
    }
}
