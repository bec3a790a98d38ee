//! Sums of what agents have and hold.

use bai_db_models::queries::agent_listing::{self, AgentScope};
use sea_orm::ConnectionTrait;

use crate::error::SchedulerError;
use crate::slots::Slots;

/// What the agents of a scope hold and have, added up slot by slot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlotTotals {
    pub occupied_slots: Slots,
    pub available_slots: Slots,
}

/// The occupied and available slots of the agents in `scope`, added up as the reference's
/// `ResourceSlot` adds them (a slot missing on one agent counts as zero there, an infinity stays
/// one): a resource group's `agent_total_resource_slots_by_status`.
pub async fn agent_slot_totals(
    db: &impl ConnectionTrait,
    scope: &AgentScope,
) -> Result<SlotTotals, SchedulerError> {
    let mut totals = SlotTotals::default();
    for agent in agent_listing::capacities(db, scope).await? {
        totals
            .occupied_slots
            .add_assign(&mut Slots::from(&agent.occupied_slots));
        totals
            .available_slots
            .add_assign(&mut Slots::from(&agent.available_slots));
    }
    Ok(totals)
}
