//! `POST /admin/gql` and the legacy `POST /admin/graphql`: the GraphQL admin API over HTTP.
//! `/admin/gql` always answers 200 with `errors` in the body; the legacy route answers the bare
//! `data` on success and 400 `graphql-error` otherwise.
//!
//! A query whose root fields all read identity and administrative data ([`CACHEABLE_ROOT_FIELDS`])
//! is answered from the process's answer cache when the same caller sent the same request less than
//! `cache::ANSWER_MAX_AGE` ago and nothing was written since; every mutation invalidates the
//! caches (`cache`), in this process at once and in the others through PostgreSQL.

use std::sync::Arc;

use async_graphql::PathSegment;
use async_graphql::parser::types::{DocumentOperations, OperationType, Selection};
use axum::Extension;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::Method;
use serde::Deserialize;

use super::{Access, Authenticated, Route};
use crate::cache::CachedAnswer;
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

/// Query root fields over data in PostgreSQL that only writes of ours change (and Redis counters,
/// which an answer may show up to `ANSWER_MAX_AGE` late): users, keypairs, projects, domains,
/// resource groups, resource policies and presets. Sessions, agents and images change with what
/// agents report, and container registries live in etcd: those are always read afresh.
const CACHEABLE_ROOT_FIELDS: &[&str] = &[
    "keypair",
    "keypairs",
    "keypair_list",
    "domain",
    "domains",
    "group",
    "groups_by_name",
    "groups",
    "user",
    "user_from_uuid",
    "users",
    "user_list",
    "scaling_group",
    "scaling_groups",
    "scaling_groups_for_domain",
    "scaling_groups_for_user_group",
    "scaling_groups_for_keypair",
    "keypair_resource_policy",
    "keypair_resource_policies",
    "user_resource_policy",
    "user_resource_policies",
    "project_resource_policy",
    "project_resource_policies",
    "resource_preset",
    "resource_presets",
    "__typename",
];

/// What a document asks for, as far as the caches go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum DocumentKind {
    /// A query of [`CACHEABLE_ROOT_FIELDS`] only.
    CacheableQuery,
    /// Any other query, or a document that does not parse (its errors are answered afresh).
    Query,
    Mutation,
}

fn document_kind(query: &str, operation_name: Option<&str>) -> DocumentKind {
    let Ok(document) = async_graphql::parser::parse_query(query) else {
        return DocumentKind::Query;
    };
    let operation = match (&document.operations, operation_name) {
        (DocumentOperations::Single(operation), _) => operation,
        (DocumentOperations::Multiple(operations), Some(name)) => match operations.get(name) {
            Some(operation) => operation,
            None => return DocumentKind::Query,
        },
        (DocumentOperations::Multiple(_), None) => return DocumentKind::Query,
    };
    match operation.node.ty {
        OperationType::Mutation => DocumentKind::Mutation,
        OperationType::Subscription => DocumentKind::Query,
        OperationType::Query => {
            let items = &operation.node.selection_set.node.items;
            let cacheable = !items.is_empty()
                && items.iter().all(|selection| {
                    matches!(&selection.node, Selection::Field(field)
                        if CACHEABLE_ROOT_FIELDS.contains(&field.node.name.node.as_str()))
                });
            if cacheable {
                DocumentKind::CacheableQuery
            } else {
                DocumentKind::Query
            }
        }
    }
}

impl GqlBody {
    fn operation_name(&self) -> Option<&str> {
        self.operation_name
            .as_deref()
            .or(self.operation_name_camel.as_deref())
    }

    /// The answer cache's key: the caller (answers depend on privileges) and the whole request.
    fn cache_key(&self, caller: &crate::auth::Caller) -> String {
        let variables = self
            .variables
            .as_ref()
            .map(serde_json::Value::to_string)
            .unwrap_or_default();
        format!(
            "gql\0{}\0{}\0{variables}\0{}",
            caller.access_key(),
            self.query,
            self.operation_name().unwrap_or("")
        )
    }
}

/// Runs the request; after a mutation, invalidates the caches of every manager process.
async fn execute(
    schema: &AdminSchema,
    ctx: &ApiContext,
    caller: Arc<crate::auth::Caller>,
    body: GqlBody,
    kind: DocumentKind,
) -> async_graphql::Response {
    let response = execute_request(schema, ctx, caller, body).await;
    if kind == DocumentKind::Mutation {
        ctx.caches().changed(ctx.db(), "a GraphQL mutation").await;
    }
    response
}

async fn execute_request(
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
    let key = body.cache_key(&caller);
    let answers = &ctx.caches().answers;
    if let Some(answer) = answers.get(&key) {
        return answer.response();
    }
    let kind = document_kind(&body.query, body.operation_name());
    if kind != DocumentKind::CacheableQuery {
        return PyJson(execute(&schema, &ctx, caller, body, kind).await).into_response();
    }
    // Requests that missed together: one executes, the others take its answer.
    let _turn = answers.load_turn(&key).await;
    if let Some(answer) = answers.get(&key) {
        return answer.response();
    }
    let ticket = answers.ticket();
    let response = execute(&schema, &ctx, caller, body, kind).await;
    if !response.errors.is_empty() {
        return PyJson(response).into_response();
    }
    let answer = Arc::new(CachedAnswer::json(&response));
    answers.insert(key, Arc::clone(&answer), ticket);
    answer.response()
}

async fn legacy(
    State(ctx): State<ApiContext>,
    Extension(schema): Extension<AdminSchema>,
    Authenticated(caller): Authenticated,
    Params(body): Params<GqlBody>,
) -> Result<Response, ApiError> {
    let kind = document_kind(&body.query, body.operation_name());
    let response = execute(&schema, &ctx, caller, body, kind).await;
    if response.errors.is_empty() {
        return Ok(PyJson(response.data).into_response());
    }
    let errors = serde_json::to_value(&response.errors).unwrap_or_default();
    Err(ApiError::new(ErrorKind::GraphQlError).data(errors))
}
