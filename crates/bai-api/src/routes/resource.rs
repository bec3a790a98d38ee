//! `/resource/*`: the resource presets, and which of them the caller could start now
//! (`check-presets`), with the caller's keypair, project and resource-group headroom.

pub(super) mod slots;

use axum::extract::State;
use bai_db_models::DbError;
use bai_db_models::entities::ResourceSlot;
use bai_db_models::entities::enums::DefaultForUnspecified;
use bai_db_models::queries::{
    self, agent_slots::Schedulable, occupancy::Occupant, project_membership,
};
use bai_etcd_store::Scope;
use http::Method;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use self::slots::{KnownSlots, SlotStrings, Slots, min_first};
use super::config::{Ordered, non_blank, optional_non_blank};
use super::{Access, Authenticated, Route, StatusGate};
use crate::context::ApiContext;
use crate::error::ApiError;
use crate::json::PyJson;
use crate::params::Params;

/// etcd switch: show a project's limits and usage in `check-presets` (else `NaN`).
const GROUP_RESOURCE_VISIBILITY_KEY: &str = "config/api/resources/group_resource_visibility";

pub(super) fn routes() -> Vec<Route> {
    vec![
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
    ]
}

fn db_failure(what: &'static str) -> impl FnOnce(DbError) -> ApiError {
    move |error| ApiError::internal(what, &error)
}

fn etcd_failure(what: &'static str) -> impl FnOnce(bai_etcd_store::EtcdError) -> ApiError {
    move |error| ApiError::internal(what, &error)
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

async fn list_presets(
    _caller: Authenticated,
    State(ctx): State<ApiContext>,
) -> Result<PyJson<PresetList>, ApiError> {
    let known = KnownSlots::load(ctx.etcd())
        .await
        .map_err(etcd_failure("reading etcd config/resource_slots"))?;
    let presets = queries::resource_presets::all(ctx.db())
        .await
        .map_err(db_failure("reading the resource presets"))?;
    let presets = presets
        .into_iter()
        .map(|preset| Preset {
            resource_slots: known.normalize(&preset.resource_slots).to_strings(),
            // The reference tests truthiness here: a shared memory of 0 is listed as null.
            shared_memory: preset
                .shared_memory
                .filter(|&bytes| bytes != 0)
                .map(|bytes| bytes.to_string()),
            name: preset.name,
        })
        .collect();
    Ok(PyJson(PresetList { presets }))
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

/// The sum of the slots quota-occupying kernels of `occupant` hold, unknown slots dropped (the
/// registry's `get_*_occupancy`).
async fn occupancy(
    ctx: &ApiContext,
    known: &KnownSlots,
    occupant: Occupant<'_>,
) -> Result<Slots, ApiError> {
    let rows = queries::occupancy::quota_occupying_slots(ctx.db(), occupant)
        .await
        .map_err(db_failure("reading the slots kernels occupy"))?;
    let mut total = Slots::default();
    for row in &rows {
        total = total.add(&mut Slots::from(row));
    }
    known.retain_known(&mut total);
    Ok(total)
}

/// `t.ToBool()` of an etcd value: missing, or anything but a true spelling, is false.
fn etcd_flag(value: Option<&str>) -> bool {
    value.is_some_and(|text| {
        matches!(
            text.to_lowercase().as_str(),
            "t" | "true" | "y" | "yes" | "on" | "1" | "1.0"
        )
    })
}

/// A slot's amount in a map that has every known slot.
fn at(slots: &Slots, slot: &str) -> bai_db_models::entities::SlotAmount {
    slots
        .get(slot)
        .unwrap_or(bai_db_models::entities::SlotAmount::Infinity)
}

/// The reference's `check_presets`, step for step (including the zeros its operators insert).
async fn check_presets(
    Authenticated(caller): Authenticated,
    State(ctx): State<ApiContext>,
    Params(params): Params<CheckPresetsParams>,
) -> Result<PyJson<PresetCheck>, ApiError> {
    let db = ctx.db();
    let access_key = caller.access_key();
    tracing::info!(
        target: "bai_api",
        "CHECK_PRESETS (ak:{access_key}, g:{}, sg:{:?})",
        params.group,
        params.scaling_group
    );
    let known = KnownSlots::load(ctx.etcd())
        .await
        .map_err(etcd_failure("reading etcd config/resource_slots"))?;

    // The keypair's limits.
    let policy = &caller.keypair_policy;
    let mut keypair_limits =
        known.limits(&policy.total_resource_slots, policy.default_for_unspecified);
    let mut keypair_occupied = occupancy(&ctx, &known, Occupant::AccessKey(access_key)).await?;
    let mut keypair_remaining = keypair_limits.sub(&mut keypair_occupied);

    // The project's.
    let unknown_project =
        || ApiError::invalid_params(format!("Unknown project (name: {})", params.group));
    let domain = caller
        .user
        .domain_name
        .as_deref()
        .ok_or_else(unknown_project)?;
    let project =
        project_membership::member_project_by_name(db, caller.user.uuid, domain, &params.group)
            .await
            .map_err(db_failure("reading the caller's project"))?
            .ok_or_else(unknown_project)?;
    let empty = ResourceSlot::new();
    let mut group_limits = known.limits(
        project.total_resource_slots.as_ref().unwrap_or(&empty),
        DefaultForUnspecified::Unlimited,
    );
    let mut group_occupied = occupancy(&ctx, &known, Occupant::Project(project.id)).await?;
    let group_remaining = group_limits.sub(&mut group_occupied);

    // The domain's.
    let domain_total = queries::domains::by_name(db, domain)
        .await
        .map_err(db_failure("reading the caller's domain"))?
        .and_then(|domain| domain.total_resource_slots)
        .unwrap_or_default();
    let mut domain_limits = known.limits(&domain_total, DefaultForUnspecified::Unlimited);
    let mut domain_occupied = occupancy(&ctx, &known, Occupant::Domain(domain)).await?;
    let domain_remaining = domain_limits.sub(&mut domain_occupied);

    // What the caller may still use: the least of the three, reported as the keypair's.
    for slot in known.names() {
        let least = min_first(
            min_first(at(&keypair_remaining, slot), at(&group_remaining, slot)),
            at(&domain_remaining, slot),
        );
        keypair_remaining.set(slot, least);
    }

    // Per resource group: the caller's kernels there, and what the live agents have left.
    let allowed = queries::scaling_groups::allowed_for(db, domain, project.id, access_key)
        .await
        .map_err(db_failure("reading the caller's resource groups"))?;
    let mut names: Vec<String> = allowed.into_iter().map(|sgroup| sgroup.name).collect();
    if let Some(chosen) = &params.scaling_group {
        if !names.contains(chosen) {
            return Err(ApiError::invalid_params("Unknown scaling group"));
        }
        names = vec![chosen.clone()];
    }
    let mut per_sgroup: IndexMap<String, (Slots, Slots)> = names
        .iter()
        .map(|name| (name.clone(), (known.zeros(), known.zeros())))
        .collect();
    let used = queries::occupancy::user_slots_on_agents(db, caller.user.uuid, &names)
        .await
        .map_err(db_failure(
            "reading the caller's kernels per resource group",
        ))?;
    for (sgroup, slots) in &used {
        if let Some((using, _)) = per_sgroup.get_mut(sgroup) {
            using.add_assign(&mut Slots::from(slots));
        }
    }
    let agents = queries::agent_slots::alive_in(db, &names, Schedulable::Only)
        .await
        .map_err(db_failure("reading the live agents"))?;
    let mut sgroup_remaining = known.zeros();
    let mut agent_slots: Vec<Slots> = Vec::with_capacity(agents.len());
    for agent in &agents {
        let mut remaining = Slots::from(&agent.available_slots)
            .sub(&mut Slots::from(&agent.occupied_slots))
            .add(&mut known.zeros());
        sgroup_remaining.add_assign(&mut remaining);
        if let Some((_, headroom)) = per_sgroup.get_mut(&agent.scaling_group) {
            headroom.add_assign(&mut remaining);
        }
        agent_slots.push(remaining);
    }
    for (_, headroom) in per_sgroup.values_mut() {
        for slot in known.names() {
            if headroom.contains(slot) {
                let capped = min_first(at(&keypair_remaining, slot), at(headroom, slot));
                headroom.set(slot, capped);
            }
        }
    }
    for slot in known.names() {
        let capped = min_first(at(&keypair_remaining, slot), at(&sgroup_remaining, slot));
        sgroup_remaining.set(slot, capped);
    }
    let scaling_groups = Ordered(
        per_sgroup
            .into_iter()
            .map(|(name, (using, remaining))| {
                let headroom = ScalingGroupHeadroom {
                    using: using.to_strings(),
                    remaining: remaining.to_strings(),
                };
                (name, headroom)
            })
            .collect(),
    );

    // Which presets some agent could take now, within the caller's remaining slots.
    let presets = queries::resource_presets::all(db)
        .await
        .map_err(db_failure("reading the resource presets"))?;
    let mut checked = Vec::with_capacity(presets.len());
    for preset in presets {
        let mut preset_slots = known.normalize(&preset.resource_slots);
        let mut allocatable = false;
        for agent in &mut agent_slots {
            if agent.covers(&mut preset_slots) && keypair_remaining.covers(&mut preset_slots) {
                allocatable = true;
                break;
            }
        }
        checked.push(PresetAvailability {
            name: preset.name,
            resource_slots: preset_slots.to_strings(),
            shared_memory: preset.shared_memory.map(|bytes| bytes.to_string()),
            allocatable,
        });
    }

    let visibility = ctx
        .etcd()
        .get(GROUP_RESOURCE_VISIBILITY_KEY, Scope::Global)
        .await
        .map_err(etcd_failure("reading etcd config/api/resources"))?;
    let (group_limits, group_using, group_remaining) = if etcd_flag(visibility.as_deref()) {
        (
            group_limits.to_strings(),
            group_occupied.to_strings(),
            group_remaining.to_strings(),
        )
    } else {
        (
            known.not_a_number(),
            known.not_a_number(),
            known.not_a_number(),
        )
    };
    Ok(PyJson(PresetCheck {
        keypair_limits: keypair_limits.to_strings(),
        keypair_using: keypair_occupied.to_strings(),
        keypair_remaining: keypair_remaining.to_strings(),
        group_limits,
        group_using,
        group_remaining,
        scaling_group_remaining: sgroup_remaining.to_strings(),
        scaling_groups,
        presets: checked,
    }))
}

#[cfg(test)]
mod tests {
    use super::etcd_flag;

    #[test]
    fn the_visibility_flag_is_trafaret_to_bool() {
        for text in ["true", "True", "1", "yes", "Y", "on", "t", "1.0"] {
            assert!(etcd_flag(Some(text)), "{text}");
        }
        for text in [
            "false", "0", "no", "none", "None", "off", "", "maybe", " true",
        ] {
            assert!(!etcd_flag(Some(text)), "{text}");
        }
        assert!(!etcd_flag(None));
    }
}
