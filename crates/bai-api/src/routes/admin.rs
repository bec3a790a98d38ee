//! `POST /admin/gql` and the legacy `POST /admin/graphql`: the GraphQL admin API over HTTP.
//! `/admin/gql` always answers 200 with `errors` in the body; the legacy route answers the bare
//! `data` on success and 400 `graphql-error` otherwise.

use std::sync::Arc;

use async_graphql::PathSegment;
use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::Method;
use serde::Deserialize;

use super::{Access, Authenticated, Route};
use crate::context::ApiContext;
use crate::error::{ApiError, ErrorKind};
use crate::gql::{AdminSchema, GqlContext};
use crate::json::PyJson;
use crate::params::Params;

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::POST,
            "/admin/graphql",
            "admin.handle_gql_legacy",
            legacy,
        )
        .access(Access::User)
        .params::<GqlBody>()
        .summary("GraphQL (legacy transport): the bare `data` on success, 400 on errors."),
        Route::new(Method::POST, "/admin/gql", "admin.handle_gql", standard)
            .access(Access::User)
            .params::<GqlBody>()
            .summary("GraphQL: always 200, `{\"data\": ..., \"errors\": [...]}`."),
    ]
}

/// The request body; any other key is refused, as the reference does.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct GqlBody {
    query: String,
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    variables: Option<serde_json::Value>,
    #[serde(default)]
    operation_name: Option<String>,
    #[serde(default, rename = "operationName")]
    operation_name_camel: Option<String>,
}

async fn execute(
    schema: &AdminSchema,
    ctx: &ApiContext,
    caller: Arc<crate::auth::Caller>,
    body: GqlBody,
) -> async_graphql::Response {
    let mut request = async_graphql::Request::new(body.query).data(GqlContext {
        api: ctx.clone(),
        caller,
    });
    if let Some(variables) = body.variables.filter(|variables| !variables.is_null()) {
        request = request.variables(async_graphql::Variables::from_json(variables));
    }
    if let Some(name) = body.operation_name.or(body.operation_name_camel) {
        request = request.operation_name(name);
    }
    let mut response = schema.execute(request).await;
    null_failed_root_fields(&mut response);
    response
}

/// async-graphql leaves a field whose resolver failed out of `data` (and answers `data: null`
/// when every root field failed); graphql-core, and so the reference, keeps it as `null`, e.g.
/// `{"data": {"domains": null}, "errors": [...]}`. Root fields are put back as `null`. An error
/// without a path (syntax, validation) still answers `data: null`, as the reference does.
fn null_failed_root_fields(response: &mut async_graphql::Response) {
    for error in &response.errors {
        let Some(PathSegment::Field(field)) = error.path.first() else {
            continue;
        };
        if !matches!(response.data, async_graphql::Value::Object(_)) {
            response.data = async_graphql::Value::Object(Default::default());
        }
        if let async_graphql::Value::Object(fields) = &mut response.data {
            fields
                .entry(async_graphql::Name::new(field))
                .or_insert(async_graphql::Value::Null);
        }
    }
}

async fn standard(
    State(ctx): State<ApiContext>,
    Extension(schema): Extension<AdminSchema>,
    Authenticated(caller): Authenticated,
    Params(body): Params<GqlBody>,
) -> Response {
    PyJson(execute(&schema, &ctx, caller, body).await).into_response()
}

async fn legacy(
    State(ctx): State<ApiContext>,
    Extension(schema): Extension<AdminSchema>,
    Authenticated(caller): Authenticated,
    Params(body): Params<GqlBody>,
) -> Result<Response, ApiError> {
    let response = execute(&schema, &ctx, caller, body).await;
    if response.errors.is_empty() {
        return Ok(PyJson(response.data).into_response());
    }
    let errors = serde_json::to_value(&response.errors).unwrap_or_default();
    Err(ApiError::new(ErrorKind::GraphQlError).data(errors))
}
