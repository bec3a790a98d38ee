//! Domains.

use sea_orm::{ConnectionTrait, EntityTrait};

use crate::entities::domains;
use crate::error::DbError;

/// The domain called `name`, active or not.
pub async fn by_name(
    db: &impl ConnectionTrait,
    name: &str,
) -> Result<Option<domains::Model>, DbError> {
    domains::Entity::find_by_id(name)
        .one(db)
        .await
        .map_err(DbError::query(format!("reading domain {name:?}")))
}

#[cfg(test)]
mod tests {
    use crate::entities::{ResourceSlot, VFolderHostPermissions};
    use crate::queries::test_rows::{self, Rows};

    #[tokio::test]
    async fn by_name_finds_the_domain_and_nothing_else() {
        let (test, _rows) = test_rows::database("q_domains").await;
        let db = &test.connection;
        let domain = super::by_name(db, Rows::DOMAIN)
            .await
            .expect("query")
            .expect("found");
        assert_eq!(domain.name, Rows::DOMAIN);
        assert_eq!(domain.is_active, Some(true));
        assert_eq!(domain.total_resource_slots, Some(ResourceSlot::new()));
        assert_eq!(domain.allowed_vfolder_hosts, VFolderHostPermissions::new());
        assert!(domain.created_at.is_some(), "server default now()");
        assert_eq!(super::by_name(db, "nowhere").await.expect("query"), None);
    }
}
