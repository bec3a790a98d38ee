//! Cluster templates (`/template/cluster`, the reference's `cluster_template` module): which task
//! template each role of a cluster runs and how many replicas. They share `session_templates` with
//! the task templates (type `CLUSTER`) and the parameters, listing rules and errors of
//! [`session_template`](super::session_template); the payload is one template, JSON or YAML.

use std::collections::HashSet;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bai_db_models::entities::enums::TemplateType;
use bai_db_models::queries::session_templates::{
    self as queries, CreateOutcome, NewTemplate, TemplateUpdate,
};
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::session::owner_scope;
use super::session_template::{
    Format, GetParams, ListParams, ListedCommon, OwnerParams, PayloadParams, delete_template,
    editor, editor_and_project, find_visible, list_templates, metadata_name, owner_out_of_reach,
    read_template, some_empty_map, template_not_found, update_template, write_error,
};
use super::{Access, Authenticated, Route, StatusGate};
use crate::context::ApiContext;
use crate::error::ApiError;
use crate::json::PyJson;
use crate::params::{Params, Path, non_blank};

/// The role every cluster has exactly one node of (`DEFAULT_ROLE`).
const MAIN_ROLE: &str = "main";

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::POST,
            "/template/cluster",
            "cluster_template.create",
            create,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .params::<PayloadParams>()
        .summary("Stores the cluster template of `payload` (JSON or YAML) and answers its id."),
        Route::new(
            Method::GET,
            "/template/cluster",
            "cluster_template.list_template",
            list,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .params::<ListParams>()
        .summary(
            "The caller's cluster templates, then those of its projects (a domain admin's: of \
             its domain); a superadmin's `all`: every one.",
        ),
        Route::new(
            Method::GET,
            "/template/cluster/{template_id}",
            "cluster_template.get",
            get,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .params::<GetParams>()
        .summary("One cluster template, as YAML (the default) or JSON."),
        Route::new(
            Method::PUT,
            "/template/cluster/{template_id}",
            "cluster_template.put",
            put,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .params::<PutParams>()
        .summary("Replaces a cluster template (and its name) with the one in `payload`."),
        Route::new(
            Method::DELETE,
            "/template/cluster/{template_id}",
            "cluster_template.delete",
            delete,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .params::<OwnerParams>()
        .summary("Deactivates a cluster template."),
    ]
}

/// `PUT /template/cluster/{template_id}`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct PutParams {
    /// One cluster template, JSON or YAML.
    #[serde(deserialize_with = "non_blank")]
    payload: String,
    #[serde(default)]
    owner_access_key: Option<String>,
}

// ----- the cluster template -----

/// `cluster_template_v1`: unknown keys are kept at the top level and refused below it.
#[derive(Debug, Deserialize, Serialize)]
struct ClusterTemplate {
    #[serde(alias = "apiVersion", deserialize_with = "non_blank")]
    api_version: String,
    kind: ClusterKind,
    mode: ClusterMode,
    metadata: ClusterMetadata,
    spec: ClusterSpec,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Debug, Deserialize, Serialize)]
enum ClusterKind {
    #[serde(rename = "clusterTemplate")]
    CamelCase,
    #[serde(rename = "cluster_template")]
    SnakeCase,
}

#[derive(Debug, Deserialize, Serialize)]
enum ClusterMode {
    #[serde(rename = "single-node")]
    SingleNode,
    #[serde(rename = "multi-node")]
    MultiNode,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct ClusterMetadata {
    #[serde(deserialize_with = "non_blank")]
    name: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct ClusterSpec {
    #[serde(default = "some_empty_map")]
    environ: Option<Map<String, Value>>,
    #[serde(default = "some_empty_map")]
    mounts: Option<Map<String, Value>>,
    nodes: Vec<ClusterNode>,
}

fn one() -> i64 {
    1
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct ClusterNode {
    #[serde(deserialize_with = "non_blank")]
    role: String,
    #[serde(alias = "sessionTemplate")]
    session_template: Uuid,
    #[serde(default = "one")]
    replicas: i64,
}

/// `check_cluster_template`: the template checked and normalized; each role once, and one node
/// of the main role.
fn check_cluster_template(raw: Value) -> Result<Value, ApiError> {
    let template: ClusterTemplate = read_template(raw)?;
    if let Some(environ) = &template.spec.environ
        && let Some((key, _)) = environ.iter().find(|(_, value)| !value.is_string())
    {
        return Err(ApiError::invalid_params("Input validation error")
            .data(json!({ format!("template.spec.environ.{key}"): "value is not a string" })));
    }
    let one_main = || {
        ApiError::invalid_params(format!(
            "One and only one {MAIN_ROLE} node must be created per cluster"
        ))
    };
    let mut roles = HashSet::new();
    for node in &template.spec.nodes {
        if !roles.insert(node.role.as_str()) {
            return Err(ApiError::invalid_params(
                "Each role can only be defined once",
            ));
        }
        if node.role == MAIN_ROLE && node.replicas != 1 {
            return Err(one_main());
        }
    }
    if !roles.contains(MAIN_ROLE) {
        return Err(one_main());
    }
    serde_json::to_value(&template)
        .map_err(|error| ApiError::internal("writing the checked cluster template", &error))
}

/// The one document of `payload`: JSON, else YAML.
fn payload_document(payload: &str) -> Result<Value, ApiError> {
    serde_json::from_str(payload)
        .or_else(|_| serde_norway::from_str(payload))
        .map_err(|_| ApiError::invalid_params("Malformed payload"))
}

// ----- wire shapes -----

/// One entry of `GET /template/cluster`.
#[derive(Debug, Serialize)]
struct ListedCluster {
    #[serde(flatten)]
    common: ListedCommon,
    /// `user` for a template with an owner, which every one has.
    r#type: &'static str,
}

// ----- handlers -----

#[tracing::instrument(name = "cluster_template.create", skip_all, fields(access_key = %caller.access_key()))]
async fn create(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Params(params): Params<PayloadParams>,
) -> Result<PyJson<Value>, ApiError> {
    let (editor, group_id) = editor_and_project(&ctx, &caller, &params).await?;
    let template = check_cluster_template(payload_document(&params.payload)?)?;
    // The reference stores the requester, not the owner, as the template's user.
    let outcome = queries::create(
        ctx.db(),
        &editor,
        vec![NewTemplate {
            kind: TemplateType::Cluster,
            domain_name: params.domain.clone(),
            group_id: Some(group_id),
            user_uuid: caller.user.uuid,
            name: metadata_name(&template),
            template,
        }],
    )
    .await
    .map_err(write_error("creating the cluster template"))?;
    let CreateOutcome::Created(ids) = outcome else {
        return Err(owner_out_of_reach(&editor));
    };
    let id = ids.first().map(|id| id.simple().to_string());
    Ok(PyJson(json!({
        "id": id,
        "user": caller.user.uuid.simple().to_string(),
    })))
}

#[tracing::instrument(name = "cluster_template.list", skip_all, fields(access_key = %caller.access_key()))]
async fn list(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Params(params): Params<ListParams>,
) -> Result<PyJson<Vec<ListedCluster>>, ApiError> {
    let listed = list_templates(&ctx, &caller, &params, TemplateType::Cluster).await?;
    Ok(PyJson(
        listed
            .iter()
            .map(|listed| ListedCluster {
                common: ListedCommon::from(listed),
                r#type: "user",
            })
            .collect(),
    ))
}

/// A template the caller may not see answers 404, as one that does not exist does.
async fn get(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Path(template_id): Path<String>,
    Params(params): Params<GetParams>,
) -> Result<Response, ApiError> {
    owner_scope(&ctx, &caller, params.owner_access_key.as_deref()).await?;
    let row = find_visible(&ctx, &caller, &template_id, TemplateType::Cluster)
        .await?
        .ok_or_else(template_not_found)?;
    match params.format.unwrap_or(Format::Yaml) {
        Format::Json => Ok(PyJson(row.template).into_response()),
        Format::Yaml => {
            let text = serde_norway::to_string(&row.template).map_err(|error| {
                ApiError::internal("writing the cluster template as YAML", &error)
            })?;
            let mut response = text.into_response();
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/yaml; charset=utf-8"),
            );
            Ok(response)
        }
    }
}

#[tracing::instrument(name = "cluster_template.put", skip_all, fields(access_key = %caller.access_key()))]
async fn put(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Path(template_id): Path<String>,
    Params(params): Params<PutParams>,
) -> Result<PyJson<Value>, ApiError> {
    let editor = editor(&ctx, &caller, params.owner_access_key.as_deref()).await?;
    let template = check_cluster_template(payload_document(&params.payload)?)?;
    let update = TemplateUpdate {
        owner: None,
        name: metadata_name(&template),
        template,
    };
    update_template(
        &ctx,
        &editor,
        &template_id,
        TemplateType::Cluster,
        vec![update],
    )
    .await
}

#[tracing::instrument(name = "cluster_template.delete", skip_all, fields(access_key = %caller.access_key()))]
async fn delete(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Path(template_id): Path<String>,
    Params(params): Params<OwnerParams>,
) -> Result<PyJson<Value>, ApiError> {
    delete_template(&ctx, &caller, &template_id, &params, TemplateType::Cluster).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(nodes: Value) -> Value {
        json!({
            "api_version": "6", "kind": "clusterTemplate", "mode": "single-node",
            "metadata": {"name": "pair"}, "spec": {"nodes": nodes},
        })
    }

    #[test]
    fn a_cluster_needs_one_main_node_and_distinct_roles() {
        let id = Uuid::nil();
        let checked = check_cluster_template(template(json!([
            {"role": "main", "sessionTemplate": id},
            {"role": "worker", "session_template": id, "replicas": 3},
        ])))
        .expect("a valid template");
        assert_eq!(checked["spec"]["nodes"][0]["replicas"], 1);
        assert_eq!(
            checked["spec"]["nodes"][0]["session_template"],
            id.to_string()
        );
        assert_eq!(checked["spec"]["environ"], json!({}));
        for nodes in [
            json!([{"role": "worker", "session_template": id}]),
            json!([{"role": "main", "session_template": id, "replicas": 2}]),
            json!([{"role": "main", "session_template": id},
                   {"role": "main", "session_template": id}]),
        ] {
            let error = check_cluster_template(template(nodes)).expect_err("refused");
            assert_eq!(error.status().as_u16(), 400);
        }
        let error = check_cluster_template(template(json!([{"role": "main"}])))
            .expect_err("no session template");
        assert!(format!("{:?}", error.data).contains("template.spec.nodes[0].session_template"));
    }
}
