//! Resource presets (`/resource/presets`, `/resource/check-presets`).

use sea_orm::{ConnectionTrait, EntityTrait, QueryOrder};

use crate::entities::resource_presets;
use crate::error::DbError;

/// Every preset, ordered by name. (The reference returns them in table order; a stable order makes
/// our responses reproducible and is one of the orders the reference can produce.)
pub async fn all(db: &impl ConnectionTrait) -> Result<Vec<resource_presets::Model>, DbError> {
    resource_presets::Entity::find()
        .order_by_asc(resource_presets::Column::Name)
        .all(db)
        .await
        .map_err(DbError::query("reading resource presets"))
}

#[cfg(test)]
mod tests {
    use sea_orm::{ActiveModelTrait, ConnectionTrait, Set};
    use serde_json::json;

    use crate::entities::{ResourceSlot, resource_presets};
    use crate::queries::test_rows;

    #[tokio::test]
    async fn all_lists_presets_by_name_with_typed_slots() {
        let (test, _rows) = test_rows::database("q_presets").await;
        let db = &test.connection;
        assert_eq!(super::all(db).await.expect("query"), vec![]);

        let slots =
            ResourceSlot::from_json(&json!({"cpu": "2", "mem": "4294967296"})).expect("slots");
        resource_presets::ActiveModel {
            name: Set("small".to_owned()),
            resource_slots: Set(slots.clone()),
            shared_memory: Set(Some(1 << 30)),
        }
        .insert(db)
        .await
        .expect("insert small");
        // The shipped example fixture stores raw JSON like this: numbers and a binary size.
        db.execute_unprepared(
            r#"INSERT INTO resource_presets (name, resource_slots) VALUES ('01-large', '{"cpu": 8, "mem": "16g", "cuda.shares": 1.5}')"#,
        )
        .await
        .expect("insert large");

        let presets = super::all(db).await.expect("query");
        let names: Vec<&str> = presets.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["01-large", "small"]);
        assert_eq!(
            presets[0].resource_slots.to_json(),
            json!({"cpu": "8", "mem": "17179869184", "cuda.shares": "1.5"})
        );
        assert_eq!(presets[0].shared_memory, None);
        assert_eq!(presets[1].resource_slots, slots);
        assert_eq!(presets[1].shared_memory, Some(1 << 30));
    }
}
