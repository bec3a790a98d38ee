//! `/scaling-groups`: the resource groups (scaling groups) a caller may start sessions in.

use axum::extract::State;
use bai_db_models::queries;
use bai_db_models::queries::scaling_groups::ProjectRef;
use http::Method;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use super::{Access, Authenticated, Route, StatusGate};
use crate::context::ApiContext;
use crate::error::ApiError;
use crate::json::PyJson;
use crate::params::{Params, non_blank};

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/scaling-groups",
            "scaling-groups.list_available_sgroups",
            list_available,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .params::<ListParams>()
        .summary(
            "The active resource groups of the caller's domain, the project and the caller's \
             keypair; non-admin keypairs see only public ones.",
        ),
    ]
}

// Deserialized by hand (below): `group_id` and `group_name` are aliases of `group`, and as in
// the reference the first of the three that is present wins.
#[derive(Debug, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListParams {
    /// The project, by id or by name (aliases: `group_id`, `group_name`).
    group: String,
}

impl<'de> Deserialize<'de> for ListParams {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Given {
            #[serde(default, deserialize_with = "some_non_blank")]
            group: Option<String>,
            #[serde(default, deserialize_with = "some_non_blank")]
            group_id: Option<String>,
            #[serde(default, deserialize_with = "some_non_blank")]
            group_name: Option<String>,
        }
        let given = Given::deserialize(deserializer)?;
        let group = given
            .group
            .or(given.group_id)
            .or(given.group_name)
            .ok_or_else(|| D::Error::missing_field("group"))?;
        Ok(ListParams { group })
    }
}

fn some_non_blank<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    non_blank(deserializer).map(Some)
}

#[derive(Debug, Serialize)]
struct ScalingGroups {
    scaling_groups: Vec<ScalingGroupName>,
}

#[derive(Debug, Serialize)]
struct ScalingGroupName {
    name: String,
}

async fn list_available(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Params(params): Params<ListParams>,
) -> Result<PyJson<ScalingGroups>, ApiError> {
    // A value that reads as a UUID is a project id, anything else a name (trafaret's
    // `tx.UUID | t.String`).
    let project = match Uuid::parse_str(&params.group) {
        Ok(id) => ProjectRef::Id(id),
        Err(_) => ProjectRef::Name(&params.group),
    };
    let allowed = queries::scaling_groups::allowed_for_project(
        ctx.db(),
        caller.user.domain_name.as_deref(),
        project,
        caller.access_key(),
    )
    .await
    .map_err(|error| ApiError::internal("listing the allowed resource groups", &error))?;
    let is_admin = caller.is_admin();
    Ok(PyJson(ScalingGroups {
        scaling_groups: allowed
            .into_iter()
            .filter(|sgroup| is_admin || sgroup.is_public)
            .map(|sgroup| ScalingGroupName { name: sgroup.name })
            .collect(),
    }))
}
