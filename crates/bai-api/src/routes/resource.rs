//! `/resource/*`: the resource presets, and which of them the caller could start now
//! (`check-presets`), with the caller's keypair, project and resource-group headroom. The numbers
//! come from `bai-scheduler`; this module reads the request and writes them in the wire form.
//! `recalculate-usage` derives the agents' occupied slots and the keypairs' session counters from
//! the kernels again (`bai-sessions`). The usage reports and statistics are in [`usage`].

use axum::extract::State;
use axum::response::Response;
use bai_scheduler::{Headroom, KnownSlots, Requester, SchedulerError, Slots};
use http::Method;
use serde::{Deserialize, Serialize};

use super::config::{Ordered, non_blank, optional_non_blank};
use super::{Access, Authenticated, Route, StatusGate};
use crate::context::ApiContext;
use crate::error::ApiError;
use crate::json::PyJson;
use crate::params::Params;

mod usage;

pub(super) fn routes() -> Vec<Route> {
    let mut routes = vec![
        Route::new(
            Method::GET,
            "/resource/presets",
            "resource.list_presets",
            list_presets,
        )
        .access(Access::User)
        .summary("Every resource preset, with its slots limited to the known slot types."),
        Route::new(
            Method::POST,
            "/resource/check-presets",
            "resource.check_presets",
            check_presets,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .params::<CheckPresetsParams>()
        .summary(
            "The presets with whether a live agent could take each now, and the caller's keypair, project and resource-group limits, usage and remaining slots.",
        ),
        Route::new(
            Method::POST,
            "/resource/recalculate-usage",
            "resource.recalculate_usage",
            recalculate_usage,
        )
        .access(Access::SuperAdmin)
        .gate(StatusGate::ReadAllowed)
        .summary(
            "Sets every agent's occupied slots and every keypair's session counters (Redis) from the kernels again.",
        ),
    ];
    routes.extend(usage::routes());
    routes
}

// ----- POST /resource/recalculate-usage -----

/// The empty object the reference answers.
#[derive(Debug, Serialize)]
struct Recalculated {}

async fn recalculate_usage(
    _caller: Authenticated,
    State(ctx): State<ApiContext>,
) -> Result<PyJson<Recalculated>, ApiError> {
    tracing::info!(target: "bai_api", "RECALCULATE_USAGE ()");
    let done = bai_sessions::recalculate_usage(ctx.db(), &ctx.redis().stat)
        .await
        .map_err(|error| ApiError::internal("recalculating the resource usage", &error))?;
    tracing::debug!(
        agents = done.agents,
        access_keys = done.access_keys,
        "resource usage recalculated"
    );
    Ok(PyJson(Recalculated {}))
}

/// A slot map as the client sees it (`{"cpu": "1", "mem": "1073741824"}`), in order: every amount
/// as Python's `"{:f}"` of a `Decimal`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct SlotStrings(Vec<(String, String)>);

impl From<&Slots> for SlotStrings {
    fn from(slots: &Slots) -> SlotStrings {
        SlotStrings(
            slots
                .iter()
                .map(|(slot, amount)| (slot.to_owned(), amount.to_string()))
                .collect(),
        )
    }
}

impl SlotStrings {
    /// `NaN` for every known slot: what `check-presets` shows of a project's resources when etcd
    /// `config/api/resources/group_resource_visibility` is off.
    fn not_a_number(known: &KnownSlots) -> SlotStrings {
        SlotStrings(
            known
                .names()
                .map(|slot| (slot.to_owned(), "NaN".to_owned()))
                .collect(),
        )
    }
}

impl Serialize for SlotStrings {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(slot, amount)| (slot, amount)))
    }
}

// ----- GET /resource/presets -----

#[derive(Debug, Serialize)]
struct PresetList {
    presets: Vec<Preset>,
}

#[derive(Debug, Serialize)]
struct Preset {
    name: String,
    shared_memory: Option<String>,
    resource_slots: SlotStrings,
}

/// Served from the process's answer cache: the same for every caller, invalidated by every write
/// of ours and at most `cache::ANSWER_MAX_AGE` old (a change of etcd `config/resource_slots` or a
/// preset written with psql shows within that).
async fn list_presets(
    _caller: Authenticated,
    State(ctx): State<ApiContext>,
) -> Result<Response, ApiError> {
    ctx.caches()
        .json_answer("GET /resource/presets", read_presets(&ctx))
        .await
}

async fn read_presets(ctx: &ApiContext) -> Result<PresetList, ApiError> {
    let known = KnownSlots::load(ctx.etcd())
        .await
        .map_err(|error| ApiError::internal("reading etcd config/resource_slots", &error))?;
    let presets = bai_db_models::queries::resource_presets::all(ctx.db())
        .await
        .map_err(|error| ApiError::internal("reading the resource presets", &error))?;
    let presets = presets
        .into_iter()
        .map(|preset| Preset {
            resource_slots: SlotStrings::from(&known.normalize(&preset.resource_slots)),
            // The reference tests truthiness here: a shared memory of 0 is listed as null.
            shared_memory: preset
                .shared_memory
                .filter(|&bytes| bytes != 0)
                .map(|bytes| bytes.to_string()),
            name: preset.name,
        })
        .collect();
    Ok(PresetList { presets })
}

// ----- POST /resource/check-presets -----

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct CheckPresetsParams {
    /// Only this resource group (one the caller may use); all of them when null.
    #[serde(default, deserialize_with = "optional_non_blank")]
    scaling_group: Option<String>,
    /// The project (name) whose limits apply; the caller must be a member.
    #[serde(default = "default_project", deserialize_with = "non_blank")]
    group: String,
}

fn default_project() -> String {
    "default".to_owned()
}

#[derive(Debug, Serialize)]
struct PresetCheck {
    keypair_limits: SlotStrings,
    keypair_using: SlotStrings,
    keypair_remaining: SlotStrings,
    group_limits: SlotStrings,
    group_using: SlotStrings,
    group_remaining: SlotStrings,
    scaling_group_remaining: SlotStrings,
    scaling_groups: Ordered<ScalingGroupHeadroom>,
    presets: Vec<PresetAvailability>,
}

#[derive(Debug, Serialize)]
struct ScalingGroupHeadroom {
    using: SlotStrings,
    remaining: SlotStrings,
}

#[derive(Debug, Serialize)]
struct PresetAvailability {
    name: String,
    resource_slots: SlotStrings,
    shared_memory: Option<String>,
    allocatable: bool,
}

impl From<Headroom> for PresetCheck {
    fn from(headroom: Headroom) -> PresetCheck {
        let (group_limits, group_using, group_remaining) = match &headroom.project {
            Some(project) => (
                SlotStrings::from(&project.limits),
                SlotStrings::from(&project.occupied),
                SlotStrings::from(&project.remaining),
            ),
            None => (
                SlotStrings::not_a_number(&headroom.known),
                SlotStrings::not_a_number(&headroom.known),
                SlotStrings::not_a_number(&headroom.known),
            ),
        };
        PresetCheck {
            keypair_limits: SlotStrings::from(&headroom.keypair.limits),
            keypair_using: SlotStrings::from(&headroom.keypair.occupied),
            keypair_remaining: SlotStrings::from(&headroom.keypair.remaining),
            group_limits,
            group_using,
            group_remaining,
            scaling_group_remaining: SlotStrings::from(&headroom.scaling_group_remaining),
            scaling_groups: Ordered(
                headroom
                    .scaling_groups
                    .iter()
                    .map(|sgroup| {
                        let wire = ScalingGroupHeadroom {
                            using: SlotStrings::from(&sgroup.using),
                            remaining: SlotStrings::from(&sgroup.remaining),
                        };
                        (sgroup.name.clone(), wire)
                    })
                    .collect(),
            ),
            presets: headroom
                .presets
                .into_iter()
                .map(|preset| PresetAvailability {
                    resource_slots: SlotStrings::from(&preset.resource_slots),
                    shared_memory: preset.shared_memory.map(|bytes| bytes.to_string()),
                    allocatable: preset.allocatable,
                    name: preset.name,
                })
                .collect(),
        }
    }
}

async fn check_presets(
    Authenticated(caller): Authenticated,
    State(ctx): State<ApiContext>,
    Params(params): Params<CheckPresetsParams>,
) -> Result<PyJson<PresetCheck>, ApiError> {
    let access_key = caller.access_key();
    tracing::info!(
        target: "bai_api",
        "CHECK_PRESETS (ak:{access_key}, g:{}, sg:{:?})",
        params.group,
        params.scaling_group
    );
    let requester = Requester {
        access_key,
        keypair_policy: &caller.keypair_policy,
        user_uuid: caller.user.uuid,
        domain_name: caller.user.domain_name.as_deref(),
    };
    let headroom = bai_scheduler::check_presets(
        ctx.db(),
        ctx.etcd(),
        requester,
        &params.group,
        params.scaling_group.as_deref(),
    )
    .await
    .map_err(|error| match &error {
        SchedulerError::UnknownProject(name) => {
            ApiError::invalid_params(format!("Unknown project (name: {name})"))
        }
        SchedulerError::UnknownScalingGroup(_) => ApiError::invalid_params("Unknown scaling group"),
        SchedulerError::Db(_) | SchedulerError::Etcd { .. } => {
            ApiError::internal("computing the caller's headroom", &error)
        }
    })?;
    Ok(PyJson(PresetCheck::from(headroom)))
}
