//! `do_log_cleanup` on the halfstack's PostgreSQL and etcd: error logs older than etcd
//! `config/logs/error/retention` (90 days when unset or unreadable) are deleted, newer ones kept.

use bai_agents::{ErrorLogCleaner, RETENTION_KEY};
use bai_db_models::entities::enums::ErrorLogSeverity;
use bai_db_models::entities::error_logs;
use bai_db_models::testing::TestDatabase;
use bai_etcd_store::Scope;
use bai_etcd_store::testing::TestNamespace;
use chrono::{Duration, Utc};
use sea_orm::{ActiveModelTrait, EntityTrait, PaginatorTrait, Set};

async fn file_error_log(db: &TestDatabase, days_ago: i64) {
    error_logs::ActiveModel {
        id: Set(sea_orm::prelude::Uuid::new_v4()),
        created_at: Set(Some((Utc::now() - Duration::days(days_ago)).fixed_offset())),
        severity: Set(Some(ErrorLogSeverity::Error)),
        message: Set(Some(format!("filed {days_ago} days ago"))),
        ..Default::default()
    }
    .insert(&db.connection)
    .await
    .expect("inserting an error log");
}

async fn error_logs_left(db: &TestDatabase) -> u64 {
    error_logs::Entity::find()
        .count(&db.connection)
        .await
        .expect("counting error logs")
}

#[tokio::test]
async fn error_logs_past_the_retention_are_deleted() {
    let db = TestDatabase::with_schema("agents_error_logs").await;
    let namespace = TestNamespace::new("error-logs");
    let etcd = namespace.store().await;
    for days_ago in [400, 100, 40, 10, 0] {
        file_error_log(&db, days_ago).await;
    }
    let cleaner = ErrorLogCleaner::new(db.connection.clone(), etcd.clone());

    // Unset: 90 days.
    assert_eq!(cleaner.clean().await.expect("cleanup"), 2);
    assert_eq!(error_logs_left(&db).await, 3);

    // Unreadable: 90 days again, nothing more to delete.
    etcd.put(RETENTION_KEY, "soon", Scope::Global)
        .await
        .expect("etcd put");
    assert_eq!(cleaner.clean().await.expect("cleanup"), 0);

    // A calendar month.
    etcd.put(RETENTION_KEY, "1mo", Scope::Global)
        .await
        .expect("etcd put");
    assert_eq!(cleaner.clean().await.expect("cleanup"), 1);

    // A week.
    etcd.put(RETENTION_KEY, "1w", Scope::Global)
        .await
        .expect("etcd put");
    assert_eq!(cleaner.clean().await.expect("cleanup"), 1);
    assert_eq!(error_logs_left(&db).await, 1);
}
