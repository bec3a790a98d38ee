//! `keypairs`: API keypairs: access key, secret key (in plaintext: HMAC request signing needs it),
//! owner and resource policy.

use sea_orm::entity::prelude::*;

/// One row of `keypairs`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq)]
#[sea_orm(table_name = "keypairs")]
pub struct Model {
    /// The owner's email (a legacy name), not an id.
    pub user_id: Option<String>,
    #[sea_orm(primary_key, auto_increment = false)]
    pub access_key: String,
    /// Plaintext: HMAC request signing needs it. Never log it.
    pub secret_key: Option<String>,
    pub is_active: Option<bool>,
    pub is_admin: Option<bool>,
    pub created_at: Option<DateTimeWithTimeZone>,
    /// No trigger updates it: every UPDATE must set it, as the reference's SQLAlchemy does.
    pub modified_at: Option<DateTimeWithTimeZone>,
    pub last_used: Option<DateTimeWithTimeZone>,
    pub rate_limit: Option<i32>,
    pub num_queries: Option<i32>,
    #[sea_orm(column_type = "Text", nullable)]
    pub ssh_public_key: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub ssh_private_key: Option<String>,
    /// The owner's uuid.
    pub user: Uuid,
    pub resource_policy: String,
    /// msgpack array of `{path, perm, data}`; empty is
    /// [`EMPTY_DOTFILES`](crate::entities::EMPTY_DOTFILES).
    #[sea_orm(column_type = "VarBinary(StringLen::None)")]
    pub dotfiles: Vec<u8>,
    pub bootstrap_script: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `kernels.access_key` refers to this row.
    #[sea_orm(has_many = "super::kernels::Entity")]
    Kernels,
    /// `resource_policy` -> `keypair_resource_policies.name`
    /// (fk_keypairs_resource_policy_keypair_resource_policies).
    #[sea_orm(
        belongs_to = "super::keypair_resource_policies::Entity",
        from = "Column::ResourcePolicy",
        to = "super::keypair_resource_policies::Column::Name",
        on_update = "NoAction",
        on_delete = "NoAction"
    )]
    ResourcePolicy,
    /// `sessions.access_key` refers to this row.
    #[sea_orm(has_many = "super::sessions::Entity")]
    Sessions,
    /// `sgroups_for_keypairs.access_key` refers to this row.
    #[sea_orm(has_many = "super::sgroups_for_keypairs::Entity")]
    SgroupsForKeypairs,
    /// `user` -> `users.uuid` (fk_keypairs_user_users).
    #[sea_orm(
        belongs_to = "super::users::Entity",
        from = "Column::User",
        to = "super::users::Column::Uuid",
        on_update = "NoAction",
        on_delete = "NoAction"
    )]
    User,
}

impl Related<super::kernels::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Kernels.def()
    }
}

impl Related<super::keypair_resource_policies::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ResourcePolicy.def()
    }
}

impl Related<super::sessions::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Sessions.def()
    }
}

impl Related<super::sgroups_for_keypairs::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::SgroupsForKeypairs.def()
    }
}

impl Related<super::users::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
