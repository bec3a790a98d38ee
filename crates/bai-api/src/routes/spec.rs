//! `GET /spec/openapi/spec.json`: an OpenAPI 3.1 document of the routes this server answers,
//! generated from the route table itself (paths, methods, privileges, status gates and the
//! parameter types the handlers validate with), so it cannot drift from what is served.

use std::sync::OnceLock;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::Method;
use serde_json::{Map, Value, json};

use super::{Access, Authenticated, ParamsIn, Route, StatusGate};
use crate::context::ApiContext;
use crate::error::{ApiError, ErrorKind};
use crate::json::json_response;
use crate::version::COMPATIBLE_MANAGER_VERSION;

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/spec/openapi/spec.json",
            "spec.generate_openapi_spec",
            serve,
        )
        .access(Access::User)
        .summary(
            "This document. Superadmins may always read it; other users when etcd \
                 `config/api/allow-openapi-schema-introspection` is true.",
        ),
    ]
}

async fn serve(State(ctx): State<ApiContext>, caller: Authenticated) -> Result<Response, ApiError> {
    if !caller.0.is_superadmin() && !ctx.shared_config().api.allow_openapi_schema_introspection {
        return Err(ApiError::with_msg(
            ErrorKind::GenericForbidden,
            "OpenAPI schema introspection is disabled \
             (etcd config/api/allow-openapi-schema-introspection)",
        ));
    }
    static DOCUMENT: OnceLock<Value> = OnceLock::new();
    let document = DOCUMENT.get_or_init(openapi_document);
    Ok(json_response(
        http::StatusCode::OK,
        document,
        "application/json; charset=utf-8",
    )
    .into_response())
}

/// The OpenAPI 3.1 document of every route in [`routes`].
pub fn openapi_document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    let mut operation_ids: Map<String, Value> = Map::new();
    for route in super::routes() {
        let mut operation = Map::new();
        // The reference numbers repeated operation ids (`auth.test.3`); so do we, to keep them unique.
        let seen = operation_ids
            .entry(route.operation)
            .or_insert(Value::from(0u64));
        let count = seen.as_u64().unwrap_or(0) + 1;
        *seen = Value::from(count);
        let operation_id = if count == 1 {
            route.operation.to_owned()
        } else {
            format!("{}.{count}", route.operation)
        };
        operation.insert("operationId".into(), Value::String(operation_id));
        let tag = route.operation.split('.').next().unwrap_or("root");
        operation.insert("tags".into(), json!([tag]));
        if !route.summary.is_empty() {
            operation.insert("summary".into(), Value::String(route.summary.to_owned()));
        }
        operation.insert(
            "description".into(),
            Value::String(preconditions(route.access, route.gate)),
        );
        operation.insert(
            "responses".into(),
            json!({
                "200": {"description": "Successful response"},
                "default": {
                    "description": "An error (RFC 7807)",
                    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
                }
            }),
        );
        if route.access != Access::Anonymous {
            operation.insert("security".into(), json!([{"TokenAuth": []}]));
        }
        let mut parameters = path_parameters(route.path);
        if let Some((location, schema)) = route.params {
            let schema = schema().to_value();
            match location {
                ParamsIn::Query => parameters.extend(query_parameters(&schema)),
                ParamsIn::Body => {
                    operation.insert(
                        "requestBody".into(),
                        json!({"content": {"application/json": {"schema": schema}}}),
                    );
                }
            }
        }
        operation.insert("parameters".into(), Value::Array(parameters));
        let item = paths
            .entry(route.path.to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(item) = item {
            item.insert(
                route.method.as_str().to_ascii_lowercase(),
                Value::Object(operation),
            );
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Backend.AI Manager API",
            "description": "Backend.AI Manager REST API specification (the routes this server answers)",
            "version": COMPATIBLE_MANAGER_VERSION,
            "x-implementation": format!("bai-manager {}", env!("CARGO_PKG_VERSION")),
        },
        "components": {
            "securitySchemes": {
                "TokenAuth": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "`BackendAI signMethod=HMAC-SHA256, credential=<access key>:<signature>`, with `Date` and `X-BackendAI-Version` headers; see https://docs.backend.ai/en/latest/manager/common-api/auth.html"
                }
            },
            "schemas": {
                "Problem": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string", "format": "uri"},
                        "title": {"type": "string"},
                        "msg": {"type": "string"},
                        "data": {}
                    },
                    "required": ["type", "title"]
                }
            }
        },
        "paths": paths,
    })
}

/// The reference's "Preconditions" note.
fn preconditions(access: Access, gate: StatusGate) -> String {
    let mut lines = Vec::new();
    match access {
        Access::Anonymous => {}
        Access::User => lines.push("* User privilege required."),
        Access::Admin => lines.push("* Admin privilege required."),
        Access::SuperAdmin => lines.push("* Superadmin privilege required."),
    }
    match gate {
        StatusGate::Ungated => {}
        StatusGate::ReadAllowed => lines.push("* Manager status required: RUNNING or FROZEN"),
        StatusGate::AllAllowed => lines.push("* Manager status required: RUNNING"),
    }
    if lines.is_empty() {
        String::new()
    } else {
        format!("\n**Preconditions:**\n{}\n", lines.join("\n"))
    }
}

/// One required string parameter per `{name}` segment of a route's path.
fn path_parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            json!({
                "name": name,
                "in": "path",
                "required": true,
                "schema": {"type": "string"},
            })
        })
        .collect()
}

/// One query parameter per property of an object schema.
fn query_parameters(schema: &Value) -> Vec<Value> {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    schema["properties"]
        .as_object()
        .map(|properties| {
            properties
                .iter()
                .map(|(name, property)| {
                    json!({
                        "name": name,
                        "in": "query",
                        "required": required.contains(&name.as_str()),
                        "schema": property,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::openapi_document;
    use crate::routes::routes;

    #[test]
    fn every_route_is_in_the_document_and_nothing_else() {
        let document = openapi_document();
        let paths = document["paths"].as_object().expect("paths");
        let mut documented = 0;
        for (path, item) in paths {
            for method in item.as_object().expect("path item").keys() {
                documented += 1;
                assert!(
                    routes().iter().any(|route| route.path == path
                        && route.method.as_str().eq_ignore_ascii_case(method)),
                    "{method} {path} is documented but not served"
                );
            }
        }
        assert_eq!(documented, routes().len());
    }

    #[test]
    fn parameters_come_from_the_validated_types() {
        let document = openapi_document();
        let echo = &document["paths"]["/auth/test"]["get"]["parameters"][0];
        assert_eq!(echo["name"], "echo");
        assert_eq!(echo["in"], "query");
        assert_eq!(echo["required"], true);
        assert_eq!(echo["schema"]["type"], "string");
        let body = &document["paths"]["/auth/test"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"];
        assert_eq!(body["required"][0], "echo");
        assert!(body.get("$schema").is_none(), "{body}");
        assert_eq!(document["paths"]["/"]["get"].get("security"), None);
        let session = &document["paths"]["/session/{session_name}"]["get"]["parameters"][0];
        assert_eq!(session["name"], "session_name");
        assert_eq!(session["in"], "path");
        assert_eq!(session["required"], true);
    }
}
