//! A throwaway cluster for tests on the halfstack: a fresh database with the 24.03 schema and the
//! install guide's example fixtures, a fresh etcd namespace whose `config/redis` points at a Redis
//! server of the test's own (agents write keys such as `computer.metadata` that every test on a
//! shared Redis would see), and a manager config over them. Plus request signing as the official client
//! does it, with the example keypairs.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use bai_config::{Environment, LoadOptions, ManagerConfig};
pub use bai_db_models::testing::INSTALL_GUIDE_FIXTURES;
use bai_db_models::testing::TestDatabase;
use bai_etcd_store::Scope;
use bai_etcd_store::testing::TestNamespace;
use bai_redis::testing::PrivateRedis;
use bai_stores::Stores;
use chrono::{DateTime, SecondsFormat, Utc};
use http::{Method, Request};

use crate::auth::signature::{SignatureHash, SignedParts, parse_date};
use crate::context::ApiContext;

/// An example keypair of the fixtures, with its user's email and password.
#[derive(Clone, Copy, Debug)]
pub struct ExampleUser {
    pub email: &'static str,
    pub password: &'static str,
    pub access_key: &'static str,
    pub secret_key: &'static str,
}

pub const SUPERADMIN: ExampleUser = ExampleUser {
    email: "admin@lablup.com",
    password: "wJalrXUt",
    access_key: "AKIAIOSFODNN7EXAMPLE",
    secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
};
pub const DOMAIN_ADMIN: ExampleUser = ExampleUser {
    email: "domain-admin@lablup.com",
    password: "cWbsM_vB",
    access_key: "AKIAHUKCHDEZGEXAMPLE",
    secret_key: "cWbsM_vBB4CzTW7JdORRMx8SjGI3-wEXAMPLEKEY",
};
pub const USER: ExampleUser = ExampleUser {
    email: "user@lablup.com",
    password: "C8qnIo29",
    access_key: "AKIANABBDUSEREXAMPLE",
    secret_key: "C8qnIo29EZvXkPK_MXcuAakYTy4NYrxwmCEyNPlf",
};
pub const MONITOR: ExampleUser = ExampleUser {
    email: "monitor@lablup.com",
    password: "7tuEwF1J",
    access_key: "AKIANAMONITOREXAMPLE",
    secret_key: "7tuEwF1J7FfK41vOM4uSSyWCUWjPBolpVwvgkSBu",
};

/// A database, an etcd namespace and a Redis server that exist for one test.
#[derive(Debug)]
pub struct TestCluster {
    pub database: TestDatabase,
    pub namespace: TestNamespace,
    pub redis: PrivateRedis,
    pub config: Arc<ManagerConfig>,
}

impl TestCluster {
    /// Creates the database (schema and install-guide fixtures, a copy of their template), the
    /// Redis server and the namespace (with that Redis in `config/redis`). Panics with a hint when
    /// the halfstack is not running.
    pub async fn start(label: &str) -> TestCluster {
        let database = TestDatabase::with_fixtures(label, &INSTALL_GUIDE_FIXTURES).await;
        let namespace = TestNamespace::new(label);
        let redis = PrivateRedis::start();
        namespace
            .store()
            .await
            .put("config/redis/addr", &redis.addr(), Scope::Global)
            .await
            .unwrap_or_else(|error| panic!("etcd put config/redis/addr: {error}"));
        // The router tests bind nothing; servers started by tests get their own `manager_toml`.
        let toml = manager_toml(&database, &namespace, TEST_HOST);
        let config = bai_config::load_from_str(
            &toml,
            Path::new("test-manager.toml"),
            &LoadOptions::default(),
            &Environment::in_dir(std::env::temp_dir()),
        )
        .unwrap_or_else(|error| panic!("test manager.toml: {error}"))
        .config;
        TestCluster {
            database,
            namespace,
            redis,
            config: Arc::new(config),
        }
    }

    /// A manager.toml for this cluster that serves on `service_addr` (`host:port`).
    pub fn manager_toml(&self, service_addr: &str) -> String {
        manager_toml(&self.database, &self.namespace, service_addr)
    }

    /// The stores of this cluster, connected.
    pub async fn stores(&self) -> Stores {
        Stores::connect(&self.config)
            .await
            .unwrap_or_else(|error| panic!("connecting the stores: {error}"))
    }

    /// A worker context on this cluster.
    pub async fn context(&self) -> ApiContext {
        ApiContext::new(self.config.clone(), self.stores().await)
    }
}

fn manager_toml(database: &TestDatabase, namespace: &TestNamespace, service_addr: &str) -> String {
    let db = &database.config;
    format!(
        r#"[etcd]
namespace = "{namespace}"
addr = {{ host = "127.0.0.1", port = 8120 }}

[db]
type = "postgresql"
addr = {{ host = "{db_host}", port = {db_port} }}
name = "{db_name}"
user = "{db_user}"
password = "{db_password}"

[manager]
num-proc = 1
service-addr = "{service_addr}"
rpc-auth-manager-keypair = "fixtures/manager/manager.key_secret"
heartbeat-timeout = 40.0

[docker-registry]
ssl-verify = false

[logging]
level = "INFO"
drivers = ["console"]
"#,
        namespace = namespace.name,
        db_host = db.addr.host,
        db_port = db.addr.port,
        db_name = db.name,
        db_user = db.user,
        db_password = db.password,
    )
}

/// The host the test requests are signed for and sent with.
pub const TEST_HOST: &str = "127.0.0.1:8081";
/// The API version the test requests claim (the 24.03 client's).
pub const TEST_API_VERSION: &str = "v8.20240315";

/// A request signed by `user` as the official client signs it (Date now, ISO 8601 with offset).
pub fn signed_request(
    method: Method,
    path_and_query: &str,
    body: Option<&serde_json::Value>,
    user: &ExampleUser,
) -> Request<Body> {
    signed_request_at(method, path_and_query, body, user, Utc::now())
}

/// [`signed_request`] with a chosen `Date`.
pub fn signed_request_at(
    method: Method,
    path_and_query: &str,
    body: Option<&serde_json::Value>,
    user: &ExampleUser,
    date: DateTime<Utc>,
) -> Request<Body> {
    let content_type = if body.is_some() {
        "application/json"
    } else {
        "text/plain"
    };
    let body = body.map_or_else(Body::empty, |json| Body::from(json.to_string()));
    signed_at(method, path_and_query, content_type, body, user, date)
}

/// A request of `user` with a `body` of `content_type` (a multipart form, say), signed as the
/// official client signs it.
pub fn signed_raw_request(
    method: Method,
    path_and_query: &str,
    content_type: &str,
    body: impl Into<Body>,
    user: &ExampleUser,
) -> Request<Body> {
    signed_at(
        method,
        path_and_query,
        content_type,
        body.into(),
        user,
        Utc::now(),
    )
}

fn signed_at(
    method: Method,
    path_and_query: &str,
    content_type: &str,
    body: Body,
    user: &ExampleUser,
    date: DateTime<Utc>,
) -> Request<Body> {
    let raw_date = date.to_rfc3339_opts(SecondsFormat::Micros, false);
    let parts = SignedParts {
        method: method.as_str(),
        raw_path: path_and_query,
        raw_date: &raw_date,
        date: parse_date(&raw_date).expect("an RFC 3339 date parses"),
        host: TEST_HOST,
        content_type: Some(content_type),
        version_header_name: "x-backendai-version",
        version: TEST_API_VERSION,
    };
    let signature = parts.signature(user.secret_key, SignatureHash::Sha256);
    Request::builder()
        .method(method)
        .uri(path_and_query)
        .header(http::header::HOST, TEST_HOST)
        .header(http::header::DATE, &raw_date)
        .header("x-backendai-version", TEST_API_VERSION)
        .header(http::header::CONTENT_TYPE, content_type)
        .header(
            http::header::AUTHORIZATION,
            format!(
                "BackendAI signMethod=HMAC-SHA256, credential={}:{signature}",
                user.access_key
            ),
        )
        .body(body)
        .expect("a well-formed test request")
}

/// An unsigned request, as an anonymous client sends it.
pub fn anonymous_request(method: Method, path_and_query: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path_and_query)
        .header(http::header::HOST, TEST_HOST)
        .body(Body::empty())
        .expect("a well-formed test request")
}

/// What agent-sim and our manager announce on the bus of a one-kernel session created and
/// destroyed, in order, as [`session_lifecycle`] condenses it. The SSE tests of this crate and the
/// server's official-client tests both expect it. (`xtask bench events` keeps its own copy: xtask
/// depends on no product crate.)
pub const SESSION_LIFECYCLE: [&str; 10] = [
    "session_enqueued",
    "session_scheduled",
    "kernel_preparing",
    "kernel_creating",
    "kernel_started",
    "session_started",
    "session_terminating",
    "kernel_terminating",
    "kernel_terminated",
    "session_terminated",
];

/// Event names as [`SESSION_LIFECYCLE`] lists them: `kernel_pulling` left out (only the first
/// session on an agent pulls its image) and consecutive repeats merged (the agent's
/// `kernel_terminated` and the destroyer's may both come).
pub fn session_lifecycle<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut names: Vec<&str> = names
        .into_iter()
        .filter(|name| *name != "kernel_pulling")
        .collect();
    names.dedup();
    names
}
