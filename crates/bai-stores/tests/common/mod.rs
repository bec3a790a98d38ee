//! Test support shared by the bai-stores integration tests: the manager configuration that points
//! at a test's fresh database and etcd namespace.

use std::path::Path;

use bai_config::{Environment, LoadOptions, ManagerConfig};
use bai_db_models::testing::TestDatabase;
use bai_etcd_store::testing::TestNamespace;

/// A manager configuration on the halfstack's etcd with `namespace` and on `database`.
pub fn manager_config(namespace: &TestNamespace, database: &TestDatabase) -> ManagerConfig {
    let db = &database.config;
    let toml = format!(
        r#"[etcd]
namespace = "{namespace}"
addr = {{ host = "127.0.0.1", port = 8120 }}

[db]
type = "postgresql"
addr = {{ host = "{host}", port = {port} }}
name = "{name}"
user = "{user}"
password = "{password}"

[manager]
rpc-auth-manager-keypair = "fixtures/manager/manager.key_secret"
"#,
        namespace = namespace.name,
        host = db.addr.host,
        port = db.addr.port,
        name = db.name,
        user = db.user,
        password = db.password,
    );
    bai_config::load_from_str(
        &toml,
        Path::new("stores-test.toml"),
        &LoadOptions::default(),
        &Environment::in_dir(std::env::temp_dir()),
    )
    .unwrap_or_else(|error| panic!("test manager.toml: {error}"))
    .config
}
