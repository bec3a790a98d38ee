//! Resource groups (scaling groups), superadmins only: `scaling_group(name)`,
//! `scaling_groups(name, is_active)` and the ones associated with a domain, project (user group) or
//! keypair; `create_scaling_group`, `modify_scaling_group`, `delete_scaling_group`, and the
//! (dis)associations with domains, projects and keypairs, each in one transaction.

use async_graphql::{ComplexObject, Context, InputObject, MaybeUndefined, Object, SimpleObject};
use bai_db_models::WriteError;
use bai_db_models::entities::{ResourceSlot, scaling_groups};
use bai_db_models::queries::agent_listing::{self, AgentScope, AgentView};
use bai_db_models::queries::scaling_groups::{
    self as sgroups, Associate, NewScalingGroup, ScalingGroupChanges,
};
use chrono::{DateTime, FixedOffset};
use uuid::Uuid;

use super::agents::statuses;
use super::common::{
    Allowed, JsonString, Outcome, change, gql, internal, mutation_guard, require_superadmin,
};
use super::users::{invalid, list_error};

#[derive(Debug, Default)]
pub struct ScalingGroupQuery;

#[derive(Debug, Default)]
pub struct ScalingGroupMutation;

/// A resource group as the reference's `ScalingGroup` type shows it.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(complex, rename_fields = "snake_case")]
pub struct ScalingGroup {
    pub name: Option<String>,
    pub description: Option<String>,
    pub is_active: Option<bool>,
    pub is_public: Option<bool>,
    pub created_at: Option<DateTime<FixedOffset>>,
    pub wsproxy_addr: Option<String>,
    pub wsproxy_api_token: Option<String>,
    pub driver: Option<String>,
    pub driver_opts: Option<JsonString>,
    pub scheduler: Option<String>,
    /// With the defaults of the reference's `ScalingGroupOpts` filled in, as it reads the column.
    pub scheduler_opts: Option<JsonString>,
    pub use_host_network: Option<bool>,
}

impl ScalingGroup {
    fn from_row(row: scaling_groups::Model) -> ScalingGroup {
        let scheduler_opts =
            sgroups::normalize_scheduler_opts(&row.scheduler_opts).unwrap_or(row.scheduler_opts);
        ScalingGroup {
            name: Some(row.name),
            description: row.description,
            is_active: row.is_active,
            is_public: Some(row.is_public),
            created_at: row.created_at,
            wsproxy_addr: row.wsproxy_addr,
            wsproxy_api_token: row.wsproxy_api_token,
            driver: Some(row.driver),
            driver_opts: Some(JsonString(row.driver_opts)),
            scheduler: Some(row.scheduler),
            scheduler_opts: Some(JsonString(scheduler_opts)),
            use_host_network: Some(row.use_host_network),
        }
    }

    /// The group's agents with `status` (all statuses when null).
    fn scope(&self, status: Option<&str>, several: bool) -> async_graphql::Result<AgentScope> {
        Ok(AgentScope {
            scaling_group: Some(self.name.clone().unwrap_or_default()),
            statuses: status.map(|status| statuses(status, several)).transpose()?,
            allowed_scaling_groups: None,
        })
    }
}

#[ComplexObject(rename_fields = "snake_case", rename_args = "snake_case")]
impl ScalingGroup {
    /// How many of the group's agents have `status` (comma-separated names). Added in 24.03.9.
    async fn agent_count_by_status(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(String::from(\"ALIVE\"))")] status: Option<String>,
    ) -> async_graphql::Result<Option<i32>> {
        let scope = self.scope(status.as_deref(), true)?;
        let count = agent_listing::count(gql(ctx).api.db(), AgentView::Full, &scope, None)
            .await
            .map_err(|failure| list_error("counting the agents of a scaling group", failure))?;
        Ok(Some(i32::try_from(count).unwrap_or(i32::MAX)))
    }

    /// `{"occupied_slots": {...}, "available_slots": {...}}` added up over the group's agents
    /// with `status`. Added in 24.03.9.
    async fn agent_total_resource_slots_by_status(
        &self,
        ctx: &Context<'_>,
        #[graphql(default_with = "Some(String::from(\"ALIVE\"))")] status: Option<String>,
    ) -> async_graphql::Result<Option<JsonString>> {
        let scope = self.scope(status.as_deref(), false)?;
        let totals = bai_scheduler::agent_slot_totals(gql(ctx).api.db(), &scope)
            .await
            .map_err(|source| internal("adding up the slots of a scaling group", &source))?;
        Ok(Some(JsonString(serde_json::json!({
            "occupied_slots": ResourceSlot::from(&totals.occupied_slots).to_json(),
            "available_slots": ResourceSlot::from(&totals.available_slots).to_json(),
        }))))
    }
}

async fn listed(
    ctx: &Context<'_>,
    associated_with: Option<Associate>,
    is_active: Option<bool>,
) -> async_graphql::Result<Vec<ScalingGroup>> {
    require_superadmin(ctx)?;
    let rows = sgroups::list(gql(ctx).api.db(), associated_with.as_ref(), is_active)
        .await
        .map_err(|source| internal("listing scaling groups", &source))?;
    Ok(rows.into_iter().map(ScalingGroup::from_row).collect())
}

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl ScalingGroupQuery {
    /// The resource group `name`; null when there is none (or no name is given).
    async fn scaling_group(
        &self,
        ctx: &Context<'_>,
        name: Option<String>,
    ) -> async_graphql::Result<Option<ScalingGroup>> {
        require_superadmin(ctx)?;
        let Some(name) = name else {
            return Ok(None);
        };
        let row = sgroups::by_name(gql(ctx).api.db(), &name)
            .await
            .map_err(|source| internal("reading a scaling group", &source))?;
        Ok(row.map(ScalingGroup::from_row))
    }

    /// Every resource group (only `name`, when given), narrowed by `is_active`; by name.
    async fn scaling_groups(
        &self,
        ctx: &Context<'_>,
        name: Option<String>,
        is_active: Option<bool>,
    ) -> async_graphql::Result<Option<Vec<Option<ScalingGroup>>>> {
        let mut groups = listed(ctx, None, is_active).await?;
        if let Some(name) = name {
            groups.retain(|group| group.name.as_deref() == Some(name.as_str()));
        }
        Ok(Some(groups.into_iter().map(Some).collect()))
    }

    /// The resource groups associated with the domain `domain`.
    async fn scaling_groups_for_domain(
        &self,
        ctx: &Context<'_>,
        domain: String,
        is_active: Option<bool>,
    ) -> async_graphql::Result<Option<Vec<Option<ScalingGroup>>>> {
        let groups = listed(ctx, Some(Associate::Domain(domain)), is_active).await?;
        Ok(Some(groups.into_iter().map(Some).collect()))
    }

    /// The resource groups associated with the project whose id is `user_group`.
    async fn scaling_groups_for_user_group(
        &self,
        ctx: &Context<'_>,
        user_group: String,
        is_active: Option<bool>,
    ) -> async_graphql::Result<Option<Vec<Option<ScalingGroup>>>> {
        require_superadmin(ctx)?;
        let group = Uuid::parse_str(&user_group)
            .map_err(|_| invalid(format!("user_group {user_group:?} is not a UUID")))?;
        let groups = listed(ctx, Some(Associate::Project(group)), is_active).await?;
        Ok(Some(groups.into_iter().map(Some).collect()))
    }

    /// The resource groups associated with the keypair `access_key`.
    async fn scaling_groups_for_keypair(
        &self,
        ctx: &Context<'_>,
        access_key: String,
        is_active: Option<bool>,
    ) -> async_graphql::Result<Option<Vec<Option<ScalingGroup>>>> {
        let groups = listed(ctx, Some(Associate::Keypair(access_key)), is_active).await?;
        Ok(Some(groups.into_iter().map(Some).collect()))
    }
}

/// `CreateScalingGroupInput`: a new resource group's properties, with the reference's defaults.
#[derive(Debug, InputObject)]
#[graphql(rename_fields = "snake_case")]
pub struct CreateScalingGroupInput {
    #[graphql(default_with = "Some(String::new())")]
    pub description: Option<String>,
    #[graphql(default_with = "Some(true)")]
    pub is_active: Option<bool>,
    #[graphql(default_with = "Some(true)")]
    pub is_public: Option<bool>,
    #[graphql(default_with = "None")]
    pub wsproxy_addr: Option<String>,
    #[graphql(default_with = "None")]
    pub wsproxy_api_token: Option<String>,
    pub driver: String,
    #[graphql(default_with = "Some(JsonString(serde_json::json!({})))")]
    pub driver_opts: Option<JsonString>,
    pub scheduler: String,
    #[graphql(default_with = "Some(JsonString(serde_json::json!({})))")]
    pub scheduler_opts: Option<JsonString>,
    #[graphql(default_with = "Some(false)")]
    pub use_host_network: Option<bool>,
}

/// `ModifyScalingGroupInput`: only the fields given change; the nullable columns (`description`,
/// `is_active`, `wsproxy_addr`, `wsproxy_api_token`) may be set to null.
#[derive(Debug, InputObject)]
#[graphql(rename_fields = "snake_case")]
pub struct ModifyScalingGroupInput {
    pub description: MaybeUndefined<String>,
    pub is_active: MaybeUndefined<bool>,
    pub is_public: Option<bool>,
    pub wsproxy_addr: MaybeUndefined<String>,
    pub wsproxy_api_token: MaybeUndefined<String>,
    pub driver: Option<String>,
    pub driver_opts: Option<JsonString>,
    pub scheduler: Option<String>,
    pub scheduler_opts: Option<JsonString>,
    pub use_host_network: Option<bool>,
}

/// The column widths of `scaling_groups`, so an over-long value is refused by name rather than
/// by the database.
const MAX_LENGTHS: &[(&str, usize)] = &[
    ("name", 64),
    ("description", 512),
    ("wsproxy_addr", 1024),
    ("wsproxy_api_token", 128),
    ("driver", 64),
    ("scheduler", 64),
];

fn check_length(field: &str, value: Option<&str>) -> Result<(), String> {
    let limit = MAX_LENGTHS
        .iter()
        .find(|(name, _)| *name == field)
        .map_or(usize::MAX, |(_, limit)| *limit);
    match value {
        Some(value) if value.chars().count() > limit => {
            Err(format!("{field}: longer than {limit} characters"))
        }
        _ => Ok(()),
    }
}

fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("name: must not be empty".to_owned());
    }
    check_length("name", Some(name))
}

impl CreateScalingGroupInput {
    fn into_new(self) -> Result<NewScalingGroup, String> {
        check_length("description", self.description.as_deref())?;
        check_length("wsproxy_addr", self.wsproxy_addr.as_deref())?;
        check_length("wsproxy_api_token", self.wsproxy_api_token.as_deref())?;
        check_length("driver", Some(&self.driver))?;
        check_length("scheduler", Some(&self.scheduler))?;
        Ok(NewScalingGroup {
            description: self.description,
            is_active: self.is_active.unwrap_or(true),
            is_public: self.is_public.unwrap_or(true),
            wsproxy_addr: self.wsproxy_addr,
            wsproxy_api_token: self.wsproxy_api_token,
            driver: self.driver,
            driver_opts: self
                .driver_opts
                .map_or_else(|| serde_json::json!({}), |opts| opts.0),
            scheduler: self.scheduler,
            scheduler_opts: self
                .scheduler_opts
                .map_or_else(|| serde_json::json!({}), |opts| opts.0),
            use_host_network: self.use_host_network.unwrap_or(false),
        })
    }
}

impl ModifyScalingGroupInput {
    fn into_changes(self) -> Result<ScalingGroupChanges, String> {
        let changes = ScalingGroupChanges {
            description: change(self.description),
            is_active: change(self.is_active),
            is_public: self.is_public,
            wsproxy_addr: change(self.wsproxy_addr),
            wsproxy_api_token: change(self.wsproxy_api_token),
            driver: self.driver,
            driver_opts: self.driver_opts.map(|opts| opts.0),
            scheduler: self.scheduler,
            scheduler_opts: self.scheduler_opts.map(|opts| opts.0),
            use_host_network: self.use_host_network,
        };
        check_length(
            "description",
            changes.description.clone().flatten().as_deref(),
        )?;
        check_length(
            "wsproxy_addr",
            changes.wsproxy_addr.clone().flatten().as_deref(),
        )?;
        check_length(
            "wsproxy_api_token",
            changes.wsproxy_api_token.clone().flatten().as_deref(),
        )?;
        check_length("driver", changes.driver.as_deref())?;
        check_length("scheduler", changes.scheduler.as_deref())?;
        Ok(changes)
    }
}

#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct CreateScalingGroup {
    pub ok: Option<bool>,
    pub msg: Option<String>,
    pub scaling_group: Option<ScalingGroup>,
}

/// The payloads that are only `ok` and `msg`, one GraphQL type each as in the reference.
macro_rules! ok_msg_payloads {
    ($($name:ident),* $(,)?) => {
        $(
            #[derive(Debug, SimpleObject)]
            #[graphql(rename_fields = "snake_case")]
            pub struct $name {
                pub ok: Option<bool>,
                pub msg: Option<String>,
            }

            impl From<Outcome<()>> for $name {
                fn from(outcome: Outcome<()>) -> $name {
                    $name {
                        ok: Some(outcome.ok()),
                        msg: Some(outcome.msg()),
                    }
                }
            }
        )*
    };
}

ok_msg_payloads!(
    ModifyScalingGroup,
    DeleteScalingGroup,
    AssociateScalingGroupWithDomain,
    AssociateScalingGroupsWithDomain,
    AssociateScalingGroupWithUserGroup,
    AssociateScalingGroupsWithUserGroup,
    AssociateScalingGroupWithKeyPair,
    AssociateScalingGroupsWithKeyPair,
    DisassociateScalingGroupWithDomain,
    DisassociateScalingGroupsWithDomain,
    DisassociateScalingGroupWithUserGroup,
    DisassociateScalingGroupsWithUserGroup,
    DisassociateScalingGroupWithKeyPair,
    DisassociateScalingGroupsWithKeyPair,
    DisassociateAllScalingGroupsWithDomain,
    DisassociateAllScalingGroupsWithGroup,
);

fn no_such_scaling_group(name: &str) -> String {
    format!("no such scaling group {name:?}")
}

/// Which way an association changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    Associate,
    Disassociate,
}

/// The guard, then the (dis)association of `names` with `with` in one transaction.
async fn relink(
    ctx: &Context<'_>,
    field: &str,
    link: Link,
    names: Vec<Option<String>>,
    with: Associate,
) -> async_graphql::Result<Outcome<()>> {
    if let Some(refusal) = mutation_guard(ctx, Allowed::SuperAdmin, field).await? {
        return Ok(Outcome::Refused(refusal));
    }
    let names: Vec<String> = names.into_iter().flatten().collect();
    let db = gql(ctx).api.db();
    let done = match link {
        Link::Associate => sgroups::associate(db, &names, &with).await,
        Link::Disassociate => sgroups::disassociate(db, &names, &with).await,
    };
    Outcome::of(done, "changing the associations of scaling groups")
}

/// The guard, then removing every association of `with`.
async fn unlink_all(
    ctx: &Context<'_>,
    field: &str,
    with: Associate,
) -> async_graphql::Result<Outcome<()>> {
    if let Some(refusal) = mutation_guard(ctx, Allowed::SuperAdmin, field).await? {
        return Ok(Outcome::Refused(refusal));
    }
    Outcome::of(
        sgroups::disassociate_all(gql(ctx).api.db(), &with).await,
        "removing the associations of scaling groups",
    )
}

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl ScalingGroupMutation {
    async fn create_scaling_group(
        &self,
        ctx: &Context<'_>,
        name: String,
        props: CreateScalingGroupInput,
    ) -> async_graphql::Result<Option<CreateScalingGroup>> {
        let outcome = match mutation_guard(ctx, Allowed::SuperAdmin, "create_scaling_group").await?
        {
            Some(refusal) => Outcome::Refused(refusal),
            None => match check_name(&name).and_then(|()| props.into_new()) {
                Err(reason) => Outcome::Refused(reason),
                Ok(group) => Outcome::of(
                    sgroups::create(gql(ctx).api.db(), &name, group).await,
                    "creating a scaling group",
                )?,
            },
        };
        Ok(Some(CreateScalingGroup {
            ok: Some(outcome.ok()),
            msg: Some(outcome.msg()),
            scaling_group: outcome.into_item().map(ScalingGroup::from_row),
        }))
    }

    async fn modify_scaling_group(
        &self,
        ctx: &Context<'_>,
        name: String,
        props: ModifyScalingGroupInput,
    ) -> async_graphql::Result<Option<ModifyScalingGroup>> {
        let outcome = match mutation_guard(ctx, Allowed::SuperAdmin, "modify_scaling_group").await?
        {
            Some(refusal) => Outcome::Refused(refusal),
            None => match props.into_changes() {
                Err(reason) => Outcome::Refused(reason),
                Ok(changes) => {
                    let modified = sgroups::modify(gql(ctx).api.db(), &name, changes)
                        .await
                        .and_then(|row| match row {
                            Some(_) => Ok(()),
                            None => Err(WriteError::Rejected(no_such_scaling_group(&name))),
                        });
                    Outcome::of(modified, "modifying a scaling group")?
                }
            },
        };
        Ok(Some(outcome.into()))
    }

    /// Deletes the resource group with its associations; refused while agents, sessions, kernels
    /// or endpoints belong to it.
    async fn delete_scaling_group(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> async_graphql::Result<Option<DeleteScalingGroup>> {
        let outcome = match mutation_guard(ctx, Allowed::SuperAdmin, "delete_scaling_group").await?
        {
            Some(refusal) => Outcome::Refused(refusal),
            None => {
                let deleted = sgroups::delete(gql(ctx).api.db(), &name)
                    .await
                    .and_then(|found| {
                        if found {
                            Ok(())
                        } else {
                            Err(WriteError::Rejected(no_such_scaling_group(&name)))
                        }
                    });
                Outcome::of(deleted, "deleting a scaling group")?
            }
        };
        Ok(Some(outcome.into()))
    }

    async fn associate_scaling_group_with_domain(
        &self,
        ctx: &Context<'_>,
        domain: String,
        scaling_group: String,
    ) -> async_graphql::Result<Option<AssociateScalingGroupWithDomain>> {
        let field = "associate_scaling_group_with_domain";
        let with = Associate::Domain(domain);
        Ok(Some(
            relink(ctx, field, Link::Associate, vec![Some(scaling_group)], with)
                .await?
                .into(),
        ))
    }

    /// Added in 24.03.9.
    async fn associate_scaling_groups_with_domain(
        &self,
        ctx: &Context<'_>,
        domain: String,
        scaling_groups: Vec<Option<String>>,
    ) -> async_graphql::Result<Option<AssociateScalingGroupsWithDomain>> {
        let field = "associate_scaling_groups_with_domain";
        let with = Associate::Domain(domain);
        Ok(Some(
            relink(ctx, field, Link::Associate, scaling_groups, with)
                .await?
                .into(),
        ))
    }

    async fn associate_scaling_group_with_user_group(
        &self,
        ctx: &Context<'_>,
        scaling_group: String,
        user_group: Uuid,
    ) -> async_graphql::Result<Option<AssociateScalingGroupWithUserGroup>> {
        let field = "associate_scaling_group_with_user_group";
        let with = Associate::Project(user_group);
        Ok(Some(
            relink(ctx, field, Link::Associate, vec![Some(scaling_group)], with)
                .await?
                .into(),
        ))
    }

    /// Added in 24.03.9.
    async fn associate_scaling_groups_with_user_group(
        &self,
        ctx: &Context<'_>,
        scaling_groups: Vec<Option<String>>,
        user_group: Uuid,
    ) -> async_graphql::Result<Option<AssociateScalingGroupsWithUserGroup>> {
        let field = "associate_scaling_groups_with_user_group";
        let with = Associate::Project(user_group);
        Ok(Some(
            relink(ctx, field, Link::Associate, scaling_groups, with)
                .await?
                .into(),
        ))
    }

    async fn associate_scaling_group_with_keypair(
        &self,
        ctx: &Context<'_>,
        access_key: String,
        scaling_group: String,
    ) -> async_graphql::Result<Option<AssociateScalingGroupWithKeyPair>> {
        let field = "associate_scaling_group_with_keypair";
        let with = Associate::Keypair(access_key);
        Ok(Some(
            relink(ctx, field, Link::Associate, vec![Some(scaling_group)], with)
                .await?
                .into(),
        ))
    }

    /// Added in 24.03.9.
    async fn associate_scaling_groups_with_keypair(
        &self,
        ctx: &Context<'_>,
        access_key: String,
        scaling_groups: Vec<Option<String>>,
    ) -> async_graphql::Result<Option<AssociateScalingGroupsWithKeyPair>> {
        let field = "associate_scaling_groups_with_keypair";
        let with = Associate::Keypair(access_key);
        Ok(Some(
            relink(ctx, field, Link::Associate, scaling_groups, with)
                .await?
                .into(),
        ))
    }

    async fn disassociate_scaling_group_with_domain(
        &self,
        ctx: &Context<'_>,
        domain: String,
        scaling_group: String,
    ) -> async_graphql::Result<Option<DisassociateScalingGroupWithDomain>> {
        let field = "disassociate_scaling_group_with_domain";
        let with = Associate::Domain(domain);
        Ok(Some(
            relink(
                ctx,
                field,
                Link::Disassociate,
                vec![Some(scaling_group)],
                with,
            )
            .await?
            .into(),
        ))
    }

    /// Added in 24.03.9.
    async fn disassociate_scaling_groups_with_domain(
        &self,
        ctx: &Context<'_>,
        domain: String,
        scaling_groups: Vec<Option<String>>,
    ) -> async_graphql::Result<Option<DisassociateScalingGroupsWithDomain>> {
        let field = "disassociate_scaling_groups_with_domain";
        let with = Associate::Domain(domain);
        Ok(Some(
            relink(ctx, field, Link::Disassociate, scaling_groups, with)
                .await?
                .into(),
        ))
    }

    async fn disassociate_scaling_group_with_user_group(
        &self,
        ctx: &Context<'_>,
        scaling_group: String,
        user_group: Uuid,
    ) -> async_graphql::Result<Option<DisassociateScalingGroupWithUserGroup>> {
        let field = "disassociate_scaling_group_with_user_group";
        let with = Associate::Project(user_group);
        Ok(Some(
            relink(
                ctx,
                field,
                Link::Disassociate,
                vec![Some(scaling_group)],
                with,
            )
            .await?
            .into(),
        ))
    }

    /// Added in 24.03.9.
    async fn disassociate_scaling_groups_with_user_group(
        &self,
        ctx: &Context<'_>,
        scaling_groups: Vec<Option<String>>,
        user_group: Uuid,
    ) -> async_graphql::Result<Option<DisassociateScalingGroupsWithUserGroup>> {
        let field = "disassociate_scaling_groups_with_user_group";
        let with = Associate::Project(user_group);
        Ok(Some(
            relink(ctx, field, Link::Disassociate, scaling_groups, with)
                .await?
                .into(),
        ))
    }

    async fn disassociate_scaling_group_with_keypair(
        &self,
        ctx: &Context<'_>,
        access_key: String,
        scaling_group: String,
    ) -> async_graphql::Result<Option<DisassociateScalingGroupWithKeyPair>> {
        let field = "disassociate_scaling_group_with_keypair";
        let with = Associate::Keypair(access_key);
        Ok(Some(
            relink(
                ctx,
                field,
                Link::Disassociate,
                vec![Some(scaling_group)],
                with,
            )
            .await?
            .into(),
        ))
    }

    /// Added in 24.03.9.
    async fn disassociate_scaling_groups_with_keypair(
        &self,
        ctx: &Context<'_>,
        access_key: String,
        scaling_groups: Vec<Option<String>>,
    ) -> async_graphql::Result<Option<DisassociateScalingGroupsWithKeyPair>> {
        let field = "disassociate_scaling_groups_with_keypair";
        let with = Associate::Keypair(access_key);
        Ok(Some(
            relink(ctx, field, Link::Disassociate, scaling_groups, with)
                .await?
                .into(),
        ))
    }

    async fn disassociate_all_scaling_groups_with_domain(
        &self,
        ctx: &Context<'_>,
        domain: String,
    ) -> async_graphql::Result<Option<DisassociateAllScalingGroupsWithDomain>> {
        let field = "disassociate_all_scaling_groups_with_domain";
        Ok(Some(
            unlink_all(ctx, field, Associate::Domain(domain))
                .await?
                .into(),
        ))
    }

    async fn disassociate_all_scaling_groups_with_group(
        &self,
        ctx: &Context<'_>,
        user_group: Uuid,
    ) -> async_graphql::Result<Option<DisassociateAllScalingGroupsWithGroup>> {
        let field = "disassociate_all_scaling_groups_with_group";
        Ok(Some(
            unlink_all(ctx, field, Associate::Project(user_group))
                .await?
                .into(),
        ))
    }
}
