//! `sgroups_for_groups`: which resource groups a project may use.

use sea_orm::entity::prelude::*;

/// One row of `sgroups_for_groups`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq)]
#[sea_orm(table_name = "sgroups_for_groups")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub scaling_group: String,
    pub group: Uuid,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `group` -> `groups.id` (fk_sgroups_for_groups_group_groups).
    #[sea_orm(
        belongs_to = "super::groups::Entity",
        from = "Column::Group",
        to = "super::groups::Column::Id",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    Group,
    /// `scaling_group` -> `scaling_groups.name`
    /// (fk_sgroups_for_groups_scaling_group_scaling_groups).
    #[sea_orm(
        belongs_to = "super::scaling_groups::Entity",
        from = "Column::ScalingGroup",
        to = "super::scaling_groups::Column::Name",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    ScalingGroup,
}

impl Related<super::groups::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Group.def()
    }
}

impl Related<super::scaling_groups::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ScalingGroup.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
