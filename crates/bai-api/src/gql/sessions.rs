//! Compute sessions: `compute_session_list(limit, offset, filter, order, domain_name, group_id,
//! access_key, status)` and `compute_session(id)` over `sessions`, with their kernels as
//! `containers`; and the kernels on their own: `compute_container(id)` and
//! `compute_container_list(limit, offset, filter, order, session_id, role)`.
//!
//! Scoped as the reference's `scoped_query(user_key="access_key")`: superadmins see every
//! session, domain admins their domain's, users their own; monitors are refused. `status` is a
//! comma-separated list of `SessionStatus` names.
//!
//! What only agents know comes from Redis as in the reference (live statistics, abuse reports,
//! inference metrics, the idle checkers' reports as `idle_checks`), and `commit_status` (asked
//! of the agents over RPC) is null.

use async_graphql::{Context, ID, Object, SimpleObject};
use bai_db_models::entities::kernels;
use bai_db_models::minilang::parse_timestamp;
use bai_db_models::queries::image_listing;
use bai_db_models::queries::kernel_listing::{self, KernelScope};
use bai_db_models::queries::session_listing::{self, SessionRow, SessionScope};
use chrono::{DateTime, FixedOffset};
use sea_orm::ActiveEnum;
use serde_json::{Map, Value as Json, json};
use uuid::Uuid;

use super::common::{BigInt, JsonString, gql, internal};
use super::images::ImageNode;
use super::users::{invalid, list_error, page, scoped};

#[derive(Debug, Default)]
pub struct SessionQuery;

/// A session as the reference's `ComputeSession` type shows it.
#[derive(Clone, Debug)]
pub struct ComputeSession {
    row: SessionRow,
    /// Whether agent names and addresses are hidden from the caller.
    hide_agents: bool,
    /// The caller's scope, which also bounds `dependencies`.
    scope: SessionScope,
}

/// One page of sessions and how many there are in all.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct ComputeSessionList {
    pub items: Vec<Option<ComputeSession>>,
    pub total_count: i32,
}

/// A kernel (container) of a session as the reference's `ComputeContainer` type shows it.
#[derive(Clone, Debug)]
pub struct ComputeContainer {
    kernel: kernels::Model,
    hide_agents: bool,
}

/// One page of a session's containers and how many there are in all.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct ComputeContainerList {
    pub items: Vec<Option<ComputeContainer>>,
    pub total_count: i32,
}

/// The time a status history (`{"RUNNING": "2024-...", ...}`) says `status` was entered.
fn entered(history: Option<&Json>, status: &str) -> Option<DateTime<FixedOffset>> {
    history?.get(status)?.as_str().and_then(parse_timestamp)
}

fn json(value: Option<&Json>) -> Option<JsonString> {
    value.cloned().map(JsonString)
}

fn strings(values: Option<&Vec<String>>) -> Option<Vec<Option<String>>> {
    values.map(|values| values.iter().cloned().map(Some).collect())
}

impl ComputeSession {
    fn main_kernel(&self) -> Option<&kernels::Model> {
        self.row.main_kernel()
    }

    fn container_views(&self) -> Vec<ComputeContainer> {
        self.row
            .kernels
            .iter()
            .map(|kernel| ComputeContainer {
                kernel: kernel.clone(),
                hide_agents: self.hide_agents,
            })
            .collect()
    }

    /// The mounts as stored (objects with `name`, `vfid`, ...).
    fn mount_objects(&self) -> Vec<Json> {
        match &self.row.session.vfolder_mounts {
            Some(Json::Array(mounts)) => mounts.clone(),
            _ => Vec::new(),
        }
    }
}

#[Object(rename_fields = "snake_case")]
impl ComputeSession {
    async fn id(&self) -> Option<ID> {
        Some(ID(self.row.session.id.to_string()))
    }

    /// The same as `id`.
    async fn session_id(&self) -> Option<Uuid> {
        Some(self.row.session.id)
    }

    /// The kernel whose cluster role is `main`; null when the session has none.
    async fn main_kernel_id(&self) -> Option<Uuid> {
        self.main_kernel().map(|kernel| kernel.id)
    }

    async fn tag(&self) -> Option<String> {
        self.row.session.tag.clone()
    }

    async fn name(&self) -> Option<String> {
        self.row.session.name.clone()
    }

    /// `INTERACTIVE`, `BATCH`, `INFERENCE` or `SYSTEM`.
    #[graphql(name = "type")]
    async fn session_type(&self) -> Option<String> {
        Some(self.row.session.session_type.to_value())
    }

    /// Legacy: the session type again.
    async fn main_kernel_role(&self) -> Option<String> {
        Some(self.row.session.session_type.to_value())
    }

    /// The main container's image (canonical name); empty when the session names none.
    async fn image(&self) -> Option<String> {
        Some(
            self.row
                .session
                .images
                .as_ref()
                .and_then(|images| images.first().cloned())
                .unwrap_or_default(),
        )
    }

    async fn architecture(&self) -> Option<String> {
        self.main_kernel()
            .and_then(|kernel| kernel.architecture.clone())
    }

    async fn registry(&self) -> Option<String> {
        self.main_kernel()
            .and_then(|kernel| kernel.registry.clone())
    }

    /// Not recorded (null, as in the reference).
    async fn cluster_template(&self) -> Option<String> {
        None
    }

    async fn cluster_mode(&self) -> Option<String> {
        Some(self.row.session.cluster_mode.clone())
    }

    async fn cluster_size(&self) -> Option<i32> {
        Some(self.row.session.cluster_size)
    }

    async fn domain_name(&self) -> Option<String> {
        Some(self.row.session.domain_name.clone())
    }

    async fn group_name(&self) -> Option<String> {
        self.row.group_name.clone()
    }

    async fn group_id(&self) -> Option<Uuid> {
        Some(self.row.session.group_id)
    }

    async fn user_email(&self) -> Option<String> {
        self.row.owner.as_ref().map(|owner| owner.email.clone())
    }

    async fn full_name(&self) -> Option<String> {
        self.row
            .owner
            .as_ref()
            .and_then(|owner| owner.full_name.clone())
    }

    async fn user_id(&self) -> Option<Uuid> {
        Some(self.row.session.user_uuid)
    }

    async fn access_key(&self) -> Option<String> {
        self.row.session.access_key.clone()
    }

    /// Not recorded (null, as in the reference).
    async fn created_user_email(&self) -> Option<String> {
        None
    }

    /// Not recorded (null, as in the reference).
    async fn created_user_id(&self) -> Option<Uuid> {
        None
    }

    async fn status(&self) -> Option<String> {
        Some(self.row.session.status.to_value())
    }

    /// When the session entered its current status (from its status history).
    async fn status_changed(&self) -> Option<DateTime<FixedOffset>> {
        entered(
            self.row.session.status_history.as_ref(),
            &self.row.session.status.to_value(),
        )
    }

    async fn status_info(&self) -> Option<String> {
        self.row.session.status_info.clone()
    }

    async fn status_data(&self) -> Option<JsonString> {
        json(self.row.session.status_data.as_ref())
    }

    /// Status name -> when it was entered; `{}` when none is recorded.
    async fn status_history(&self) -> Option<JsonString> {
        Some(JsonString(
            self.row
                .session
                .status_history
                .clone()
                .unwrap_or_else(|| json!({})),
        ))
    }

    async fn created_at(&self) -> Option<DateTime<FixedOffset>> {
        self.row.session.created_at
    }

    async fn terminated_at(&self) -> Option<DateTime<FixedOffset>> {
        self.row.session.terminated_at
    }

    async fn starts_at(&self) -> Option<DateTime<FixedOffset>> {
        self.row.session.starts_at
    }

    async fn scheduled_at(&self) -> Option<DateTime<FixedOffset>> {
        entered(self.row.session.status_history.as_ref(), "SCHEDULED")
    }

    async fn startup_command(&self) -> Option<String> {
        self.row.session.startup_command.clone()
    }

    async fn result(&self) -> Option<String> {
        Some(self.row.session.result.to_value())
    }

    /// Whether the main container is being committed to an image: the agents know, over RPC,
    /// which this manager does not speak yet; null.
    async fn commit_status(&self) -> Option<String> {
        None
    }

    /// Each container's abuse report (Redis), null where there is none.
    async fn abusing_reports(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<Vec<Option<JsonString>>>> {
        let mut reports = Vec::with_capacity(self.row.kernels.len());
        for container in self.container_views() {
            let report = if self.row.session.access_key.is_some() {
                container.abuse_report(ctx).await?
            } else {
                None
            };
            reports.push(report);
        }
        Ok(Some(reports))
    }

    /// Idle checker name -> remaining time, its kind and details (`get_idle_check_report`).
    async fn idle_checks(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<JsonString>> {
        let api = &gql(ctx).api;
        let report =
            bai_sessions::idle_check_report(api.etcd(), &api.redis().live, self.row.session.id)
                .await
                .map_err(|source| internal("reading the idle checks of a session", &source))?;
        Ok(Some(JsonString(report.to_json())))
    }

    async fn agent_ids(&self) -> Option<Vec<Option<String>>> {
        strings(self.row.session.agent_ids.as_ref())
    }

    /// Legacy name of `agent_ids`.
    async fn agents(&self) -> Option<Vec<Option<String>>> {
        strings(self.row.session.agent_ids.as_ref())
    }

    /// Container hostname -> the container's resource options.
    async fn resource_opts(&self) -> Option<JsonString> {
        let options: Map<String, Json> = self
            .row
            .kernels
            .iter()
            .map(|kernel| {
                (
                    kernel.cluster_hostname.clone(),
                    kernel.resource_opts.clone().unwrap_or(Json::Null),
                )
            })
            .collect();
        Some(JsonString(Json::Object(options)))
    }

    async fn scaling_group(&self) -> Option<String> {
        self.row.session.scaling_group_name.clone()
    }

    /// The main container's service ports.
    async fn service_ports(&self) -> Option<JsonString> {
        json(
            self.main_kernel()
                .and_then(|kernel| kernel.service_ports.as_ref()),
        )
    }

    /// The names of the mounted vfolders.
    async fn mounts(&self) -> Option<Vec<Option<String>>> {
        Some(
            self.mount_objects()
                .iter()
                .map(|mount| mount.get("name").and_then(Json::as_str).map(str::to_owned))
                .collect(),
        )
    }

    /// Each mount as its JSON text.
    async fn vfolder_mounts(&self) -> Option<Vec<Option<String>>> {
        Some(
            self.mount_objects()
                .iter()
                .map(|mount| Some(mount.to_string()))
                .collect(),
        )
    }

    async fn occupying_slots(&self) -> Option<JsonString> {
        Some(JsonString(self.row.session.occupying_slots.to_json()))
    }

    /// Legacy name of `occupying_slots`.
    async fn occupied_slots(&self) -> Option<JsonString> {
        Some(JsonString(self.row.session.occupying_slots.to_json()))
    }

    async fn requested_slots(&self) -> Option<JsonString> {
        Some(JsonString(self.row.session.requested_slots.to_json()))
    }

    async fn num_queries(&self) -> Option<BigInt> {
        self.row.session.num_queries.map(BigInt)
    }

    /// Every kernel of the session, by cluster index.
    async fn containers(&self) -> Option<Vec<Option<ComputeContainer>>> {
        Some(self.container_views().into_iter().map(Some).collect())
    }

    /// The sessions this one depends on (within the caller's scope).
    async fn dependencies(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<Vec<Option<ComputeSession>>>> {
        let db = gql(ctx).api.db();
        let failed = |source| internal("reading the dependencies of a session", &source);
        let ids = session_listing::dependencies_of(db, &[self.row.session.id])
            .await
            .map_err(failed)?
            .remove(&self.row.session.id)
            .unwrap_or_default();
        let rows = session_listing::by_ids(db, &ids, &self.scope)
            .await
            .map_err(failed)?;
        Ok(Some(
            rows.into_iter()
                .map(|row| {
                    Some(ComputeSession {
                        row,
                        hide_agents: self.hide_agents,
                        scope: self.scope.clone(),
                    })
                })
                .collect(),
        ))
    }

    /// Requests served and the last response time of an inference session (Redis live
    /// `session.{id}.requests`, `session.{id}.last_response_time`); zeros when unrecorded.
    async fn inference_metrics(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<JsonString>> {
        let metrics = gql(ctx)
            .api
            .redis()
            .live
            .inference_metrics(self.row.session.id)
            .await
            .map_err(|source| internal("reading the inference metrics of a session", &source))?;
        Ok(Some(JsonString(json!({
            "requests": metrics.requests,
            "last_response_ms": metrics.last_response_ms,
        }))))
    }
}

impl ComputeContainer {
    /// `kernels` as the caller sees them: agent names, addresses and container ids hidden from
    /// non-superadmins when the manager hides agents.
    pub(super) fn for_caller(ctx: &Context<'_>, kernels: Vec<kernels::Model>) -> Vec<Option<Self>> {
        let hide_agents = hides_agents(ctx);
        kernels
            .into_iter()
            .map(|kernel| {
                Some(ComputeContainer {
                    kernel,
                    hide_agents,
                })
            })
            .collect()
    }

    /// The kernel's abuse report (Redis stat hash `abuse_report`), as the reference shapes it.
    async fn abuse_report(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<JsonString>> {
        let kernel_id = self.kernel.id.to_string();
        let report = gql(ctx)
            .api
            .redis()
            .stat
            .abuse_report(&kernel_id)
            .await
            .map_err(|source| internal("reading the abuse report of a kernel", &source))?;
        Ok(report.map(|report| JsonString(json!({"kernel": kernel_id, "abuse_report": report}))))
    }

    /// `value` unless agents are hidden from the caller.
    fn agent_detail(&self, value: &Option<String>) -> Option<String> {
        if self.hide_agents {
            None
        } else {
            value.clone()
        }
    }
}

#[Object(rename_fields = "snake_case")]
impl ComputeContainer {
    async fn id(&self) -> Option<ID> {
        Some(ID(self.kernel.id.to_string()))
    }

    /// Legacy name of `cluster_idx`.
    async fn idx(&self) -> Option<i32> {
        Some(self.kernel.cluster_idx)
    }

    /// Legacy name of `cluster_role`.
    async fn role(&self) -> Option<String> {
        Some(self.kernel.cluster_role.clone())
    }

    /// Legacy name of `cluster_hostname`.
    async fn hostname(&self) -> Option<String> {
        Some(self.kernel.cluster_hostname.clone())
    }

    /// Added in 24.03.1.
    async fn kernel_id(&self) -> Option<Uuid> {
        Some(self.kernel.id)
    }

    async fn cluster_idx(&self) -> Option<i32> {
        Some(self.kernel.cluster_idx)
    }

    async fn local_rank(&self) -> Option<i32> {
        Some(self.kernel.local_rank)
    }

    async fn cluster_role(&self) -> Option<String> {
        Some(self.kernel.cluster_role.clone())
    }

    async fn cluster_hostname(&self) -> Option<String> {
        Some(self.kernel.cluster_hostname.clone())
    }

    async fn session_id(&self) -> Option<Uuid> {
        Some(self.kernel.session_id)
    }

    #[graphql(deprecation = "Deprecated since 24.03.0; use image_object.name")]
    async fn image(&self) -> Option<String> {
        self.kernel.image.clone()
    }

    /// Added in 24.03.0.
    async fn image_object(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<ImageNode>> {
        let (Some(name), Some(architecture)) = (&self.kernel.image, &self.kernel.architecture)
        else {
            return Ok(None);
        };
        let listing = image_listing::by_name(gql(ctx).api.db(), name, architecture)
            .await
            .map_err(|source| internal("reading the image of a kernel", &source))?;
        Ok(listing.map(ImageNode::from_listing))
    }

    async fn architecture(&self) -> Option<String> {
        self.kernel.architecture.clone()
    }

    async fn registry(&self) -> Option<String> {
        self.kernel.registry.clone()
    }

    async fn status(&self) -> Option<String> {
        Some(self.kernel.status.to_value())
    }

    async fn status_changed(&self) -> Option<DateTime<FixedOffset>> {
        self.kernel.status_changed
    }

    async fn status_info(&self) -> Option<String> {
        self.kernel.status_info.clone()
    }

    async fn status_data(&self) -> Option<JsonString> {
        json(self.kernel.status_data.as_ref())
    }

    async fn created_at(&self) -> Option<DateTime<FixedOffset>> {
        self.kernel.created_at
    }

    async fn terminated_at(&self) -> Option<DateTime<FixedOffset>> {
        self.kernel.terminated_at
    }

    async fn starts_at(&self) -> Option<DateTime<FixedOffset>> {
        self.kernel.starts_at
    }

    async fn scheduled_at(&self) -> Option<DateTime<FixedOffset>> {
        entered(self.kernel.status_history.as_ref(), "SCHEDULED")
    }

    async fn abusing_report(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<JsonString>> {
        self.abuse_report(ctx).await
    }

    /// Hidden (null) from non-superadmins when the manager hides agents.
    async fn agent(&self) -> Option<String> {
        self.agent_detail(&self.kernel.agent)
    }

    /// Hidden (null) from non-superadmins when the manager hides agents.
    async fn agent_addr(&self) -> Option<String> {
        self.agent_detail(&self.kernel.agent_addr)
    }

    /// Hidden (null) from non-superadmins when the manager hides agents.
    async fn container_id(&self) -> Option<String> {
        self.agent_detail(&self.kernel.container_id)
    }

    async fn resource_opts(&self) -> Option<JsonString> {
        json(self.kernel.resource_opts.as_ref())
    }

    async fn occupied_slots(&self) -> Option<JsonString> {
        Some(JsonString(self.kernel.occupied_slots.to_json()))
    }

    /// The agent's live statistics of the kernel (Redis stat, key = kernel id, msgpack); null
    /// when there are none.
    async fn live_stat(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<JsonString>> {
        let stats = gql(ctx)
            .api
            .redis()
            .stat
            .live_stat(&self.kernel.id.to_string())
            .await
            .map_err(|source| internal("reading the live statistics of a kernel", &source))?;
        Ok(stats.map(JsonString))
    }

    /// The same as `live_stat`, as in the reference.
    async fn last_stat(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<JsonString>> {
        self.live_stat(ctx).await
    }

    async fn preopen_ports(&self) -> Option<Vec<Option<i32>>> {
        self.kernel
            .preopen_ports
            .as_ref()
            .map(|ports| ports.iter().copied().map(Some).collect())
    }
}

/// The caller's session scope (`scoped_query(user_key="access_key")`), with `status` read as a
/// comma-separated list of `SessionStatus` names.
fn list_scope(
    ctx: &Context<'_>,
    domain_name: Option<String>,
    group_id: Option<String>,
    access_key: Option<String>,
    status: Option<String>,
) -> async_graphql::Result<SessionScope> {
    let caller = &gql(ctx).caller;
    let scoped = scoped(
        ctx,
        domain_name,
        access_key,
        caller.access_key(),
        |a, b| a == b,
        false,
    )?;
    let group_id = group_id
        .map(|id| {
            Uuid::parse_str(&id).map_err(|_| invalid(format!("group_id {id:?} is not a UUID")))
        })
        .transpose()?;
    let statuses = status
        .map(|statuses| {
            statuses
                .split(',')
                .map(|name| {
                    session_listing::status_from_name(name.trim())
                        .ok_or_else(|| invalid(format!("{name:?} is not a valid SessionStatus")))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    Ok(SessionScope {
        domain_name: scoped.domain_name,
        group_id,
        access_key: scoped.key,
        statuses,
    })
}

/// Whether agent details are hidden from the caller (`manager.hide-agents`, superadmins excepted).
fn hides_agents(ctx: &Context<'_>) -> bool {
    let context = gql(ctx);
    !context.caller.is_superadmin() && context.api.config().manager.hide_agents
}

/// The caller's kernel scope (`scoped_query(user_key="access_key")` with no arguments to narrow).
fn kernel_scope(ctx: &Context<'_>) -> async_graphql::Result<KernelScope> {
    let scoped = scoped(
        ctx,
        None,
        None,
        gql(ctx).caller.access_key(),
        |a, b| a == b,
        false,
    )?;
    Ok(KernelScope {
        domain_name: scoped.domain_name,
        access_key: scoped.key,
    })
}

/// `rows` as the caller sees them; their dependencies are bounded by the caller's domain and
/// access key only (a dependency may be in any status and project).
fn sessions_of(
    ctx: &Context<'_>,
    rows: Vec<SessionRow>,
    scope: &SessionScope,
) -> Vec<Option<ComputeSession>> {
    let hide_agents = hides_agents(ctx);
    let scope = SessionScope {
        statuses: None,
        group_id: None,
        ..scope.clone()
    };
    rows.into_iter()
        .map(|row| {
            Some(ComputeSession {
                row,
                hide_agents,
                scope: scope.clone(),
            })
        })
        .collect()
}

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl SessionQuery {
    /// The session `id`, if it is in the caller's scope.
    async fn compute_session(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
    ) -> async_graphql::Result<Option<ComputeSession>> {
        let scope = list_scope(ctx, None, None, None, None)?;
        let rows = session_listing::by_ids(gql(ctx).api.db(), &[id], &scope)
            .await
            .map_err(|source| internal("reading a session", &source))?;
        Ok(sessions_of(ctx, rows, &scope).pop().flatten())
    }

    /// One page of the sessions in scope matching `status` and `filter`, ordered by `order`
    /// (default: most recently created or terminated first).
    #[allow(clippy::too_many_arguments)]
    async fn compute_session_list(
        &self,
        ctx: &Context<'_>,
        limit: i32,
        offset: i32,
        filter: Option<String>,
        order: Option<String>,
        domain_name: Option<String>,
        group_id: Option<String>,
        access_key: Option<String>,
        status: Option<String>,
    ) -> async_graphql::Result<Option<ComputeSessionList>> {
        let scope = list_scope(ctx, domain_name, group_id, access_key, status)?;
        let page = page(limit, offset)?;
        let db = gql(ctx).api.db();
        let total_count = session_listing::count(db, &scope, filter.as_deref())
            .await
            .map_err(|failure| list_error("counting sessions", failure))?;
        let rows =
            session_listing::list(db, &scope, filter.as_deref(), order.as_deref(), Some(page))
                .await
                .map_err(|failure| list_error("listing sessions", failure))?;
        Ok(Some(ComputeSessionList {
            items: sessions_of(ctx, rows, &scope),
            total_count: i32::try_from(total_count).unwrap_or(i32::MAX),
        }))
    }

    /// The kernel `id`, if it is in the caller's domain (and, for users, their own).
    async fn compute_container(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
    ) -> async_graphql::Result<Option<ComputeContainer>> {
        let scope = kernel_scope(ctx)?;
        let kernel = kernel_listing::by_id(gql(ctx).api.db(), id, &scope)
            .await
            .map_err(|source| internal("reading a kernel", &source))?;
        Ok(
            ComputeContainer::for_caller(ctx, kernel.into_iter().collect())
                .pop()
                .flatten(),
        )
    }

    /// One page of the kernels of `session_id` in the caller's scope (of cluster role `role`,
    /// when given) matching `filter`, ordered by `order` (default: most recently created,
    /// terminated or changed first).
    #[allow(clippy::too_many_arguments)]
    async fn compute_container_list(
        &self,
        ctx: &Context<'_>,
        limit: i32,
        offset: i32,
        filter: Option<String>,
        order: Option<String>,
        session_id: ID,
        role: Option<String>,
    ) -> async_graphql::Result<Option<ComputeContainerList>> {
        let scope = kernel_scope(ctx)?;
        let session_id = Uuid::parse_str(&session_id).map_err(|_| {
            invalid(format!(
                "session_id {:?} is not a UUID",
                session_id.as_str()
            ))
        })?;
        let page = page(limit, offset)?;
        let db = gql(ctx).api.db();
        let role = role.as_deref();
        let total_count =
            kernel_listing::count_of_session(db, session_id, role, &scope, filter.as_deref())
                .await
                .map_err(|failure| list_error("counting kernels", failure))?;
        let kernels = kernel_listing::list_of_session(
            db,
            session_id,
            role,
            &scope,
            filter.as_deref(),
            order.as_deref(),
            page,
        )
        .await
        .map_err(|failure| list_error("listing kernels", failure))?;
        Ok(Some(ComputeContainerList {
            items: ComputeContainer::for_caller(ctx, kernels),
            total_count: i32::try_from(total_count).unwrap_or(i32::MAX),
        }))
    }
}
