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
    use sea_orm::{ActiveModelTrait, ConnectionTrait, DatabaseConnection};
    use serde_json::json;

    use super::{Occupant, quota_occupying_slots, user_slots_on_agents};
    use crate::entities::ResourceSlot;
    use crate::queries::test_rows::{self, Rows};

    /// Inserts a session in `scaling_group` (with `access_key`, `group`, `user`) and returns its id.
    async fn session(
        db: &DatabaseConnection,
        rows: &Rows,
        id: &str,
        scaling_group: Option<&str>,
        access_key: &str,
    ) {
        let scaling_group = scaling_group.map_or("NULL".to_owned(), |name| format!("'{name}'"));
        db.execute_unprepared(&format!(
            "INSERT INTO sessions (id, cluster_size, domain_name, group_id, user_uuid, access_key, \
             scaling_group_name, occupying_slots, requested_slots, use_host_network) VALUES \
             ('{id}', 1, '{domain}', '{group}', '{user}', '{access_key}', {scaling_group}, '{{}}', \
             '{{}}', false)",
            domain = Rows::DOMAIN,
            group = rows.group.id,
            user = rows.user.uuid,
        ))
        .await
        .expect("session row");
    }

    /// Inserts a kernel of `session` with the given status and occupied slots.
    #[allow(clippy::too_many_arguments)]
    async fn kernel(
        db: &DatabaseConnection,
        rows: &Rows,
        id: &str,
        session: &str,
        status: &str,
        access_key: &str,
        domain: &str,
        slots: serde_json::Value,
    ) {
        db.execute_unprepared(&format!(
            "INSERT INTO kernels (id, session_id, cluster_size, cluster_role, cluster_idx, \
             local_rank, cluster_hostname, domain_name, group_id, user_uuid, access_key, \
             occupied_slots, requested_slots, occupied_shares, repl_in_port, repl_out_port, \
             stdin_port, stdout_port, use_host_network, status) VALUES ('{id}', '{session}', 1, \
             'main', 0, 0, 'main1', '{domain}', '{group}', '{user}', '{access_key}', '{slots}', \
             '{{}}', '{{}}', 0, 0, 0, 0, false, '{status}')",
            group = rows.group.id,
            user = rows.user.uuid,
        ))
        .await
        .expect("kernel row");
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
        let sess = "11111111-0000-0000-0000-000000000000";
        session(db, &rows, sess, Some("default"), Rows::ACCESS_KEY).await;
        for (index, status) in [
            "PENDING",
            "SCHEDULED",
            "RUNNING",
            "TERMINATING",
            "TERMINATED",
            "CANCELLED",
            "ERROR",
        ]
        .into_iter()
        .enumerate()
        {
            kernel(
                db,
                &rows,
                &format!("00000000-0000-0000-0000-00000000000{index}"),
                sess,
                status,
                Rows::ACCESS_KEY,
                Rows::DOMAIN,
                json!({"cpu": index.to_string()}),
            )
            .await;
        }
        kernel(
            db,
            &rows,
            "00000000-0000-0000-0000-000000000010",
            sess,
            "RUNNING",
            other_key,
            "other",
            json!({"cpu": "10", "mem": "4g"}),
        )
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
        let (test, rows) = test_rows::database("q_occupancy_agents").await;
        let db = &test.connection;
        for name in ["default", "gpu", "elsewhere"] {
            test_rows::scaling_group(name, true)
                .insert(db)
                .await
                .expect("scaling group");
        }
        let in_default = "22222222-0000-0000-0000-000000000001";
        let in_gpu = "22222222-0000-0000-0000-000000000002";
        let in_elsewhere = "22222222-0000-0000-0000-000000000003";
        let without_group = "22222222-0000-0000-0000-000000000004";
        session(db, &rows, in_default, Some("default"), Rows::ACCESS_KEY).await;
        session(db, &rows, in_gpu, Some("gpu"), Rows::ACCESS_KEY).await;
        session(db, &rows, in_elsewhere, Some("elsewhere"), Rows::ACCESS_KEY).await;
        session(db, &rows, without_group, None, Rows::ACCESS_KEY).await;
        for (id, sess, status, cpu) in [
            (
                "33333333-0000-0000-0000-000000000001",
                in_default,
                "RUNNING",
                "1",
            ),
            // Terminating kernels still hold their agent's slots.
            (
                "33333333-0000-0000-0000-000000000002",
                in_default,
                "TERMINATING",
                "2",
            ),
            (
                "33333333-0000-0000-0000-000000000003",
                in_default,
                "PENDING",
                "4",
            ),
            (
                "33333333-0000-0000-0000-000000000004",
                in_gpu,
                "PREPARING",
                "8",
            ),
            (
                "33333333-0000-0000-0000-000000000005",
                in_elsewhere,
                "RUNNING",
                "16",
            ),
            (
                "33333333-0000-0000-0000-000000000006",
                without_group,
                "RUNNING",
                "32",
            ),
            (
                "33333333-0000-0000-0000-000000000007",
                in_gpu,
                "TERMINATED",
                "64",
            ),
        ] {
            kernel(
                db,
                &rows,
                id,
                sess,
                status,
                Rows::ACCESS_KEY,
                Rows::DOMAIN,
                json!({"cpu": cpu}),
            )
            .await;
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
