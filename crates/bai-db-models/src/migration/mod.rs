//! Schema migrations, applied in order and recorded by sea-orm-migration in `seaql_migrations`.
//!
//! The first migration creates the Backend.AI 24.03 schema exactly as the reference's
//! `schema oneshot` does and stamps `alembic_version` with the reference's head revision, so that
//! the reference's own tooling recognises the database as a 24.03 one. Later migrations change it;
//! each new one also moves the Alembic stamp when it corresponds to a reference revision.

use sea_orm_migration::prelude::*;

mod m0001_schema_24_03;

/// The Alembic head revision of Backend.AI 24.03.11, which the schema of [`m0001_schema_24_03`]
/// corresponds to.
pub const ALEMBIC_HEAD: &str = "3596bc12ec09";

/// The ordered list of our migrations.
#[derive(Debug)]
pub struct Migrator;

#[sea_orm_migration::async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m0001_schema_24_03::Migration)]
    }
}
