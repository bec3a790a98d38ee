//! The typed view of the manager's shared configuration in etcd: `config/...`, which the reference
//! validates when it loads its shared config, and `volumes/...`, which it validates at server start.
//!
//! Every value in etcd is the text Python's `str()` wrote, so each one is read with the reference's
//! lenient readers (`ToBool`, `ToFloat`, `ToInt`, `TimeDuration`). Reading never stops at the first
//! bad key: every problem is collected, each naming the etcd key (quoted as stored) it is about, so
//! an operator can fix them all in one pass. Unknown keys are allowed, as in the reference, except
//! directly under `config/session/hang-tolerance` and inside a storage proxy entry.
//!
//! Problems never quote the value of a password, secret or token.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use bai_config::{HostPort, parse_bool};
use indexmap::IndexMap;

use crate::error::EtcdError;
use crate::quote::quote;
use crate::store::{EtcdStore, Scope};
use crate::tree::{ConfigNode, ConfigTree, tree_from_pairs};

/// The manager's shared configuration, read once at start and passed down.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedConfig {
    pub system: SystemConfig,
    pub api: ApiConfig,
    pub redis: RedisConfig,
    pub docker: DockerConfig,
    pub plugins: PluginsConfig,
    pub network: NetworkConfig,
    pub watcher: WatcherConfig,
    pub auth: AuthConfig,
    pub session: SessionConfig,
    pub idle: IdleConfig,
    /// `None` when nothing is stored under `volumes/`; when anything is, all of it is validated.
    pub volumes: Option<VolumesConfig>,
    /// Settings that are ignored, such as an unknown idle checker name; worth showing to an operator.
    pub warnings: Vec<SharedConfigProblem>,
}

impl SharedConfig {
    /// Reads the trees `get_prefix("config")` and `get_prefix("volumes")` return. On failure the list
    /// holds every problem found, warnings included.
    pub fn from_trees(
        config: &ConfigTree,
        volumes: &ConfigTree,
    ) -> Result<SharedConfig, Vec<SharedConfigProblem>> {
        let mut report = Report::default();
        let root = Section::root("config", config);
        let shared = SharedConfig {
            system: read_system(&root.section("system", &mut report), &mut report),
            api: read_api(&root.section("api", &mut report), &mut report),
            redis: read_redis(&root.section("redis", &mut report), &mut report),
            docker: read_docker(&root.section("docker", &mut report), &mut report),
            plugins: read_plugins(&root.section("plugins", &mut report), &mut report),
            network: read_network(&root.section("network", &mut report), &mut report),
            watcher: read_watcher(&root.section("watcher", &mut report), &mut report),
            auth: read_auth(&root.section("auth", &mut report), &mut report),
            session: read_session(&root.section("session", &mut report), &mut report),
            idle: read_idle(&root.section("idle", &mut report), &mut report),
            volumes: if volumes.is_empty() {
                None
            } else {
                read_volumes(&Section::root("volumes", volumes), &mut report)
            },
            warnings: Vec::new(),
        };
        if report
            .problems
            .iter()
            .any(|problem| problem.severity == Severity::Error)
        {
            return Err(report.problems);
        }
        Ok(SharedConfig {
            warnings: report.problems,
            ..shared
        })
    }

    /// Reads `config/...` and `volumes/...` from the global scope, as the manager does at start.
    pub async fn load(store: &EtcdStore) -> Result<SharedConfig, SharedConfigError> {
        let config = store.get_prefix("config", Scope::Global).await?;
        let volumes = store.get_prefix("volumes", Scope::Global).await?;
        SharedConfig::from_trees(&config, &volumes).map_err(SharedConfigError::Invalid)
    }
}

impl SharedConfig {
    /// Reads the trees again over `self`, the settings in effect, one section at a time
    /// (`config/system`, `config/api`, `config/redis`, `config/docker`, `config/plugins`,
    /// `config/network`, `config/watcher`, `config/auth`, `config/session`, `config/idle`,
    /// `volumes`): a section with an error keeps its settings from `self`, so that a bad value
    /// neither takes a working setting away nor holds back a good change elsewhere. The warnings
    /// of the sections read go into the revised configuration.
    pub fn revise(&self, config: &ConfigTree, volumes: &ConfigTree) -> Revision {
        let root = Section::root("config", config);
        let mut reviser = Reviser::default();
        let revised = SharedConfig {
            system: reviser.section(&root, "system", read_system, &self.system),
            api: reviser.section(&root, "api", read_api, &self.api),
            redis: reviser.section(&root, "redis", read_redis, &self.redis),
            docker: reviser.section(&root, "docker", read_docker, &self.docker),
            plugins: reviser.section(&root, "plugins", read_plugins, &self.plugins),
            network: reviser.section(&root, "network", read_network, &self.network),
            watcher: reviser.section(&root, "watcher", read_watcher, &self.watcher),
            auth: reviser.section(&root, "auth", read_auth, &self.auth),
            session: reviser.section(&root, "session", read_session, &self.session),
            idle: reviser.section(&root, "idle", read_idle, &self.idle),
            volumes: reviser.read(
                "volumes",
                |report| {
                    if volumes.is_empty() {
                        None
                    } else {
                        read_volumes(&Section::root("volumes", volumes), report)
                    }
                },
                &self.volumes,
            ),
            warnings: Vec::new(),
        };
        Revision {
            config: SharedConfig {
                warnings: reviser.warnings,
                ..revised
            },
            rejected: reviser.rejected,
        }
    }
}

/// The shared configuration read again over the one in effect ([`SharedConfig::revise`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Revision {
    pub config: SharedConfig,
    /// The sections that kept their previous settings, with the errors that made them keep them.
    pub rejected: Vec<RejectedSection>,
}

/// A section whose new settings were refused.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedSection {
    /// `config/redis`, `volumes`, ...
    pub key: String,
    /// The errors, each naming its key (never quoting a secret); at least one.
    pub problems: Vec<SharedConfigProblem>,
}

#[derive(Debug, Default)]
struct Reviser {
    warnings: Vec<SharedConfigProblem>,
    rejected: Vec<RejectedSection>,
}

impl Reviser {
    fn section<T: Clone>(
        &mut self,
        root: &Section,
        name: &str,
        read: fn(&Section, &mut Report) -> T,
        previous: &T,
    ) -> T {
        self.read(
            &root.key_of(name),
            |report| read(&root.section(name, report), report),
            previous,
        )
    }

    fn read<T: Clone>(
        &mut self,
        key: &str,
        read: impl FnOnce(&mut Report) -> T,
        previous: &T,
    ) -> T {
        let mut report = Report::default();
        let read = read(&mut report);
        let (errors, warnings): (Vec<_>, Vec<_>) = report
            .problems
            .into_iter()
            .partition(|problem| problem.severity == Severity::Error);
        if errors.is_empty() {
            self.warnings.extend(warnings);
            read
        } else {
            self.rejected.push(RejectedSection {
                key: key.to_owned(),
                problems: errors,
            });
            previous.clone()
        }
    }
}

/// Why the shared configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SharedConfigError {
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error("the shared configuration in etcd is invalid: {}", describe_errors(.0))]
    Invalid(Vec<SharedConfigProblem>),
}

/// Whether a problem stops the configuration from loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    /// The setting is ignored, as the reference ignores it, but it is probably not what was meant.
    Warning,
}

/// One thing wrong with a key of the shared configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedConfigProblem {
    /// The etcd key below the namespace, with each piece quoted as stored:
    /// `config/docker/registry/cr.backend.ai%3A5000/type`.
    pub key: String,
    pub message: String,
    pub severity: Severity,
}

impl fmt::Display for SharedConfigProblem {
    /// `config/redis/addr: expected "host:port", found "x"`; warnings start with `warning: `.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.severity {
            Severity::Error => write!(f, "{}: {}", self.key, self.message),
            Severity::Warning => write!(f, "warning: {}: {}", self.key, self.message),
        }
    }
}

/// `config/system`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemConfig {
    /// `timezone`: `UTC` (the default) or an `Area/Location` name of the system's time zone database.
    pub timezone: String,
}

/// `config/api`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// `allow-origins`, default `*`.
    pub allow_origins: String,
    /// `allow-graphql-schema-introspection`, default false.
    pub allow_graphql_schema_introspection: bool,
    /// `allow-openapi-schema-introspection`, default false.
    pub allow_openapi_schema_introspection: bool,
}

/// `config/redis`.
#[derive(Clone, PartialEq)]
pub struct RedisConfig {
    /// `addr`; ignored when `sentinel` is set.
    pub addr: Option<HostPort>,
    /// `sentinel`: comma-separated `host:port` addresses of the sentinels.
    pub sentinel: Option<Vec<HostPort>>,
    /// `service_name`: the sentinels' name for the master; required with `sentinel`.
    pub service_name: Option<String>,
    /// `password`: never empty; leave the key out for no password.
    pub password: Option<String>,
    /// `redis_helper_config`.
    pub helper: RedisHelperConfig,
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("addr", &self.addr)
            .field("sentinel", &self.sentinel)
            .field("service_name", &self.service_name)
            .field("password", &redacted(self.password.as_deref()))
            .field("helper", &self.helper)
            .finish()
    }
}

/// `config/redis/redis_helper_config`: timeouts in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RedisHelperConfig {
    /// Default 5.0.
    pub socket_timeout: f64,
    /// Default 2.0.
    pub socket_connect_timeout: f64,
    /// Default 0.3.
    pub reconnect_poll_timeout: f64,
}

/// `config/docker`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerConfig {
    /// `image/auto_pull`, default `digest`.
    pub auto_pull: AutoPullPolicy,
    /// `registry/{quoted name}`, keyed by the unquoted name (`cr.backend.ai:5000`).
    pub registries: IndexMap<String, ContainerRegistry>,
}

/// When an agent pulls an image it already has (`config/docker/image/auto_pull`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AutoPullPolicy {
    /// When the registry's digest differs from the local one.
    #[default]
    Digest,
    /// When the tag is missing locally.
    Tag,
    /// Never.
    None,
}

impl FromStr for AutoPullPolicy {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "digest" => Ok(AutoPullPolicy::Digest),
            "tag" => Ok(AutoPullPolicy::Tag),
            "none" => Ok(AutoPullPolicy::None),
            _ => Err(format!("expected one of digest, tag, none, found {text:?}")),
        }
    }
}

impl fmt::Display for AutoPullPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AutoPullPolicy::Digest => "digest",
            AutoPullPolicy::Tag => "tag",
            AutoPullPolicy::None => "none",
        })
    }
}

/// One entry of `config/docker/registry/{quoted name}`.
#[derive(Clone, PartialEq, Eq)]
pub struct ContainerRegistry {
    /// The value at the registry's own key: an `http://` or `https://` URL.
    pub url: String,
    /// `type`, default `docker` (also `harbor`, `harbor2`, `local`, ...).
    pub kind: String,
    /// `username`.
    pub username: Option<String>,
    /// `password`; may be blank.
    pub password: Option<String>,
    /// `project`: a comma-separated list; empty when the key is missing or blank.
    pub projects: Vec<String>,
    /// `ssl_verify` (or `ssl-verify`), default true.
    pub ssl_verify: bool,
}

impl fmt::Debug for ContainerRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContainerRegistry")
            .field("url", &self.url)
            .field("kind", &self.kind)
            .field("username", &self.username)
            .field("password", &redacted(self.password.as_deref()))
            .field("projects", &self.projects)
            .field("ssl_verify", &self.ssl_verify)
            .finish()
    }
}

/// Where the registries are stored, below the namespace.
pub const REGISTRY_PREFIX: &str = "config/docker/registry";

impl ContainerRegistry {
    /// The etcd key of the registry `name`: `config/docker/registry/{quoted name}`.
    pub fn key(name: &str) -> String {
        format!("{REGISTRY_PREFIX}/{}", quote(name))
    }

    /// The pairs that store this registry as `name`, as the reference's
    /// `container_registry_serialize` writes them: the URL at the registry's own key, `type`,
    /// `ssl_verify` as `1` or `0`, and `username`, `password` and `project` (comma-joined) when set.
    pub fn to_pairs(&self, name: &str) -> Vec<(String, String)> {
        let key = ContainerRegistry::key(name);
        let mut pairs = vec![
            (key.clone(), self.url.clone()),
            (format!("{key}/type"), self.kind.clone()),
        ];
        if let Some(username) = &self.username {
            pairs.push((format!("{key}/username"), username.clone()));
        }
        if let Some(password) = &self.password {
            pairs.push((format!("{key}/password"), password.clone()));
        }
        if !self.projects.is_empty() {
            pairs.push((format!("{key}/project"), self.projects.join(",")));
        }
        let ssl_verify = if self.ssl_verify { "1" } else { "0" };
        pairs.push((format!("{key}/ssl_verify"), ssl_verify.to_owned()));
        pairs
    }

    /// Checks this registry before it is written as `name`: its pairs, read back by the shared
    /// configuration's reader, must give the same registry, so a written registry always loads.
    /// As the reference's `container_registry_iv`, a blank `type` or `username` is refused too.
    /// Each problem names the key it is about.
    pub fn check(&self, name: &str) -> Result<(), Vec<SharedConfigProblem>> {
        let mut report = Report::default();
        if name.is_empty() {
            report.error(
                format!("{REGISTRY_PREFIX}/"),
                "a registry needs a non-empty name",
            );
            return Err(report.problems);
        }
        let pairs = self.to_pairs(name);
        let tree = tree_from_pairs(
            REGISTRY_PREFIX,
            pairs
                .iter()
                .map(|(key, value)| (key.as_str(), value.as_str())),
        );
        let entry = Section::root(REGISTRY_PREFIX, &tree).section(name, &mut report);
        let read = read_registry(&entry, &mut report);
        if self.kind.is_empty() {
            report.error(entry.key_of("type"), "must not be blank");
        }
        if self.username.as_deref() == Some("") {
            report.error(entry.key_of("username"), "must not be blank");
        }
        if read.is_some_and(|read| read.projects != self.projects) {
            report.error(
                entry.key_of("project"),
                "each project name must be non-blank, without commas or surrounding spaces",
            );
        }
        if report.problems.is_empty() {
            Ok(())
        } else {
            Err(report.problems)
        }
    }
}

/// `config/plugins`: each plugin's settings as stored, for the plugin to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginsConfig {
    /// `accelerator/{plugin}/...`.
    pub accelerator: ConfigTree,
    /// `scheduler/{plugin}/...`, merged under each scaling group's `scheduler_opts.config`.
    pub scheduler: ConfigTree,
}

/// `config/network`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkConfig {
    pub subnet: SubnetConfig,
    pub overlay: OverlayConfig,
}

/// `config/network/subnet`: which addresses agents and containers may have; default `0.0.0.0/0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubnetConfig {
    pub agent: IpNetwork,
    pub container: IpNetwork,
}

/// `config/network/overlay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverlayConfig {
    /// `mtu`, at least 1, default 1500.
    pub mtu: u32,
}

/// An IP network in CIDR notation (`10.0.0.0/8`, `fd00::/8`), read as Python's `ip_network()` reads
/// it by default: a bare address is a one-address network, and the host bits must be zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpNetwork {
    addr: IpAddr,
    prefix_len: u8,
}

impl IpNetwork {
    /// `0.0.0.0/0`, the default subnet: every IPv4 address.
    pub const ALL_IPV4: IpNetwork = IpNetwork {
        addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        prefix_len: 0,
    };

    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }
}

impl FromStr for IpNetwork {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            format!("expected an IP network such as \"10.0.0.0/8\" or \"fd00::/8\", found {text:?}")
        };
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text.parse().map_err(|_| invalid())?;
        let max_len: u8 = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match prefix_text {
            None => max_len,
            Some(digits)
                if !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit()) =>
            {
                digits
                    .parse::<u8>()
                    .ok()
                    .filter(|len| *len <= max_len)
                    .ok_or_else(|| {
                        format!("the prefix length in {text:?} must be at most {max_len}")
                    })?
            }
            Some(_) => return Err(invalid()),
        };
        let shift = u32::from(prefix_len);
        let network = match addr {
            IpAddr::V4(v4) => IpAddr::V4(Ipv4Addr::from(
                u32::from(v4) & !u32::MAX.checked_shr(shift).unwrap_or(0),
            )),
            IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(
                u128::from(v6) & !u128::MAX.checked_shr(shift).unwrap_or(0),
            )),
        };
        if network != addr {
            return Err(format!(
                "{text:?} has host bits set (the network is \"{network}/{prefix_len}\")"
            ));
        }
        Ok(IpNetwork { addr, prefix_len })
    }
}

impl fmt::Display for IpNetwork {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// `config/watcher`.
#[derive(Clone, PartialEq)]
pub struct WatcherConfig {
    /// `token`, shared with the agents' watchers.
    pub token: Option<String>,
    /// `file-io-timeout` in seconds, default 10.
    pub file_io_timeout: f64,
}

impl fmt::Debug for WatcherConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatcherConfig")
            .field("token", &redacted(self.token.as_deref()))
            .field("file_io_timeout", &self.file_io_timeout)
            .finish()
    }
}

/// `config/auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthConfig {
    /// `max_password_age`: how long a password stays valid; forever when missing.
    pub max_password_age: Option<Duration>,
}

/// `config/session`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// `hang-tolerance/threshold/{PREPARING,TERMINATING}`.
    pub hang_tolerance: HangThresholds,
}

/// How long a session may stay in a status before it counts as hanging; no limit when missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HangThresholds {
    pub preparing: Option<Duration>,
    pub terminating: Option<Duration>,
}

/// `config/idle`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdleConfig {
    /// The known checker names listed in `enabled` (`network_timeout`, `utilization`); unknown names
    /// are left out, as the reference ignores them, and reported as warnings.
    pub enabled: Vec<String>,
}

/// `volumes/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumesConfig {
    /// `_types`.
    pub types: VolumeTypes,
    /// `default_host`, required.
    pub default_host: VolumeHost,
    /// `exposed_volume_info`: a comma-separated list, default `percentage`.
    pub exposed_volume_info: Vec<String>,
    /// `proxies/{name}`.
    pub proxies: IndexMap<String, StorageProxy>,
}

/// Which kinds of virtual folders exist: a key under `volumes/_types` enables its kind. Without
/// `_types`, only user folders exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VolumeTypes {
    pub user: bool,
    pub group: bool,
}

/// A volume of a storage proxy, written `proxy:volume`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VolumeHost {
    pub proxy: String,
    pub volume: String,
}

impl FromStr for VolumeHost {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once(':') {
            Some((proxy, volume)) if !proxy.is_empty() && !volume.is_empty() => Ok(VolumeHost {
                proxy: proxy.to_owned(),
                volume: volume.to_owned(),
            }),
            _ => Err(format!("expected \"proxy:volume\", found {text:?}")),
        }
    }
}

impl fmt::Display for VolumeHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.proxy, self.volume)
    }
}

/// `volumes/proxies/{name}`: how to reach one storage proxy. No other keys are allowed.
#[derive(Clone, PartialEq, Eq)]
pub struct StorageProxy {
    /// `client_api`: the URL clients are sent to for uploads and downloads.
    pub client_api: String,
    /// `manager_api`: the URL the manager calls.
    pub manager_api: String,
    /// `secret`: the key shared with the proxy.
    pub secret: String,
    /// `ssl_verify`, required.
    pub ssl_verify: bool,
    /// `sftp_scaling_groups`: a comma-separated list.
    pub sftp_scaling_groups: Option<Vec<String>>,
}

impl fmt::Debug for StorageProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageProxy")
            .field("client_api", &self.client_api)
            .field("manager_api", &self.manager_api)
            .field("secret", &redacted(Some(&self.secret)))
            .field("ssl_verify", &self.ssl_verify)
            .field("sftp_scaling_groups", &self.sftp_scaling_groups)
            .finish()
    }
}

/// Parses the reference's `TimeDuration`: a plain number is seconds (`"90"`, `"1.5"`), `<float>`
/// followed by `w`, `d`, `h`, `m` or `s` is that many weeks, days, hours, minutes or seconds, and
/// `<int>yr` / `<int>mo` are years and months. Negative durations are rejected.
///
/// The reference keeps years and months as calendar units (`relativedelta`), whose length depends on
/// the date they are added to; a fixed length is needed here, so a year is approximated as 365 days
/// and a month as 30 days.
pub fn parse_time_duration(text: &str) -> Result<Duration, String> {
    const DAY: f64 = 86_400.0;
    let invalid = || {
        format!(
            "expected a duration such as \"90\" (seconds), \"1.5h\", \"30m\", \"2d\", \"1w\" or \"1yr\", found {text:?}"
        )
    };
    let negative = || format!("a duration cannot be negative, found {text:?}");
    let trimmed = text.trim();
    let seconds = if trimmed.ends_with(|c: char| c.is_ascii_digit()) {
        parse_duration_number(trimmed, 1.0).ok_or_else(invalid)?
    } else if let Some(years) = trimmed.strip_suffix("yr") {
        parse_duration_count(years, 365.0 * DAY).ok_or_else(invalid)?
    } else if let Some(months) = trimmed.strip_suffix("mo") {
        parse_duration_count(months, 30.0 * DAY).ok_or_else(invalid)?
    } else {
        let mut chars = trimmed.chars();
        let unit = match chars.next_back() {
            Some('w') => 7.0 * DAY,
            Some('d') => DAY,
            Some('h') => 3_600.0,
            Some('m') => 60.0,
            Some('s') => 1.0,
            _ => return Err(invalid()),
        };
        parse_duration_number(chars.as_str(), unit).ok_or_else(invalid)?
    };
    if seconds < 0.0 {
        return Err(negative());
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("the duration {text:?} is too long"))
}

/// Where a plausible time zone name must have a file.
const ZONEINFO: &str = "/usr/share/zoneinfo";

const EXPECTED_SUBTREE: &str = "expected a subtree of keys, found a single value";
const EXPECTED_VALUE: &str = "expected a value, found a subtree of keys";
const REQUIRED: &str = "required but missing";

const IDLE_CHECKERS: [&str; 2] = ["network_timeout", "utilization"];
const HANG_STATUSES: [&str; 2] = ["PREPARING", "TERMINATING"];
const PROXY_KEYS: [&str; 5] = [
    "client_api",
    "manager_api",
    "secret",
    "ssl_verify",
    "sftp_scaling_groups",
];

fn describe_errors(problems: &[SharedConfigProblem]) -> String {
    let errors: Vec<String> = problems
        .iter()
        .filter(|problem| problem.severity == Severity::Error)
        .map(ToString::to_string)
        .collect();
    errors.join("; ")
}

/// `number * unit` seconds, for a finite float `number`.
fn parse_duration_number(number: &str, unit: f64) -> Option<f64> {
    number
        .parse::<f64>()
        .ok()
        .filter(|value| value.is_finite())
        .map(|value| value * unit)
}

/// `count * unit` seconds, for a whole `count` (years and months take no fractions).
fn parse_duration_count(count: &str, unit: f64) -> Option<f64> {
    let count: i32 = count.parse().ok()?;
    Some(f64::from(count) * unit)
}

fn read_system(system: &Section, report: &mut Report) -> SystemConfig {
    SystemConfig {
        timezone: system
            .parse("timezone", report, |name| {
                check_timezone(Path::new(ZONEINFO), name)
            })
            .unwrap_or_else(|| "UTC".to_owned()),
    }
}

fn read_api(api: &Section, report: &mut Report) -> ApiConfig {
    ApiConfig {
        allow_origins: api
            .parse("allow-origins", report, text)
            .unwrap_or_else(|| "*".to_owned()),
        allow_graphql_schema_introspection: api
            .parse("allow-graphql-schema-introspection", report, to_bool)
            .unwrap_or(false),
        allow_openapi_schema_introspection: api
            .parse("allow-openapi-schema-introspection", report, to_bool)
            .unwrap_or(false),
    }
}

fn read_redis(redis: &Section, report: &mut Report) -> RedisConfig {
    let addr = redis.parse("addr", report, HostPort::from_str);
    let sentinel = redis.parse("sentinel", report, |list| {
        let items = comma_list(list);
        if items.is_empty() {
            return Err(
                "expected a comma-separated list of \"host:port\" addresses, found an empty one"
                    .to_owned(),
            );
        }
        items.iter().map(|item| item.parse::<HostPort>()).collect()
    });
    let service_name = redis.parse("service_name", report, text);
    if redis.get("sentinel").is_some() && redis.get("service_name").is_none() {
        let message = format!("required when {} is set", redis.key_of("sentinel"));
        report.error(redis.key_of("service_name"), message);
    }
    let password = redis.parse("password", report, |password| {
        if password.is_empty() {
            Err("must not be empty (leave the key out for no password)".to_owned())
        } else {
            Ok(password.to_owned())
        }
    });
    let helper = redis.section("redis_helper_config", report);
    RedisConfig {
        addr,
        sentinel,
        service_name,
        password,
        helper: RedisHelperConfig {
            socket_timeout: helper
                .parse("socket_timeout", report, to_float)
                .unwrap_or(5.0),
            socket_connect_timeout: helper
                .parse("socket_connect_timeout", report, to_float)
                .unwrap_or(2.0),
            reconnect_poll_timeout: helper
                .parse("reconnect_poll_timeout", report, to_float)
                .unwrap_or(0.3),
        },
    }
}

fn read_docker(docker: &Section, report: &mut Report) -> DockerConfig {
    let auto_pull = docker
        .section("image", report)
        .parse("auto_pull", report, AutoPullPolicy::from_str)
        .unwrap_or_default();
    // The reference defaults the registries only when `docker` is missing altogether.
    if docker.is_present() && docker.get("registry").is_none() {
        let message = format!("required when anything under {} is set", docker.key);
        report.error(docker.key_of("registry"), message);
    }
    let registry = docker.section("registry", report);
    let mut registries = IndexMap::new();
    for name in registry.names() {
        let entry = registry.section(name, report);
        if let Some(parsed) = read_registry(&entry, report) {
            registries.insert(name.clone(), parsed);
        }
    }
    DockerConfig {
        auto_pull,
        registries,
    }
}

fn read_registry(entry: &Section, report: &mut Report) -> Option<ContainerRegistry> {
    if !entry.is_present() {
        return None;
    }
    if entry.get("").is_none() {
        report.error(
            entry.key.clone(),
            "a registry needs its URL as the value of this key itself",
        );
    }
    let url = entry.parse("", report, check_registry_url);
    let kind = entry
        .parse("type", report, text)
        .unwrap_or_else(|| "docker".to_owned());
    let username = entry.parse("username", report, text);
    let password = entry.parse("password", report, text);
    let projects = entry
        .parse("project", report, |list| Ok(comma_list(list)))
        .unwrap_or_default();
    let ssl_verify_key = if entry.get("ssl_verify").is_some() {
        "ssl_verify"
    } else {
        "ssl-verify"
    };
    let ssl_verify = entry.parse(ssl_verify_key, report, to_bool).unwrap_or(true);
    Some(ContainerRegistry {
        url: url?,
        kind,
        username,
        password,
        projects,
        ssl_verify,
    })
}

fn read_plugins(plugins: &Section, report: &mut Report) -> PluginsConfig {
    PluginsConfig {
        accelerator: read_plugin_group(&plugins.section("accelerator", report), report),
        scheduler: read_plugin_group(&plugins.section("scheduler", report), report),
    }
}

/// A group maps plugin names to their settings, each a subtree.
fn read_plugin_group(group: &Section, report: &mut Report) -> ConfigTree {
    for name in group.names() {
        if let Some(ConfigNode::Value(_)) = group.get(name) {
            report.error(group.key_of(name), EXPECTED_SUBTREE);
        }
    }
    group.tree.cloned().unwrap_or_default()
}

fn read_network(network: &Section, report: &mut Report) -> NetworkConfig {
    let subnet = network.section("subnet", report);
    let overlay = network.section("overlay", report);
    NetworkConfig {
        subnet: SubnetConfig {
            agent: subnet
                .parse("agent", report, IpNetwork::from_str)
                .unwrap_or(IpNetwork::ALL_IPV4),
            container: subnet
                .parse("container", report, IpNetwork::from_str)
                .unwrap_or(IpNetwork::ALL_IPV4),
        },
        overlay: OverlayConfig {
            mtu: overlay
                .parse("mtu", report, to_positive_u32)
                .unwrap_or(1500),
        },
    }
}

fn read_watcher(watcher: &Section, report: &mut Report) -> WatcherConfig {
    WatcherConfig {
        token: watcher.parse("token", report, text),
        file_io_timeout: watcher
            .parse("file-io-timeout", report, to_float)
            .unwrap_or(10.0),
    }
}

fn read_auth(auth: &Section, report: &mut Report) -> AuthConfig {
    AuthConfig {
        max_password_age: auth.parse("max_password_age", report, parse_time_duration),
    }
}

fn read_session(session: &Section, report: &mut Report) -> SessionConfig {
    let hang_tolerance = session.section("hang-tolerance", report);
    for name in hang_tolerance.names() {
        if name != "threshold" {
            report.unknown_key(&hang_tolerance, name, "hang-tolerance has only threshold");
        }
    }
    let threshold = hang_tolerance.section("threshold", report);
    for name in threshold.names() {
        if !HANG_STATUSES.contains(&name.as_str()) {
            report.warning(
                threshold.key_of(name),
                "ignored: hang thresholds exist only for PREPARING and TERMINATING",
            );
        }
    }
    SessionConfig {
        hang_tolerance: HangThresholds {
            preparing: threshold.parse("PREPARING", report, parse_time_duration),
            terminating: threshold.parse("TERMINATING", report, parse_time_duration),
        },
    }
}

fn read_idle(idle: &Section, report: &mut Report) -> IdleConfig {
    let mut enabled = idle
        .parse("enabled", report, |list| Ok(comma_list(list)))
        .unwrap_or_default();
    enabled.retain(|name| {
        let known = IDLE_CHECKERS.contains(&name.as_str());
        if !known {
            report.warning(
                idle.key_of("enabled"),
                format!(
                    "unknown idle checker {name:?} is ignored (known checkers: {})",
                    IDLE_CHECKERS.join(", ")
                ),
            );
        }
        known
    });
    IdleConfig { enabled }
}

/// `config/idle` as the idle checkers read it at each check (the reference reads it once, at
/// start): which checkers are enabled and each one's settings. A checker whose settings are bad
/// carries its problems instead, so that the others still run.
#[derive(Debug, Clone, PartialEq)]
pub struct IdleCheckerConfig {
    /// The known names `enabled` lists, in its order, each once.
    pub enabled: Vec<String>,
    /// `checkers/network_timeout`.
    pub network_timeout: Result<NetworkTimeoutConfig, Vec<SharedConfigProblem>>,
    /// `checkers/utilization`.
    pub utilization: Result<UtilizationConfig, Vec<SharedConfigProblem>>,
    /// `checkers/user_grace_period/user_initial_grace_period`: how long after a user was created
    /// their sessions are not counted idle; none when missing.
    pub user_initial_grace_period: Result<Option<Duration>, Vec<SharedConfigProblem>>,
    /// Ignored settings, such as an unknown checker name in `enabled`.
    pub warnings: Vec<SharedConfigProblem>,
}

/// `config/idle/checkers/network_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetworkTimeoutConfig {
    /// `threshold` (default `10m`): how long a session may go unused, unless the keypair's
    /// resource policy says otherwise.
    pub threshold: Duration,
}

/// How the utilization checker combines its resources (`thresholds-check-operator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThresholdsCheckOperator {
    /// Idle only when every resource is under its threshold (the default).
    And,
    /// Idle when any resource is under its threshold.
    Or,
}

impl ThresholdsCheckOperator {
    /// The value as written in etcd.
    pub fn as_str(self) -> &'static str {
        match self {
            ThresholdsCheckOperator::And => "and",
            ThresholdsCheckOperator::Or => "or",
        }
    }
}

/// The utilization metrics `resource-thresholds` may name, in the reference's order.
pub const UTILIZATION_METRICS: [&str; 5] = ["cpu_util", "mem", "cuda_util", "cuda_mem", "atom_mem"];

/// `config/idle/checkers/utilization`.
#[derive(Debug, Clone, PartialEq)]
pub struct UtilizationConfig {
    /// `time-window` (default `10m`): utilization is averaged over it, unless the keypair's
    /// resource policy sets an idle timeout.
    pub time_window: Duration,
    /// `initial-grace-period` (default `5m`): a new session is not judged before it passed.
    pub initial_grace_period: Duration,
    pub thresholds_check_operator: ThresholdsCheckOperator,
    /// `resource-thresholds/{metric}/average` for each of [`UTILIZATION_METRICS`], in percent;
    /// `None` when that metric has no threshold (all of them when the section is missing).
    pub resource_thresholds: Vec<(String, Option<f64>)>,
}

impl IdleCheckerConfig {
    /// Reads `config/idle/...` from the global scope.
    pub async fn load(store: &EtcdStore) -> Result<IdleCheckerConfig, EtcdError> {
        let tree = store.get_prefix("config/idle", Scope::Global).await?;
        Ok(IdleCheckerConfig::from_tree(&tree))
    }

    /// Reads the tree `get_prefix("config/idle")` returns.
    pub fn from_tree(idle: &ConfigTree) -> IdleCheckerConfig {
        let root = Section::root("config/idle", idle);
        let mut report = Report::default();
        let IdleConfig { enabled } = read_idle(&root, &mut report);
        let mut unique = Vec::with_capacity(enabled.len());
        for name in enabled {
            if !unique.contains(&name) {
                unique.push(name);
            }
        }
        let checkers = root.section("checkers", &mut report);
        let mut warnings = report.problems;
        let checker = |name: &str| {
            let mut report = Report::default();
            let section = checkers.section(name, &mut report);
            (section, report)
        };
        let (section, mut report) = checker("network_timeout");
        let network_timeout = read_network_timeout(&section, &mut report);
        let network_timeout = settle(network_timeout, report, &mut warnings);
        let (section, mut report) = checker("utilization");
        let utilization = read_utilization(&section, &mut report);
        let utilization = settle(utilization, report, &mut warnings);
        let (section, mut report) = checker("user_grace_period");
        let grace = section.parse(
            "user_initial_grace_period",
            &mut report,
            parse_time_duration,
        );
        let user_initial_grace_period = settle(Some(grace), report, &mut warnings);
        IdleCheckerConfig {
            enabled: unique,
            network_timeout,
            utilization,
            user_initial_grace_period,
            warnings,
        }
    }
}

/// A checker's settings, or its errors when it has any (its warnings go to `warnings`).
fn settle<T>(
    read: Option<T>,
    report: Report,
    warnings: &mut Vec<SharedConfigProblem>,
) -> Result<T, Vec<SharedConfigProblem>> {
    let (errors, ignored): (Vec<_>, Vec<_>) = report
        .problems
        .into_iter()
        .partition(|problem| problem.severity == Severity::Error);
    warnings.extend(ignored);
    match read {
        Some(read) if errors.is_empty() => Ok(read),
        _ => Err(errors),
    }
}

fn read_network_timeout(section: &Section, report: &mut Report) -> Option<NetworkTimeoutConfig> {
    Some(NetworkTimeoutConfig {
        threshold: section
            .parse("threshold", report, parse_time_duration)
            .unwrap_or(Duration::from_secs(600)),
    })
}

fn read_utilization(section: &Section, report: &mut Report) -> Option<UtilizationConfig> {
    let time_window = section
        .parse("time-window", report, parse_time_duration)
        .unwrap_or(Duration::from_secs(600));
    let initial_grace_period = section
        .parse("initial-grace-period", report, parse_time_duration)
        .unwrap_or(Duration::from_secs(300));
    let thresholds_check_operator = section
        .parse("thresholds-check-operator", report, |value| match value {
            "and" => Ok(ThresholdsCheckOperator::And),
            "or" => Ok(ThresholdsCheckOperator::Or),
            _ => Err(format!("expected \"and\" or \"or\", found {value:?}")),
        })
        .unwrap_or(ThresholdsCheckOperator::And);
    let thresholds = section.section("resource-thresholds", report);
    for name in thresholds.names() {
        if !UTILIZATION_METRICS.contains(&name.as_str()) {
            report.unknown_key(
                &thresholds,
                name,
                "resource-thresholds has cpu_util, mem, cuda_util, cuda_mem and atom_mem",
            );
        }
    }
    let resource_thresholds = UTILIZATION_METRICS
        .iter()
        .map(|metric| {
            let average = match thresholds.get(metric) {
                None => None,
                Some(_) => thresholds
                    .section(metric, report)
                    .require("average", report, to_float),
            };
            ((*metric).to_owned(), average)
        })
        .collect();
    Some(UtilizationConfig {
        time_window,
        initial_grace_period,
        thresholds_check_operator,
        resource_thresholds,
    })
}

/// `None` only after reporting why.
fn read_volumes(volumes: &Section, report: &mut Report) -> Option<VolumesConfig> {
    let types_section = volumes.section("_types", report);
    let types = if types_section.is_present() {
        VolumeTypes {
            user: read_volume_type(&types_section, "user", report),
            group: read_volume_type(&types_section, "group", report),
        }
    } else {
        VolumeTypes {
            user: true,
            group: false,
        }
    };
    let default_host = volumes.require("default_host", report, VolumeHost::from_str);
    let exposed_volume_info = volumes
        .parse("exposed_volume_info", report, |list| Ok(comma_list(list)))
        .unwrap_or_else(|| vec!["percentage".to_owned()]);
    let proxies_section = volumes.section("proxies", report);
    let mut proxies = IndexMap::new();
    for name in proxies_section.names() {
        let proxy = proxies_section.section(name, report);
        if let Some(parsed) = read_storage_proxy(&proxy, report) {
            proxies.insert(name.clone(), parsed);
        }
    }
    Some(VolumesConfig {
        types,
        default_host: default_host?,
        exposed_volume_info,
        proxies,
    })
}

/// Whether the kind `name` is enabled: its key holds `""` or a subtree (`put-json` cannot store `{}`).
fn read_volume_type(types: &Section, name: &str, report: &mut Report) -> bool {
    match types.get(name) {
        None => false,
        Some(ConfigNode::Tree(_)) => true,
        Some(ConfigNode::Value(value)) => {
            if !value.is_empty() {
                let message = format!(
                    "expected \"\" or a subtree to enable this kind of folder, found {value:?}"
                );
                report.error(types.key_of(name), message);
            }
            true
        }
    }
}

fn read_storage_proxy(proxy: &Section, report: &mut Report) -> Option<StorageProxy> {
    if !proxy.is_present() {
        return None;
    }
    for name in proxy.names() {
        if !PROXY_KEYS.contains(&name.as_str()) {
            let allowed = format!("a storage proxy has only {}", PROXY_KEYS.join(", "));
            report.unknown_key(proxy, name, &allowed);
        }
    }
    let client_api = proxy.require("client_api", report, text);
    let manager_api = proxy.require("manager_api", report, text);
    let secret = proxy.require("secret", report, text);
    let ssl_verify = proxy.require("ssl_verify", report, to_bool);
    let sftp_scaling_groups =
        proxy.parse("sftp_scaling_groups", report, |list| Ok(comma_list(list)));
    Some(StorageProxy {
        client_api: client_api?,
        manager_api: manager_api?,
        secret: secret?,
        ssl_verify: ssl_verify?,
        sftp_scaling_groups,
    })
}

/// `UTC`, or a name like `Asia/Seoul` that has a file under `zoneinfo`. The pieces are checked before
/// the file system is asked, so a name cannot point outside `zoneinfo`.
fn check_timezone(zoneinfo: &Path, name: &str) -> Result<String, String> {
    if name == "UTC" {
        return Ok(name.to_owned());
    }
    let pieces: Vec<&str> = name.split('/').collect();
    let plausible = pieces.len() >= 2
        && pieces.iter().all(|piece| {
            piece.starts_with(|c: char| c.is_ascii_alphabetic())
                && piece
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))
        });
    if plausible && zoneinfo.join(name).is_file() {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "unknown time zone {name:?} (expected UTC or an Area/Location name found in {})",
            zoneinfo.display()
        ))
    }
}

/// An `http://` or `https://` URL with a host.
fn check_registry_url(url: &str) -> Result<String, String> {
    let has_host = |rest: &str| {
        !rest
            .split(['/', '?', '#'])
            .next()
            .unwrap_or_default()
            .is_empty()
    };
    match url.split_once("://") {
        Some((scheme, rest))
            if (scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"))
                && has_host(rest) =>
        {
            Ok(url.to_owned())
        }
        _ => Err(format!(
            "expected an http:// or https:// URL, found {url:?}"
        )),
    }
}

fn text(value: &str) -> Result<String, String> {
    Ok(value.to_owned())
}

/// The reference's `ToBool`.
fn to_bool(value: &str) -> Result<bool, String> {
    parse_bool(value).ok_or_else(|| {
        format!("expected a boolean (true/false, yes/no, on/off, 1/0), found {value:?}")
    })
}

/// The reference's `ToFloat`; infinities and NaN are refused, as no setting means them.
fn to_float(value: &str) -> Result<f64, String> {
    value
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|number| number.is_finite())
        .ok_or_else(|| format!("expected a number, found {value:?}"))
}

/// The reference's `ToInt` with a lower bound of 1.
fn to_positive_u32(value: &str) -> Result<u32, String> {
    value
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|number| *number >= 1)
        .ok_or_else(|| {
            format!(
                "expected a whole number from 1 to {}, found {value:?}",
                u32::MAX
            )
        })
}

/// The items of a comma-separated list, trimmed; blank items are dropped, so `""` is no items.
fn comma_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// What a value that must stay secret shows in `Debug` output.
fn redacted(secret: Option<&str>) -> Option<&'static str> {
    secret.map(|_| "<redacted>")
}

/// The problems found so far, in the order the keys were read.
#[derive(Debug, Default)]
struct Report {
    problems: Vec<SharedConfigProblem>,
}

impl Report {
    fn error(&mut self, key: String, message: impl Into<String>) {
        self.push(key, message.into(), Severity::Error);
    }

    fn warning(&mut self, key: String, message: impl Into<String>) {
        self.push(key, message.into(), Severity::Warning);
    }

    fn push(&mut self, key: String, message: String, severity: Severity) {
        self.problems.push(SharedConfigProblem {
            key,
            message,
            severity,
        });
    }

    /// A key where the schema allows no others; `allowed` says which keys belong there.
    fn unknown_key(&mut self, section: &Section, name: &str, allowed: &str) {
        let message = if name.is_empty() {
            format!("unexpected value at this key itself ({allowed})")
        } else {
            format!("unknown key ({allowed})")
        };
        self.error(section.key_of(name), message);
    }
}

/// A subtree being read and the etcd key it sits at (quoted as stored); `tree` is `None` when nothing
/// is stored there, so a missing section reads as all defaults.
#[derive(Debug)]
struct Section<'a> {
    key: String,
    tree: Option<&'a ConfigTree>,
}

impl<'a> Section<'a> {
    fn root(key: &str, tree: &'a ConfigTree) -> Self {
        Section {
            key: key.to_owned(),
            tree: Some(tree),
        }
    }

    fn is_present(&self) -> bool {
        self.tree.is_some()
    }

    /// The etcd key of the child `name`; the empty name is the value at this key itself.
    fn key_of(&self, name: &str) -> String {
        if name.is_empty() {
            self.key.clone()
        } else {
            format!("{}/{}", self.key, quote(name))
        }
    }

    fn get(&self, name: &str) -> Option<&'a ConfigNode> {
        self.tree.and_then(|tree| tree.get(name))
    }

    fn names(&self) -> impl Iterator<Item = &'a String> + use<'a> {
        self.tree.into_iter().flat_map(|tree| tree.keys())
    }

    /// The child subtree `name`; a value there is reported and read as a missing subtree.
    fn section(&self, name: &str, report: &mut Report) -> Section<'a> {
        let key = self.key_of(name);
        let tree = match self.get(name) {
            Some(ConfigNode::Tree(tree)) => Some(tree),
            Some(ConfigNode::Value(_)) => {
                report.error(key.clone(), EXPECTED_SUBTREE);
                None
            }
            None => None,
        };
        Section { key, tree }
    }

    /// The value `name` read with `parse`; `None` when it is missing or (after reporting why) bad.
    fn parse<T>(
        &self,
        name: &str,
        report: &mut Report,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        match self.get(name)? {
            ConfigNode::Value(value) => parse(value)
                .map_err(|message| report.error(self.key_of(name), message))
                .ok(),
            ConfigNode::Tree(_) => {
                report.error(self.key_of(name), EXPECTED_VALUE);
                None
            }
        }
    }

    /// Like [`Section::parse`], and a missing value is reported too.
    fn require<T>(
        &self,
        name: &str,
        report: &mut Report,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        if self.get(name).is_none() {
            report.error(self.key_of(name), REQUIRED);
        }
        self.parse(name, report, parse)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::tree::{flatten, tree_from_pairs};

    const CONFIG_JSON: &str = include_str!("../tests/reference/sample.etcd.config.json");
    const VOLUMES_JSON: &str = include_str!("../tests/reference/sample.etcd.volumes.json");
    const REDIS_SINGLE_JSON: &str =
        include_str!("../tests/reference/sample.etcd.redis-single.json");
    const REDIS_SENTINEL_JSON: &str =
        include_str!("../tests/reference/sample.etcd.redis-sentinel.json");
    const REDIS_HELPER_JSON: &str =
        include_str!("../tests/reference/sample.etcd.redis-helper.json");
    const HANG_TOLERANCE_JSON: &str =
        include_str!("../tests/reference/sample.etcd.config.session.hang-tolerance.json");

    /// The keys `etcd put-json PREFIX FILE` writes.
    fn put_json(prefix: &str, json: &str) -> Vec<(String, String)> {
        let Value::Object(object) = serde_json::from_str(json).expect("the sample is JSON") else {
            panic!("the sample is a JSON object")
        };
        flatten(prefix, &object)
    }

    /// Loads flat etcd keys (below the namespace) as `SharedConfig::load` would see them.
    fn load<K: AsRef<str>, V: AsRef<str>>(
        pairs: &[(K, V)],
    ) -> Result<SharedConfig, Vec<SharedConfigProblem>> {
        let mut sorted: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(k, v)| (k.as_ref(), v.as_ref()))
            .collect();
        sorted.sort();
        SharedConfig::from_trees(
            &tree_under(&sorted, "config"),
            &tree_under(&sorted, "volumes"),
        )
    }

    /// The tree of the keys below `root` among `sorted` (sorted by key), as etcd returns them.
    fn tree_under(sorted: &[(&str, &str)], root: &str) -> ConfigTree {
        let prefix = format!("{root}/");
        tree_from_pairs(
            root,
            sorted
                .iter()
                .copied()
                .filter(|(key, _)| key.starts_with(&prefix)),
        )
    }

    fn loaded<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> SharedConfig {
        load(pairs).unwrap_or_else(|problems| panic!("expected to load, found {problems:#?}"))
    }

    /// `previous` revised with what `pairs` store.
    fn revised(previous: &SharedConfig, pairs: &[(&str, &str)]) -> Revision {
        let mut sorted = pairs.to_vec();
        sorted.sort();
        previous.revise(
            &tree_under(&sorted, "config"),
            &tree_under(&sorted, "volumes"),
        )
    }

    #[test]
    fn a_revision_keeps_each_section_with_an_error_as_it_was() {
        let previous = loaded(&[
            ("config/redis/addr", "127.0.0.1:8110"),
            ("config/session/hang-tolerance/threshold/PREPARING", "10m"),
            ("volumes/default_host", "local:volume1"),
        ]);
        let revision = revised(
            &previous,
            &[
                ("config/redis/addr", "nonsense"),
                ("config/redis/password", "hunter2"),
                ("config/api/allow-graphql-schema-introspection", "true"),
                ("config/session/hang-tolerance/threshold/PREPARING", "20m"),
                ("config/idle/enabled", "network_timeout,no_such_checker"),
                ("volumes/_types/user", "yes"),
            ],
        );
        let config = &revision.config;
        assert_eq!(config.redis, previous.redis, "config/redis is kept whole");
        assert_eq!(config.volumes, previous.volumes);
        assert!(config.api.allow_graphql_schema_introspection);
        assert_eq!(
            config.session.hang_tolerance.preparing,
            Some(Duration::from_secs(1200))
        );
        let rejected: Vec<(&str, Vec<&str>)> = revision
            .rejected
            .iter()
            .map(|section| {
                let keys = section.problems.iter().map(|p| p.key.as_str()).collect();
                (section.key.as_str(), keys)
            })
            .collect();
        assert_eq!(
            rejected,
            [
                ("config/redis", vec!["config/redis/addr"]),
                (
                    "volumes",
                    vec!["volumes/_types/user", "volumes/default_host"]
                ),
            ]
        );
        assert!(!format!("{:?}", revision.rejected).contains("hunter2"));
        assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
        assert_eq!(config.warnings[0].key, "config/idle/enabled");

        // Fixed, the section is read again.
        let fixed = revised(config, &[("config/redis/addr", "127.0.0.1:8111")]);
        assert!(fixed.rejected.is_empty());
        assert_eq!(fixed.config.redis.addr.map(|addr| addr.port), Some(8111));
        assert_eq!(fixed.config.volumes, None, "nothing stored under volumes/");
    }

    /// Checks that `pairs` fail to load with exactly the problems `expected` (as displayed).
    fn check(pairs: &[(&str, &str)], expected: &[&str]) {
        let problems = load(pairs).expect_err("the configuration should be invalid");
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(shown, expected);
    }

    /// A valid `volumes/` to which a test adds one bad key.
    fn volumes_with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut pairs = vec![
            ("volumes/default_host", "local:volume1"),
            ("volumes/proxies/local/client_api", "http://127.0.0.1:6021"),
            (
                "volumes/proxies/local/manager_api",
                "https://127.0.0.1:6022",
            ),
            ("volumes/proxies/local/secret", "some-secret"),
        ];
        pairs.extend_from_slice(extra);
        pairs
    }

    fn seconds(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn the_reference_samples_load_with_a_warning_for_the_unknown_idle_checker() {
        let mut pairs = put_json("config", CONFIG_JSON);
        pairs.extend(put_json("volumes", VOLUMES_JSON));
        let config = loaded(&pairs);

        assert_eq!(config.system.timezone, "UTC");
        assert_eq!(config.redis.addr, Some(HostPort::new("127.0.0.1", 6379)));
        assert_eq!(config.redis.password.as_deref(), Some("REDIS_PASSWORD"));
        let registry = &config.docker.registries["cr.backend.ai"];
        assert_eq!(registry.url, "https://cr.backend.ai");
        assert_eq!(registry.kind, "harbor2");
        assert_eq!(registry.projects, ["stable", "ngc"]);
        assert!(registry.ssl_verify);
        assert_eq!(config.docker.auto_pull, AutoPullPolicy::Digest);
        assert_eq!(config.network.subnet.agent, IpNetwork::ALL_IPV4);
        assert_eq!(config.network.subnet.container.to_string(), "0.0.0.0/0");
        assert_eq!(config.network.overlay.mtu, 1500);
        assert_eq!(
            config.watcher.token.as_deref(),
            Some("some-random-long-string")
        );
        assert_eq!(config.watcher.file_io_timeout, 10.0);
        assert_eq!(
            config.session.hang_tolerance,
            HangThresholds {
                preparing: Some(seconds(3600)),
                terminating: Some(seconds(1800)),
            }
        );
        // `accelerator.cuda = {}` writes no key, so only the scheduler plugin remains.
        assert!(config.plugins.accelerator.is_empty());
        let fifo = config.plugins.scheduler["fifo"]
            .as_tree()
            .expect("fifo has settings");
        assert_eq!(fifo["num_retries_to_skip"].as_value(), Some("3"));
        assert!(config.idle.enabled.is_empty());
        assert_eq!(
            config
                .warnings
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            [
                "warning: config/idle/enabled: unknown idle checker \"timeout\" is ignored \
                 (known checkers: network_timeout, utilization)"
            ]
        );

        let volumes = config.volumes.expect("volumes are stored");
        assert_eq!(
            volumes.types,
            VolumeTypes {
                user: true,
                group: true
            }
        );
        assert_eq!(volumes.default_host.to_string(), "local:volume1");
        assert_eq!(volumes.exposed_volume_info, ["percentage"]);
        let proxy = &volumes.proxies["local"];
        assert_eq!(proxy.client_api, "http://127.0.0.1:6021");
        assert_eq!(proxy.manager_api, "https://127.0.0.1:6022");
        assert_eq!(proxy.secret, "some-secret-shared-with-storage-proxy");
        assert!(!proxy.ssl_verify);
        assert_eq!(proxy.sftp_scaling_groups, None);
    }

    #[test]
    fn the_redis_samples_load() {
        let mut pairs = put_json("config/redis", REDIS_SINGLE_JSON);
        pairs.extend(put_json(
            "config/redis/redis_helper_config",
            REDIS_HELPER_JSON,
        ));
        let single = loaded(&pairs).redis;
        assert_eq!(single.addr, Some(HostPort::new("127.0.0.1", 8111)));
        assert_eq!(single.sentinel, None);
        assert_eq!(
            single.helper,
            RedisHelperConfig {
                socket_timeout: 5.0,
                socket_connect_timeout: 2.0,
                reconnect_poll_timeout: 0.3,
            }
        );

        let sentinel = loaded(&put_json("config/redis", REDIS_SENTINEL_JSON)).redis;
        assert_eq!(sentinel.addr, None);
        assert_eq!(
            sentinel.sentinel,
            Some(vec![
                HostPort::new("127.0.0.1", 9503),
                HostPort::new("127.0.0.1", 9504),
                HostPort::new("127.0.0.1", 9505),
            ])
        );
        assert_eq!(sentinel.service_name.as_deref(), Some("mymaster"));
        assert_eq!(sentinel.password.as_deref(), Some("develove"));
    }

    #[test]
    fn the_hang_tolerance_sample_loads_under_its_prefix() {
        let config = loaded(&put_json(
            "config/session/hang-tolerance",
            HANG_TOLERANCE_JSON,
        ));
        assert_eq!(config.session.hang_tolerance.preparing, Some(seconds(3600)));
        assert_eq!(
            config.session.hang_tolerance.terminating,
            Some(seconds(1800))
        );
    }

    #[test]
    fn the_install_guide_keys_load() {
        let config = loaded(&[
            ("config/redis/addr", "bai-m1:8110"),
            ("config/redis/password", "develove"),
            ("config/docker/image/auto_pull", "tag"),
            (
                "config/docker/registry/cr.backend.ai",
                "https://cr.backend.ai",
            ),
            ("config/docker/registry/cr.backend.ai/type", "harbor2"),
            ("config/docker/registry/cr.backend.ai/project", "stable"),
            ("volumes/_types/group", ""),
            ("volumes/_types/user", ""),
            ("volumes/default_host", "bai-m1:local"),
            ("volumes/proxies/bai-m1/client_api", "http://bai-m1:6021"),
            ("volumes/proxies/bai-m1/manager_api", "https://bai-m1:6022"),
            ("volumes/proxies/bai-m1/secret", "ee7e0a8d5b6e"),
            ("volumes/proxies/bai-m1/ssl_verify", "false"),
        ]);
        assert_eq!(config.redis.addr, Some(HostPort::new("bai-m1", 8110)));
        assert_eq!(config.redis.password.as_deref(), Some("develove"));
        assert_eq!(config.docker.auto_pull, AutoPullPolicy::Tag);
        assert_eq!(
            config.docker.registries.into_iter().collect::<Vec<_>>(),
            [(
                "cr.backend.ai".to_owned(),
                ContainerRegistry {
                    url: "https://cr.backend.ai".to_owned(),
                    kind: "harbor2".to_owned(),
                    username: None,
                    password: None,
                    projects: vec!["stable".to_owned()],
                    ssl_verify: true,
                }
            )]
        );
        assert_eq!(
            config.volumes,
            Some(VolumesConfig {
                types: VolumeTypes {
                    user: true,
                    group: true
                },
                default_host: VolumeHost {
                    proxy: "bai-m1".to_owned(),
                    volume: "local".to_owned(),
                },
                exposed_volume_info: vec!["percentage".to_owned()],
                proxies: IndexMap::from([(
                    "bai-m1".to_owned(),
                    StorageProxy {
                        client_api: "http://bai-m1:6021".to_owned(),
                        manager_api: "https://bai-m1:6022".to_owned(),
                        secret: "ee7e0a8d5b6e".to_owned(),
                        ssl_verify: false,
                        sftp_scaling_groups: None,
                    }
                )]),
            })
        );
        assert!(config.warnings.is_empty());
    }

    #[test]
    fn nothing_stored_reads_as_the_defaults() {
        let config = loaded::<&str, &str>(&[]);
        assert_eq!(config.system.timezone, "UTC");
        assert_eq!(
            config.api,
            ApiConfig {
                allow_origins: "*".to_owned(),
                allow_graphql_schema_introspection: false,
                allow_openapi_schema_introspection: false,
            }
        );
        assert_eq!((config.redis.addr, config.redis.password), (None, None));
        assert_eq!(config.redis.helper.socket_timeout, 5.0);
        assert_eq!(config.docker.auto_pull, AutoPullPolicy::Digest);
        assert!(config.docker.registries.is_empty());
        assert_eq!(config.network.subnet.agent, IpNetwork::ALL_IPV4);
        assert_eq!(config.network.overlay.mtu, 1500);
        assert_eq!(config.watcher.file_io_timeout, 10.0);
        assert_eq!(config.auth.max_password_age, None);
        assert_eq!(config.session.hang_tolerance.preparing, None);
        assert!(config.idle.enabled.is_empty());
        assert_eq!(config.volumes, None);
        assert!(config.warnings.is_empty());
    }

    #[test]
    fn optional_settings_are_read_with_the_reference_readers() {
        let config = loaded(&[
            ("config/api/allow-graphql-schema-introspection", "True"),
            ("config/api/allow-openapi-schema-introspection", "yes"),
            ("config/auth/max_password_age", "90d"),
            (
                "config/docker/registry/cr.backend.ai%3A5000",
                "http://cr.backend.ai:5000",
            ),
            ("config/docker/registry/cr.backend.ai%3A5000/password", ""),
            ("config/docker/registry/cr.backend.ai%3A5000/project", ""),
            (
                "config/docker/registry/cr.backend.ai%3A5000/ssl-verify",
                "0",
            ),
            ("config/idle/enabled", "utilization, network_timeout"),
            ("config/network/overlay/mtu", "9000"),
            ("config/network/subnet/container", "fd00::/8"),
            ("config/watcher/file-io-timeout", "2.5"),
            ("volumes/default_host", "local:volume1"),
            ("volumes/exposed_volume_info", "percentage,used_bytes"),
            ("volumes/proxies/local/client_api", "http://127.0.0.1:6021"),
            (
                "volumes/proxies/local/manager_api",
                "https://127.0.0.1:6022",
            ),
            ("volumes/proxies/local/secret", "some-secret"),
            ("volumes/proxies/local/sftp_scaling_groups", "sftp-a,sftp-b"),
            ("volumes/proxies/local/ssl_verify", "1"),
        ]);
        assert!(config.api.allow_graphql_schema_introspection);
        assert!(config.api.allow_openapi_schema_introspection);
        assert_eq!(config.auth.max_password_age, Some(seconds(90 * 86_400)));
        let registry = &config.docker.registries["cr.backend.ai:5000"];
        assert_eq!(registry.password.as_deref(), Some(""));
        assert!(registry.projects.is_empty());
        assert!(!registry.ssl_verify);
        assert_eq!(config.idle.enabled, ["utilization", "network_timeout"]);
        assert_eq!(config.network.overlay.mtu, 9000);
        assert_eq!(config.network.subnet.container.to_string(), "fd00::/8");
        assert_eq!(config.watcher.file_io_timeout, 2.5);
        let volumes = config.volumes.expect("volumes are stored");
        assert_eq!(
            volumes.types,
            VolumeTypes {
                user: true,
                group: false
            }
        );
        assert_eq!(volumes.exposed_volume_info, ["percentage", "used_bytes"]);
        let proxy = &volumes.proxies["local"];
        assert_eq!(
            proxy.sftp_scaling_groups,
            Some(vec!["sftp-a".to_owned(), "sftp-b".to_owned()])
        );
        assert!(proxy.ssl_verify);
    }

    #[test]
    fn a_bad_redis_address_is_reported() {
        check(
            &[("config/redis/addr", "x")],
            &[r#"config/redis/addr: expected "host:port", found "x""#],
        );
        check(
            &[
                ("config/redis/sentinel", "127.0.0.1:9503,bad"),
                ("config/redis/service_name", "mymaster"),
            ],
            &[r#"config/redis/sentinel: expected "host:port", found "bad""#],
        );
    }

    #[test]
    fn an_empty_redis_password_is_reported_without_echoing_passwords() {
        check(
            &[("config/redis/password", "")],
            &["config/redis/password: must not be empty (leave the key out for no password)"],
        );
    }

    #[test]
    fn sentinels_need_a_service_name() {
        check(
            &[("config/redis/sentinel", "127.0.0.1:9503,127.0.0.1:9504")],
            &["config/redis/service_name: required when config/redis/sentinel is set"],
        );
    }

    #[test]
    fn a_registry_needs_an_http_url_at_its_own_key() {
        check(
            &[(
                "config/docker/registry/cr.backend.ai%3A5000/type",
                "harbor2",
            )],
            &[
                "config/docker/registry/cr.backend.ai%3A5000: a registry needs its URL as the value of this key itself",
            ],
        );
        check(
            &[
                ("config/docker/registry/local", "ftp://x"),
                ("config/docker/registry/local/type", "docker"),
            ],
            &[
                r#"config/docker/registry/local: expected an http:// or https:// URL, found "ftp://x""#,
            ],
        );
        check(
            &[
                ("config/docker/registry/local", "https://"),
                ("config/docker/registry/local/type", "docker"),
            ],
            &[
                r#"config/docker/registry/local: expected an http:// or https:// URL, found "https://""#,
            ],
        );
        // As in the reference, a registry must be a subtree: a URL alone is not enough.
        check(
            &[("config/docker/registry/local", "https://cr.example")],
            &["config/docker/registry/local: expected a subtree of keys, found a single value"],
        );
    }

    #[test]
    fn anything_under_docker_requires_the_registry_key() {
        check(
            &[("config/docker/image/auto_pull", "tag")],
            &["config/docker/registry: required when anything under config/docker is set"],
        );
    }

    #[test]
    fn a_bad_auto_pull_policy_is_reported() {
        check(
            &[
                ("config/docker/image/auto_pull", "always"),
                (
                    "config/docker/registry/cr.backend.ai",
                    "https://cr.backend.ai",
                ),
                ("config/docker/registry/cr.backend.ai/type", "harbor2"),
            ],
            &[
                r#"config/docker/image/auto_pull: expected one of digest, tag, none, found "always""#,
            ],
        );
    }

    #[test]
    fn a_bad_mtu_is_reported() {
        for mtu in ["0", "-1", "1500.0", "many"] {
            let expected = format!(
                "config/network/overlay/mtu: expected a whole number from 1 to 4294967295, found {mtu:?}"
            );
            check(&[("config/network/overlay/mtu", mtu)], &[&expected]);
        }
    }

    #[test]
    fn a_bad_duration_is_reported() {
        check(
            &[("config/session/hang-tolerance/threshold/PREPARING", "soon")],
            &[
                r#"config/session/hang-tolerance/threshold/PREPARING: expected a duration such as "90" (seconds), "1.5h", "30m", "2d", "1w" or "1yr", found "soon""#,
            ],
        );
        check(
            &[("config/auth/max_password_age", "-1d")],
            &[r#"config/auth/max_password_age: a duration cannot be negative, found "-1d""#],
        );
    }

    #[test]
    fn a_bad_subnet_is_reported() {
        check(
            &[
                ("config/network/subnet/agent", "10.0.0.0/33"),
                ("config/network/subnet/container", "10.0.0.1/8"),
            ],
            &[
                r#"config/network/subnet/agent: the prefix length in "10.0.0.0/33" must be at most 32"#,
                r#"config/network/subnet/container: "10.0.0.1/8" has host bits set (the network is "10.0.0.0/8")"#,
            ],
        );
    }

    #[test]
    fn a_proxy_allows_no_extra_keys() {
        check(
            &volumes_with(&[
                ("volumes/proxies/local/ssl_verify", "false"),
                ("volumes/proxies/local/ssl-verify", "false"),
            ]),
            &["volumes/proxies/local/ssl-verify: unknown key \
               (a storage proxy has only client_api, manager_api, secret, ssl_verify, sftp_scaling_groups)"],
        );
    }

    #[test]
    fn a_proxy_requires_ssl_verify() {
        check(
            &volumes_with(&[]),
            &["volumes/proxies/local/ssl_verify: required but missing"],
        );
        check(
            &volumes_with(&[("volumes/proxies/local/ssl_verify", "maybe")]),
            &[
                r#"volumes/proxies/local/ssl_verify: expected a boolean (true/false, yes/no, on/off, 1/0), found "maybe""#,
            ],
        );
    }

    #[test]
    fn stored_volumes_need_a_default_host() {
        check(
            &[("volumes/_types/user", "")],
            &["volumes/default_host: required but missing"],
        );
        check(
            &[
                ("volumes/default_host", "local"),
                ("volumes/_types/user", "yes"),
            ],
            &[
                r#"volumes/_types/user: expected "" or a subtree to enable this kind of folder, found "yes""#,
                r#"volumes/default_host: expected "proxy:volume", found "local""#,
            ],
        );
    }

    #[test]
    fn hang_tolerance_rejects_unknown_keys_and_ignores_other_statuses() {
        check(
            &[("config/session/hang-tolerance/RUNNING", "1h")],
            &[
                "config/session/hang-tolerance/RUNNING: unknown key (hang-tolerance has only threshold)",
            ],
        );
        let config = loaded(&[("config/session/hang-tolerance/threshold/RUNNING", "1h")]);
        assert_eq!(
            config
                .warnings
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            ["warning: config/session/hang-tolerance/threshold/RUNNING: \
                 ignored: hang thresholds exist only for PREPARING and TERMINATING"]
        );
    }

    #[test]
    fn values_and_subtrees_in_the_wrong_place_are_reported() {
        check(
            &[
                ("config/redis", "127.0.0.1:6379"),
                ("config/plugins/accelerator/cuda", ""),
            ],
            &[
                "config/redis: expected a subtree of keys, found a single value",
                "config/plugins/accelerator/cuda: expected a subtree of keys, found a single value",
            ],
        );
        check(
            &[("config/system/timezone/x", "UTC")],
            &["config/system/timezone: expected a value, found a subtree of keys"],
        );
    }

    #[test]
    fn every_problem_is_collected_with_warnings_alongside() {
        let problems = load(&[
            ("config/docker/image/auto_pull", "always"),
            ("config/idle/enabled", "timeout"),
            ("config/network/overlay/mtu", "0"),
            ("config/redis/addr", "x"),
            ("config/redis/password", ""),
            ("config/system/timezone", "Mars/Olympus"),
            ("config/watcher/file-io-timeout", "soon"),
            ("volumes/proxies/local/client_api", "http://127.0.0.1:6021"),
        ])
        .expect_err("the configuration is invalid");
        let keys: Vec<(&str, Severity)> = problems
            .iter()
            .map(|p| (p.key.as_str(), p.severity))
            .collect();
        assert_eq!(
            keys,
            [
                ("config/system/timezone", Severity::Error),
                ("config/redis/addr", Severity::Error),
                ("config/redis/password", Severity::Error),
                ("config/docker/image/auto_pull", Severity::Error),
                ("config/docker/registry", Severity::Error),
                ("config/network/overlay/mtu", Severity::Error),
                ("config/watcher/file-io-timeout", Severity::Error),
                ("config/idle/enabled", Severity::Warning),
                ("volumes/default_host", Severity::Error),
                ("volumes/proxies/local/manager_api", Severity::Error),
                ("volumes/proxies/local/secret", Severity::Error),
                ("volumes/proxies/local/ssl_verify", Severity::Error),
            ]
        );
        assert_eq!(
            problems[0].to_string(),
            r#"config/system/timezone: unknown time zone "Mars/Olympus" (expected UTC or an Area/Location name found in /usr/share/zoneinfo)"#
        );

        let error = SharedConfigError::Invalid(problems[6..8].to_vec());
        assert_eq!(
            error.to_string(),
            r#"the shared configuration in etcd is invalid: config/watcher/file-io-timeout: expected a number, found "soon""#
        );
    }

    #[test]
    fn time_durations_follow_the_reference() {
        for (text, expected) in [
            ("90", Duration::from_secs(90)),
            ("1.5", Duration::from_millis(1500)),
            (" 2 ", Duration::from_secs(2)),
            ("30s", Duration::from_secs(30)),
            ("30m", Duration::from_secs(1800)),
            ("1.5h", Duration::from_secs(5400)),
            ("2d", Duration::from_secs(2 * 86_400)),
            ("1w", Duration::from_secs(7 * 86_400)),
            ("1mo", Duration::from_secs(30 * 86_400)),
            ("2yr", Duration::from_secs(2 * 365 * 86_400)),
            ("0", Duration::ZERO),
        ] {
            assert_eq!(parse_time_duration(text), Ok(expected), "{text:?}");
        }
        for text in [
            "", "m", "5x", "1.5yr", "1.5mo", "inf", "nans", "5 m s", "1e400",
        ] {
            assert!(
                parse_time_duration(text)
                    .unwrap_err()
                    .starts_with("expected a duration"),
                "{text:?}"
            );
        }
        for text in ["-1", "-5m", "-1yr"] {
            assert_eq!(
                parse_time_duration(text),
                Err(format!("a duration cannot be negative, found {text:?}"))
            );
        }
    }

    #[test]
    fn ip_networks_are_read_like_pythons_ip_network() {
        for (text, shown) in [
            ("0.0.0.0/0", "0.0.0.0/0"),
            ("10.1.0.0/16", "10.1.0.0/16"),
            ("192.168.0.7", "192.168.0.7/32"),
            ("fd00::/8", "fd00::/8"),
            ("::/0", "::/0"),
            ("2001:db8::1/128", "2001:db8::1/128"),
        ] {
            assert_eq!(
                text.parse::<IpNetwork>().map(|net| net.to_string()),
                Ok(shown.to_owned())
            );
        }
        let net: IpNetwork = "10.1.0.0/16".parse().expect("a network");
        assert_eq!(
            (net.addr(), net.prefix_len()),
            (IpAddr::V4(Ipv4Addr::new(10, 1, 0, 0)), 16)
        );
        assert_eq!(
            "fd00::1/8".parse::<IpNetwork>(),
            Err(r#""fd00::1/8" has host bits set (the network is "fd00::/8")"#.to_owned())
        );
        assert_eq!(
            "::/129".parse::<IpNetwork>(),
            Err(r#"the prefix length in "::/129" must be at most 128"#.to_owned())
        );
        for text in [
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0/8",
            "10.0.0.0/255.0.0.0",
            " 10.0.0.0/8",
            "host/8",
        ] {
            assert!(
                text.parse::<IpNetwork>()
                    .unwrap_err()
                    .starts_with("expected an IP network"),
                "{text:?}"
            );
        }
    }

    #[test]
    fn time_zones_must_be_utc_or_an_area_location_file() {
        let zoneinfo = tempfile::tempdir().expect("a temporary directory");
        std::fs::create_dir_all(zoneinfo.path().join("America/Argentina"))
            .expect("creates zone dirs");
        std::fs::write(
            zoneinfo.path().join("America/Argentina/Buenos_Aires"),
            "TZif",
        )
        .expect("writes a zone");
        std::fs::write(zoneinfo.path().join("Seoul"), "TZif").expect("writes a zone");
        std::fs::write(zoneinfo.path().join("passwd"), "root").expect("writes a file");
        let check = |name: &str| check_timezone(zoneinfo.path(), name).is_ok();
        assert!(check("UTC"));
        assert!(check("America/Argentina/Buenos_Aires"));
        for name in [
            "utc",
            "Seoul",
            "America",
            "America/Nowhere",
            "America/../passwd",
            "/passwd",
            "America//Argentina",
        ] {
            assert!(!check(name), "{name:?}");
        }
    }

    #[test]
    fn debug_output_hides_passwords_secrets_and_tokens() {
        let config = loaded(&[
            ("config/docker/registry/r", "https://r.example"),
            ("config/docker/registry/r/password", "registry-pw"),
            ("config/redis/password", "redis-pw"),
            ("config/watcher/token", "watcher-token"),
            ("volumes/default_host", "local:volume1"),
            ("volumes/proxies/local/client_api", "http://127.0.0.1:6021"),
            (
                "volumes/proxies/local/manager_api",
                "https://127.0.0.1:6022",
            ),
            ("volumes/proxies/local/secret", "proxy-secret"),
            ("volumes/proxies/local/ssl_verify", "false"),
        ]);
        let shown = format!("{config:?}");
        for secret in ["registry-pw", "redis-pw", "watcher-token", "proxy-secret"] {
            assert!(!shown.contains(secret), "{secret} shows in {shown}");
        }
        assert!(shown.contains("<redacted>"));
    }

    /// The idle checkers' settings as `IdleCheckerConfig::load` reads flat keys below `config/idle`.
    fn idle_config(pairs: &[(&str, &str)]) -> IdleCheckerConfig {
        let mut sorted = pairs.to_vec();
        sorted.sort();
        IdleCheckerConfig::from_tree(&tree_from_pairs("config/idle", sorted))
    }

    #[test]
    fn idle_checkers_default_as_the_reference_and_a_bad_checker_keeps_its_errors() {
        let config = idle_config(&[]);
        assert!(config.enabled.is_empty());
        assert_eq!(
            config.network_timeout,
            Ok(NetworkTimeoutConfig {
                threshold: seconds(600)
            })
        );
        let utilization = config.utilization.expect("defaults");
        assert_eq!(utilization.time_window, seconds(600));
        assert_eq!(utilization.initial_grace_period, seconds(300));
        assert_eq!(
            utilization.thresholds_check_operator,
            ThresholdsCheckOperator::And
        );
        assert!(
            utilization
                .resource_thresholds
                .iter()
                .all(|(_, average)| average.is_none())
        );
        assert_eq!(config.user_initial_grace_period, Ok(None));

        let config = idle_config(&[
            (
                "config/idle/enabled",
                "utilization, timeout,network_timeout,utilization",
            ),
            ("config/idle/checkers/network_timeout/threshold", "soon"),
            (
                "config/idle/checkers/utilization/resource-thresholds/cpu_util/average",
                "30",
            ),
            (
                "config/idle/checkers/utilization/thresholds-check-operator",
                "or",
            ),
            (
                "config/idle/checkers/user_grace_period/user_initial_grace_period",
                "1h",
            ),
        ]);
        assert_eq!(config.enabled, ["utilization", "network_timeout"]);
        let shown: Vec<String> = config.warnings.iter().map(ToString::to_string).collect();
        assert_eq!(shown.len(), 1, "{shown:?}");
        assert!(
            shown[0].starts_with("warning: config/idle/enabled: unknown idle checker \"timeout\"")
        );
        let errors = config.network_timeout.expect_err("a bad threshold");
        assert_eq!(
            errors[0].key,
            "config/idle/checkers/network_timeout/threshold"
        );
        let utilization = config.utilization.expect("valid");
        assert_eq!(
            utilization.thresholds_check_operator,
            ThresholdsCheckOperator::Or
        );
        assert_eq!(
            utilization.resource_thresholds[0],
            ("cpu_util".to_owned(), Some(30.0))
        );
        assert_eq!(utilization.resource_thresholds[1], ("mem".to_owned(), None));
        assert_eq!(config.user_initial_grace_period, Ok(Some(seconds(3600))));

        let config = idle_config(&[
            (
                "config/idle/checkers/utilization/resource-thresholds/gpu/average",
                "30",
            ),
            (
                "config/idle/checkers/utilization/resource-thresholds/mem/max",
                "30",
            ),
        ]);
        let shown: Vec<String> = config
            .utilization
            .expect_err("unknown metric, missing average")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            shown,
            [
                "config/idle/checkers/utilization/resource-thresholds/gpu: unknown key \
                 (resource-thresholds has cpu_util, mem, cuda_util, cuda_mem and atom_mem)",
                "config/idle/checkers/utilization/resource-thresholds/mem/average: required but missing",
            ]
        );
    }

    #[test]
    fn a_registry_is_written_as_the_reference_stores_it_and_checked_as_read() {
        let registry = ContainerRegistry {
            url: "https://cr.example:5000".to_owned(),
            kind: "harbor2".to_owned(),
            username: Some("admin".to_owned()),
            password: Some(String::new()),
            projects: vec!["stable".to_owned(), "ngc".to_owned()],
            ssl_verify: false,
        };
        let key = "config/docker/registry/cr.example%3A5000";
        let expected: Vec<(String, String)> = [
            (key.to_owned(), "https://cr.example:5000"),
            (format!("{key}/type"), "harbor2"),
            (format!("{key}/username"), "admin"),
            (format!("{key}/password"), ""),
            (format!("{key}/project"), "stable,ngc"),
            (format!("{key}/ssl_verify"), "0"),
        ]
        .into_iter()
        .map(|(key, value)| (key, value.to_owned()))
        .collect();
        assert_eq!(registry.to_pairs("cr.example:5000"), expected);
        assert_eq!(registry.check("cr.example:5000"), Ok(()));

        let problems = |registry: ContainerRegistry, name: &str| -> Vec<String> {
            registry
                .check(name)
                .expect_err("refused")
                .iter()
                .map(ToString::to_string)
                .collect()
        };
        let bad = ContainerRegistry {
            url: "ftp://cr.example".to_owned(),
            kind: String::new(),
            username: Some(String::new()),
            projects: vec!["a,b".to_owned()],
            ..registry.clone()
        };
        assert_eq!(
            problems(bad, "local"),
            [
                r#"config/docker/registry/local: expected an http:// or https:// URL, found "ftp://cr.example""#,
                "config/docker/registry/local/type: must not be blank",
                "config/docker/registry/local/username: must not be blank",
            ]
        );
        let padded = ContainerRegistry {
            projects: vec![" stable".to_owned()],
            ..registry.clone()
        };
        assert_eq!(
            problems(padded, "local"),
            [
                "config/docker/registry/local/project: each project name must be non-blank, \
              without commas or surrounding spaces"
            ]
        );
        assert_eq!(
            problems(registry, ""),
            ["config/docker/registry/: a registry needs a non-empty name"]
        );
    }
}
