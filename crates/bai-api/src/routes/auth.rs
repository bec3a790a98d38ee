//! `/auth/*`: signature checks, sign-in with a password, roles and password changes.

use axum::response::IntoResponse;
use http::Method;
use serde::{Deserialize, Serialize};

use super::{Access, Authenticated, Route};
use crate::json::PyJson;
use crate::params::Params;

pub(super) fn routes() -> Vec<Route> {
    let mut routes = Vec::new();
    for path in ["/auth", "/auth/test"] {
        for method in [Method::GET, Method::POST] {
            routes.push(
                Route::new(method, path, "auth.test", test)
                    .access(Access::User)
                    .params::<EchoParams>()
                    .summary("Echoes `echo` back to a correctly signed request."),
            );
        }
    }
    routes
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct EchoParams {
    echo: String,
}

#[derive(Debug, Serialize)]
struct Echoed {
    authorized: &'static str,
    echo: String,
}

async fn test(_caller: Authenticated, Params(params): Params<EchoParams>) -> impl IntoResponse {
    PyJson(Echoed {
        authorized: "yes",
        echo: params.echo,
    })
}
