//! Groups (projects): `group(id)`, `groups_by_name(name)` and `groups(...)` (superadmins any,
//! domain admins their domain, users the groups they belong to); `create_group`, `modify_group`
//! (with membership changes), `delete_group` (deactivates) and `purge_group` for admins within
//! their domain and superadmins.

use async_graphql::{Context, InputObject, MaybeUndefined, Object, SimpleObject};
use bai_db_models::entities::enums::{ProjectType, UserRole};
use bai_db_models::entities::groups;
use bai_db_models::queries;
use bai_db_models::queries::groups::{GroupChanges, MembershipChange, NewGroup, no_such_group};
use chrono::{DateTime, FixedOffset};
use serde_json::{Value, json};
use uuid::Uuid;

use super::common::{
    Allowed, JsonString, Outcome, change, error, gql, internal, is_slug, mutation_guard,
    resource_slots, vfolder_host_permissions,
};
use super::users::{invalid, unknown_role};
use crate::error::{ApiError, ErrorKind};

#[derive(Debug, Default)]
pub struct GroupQuery;

#[derive(Debug, Default)]
pub struct GroupMutation;

/// A group as the reference's `Group` type shows it.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(name = "Group", rename_fields = "snake_case")]
pub struct Group {
    pub id: Option<Uuid>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub is_active: Option<bool>,
    pub created_at: Option<DateTime<FixedOffset>>,
    pub modified_at: Option<DateTime<FixedOffset>>,
    pub domain_name: Option<String>,
    /// Slot name -> amount as a string, e.g. `{"cpu": "4"}`.
    pub total_resource_slots: Option<JsonString>,
    /// Host -> the permissions granted on it.
    pub allowed_vfolder_hosts: Option<JsonString>,
    pub integration_id: Option<String>,
    pub resource_policy: Option<String>,
    /// Added in 24.03.0.
    #[graphql(name = "type")]
    pub r#type: Option<String>,
    /// Added in 24.03.0.
    pub container_registry: Option<JsonString>,
    /// The names of the scaling groups associated with the group.
    pub scaling_groups: Option<Vec<Option<String>>>,
}

impl Group {
    fn from_row(row: groups::Model, scaling_groups: Vec<String>) -> Group {
        Group {
            total_resource_slots: Some(JsonString(
                serde_json::to_value(row.total_resource_slots.unwrap_or_default())
                    .unwrap_or_default(),
            )),
            allowed_vfolder_hosts: Some(JsonString(
                serde_json::to_value(&row.allowed_vfolder_hosts).unwrap_or_default(),
            )),
            id: Some(row.id),
            name: Some(row.name),
            description: row.description,
            is_active: row.is_active,
            created_at: row.created_at,
            modified_at: row.modified_at,
            domain_name: Some(row.domain_name),
            integration_id: row.integration_id,
            resource_policy: Some(row.resource_policy),
            r#type: Some(type_name(row.r#type).to_owned()),
            container_registry: row.container_registry.map(JsonString),
            scaling_groups: Some(scaling_groups.into_iter().map(Some).collect()),
        }
    }
}

/// The name of a project type as the API spells it (`ProjectType.name`).
fn type_name(project_type: ProjectType) -> &'static str {
    match project_type {
        ProjectType::General => "GENERAL",
        ProjectType::ModelStore => "MODEL_STORE",
    }
}

fn project_type(name: &str) -> Result<ProjectType, String> {
    match name {
        "GENERAL" => Ok(ProjectType::General),
        "MODEL_STORE" => Ok(ProjectType::ModelStore),
        _ => Err(format!(
            "type: {name:?} is not a project type (GENERAL, MODEL_STORE)"
        )),
    }
}

/// `rows` with the names of their scaling groups.
async fn shown(ctx: &Context<'_>, rows: Vec<groups::Model>) -> async_graphql::Result<Vec<Group>> {
    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    let mut names = queries::groups::scaling_group_names(gql(ctx).api.db(), &ids)
        .await
        .map_err(|source| internal("reading the scaling groups of groups", &source))?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let scaling_groups = names.remove(&row.id).unwrap_or_default();
            Group::from_row(row, scaling_groups)
        })
        .collect())
}

async fn shown_one(ctx: &Context<'_>, row: groups::Model) -> async_graphql::Result<Group> {
    Ok(shown(ctx, vec![row]).await?.remove(0))
}

fn listed(groups: Vec<Group>) -> Option<Vec<Option<Group>>> {
    Some(groups.into_iter().map(Some).collect())
}

fn insufficient_privilege() -> async_graphql::Error {
    error(ApiError::new(ErrorKind::InsufficientPrivilege))
}

/// The domain a query may look in: the one named (any) for superadmins; the caller's own for
/// domain admins and users, who are refused with "Insufficient privilege." for naming another.
fn query_domain(
    ctx: &Context<'_>,
    domain_name: Option<String>,
) -> async_graphql::Result<Option<String>> {
    let caller = &gql(ctx).caller;
    match caller.role() {
        UserRole::Superadmin => Ok(domain_name),
        UserRole::Admin | UserRole::User => {
            let own = caller.user.domain_name.clone().unwrap_or_default();
            if domain_name.is_some_and(|name| name != own) {
                return Err(insufficient_privilege());
            }
            Ok(Some(own))
        }
        UserRole::Monitor => Err(unknown_role()),
    }
}

/// The general groups the caller belongs to (what the reference's `Group.by_user` loads).
async fn caller_groups(ctx: &Context<'_>) -> async_graphql::Result<Vec<groups::Model>> {
    let context = gql(ctx);
    queries::project_membership::member_projects(
        context.api.db(),
        context.caller.user.uuid,
        &[ProjectType::General],
    )
    .await
    .map_err(|source| internal("reading the caller's groups", &source))
}

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl GroupQuery {
    /// The group `id`. Domain admins and users see only their domain's; users only a group they
    /// belong to whose type is in `type` (others are refused with "Insufficient privilege.").
    async fn group(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        domain_name: Option<String>,
        #[graphql(
            name = "type",
            desc = "Added in 24.03.0.",
            default_with = "Some(vec![Some(\"GENERAL\".to_owned())])"
        )]
        r#type: Option<Vec<Option<String>>>,
    ) -> async_graphql::Result<Option<Group>> {
        let domain = query_domain(ctx, domain_name)?;
        let found = queries::groups::by_id(gql(ctx).api.db(), id, domain.as_deref())
            .await
            .map_err(|source| internal("reading a group", &source))?;
        if gql(ctx).caller.role() == UserRole::User {
            let types: Vec<String> = r#type.unwrap_or_default().into_iter().flatten().collect();
            let member = caller_groups(ctx).await?.into_iter().any(|group| {
                group.id == id && types.iter().any(|name| name == type_name(group.r#type))
            });
            if found.is_none() || !member {
                return Err(insufficient_privilege());
            }
        }
        Ok(match found {
            Some(row) => Some(shown_one(ctx, row).await?),
            None => None,
        })
    }

    /// The groups called `name` (one per domain for superadmins), scoped as `group`.
    async fn groups_by_name(
        &self,
        ctx: &Context<'_>,
        name: String,
        domain_name: Option<String>,
    ) -> async_graphql::Result<Option<Vec<Option<Group>>>> {
        let domain = query_domain(ctx, domain_name)?;
        let mut rows = queries::groups::by_name(gql(ctx).api.db(), &name, domain.as_deref())
            .await
            .map_err(|source| internal("reading groups by name", &source))?;
        if gql(ctx).caller.role() == UserRole::User {
            let own: Vec<Uuid> = caller_groups(ctx)
                .await?
                .iter()
                .map(|group| group.id)
                .collect();
            rows.retain(|row| own.contains(&row.id));
        }
        Ok(listed(shown(ctx, rows).await?))
    }

    /// The groups of the types `type` (and of `domain_name`, with `is_active`, when given).
    /// Domain admins see their domain's; users the general groups they belong to, whatever the
    /// arguments say (as in the reference).
    async fn groups(
        &self,
        ctx: &Context<'_>,
        domain_name: Option<String>,
        is_active: Option<bool>,
        #[graphql(
            name = "type",
            desc = "Added in 24.03.0. Available values: GENERAL, MODEL_STORE",
            default_with = "Some(vec![Some(\"GENERAL\".to_owned())])"
        )]
        r#type: Option<Vec<Option<String>>>,
    ) -> async_graphql::Result<Option<Vec<Option<Group>>>> {
        let domain = query_domain(ctx, domain_name)?;
        let rows = if gql(ctx).caller.role() == UserRole::User {
            caller_groups(ctx).await?
        } else {
            let types = r#type
                .unwrap_or_default()
                .into_iter()
                .flatten()
                .map(|name| project_type(&name))
                .collect::<Result<Vec<_>, _>>()
                .map_err(invalid)?;
            queries::groups::list(gql(ctx).api.db(), domain.as_deref(), is_active, &types)
                .await
                .map_err(|source| internal("listing groups", &source))?
        };
        Ok(listed(shown(ctx, rows).await?))
    }
}

/// `GroupInput`: a new group's properties, with the reference's defaults.
#[derive(Debug, InputObject)]
#[graphql(rename_fields = "snake_case")]
pub struct GroupInput {
    /// Added in 24.03.0. Available values: GENERAL, MODEL_STORE
    #[graphql(name = "type", default_with = "Some(\"GENERAL\".to_owned())")]
    pub r#type: Option<String>,
    #[graphql(default_with = "Some(String::new())")]
    pub description: Option<String>,
    #[graphql(default_with = "Some(true)")]
    pub is_active: Option<bool>,
    pub domain_name: String,
    #[graphql(default_with = "Some(JsonString(json!({})))")]
    pub total_resource_slots: Option<JsonString>,
    #[graphql(default_with = "Some(JsonString(json!({})))")]
    pub allowed_vfolder_hosts: Option<JsonString>,
    #[graphql(default_with = "Some(String::new())")]
    pub integration_id: Option<String>,
    #[graphql(default_with = "Some(\"default\".to_owned())")]
    pub resource_policy: Option<String>,
    /// Added in 24.03.0
    #[graphql(default_with = "Some(JsonString(json!({})))")]
    pub container_registry: Option<JsonString>,
}

/// `ModifyGroupInput`: only the fields given change, except `container_registry`, whose default
/// `{}` replaces the stored one unless given (as in the reference). `user_update_mode` ("add" or
/// "remove") with `user_uuids` changes the members.
#[derive(Debug, InputObject)]
#[graphql(rename_fields = "snake_case")]
pub struct ModifyGroupInput {
    pub name: Option<String>,
    pub description: MaybeUndefined<String>,
    pub is_active: Option<bool>,
    pub domain_name: Option<String>,
    pub total_resource_slots: Option<JsonString>,
    pub user_update_mode: Option<String>,
    pub user_uuids: Option<Vec<Option<String>>>,
    pub allowed_vfolder_hosts: Option<JsonString>,
    pub integration_id: MaybeUndefined<String>,
    pub resource_policy: Option<String>,
    /// Added in 24.03.0
    #[graphql(default_with = "Some(JsonString(json!({})))")]
    pub container_registry: Option<JsonString>,
}

#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct CreateGroup {
    pub ok: Option<bool>,
    pub msg: Option<String>,
    pub group: Option<Group>,
}

#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct ModifyGroup {
    pub ok: Option<bool>,
    pub msg: Option<String>,
    pub group: Option<Group>,
}

/// Instead of deleting the group, just mark it as inactive.
#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct DeleteGroup {
    pub ok: Option<bool>,
    pub msg: Option<String>,
}

/// Completely deletes a group from DB.
#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct PurgeGroup {
    pub ok: Option<bool>,
    pub msg: Option<String>,
}

fn not_a_slug(name: &str) -> String {
    format!("name: {name:?} is not a slug (letters, digits, '.', '_', '-')")
}

/// A `container_registry` value: `{}` or `{"registry": ..., "project": ...}` with non-empty
/// strings, as the reference's column checks it.
fn container_registry(value: &JsonString) -> Result<Value, String> {
    let wrong = || {
        format!(
            "container_registry: {} is neither {{}} nor {{\"registry\": ..., \"project\": ...}}",
            value.0
        )
    };
    let Value::Object(fields) = &value.0 else {
        return Err(wrong());
    };
    let named = |key: &str| {
        fields
            .get(key)
            .and_then(Value::as_str)
            .is_some_and(|text| !text.is_empty())
    };
    if fields.is_empty() || (fields.len() == 2 && named("registry") && named("project")) {
        Ok(value.0.clone())
    } else {
        Err(wrong())
    }
}

impl GroupInput {
    fn into_new_group(self) -> Result<NewGroup, String> {
        Ok(NewGroup {
            r#type: project_type(self.r#type.as_deref().unwrap_or("GENERAL"))?,
            description: self.description,
            is_active: self.is_active.unwrap_or(true),
            domain_name: self.domain_name,
            total_resource_slots: self
                .total_resource_slots
                .map(|slots| resource_slots("total_resource_slots", &slots))
                .transpose()?
                .unwrap_or_default(),
            allowed_vfolder_hosts: self
                .allowed_vfolder_hosts
                .map(|hosts| vfolder_host_permissions("allowed_vfolder_hosts", &hosts))
                .transpose()?
                .unwrap_or_default(),
            integration_id: self.integration_id,
            resource_policy: self.resource_policy.unwrap_or_else(|| "default".to_owned()),
            container_registry: self
                .container_registry
                .map(|registry| container_registry(&registry))
                .transpose()?,
        })
    }
}

impl ModifyGroupInput {
    fn into_changes(self) -> Result<(GroupChanges, Option<MembershipChange>), String> {
        if let Some(name) = &self.name
            && !is_slug(name)
        {
            return Err(not_a_slug(name));
        }
        let user_ids = self
            .user_uuids
            .unwrap_or_default()
            .into_iter()
            .map(|given| {
                given
                    .as_deref()
                    .and_then(|text| Uuid::parse_str(text).ok())
                    .ok_or_else(|| format!("user_uuids: {given:?} is not a UUID"))
            })
            .collect::<Result<Vec<Uuid>, String>>()?;
        let members = match self.user_update_mode.as_deref() {
            None => None,
            Some(_) if user_ids.is_empty() => None,
            Some("add") => Some(MembershipChange::Add(user_ids)),
            Some("remove") => Some(MembershipChange::Remove(user_ids)),
            Some(other) => {
                return Err(format!(
                    "user_update_mode: {other:?} is neither \"add\" nor \"remove\""
                ));
            }
        };
        let changes = GroupChanges {
            name: self.name,
            description: change(self.description),
            is_active: self.is_active,
            domain_name: self.domain_name,
            total_resource_slots: self
                .total_resource_slots
                .map(|slots| resource_slots("total_resource_slots", &slots))
                .transpose()?,
            allowed_vfolder_hosts: self
                .allowed_vfolder_hosts
                .map(|hosts| vfolder_host_permissions("allowed_vfolder_hosts", &hosts))
                .transpose()?,
            integration_id: change(self.integration_id),
            resource_policy: self.resource_policy,
            container_registry: Some(
                self.container_registry
                    .map(|registry| container_registry(&registry))
                    .transpose()?,
            ),
        };
        Ok((changes, members))
    }
}

/// Whether the caller (a superadmin or domain admin, past the mutation guard) may change the
/// group `id`: a domain admin only one of its own domain, as the reference's
/// `privileged_mutation` checks.
async fn may_change(ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<bool> {
    let context = gql(ctx);
    if context.caller.is_superadmin() {
        return Ok(true);
    }
    let own = context.caller.user.domain_name.clone().unwrap_or_default();
    let found = queries::groups::by_id(context.api.db(), id, Some(&own))
        .await
        .map_err(|source| internal("reading a group", &source))?;
    Ok(found.is_some())
}

/// Whether the caller may put a group in `domain`: a domain admin only in its own.
fn may_use_domain(ctx: &Context<'_>, domain: &str) -> bool {
    let caller = &gql(ctx).caller;
    caller.is_superadmin() || caller.user.domain_name.as_deref() == Some(domain)
}

/// The mutation guard, then the domain admin's scope: `Some(refusal)` when the caller may not
/// touch the group `id` (or move it to `domain`).
async fn group_guard(
    ctx: &Context<'_>,
    field: &str,
    id: Uuid,
    domain: Option<&str>,
) -> async_graphql::Result<Option<String>> {
    if let Some(refusal) = mutation_guard(ctx, Allowed::AdminAndSuperAdmin, field).await? {
        return Ok(Some(refusal));
    }
    let permitted =
        may_change(ctx, id).await? && domain.is_none_or(|domain| may_use_domain(ctx, domain));
    Ok((!permitted).then(|| format!("no permission to execute {field}")))
}

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl GroupMutation {
    async fn create_group(
        &self,
        ctx: &Context<'_>,
        name: String,
        props: GroupInput,
    ) -> async_graphql::Result<Option<CreateGroup>> {
        let guarded = mutation_guard(ctx, Allowed::AdminAndSuperAdmin, "create_group").await?;
        let outcome = match guarded {
            Some(refusal) => Outcome::Refused(refusal),
            None if !may_use_domain(ctx, &props.domain_name) => {
                Outcome::Refused("no permission to execute create_group".to_owned())
            }
            None if !is_slug(&name) => Outcome::Refused(not_a_slug(&name)),
            None => match props.into_new_group() {
                Err(reason) => Outcome::Refused(reason),
                Ok(group) => Outcome::of(
                    queries::groups::create(gql(ctx).api.db(), &name, group).await,
                    "creating a group",
                )?,
            },
        };
        let (ok, msg) = (outcome.ok(), outcome.msg());
        let group = match outcome.into_item() {
            Some(row) => Some(shown_one(ctx, row).await?),
            None => None,
        };
        Ok(Some(CreateGroup {
            ok: Some(ok),
            msg: Some(msg),
            group,
        }))
    }

    async fn modify_group(
        &self,
        ctx: &Context<'_>,
        gid: Uuid,
        props: ModifyGroupInput,
    ) -> async_graphql::Result<Option<ModifyGroup>> {
        let target_domain = props.domain_name.clone();
        let outcome = match group_guard(ctx, "modify_group", gid, target_domain.as_deref()).await? {
            Some(refusal) => Outcome::Refused(refusal),
            None => match props.into_changes() {
                Err(reason) => Outcome::Refused(reason),
                Ok((changes, members)) => Outcome::of(
                    queries::groups::modify(gql(ctx).api.db(), gid, changes, members).await,
                    "modifying a group",
                )?,
            },
        };
        let (ok, msg) = (outcome.ok(), outcome.msg());
        let group = match outcome.into_item() {
            Some(row) => Some(shown_one(ctx, row).await?),
            None => None,
        };
        Ok(Some(ModifyGroup {
            ok: Some(ok),
            msg: Some(msg),
            group,
        }))
    }

    /// Marks the group inactive (and clears its `integration_id`) rather than deleting it.
    async fn delete_group(
        &self,
        ctx: &Context<'_>,
        gid: Uuid,
    ) -> async_graphql::Result<Option<DeleteGroup>> {
        let outcome = match group_guard(ctx, "delete_group", gid, None).await? {
            Some(refusal) => Outcome::Refused(refusal),
            None => {
                let found = queries::groups::deactivate(gql(ctx).api.db(), gid)
                    .await
                    .map_err(|source| internal("deactivating a group", &source))?;
                if found {
                    Outcome::Done(())
                } else {
                    Outcome::Refused(no_such_group(gid))
                }
            }
        };
        Ok(Some(DeleteGroup {
            ok: Some(outcome.ok()),
            msg: Some(outcome.msg()),
        }))
    }

    /// Deletes the group with its finished sessions; refused while it has active kernels or
    /// owns vfolders.
    async fn purge_group(
        &self,
        ctx: &Context<'_>,
        gid: Uuid,
    ) -> async_graphql::Result<Option<PurgeGroup>> {
        let outcome = match group_guard(ctx, "purge_group", gid, None).await? {
            Some(refusal) => Outcome::Refused(refusal),
            None => match Outcome::of(
                queries::groups::purge(gql(ctx).api.db(), gid).await,
                "purging a group",
            )? {
                Outcome::Done(false) => Outcome::Refused(no_such_group(gid)),
                purged => purged,
            },
        };
        Ok(Some(PurgeGroup {
            ok: Some(outcome.ok()),
            msg: Some(outcome.msg()),
        }))
    }
}
