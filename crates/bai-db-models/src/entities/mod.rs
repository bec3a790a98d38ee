//! sea-orm entities for the 28 tables of the Backend.AI 24.03 schema, one module per table named
//! after it (`alembic_version` and our `seaql_migrations` are bookkeeping, not models).
//!
//! The entities mirror the reference DDL (migrations/m0001_schema_24_03.sql) column for column;
//! tests/it/schema.rs reads every table through them, so a type that disagrees with the DDL fails
//! there. Enums are in [`enums`], typed JSON columns use [`ResourceSlot`] and
//! [`VFolderHostPermissions`], and foreign keys are sea-orm relations named after the column
//! (`keypairs::Relation::User`). Where two relations lead to the same table (the users <-> keypairs
//! cycle, `endpoints.created_user`/`session_owner`, `session_dependencies`) there is no
//! `Related` impl for the ambiguous direction: join with the `Relation` variant you mean.
//!
//! Many NOT NULL columns have only a Python-side default in the reference (db-fixtures.md §1.4):
//! whoever inserts must supply it, e.g. `keypairs.dotfiles` = [`EMPTY_DOTFILES`].

pub mod enums;
pub mod prelude;
mod resource_slot;
mod vfolder_host_permissions;

pub mod agents;
pub mod association_groups_users;
pub mod domains;
pub mod endpoint_tokens;
pub mod endpoints;
pub mod error_logs;
pub mod groups;
pub mod image_aliases;
pub mod images;
pub mod kernels;
pub mod keypair_resource_policies;
pub mod keypairs;
pub mod project_resource_policies;
pub mod resource_presets;
pub mod routings;
pub mod scaling_groups;
pub mod session_dependencies;
pub mod session_templates;
pub mod sessions;
pub mod sgroups_for_domains;
pub mod sgroups_for_groups;
pub mod sgroups_for_keypairs;
pub mod user_resource_policies;
pub mod users;
pub mod vfolder_attachment;
pub mod vfolder_invitations;
pub mod vfolder_permissions;
pub mod vfolders;

pub use resource_slot::{ResourceSlot, ResourceSlotError, SlotAmount};
pub use vfolder_host_permissions::{
    UnknownVFolderHostPermission, VFolderHostPermission, VFolderHostPermissions,
};

/// An empty dotfiles list: msgpack's empty array, the reference's default for the NOT NULL
/// `dotfiles` columns of `domains`, `groups` and `keypairs`.
pub const EMPTY_DOTFILES: [u8; 1] = [0x90];
