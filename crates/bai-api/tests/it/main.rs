//! The integration tests of bai-api, in one binary: requests through the real router of a test
//! cluster on the halfstack, one module per part of the API.

mod auth_middleware;
mod auth_routes;
mod common;
mod config_routes;
mod gql;
mod gql_agents;
mod gql_container_registries;
mod gql_domains;
mod gql_groups;
mod gql_image_mutations;
mod gql_images;
mod gql_limits;
mod gql_resource_policies;
mod gql_resource_presets;
mod gql_scaling_groups;
mod gql_sessions;
mod gql_user_keypair_mutations;
mod gql_users_keypairs;
mod hostile_input;
mod manager_routes;
mod resource_routes;
mod resource_usage;
mod scaling_groups;
mod scheduler_usage;
