//! The manager's PostgreSQL database exactly as Backend.AI 24.03 lays it out: sea-orm entities for
//! every table, the migrations that create and evolve the schema (with the reference's
//! `alembic_version` stamp so its tooling recognises the database), the schema state `schema
//! oneshot` decides on, and fixture files (`fixture populate` / `export`).
//!
//! This crate is the only one that speaks SQL. It must not know HTTP, etcd or manager.toml beyond
//! `[db]`, and it never logs passwords or password hashes.

pub mod advisory;
pub mod changes;
mod connect;
pub mod entities;
mod error;
pub mod fixtures;
pub mod image_ref;
pub mod migration;
pub mod minilang;
pub mod password;
pub mod queries;
pub mod schema;
#[cfg(feature = "testing")]
pub mod testing;
mod unavailable;

pub use connect::{PoolUsage, connect, database_url, ping, pool_usage};
pub use error::{ConstraintViolation, DbError, WriteError};
pub use unavailable::{sqlx_unavailable, unavailable, unavailable_in_chain};
