//! The resource slots kernels hold, selected the reference's ways: against keypair, project and
//! domain quotas (`get_keypair_occupancy`, `get_group_occupancy`, `get_domain_occupancy` of the
//! registry) and, per resource group, on agents (`check_presets`). The queries return each
//! kernel's `occupied_slots`; adding them up with the reference's key rules is the caller's job.

use sea_orm::prelude::Uuid;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, JoinType, QueryFilter, QueryOrder, QuerySelect,
    RelationTrait,
};

use crate::entities::enums::KernelStatus;
use crate::entities::{ResourceSlot, kernels, sessions};
use crate::error::DbError;

/// Kernel statuses whose slots count against a quota (`USER_RESOURCE_OCCUPYING_KERNEL_STATUSES`):
/// every status but pending, terminating, terminated and cancelled.
pub const QUOTA_OCCUPYING_STATUSES: [KernelStatus; 9] = [
    KernelStatus::Scheduled,
    KernelStatus::Preparing,
    KernelStatus::Building,
    KernelStatus::Pulling,
    KernelStatus::Running,
    KernelStatus::Restarting,
    KernelStatus::Resizing,
    KernelStatus::Suspended,
    KernelStatus::Error,
];

/// Kernel statuses whose slots an agent still holds (`AGENT_RESOURCE_OCCUPYING_KERNEL_STATUSES`):
/// every status but pending, terminated and cancelled (a terminating container is still there).
pub const AGENT_OCCUPYING_STATUSES: [KernelStatus; 10] = [
    KernelStatus::Scheduled,
    KernelStatus::Preparing,
    KernelStatus::Building,
    KernelStatus::Pulling,
    KernelStatus::Running,
    KernelStatus::Restarting,
    KernelStatus::Resizing,
    KernelStatus::Suspended,
    KernelStatus::Terminating,
    KernelStatus::Error,
];

/// Whose quota the kernels count against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Occupant<'a> {
    /// `kernels.access_key`.
    AccessKey(&'a str),
    /// `kernels.group_id`.
    Project(Uuid),
    /// `kernels.domain_name`.
    Domain(&'a str),
}

impl std::fmt::Display for Occupant<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Occupant::AccessKey(access_key) => write!(f, "access key {access_key:?}"),
            Occupant::Project(group_id) => write!(f, "project {group_id}"),
            Occupant::Domain(domain) => write!(f, "domain {domain:?}"),
        }
    }
}

/// The `occupied_slots` of every kernel of `occupant` in a [`QUOTA_OCCUPYING_STATUSES`] status, in
/// kernel-id order.
pub async fn quota_occupying_slots(
    db: &impl ConnectionTrait,
    occupant: Occupant<'_>,
) -> Result<Vec<ResourceSlot>, DbError> {
    let owned_by = match occupant {
        Occupant::AccessKey(access_key) => kernels::Column::AccessKey.eq(access_key),
        Occupant::Project(group_id) => kernels::Column::GroupId.eq(group_id),
        Occupant::Domain(domain) => kernels::Column::DomainName.eq(domain),
    };
    kernels::Entity::find()
        .select_only()
        .column(kernels::Column::OccupiedSlots)
        .filter(owned_by)
        .filter(kernels::Column::Status.is_in(QUOTA_OCCUPYING_STATUSES))
        .order_by_asc(kernels::Column::Id)
        .into_tuple::<ResourceSlot>()
        .all(db)
        .await
        .map_err(DbError::query(format!(
            "reading the slots kernels of {occupant} occupy"
        )))
}

/// The resource group (of the kernel's session, `sessions.scaling_group_name`) and the
/// `occupied_slots` of every kernel of the user `user_uuid` in an [`AGENT_OCCUPYING_STATUSES`]
/// status whose session runs in one of `scaling_groups`, in kernel-id order.
pub async fn user_slots_on_agents(
    db: &impl ConnectionTrait,
    user_uuid: Uuid,
    scaling_groups: &[String],
) -> Result<Vec<(String, ResourceSlot)>, DbError> {
    if scaling_groups.is_empty() {
        return Ok(Vec::new());
    }
    let rows = kernels::Entity::find()
        .select_only()
        .column(sessions::Column::ScalingGroupName)
        .column(kernels::Column::OccupiedSlots)
        .join(JoinType::InnerJoin, kernels::Relation::Session.def())
        .filter(kernels::Column::UserUuid.eq(user_uuid))
        .filter(kernels::Column::Status.is_in(AGENT_OCCUPYING_STATUSES))
        .filter(sessions::Column::ScalingGroupName.is_in(scaling_groups.iter().cloned()))
        .order_by_asc(kernels::Column::Id)
        .into_tuple::<(Option<String>, ResourceSlot)>()
        .all(db)
        .await
        .map_err(DbError::query(format!(
            "reading the slots the kernels of user {user_uuid} occupy in resource groups {scaling_groups:?}"
        )))?;
    // The IN condition already excludes sessions without a resource group.
    Ok(rows
        .into_iter()
        .filter_map(|(scaling_group, slots)| scaling_group.map(|name| (name, slots)))
        .collect())
}

#[cfg(test)]
mod tests {
    use sea_orm::ActiveModelTrait;
    use sea_orm::prelude::Uuid;
    use serde_json::json;

    use super::{Occupant, quota_occupying_slots, user_slots_on_agents};
    use crate::entities::ResourceSlot;
    use crate::entities::enums::KernelStatus;
    use crate::queries::test_rows::{self, Rows, TestKernel, TestSession};

    /// A one-node session of [`Rows::ACCESS_KEY`] in `scaling_group` with `kernels`.
    fn session(id: &str, scaling_group: Option<&str>, kernels: Vec<TestKernel>) -> TestSession {
        TestSession {
            id: Uuid::parse_str(id).expect("uuid"),
            scaling_group: scaling_group.map(str::to_owned),
            kernels,
            ..TestSession::default()
        }
    }

    /// A main kernel in `status` occupying `slots`.
    fn kernel(id: &str, status: KernelStatus, slots: serde_json::Value) -> TestKernel {
        TestKernel {
            id: Uuid::parse_str(id).expect("uuid"),
            status: Some(status),
            occupied_slots: ResourceSlot::from_json(&slots).expect("slots"),
            ..TestKernel::default()
        }
    }

    fn slots(rows: &[ResourceSlot]) -> Vec<serde_json::Value> {
        rows.iter().map(ResourceSlot::to_json).collect()
    }

    #[tokio::test]
    async fn quota_occupancy_skips_pending_and_finished_kernels() {
        let (test, rows) = test_rows::database("q_occupancy_quota").await;
        let db = &test.connection;
        let nothing = quota_occupying_slots(db, Occupant::AccessKey(Rows::ACCESS_KEY))
            .await
            .expect("query");
        assert!(nothing.is_empty());

        // Another domain, for the domain filter.
        crate::entities::domains::ActiveModel {
            name: sea_orm::Set("other".to_owned()),
            description: sea_orm::Set(None),
            is_active: sea_orm::Set(Some(true)),
            integration_id: sea_orm::Set(None),
            total_resource_slots: sea_orm::Set(Some(ResourceSlot::new())),
            allowed_vfolder_hosts: sea_orm::Set(crate::entities::VFolderHostPermissions::new()),
            allowed_docker_registries: sea_orm::Set(Vec::new()),
            dotfiles: sea_orm::Set(crate::entities::EMPTY_DOTFILES.to_vec()),
            ..Default::default()
        }
        .insert(db)
        .await
        .expect("other domain");

        test_rows::scaling_group("default", true)
            .insert(db)
            .await
            .expect("scaling group");
        let other_key = "AKIASECOND000000000X";
        test_rows::keypair(&rows.user, other_key, Rows::KEYPAIR_POLICY)
            .insert(db)
            .await
            .expect("second keypair");
        let mut kernels: Vec<TestKernel> = [
            KernelStatus::Pending,
            KernelStatus::Scheduled,
            KernelStatus::Running,
            KernelStatus::Terminating,
            KernelStatus::Terminated,
            KernelStatus::Cancelled,
            KernelStatus::Error,
        ]
        .into_iter()
        .enumerate()
        .map(|(index, status)| {
            kernel(
                &format!("00000000-0000-0000-0000-00000000000{index}"),
                status,
                json!({"cpu": index.to_string()}),
            )
        })
        .collect();
        kernels.push(TestKernel {
            access_key: Some(other_key.to_owned()),
            domain: "other".to_owned(),
            ..kernel(
                "00000000-0000-0000-0000-000000000010",
                KernelStatus::Running,
                json!({"cpu": "10", "mem": "4g"}),
            )
        });
        session(
            "11111111-0000-0000-0000-000000000000",
            Some("default"),
            kernels,
        )
        .insert(db, &rows)
        .await;

        let by_key = quota_occupying_slots(db, Occupant::AccessKey(Rows::ACCESS_KEY))
            .await
            .expect("query");
        // SCHEDULED, RUNNING and ERROR; not PENDING, TERMINATING, TERMINATED, CANCELLED.
        assert_eq!(
            slots(&by_key),
            [
                json!({"cpu": "1"}),
                json!({"cpu": "2"}),
                json!({"cpu": "6"})
            ]
        );
        let by_project = quota_occupying_slots(db, Occupant::Project(rows.group.id))
            .await
            .expect("query");
        assert_eq!(
            by_project.len(),
            4,
            "the other key's kernel is in the project"
        );
        assert_eq!(
            slots(&by_project)[3],
            json!({"cpu": "10", "mem": "4294967296"})
        );
        let by_domain = quota_occupying_slots(db, Occupant::Domain("other"))
            .await
            .expect("query");
        assert_eq!(
            slots(&by_domain),
            [json!({"cpu": "10", "mem": "4294967296"})]
        );
    }

    #[tokio::test]
    async fn agent_occupancy_is_per_resource_group_of_the_session() {
        use KernelStatus::{Pending, Preparing, Running, Terminated, Terminating};
        /// A session's id, resource group and kernels (id suffix, status, cores).
        type Placed = (
            &'static str,
            Option<&'static str>,
            &'static [(u8, KernelStatus, &'static str)],
        );

        let (test, rows) = test_rows::database("q_occupancy_agents").await;
        let db = &test.connection;
        for name in ["default", "gpu", "elsewhere"] {
            test_rows::scaling_group(name, true)
                .insert(db)
                .await
                .expect("scaling group");
        }
        let placed: [Placed; 4] = [
            (
                "22222222-0000-0000-0000-000000000001",
                Some("default"),
                // Terminating kernels still hold their agent's slots.
                &[(1, Running, "1"), (2, Terminating, "2"), (3, Pending, "4")],
            ),
            (
                "22222222-0000-0000-0000-000000000002",
                Some("gpu"),
                &[(4, Preparing, "8"), (7, Terminated, "64")],
            ),
            (
                "22222222-0000-0000-0000-000000000003",
                Some("elsewhere"),
                &[(5, Running, "16")],
            ),
            (
                "22222222-0000-0000-0000-000000000004",
                None,
                &[(6, Running, "32")],
            ),
        ];
        for (id, scaling_group, kernels) in placed {
            let kernels = kernels
                .iter()
                .map(|&(suffix, status, cpu)| {
                    kernel(
                        &format!("33333333-0000-0000-0000-00000000000{suffix}"),
                        status,
                        json!({"cpu": cpu}),
                    )
                })
                .collect();
            session(id, scaling_group, kernels).insert(db, &rows).await;
        }
        let groups = ["default".to_owned(), "gpu".to_owned()];
        let found = user_slots_on_agents(db, rows.user.uuid, &groups)
            .await
            .expect("query");
        let found: Vec<(String, serde_json::Value)> = found
            .into_iter()
            .map(|(group, slots)| (group, slots.to_json()))
            .collect();
        assert_eq!(
            found,
            [
                ("default".to_owned(), json!({"cpu": "1"})),
                ("default".to_owned(), json!({"cpu": "2"})),
                ("gpu".to_owned(), json!({"cpu": "8"})),
            ]
        );
        let other_user = user_slots_on_agents(db, sea_orm::prelude::Uuid::nil(), &groups)
            .await
            .expect("query");
        assert!(other_user.is_empty());
        assert!(
            user_slots_on_agents(db, rows.user.uuid, &[])
                .await
                .expect("query")
                .is_empty()
        );
    }
}
