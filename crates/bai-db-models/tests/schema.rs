//! `schema oneshot` on real PostgreSQL: an empty database gets the 24.03 schema and the reference's
//! Alembic stamp, a current one is left alone, and one with tables of unknown origin is refused.

use bai_db_models::migration::ALEMBIC_HEAD;
use bai_db_models::schema::{self, OneshotOutcome, SchemaError, SchemaState};
use bai_db_models::testing::TestDatabase;
use sea_orm::ConnectionTrait;

#[tokio::test]
async fn oneshot_creates_the_schema_once_and_then_says_it_is_current() {
    let test = TestDatabase::create("oneshot").await;
    let db = &test.connection;
    assert_eq!(schema::state(db).await.expect("state"), SchemaState::Empty);

    let created = schema::oneshot(db).await.expect("oneshot");
    assert_eq!(
        created,
        OneshotOutcome::Created {
            applied: vec!["m0001_schema_24_03".to_owned()]
        }
    );
    assert_eq!(
        schema::state(db).await.expect("state"),
        SchemaState::Managed {
            applied: vec!["m0001_schema_24_03".to_owned()],
            pending: vec![],
            alembic_revision: Some(ALEMBIC_HEAD.to_owned()),
        }
    );
    assert_eq!(
        schema::oneshot(db).await.expect("second oneshot"),
        OneshotOutcome::AlreadyCurrent
    );
}

#[tokio::test]
async fn oneshot_refuses_tables_it_did_not_create() {
    let test = TestDatabase::create("oneshot_foreign").await;
    let db = &test.connection;
    db.execute_unprepared("CREATE TABLE users (id int); CREATE TABLE alembic_version (version_num varchar(32)); INSERT INTO alembic_version VALUES ('59a622c31820')")
        .await
        .expect("foreign tables");
    let error = schema::oneshot(db).await.expect_err("refused");
    assert!(matches!(error, SchemaError::Foreign { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "the database already has 2 tables (alembic_version, users) that bai-manager did not create \
         (alembic_version says 59a622c31820: made by the reference's tooling?); refusing to touch them. \
         Use an empty database, or drop these tables first"
    );
    let tables = db
        .query_all(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
        ))
        .await
        .expect("tables");
    assert_eq!(tables.len(), 2, "nothing was created");
}
