//! The GraphQL admin API (`POST /admin/gql`, legacy `POST /admin/graphql`): the schema with the
//! reference's snake_case names, the caller's privileges, and the result shapes the official client
//! reads (api-auth-client.md §6).
//!
//! Each group of objects (users, keypairs, domains, ...) lives in its own module with a query part
//! and a mutation part, merged into [`Query`] and [`Mutation`].

mod agents;
pub mod common;
mod container_registries;
mod container_registry_mutations;
mod domains;
mod endpoints;
mod groups;
mod image_mutations;
mod images;
mod keypair_mutations;
mod keypairs;
mod permissions;
mod quota_scopes;
mod resource_policies;
mod resource_presets;
mod scaling_groups;
mod sessions;
mod user_mutations;
mod users;

pub(crate) use endpoints::runtime_label;

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection};
use async_graphql::{
    EmptySubscription, MergedObject, Schema, ServerError, ServerResult, Variables,
};

use crate::auth::Caller;
use crate::context::ApiContext;

/// Every query root field.
#[derive(MergedObject, Default, Debug)]
pub struct Query(
    keypairs::KeypairQuery,
    domains::DomainQuery,
    groups::GroupQuery,
    users::UserQuery,
    scaling_groups::ScalingGroupQuery,
    agents::AgentQuery,
    images::ImageQuery,
    sessions::SessionQuery,
    container_registries::ContainerRegistryQuery,
    resource_policies::ResourcePolicyQuery,
    resource_presets::ResourcePresetQuery,
    endpoints::EndpointQuery,
    quota_scopes::QuotaScopeQuery,
    permissions::PermissionQuery,
);

/// Every mutation root field.
#[derive(MergedObject, Default, Debug)]
pub struct Mutation(
    domains::DomainMutation,
    groups::GroupMutation,
    user_mutations::UserMutation,
    keypair_mutations::KeypairMutation,
    scaling_groups::ScalingGroupMutation,
    resource_policies::ResourcePolicyMutation,
    resource_presets::ResourcePresetMutation,
    quota_scopes::QuotaScopeMutation,
    image_mutations::ImageMutation,
    container_registry_mutations::ContainerRegistryMutation,
);

pub type AdminSchema = Schema<Query, Mutation, EmptySubscription>;

/// What every resolver can reach: the worker's context and the authenticated caller.
#[derive(Clone, Debug)]
pub struct GqlContext {
    pub api: ApiContext,
    pub caller: Arc<Caller>,
}

/// The deepest selection a document may nest (fragments counted where they are spread). The
/// reference has no limit. graphql-js' standard introspection query nests 13 deep; the official
/// clients' and the WebUI's queries at most 8 (tests/it/gql_limits.rs sends the former).
pub const MAX_DEPTH: usize = 20;
/// The most fields a document may select (every field of every selection, fragments expanded,
/// aliases counted separately; lists are not multiplied). The reference has no limit. The standard
/// introspection query selects about 150; an alias bomb of a thousand fields is refused.
pub const MAX_COMPLEXITY: usize = 1_000;

/// Introspection is refused unless etcd `config/api/allow-graphql-schema-introspection` is true, as
/// in the reference; the setting is read per request, so a change in etcd applies at once. A
/// document nested deeper than [`MAX_DEPTH`] or selecting more than [`MAX_COMPLEXITY`] fields is
/// refused before it runs (an error in `errors`, answered 200 like every GraphQL error).
pub fn schema() -> AdminSchema {
    Schema::build(Query::default(), Mutation::default(), EmptySubscription)
        .extension(RefuseIntrospection)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

/// Refuses a document that asks for `__schema` or `__type` with an error (as the reference's
/// validation rule does) instead of answering `null`, while the shared configuration in effect
/// does not allow introspection.
struct RefuseIntrospection;

impl ExtensionFactory for RefuseIntrospection {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(RefuseIntrospection)
    }
}

#[async_trait::async_trait]
impl Extension for RefuseIntrospection {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        let allowed = ctx.data_opt::<GqlContext>().is_some_and(|gql| {
            gql.api
                .shared_config()
                .api
                .allow_graphql_schema_introspection
        });
        if allowed {
            return Ok(document);
        }
        let asks_for_schema = document.operations.iter().any(|(_, operation)| {
            operation
                .node
                .selection_set
                .node
                .items
                .iter()
                .any(|selection| {
                    matches!(&selection.node, Selection::Field(field)
                    if matches!(field.node.name.node.as_str(), "__schema" | "__type"))
                })
        });
        if asks_for_schema {
            return Err(ServerError::new(
                "GraphQL introspection is disabled (etcd config/api/allow-graphql-schema-introspection)",
                None,
            ));
        }
        Ok(document)
    }
}
