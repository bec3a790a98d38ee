//! `GET /`: the liveness probe and the version negotiation of clients.

use axum::response::IntoResponse;
use http::Method;
use serde::Serialize;

use super::Route;
use crate::json::PyJson;
use crate::version::{COMPATIBLE_MANAGER_VERSION, LATEST_API_VERSION};

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::new(Method::GET, "/", "root.hello", hello)
            .summary("The API version and the manager release the server is compatible with."),
    ]
}

#[derive(Debug, Serialize)]
struct Hello {
    version: &'static str,
    manager: &'static str,
    /// Our own release, beside the reference release we are compatible with.
    #[serde(rename = "bai-manager")]
    implementation: &'static str,
}

async fn hello() -> impl IntoResponse {
    PyJson(Hello {
        version: LATEST_API_VERSION,
        manager: COMPATIBLE_MANAGER_VERSION,
        implementation: env!("CARGO_PKG_VERSION"),
    })
}
