//! Sending requests through the real router of a test cluster and reading the answers, GraphQL
//! requests included.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use bai_api::testing::{ExampleUser, TestCluster, signed_request};
use http::{HeaderMap, Method, Request, StatusCode};
use serde_json::{Value, json};
use tower::ServiceExt;

/// A test cluster and the router of one worker on it.
pub struct Api {
    pub cluster: TestCluster,
    pub ctx: bai_api::ApiContext,
    pub router: Router,
}

impl Api {
    pub async fn start(label: &str) -> Api {
        Api::on(TestCluster::start(label).await).await
    }

    /// The router of one worker on `cluster` (whose etcd the test may have written first).
    pub async fn on(cluster: TestCluster) -> Api {
        let ctx = cluster.context().await;
        let status = bai_stores::register_node(ctx.etcd(), "i-test")
            .await
            .expect("registering the test node");
        // As the server does after registering: seen at once, not when the watch brings it.
        ctx.stores().note_manager_status(status);
        let router = bai_api::router(ctx.clone());
        Api {
            cluster,
            ctx,
            router,
        }
    }

    /// Sends a request; a 500 fails the test (no request may make the server fail).
    pub async fn send(&self, request: Request<Body>) -> Answer {
        let what = format!("{} {}", request.method(), request.uri());
        let answer = self.send_allowing_500(request).await;
        assert_ne!(
            answer.status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{what}: {}",
            answer.text
        );
        answer
    }

    /// Sends a request and reads the whole answer, whatever its status: for the answers that are
    /// a 500 by the reference's definition (an agent's failure is `kernel-execution-failed`).
    pub async fn send_allowing_500(&self, request: Request<Body>) -> Answer {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 64 << 20)
            .await
            .expect("reading the body");
        let text = String::from_utf8(bytes.to_vec()).expect("UTF-8 body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Answer {
            status,
            headers,
            text,
            json,
        }
    }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Answer {
    /// Asserts a problem document of the given status and type slug (and `msg`, if given).
    #[track_caller]
    pub fn assert_problem(&self, status: u16, slug: &str, msg: Option<&str>) {
        assert_eq!(self.status.as_u16(), status, "{}", self.text);
        assert_eq!(
            self.headers[http::header::CONTENT_TYPE],
            "application/problem+json; charset=utf-8"
        );
        assert_eq!(
            self.json["type"],
            format!("https://api.backend.ai/probs/{slug}"),
            "{}",
            self.text
        );
        if let Some(msg) = msg {
            assert_eq!(self.json["msg"], msg, "{}", self.text);
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The `data` of a GraphQL answer that must have no errors.
    #[track_caller]
    pub fn data(&self) -> &Value {
        assert!(self.json.get("errors").is_none(), "{}", self.text);
        &self.json["data"]
    }

    /// The message of a GraphQL answer's first error.
    #[track_caller]
    pub fn error_message(&self) -> &str {
        self.json["errors"][0]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("an error: {}", self.text))
    }
}

/// Sends a GraphQL request to `/admin/gql` signed by `who`; the answer must be a 200 (errors are
/// in its body).
pub async fn ask(api: &Api, who: &ExampleUser, query: &str, variables: Value) -> Answer {
    let body = json!({"query": query, "variables": variables});
    let answer = api
        .send(signed_request(Method::POST, "/admin/gql", Some(&body), who))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer
}

/// The `data` of a GraphQL request that must have no errors.
pub async fn data(api: &Api, who: &ExampleUser, query: &str, variables: Value) -> Value {
    ask(api, who, query, variables).await.data().clone()
}

/// The message of the first error of a GraphQL request.
pub async fn error_message(api: &Api, who: &ExampleUser, query: &str, variables: Value) -> String {
    ask(api, who, query, variables)
        .await
        .error_message()
        .to_owned()
}

/// The schema's SDL without descriptions, on one line with single spaces and no space inside
/// parentheses, for comparing declarations with the reference's.
pub fn bare_sdl() -> String {
    let sdl = bai_api::gql::schema().sdl();
    let without_descriptions: String = sdl.split("\"\"\"").step_by(2).collect();
    without_descriptions
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace("( ", "(")
        .replace(" )", ")")
}

/// Serves `router` on a local port; returns its address.
#[allow(dead_code, reason = "the `it` binary serves nothing on a port")]
pub async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a local port");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}
