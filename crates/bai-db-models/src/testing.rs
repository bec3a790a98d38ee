//! Throwaway databases on the halfstack's PostgreSQL (127.0.0.1:8100), one per test, so tests never
//! see each other's rows. Dropped (with `FORCE`) when the [`TestDatabase`] goes out of scope.

use std::time::{SystemTime, UNIX_EPOCH};

use bai_config::{DbConfig, DbKind, HostPort};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

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
    /// Creates `t_<label>_<pid>_<nanos>` and connects to it. Panics with a hint when the halfstack
    /// is not running: a test that needs it must fail, never skip.
    pub async fn create(label: &str) -> TestDatabase {
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
        let name = format!("t_{label}_{}_{nanos}", std::process::id());
        let admin = admin_connection().await;
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
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

fn admin_url() -> String {
    crate::database_url(&halfstack_db("postgres"))
}

async fn admin_connection() -> DatabaseConnection {
    Database::connect(admin_url()).await.unwrap_or_else(|error| {
        panic!("PostgreSQL at 127.0.0.1:8100 is not reachable ({error}); start it with: cargo xtask halfstack up")
    })
}
