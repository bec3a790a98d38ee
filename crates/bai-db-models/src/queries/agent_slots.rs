//! The capacity of live agents: what they have (`available_slots`) and what their kernels hold
//! (`occupied_slots`), per resource group, for `/resource/check-presets` and
//! `/config/resource-slots/details`.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::entities::enums::AgentStatus;
use crate::entities::{ResourceSlot, agents};
use crate::error::DbError;

/// One live agent's slots.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentSlots {
    pub id: String,
    pub scaling_group: String,
    pub available_slots: ResourceSlot,
    pub occupied_slots: ResourceSlot,
}

/// Which agents count.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schedulable {
    /// Every `ALIVE` agent.
    Any,
    /// `ALIVE` agents that take new sessions (`schedulable`).
    Only,
}

/// The `ALIVE` agents (all, or only the schedulable ones) of the resource groups
/// `scaling_groups`, ordered by id.
pub async fn alive_in(
    db: &impl ConnectionTrait,
    scaling_groups: &[String],
    schedulable: Schedulable,
) -> Result<Vec<AgentSlots>, DbError> {
    if scaling_groups.is_empty() {
        return Ok(Vec::new());
    }
    let mut query = agents::Entity::find()
        .select_only()
        .columns([
            agents::Column::Id,
            agents::Column::ScalingGroup,
            agents::Column::AvailableSlots,
            agents::Column::OccupiedSlots,
        ])
        .filter(agents::Column::Status.eq(AgentStatus::Alive))
        .filter(agents::Column::ScalingGroup.is_in(scaling_groups.iter().cloned()));
    if schedulable == Schedulable::Only {
        query = query.filter(agents::Column::Schedulable.eq(true));
    }
    let rows = query
        .order_by_asc(agents::Column::Id)
        .into_tuple::<(String, String, ResourceSlot, ResourceSlot)>()
        .all(db)
        .await
        .map_err(DbError::query(format!(
            "reading the live agents of resource groups {scaling_groups:?}"
        )))?;
    Ok(rows
        .into_iter()
        .map(
            |(id, scaling_group, available_slots, occupied_slots)| AgentSlots {
                id,
                scaling_group,
                available_slots,
                occupied_slots,
            },
        )
        .collect())
}

#[cfg(test)]
mod tests {
    use sea_orm::{ActiveModelTrait, DatabaseConnection, Set};
    use serde_json::json;

    use super::{Schedulable, alive_in};
    use crate::entities::enums::AgentStatus;
    use crate::entities::{ResourceSlot, agents};
    use crate::queries::test_rows;

    async fn agent(
        db: &DatabaseConnection,
        id: &str,
        scaling_group: &str,
        status: AgentStatus,
        schedulable: bool,
    ) {
        agents::ActiveModel {
            id: Set(id.to_owned()),
            status: Set(status),
            region: Set("local".to_owned()),
            scaling_group: Set(scaling_group.to_owned()),
            schedulable: Set(schedulable),
            available_slots: Set(
                ResourceSlot::from_json(&json!({"cpu": "8", "mem": "16g"})).expect("slots")
            ),
            occupied_slots: Set(ResourceSlot::from_json(&json!({"cpu": "2"})).expect("slots")),
            addr: Set(format!("tcp://{id}:6001")),
            version: Set("24.03.11".to_owned()),
            architecture: Set("x86_64".to_owned()),
            compute_plugins: Set(json!({})),
            ..Default::default()
        }
        .insert(db)
        .await
        .expect("agent");
    }

    #[tokio::test]
    async fn only_alive_agents_of_the_groups_and_optionally_schedulable() {
        let (test, _rows) = test_rows::database("q_agent_slots").await;
        let db = &test.connection;
        for name in ["default", "gpu", "other"] {
            test_rows::scaling_group(name, true)
                .insert(db)
                .await
                .expect("scaling group");
        }
        agent(db, "i-b", "default", AgentStatus::Alive, true).await;
        agent(db, "i-a", "gpu", AgentStatus::Alive, false).await;
        agent(db, "i-lost", "default", AgentStatus::Lost, true).await;
        agent(db, "i-term", "gpu", AgentStatus::Terminated, true).await;
        agent(db, "i-other", "other", AgentStatus::Alive, true).await;

        let groups = ["default".to_owned(), "gpu".to_owned()];
        let all = alive_in(db, &groups, Schedulable::Any)
            .await
            .expect("query");
        let ids: Vec<&str> = all.iter().map(|agent| agent.id.as_str()).collect();
        assert_eq!(ids, ["i-a", "i-b"]);
        assert_eq!(all[0].scaling_group, "gpu");
        assert_eq!(
            all[1].available_slots.to_json(),
            json!({"cpu": "8", "mem": "17179869184"})
        );
        assert_eq!(all[1].occupied_slots.to_json(), json!({"cpu": "2"}));

        let schedulable = alive_in(db, &groups, Schedulable::Only)
            .await
            .expect("query");
        let ids: Vec<&str> = schedulable.iter().map(|agent| agent.id.as_str()).collect();
        assert_eq!(ids, ["i-b"]);
        assert!(
            alive_in(db, &[], Schedulable::Any)
                .await
                .expect("query")
                .is_empty()
        );
    }
}
