//! Resource presets: the list `/resource/presets` and `/resource/check-presets` offer, and the
//! admin API's look-ups and writes (create, modify, delete).

use sea_orm::sea_query::{Expr, SimpleExpr};
use sea_orm::{ActiveValue, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::entities::{ResourceSlot, resource_presets};
use crate::error::{DbError, WriteError};

/// Every preset, ordered by name. (The reference returns them in table order; a stable order makes
/// our responses reproducible and is one of the orders the reference can produce.)
pub async fn all(db: &impl ConnectionTrait) -> Result<Vec<resource_presets::Model>, DbError> {
    resource_presets::Entity::find()
        .order_by_asc(resource_presets::Column::Name)
        .all(db)
        .await
        .map_err(DbError::query("reading resource presets"))
}

/// The preset called `name`.
pub async fn by_name(
    db: &impl ConnectionTrait,
    name: &str,
) -> Result<Option<resource_presets::Model>, DbError> {
    resource_presets::Entity::find_by_id(name)
        .one(db)
        .await
        .map_err(DbError::query(format!("reading resource preset {name:?}")))
}

/// What a new preset holds besides its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPreset {
    pub resource_slots: ResourceSlot,
    /// Bytes.
    pub shared_memory: Option<i64>,
}

/// The changes to a preset; `None` leaves a column as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PresetChanges {
    pub resource_slots: Option<ResourceSlot>,
    pub shared_memory: Option<Option<i64>>,
}

/// Creates the preset `name`.
pub async fn create(
    db: &impl ConnectionTrait,
    name: &str,
    preset: NewPreset,
) -> Result<resource_presets::Model, WriteError> {
    let row = resource_presets::ActiveModel {
        name: ActiveValue::Set(name.to_owned()),
        resource_slots: ActiveValue::Set(preset.resource_slots),
        shared_memory: ActiveValue::Set(preset.shared_memory),
    };
    resource_presets::Entity::insert(row)
        .exec_with_returning(db)
        .await
        .map_err(WriteError::from_statement(
            format!("creating resource preset {name:?}"),
            |_| format!("resource preset {name:?} already exists"),
        ))
}

/// Applies `changes` to the preset `name`; false when there is no such preset.
pub async fn modify(
    db: &impl ConnectionTrait,
    name: &str,
    changes: PresetChanges,
) -> Result<bool, DbError> {
    use resource_presets::Column;
    let values: Vec<(Column, SimpleExpr)> = [
        (
            Column::ResourceSlots,
            changes.resource_slots.map(Expr::value),
        ),
        (Column::SharedMemory, changes.shared_memory.map(Expr::value)),
    ]
    .into_iter()
    .filter_map(|(column, value)| value.map(|value| (column, value)))
    .collect();
    if values.is_empty() {
        return Ok(by_name(db, name).await?.is_some());
    }
    let mut update = resource_presets::Entity::update_many().filter(Column::Name.eq(name));
    for (column, value) in values {
        update = update.col_expr(column, value);
    }
    let result = update.exec(db).await.map_err(DbError::query(format!(
        "modifying resource preset {name:?}"
    )))?;
    Ok(result.rows_affected > 0)
}

/// Deletes the preset `name` (nothing refers to presets); false when there is no such preset.
pub async fn delete(db: &impl ConnectionTrait, name: &str) -> Result<bool, DbError> {
    let result = resource_presets::Entity::delete_by_id(name)
        .exec(db)
        .await
        .map_err(DbError::query(format!("deleting resource preset {name:?}")))?;
    Ok(result.rows_affected > 0)
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

    #[tokio::test]
    async fn presets_are_created_modified_and_deleted() {
        let (test, _rows) = test_rows::database("q_presets_write").await;
        let db = &test.connection;
        let slots = ResourceSlot::from_json(&json!({"cpu": "2"})).expect("slots");
        let preset = super::NewPreset {
            resource_slots: slots.clone(),
            shared_memory: Some(1 << 30),
        };
        let created = super::create(db, "small", preset.clone())
            .await
            .expect("created");
        assert_eq!(created.shared_memory, Some(1 << 30));
        let duplicate = super::create(db, "small", preset).await;
        assert!(
            matches!(&duplicate, Err(crate::WriteError::Rejected(msg)) if msg == "resource preset \"small\" already exists"),
            "{duplicate:?}"
        );
        let changes = super::PresetChanges {
            shared_memory: Some(None),
            ..Default::default()
        };
        assert!(
            super::modify(db, "small", changes.clone())
                .await
                .expect("modified")
        );
        let modified = super::by_name(db, "small")
            .await
            .expect("read")
            .expect("found");
        assert_eq!(
            (modified.resource_slots, modified.shared_memory),
            (slots, None)
        );
        assert!(!super::modify(db, "nowhere", changes).await.expect("no row"));
        assert!(
            super::modify(db, "small", Default::default())
                .await
                .expect("nothing to change")
        );
        assert!(super::delete(db, "small").await.expect("deleted"));
        assert!(!super::delete(db, "small").await.expect("gone"));
        assert_eq!(super::by_name(db, "small").await.expect("read"), None);
    }
}
