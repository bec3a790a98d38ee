//! `sgroups_for_keypairs`: which resource groups a keypair may use.

use sea_orm::entity::prelude::*;

/// One row of `sgroups_for_keypairs`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq)]
#[sea_orm(table_name = "sgroups_for_keypairs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub scaling_group: String,
    pub access_key: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `access_key` -> `keypairs.access_key` (fk_sgroups_for_keypairs_access_key_keypairs).
    #[sea_orm(
        belongs_to = "super::keypairs::Entity",
        from = "Column::AccessKey",
        to = "super::keypairs::Column::AccessKey",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    Keypair,
    /// `scaling_group` -> `scaling_groups.name`
    /// (fk_sgroups_for_keypairs_scaling_group_scaling_groups).
    #[sea_orm(
        belongs_to = "super::scaling_groups::Entity",
        from = "Column::ScalingGroup",
        to = "super::scaling_groups::Column::Name",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    ScalingGroup,
}

impl Related<super::keypairs::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Keypair.def()
    }
}

impl Related<super::scaling_groups::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ScalingGroup.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
