//! `sgroups_for_domains`: which resource groups a domain may use.

use sea_orm::entity::prelude::*;

/// One row of `sgroups_for_domains`.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Eq)]
#[sea_orm(table_name = "sgroups_for_domains")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub scaling_group: String,
    pub domain: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// `domain` -> `domains.name` (fk_sgroups_for_domains_domain_domains).
    #[sea_orm(
        belongs_to = "super::domains::Entity",
        from = "Column::Domain",
        to = "super::domains::Column::Name",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    Domain,
    /// `scaling_group` -> `scaling_groups.name`
    /// (fk_sgroups_for_domains_scaling_group_scaling_groups).
    #[sea_orm(
        belongs_to = "super::scaling_groups::Entity",
        from = "Column::ScalingGroup",
        to = "super::scaling_groups::Column::Name",
        on_update = "Cascade",
        on_delete = "Cascade"
    )]
    ScalingGroup,
}

impl Related<super::domains::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Domain.def()
    }
}

impl Related<super::scaling_groups::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ScalingGroup.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
