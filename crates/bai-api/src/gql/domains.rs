//! Domains: `domains(is_active)` (superadmins) and `domain(name)` (the caller's own domain unless
//! a superadmin names another); `create_domain`, `modify_domain`, `delete_domain` (deactivates)
//! and `purge_domain` (superadmins).

use async_graphql::{Context, InputObject, MaybeUndefined, Object, SimpleObject};
use bai_db_models::WriteError;
use bai_db_models::entities::domains;
use bai_db_models::queries;
use bai_db_models::queries::domains::{DomainChanges, NewDomain};
use chrono::{DateTime, FixedOffset};

use super::common::{
    Allowed, JsonString, Outcome, change, error, gql, internal, is_slug, mutation_guard,
    require_superadmin, resource_slots, vfolder_host_permissions,
};
use crate::error::{ApiError, ErrorKind};

#[derive(Debug, Default)]
pub struct DomainQuery;

#[derive(Debug, Default)]
pub struct DomainMutation;

/// A domain as the reference's `Domain` type shows it.
#[derive(Clone, Debug, SimpleObject)]
#[graphql(name = "Domain", rename_fields = "snake_case")]
pub struct Domain {
    pub name: String,
    pub description: Option<String>,
    pub is_active: Option<bool>,
    pub created_at: Option<DateTime<FixedOffset>>,
    pub modified_at: Option<DateTime<FixedOffset>>,
    /// Slot name -> amount as a string, e.g. `{"cpu": "4"}`.
    pub total_resource_slots: Option<JsonString>,
    /// Host -> the permissions granted on it.
    pub allowed_vfolder_hosts: Option<JsonString>,
    pub allowed_docker_registries: Option<Vec<String>>,
    pub integration_id: Option<String>,
}

impl Domain {
    fn from_row(row: domains::Model) -> Domain {
        Domain {
            total_resource_slots: Some(JsonString(
                serde_json::to_value(row.total_resource_slots.unwrap_or_default())
                    .unwrap_or_default(),
            )),
            allowed_vfolder_hosts: Some(JsonString(
                serde_json::to_value(&row.allowed_vfolder_hosts).unwrap_or_default(),
            )),
            name: row.name,
            description: row.description,
            is_active: row.is_active,
            created_at: row.created_at,
            modified_at: row.modified_at,
            allowed_docker_registries: Some(row.allowed_docker_registries),
            integration_id: row.integration_id,
        }
    }
}

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl DomainQuery {
    /// The domain called `name` (the caller's own when absent). Only superadmins may name another
    /// domain; anyone else gets "No such domain." as in the reference.
    async fn domain(
        &self,
        ctx: &Context<'_>,
        name: Option<String>,
    ) -> async_graphql::Result<Option<Domain>> {
        let context = gql(ctx);
        let caller = &context.caller;
        let own = caller.user.domain_name.clone().unwrap_or_default();
        let name = name.unwrap_or_else(|| own.clone());
        if !caller.is_superadmin() && name != own {
            return Err(error(ApiError::new(ErrorKind::ObjectNotFound("domain"))));
        }
        let found = queries::domains::by_name(context.api.db(), &name)
            .await
            .map_err(|source| internal("reading a domain", &source))?;
        Ok(found.map(Domain::from_row))
    }

    /// Every domain, or only the active (inactive) ones. Superadmins only.
    async fn domains(
        &self,
        ctx: &Context<'_>,
        is_active: Option<bool>,
    ) -> async_graphql::Result<Vec<Domain>> {
        require_superadmin(ctx)?;
        let rows = queries::domains::list(gql(ctx).api.db(), is_active)
            .await
            .map_err(|source| internal("listing domains", &source))?;
        Ok(rows.into_iter().map(Domain::from_row).collect())
    }
}

/// `DomainInput`: a new domain's properties, with the reference's defaults.
#[derive(Debug, InputObject)]
#[graphql(rename_fields = "snake_case")]
pub struct DomainInput {
    #[graphql(default_with = "Some(String::new())")]
    pub description: Option<String>,
    #[graphql(default_with = "Some(true)")]
    pub is_active: Option<bool>,
    #[graphql(default_with = "Some(JsonString(serde_json::json!({})))")]
    pub total_resource_slots: Option<JsonString>,
    #[graphql(default_with = "Some(JsonString(serde_json::json!({})))")]
    pub allowed_vfolder_hosts: Option<JsonString>,
    #[graphql(default_with = "Some(Vec::new())")]
    pub allowed_docker_registries: Option<Vec<Option<String>>>,
    pub integration_id: Option<String>,
}

/// `ModifyDomainInput`: only the fields given change; `description` and `integration_id` may be
/// set to null.
#[derive(Debug, InputObject)]
#[graphql(rename_fields = "snake_case")]
pub struct ModifyDomainInput {
    pub name: Option<String>,
    pub description: MaybeUndefined<String>,
    pub is_active: Option<bool>,
    pub total_resource_slots: Option<JsonString>,
    pub allowed_vfolder_hosts: Option<JsonString>,
    pub allowed_docker_registries: Option<Vec<Option<String>>>,
    pub integration_id: MaybeUndefined<String>,
}

#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct CreateDomain {
    pub ok: Option<bool>,
    pub msg: Option<String>,
    pub domain: Option<Domain>,
}

#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct ModifyDomain {
    pub ok: Option<bool>,
    pub msg: Option<String>,
    pub domain: Option<Domain>,
}

#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct DeleteDomain {
    pub ok: Option<bool>,
    pub msg: Option<String>,
}

#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct PurgeDomain {
    pub ok: Option<bool>,
    pub msg: Option<String>,
}

fn registries(names: Vec<Option<String>>) -> Vec<String> {
    names.into_iter().flatten().collect()
}

fn no_such_domain(name: &str) -> String {
    format!("no such domain {name:?}")
}

impl DomainInput {
    fn into_new_domain(self) -> Result<NewDomain, String> {
        Ok(NewDomain {
            description: self.description,
            is_active: self.is_active.unwrap_or(true),
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
            allowed_docker_registries: self
                .allowed_docker_registries
                .map(registries)
                .unwrap_or_default(),
            integration_id: self.integration_id,
        })
    }
}

impl ModifyDomainInput {
    fn into_changes(self) -> Result<DomainChanges, String> {
        if let Some(name) = &self.name
            && !is_slug(name)
        {
            return Err(format!(
                "name: {name:?} is not a slug (letters, digits, '.', '_', '-')"
            ));
        }
        Ok(DomainChanges {
            name: self.name,
            description: change(self.description),
            is_active: self.is_active,
            total_resource_slots: self
                .total_resource_slots
                .map(|slots| resource_slots("total_resource_slots", &slots))
                .transpose()?,
            allowed_vfolder_hosts: self
                .allowed_vfolder_hosts
                .map(|hosts| vfolder_host_permissions("allowed_vfolder_hosts", &hosts))
                .transpose()?,
            allowed_docker_registries: self.allowed_docker_registries.map(registries),
            integration_id: change(self.integration_id),
        })
    }
}

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl DomainMutation {
    async fn create_domain(
        &self,
        ctx: &Context<'_>,
        name: String,
        props: DomainInput,
    ) -> async_graphql::Result<Option<CreateDomain>> {
        let outcome = match mutation_guard(ctx, Allowed::SuperAdmin, "create_domain").await? {
            Some(refusal) => Outcome::Refused(refusal),
            None if !is_slug(&name) => Outcome::Refused(format!(
                "name: {name:?} is not a slug (letters, digits, '.', '_', '-')"
            )),
            None => match props.into_new_domain() {
                Err(reason) => Outcome::Refused(reason),
                Ok(domain) => Outcome::of(
                    queries::domains::create(gql(ctx).api.db(), &name, domain).await,
                    "creating a domain",
                )?,
            },
        };
        Ok(Some(CreateDomain {
            ok: Some(outcome.ok()),
            msg: Some(outcome.msg()),
            domain: outcome.into_item().map(Domain::from_row),
        }))
    }

    async fn modify_domain(
        &self,
        ctx: &Context<'_>,
        name: String,
        props: ModifyDomainInput,
    ) -> async_graphql::Result<Option<ModifyDomain>> {
        let outcome = match mutation_guard(ctx, Allowed::SuperAdmin, "modify_domain").await? {
            Some(refusal) => Outcome::Refused(refusal),
            None => match props.into_changes() {
                Err(reason) => Outcome::Refused(reason),
                Ok(changes) => {
                    let modified = queries::domains::modify(gql(ctx).api.db(), &name, changes)
                        .await
                        .and_then(|row| {
                            row.ok_or_else(|| WriteError::Rejected(no_such_domain(&name)))
                        });
                    Outcome::of(modified, "modifying a domain")?
                }
            },
        };
        Ok(Some(ModifyDomain {
            ok: Some(outcome.ok()),
            msg: Some(outcome.msg()),
            domain: outcome.into_item().map(Domain::from_row),
        }))
    }

    /// Marks the domain inactive rather than deleting it.
    async fn delete_domain(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> async_graphql::Result<Option<DeleteDomain>> {
        let outcome = match mutation_guard(ctx, Allowed::SuperAdmin, "delete_domain").await? {
            Some(refusal) => Outcome::Refused(refusal),
            None => {
                let deactivated = queries::domains::deactivate(gql(ctx).api.db(), &name)
                    .await
                    .map_err(WriteError::from)
                    .and_then(|found| found_or_refused(found, &name));
                Outcome::of(deactivated, "deactivating a domain")?
            }
        };
        Ok(Some(DeleteDomain {
            ok: Some(outcome.ok()),
            msg: Some(outcome.msg()),
        }))
    }

    /// Deletes the domain, which must have no users, projects or active kernels.
    async fn purge_domain(
        &self,
        ctx: &Context<'_>,
        name: String,
    ) -> async_graphql::Result<Option<PurgeDomain>> {
        let outcome = match mutation_guard(ctx, Allowed::SuperAdmin, "purge_domain").await? {
            Some(refusal) => Outcome::Refused(refusal),
            None => {
                let purged = queries::domains::purge(gql(ctx).api.db(), &name)
                    .await
                    .and_then(|found| found_or_refused(found, &name));
                Outcome::of(purged, "purging a domain")?
            }
        };
        Ok(Some(PurgeDomain {
            ok: Some(outcome.ok()),
            msg: Some(outcome.msg()),
        }))
    }
}

fn found_or_refused(found: bool, name: &str) -> Result<(), WriteError> {
    if found {
        Ok(())
    } else {
        Err(WriteError::Rejected(no_such_domain(name)))
    }
}
