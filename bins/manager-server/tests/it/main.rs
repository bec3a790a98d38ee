//! The integration tests of manager-server, in one binary: the built `manager-server` started on
//! the halfstack, driven over HTTP and by the official clients, and stopped with signals.

mod access_log;
mod admin_agents;
mod admin_domains;
mod admin_groups;
mod admin_image_mutations;
mod admin_images_sessions;
mod admin_permissions;
mod admin_resource_policies;
mod admin_scaling_groups;
mod admin_user_keypair_mutations;
mod admin_users_keypairs;
mod agents;
mod auth_cache;
mod batch;
mod cluster;
mod dotfiles;
mod error_logs;
mod events;
mod execute;
mod fuzz;
#[path = "../common/harness.rs"]
mod harness;
mod hostile_connections;
mod idle;
mod live_config;
mod observability;
mod official_client;
mod resource_usage;
mod scheduler_status;
mod server;
mod services;
mod session_files;
mod session_ops;
mod session_support;
mod session_templates;
mod sessions;
mod support;
mod vfolders;
mod webui;
