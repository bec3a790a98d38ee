//! The route table and the per-route middleware, in the reference's order (api-auth-client.md
//! §1.2): version check, authentication, rate limiting, manager-status gate, privilege check, then
//! the handler. Unknown paths answer 404 `url-not-found`, known paths with another method 405.

mod admin;
mod auth;
mod body_limit;
mod cluster_template;
mod config;
mod cors;
mod dotfiles;
mod events;
mod execute;
mod health;
mod logs;
mod manager;
mod resource;
mod root;
mod scaling_groups;
mod service;
mod session;
mod session_batch;
mod session_files;
mod session_ops;
mod session_template;
pub mod spec;
mod stream;
mod vfolder;

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::handler::Handler;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode};
use indexmap::IndexMap;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::auth::{Caller, authenticate};
use bai_stores::ManagerStatus;

use crate::context::ApiContext;
use crate::error::{ApiError, ErrorKind, ProblemResponse};
use crate::version::ApiVersion;
use bai_redis::{ANONYMOUS_LIMIT, WINDOW_SECONDS};

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No authentication at all: not even a bad signature is looked at.
    Anonymous,
    /// Any correctly signed request by a user's main keypair.
    User,
    /// A keypair with `is_admin` (the keypair's flag, not the user's role).
    Admin,
    /// A user whose role is `superadmin`.
    SuperAdmin,
}

/// Which manager statuses a route works in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusGate {
    Ungated,
    /// Running or frozen.
    ReadAllowed,
    /// Running only.
    AllAllowed,
}

/// Where a route reads its parameters from, for the OpenAPI document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamsIn {
    Query,
    Body,
}

/// One method on one path.
#[derive(Debug)]
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    /// `module.handler`, the reference's operation id.
    pub operation: &'static str,
    pub access: Access,
    pub gate: StatusGate,
    pub summary: &'static str,
    pub params: Option<(ParamsIn, fn() -> schemars::Schema)>,
    /// The largest body the route accepts, in bytes; `None`: `[manager] client-max-size`.
    pub body_limit: Option<u64>,
    handler: MethodRouter<ApiContext>,
}

impl Route {
    fn new<H, T>(method: Method, path: &'static str, operation: &'static str, handler: H) -> Route
    where
        H: Handler<T, ApiContext>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone())
            .unwrap_or_else(|_| panic!("route {method} {path}: no method filter for {method}"));
        Route {
            method,
            path,
            operation,
            access: Access::Anonymous,
            gate: StatusGate::Ungated,
            summary: "",
            params: None,
            body_limit: None,
            handler: on(filter, handler),
        }
    }

    fn access(mut self, access: Access) -> Route {
        self.access = access;
        self
    }

    fn gate(mut self, gate: StatusGate) -> Route {
        self.gate = gate;
        self
    }

    fn summary(mut self, summary: &'static str) -> Route {
        self.summary = summary;
        self
    }

    /// Bodies up to `bytes` instead of `[manager] client-max-size` (see [`body_limit`]).
    fn body_limit(mut self, bytes: usize) -> Route {
        self.body_limit = Some(u64::try_from(bytes).unwrap_or(u64::MAX));
        self
    }

    /// The parameters the handler validates with `Params<P>`: from the query string for GET, from
    /// the body (or, when the body is empty, the query string) otherwise.
    fn params<P: schemars::JsonSchema>(mut self) -> Route {
        let location = if self.method == Method::GET {
            ParamsIn::Query
        } else {
            ParamsIn::Body
        };
        self.params = Some((location, inline_schema::<P>));
        self
    }
}

/// The JSON Schema of `P` with every subschema inlined and no `$schema`, ready to embed in an
/// OpenAPI 3.1 document.
fn inline_schema<P: schemars::JsonSchema>() -> schemars::Schema {
    schemars::generate::SchemaSettings::draft2020_12()
        .with(|settings| {
            settings.inline_subschemas = true;
            settings.meta_schema = None;
        })
        .into_generator()
        .into_root_schema_for::<P>()
}

/// Every route this server answers, in the reference's module order.
pub fn routes() -> Vec<Route> {
    let mut routes = root::routes();
    routes.extend(health::routes());
    routes.extend(config::routes());
    routes.extend(auth::routes());
    routes.extend(vfolder::routes());
    routes.extend(admin::routes());
    routes.extend(spec::routes());
    routes.extend(manager::routes());
    routes.extend(resource::routes());
    routes.extend(scaling_groups::routes());
    routes.extend(cluster_template::routes());
    routes.extend(session_template::routes());
    routes.extend(service::routes());
    routes.extend(session::routes());
    routes.extend(session_ops::routes());
    routes.extend(execute::routes());
    routes.extend(session_files::routes());
    routes.extend(session_batch::routes());
    routes.extend(stream::routes());
    routes.extend(events::routes());
    routes.extend(dotfiles::routes());
    routes.extend(logs::routes());
    routes
}

/// The `Server` header of every response.
const SERVER_HEADER: &str = "BackendAI";

/// The whole HTTP application of one worker.
pub fn router(ctx: ApiContext) -> Router {
    let client_max_size = ctx.config().manager.client_max_size.bytes();
    let mut by_path: IndexMap<&'static str, MethodRouter<ApiContext>> = IndexMap::new();
    for route in routes() {
        let policy = RoutePolicy {
            access: route.access,
            gate: route.gate,
        };
        let body_limit = route.body_limit.unwrap_or(client_max_size);
        // The body limit comes first: an oversized body is refused before authentication.
        let guarded = route
            .handler
            .route_layer(middleware::from_fn_with_state((ctx.clone(), policy), guard))
            .route_layer(axum::extract::DefaultBodyLimit::max(
                usize::try_from(body_limit).unwrap_or(usize::MAX),
            ))
            .route_layer(middleware::from_fn_with_state(
                body_limit::BodyLimit::new(body_limit),
                body_limit::limit_body,
            ));
        let merged = match by_path.shift_remove(route.path) {
            Some(existing) => existing.merge(guarded),
            None => guarded,
        };
        by_path.insert(route.path, merged);
    }
    // The CORS preflight of every path, anonymous like the reference's, with the version check and
    // the anonymous rate-limit headers of the middleware chain.
    let preflight_policy = RoutePolicy {
        access: Access::Anonymous,
        gate: StatusGate::Ungated,
    };
    let mut router = Router::new();
    for (path, methods) in by_path {
        let preflight = on(MethodFilter::OPTIONS, cors::preflight)
            .route_layer(middleware::from_fn_with_state(
                (ctx.clone(), preflight_policy),
                guard,
            ))
            .route_layer(middleware::from_fn_with_state(
                body_limit::BodyLimit::new(client_max_size),
                body_limit::limit_body,
            ));
        router = router.route(path, methods.merge(preflight));
    }
    // One schema per router: the admin routes execute their requests on it.
    let schema = crate::gql::schema();
    let router = router
        .layer(axum::Extension(schema))
        .route_layer(middleware::from_fn(cors::actual_request))
        .fallback(url_not_found)
        .layer(middleware::map_response(router_errors_as_problems))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_as_problem,
        ))
        .layer(SetResponseHeaderLayer::overriding(
            http::header::SERVER,
            HeaderValue::from_static(SERVER_HEADER),
        ))
        .layer(middleware::from_fn(record_request_metrics));
    let router = if ctx.config().logging.access_log {
        router.layer(middleware::from_fn(log_access))
    } else {
        router
    };
    router.with_state(ctx)
}

/// Writes one access record per answered request: who asked (the peer address), the method and
/// the path (never the query string nor a header: signatures and tokens travel there), the
/// status, the body size when it is known before streaming (`-` otherwise) and the time to the
/// response head.
async fn log_access(request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| "-".to_owned(), |info| info.0.ip().to_string());
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let size = axum::body::HttpBody::size_hint(response.body())
        .exact()
        .map_or_else(|| "-".to_owned(), |bytes| bytes.to_string());
    tracing::info!(
        target: "bai_api::access",
        "{peer} \"{method} {path}\" {status} {size} {seconds:.6}s",
        status = response.status().as_u16(),
        seconds = started.elapsed().as_secs_f64(),
    );
    response
}

/// Counts every answered request and its latency by route template (`MatchedPath`, never the
/// path the client sent: the label set stays as small as the route table).
async fn record_request_metrics(request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    let response = next.run(request).await;
    bai_metrics::record::http_request(
        method.as_str(),
        route.as_ref().map(axum::extract::MatchedPath::as_str),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

#[derive(Clone, Copy, Debug)]
struct RoutePolicy {
    access: Access,
    gate: StatusGate,
}

/// The rate-limit headers a successful response carries.
#[derive(Clone, Copy, Debug)]
struct RateLimitHeaders {
    limit: i64,
    remaining: i64,
}

async fn guard(
    State((ctx, policy)): State<(ApiContext, RoutePolicy)>,
    request: Request,
    next: Next,
) -> Response {
    match admit(&ctx, policy, request).await {
        Ok((request, rate_limit)) => {
            let mut response = next.run(request).await;
            if response.extensions().get::<ProblemResponse>().is_none() {
                let headers = response.headers_mut();
                headers.insert("x-ratelimit-limit", HeaderValue::from(rate_limit.limit));
                headers.insert(
                    "x-ratelimit-remaining",
                    HeaderValue::from(rate_limit.remaining),
                );
                headers.insert("x-ratelimit-window", HeaderValue::from(WINDOW_SECONDS));
            }
            response
        }
        Err(error) => error.into_response(),
    }
}

async fn admit(
    ctx: &ApiContext,
    policy: RoutePolicy,
    request: Request,
) -> Result<(Request, RateLimitHeaders), ApiError> {
    let (mut parts, body) = request.into_parts();
    let version = ApiVersion::from_headers(&parts.headers)?;
    parts.extensions.insert(version);

    let caller = match policy.access {
        Access::Anonymous => None,
        _ => authenticate(ctx, &parts).await?,
    };

    let rate_limit = match &caller {
        Some(caller) => {
            let limit = i64::from(caller.keypair.rate_limit.unwrap_or(0));
            let verdict = ctx
                .redis()
                .rate_limit
                .hit(caller.access_key(), limit)
                .await
                .map_err(|error| ApiError::internal("counting the request's rate limit", &error))?;
            if verdict.exceeded() {
                return Err(ApiError::new(ErrorKind::RateLimitExceeded));
            }
            RateLimitHeaders {
                limit,
                remaining: verdict.remaining(),
            }
        }
        None => RateLimitHeaders {
            limit: ANONYMOUS_LIMIT,
            remaining: ANONYMOUS_LIMIT,
        },
    };

    if policy.gate != StatusGate::Ungated {
        let status = ctx
            .manager_status()
            .await
            .map_err(|error| ApiError::internal("reading the manager status", &error))?;
        let allowed = match policy.gate {
            StatusGate::Ungated => true,
            StatusGate::ReadAllowed => {
                matches!(status, ManagerStatus::Running | ManagerStatus::Frozen)
            }
            StatusGate::AllAllowed => status == ManagerStatus::Running,
        };
        if !allowed {
            return Err(ApiError::new(if status == ManagerStatus::Frozen {
                ErrorKind::ServerFrozen
            } else {
                ErrorKind::ServiceUnavailable
            }));
        }
    }

    let permitted = match (policy.access, &caller) {
        (Access::Anonymous, _) => true,
        (_, None) => false,
        (Access::User, Some(_)) => true,
        (Access::Admin, Some(caller)) => caller.is_admin(),
        (Access::SuperAdmin, Some(caller)) => caller.is_superadmin(),
    };
    if !permitted {
        return Err(ApiError::auth_failed("Unauthorized access"));
    }
    if let Some(caller) = caller {
        parts.extensions.insert(caller);
    }
    Ok((Request::from_parts(parts, body), rate_limit))
}

/// The authenticated caller of a route whose access is not `Anonymous`.
#[derive(Clone, Debug)]
pub struct Authenticated(pub Arc<Caller>);

impl<S: Send + Sync> FromRequestParts<S> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Arc<Caller>>()
            .cloned()
            .map(Authenticated)
            .ok_or_else(|| ApiError::auth_failed("Unauthorized access"))
    }
}

async fn url_not_found(request: Request) -> ApiError {
    ApiError::new(ErrorKind::UrlNotFound)
        .data(serde_json::Value::String(request.uri().path().to_owned()))
}

/// The router's own 405 (a known path, another method) as a problem document, `Allow` kept.
async fn router_errors_as_problems(response: Response) -> Response {
    if response.status() != StatusCode::METHOD_NOT_ALLOWED
        || response.extensions().get::<ProblemResponse>().is_some()
    {
        return response;
    }
    let allow = response.headers().get(http::header::ALLOW).cloned();
    let mut problem = ApiError::new(ErrorKind::MethodNotAllowed).into_response();
    if let Some(allow) = allow {
        problem.headers_mut().insert(http::header::ALLOW, allow);
    }
    problem
}

fn panic_as_problem(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    tracing::error!(target: "bai_api", "a request handler panicked");
    ApiError::new(ErrorKind::InternalServerError).into_response()
}
