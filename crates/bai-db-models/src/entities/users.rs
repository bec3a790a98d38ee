//! `users`: user accounts: email (unique), bcrypt password hash, role, status, domain, resource
//! policy and main keypair.
//!
//! `users.main_access_key` -> `keypairs` and `keypairs.user` -> `users` form a cycle: insert the
//! user with no main keypair, then its keypairs, then set `main_access_key`.

use crate::entities::enums::{UserRole, UserStatus};
use sea_orm::entity::prelude::*;

/// One row of `users`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq)]
#[sea_orm(table_name = "users")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub uuid: Uuid,
    #[sea_orm(unique)]
    pub username: Option<String>,
    #[sea_orm(unique)]
    pub email: String,
    /// bcrypt hash (`$2b$12$...`, 60 characters) of the password. Never log it.
    pub password: Option<String>,
    pub need_password_change: Option<bool>,
    pub password_changed_at: Option<DateTimeWithTimeZone>,
    pub full_name: Option<String>,
    pub description: Option<String>,
    pub status: UserStatus,
    pub status_info: Option<String>,
    pub created_at: Option<DateTimeWithTimeZone>,
    /// No trigger updates it: every UPDATE must set it, as the reference's SQLAlchemy does.
    pub modified_at: Option<DateTimeWithTimeZone>,
    pub integration_id: Option<String>,
    pub domain_name: Option<String>,
    pub role: Option<UserRole>,
    /// Networks the user may connect from (`cidr[]`); none means anywhere.
    pub allowed_client_ip: Option<Vec<IpNetwork>>,
    pub totp_key: Option<String>,
    pub totp_activated: Option<bool>,
    pub totp_activated_at: Option<DateTimeWithTimeZone>,
    pub resource_policy: String,
    pub sudo_session_enabled: bool,
    /// The keypair the user signs in with; set after the keypair exists (see the module docs).
    pub main_access_key: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `association_groups_users.user_id` refers to this row.
    #[sea_orm(has_many = "super::association_groups_users::Entity")]
    AssociationGroupsUsers,
    /// `domain_name` -> `domains.name` (fk_users_domain_name_domains).
    #[sea_orm(
        belongs_to = "super::domains::Entity",
        from = "Column::DomainName",
        to = "super::domains::Column::Name",
        on_update = "NoAction",
        on_delete = "NoAction"
    )]
    Domain,
    /// `endpoint_tokens.session_owner` refers to this row.
    #[sea_orm(has_many = "super::endpoint_tokens::Entity")]
    EndpointTokens,
    /// `error_logs.user` refers to this row.
    #[sea_orm(has_many = "super::error_logs::Entity")]
    ErrorLogs,
    /// `kernels.user_uuid` refers to this row.
    #[sea_orm(has_many = "super::kernels::Entity")]
    Kernels,
    /// `main_access_key` -> `keypairs.access_key` (fk_users_main_access_key_keypairs).
    #[sea_orm(
        belongs_to = "super::keypairs::Entity",
        from = "Column::MainAccessKey",
        to = "super::keypairs::Column::AccessKey",
        on_update = "NoAction",
        on_delete = "SetNull"
    )]
    MainKeypair,
    /// `resource_policy` -> `user_resource_policies.name`
    /// (fk_users_resource_policy_user_resource_policies).
    #[sea_orm(
        belongs_to = "super::user_resource_policies::Entity",
        from = "Column::ResourcePolicy",
        to = "super::user_resource_policies::Column::Name",
        on_update = "NoAction",
        on_delete = "NoAction"
    )]
    ResourcePolicy,
    /// `routings.session_owner` refers to this row.
    #[sea_orm(has_many = "super::routings::Entity")]
    Routings,
    /// `session_templates.user_uuid` refers to this row.
    #[sea_orm(has_many = "super::session_templates::Entity")]
    SessionTemplates,
    /// `sessions.user_uuid` refers to this row.
    #[sea_orm(has_many = "super::sessions::Entity")]
    Sessions,
    /// `vfolder_permissions.user` refers to this row.
    #[sea_orm(has_many = "super::vfolder_permissions::Entity")]
    VfolderPermissions,
}

impl Related<super::association_groups_users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::AssociationGroupsUsers.def()
    }
}

impl Related<super::domains::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Domain.def()
    }
}

impl Related<super::endpoint_tokens::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::EndpointTokens.def()
    }
}

impl Related<super::error_logs::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ErrorLogs.def()
    }
}

impl Related<super::kernels::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Kernels.def()
    }
}

impl Related<super::keypairs::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::MainKeypair.def()
    }
}

impl Related<super::user_resource_policies::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ResourcePolicy.def()
    }
}

impl Related<super::routings::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Routings.def()
    }
}

impl Related<super::session_templates::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::SessionTemplates.def()
    }
}

impl Related<super::sessions::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Sessions.def()
    }
}

impl Related<super::vfolder_permissions::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::VfolderPermissions.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
