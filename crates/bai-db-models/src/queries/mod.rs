//! Typed queries the API and scheduler crates need, returning entity models (or small structs of
//! them) and [`DbError`](crate::DbError)s that say what was being looked up.
//!
//! Each takes any [`ConnectionTrait`](sea_orm::ConnectionTrait), so it runs on the pool or inside a
//! transaction alike.

pub mod agent_slots;
pub mod auth;
pub mod domains;
pub mod kernels;
pub mod keypairs;
pub mod occupancy;
pub mod project_membership;
pub mod resource_presets;
pub mod scaling_groups;
pub mod users;

#[cfg(test)]
mod test_rows;
