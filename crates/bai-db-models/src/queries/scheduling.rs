//! The scheduler's reads and writes of one round (spec §4.2): the resource groups to visit, what a
//! round of one group reads, and the round's decisions written back, all in one transaction per
//! group under the cluster-wide advisory lock of scheduling (`LOCKID_SCHEDULE`, 91).
//!
//! The round's agents and pending sessions are read `FOR UPDATE`: nothing changes an agent's
//! occupancy or cancels a pending session between the round's read and its commit, so the
//! decisions the caller made in memory still hold when they are written. Rows are written in
//! batches (one statement per kind of change, its rows passed as one JSON parameter), so that a
//! round of thousands of sessions costs a handful of statements.
//!
//! What to decide is the caller's: this module only reads rows and writes the values it is given.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::prelude::Uuid;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, RelationTrait, Statement, TransactionTrait,
};

use crate::entities::enums::{
    AgentStatus, KernelStatus, SessionResult, SessionStatus, SessionType,
};
use crate::entities::{
    ResourceSlot, agents, domains, groups, kernels, keypair_resource_policies, keypairs,
    scaling_groups, session_dependencies, sessions, users,
};
use crate::error::DbError;
use crate::queries::occupancy::{AGENT_OCCUPYING_STATUSES, QUOTA_OCCUPYING_STATUSES};

/// The reference's `LockID.LOCKID_SCHEDULE`: one scheduling round at a time, cluster-wide.
pub const SCHEDULE_LOCK_ID: i64 = 91;

/// The resource groups that have an ALIVE agent: the only ones a round visits.
pub async fn groups_with_alive_agents(db: &impl ConnectionTrait) -> Result<Vec<String>, DbError> {
    agents::Entity::find()
        .select_only()
        .column(agents::Column::ScalingGroup)
        .distinct()
        .filter(agents::Column::Status.eq(AgentStatus::Alive))
        .order_by_asc(agents::Column::ScalingGroup)
        .into_tuple()
        .all(db)
        .await
        .map_err(DbError::query(
            "listing the resource groups with ALIVE agents",
        ))
}

/// The resource groups that have a PENDING session.
pub async fn groups_with_pending_sessions(
    db: &impl ConnectionTrait,
) -> Result<Vec<String>, DbError> {
    let groups: Vec<Option<String>> = sessions::Entity::find()
        .select_only()
        .column(sessions::Column::ScalingGroupName)
        .distinct()
        .filter(sessions::Column::Status.eq(SessionStatus::Pending))
        .order_by_asc(sessions::Column::ScalingGroupName)
        .into_tuple()
        .all(db)
        .await
        .map_err(DbError::query(
            "listing the resource groups with PENDING sessions",
        ))?;
    Ok(groups.into_iter().flatten().collect())
}

/// A PENDING session with its kernels, main kernel first.
#[derive(Clone, Debug)]
pub struct PendingRows {
    pub session: sessions::Model,
    pub kernels: Vec<kernels::Model>,
}

impl PendingRows {
    /// `sessions` in their order, each with its kernels out of `kernels` (main kernel first, the
    /// others in the order of `kernels`).
    pub(crate) fn group(
        sessions: Vec<sessions::Model>,
        kernels: Vec<kernels::Model>,
    ) -> Vec<PendingRows> {
        let mut kernels_of: HashMap<Uuid, Vec<kernels::Model>> = HashMap::new();
        for kernel in kernels {
            kernels_of
                .entry(kernel.session_id)
                .or_default()
                .push(kernel);
        }
        sessions
            .into_iter()
            .map(|session| {
                let mut kernels = kernels_of.remove(&session.id).unwrap_or_default();
                kernels.sort_by_key(|kernel| kernel.cluster_role != "main");
                PendingRows { session, kernels }
            })
            .collect()
    }
}

/// A session another pending session depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DependencyRow {
    /// The pending session that waits.
    pub session_id: Uuid,
    pub id: Uuid,
    pub name: String,
    pub status: SessionStatus,
    pub result: SessionResult,
}

/// A kernel whose slots count against quotas (a [`QUOTA_OCCUPYING_STATUSES`] status, not of a
/// SYSTEM session), with whom it counts against.
#[derive(Clone, Debug, PartialEq)]
pub struct OccupyingKernel {
    pub access_key: Option<String>,
    pub user_uuid: Uuid,
    pub group_id: Uuid,
    pub domain_name: String,
    pub occupied_slots: ResourceSlot,
}

/// Everything a round of one resource group reads.
#[derive(Clone, Debug)]
pub struct GroupRows {
    pub group: scaling_groups::Model,
    /// The group's ALIVE, schedulable agents by id, locked until the round commits.
    pub agents: Vec<agents::Model>,
    /// Agents that pending kernels designate and that are not among `agents`, locked too.
    pub designated_agents: Vec<agents::Model>,
    /// The group's PENDING sessions, oldest first, locked until the round commits.
    pub pending: Vec<PendingRows>,
    pub dependencies: Vec<DependencyRow>,
    /// `(access_key, occupying_slots)` of the group's agent-occupying sessions (every status
    /// but PENDING, TERMINATED and CANCELLED).
    pub existing: Vec<(Option<String>, ResourceSlot)>,
    /// The quota-occupying kernels of every access key, user, project and domain a pending
    /// session names, in every resource group.
    pub occupying_kernels: Vec<OccupyingKernel>,
    /// `(access_key, requested_slots)` of every PENDING session of those access keys, in every
    /// resource group.
    pub pending_of_keys: Vec<(String, ResourceSlot)>,
    /// The concurrency each named access key uses: its sessions (main kernels) in a quota-occupying
    /// status, as `(others, SYSTEM)`.
    pub concurrency: HashMap<String, (u64, u64)>,
    /// Each named access key's resource policy (keys without a keypair row are absent).
    pub keypair_policies: HashMap<String, keypair_resource_policies::Model>,
    /// Each named user's main access key's policy (`None`: no main key, or no policy).
    pub user_main_policies: HashMap<Uuid, Option<keypair_resource_policies::Model>>,
    /// `groups.total_resource_slots` of each named project.
    pub group_limits: HashMap<Uuid, Option<ResourceSlot>>,
    /// `domains.total_resource_slots` of each named domain.
    pub domain_limits: HashMap<String, Option<ResourceSlot>>,
}

/// One round of one resource group: a transaction holding the scheduling lock.
#[derive(Debug)]
pub struct Round {
    txn: DatabaseTransaction,
    group: String,
}

impl Round {
    /// Begins the round of `group`, waiting for the scheduling lock (another manager's round).
    pub async fn begin(db: &DatabaseConnection, group: &str) -> Result<Round, DbError> {
        let context = || format!("beginning the scheduling round of resource group {group:?}");
        let txn = db.begin().await.map_err(DbError::query(context()))?;
        txn.execute(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1)",
            [SCHEDULE_LOCK_ID.into()],
        ))
        .await
        .map_err(DbError::query(context()))?;
        Ok(Round {
            txn,
            group: group.to_owned(),
        })
    }

    /// What the round decides from; `None` when the group does not exist (any more).
    pub async fn load(&self) -> Result<Option<GroupRows>, DbError> {
        let context = || format!("reading resource group {:?} for its round", self.group);
        let db = &self.txn;
        let Some(group) = scaling_groups::Entity::find_by_id(self.group.clone())
            .one(db)
            .await
            .map_err(DbError::query(context()))?
        else {
            return Ok(None);
        };
        let agents = agents::Entity::find()
            .filter(agents::Column::ScalingGroup.eq(self.group.as_str()))
            .filter(agents::Column::Status.eq(AgentStatus::Alive))
            .filter(agents::Column::Schedulable.eq(true))
            .order_by_asc(agents::Column::Id)
            .lock_exclusive()
            .all(db)
            .await
            .map_err(DbError::query(context()))?;
        let sessions = sessions::Entity::find()
            .filter(sessions::Column::ScalingGroupName.eq(self.group.as_str()))
            .filter(sessions::Column::Status.eq(SessionStatus::Pending))
            .order_by_asc(sessions::Column::CreatedAt)
            .order_by_asc(sessions::Column::Id)
            .lock_exclusive()
            .all(db)
            .await
            .map_err(DbError::query(context()))?;
        let session_ids: Vec<Uuid> = sessions.iter().map(|session| session.id).collect();
        let mut kernels_of: HashMap<Uuid, Vec<kernels::Model>> = HashMap::new();
        for chunk in session_ids.chunks(CHUNK) {
            let rows = kernels::Entity::find()
                .filter(kernels::Column::SessionId.is_in(chunk.iter().copied()))
                .order_by_asc(kernels::Column::ClusterIdx)
                .all(db)
                .await
                .map_err(DbError::query(context()))?;
            for row in rows {
                kernels_of.entry(row.session_id).or_default().push(row);
            }
        }
        let pending: Vec<PendingRows> = sessions
            .into_iter()
            .map(|session| {
                let mut kernels = kernels_of.remove(&session.id).unwrap_or_default();
                // Main first, then by cluster index as the query ordered them.
                kernels.sort_by_key(|kernel| kernel.cluster_role != "main");
                PendingRows { session, kernels }
            })
            .collect();

        let known: BTreeSet<&str> = agents.iter().map(|agent| agent.id.as_str()).collect();
        let designated: BTreeSet<String> = pending
            .iter()
            .flat_map(|rows| rows.kernels.iter())
            .filter_map(|kernel| kernel.agent.clone())
            .filter(|agent| !known.contains(agent.as_str()))
            .collect();
        let designated_agents = if designated.is_empty() {
            Vec::new()
        } else {
            agents::Entity::find()
                .filter(agents::Column::Id.is_in(designated))
                .order_by_asc(agents::Column::Id)
                .lock_exclusive()
                .all(db)
                .await
                .map_err(DbError::query(context()))?
        };

        let mut dependencies = Vec::new();
        for chunk in session_ids.chunks(CHUNK) {
            let rows: Vec<(Uuid, Uuid, Option<String>, SessionStatus, SessionResult)> =
                session_dependencies::Entity::find()
                    .select_only()
                    .column(session_dependencies::Column::SessionId)
                    .column(session_dependencies::Column::DependsOn)
                    .column_as(sessions::Column::Name, "name")
                    .column_as(sessions::Column::Status, "status")
                    .column_as(sessions::Column::Result, "result")
                    .join(
                        sea_orm::JoinType::InnerJoin,
                        session_dependencies::Relation::DependsOn.def(),
                    )
                    .filter(session_dependencies::Column::SessionId.is_in(chunk.iter().copied()))
                    .into_tuple()
                    .all(db)
                    .await
                    .map_err(DbError::query(context()))?;
            dependencies.extend(
                rows.into_iter()
                    .map(|(session_id, id, name, status, result)| DependencyRow {
                        session_id,
                        id,
                        name: name.unwrap_or_default(),
                        status,
                        result,
                    }),
            );
        }

        let existing = sessions::Entity::find()
            .select_only()
            .column(sessions::Column::AccessKey)
            .column(sessions::Column::OccupyingSlots)
            .filter(sessions::Column::ScalingGroupName.eq(self.group.as_str()))
            .filter(sessions::Column::Status.is_not_in([
                SessionStatus::Pending,
                SessionStatus::Terminated,
                SessionStatus::Cancelled,
            ]))
            .into_tuple()
            .all(db)
            .await
            .map_err(DbError::query(context()))?;

        let access_keys: BTreeSet<String> = pending
            .iter()
            .filter_map(|rows| rows.session.access_key.clone())
            .collect();
        let user_ids: BTreeSet<Uuid> = pending.iter().map(|rows| rows.session.user_uuid).collect();
        let group_ids: BTreeSet<Uuid> = pending.iter().map(|rows| rows.session.group_id).collect();
        let domain_names: BTreeSet<String> = pending
            .iter()
            .map(|rows| rows.session.domain_name.clone())
            .collect();
        let quotas = self
            .quotas(&access_keys, &user_ids, &group_ids, &domain_names)
            .await
            .map_err(DbError::query(context()))?;
        Ok(Some(GroupRows {
            group,
            agents,
            designated_agents,
            pending,
            dependencies,
            existing,
            occupying_kernels: quotas.occupying_kernels,
            pending_of_keys: quotas.pending_of_keys,
            concurrency: quotas.concurrency,
            keypair_policies: quotas.keypair_policies,
            user_main_policies: quotas.user_main_policies,
            group_limits: quotas.group_limits,
            domain_limits: quotas.domain_limits,
        }))
    }

    async fn quotas(
        &self,
        access_keys: &BTreeSet<String>,
        user_ids: &BTreeSet<Uuid>,
        group_ids: &BTreeSet<Uuid>,
        domain_names: &BTreeSet<String>,
    ) -> Result<Quotas, sea_orm::DbErr> {
        let db = &self.txn;
        let mut quotas = Quotas::default();
        if access_keys.is_empty() {
            return Ok(quotas);
        }
        let owners = sea_orm::Condition::any()
            .add(kernels::Column::AccessKey.is_in(access_keys.iter().cloned()))
            .add(kernels::Column::UserUuid.is_in(user_ids.iter().copied()))
            .add(kernels::Column::GroupId.is_in(group_ids.iter().copied()))
            .add(kernels::Column::DomainName.is_in(domain_names.iter().cloned()));
        let rows: Vec<(Option<String>, Uuid, Uuid, String, ResourceSlot)> = kernels::Entity::find()
            .select_only()
            .column(kernels::Column::AccessKey)
            .column(kernels::Column::UserUuid)
            .column(kernels::Column::GroupId)
            .column(kernels::Column::DomainName)
            .column(kernels::Column::OccupiedSlots)
            .filter(owners)
            .filter(kernels::Column::Status.is_in(QUOTA_OCCUPYING_STATUSES))
            .filter(kernels::Column::SessionType.ne(SessionType::System))
            .into_tuple()
            .all(db)
            .await?;
        quotas.occupying_kernels = rows
            .into_iter()
            .map(
                |(access_key, user_uuid, group_id, domain_name, occupied_slots)| OccupyingKernel {
                    access_key,
                    user_uuid,
                    group_id,
                    domain_name,
                    occupied_slots,
                },
            )
            .collect();
        let pending: Vec<(Option<String>, ResourceSlot)> = sessions::Entity::find()
            .select_only()
            .column(sessions::Column::AccessKey)
            .column(sessions::Column::RequestedSlots)
            .filter(sessions::Column::AccessKey.is_in(access_keys.iter().cloned()))
            .filter(sessions::Column::Status.eq(SessionStatus::Pending))
            .into_tuple()
            .all(db)
            .await?;
        quotas.pending_of_keys = pending
            .into_iter()
            .filter_map(|(key, slots)| key.map(|key| (key, slots)))
            .collect();

        quotas.concurrency = concurrency_counts(db, Some(access_keys)).await?;
        let policies: HashMap<String, keypair_resource_policies::Model> =
            keypair_resource_policies::Entity::find()
                .all(db)
                .await?
                .into_iter()
                .map(|policy| (policy.name.clone(), policy))
                .collect();
        let key_policies: Vec<(String, String)> = keypairs::Entity::find()
            .select_only()
            .column(keypairs::Column::AccessKey)
            .column(keypairs::Column::ResourcePolicy)
            .filter(keypairs::Column::AccessKey.is_in(access_keys.iter().cloned()))
            .into_tuple()
            .all(db)
            .await?;
        quotas.keypair_policies = key_policies
            .into_iter()
            .filter_map(|(key, policy)| policies.get(&policy).map(|policy| (key, policy.clone())))
            .collect();
        let main_keys: Vec<(Uuid, Option<String>)> = users::Entity::find()
            .select_only()
            .column(users::Column::Uuid)
            .column(users::Column::MainAccessKey)
            .filter(users::Column::Uuid.is_in(user_ids.iter().copied()))
            .into_tuple()
            .all(db)
            .await?;
        let main_key_names: Vec<String> = main_keys
            .iter()
            .filter_map(|(_, key)| key.clone())
            .collect();
        let main_key_policies: HashMap<String, String> = keypairs::Entity::find()
            .select_only()
            .column(keypairs::Column::AccessKey)
            .column(keypairs::Column::ResourcePolicy)
            .filter(keypairs::Column::AccessKey.is_in(main_key_names))
            .into_tuple::<(String, String)>()
            .all(db)
            .await?
            .into_iter()
            .collect();
        quotas.user_main_policies = main_keys
            .into_iter()
            .map(|(user, key)| {
                let policy = key
                    .and_then(|key| main_key_policies.get(&key))
                    .and_then(|name| policies.get(name))
                    .cloned();
                (user, policy)
            })
            .collect();
        quotas.group_limits = groups::Entity::find()
            .select_only()
            .column(groups::Column::Id)
            .column(groups::Column::TotalResourceSlots)
            .filter(groups::Column::Id.is_in(group_ids.iter().copied()))
            .into_tuple()
            .all(db)
            .await?
            .into_iter()
            .collect();
        quotas.domain_limits = domains::Entity::find()
            .select_only()
            .column(domains::Column::Name)
            .column(domains::Column::TotalResourceSlots)
            .filter(domains::Column::Name.is_in(domain_names.iter().cloned()))
            .into_tuple()
            .all(db)
            .await?
            .into_iter()
            .collect();
        Ok(quotas)
    }

    /// Writes the round's decisions and commits; the scheduling lock goes with the transaction.
    pub async fn commit(self, writes: &RoundWrites) -> Result<(), DbError> {
        let context = || format!("writing the round of resource group {:?}", self.group);
        let db = &self.txn;
        let now = writes.now;
        let at = now.to_rfc3339_opts(SecondsFormat::Micros, false);
        for (agent_id, occupied) in &writes.agent_occupied {
            agents::Entity::update_many()
                .col_expr(agents::Column::OccupiedSlots, Expr::value(occupied.clone()))
                .filter(agents::Column::Id.eq(agent_id.as_str()))
                .exec(db)
                .await
                .map_err(DbError::query(context()))?;
        }
        if !writes.scheduled.is_empty() {
            let kernels: Vec<serde_json::Value> = writes
                .scheduled
                .iter()
                .flat_map(|session| {
                    session.kernels.iter().map(|kernel| {
                        serde_json::json!({
                            "id": kernel.kernel_id,
                            "agent": kernel.agent_id,
                            "agent_addr": kernel.agent_addr,
                        })
                    })
                })
                .collect();
            let sessions: Vec<serde_json::Value> = writes
                .scheduled
                .iter()
                .map(|session| serde_json::json!({"id": session.session_id, "agent_ids": session.agent_ids}))
                .collect();
            execute(
                db,
                "UPDATE kernels AS k SET agent = r.agent, agent_addr = r.agent_addr, \
                 scaling_group = $2, status = 'SCHEDULED', status_info = 'scheduled', \
                 status_data = '{}'::jsonb, status_changed = $3, \
                 status_history = COALESCE(k.status_history, '{}'::jsonb) || \
                 jsonb_build_object('SCHEDULED', $4::text) \
                 FROM jsonb_to_recordset($1) AS r(id uuid, agent text, agent_addr text) \
                 WHERE k.id = r.id",
                vec![
                    serde_json::Value::Array(kernels).into(),
                    writes.group.clone().into(),
                    now.into(),
                    at.clone().into(),
                ],
            )
            .await
            .map_err(DbError::query(context()))?;
            execute(
                db,
                "UPDATE sessions AS s SET agent_ids = ARRAY(SELECT jsonb_array_elements_text(r.agent_ids)), \
                 scaling_group_name = $2, status = 'SCHEDULED', status_info = 'scheduled', \
                 status_data = '{}'::jsonb, \
                 status_history = COALESCE(s.status_history, '{}'::jsonb) || \
                 jsonb_build_object('SCHEDULED', $3::text) \
                 FROM jsonb_to_recordset($1) AS r(id uuid, agent_ids jsonb) WHERE s.id = r.id",
                vec![
                    serde_json::Value::Array(sessions).into(),
                    writes.group.clone().into(),
                    at.clone().into(),
                ],
            )
            .await
            .map_err(DbError::query(context()))?;
        }
        for (table, updates) in [
            ("sessions", &writes.session_updates),
            ("kernels", &writes.kernel_updates),
        ] {
            if updates.is_empty() {
                continue;
            }
            let rows: Vec<serde_json::Value> = updates
                .iter()
                .map(|update| {
                    serde_json::json!({
                        "id": update.id,
                        "status_info": update.status_info,
                        "merge": update.scheduler_merge,
                        "retry": update.count_retry,
                        "replace": update.replace_status_data,
                    })
                })
                .collect();
            // `status_data.scheduler` gains the merge (and `retries` + 1 when counted), unless
            // the whole `status_data` is replaced.
            let sql = format!(
                "UPDATE {table} AS t SET status_info = COALESCE(r.status_info, t.status_info), \
                 status_data = CASE WHEN r.replace IS NOT NULL AND r.replace <> 'null'::jsonb \
                 THEN r.replace WHEN r.merge IS NULL OR r.merge = 'null'::jsonb THEN t.status_data \
                 ELSE jsonb_set(COALESCE(t.status_data, '{{}}'::jsonb), '{{scheduler}}', \
                 COALESCE(t.status_data -> 'scheduler', '{{}}'::jsonb) || r.merge || \
                 CASE WHEN r.retry THEN jsonb_build_object('retries', \
                 COALESCE((t.status_data -> 'scheduler' ->> 'retries')::int, 0) + 1) \
                 ELSE '{{}}'::jsonb END) END \
                 FROM jsonb_to_recordset($1) AS r(id uuid, status_info text, merge jsonb, \
                 retry boolean, replace jsonb) WHERE t.id = r.id"
            );
            execute(db, &sql, vec![serde_json::Value::Array(rows).into()])
                .await
                .map_err(DbError::query(context()))?;
        }
        if !writes.cancelled.is_empty() {
            let rows: Vec<serde_json::Value> = writes
                .cancelled
                .iter()
                .map(|(id, info)| serde_json::json!({"id": id, "status_info": info}))
                .collect();
            let rows = serde_json::Value::Array(rows);
            execute(
                db,
                "UPDATE kernels AS k SET status = 'CANCELLED', status_info = r.status_info, \
                 status_changed = $2, terminated_at = $2, \
                 status_history = COALESCE(k.status_history, '{}'::jsonb) || \
                 jsonb_build_object('CANCELLED', $3::text) \
                 FROM jsonb_to_recordset($1) AS r(id uuid, status_info text) \
                 WHERE k.session_id = r.id",
                vec![rows.clone().into(), now.into(), at.clone().into()],
            )
            .await
            .map_err(DbError::query(context()))?;
            execute(
                db,
                "UPDATE sessions AS s SET status = 'CANCELLED', status_info = r.status_info, \
                 terminated_at = $2, \
                 status_history = COALESCE(s.status_history, '{}'::jsonb) || \
                 jsonb_build_object('CANCELLED', $3::text) \
                 FROM jsonb_to_recordset($1) AS r(id uuid, status_info text) WHERE s.id = r.id",
                vec![rows.into(), now.into(), at.into()],
            )
            .await
            .map_err(DbError::query(context()))?;
        }
        self.txn.commit().await.map_err(DbError::query(context()))
    }
}

/// The concurrency of each of `access_keys` (every access key when `None`): its sessions (main
/// kernels) in a quota-occupying status, as `(others, SYSTEM)`; keys without any are absent.
async fn concurrency_counts(
    db: &impl ConnectionTrait,
    access_keys: Option<&BTreeSet<String>>,
) -> Result<HashMap<String, (u64, u64)>, sea_orm::DbErr> {
    let mut running = kernels::Entity::find()
        .select_only()
        .column(kernels::Column::AccessKey)
        .column(kernels::Column::SessionType)
        .column_as(Expr::col(kernels::Column::Id).count(), "count");
    if let Some(access_keys) = access_keys {
        running = running.filter(kernels::Column::AccessKey.is_in(access_keys.iter().cloned()));
    }
    let running: Vec<(Option<String>, SessionType, i64)> = running
        .filter(kernels::Column::ClusterRole.eq("main"))
        .filter(kernels::Column::Status.is_in(QUOTA_OCCUPYING_STATUSES))
        .group_by(kernels::Column::AccessKey)
        .group_by(kernels::Column::SessionType)
        .into_tuple()
        .all(db)
        .await?;
    let mut counts: HashMap<String, (u64, u64)> = HashMap::new();
    for (key, session_type, count) in running {
        let Some(key) = key else { continue };
        let count = u64::try_from(count).unwrap_or(0);
        let entry = counts.entry(key).or_default();
        if session_type == SessionType::System {
            entry.1 += count;
        } else {
            entry.0 += count;
        }
    }
    Ok(counts)
}

/// The concurrency each of `access_keys` uses now, `(others, SYSTEM)`, zeros included: what the
/// Redis counters `keypair.concurrency_used.{ak}` report.
pub async fn concurrency_used(
    db: &impl ConnectionTrait,
    access_keys: &BTreeSet<String>,
) -> Result<HashMap<String, (u64, u64)>, DbError> {
    let mut counts = concurrency_counts(db, Some(access_keys))
        .await
        .map_err(DbError::query(format!(
            "counting the running sessions of access keys {access_keys:?}"
        )))?;
    for key in access_keys {
        counts.entry(key.clone()).or_default();
    }
    Ok(counts)
}

/// The concurrency of every access key that has a session in a quota-occupying status,
/// `(others, SYSTEM)`: what `POST /resource/recalculate-usage` writes back to Redis.
pub async fn concurrency_used_by_all(
    db: &impl ConnectionTrait,
) -> Result<HashMap<String, (u64, u64)>, DbError> {
    concurrency_counts(db, None).await.map_err(DbError::query(
        "counting the running sessions of every access key".to_owned(),
    ))
}

/// How many ids one `IN (…)` list carries.
const CHUNK: usize = 5_000;

async fn execute(
    db: &DatabaseTransaction,
    sql: &str,
    values: Vec<sea_orm::Value>,
) -> Result<(), sea_orm::DbErr> {
    db.execute(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        values,
    ))
    .await
    .map(|_| ())
}

#[derive(Default)]
struct Quotas {
    occupying_kernels: Vec<OccupyingKernel>,
    pending_of_keys: Vec<(String, ResourceSlot)>,
    concurrency: HashMap<String, (u64, u64)>,
    keypair_policies: HashMap<String, keypair_resource_policies::Model>,
    user_main_policies: HashMap<Uuid, Option<keypair_resource_policies::Model>>,
    group_limits: HashMap<Uuid, Option<ResourceSlot>>,
    domain_limits: HashMap<String, Option<ResourceSlot>>,
}

/// A scheduled session's kernel and where it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelOnAgent {
    pub kernel_id: Uuid,
    pub agent_id: String,
    /// `agents.addr` of that agent.
    pub agent_addr: String,
}

/// A session the round scheduled.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduledWrite {
    pub session_id: Uuid,
    pub agent_ids: Vec<String>,
    pub kernels: Vec<KernelOnAgent>,
}

/// What a round writes to a session or kernel it could not schedule.
#[derive(Clone, Debug, PartialEq)]
pub struct SchedulerUpdate {
    pub id: Uuid,
    /// The new `status_info`; `None` keeps it.
    pub status_info: Option<String>,
    /// Merged into `status_data.scheduler`.
    pub scheduler_merge: Option<serde_json::Value>,
    /// Whether `status_data.scheduler.retries` grows by one.
    pub count_retry: bool,
    /// Replaces the whole `status_data` instead.
    pub replace_status_data: Option<serde_json::Value>,
}

/// Everything a round writes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoundWrites {
    pub group: String,
    pub now: DateTime<Utc>,
    /// The new `occupied_slots` of each agent the round reserved on.
    pub agent_occupied: Vec<(String, ResourceSlot)>,
    pub scheduled: Vec<ScheduledWrite>,
    pub session_updates: Vec<SchedulerUpdate>,
    pub kernel_updates: Vec<SchedulerUpdate>,
    /// Sessions cancelled with all their kernels, and their `status_info`.
    pub cancelled: Vec<(Uuid, String)>,
}

/// Sessions in SCHEDULED (and their kernels) become PREPARING in one transaction (the reference's
/// `prepare()` step 2); returns the sessions that did, with their kernels.
pub async fn take_scheduled(db: &DatabaseConnection) -> Result<Vec<PendingRows>, DbError> {
    let context = || "moving SCHEDULED sessions to PREPARING".to_owned();
    let txn = db.begin().await.map_err(DbError::query(context()))?;
    let now = Utc::now();
    let at = now.to_rfc3339_opts(SecondsFormat::Micros, false);
    let sessions = sessions::Entity::find()
        .filter(sessions::Column::Status.eq(SessionStatus::Scheduled))
        .order_by_asc(sessions::Column::CreatedAt)
        .lock_exclusive()
        .all(&txn)
        .await
        .map_err(DbError::query(context()))?;
    if sessions.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = sessions.iter().map(|session| session.id).collect();
    let mut kernels_of: HashMap<Uuid, Vec<kernels::Model>> = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        let rows = kernels::Entity::find()
            .filter(kernels::Column::SessionId.is_in(chunk.iter().copied()))
            .filter(kernels::Column::Status.eq(KernelStatus::Scheduled))
            .order_by_asc(kernels::Column::ClusterIdx)
            .lock_exclusive()
            .all(&txn)
            .await
            .map_err(DbError::query(context()))?;
        for row in rows {
            kernels_of.entry(row.session_id).or_default().push(row);
        }
    }
    let id_list = serde_json::Value::Array(ids.iter().map(|id| serde_json::json!(id)).collect());
    for table in ["kernels", "sessions"] {
        let key = if table == "kernels" {
            "session_id"
        } else {
            "id"
        };
        let changed = if table == "kernels" {
            ", status_changed = $2"
        } else {
            ""
        };
        execute(
            &txn,
            &format!(
                "UPDATE {table} AS t SET status = 'PREPARING', status_info = '', \
                 status_data = '{{}}'::jsonb{changed}, \
                 status_history = COALESCE(t.status_history, '{{}}'::jsonb) || \
                 jsonb_build_object('PREPARING', $3::text) \
                 WHERE t.{key} IN (SELECT value::uuid FROM jsonb_array_elements_text($1)) \
                 AND t.status = 'SCHEDULED'"
            ),
            vec![id_list.clone().into(), now.into(), at.clone().into()],
        )
        .await
        .map_err(DbError::query(context()))?;
    }
    txn.commit().await.map_err(DbError::query(context()))?;
    Ok(sessions
        .into_iter()
        .map(|mut session| {
            session.status = SessionStatus::Preparing;
            let mut kernels = kernels_of.remove(&session.id).unwrap_or_default();
            for kernel in &mut kernels {
                kernel.status = KernelStatus::Preparing;
            }
            kernels.sort_by_key(|kernel| kernel.cluster_role != "main");
            PendingRows { session, kernels }
        })
        .collect())
}

/// The agents' `occupied_slots` recomputed from their occupying kernels (`sum` adds slot maps):
/// what the server does at start, so that occupancy never drifts from the kernels.
pub async fn recompute_all_agent_occupancy(
    db: &DatabaseConnection,
    sum: impl Fn(&[ResourceSlot]) -> ResourceSlot,
) -> Result<usize, DbError> {
    let context = || "recomputing the agents' occupied slots".to_owned();
    let txn = db.begin().await.map_err(DbError::query(context()))?;
    let agent_ids: Vec<String> = agents::Entity::find()
        .select_only()
        .column(agents::Column::Id)
        .order_by_asc(agents::Column::Id)
        .lock_exclusive()
        .into_tuple()
        .all(&txn)
        .await
        .map_err(DbError::query(context()))?;
    let held: Vec<(Option<String>, ResourceSlot)> = kernels::Entity::find()
        .select_only()
        .column(kernels::Column::Agent)
        .column(kernels::Column::OccupiedSlots)
        .filter(kernels::Column::Status.is_in(AGENT_OCCUPYING_STATUSES))
        .into_tuple()
        .all(&txn)
        .await
        .map_err(DbError::query(context()))?;
    let mut by_agent: HashMap<String, Vec<ResourceSlot>> = HashMap::new();
    for (agent, slots) in held {
        if let Some(agent) = agent {
            by_agent.entry(agent).or_default().push(slots);
        }
    }
    for agent_id in &agent_ids {
        let held = by_agent.remove(agent_id).unwrap_or_default();
        agents::Entity::update_many()
            .col_expr(agents::Column::OccupiedSlots, Expr::value(sum(&held)))
            .filter(agents::Column::Id.eq(agent_id.as_str()))
            .exec(&txn)
            .await
            .map_err(DbError::query(context()))?;
    }
    txn.commit().await.map_err(DbError::query(context()))?;
    Ok(agent_ids.len())
}

/// The image rows of `(canonical name, architecture)` pairs, keyed the same way.
pub async fn images_by_name(
    db: &impl ConnectionTrait,
    names: &[(String, String)],
) -> Result<HashMap<(String, String), crate::entities::images::Model>, DbError> {
    use crate::entities::images;
    if names.is_empty() {
        return Ok(HashMap::new());
    }
    let mut wanted = sea_orm::Condition::any();
    for (name, architecture) in names {
        wanted = wanted.add(
            sea_orm::Condition::all()
                .add(images::Column::Name.eq(name.as_str()))
                .add(images::Column::Architecture.eq(architecture.as_str())),
        );
    }
    let rows = images::Entity::find()
        .filter(wanted)
        .all(db)
        .await
        .map_err(DbError::query(format!("reading images {names:?}")))?;
    Ok(rows
        .into_iter()
        .map(|row| ((row.name.clone(), row.architecture.clone()), row))
        .collect())
}

/// What starting a session needs of its owner: `(email, username)` of the user, and the idle
/// timeout of the access key's resource policy.
pub async fn session_owner(
    db: &impl ConnectionTrait,
    user_uuid: Uuid,
    access_key: &str,
) -> Result<(String, Option<String>, i64), DbError> {
    let context = || format!("reading user {user_uuid} and access key {access_key:?}");
    let user: Option<(String, Option<String>)> = users::Entity::find_by_id(user_uuid)
        .select_only()
        .column(users::Column::Email)
        .column(users::Column::Username)
        .into_tuple()
        .one(db)
        .await
        .map_err(DbError::query(context()))?;
    let (email, username) = user.unwrap_or_default();
    let idle_timeout: Option<i64> = keypairs::Entity::find_by_id(access_key.to_owned())
        .select_only()
        .column(keypair_resource_policies::Column::IdleTimeout)
        .join(
            sea_orm::JoinType::InnerJoin,
            keypairs::Relation::ResourcePolicy.def(),
        )
        .into_tuple()
        .one(db)
        .await
        .map_err(DbError::query(context()))?;
    Ok((email, username, idle_timeout.unwrap_or(0)))
}

/// A session that could not start (the reference's `failed-to-start`): every kernel and the
/// session CANCELLED with `status_data`, in one transaction with the occupancy of `agents`
/// recomputed (`sum` adds slot maps). Returns `false` (and changes nothing) when the session has
/// moved on meanwhile (it is no longer PREPARING or PULLING: destroyed, or already running).
pub async fn cancel_failed_start(
    db: &DatabaseConnection,
    session_id: Uuid,
    status_data: &serde_json::Value,
    agents: &[String],
    sum: impl Fn(&[ResourceSlot]) -> ResourceSlot,
) -> Result<bool, DbError> {
    let context = || format!("cancelling session {session_id}, which failed to start");
    let txn = db.begin().await.map_err(DbError::query(context()))?;
    let status: Option<SessionStatus> = crate::queries::session_lifecycle::locked_columns::<
        sessions::Entity,
        _,
    >(&txn, session_id, &[sessions::Column::Status])
    .await
    .map_err(DbError::query(context()))?;
    if !matches!(
        status,
        Some(SessionStatus::Preparing | SessionStatus::Pulling | SessionStatus::Scheduled)
    ) {
        return Ok(false);
    }
    let now = Utc::now();
    let at = now.to_rfc3339_opts(SecondsFormat::Micros, false);
    execute(
        &txn,
        "UPDATE kernels SET status = 'CANCELLED', status_info = 'failed-to-start', \
         status_data = $2, status_changed = $3, terminated_at = $3, \
         status_history = COALESCE(status_history, '{}'::jsonb) || \
         jsonb_build_object('CANCELLED', $4::text) WHERE session_id = $1",
        vec![
            session_id.into(),
            status_data.clone().into(),
            now.into(),
            at.clone().into(),
        ],
    )
    .await
    .map_err(DbError::query(context()))?;
    execute(
        &txn,
        "UPDATE sessions SET status = 'CANCELLED', status_info = 'failed-to-start', \
         status_data = $2, terminated_at = $3, \
         status_history = COALESCE(status_history, '{}'::jsonb) || \
         jsonb_build_object('CANCELLED', $4::text) WHERE id = $1",
        vec![
            session_id.into(),
            status_data.clone().into(),
            now.into(),
            at.into(),
        ],
    )
    .await
    .map_err(DbError::query(context()))?;
    let mut sorted = agents.to_vec();
    sorted.sort();
    sorted.dedup();
    for agent_id in &sorted {
        crate::queries::session_lifecycle::recompute_agent_occupancy(&txn, agent_id, &sum)
            .await
            .map_err(DbError::query(context()))?;
    }
    txn.commit().await.map_err(DbError::query(context()))?;
    Ok(true)
}
