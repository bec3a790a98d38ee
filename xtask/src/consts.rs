//! Ports, credentials and paths of the halfstack, in one place.
//!
//! These must equal `configs/manager/halfstack.toml` (etcd `127.0.0.1:8120` without auth, namespace
//! `local`; db `localhost:8100`, database `backend`, user `postgres`, password `develove`; redis
//! `127.0.0.1:8110` with password `develove`), which in turn follows the reference project's
//! `docker-compose.halfstack-main.yml`. They are well-known development values, not secrets.

/// Host every halfstack service listens on (PostgreSQL also on `::1` through `localhost`).
pub const HOST: &str = "127.0.0.1";

/// PostgreSQL 15 from Debian's `postgresql-15` package.
pub const PG_BIN_DIR: &str = "/usr/lib/postgresql/15/bin";
pub const PG_PORT: u16 = 8100;
pub const PG_USER: &str = "postgres";
pub const PG_PASSWORD: &str = "develove";
pub const PG_DATABASE: &str = "backend";
/// The OS account PostgreSQL runs as when we are root (PostgreSQL refuses to run as root).
pub const PG_OS_USER: &str = "postgres";
/// Same as the reference compose file (`postgres -c 'max_connections=256'`).
pub const PG_MAX_CONNECTIONS: u32 = 256;

pub const REDIS_PORT: u16 = 8110;
pub const REDIS_PASSWORD: &str = "develove";

pub const ETCD_CLIENT_PORT: u16 = 8120;
pub const ETCD_PEER_PORT: u16 = 8121;
pub const ETCD_NAME: &str = "bai-halfstack";
/// The etcd namespace of `configs/manager/halfstack.toml`, printed for the developer.
pub const ETCD_NAMESPACE: &str = "local";

/// The CNCF distribution registry of Debian's `docker-registry`, anonymous, for test images.
pub const REGISTRY_PORT: u16 = 8130;
/// The registry's name in etcd (`config/docker/registry/{name}`) and in canonical image names;
/// host:port, as registries on a port are usually named; etcd keys hold it URL-quoted.
pub const REGISTRY_NAME: &str = "127.0.0.1:8130";

/// How long each service may take to answer after it was started.
pub const READY_TIMEOUT_SECS: u64 = 30;

/// Debian packages the halfstack runs on (etcd-client provides etcdctl).
pub const HALFSTACK_PACKAGES: &[&str] = &[
    "postgresql-15",
    "redis-server",
    "etcd-server",
    "etcd-client",
    "docker-registry",
];
/// Debian packages needed to build and test the workspace, besides the halfstack ones.
/// `libprotobuf-dev` holds the well-known `.proto` files (`google/protobuf/descriptor.proto`) that
/// etcd-client's protos import; `protobuf-compiler` alone does not bring them. `libsodium-dev` is
/// what libsodium-sys-stable links through pkg-config (`.cargo/config.toml` `[env]`). `libzmq3-dev` is
/// the libzmq (built with libsodium, so with CURVE) that the `zmq` 0.9 crate of `bai-agent-rpc` links;
/// the `zmq` 0.10 crate would build a bundled libzmq without CURVE instead.
pub const BUILD_PACKAGES: &[&str] = &[
    "protobuf-compiler",
    "libprotobuf-dev",
    "pkg-config",
    "libsodium-dev",
    "libzmq3-dev",
];
/// Debian packages the tests drive besides the halfstack: the browser the WebUI test runs in
/// (Playwright is pointed at `/usr/bin/chromium`; it downloads no browser of its own).
pub const TEST_PACKAGES: &[&str] = &["chromium"];

/// Folder of `cargo xtask halfstack` data, relative to the workspace root.
pub const HALFSTACK_DIR: &str = ".halfstack";
/// Folder of `cargo xtask venv` virtualenvs, relative to the workspace root.
pub const VENVS_DIR: &str = ".venvs";

/// URL of the halfstack database with real password authentication over TCP.
pub fn pg_url(database: &str) -> String {
    format!("postgresql://{PG_USER}:{PG_PASSWORD}@{HOST}:{PG_PORT}/{database}")
}

pub fn etcd_client_url() -> String {
    format!("http://{HOST}:{ETCD_CLIENT_PORT}")
}

/// `http://127.0.0.1:8130`, the registry's base URL.
pub fn registry_url() -> String {
    format!("http://{HOST}:{REGISTRY_PORT}")
}
