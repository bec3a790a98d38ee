//! Quota headroom: what a keypair may still use under its own, its project's and its domain's
//! limits, what the live agents of the resource groups it may use have left, and which resource
//! presets would fit now. These are the numbers `check-presets` reports, computed step for step as
//! the reference's `check_presets` computes them, including the zeros its operators insert.

use bai_db_models::entities::enums::DefaultForUnspecified;
use bai_db_models::entities::{ResourceSlot, keypair_resource_policies};
use bai_db_models::queries::agent_slots::{self, Schedulable};
use bai_db_models::queries::occupancy::{self as occupancy_queries, Occupant};
use bai_db_models::queries::{domains, project_membership, resource_presets, scaling_groups};
use bai_etcd_store::{EtcdStore, Scope};
use indexmap::IndexMap;
use sea_orm::ConnectionTrait;
use sea_orm::prelude::Uuid;

use crate::error::SchedulerError;
use crate::slots::{KnownSlots, Slots, at, min_first};

/// etcd switch: whether a project's limits and usage may be shown to its members.
const GROUP_RESOURCE_VISIBILITY_KEY: &str = "config/api/resources/group_resource_visibility";
const RESOURCE_SLOTS_KEY: &str = "config/resource_slots";

/// Whose headroom: the keypair that asks, its policy and its owner.
#[derive(Clone, Copy, Debug)]
pub struct Requester<'a> {
    pub access_key: &'a str,
    pub keypair_policy: &'a keypair_resource_policies::Model,
    pub user_uuid: Uuid,
    /// The user's domain; a user without one is a member of no project.
    pub domain_name: Option<&'a str>,
}

/// Limits, what occupies them, and what is left.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quota {
    pub limits: Slots,
    pub occupied: Slots,
    pub remaining: Slots,
}

/// One resource group the requester may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalingGroupHeadroom {
    pub name: String,
    /// What the requesting user's kernels hold on its agents.
    pub using: Slots,
    /// What its live agents have left, capped by the keypair's remaining slots.
    pub remaining: Slots,
}

/// A resource preset, and whether one live agent could take it now within the keypair's headroom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresetFit {
    pub name: String,
    /// The preset's slots normalised to the known slots (with the zeros the "fits" comparisons
    /// added).
    pub resource_slots: Slots,
    /// Bytes.
    pub shared_memory: Option<i64>,
    pub allocatable: bool,
}

/// Everything `check-presets` reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Headroom {
    pub known: KnownSlots,
    /// The keypair's limits and occupancy; its `remaining` is the least of the keypair's, the
    /// project's and the domain's remaining slots.
    pub keypair: Quota,
    /// The project's, when etcd `config/api/resources/group_resource_visibility` lets members see
    /// it; `None` when it must be hidden.
    pub project: Option<Quota>,
    /// What the live agents of all the resource groups have left, capped by the keypair's.
    pub scaling_group_remaining: Slots,
    /// The resource groups the requester may use (or the one it named), in the database's order.
    pub scaling_groups: Vec<ScalingGroupHeadroom>,
    /// Every preset, by name.
    pub presets: Vec<PresetFit>,
}

/// The registry's `get_keypair_occupancy`, `get_group_occupancy`, `get_domain_occupancy`: the sum
/// of the slots the quota-occupying kernels of `occupant` hold, unknown slots dropped.
pub async fn occupancy(
    db: &impl ConnectionTrait,
    known: &KnownSlots,
    occupant: Occupant<'_>,
) -> Result<Slots, SchedulerError> {
    let mut total = Slots::default();
    for slots in occupancy_queries::quota_occupying_slots(db, occupant).await? {
        total = total.add(&mut Slots::from(&slots));
    }
    known.retain_known(&mut total);
    Ok(total)
}

/// The reference's `check_presets` for `requester` and its project named `project`, over every
/// resource group the requester may use or only `scaling_group`.
pub async fn check_presets(
    db: &impl ConnectionTrait,
    etcd: &EtcdStore,
    requester: Requester<'_>,
    project: &str,
    scaling_group: Option<&str>,
) -> Result<Headroom, SchedulerError> {
    let known = KnownSlots::load(etcd)
        .await
        .map_err(SchedulerError::etcd(RESOURCE_SLOTS_KEY))?;

    // The keypair's limits.
    let policy = requester.keypair_policy;
    let mut keypair_limits =
        known.limits(&policy.total_resource_slots, policy.default_for_unspecified);
    let mut keypair_occupied =
        occupancy(db, &known, Occupant::AccessKey(requester.access_key)).await?;
    let mut keypair_remaining = keypair_limits.sub(&mut keypair_occupied);

    // The project's.
    let unknown_project = || SchedulerError::UnknownProject(project.to_owned());
    let domain = requester.domain_name.ok_or_else(unknown_project)?;
    let project_row =
        project_membership::member_project_by_name(db, requester.user_uuid, domain, project)
            .await?
            .ok_or_else(unknown_project)?;
    let empty = ResourceSlot::new();
    let mut group_limits = known.limits(
        project_row.total_resource_slots.as_ref().unwrap_or(&empty),
        DefaultForUnspecified::Unlimited,
    );
    let mut group_occupied = occupancy(db, &known, Occupant::Project(project_row.id)).await?;
    let group_remaining = group_limits.sub(&mut group_occupied);

    // The domain's.
    let domain_total = domains::by_name(db, domain)
        .await?
        .and_then(|domain| domain.total_resource_slots)
        .unwrap_or_default();
    let mut domain_limits = known.limits(&domain_total, DefaultForUnspecified::Unlimited);
    let mut domain_occupied = occupancy(db, &known, Occupant::Domain(domain)).await?;
    let domain_remaining = domain_limits.sub(&mut domain_occupied);

    // What the keypair may still use: the least of the three, reported as the keypair's.
    for slot in known.names() {
        let least = min_first(
            min_first(at(&keypair_remaining, slot), at(&group_remaining, slot)),
            at(&domain_remaining, slot),
        );
        keypair_remaining.set(slot, least);
    }

    // Per resource group: the user's kernels there, and what the live agents have left.
    let allowed =
        scaling_groups::allowed_for(db, domain, project_row.id, requester.access_key).await?;
    let mut names: Vec<String> = allowed.into_iter().map(|sgroup| sgroup.name).collect();
    if let Some(chosen) = scaling_group {
        if !names.iter().any(|name| name == chosen) {
            return Err(SchedulerError::UnknownScalingGroup(chosen.to_owned()));
        }
        names = vec![chosen.to_owned()];
    }
    let mut per_sgroup: IndexMap<String, (Slots, Slots)> = names
        .iter()
        .map(|name| (name.clone(), (known.zeros(), known.zeros())))
        .collect();
    let used = occupancy_queries::user_slots_on_agents(db, requester.user_uuid, &names).await?;
    for (sgroup, slots) in &used {
        if let Some((using, _)) = per_sgroup.get_mut(sgroup) {
            using.add_assign(&mut Slots::from(slots));
        }
    }
    let agents = agent_slots::alive_in(db, &names, Schedulable::Only).await?;
    let mut sgroup_remaining = known.zeros();
    let mut agent_remaining: Vec<Slots> = Vec::with_capacity(agents.len());
    for agent in &agents {
        let mut remaining = Slots::from(&agent.available_slots)
            .sub(&mut Slots::from(&agent.occupied_slots))
            .add(&mut known.zeros());
        sgroup_remaining.add_assign(&mut remaining);
        if let Some((_, headroom)) = per_sgroup.get_mut(&agent.scaling_group) {
            headroom.add_assign(&mut remaining);
        }
        agent_remaining.push(remaining);
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
    let sgroups = per_sgroup
        .into_iter()
        .map(|(name, (using, remaining))| ScalingGroupHeadroom {
            name,
            using,
            remaining,
        })
        .collect();

    // Which presets some agent could take now, within the keypair's remaining slots.
    let mut presets = Vec::new();
    for preset in resource_presets::all(db).await? {
        let mut preset_slots = known.normalize(&preset.resource_slots);
        let mut allocatable = false;
        for agent in &mut agent_remaining {
            if agent.covers(&mut preset_slots) && keypair_remaining.covers(&mut preset_slots) {
                allocatable = true;
                break;
            }
        }
        presets.push(PresetFit {
            name: preset.name,
            resource_slots: preset_slots,
            shared_memory: preset.shared_memory,
            allocatable,
        });
    }

    let visibility = etcd
        .get(GROUP_RESOURCE_VISIBILITY_KEY, Scope::Global)
        .await
        .map_err(SchedulerError::etcd(GROUP_RESOURCE_VISIBILITY_KEY))?;
    let project = etcd_flag(visibility.as_deref()).then_some(Quota {
        limits: group_limits,
        occupied: group_occupied,
        remaining: group_remaining,
    });
    Ok(Headroom {
        known,
        keypair: Quota {
            limits: keypair_limits,
            occupied: keypair_occupied,
            remaining: keypair_remaining,
        },
        project,
        scaling_group_remaining: sgroup_remaining,
        scaling_groups: sgroups,
        presets,
    })
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
