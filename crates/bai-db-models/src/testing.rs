//! Throwaway databases on the halfstack's PostgreSQL (127.0.0.1:8100), one per test, so tests never
//! see each other's rows. Dropped (with `FORCE`) when the [`TestDatabase`] goes out of scope.
//!
//! A test that needs the schema (and fixture files) gets a copy of a template database
//! (`CREATE DATABASE … TEMPLATE`), which takes a fraction of a second, instead of running the
//! migrations and hashing the fixtures' passwords itself. A template is built once and then reused
//! by every test binary and run: its name (`bai_tpl_<hash>`) is a hash of everything it is built
//! from (the migrations, the schema and fixture loading code, the fixture files), so a changed
//! source makes a new template and a stale one is never cloned.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bai_config::{DbConfig, DbKind, HostPort};
use sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement, TransactionTrait,
};
use sha2::{Digest, Sha256};

use crate::fixtures::{self, FixtureFile};

/// The install guide's fixture files, in the order it loads them.
pub const INSTALL_GUIDE_FIXTURES: [(&str, &str); 4] = [
    (
        "example-users.json",
        include_str!("../../../fixtures/manager/example-users.json"),
    ),
    (
        "example-keypairs.json",
        include_str!("../../../fixtures/manager/example-keypairs.json"),
    ),
    (
        "example-set-user-main-access-keys.json",
        include_str!("../../../fixtures/manager/example-set-user-main-access-keys.json"),
    ),
    (
        "example-resource-presets.json",
        include_str!("../../../fixtures/manager/example-resource-presets.json"),
    ),
];

/// The halfstack's PostgreSQL, as configs/manager/halfstack.toml describes it.
pub fn halfstack_db(name: &str) -> DbConfig {
    DbConfig {
        kind: DbKind::Postgresql,
        addr: HostPort::new("127.0.0.1", 8100),
        name: name.to_owned(),
        user: "postgres".to_owned(),
        password: "develove".to_owned(),
        pool_size: 8,
        pool_recycle: -1.0,
        pool_pre_ping: false,
        max_overflow: 64,
        lock_conn_timeout: 0.0,
    }
}

/// A database that exists for one test.
#[derive(Debug)]
pub struct TestDatabase {
    pub config: DbConfig,
    pub connection: DatabaseConnection,
}

impl TestDatabase {
    /// An empty database, `t_<label>_<pid>_<sequence>_<nanos>`, for tests of the schema itself.
    /// Panics with a hint when the halfstack is not running: a test that needs it must fail, never
    /// skip.
    pub async fn create(label: &str) -> TestDatabase {
        let admin = admin_connection().await;
        TestDatabase::copy_of(&admin, label, None).await
    }

    /// A database with the current schema and no rows.
    pub async fn with_schema(label: &str) -> TestDatabase {
        TestDatabase::with_fixtures(label, &[]).await
    }

    /// A database with the current schema and the fixture files `(name, text)` loaded in order
    /// (as `fixture populate` loads them). Panics naming the file when one does not load.
    pub async fn with_fixtures(label: &str, files: &[(&str, &str)]) -> TestDatabase {
        let admin = admin_connection().await;
        let template = template(&admin, files).await;
        TestDatabase::copy_of(&admin, label, Some(&template)).await
    }

    async fn copy_of(
        admin: &DatabaseConnection,
        label: &str,
        template: Option<&str>,
    ) -> TestDatabase {
        let name = test_database_name(label);
        let create = match template {
            Some(template) => format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\""),
            None => format!("CREATE DATABASE \"{name}\""),
        };
        admin
            .execute_unprepared(&create)
            .await
            .unwrap_or_else(|error| panic!("cannot create test database {name}: {error}"));
        let config = halfstack_db(&name);
        let connection = crate::connect(&config)
            .await
            .unwrap_or_else(|error| panic!("cannot connect to test database {name}: {error}"));
        TestDatabase { config, connection }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.config.name.clone();
        // Drop runs outside any runtime the test may have; a small one of its own does the cleanup.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(runtime) = runtime {
                runtime.block_on(async {
                    if let Ok(admin) = Database::connect(admin_url()).await {
                        let _ = admin
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                            ))
                            .await;
                    }
                });
            }
        });
        let _ = cleanup.join();
    }
}

/// Every file a template's content depends on besides the fixture files, by path in this crate:
/// the migrations, how `oneshot` applies them, and the fixture loader (with password hashing).
/// `template_sources_cover_the_schema_and_fixture_code` keeps the list complete.
const TEMPLATE_SOURCES: [(&str, &str); 15] = [
    (
        "migrations/m0001_schema_24_03.sql",
        include_str!("../migrations/m0001_schema_24_03.sql"),
    ),
    ("src/migration/mod.rs", include_str!("migration/mod.rs")),
    (
        "src/migration/m0001_schema_24_03.rs",
        include_str!("migration/m0001_schema_24_03.rs"),
    ),
    ("src/schema.rs", include_str!("schema.rs")),
    ("src/password.rs", include_str!("password.rs")),
    ("src/fixtures/mod.rs", include_str!("fixtures/mod.rs")),
    (
        "src/fixtures/catalog.rs",
        include_str!("fixtures/catalog.rs"),
    ),
    (
        "src/fixtures/convert.rs",
        include_str!("fixtures/convert.rs"),
    ),
    ("src/fixtures/error.rs", include_str!("fixtures/error.rs")),
    (
        "src/fixtures/execute.rs",
        include_str!("fixtures/execute.rs"),
    ),
    ("src/fixtures/export.rs", include_str!("fixtures/export.rs")),
    ("src/fixtures/file.rs", include_str!("fixtures/file.rs")),
    ("src/fixtures/plan.rs", include_str!("fixtures/plan.rs")),
    ("src/fixtures/rules.rs", include_str!("fixtures/rules.rs")),
    ("src/testing.rs", include_str!("testing.rs")),
];

/// What every template's name starts with; the builder drops old ones by it.
const TEMPLATE_PREFIX: &str = "bai_tpl_";
/// The name a template is built under until it is complete (then it is renamed).
const BUILDING_SUFFIX: &str = "_building";
/// What the builder writes as a template's comment, followed by the Unix time it was built.
const BUILT_AT: &str = "bai-manager test template, built at ";
/// Templates of other hashes older than this are dropped by the next build: long enough that a
/// worktree at another commit testing at the same time keeps its template for the day.
const TEMPLATE_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);
/// The transaction-level advisory lock every builder takes, so that tests starting at the same
/// time (in one binary or many) build a template once and the others wait for it.
const BUILD_LOCK: i64 = 0x6261_695f_7470_6c31;

/// The name of the template of the current sources and `files`, built if it does not exist yet.
async fn template(admin: &DatabaseConnection, files: &[(&str, &str)]) -> String {
    let name = template_name(files);
    if database_exists(admin, &name).await {
        return name;
    }
    // The lock lives as long as this transaction; the build itself runs on other connections of
    // the pool, because CREATE DATABASE cannot run inside a transaction.
    let lock = admin
        .begin()
        .await
        .unwrap_or_else(|error| panic!("cannot start the template lock transaction: {error}"));
    lock.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({BUILD_LOCK})"))
        .await
        .unwrap_or_else(|error| panic!("cannot take the template build lock: {error}"));
    if !database_exists(admin, &name).await {
        build_template(admin, &name, files).await;
        drop_old_templates(admin, &name).await;
    }
    lock.commit()
        .await
        .unwrap_or_else(|error| panic!("cannot release the template build lock: {error}"));
    name
}

/// Builds under a temporary name, then renames: a template under its final name is always
/// complete. It takes no connections, so cloning it never finds it "accessed by other users".
async fn build_template(admin: &DatabaseConnection, name: &str, files: &[(&str, &str)]) {
    let building = format!("{name}{BUILDING_SUFFIX}");
    // Whatever a builder that was killed halfway left: no other builder runs while we hold the lock.
    for (leftover, _) in templates(admin).await {
        if leftover.ends_with(BUILDING_SUFFIX) {
            drop_template(admin, &leftover).await;
        }
    }
    admin_execute(admin, &format!("CREATE DATABASE \"{building}\"")).await;
    let connection = crate::connect(&halfstack_db(&building))
        .await
        .unwrap_or_else(|error| panic!("cannot connect to {building}: {error}"));
    crate::schema::oneshot(&connection)
        .await
        .unwrap_or_else(|error| panic!("schema oneshot on {building}: {error}"));
    for (file_name, text) in files {
        let file = FixtureFile::parse(file_name, text)
            .unwrap_or_else(|error| panic!("fixture {file_name}: {error}"));
        fixtures::populate(&connection, &file)
            .await
            .unwrap_or_else(|error| panic!("fixture {file_name}: {error}"));
    }
    connection
        .close()
        .await
        .unwrap_or_else(|error| panic!("closing the connection to {building}: {error}"));
    let built_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    for statement in [
        format!("ALTER DATABASE \"{building}\" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"),
        format!("COMMENT ON DATABASE \"{building}\" IS '{BUILT_AT}{built_at}'"),
        format!("ALTER DATABASE \"{building}\" RENAME TO \"{name}\""),
    ] {
        admin_execute(admin, &statement).await;
    }
}

/// Drops the templates of other hashes built more than [`TEMPLATE_RETENTION`] ago.
async fn drop_old_templates(admin: &DatabaseConnection, current: &str) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    for (name, comment) in templates(admin).await {
        if name == current || name.ends_with(BUILDING_SUFFIX) {
            continue;
        }
        let built_at = comment
            .as_deref()
            .and_then(|comment| comment.strip_prefix(BUILT_AT))
            .and_then(|seconds| seconds.parse::<u64>().ok())
            .unwrap_or(0);
        if now.saturating_sub(built_at) > TEMPLATE_RETENTION.as_secs() {
            drop_template(admin, &name).await;
        }
    }
}

/// `bai_tpl_` and 16 hex digits of the SHA-256 of the template's sources and fixture files.
fn template_name(files: &[(&str, &str)]) -> String {
    let mut hash = Sha256::new();
    for (path, text) in TEMPLATE_SOURCES.iter().chain(files) {
        // Lengths first, so that no two different lists hash alike.
        for part in [path, text] {
            hash.update((part.len() as u64).to_le_bytes());
            hash.update(part.as_bytes());
        }
    }
    let digest = hash.finalize();
    format!(
        "{TEMPLATE_PREFIX}{}",
        data_encoding::HEXLOWER.encode(&digest[..8])
    )
}

/// `t_<label>_<pid>_<sequence>_<nanos>`: unique among the tests of one process (the sequence) and
/// across processes and runs (the pid and the clock).
fn test_database_name(label: &str) -> String {
    static SEQUENCE: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.subsec_nanos());
    let label: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(30)
        .collect();
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    format!("t_{label}_{}_{sequence}_{nanos}", std::process::id())
}

async fn database_exists(admin: &DatabaseConnection, name: &str) -> bool {
    admin
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT 1 AS found FROM pg_database WHERE datname = $1",
            [name.into()],
        ))
        .await
        .unwrap_or_else(|error| panic!("cannot look up database {name}: {error}"))
        .is_some()
}

/// The test templates (also those being built), with their comments.
async fn templates(admin: &DatabaseConnection) -> Vec<(String, Option<String>)> {
    admin
        .query_all(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT datname, shobj_description(oid, 'pg_database') AS comment FROM pg_database \
             WHERE starts_with(datname, $1)",
            [TEMPLATE_PREFIX.into()],
        ))
        .await
        .unwrap_or_else(|error| panic!("cannot list the test templates: {error}"))
        .iter()
        .filter_map(|row| {
            Some((
                row.try_get::<String>("", "datname").ok()?,
                row.try_get::<Option<String>>("", "comment").ok()?,
            ))
        })
        .collect()
}

/// A template cannot be dropped until it is no longer one.
async fn drop_template(admin: &DatabaseConnection, name: &str) {
    admin_execute(
        admin,
        &format!("ALTER DATABASE \"{name}\" WITH IS_TEMPLATE false"),
    )
    .await;
    drop_database(admin, name).await;
}

async fn drop_database(admin: &DatabaseConnection, name: &str) {
    admin_execute(
        admin,
        &format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
    )
    .await;
}

async fn admin_execute(admin: &DatabaseConnection, statement: &str) {
    admin
        .execute_unprepared(statement)
        .await
        .unwrap_or_else(|error| panic!("{statement}: {error}"));
}

fn admin_url() -> String {
    crate::database_url(&halfstack_db("postgres"))
}

async fn admin_connection() -> DatabaseConnection {
    Database::connect(admin_url()).await.unwrap_or_else(|error| {
        panic!("PostgreSQL at 127.0.0.1:8100 is not reachable ({error}); start it with: cargo xtask halfstack up")
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    #[test]
    fn template_sources_cover_the_schema_and_fixture_code() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut expected: BTreeSet<String> = ["src/schema.rs", "src/password.rs", "src/testing.rs"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        for dir in ["migrations", "src/migration", "src/fixtures"] {
            let entries = std::fs::read_dir(root.join(dir))
                .unwrap_or_else(|error| panic!("reading {dir}: {error}"));
            for entry in entries {
                let entry = entry.unwrap_or_else(|error| panic!("reading {dir}: {error}"));
                expected.insert(format!("{dir}/{}", entry.file_name().to_string_lossy()));
            }
        }
        let listed: BTreeSet<String> = TEMPLATE_SOURCES
            .iter()
            .map(|(path, _)| (*path).to_owned())
            .collect();
        assert_eq!(listed, expected, "TEMPLATE_SOURCES in src/testing.rs");
    }

    #[test]
    fn template_names_differ_by_fixture_files_and_fit_postgresql() {
        let schema_only = template_name(&[]);
        let with_users = template_name(&[("users.json", "{}")]);
        let renamed = template_name(&[("user.json", "s.json{}")]);
        assert_ne!(schema_only, with_users);
        assert_ne!(with_users, renamed);
        assert_eq!(schema_only, template_name(&[]));
        assert!(format!("{with_users}{BUILDING_SUFFIX}").len() <= 63);
    }

    /// Many tests start at once on a template nobody has built yet: one builds it, the others
    /// wait for it, and all their copies hold its rows.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_clones_of_one_template() {
        let text = r#"{"domains": [{"name": "clone-test", "description": "concurrent"}]}"#;
        let files = [("clone-test.json", text)];
        // This test's own fixture text: a template no other test uses, so it may be dropped here
        // to watch it being built again under contention.
        let name = template_name(&files);
        let admin = admin_connection().await;
        let lock = admin.begin().await.expect("lock transaction");
        lock.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({BUILD_LOCK})"))
            .await
            .expect("the build lock");
        if database_exists(&admin, &name).await {
            drop_template(&admin, &name).await;
        }
        lock.commit().await.expect("releasing the build lock");
        let clones: Vec<_> = (0..12)
            .map(|index| {
                tokio::spawn(async move {
                    TestDatabase::with_fixtures(&format!("clone_{index}"), &files).await
                })
            })
            .collect();
        for clone in clones {
            let database = clone.await.expect("the clone task");
            let row = database
                .connection
                .query_one(Statement::from_string(
                    DbBackend::Postgres,
                    "SELECT description FROM domains WHERE name = 'clone-test'",
                ))
                .await
                .expect("query")
                .expect("the fixture's domain");
            assert_eq!(
                row.try_get::<Option<String>>("", "description")
                    .expect("description"),
                Some("concurrent".to_owned())
            );
        }
        assert!(database_exists(&admin, &name).await);
        assert!(!database_exists(&admin, &format!("{name}{BUILDING_SUFFIX}")).await);
    }
}
