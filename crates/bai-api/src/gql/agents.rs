//! Agents: `agent(agent_id)`, `agents(scaling_group, status)` and `agent_list(...)` for
//! superadmins, over the `agents` table with the live statistics the agents leave in Redis (stat
//! database, key = agent id, msgpack); `agent_summary` and `agent_summary_list` for everyone,
//! limited to the agents of the resource groups the caller's keypair may use. An agent's
//! kernels are its `compute_containers`.

use async_graphql::{ComplexObject, Context, ID, Object, SimpleObject};
use bai_db_models::entities::enums::AgentStatus;
use bai_db_models::entities::{ResourceSlot, agents};
use bai_db_models::queries::agent_listing::{self, AGENT_STATUSES, AgentScope, AgentView};
use bai_db_models::queries::{kernel_listing, scaling_groups};
use chrono::{DateTime, FixedOffset};
use sea_orm::ActiveEnum;

use super::common::{JsonString, error, gql, internal, require_superadmin};
use super::sessions::ComputeContainer;
use super::users::{invalid, list_error, page, scoped};
use crate::error::{ApiError, ErrorKind};

#[derive(Debug, Default)]
pub struct AgentQuery;

/// `status` as the reference reads it: `AgentStatus` member names, comma-separated where
/// `several` lists are taken (`agent_list`), a single name elsewhere.
pub(super) fn statuses(text: &str, several: bool) -> async_graphql::Result<Vec<AgentStatus>> {
    let names: Vec<&str> = if several {
        text.split(',').collect()
    } else {
        vec![text]
    };
    names
        .into_iter()
        .map(|name| {
            agent_listing::status_by_name(name).ok_or_else(|| {
                let known: Vec<&str> = AGENT_STATUSES.iter().map(|(name, _)| *name).collect();
                invalid(format!(
                    "unknown agent status {name:?} (one of {})",
                    known.join(", ")
                ))
            })
        })
        .collect()
}

fn scope(
    scaling_group: Option<String>,
    status: Option<&str>,
    several: bool,
) -> async_graphql::Result<AgentScope> {
    Ok(AgentScope {
        scaling_group,
        statuses: status.map(|text| statuses(text, several)).transpose()?,
        allowed_scaling_groups: None,
    })
}

/// A slot amount as a float (`cpu_slots`, ...); absent ones are `default`.
fn slot_float(slots: &ResourceSlot, slot: &str, default: Option<f64>) -> Option<f64> {
    match slots.get(slot) {
        Some(amount) => amount.to_string().parse().ok(),
        None => default,
    }
}

/// The `mem` slot in whole MiB (`mem_slots`, `used_mem_slots`).
fn mebibytes(slots: &ResourceSlot, default: Option<i32>) -> Option<i32> {
    match slot_float(slots, "mem", None) {
        Some(bytes) => Some((bytes / f64::from(1 << 20)).floor() as i32),
        None => default,
    }
}

/// An agent as the reference's `Agent` type shows it.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(complex, rename_fields = "snake_case")]
pub struct Agent {
    pub id: Option<ID>,
    pub status: Option<String>,
    pub status_changed: Option<DateTime<FixedOffset>>,
    pub region: Option<String>,
    pub scaling_group: Option<String>,
    pub schedulable: Option<bool>,
    pub available_slots: Option<JsonString>,
    pub occupied_slots: Option<JsonString>,
    pub addr: Option<String>,
    pub architecture: Option<String>,
    pub first_contact: Option<DateTime<FixedOffset>>,
    pub lost_at: Option<DateTime<FixedOffset>>,
    pub version: Option<String>,
    pub compute_plugins: Option<JsonString>,
    pub auto_terminate_abusing_kernel: Option<bool>,
    /// `{"agent": {"auto_terminate_abusing_kernel": ...}}`.
    pub local_config: Option<JsonString>,
    /// Legacy: the available `mem` in MiB.
    pub mem_slots: Option<i32>,
    pub cpu_slots: Option<f64>,
    pub gpu_slots: Option<f64>,
    pub tpu_slots: Option<f64>,
    pub used_mem_slots: Option<i32>,
    pub used_cpu_slots: Option<f64>,
    pub used_gpu_slots: Option<f64>,
    pub used_tpu_slots: Option<f64>,
}

impl Agent {
    fn from_row(row: agents::Model) -> Agent {
        let available = &row.available_slots;
        let occupied = &row.occupied_slots;
        Agent {
            mem_slots: mebibytes(available, None),
            cpu_slots: slot_float(available, "cpu", None),
            gpu_slots: slot_float(available, "cuda.device", Some(0.0)),
            tpu_slots: slot_float(available, "tpu.device", Some(0.0)),
            used_mem_slots: mebibytes(occupied, Some(0)),
            used_cpu_slots: slot_float(occupied, "cpu", Some(0.0)),
            used_gpu_slots: slot_float(occupied, "cuda.device", Some(0.0)),
            used_tpu_slots: slot_float(occupied, "tpu.device", Some(0.0)),
            available_slots: Some(JsonString(available.to_json())),
            occupied_slots: Some(JsonString(occupied.to_json())),
            local_config: Some(JsonString(serde_json::json!({
                "agent": {"auto_terminate_abusing_kernel": row.auto_terminate_abusing_kernel},
            }))),
            id: Some(ID(row.id)),
            status: Some(row.status.to_value()),
            status_changed: row.status_changed,
            region: Some(row.region),
            scaling_group: Some(row.scaling_group),
            schedulable: Some(row.schedulable),
            addr: Some(row.addr),
            architecture: Some(row.architecture),
            first_contact: row.first_contact,
            lost_at: row.lost_at,
            version: Some(row.version),
            compute_plugins: Some(JsonString(row.compute_plugins)),
            auto_terminate_abusing_kernel: Some(row.auto_terminate_abusing_kernel),
        }
    }

    fn agent_id(&self) -> &str {
        self.id.as_ref().map_or("", |id| id.as_str())
    }

    /// The agent's live statistics (Redis stat database, key = agent id, msgpack); `None` when
    /// there are none or they cannot be read.
    async fn live_stats(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<serde_json::Value>> {
        gql(ctx)
            .api
            .redis()
            .stat
            .live_stat(self.agent_id())
            .await
            .map_err(|source| internal("reading the live statistics of an agent", &source))
    }

    /// `node.<metric>.<key>` of the live statistics as a float, where the agent writes decimals
    /// as strings.
    async fn node_metric(
        &self,
        ctx: &Context<'_>,
        metric: &str,
        key: &str,
    ) -> async_graphql::Result<Option<f64>> {
        let stats = self.live_stats(ctx).await?;
        Ok(
            stats.and_then(|stats| match stats.get("node")?.get(metric)?.get(key)? {
                serde_json::Value::String(text) => text.parse().ok(),
                serde_json::Value::Number(number) => number.as_f64(),
                _ => None,
            }),
        )
    }
}

#[ComplexObject(rename_fields = "snake_case", rename_args = "snake_case")]
impl Agent {
    /// What the agent reports of its devices (`gather_hwinfo` over the agent RPC:
    /// `{device: {status, status_info, metadata}}`); null unless the agent is ALIVE (or when
    /// this server was started without agent RPC).
    async fn hardware_metadata(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<JsonString>> {
        if self.status.as_deref() != Some("ALIVE") {
            return Ok(None);
        }
        let Some(cache) = gql(ctx).api.agent_rpc() else {
            return Ok(None);
        };
        let agent_id = self.agent_id();
        let failed = |error: &dyn std::fmt::Display| {
            tracing::warn!("Agent.hardware_metadata: {error}");
            async_graphql::Error::new(format!("agent RPC failed: {error}"))
        };
        let hwinfo = cache
            .call(agent_id, |connection| async move {
                connection.gather_hwinfo().await
            })
            .await
            .map_err(|error| failed(&error))?;
        Ok(Some(JsonString(bai_events::to_json(&hwinfo))))
    }

    /// The live statistics as the agent last reported them; null when there are none.
    async fn live_stat(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<JsonString>> {
        Ok(self.live_stats(ctx).await?.map(JsonString))
    }

    /// The node's CPU use in percent from the live statistics; 0 without them, as in the
    /// reference.
    async fn cpu_cur_pct(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<f64>> {
        Ok(Some(
            self.node_metric(ctx, "cpu_util", "pct")
                .await?
                .unwrap_or(0.0),
        ))
    }

    /// The node's memory use in bytes from the live statistics; 0 without them, as in the
    /// reference.
    async fn mem_cur_bytes(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<f64>> {
        Ok(Some(
            self.node_metric(ctx, "mem", "current")
                .await?
                .unwrap_or(0.0),
        ))
    }

    /// The agent's kernels in any of the comma-separated `status` names, or, without `status`,
    /// those that still hold its resources (the reference declares the field but always answers
    /// null).
    async fn compute_containers(
        &self,
        ctx: &Context<'_>,
        status: Option<String>,
    ) -> async_graphql::Result<Option<Vec<Option<ComputeContainer>>>> {
        let statuses = status
            .map(|names| {
                names
                    .split(',')
                    .map(|name| {
                        kernel_listing::status_by_name(name.trim())
                            .ok_or_else(|| invalid(format!("{name:?} is not a valid KernelStatus")))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        let kernels =
            kernel_listing::on_agent(gql(ctx).api.db(), self.agent_id(), statuses.as_deref())
                .await
                .map_err(|source| internal("reading the kernels of an agent", &source))?;
        Ok(Some(ComputeContainer::for_caller(ctx, kernels)))
    }

    /// The agent's containers (from the agents' Redis statistics); 0 when unset.
    async fn container_count(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<i32>> {
        let count = gql(ctx)
            .api
            .redis()
            .stat
            .container_count(self.agent_id())
            .await
            .map_err(|source| internal("reading the container count of an agent", &source))?;
        Ok(Some(i32::try_from(count).unwrap_or(i32::MAX)))
    }
}

/// One page of agents and how many there are in all.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct AgentList {
    pub items: Vec<Option<Agent>>,
    pub total_count: i64,
}

/// What everyone may see of an agent (the reference's `AgentSummary`).
#[derive(Clone, Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct AgentSummary {
    pub id: Option<ID>,
    pub status: Option<String>,
    pub scaling_group: Option<String>,
    pub schedulable: Option<bool>,
    pub available_slots: Option<JsonString>,
    pub occupied_slots: Option<JsonString>,
    pub architecture: Option<String>,
}

impl AgentSummary {
    fn from_row(row: agents::Model) -> AgentSummary {
        AgentSummary {
            id: Some(ID(row.id)),
            status: Some(row.status.to_value()),
            scaling_group: Some(row.scaling_group),
            schedulable: Some(row.schedulable),
            available_slots: Some(JsonString(row.available_slots.to_json())),
            occupied_slots: Some(JsonString(row.occupied_slots.to_json())),
            architecture: Some(row.architecture),
        }
    }
}

/// One page of agent summaries and how many there are in all.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct AgentSummaryList {
    pub items: Vec<Option<AgentSummary>>,
    pub total_count: i64,
}

/// The summaries' scope: refused when the manager hides agents (`[manager] hide-agents`), else
/// the agents of the resource groups the caller's keypair may use (within `scaling_group`, and
/// with the single `status`, when given).
async fn summary_scope(
    ctx: &Context<'_>,
    scaling_group: Option<String>,
    status: Option<&str>,
) -> async_graphql::Result<AgentScope> {
    let context = gql(ctx);
    if context.api.config().manager.hide_agents {
        return Err(error(ApiError::new(ErrorKind::ObjectNotFound("agent"))));
    }
    let own_key = context.caller.access_key().to_owned();
    let scoped = scoped(ctx, None, None, &own_key, |a, b| a == b, true)?;
    let access_key = scoped.key.unwrap_or(own_key);
    let allowed = scaling_groups::allowed_for_keypair(
        context.api.db(),
        &access_key,
        scoped.domain_name.as_deref(),
    )
    .await
    .map_err(|source| internal("reading the scaling groups of a keypair", &source))?;
    let mut scope = scope(scaling_group, status, false)?;
    scope.allowed_scaling_groups = Some(allowed.into_iter().map(|group| group.name).collect());
    Ok(scope)
}

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl AgentQuery {
    /// The agent `agent_id`, whatever its status.
    async fn agent(
        &self,
        ctx: &Context<'_>,
        agent_id: String,
    ) -> async_graphql::Result<Option<Agent>> {
        require_superadmin(ctx)?;
        let row = agent_listing::by_id(gql(ctx).api.db(), &agent_id, &AgentScope::default())
            .await
            .map_err(|source| internal("reading an agent", &source))?;
        Ok(row.map(Agent::from_row))
    }

    /// One page of the agents of `scaling_group` with one of the comma-separated `status`es
    /// (all when absent) matching `filter`, ordered by `order`.
    #[allow(clippy::too_many_arguments)]
    async fn agent_list(
        &self,
        ctx: &Context<'_>,
        limit: i32,
        offset: i32,
        filter: Option<String>,
        order: Option<String>,
        scaling_group: Option<String>,
        status: Option<String>,
    ) -> async_graphql::Result<Option<AgentList>> {
        require_superadmin(ctx)?;
        let scope = scope(scaling_group, status.as_deref(), true)?;
        let page = page(limit, offset)?;
        let db = gql(ctx).api.db();
        let total_count = agent_listing::count(db, AgentView::Full, &scope, filter.as_deref())
            .await
            .map_err(|failure| list_error("counting agents", failure))?;
        let rows = agent_listing::list(
            db,
            AgentView::Full,
            &scope,
            filter.as_deref(),
            order.as_deref(),
            Some(page),
        )
        .await
        .map_err(|failure| list_error("listing agents", failure))?;
        Ok(Some(AgentList {
            items: rows
                .into_iter()
                .map(|row| Some(Agent::from_row(row)))
                .collect(),
            total_count: i64::try_from(total_count).unwrap_or(i64::MAX),
        }))
    }

    /// Every agent of `scaling_group` with `status` (a single name; all when absent).
    async fn agents(
        &self,
        ctx: &Context<'_>,
        scaling_group: Option<String>,
        status: Option<String>,
    ) -> async_graphql::Result<Option<Vec<Option<Agent>>>> {
        require_superadmin(ctx)?;
        let scope = scope(scaling_group, status.as_deref(), false)?;
        let rows =
            agent_listing::list(gql(ctx).api.db(), AgentView::Full, &scope, None, None, None)
                .await
                .map_err(|failure| list_error("listing agents", failure))?;
        Ok(Some(
            rows.into_iter()
                .map(|row| Some(Agent::from_row(row)))
                .collect(),
        ))
    }

    /// The agent `agent_id`, if it serves a resource group the caller may use.
    async fn agent_summary(
        &self,
        ctx: &Context<'_>,
        agent_id: String,
    ) -> async_graphql::Result<Option<AgentSummary>> {
        let scope = summary_scope(ctx, None, None).await?;
        let row = agent_listing::by_id(gql(ctx).api.db(), &agent_id, &scope)
            .await
            .map_err(|source| internal("reading an agent", &source))?;
        Ok(row.map(AgentSummary::from_row))
    }

    /// One page of the agents of the resource groups the caller may use, narrowed as
    /// `agent_list` (with a single `status`).
    #[allow(clippy::too_many_arguments)]
    async fn agent_summary_list(
        &self,
        ctx: &Context<'_>,
        limit: i32,
        offset: i32,
        filter: Option<String>,
        order: Option<String>,
        scaling_group: Option<String>,
        status: Option<String>,
    ) -> async_graphql::Result<Option<AgentSummaryList>> {
        let scope = summary_scope(ctx, scaling_group, status.as_deref()).await?;
        let page = page(limit, offset)?;
        let db = gql(ctx).api.db();
        let total_count = agent_listing::count(db, AgentView::Summary, &scope, filter.as_deref())
            .await
            .map_err(|failure| list_error("counting agents", failure))?;
        let rows = agent_listing::list(
            db,
            AgentView::Summary,
            &scope,
            filter.as_deref(),
            order.as_deref(),
            Some(page),
        )
        .await
        .map_err(|failure| list_error("listing agents", failure))?;
        Ok(Some(AgentSummaryList {
            items: rows
                .into_iter()
                .map(|row| Some(AgentSummary::from_row(row)))
                .collect(),
            total_count: i64::try_from(total_count).unwrap_or(i64::MAX),
        }))
    }
}
