//! Creates the Backend.AI 24.03.11 schema and stamps the reference's Alembic head.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

use super::ALEMBIC_HEAD;

const SCHEMA: &str = include_str!("../../migrations/m0001_schema_24_03.sql");

#[derive(Debug, DeriveMigrationName)]
pub struct Migration;

#[sea_orm_migration::async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        db.execute_unprepared(SCHEMA).await?;
        db.execute_unprepared(&format!(
            "INSERT INTO public.alembic_version (version_num) VALUES ('{ALEMBIC_HEAD}')"
        ))
        .await?;
        Ok(())
    }

    /// The base schema holds all the data; there is nothing below it to go back to.
    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Err(DbErr::Migration(
            "the 24.03 base schema cannot be reverted; drop the database instead".to_owned(),
        ))
    }
}
