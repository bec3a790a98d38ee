//! The typed schema of manager.toml: one struct per section, with the reference's key names (dash-case;
//! the snake_case spelling is accepted as an alias), types and defaults
//! (`../shared/spec/cli-etcd-config.md` §3.3 and §6.1).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::values::{BinarySize, HostPort, LogLevel, lenient_bool, lenient_float, lenient_int};

/// The whole local configuration of one manager node.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ManagerConfig {
    pub etcd: EtcdConfig,
    pub db: DbConfig,
    #[serde(default)]
    pub manager: ManagerSection,
    #[serde(default, alias = "docker_registry")]
    pub docker_registry: DockerRegistryConfig,
    #[serde(default)]
    pub logging: LoggingConfig,
    #[serde(default)]
    pub debug: DebugConfig,
}

/// `[etcd]`: where the cluster-wide configuration lives.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct EtcdConfig {
    pub namespace: String,
    #[serde(default = "default_etcd_addr")]
    pub addr: HostPort,
    /// Several endpoints of one etcd cluster; when given, used instead of `addr`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addrs: Vec<HostPort>,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub password: String,
}

impl EtcdConfig {
    /// The endpoints to connect to: `addrs` when given, else `addr`.
    pub fn endpoints(&self) -> Vec<HostPort> {
        if self.addrs.is_empty() {
            vec![self.addr.clone()]
        } else {
            self.addrs.clone()
        }
    }
}

/// `[db]`: the PostgreSQL database. Unknown keys are errors here, as in the reference.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DbConfig {
    #[serde(default, rename = "type")]
    pub kind: DbKind,
    pub addr: HostPort,
    pub name: String,
    pub user: String,
    pub password: String,
    #[serde(
        default = "default_pool_size",
        alias = "pool_size",
        deserialize_with = "lenient_int"
    )]
    pub pool_size: i64,
    /// Seconds after which a pooled connection is replaced; -1 means never.
    #[serde(
        default = "minus_one",
        alias = "pool_recycle",
        deserialize_with = "lenient_float"
    )]
    pub pool_recycle: f64,
    #[serde(default, alias = "pool_pre_ping", deserialize_with = "lenient_bool")]
    pub pool_pre_ping: bool,
    /// Connections allowed beyond `pool-size`; -1 means unlimited.
    #[serde(
        default = "default_max_overflow",
        alias = "max_overflow",
        deserialize_with = "lenient_int"
    )]
    pub max_overflow: i64,
    /// Seconds a distributed-lock connection may be held; 0 means no limit.
    #[serde(
        default,
        alias = "lock_conn_timeout",
        deserialize_with = "lenient_float"
    )]
    pub lock_conn_timeout: f64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DbKind {
    #[default]
    Postgresql,
}

/// `[manager]`: this node's daemon settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ManagerSection {
    #[serde(default = "default_ipc_base_path", alias = "ipc_base_path")]
    pub ipc_base_path: PathBuf,
    #[serde(
        default = "default_num_proc",
        alias = "num_proc",
        deserialize_with = "lenient_int"
    )]
    pub num_proc: i64,
    /// The node id used in etcd and events; `i-{hostname}` unless set.
    #[serde(default = "default_node_id")]
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UnixAccount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<UnixAccount>,
    #[serde(default = "default_service_addr", alias = "service_addr")]
    pub service_addr: HostPort,
    /// The `.key_secret` certificate of the manager's CURVE keypair, relative to the working directory.
    #[serde(default = "default_rpc_keypair", alias = "rpc_auth_manager_keypair")]
    pub rpc_auth_manager_keypair: PathBuf,
    #[serde(
        default = "default_heartbeat_timeout",
        alias = "heartbeat_timeout",
        deserialize_with = "lenient_float"
    )]
    pub heartbeat_timeout: f64,
    /// Salt for tokens made by plugins; the server generates a random one when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    #[serde(default, alias = "ssl_enabled", deserialize_with = "lenient_bool")]
    pub ssl_enabled: bool,
    #[serde(default, alias = "ssl_cert", skip_serializing_if = "Option::is_none")]
    pub ssl_cert: Option<PathBuf>,
    #[serde(
        default,
        alias = "ssl_privkey",
        skip_serializing_if = "Option::is_none"
    )]
    pub ssl_privkey: Option<PathBuf>,
    #[serde(default, alias = "event_loop")]
    pub event_loop: EventLoop,
    #[serde(default, alias = "distributed_lock")]
    pub distributed_lock: DistributedLock,
    #[serde(default = "default_pid_file", alias = "pid_file")]
    pub pid_file: PathBuf,
    #[serde(
        default,
        alias = "allowed_plugins",
        skip_serializing_if = "Option::is_none"
    )]
    pub allowed_plugins: Option<BTreeSet<String>>,
    #[serde(
        default,
        alias = "disabled_plugins",
        skip_serializing_if = "Option::is_none"
    )]
    pub disabled_plugins: Option<BTreeSet<String>>,
    #[serde(default, alias = "hide_agents")]
    pub hide_agents: bool,
    #[serde(
        default = "default_resource_priority",
        alias = "agent_selection_resource_priority"
    )]
    pub agent_selection_resource_priority: Vec<String>,
    #[serde(default = "default_importer_image", alias = "importer_image")]
    pub importer_image: String,
    #[serde(
        default = "default_max_wsmsg_size",
        alias = "max_wsmsg_size",
        deserialize_with = "lenient_int"
    )]
    pub max_wsmsg_size: i64,
    #[serde(
        default = "default_termui_port",
        alias = "aiomonitor-port",
        alias = "aiomonitor_termui_port",
        alias = "aiomonitor_port",
        deserialize_with = "lenient_int"
    )]
    pub aiomonitor_termui_port: i64,
    #[serde(
        default = "default_webui_port",
        alias = "aiomonitor_webui_port",
        deserialize_with = "lenient_int"
    )]
    pub aiomonitor_webui_port: i64,
    #[serde(
        default,
        alias = "use_experimental_redis_event_dispatcher",
        deserialize_with = "lenient_bool"
    )]
    pub use_experimental_redis_event_dispatcher: bool,
    /// Whether the node serves `GET /metrics` (Prometheus text format) on `metrics-addr`.
    /// Not in the reference.
    #[serde(default = "yes", deserialize_with = "lenient_bool")]
    pub metrics_enabled: bool,
    /// Where `GET /metrics` listens: loopback unless the operator opens it to the network.
    /// Not in the reference.
    #[serde(default = "default_metrics_addr")]
    pub metrics_addr: HostPort,
    /// The largest request body a route accepts unless it sets its own (aiohttp's
    /// `client_max_size`, 1 MiB in the reference). Not a key in the reference.
    #[serde(default = "default_client_max_size")]
    pub client_max_size: BinarySize,
    /// Seconds a connection may stay open without a request in flight (the reference's
    /// `keepalive_timeout`, 30 s). Not a key in the reference.
    #[serde(
        default = "default_keepalive_timeout",
        deserialize_with = "lenient_float"
    )]
    pub keepalive_timeout: f64,
    /// Seconds a client may take to send a request head once it has sent its first byte.
    /// Not in the reference.
    #[serde(
        default = "default_header_read_timeout",
        deserialize_with = "lenient_float"
    )]
    pub header_read_timeout: f64,
    /// Connections one worker holds open at most; beyond it the worker stops accepting until one
    /// closes. Not in the reference.
    #[serde(
        default = "default_max_connections_per_worker",
        deserialize_with = "lenient_int"
    )]
    pub max_connections_per_worker: i64,
}

impl Default for ManagerSection {
    fn default() -> Self {
        ManagerSection {
            ipc_base_path: default_ipc_base_path(),
            num_proc: default_num_proc(),
            id: default_node_id(),
            user: None,
            group: None,
            service_addr: default_service_addr(),
            rpc_auth_manager_keypair: default_rpc_keypair(),
            heartbeat_timeout: default_heartbeat_timeout(),
            secret: None,
            ssl_enabled: false,
            ssl_cert: None,
            ssl_privkey: None,
            event_loop: EventLoop::default(),
            distributed_lock: DistributedLock::default(),
            pid_file: default_pid_file(),
            allowed_plugins: None,
            disabled_plugins: None,
            hide_agents: false,
            agent_selection_resource_priority: default_resource_priority(),
            importer_image: default_importer_image(),
            max_wsmsg_size: default_max_wsmsg_size(),
            aiomonitor_termui_port: default_termui_port(),
            aiomonitor_webui_port: default_webui_port(),
            use_experimental_redis_event_dispatcher: false,
            metrics_enabled: true,
            metrics_addr: default_metrics_addr(),
            client_max_size: default_client_max_size(),
            keepalive_timeout: default_keepalive_timeout(),
            header_read_timeout: default_header_read_timeout(),
            max_connections_per_worker: default_max_connections_per_worker(),
        }
    }
}

/// A Unix user or group given by number or by name; resolved when the server drops privileges.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum UnixAccount {
    Id(u32),
    Name(String),
}

impl<'de> Deserialize<'de> for UnixAccount {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct UnixAccountVisitor;

        impl serde::de::Visitor<'_> for UnixAccountVisitor {
            type Value = UnixAccount;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a user or group name, or a numeric id")
            }

            fn visit_u64<E: serde::de::Error>(self, id: u64) -> Result<UnixAccount, E> {
                u32::try_from(id)
                    .map(UnixAccount::Id)
                    .map_err(|_| E::custom(format!("{id} is not a valid id")))
            }

            fn visit_i64<E: serde::de::Error>(self, id: i64) -> Result<UnixAccount, E> {
                u64::try_from(id)
                    .map_err(|_| E::custom(format!("{id} is not a valid id")))
                    .and_then(|id| self.visit_u64(id))
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<UnixAccount, E> {
                if text.is_empty() {
                    return Err(E::custom(
                        "the name must not be empty (leave the key out instead)",
                    ));
                }
                match text.parse::<u32>() {
                    Ok(id) => Ok(UnixAccount::Id(id)),
                    Err(_) => Ok(UnixAccount::Name(text.to_owned())),
                }
            }
        }

        deserializer.deserialize_any(UnixAccountVisitor)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventLoop {
    #[default]
    Asyncio,
    Uvloop,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DistributedLock {
    Filelock,
    #[default]
    PgAdvisory,
    Redlock,
    Etcd,
    Etcetra,
}

/// `[docker-registry]`: kept for compatibility; registries themselves are configured in etcd.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DockerRegistryConfig {
    #[serde(
        default = "yes",
        alias = "ssl_verify",
        deserialize_with = "lenient_bool"
    )]
    pub ssl_verify: bool,
}

impl Default for DockerRegistryConfig {
    fn default() -> Self {
        DockerRegistryConfig { ssl_verify: true }
    }
}

/// `[logging]`: where log records go and how much of them.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct LoggingConfig {
    #[serde(default = "default_log_level")]
    pub level: LogLevel,
    /// Per-logger levels; the key `""` is the root logger.
    #[serde(default = "default_pkg_ns", alias = "pkg_ns")]
    pub pkg_ns: BTreeMap<String, LogLevel>,
    #[serde(default = "default_log_drivers")]
    pub drivers: Vec<LogDriver>,
    #[serde(default)]
    pub console: ConsoleLogConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileLogConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logstash: Option<LogstashConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graylog: Option<GraylogConfig>,
    /// One INFO record per answered request (target `bai_api::access`), as aiohttp's access
    /// logger writes in the reference.
    #[serde(
        default = "yes",
        alias = "access_log",
        deserialize_with = "lenient_bool"
    )]
    pub access_log: bool,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            level: default_log_level(),
            pkg_ns: default_pkg_ns(),
            drivers: default_log_drivers(),
            console: ConsoleLogConfig::default(),
            file: None,
            logstash: None,
            graylog: None,
            access_log: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogDriver {
    Console,
    Logstash,
    File,
    Graylog,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct ConsoleLogConfig {
    /// `None` colours the output when stderr is a terminal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colored: Option<bool>,
    #[serde(default)]
    pub format: ConsoleLogFormat,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConsoleLogFormat {
    Simple,
    #[default]
    Verbose,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct FileLogConfig {
    pub path: PathBuf,
    pub filename: String,
    #[serde(
        default = "default_backup_count",
        alias = "backup_count",
        deserialize_with = "lenient_int"
    )]
    pub backup_count: i64,
    #[serde(default = "default_rotation_size", alias = "rotation_size")]
    pub rotation_size: BinarySize,
    /// Accepted for compatibility; file logs are always JSON lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct LogstashConfig {
    pub endpoint: HostPort,
    #[serde(default)]
    pub protocol: LogstashProtocol,
    #[serde(
        default = "yes",
        alias = "ssl_enabled",
        deserialize_with = "lenient_bool"
    )]
    pub ssl_enabled: bool,
    #[serde(
        default = "yes",
        alias = "ssl_verify",
        deserialize_with = "lenient_bool"
    )]
    pub ssl_verify: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub enum LogstashProtocol {
    #[serde(rename = "zmq.push")]
    ZmqPush,
    #[serde(rename = "zmq.pub")]
    ZmqPub,
    #[default]
    #[serde(rename = "tcp")]
    Tcp,
    #[serde(rename = "udp")]
    Udp,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct GraylogConfig {
    pub host: String,
    #[serde(deserialize_with = "lenient_int")]
    pub port: i64,
    #[serde(default = "default_log_level")]
    pub level: LogLevel,
    #[serde(default, alias = "ssl_verify", deserialize_with = "lenient_bool")]
    pub ssl_verify: bool,
    #[serde(default, alias = "ca_certs", skip_serializing_if = "Option::is_none")]
    pub ca_certs: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyfile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certfile: Option<String>,
    #[serde(default = "yes", deserialize_with = "lenient_bool")]
    pub fqdn: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub localname: Option<String>,
}

/// `[debug]`: switches for troubleshooting.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct DebugConfig {
    #[serde(default, deserialize_with = "lenient_bool")]
    pub enabled: bool,
    #[serde(default)]
    pub asyncio: bool,
    #[serde(default, alias = "enhanced_aiomonitor_task_info")]
    pub enhanced_aiomonitor_task_info: bool,
    #[serde(default, alias = "log_events", deserialize_with = "lenient_bool")]
    pub log_events: bool,
    #[serde(
        default,
        alias = "log_scheduler_ticks",
        deserialize_with = "lenient_bool"
    )]
    pub log_scheduler_ticks: bool,
    #[serde(
        default,
        alias = "periodic_sync_stats",
        deserialize_with = "lenient_bool"
    )]
    pub periodic_sync_stats: bool,
}

fn yes() -> bool {
    true
}

fn minus_one() -> f64 {
    -1.0
}

fn default_etcd_addr() -> HostPort {
    HostPort::new("127.0.0.1", 2379)
}

fn default_pool_size() -> i64 {
    8
}

fn default_max_overflow() -> i64 {
    64
}

fn default_ipc_base_path() -> PathBuf {
    PathBuf::from("/tmp/backend.ai/ipc")
}

fn default_num_proc() -> i64 {
    std::thread::available_parallelism().map_or(1, |n| i64::try_from(n.get()).unwrap_or(i64::MAX))
}

/// `[manager] id` when it is not set: `i-{hostname}`, the name the node registers under in etcd
/// (`nodes/manager/{id}`) and names its event consumers and scheduler records with.
pub fn default_node_id() -> String {
    let hostname = nix::unistd::gethostname().map_or_else(
        |_| "localhost".to_owned(),
        |name| name.to_string_lossy().into_owned(),
    );
    format!("i-{hostname}")
}

fn default_service_addr() -> HostPort {
    HostPort::new("0.0.0.0", 8080)
}

fn default_metrics_addr() -> HostPort {
    HostPort::new("127.0.0.1", 9464)
}

fn default_rpc_keypair() -> PathBuf {
    PathBuf::from("fixtures/manager/manager.key_secret")
}

fn default_heartbeat_timeout() -> f64 {
    40.0
}

fn default_pid_file() -> PathBuf {
    PathBuf::from("/dev/null")
}

fn default_resource_priority() -> Vec<String> {
    ["cuda", "rocm", "tpu", "cpu", "mem"]
        .map(String::from)
        .to_vec()
}

fn default_importer_image() -> String {
    "lablup/importer:manylinux2010".to_owned()
}

fn default_max_wsmsg_size() -> i64 {
    16 * 1024 * 1024
}

fn default_client_max_size() -> BinarySize {
    BinarySize(1024 * 1024)
}

fn default_keepalive_timeout() -> f64 {
    30.0
}

fn default_header_read_timeout() -> f64 {
    10.0
}

fn default_max_connections_per_worker() -> i64 {
    16_384
}

fn default_termui_port() -> i64 {
    48100
}

fn default_webui_port() -> i64 {
    49100
}

fn default_log_level() -> LogLevel {
    LogLevel::Info
}

fn default_pkg_ns() -> BTreeMap<String, LogLevel> {
    BTreeMap::from([
        (String::new(), LogLevel::Warning),
        ("ai.backend".to_owned(), LogLevel::Info),
        ("tests".to_owned(), LogLevel::Debug),
    ])
}

fn default_log_drivers() -> Vec<LogDriver> {
    vec![LogDriver::Console]
}

fn default_backup_count() -> i64 {
    5
}

fn default_rotation_size() -> BinarySize {
    BinarySize(10 * 1024 * 1024)
}
