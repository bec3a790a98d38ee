//! The typed method table (spec §3.6): every agent RPC the manager may call, the manager's invoke
//! timeout for it, and the agent versions that have it, with typed wrappers that refuse a method
//! the agent's version lacks before anything is sent (an unknown method ends the Python agent's
//! RPC receive loop, §7 item 3).

use std::fmt;
use std::time::Duration;

use rmpv::Value;
use tracing::Instrument;

use crate::client::Connection;
use crate::error::RpcError;

/// An agent's version as its heartbeat reports it (`"24.03.11"`, `"23.09.10"`, also `"24.3.11"`
/// or with a suffix such as `"24.03.0rc1"`), compared by `(major, minor, patch)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentVersion {
    text: String,
    parsed: Option<(u32, u32, u32)>,
}

impl AgentVersion {
    pub fn parse(text: &str) -> AgentVersion {
        let mut numbers = text.trim().split('.').map(|part| {
            let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u32>().ok()
        });
        let major = numbers.next().flatten();
        let minor = numbers.next().flatten();
        let patch = numbers.next().flatten().unwrap_or(0);
        AgentVersion {
            text: text.to_owned(),
            parsed: major.zip(minor).map(|(major, minor)| (major, minor, patch)),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `(major, minor, patch)`, or `None` for a version that is not numbers.
    pub fn numbers(&self) -> Option<(u32, u32, u32)> {
        self.parsed
    }

    /// At least `major.minor`. A version that cannot be read is older than any: only the methods
    /// every agent has are called on it.
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        self.parsed
            .is_some_and(|(have_major, have_minor, _)| (have_major, have_minor) >= (major, minor))
    }

    /// 24.03 or newer: `trigger_batch_execution`, `push_image`, the keyword form of `commit`.
    pub fn is_24_03_or_newer(&self) -> bool {
        self.at_least(24, 3)
    }
}

impl fmt::Display for AgentVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

macro_rules! methods {
    ($($variant:ident => $name:literal, timeout $timeout:expr, since $since:expr;)*) => {
        /// An agent RPC method (`@rpc_function` of the agent's `server.py`). `clean_all_kernels`,
        /// which the reference manager calls but no agent exposes, is deliberately absent.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum AgentMethod {
            $($variant,)*
        }

        impl AgentMethod {
            /// Every method of the table.
            pub const ALL: &'static [AgentMethod] = &[$(AgentMethod::$variant,)*];

            /// The name on the wire.
            pub fn name(self) -> &'static str {
                match self {
                    $(AgentMethod::$variant => $name,)*
                }
            }

            /// The manager's `invoke_timeout` for it (spec §3.6); `None`: wait as long as the
            /// connection lives.
            pub fn invoke_timeout(self) -> Option<Duration> {
                match self {
                    $(AgentMethod::$variant => $timeout,)*
                }
            }

            /// The oldest agent version (`major.minor`) that has it.
            pub fn since(self) -> (u32, u32) {
                match self {
                    $(AgentMethod::$variant => $since,)*
                }
            }
        }
    };
}

const SECS_30: Option<Duration> = Some(Duration::from_secs(30));
const SECS_10: Option<Duration> = Some(Duration::from_secs(10));
/// Every supported agent (23.09 and 24.03).
const ALL_AGENTS: (u32, u32) = (0, 0);
const SINCE_24_03: (u32, u32) = (24, 3);

methods! {
    Ping => "ping", timeout None, since ALL_AGENTS;
    GatherHwinfo => "gather_hwinfo", timeout None, since ALL_AGENTS;
    UpdateScalingGroup => "update_scaling_group", timeout None, since ALL_AGENTS;
    PingKernel => "ping_kernel", timeout None, since ALL_AGENTS;
    SyncKernelRegistry => "sync_kernel_registry", timeout None, since ALL_AGENTS;
    CreateKernels => "create_kernels", timeout None, since ALL_AGENTS;
    DestroyKernel => "destroy_kernel", timeout None, since ALL_AGENTS;
    InterruptKernel => "interrupt_kernel", timeout SECS_30, since ALL_AGENTS;
    GetCompletions => "get_completions", timeout SECS_10, since ALL_AGENTS;
    GetLogs => "get_logs", timeout SECS_30, since ALL_AGENTS;
    RestartKernel => "restart_kernel", timeout None, since ALL_AGENTS;
    Execute => "execute", timeout SECS_30, since ALL_AGENTS;
    TriggerBatchExecution => "trigger_batch_execution", timeout SECS_30, since SINCE_24_03;
    StartService => "start_service", timeout None, since ALL_AGENTS;
    ShutdownService => "shutdown_service", timeout None, since ALL_AGENTS;
    GetCommitStatus => "get_commit_status", timeout None, since ALL_AGENTS;
    Commit => "commit", timeout None, since ALL_AGENTS;
    PushImage => "push_image", timeout None, since SINCE_24_03;
    GetLocalConfig => "get_local_config", timeout None, since ALL_AGENTS;
    UploadFile => "upload_file", timeout None, since ALL_AGENTS;
    DownloadFile => "download_file", timeout None, since ALL_AGENTS;
    DownloadSingle => "download_single", timeout None, since ALL_AGENTS;
    ListFiles => "list_files", timeout SECS_30, since ALL_AGENTS;
    ShutdownAgent => "shutdown_agent", timeout None, since ALL_AGENTS;
    CreateLocalNetwork => "create_local_network", timeout None, since ALL_AGENTS;
    DestroyLocalNetwork => "destroy_local_network", timeout None, since ALL_AGENTS;
    ResetAgent => "reset_agent", timeout None, since ALL_AGENTS;
    AssignPort => "assign_port", timeout None, since ALL_AGENTS;
    ReleasePort => "release_port", timeout None, since ALL_AGENTS;
}

impl AgentMethod {
    /// The method called `name`, if the table has it.
    pub fn from_name(name: &str) -> Option<AgentMethod> {
        AgentMethod::ALL
            .iter()
            .copied()
            .find(|method| method.name() == name)
    }

    /// Whether an agent of `version` has it.
    pub fn available_on(self, version: &AgentVersion) -> bool {
        let (major, minor) = self.since();
        (major, minor) == ALL_AGENTS || version.at_least(major, minor)
    }
}

impl fmt::Display for AgentMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The keyword arguments of `commit` (24.03); a 23.09 agent takes only `filename`, positionally,
/// and never sees `canonical` nor `extra_labels`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CommitOptions {
    pub canonical: Option<String>,
    pub filename: Option<String>,
    pub extra_labels: Vec<(String, String)>,
}

/// The arguments of `execute` after the session and kernel.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecuteRequest {
    /// The API version (the manager passes 4 for 3 and newer).
    pub api_version: i64,
    pub run_id: Option<String>,
    /// `"query"`, `"batch"`, `"continue"` or `"input"`.
    pub mode: String,
    pub code: String,
    /// The `opts` map.
    pub opts: Value,
    pub flush_timeout: Option<f64>,
}

fn opt_str(value: Option<&str>) -> Value {
    value.map_or(Value::Nil, Value::from)
}

/// Fails with [`RpcError::Unsupported`] when an agent of `version` lacks `method`.
pub fn check_method(
    agent_id: &str,
    version: &AgentVersion,
    method: AgentMethod,
) -> Result<(), RpcError> {
    if method.available_on(version) {
        Ok(())
    } else {
        Err(RpcError::Unsupported {
            agent: agent_id.to_owned(),
            method: method.name().to_owned(),
            version: version.as_str().to_owned(),
        })
    }
}

/// A connection to an agent of a known version: the typed calls of the method table, each with
/// the manager's invoke timeout, refusing what the agent's version lacks.
#[derive(Debug)]
pub struct AgentConnection {
    connection: Connection,
    version: AgentVersion,
}

impl AgentConnection {
    /// `version` is the agent's heartbeat `version` (`agents.version`).
    pub fn new(connection: Connection, version: AgentVersion) -> AgentConnection {
        AgentConnection {
            connection,
            version,
        }
    }

    pub fn agent_id(&self) -> &str {
        self.connection.agent_id()
    }

    pub fn version(&self) -> &AgentVersion {
        &self.version
    }

    /// The untyped connection underneath (no version check: the caller's responsibility).
    pub fn connection(&self) -> &Connection {
        &self.connection
    }

    /// Fails with [`RpcError::Unsupported`] when the agent's version lacks `method`.
    pub fn check(&self, method: AgentMethod) -> Result<(), RpcError> {
        check_method(self.agent_id(), &self.version, method)
    }

    /// Calls `method` with the manager's timeout for it, after the version check.
    pub async fn invoke(
        &self,
        method: AgentMethod,
        args: Vec<Value>,
        kwargs: Vec<(String, Value)>,
    ) -> Result<Value, RpcError> {
        self.invoke_with_timeout(method, args, kwargs, method.invoke_timeout())
            .await
    }

    /// Calls `method` with `timeout` instead of the table's, after the version check.
    pub async fn invoke_with_timeout(
        &self,
        method: AgentMethod,
        args: Vec<Value>,
        kwargs: Vec<(String, Value)>,
        timeout: Option<Duration>,
    ) -> Result<Value, RpcError> {
        self.check(method)?;
        // The span names the agent and the method, never the arguments (they may hold secrets).
        let span = tracing::info_span!(
            "agent_rpc",
            agent_id = %self.agent_id(),
            method = method.name()
        );
        let started = std::time::Instant::now();
        let result = self
            .connection
            .call(method.name(), args, kwargs, timeout)
            .instrument(span)
            .await;
        bai_metrics::record::agent_rpc_call(
            method.name(),
            started.elapsed(),
            result.as_ref().err().map(RpcError::kind),
        );
        result
    }

    fn bad_reply(&self, method: AgentMethod, what: &str, got: &Value) -> RpcError {
        RpcError::UnexpectedReply {
            agent: self.agent_id().to_owned(),
            method: method.name().to_owned(),
            detail: format!("expected {what}, got {got}"),
        }
    }

    /// `ping(msg)`: the agent echoes `msg`. The reference has no timeout; pass one.
    pub async fn ping(&self, msg: &str, timeout: Option<Duration>) -> Result<String, RpcError> {
        let method = AgentMethod::Ping;
        let reply = self
            .invoke_with_timeout(method, vec![Value::from(msg)], Vec::new(), timeout)
            .await?;
        match reply.as_str() {
            Some(text) => Ok(text.to_owned()),
            None => Err(self.bad_reply(method, "a string", &reply)),
        }
    }

    /// `gather_hwinfo()`: `{device: {"status", "status_info", "metadata"}}`.
    pub async fn gather_hwinfo(&self) -> Result<Value, RpcError> {
        self.invoke(AgentMethod::GatherHwinfo, Vec::new(), Vec::new())
            .await
    }

    /// `get_local_config()`: `{"agent": {...}, "watcher": {...}}`.
    pub async fn get_local_config(&self) -> Result<Value, RpcError> {
        self.invoke(AgentMethod::GetLocalConfig, Vec::new(), Vec::new())
            .await
    }

    /// `create_kernels(session_id, [kernel_id], [KernelCreationConfig], ClusterInfo)`. The
    /// reference waits without limit (pulling an image may take long); `timeout` bounds the wait.
    pub async fn create_kernels(
        &self,
        session_id: &str,
        kernel_ids: &[String],
        configs: Vec<Value>,
        cluster_info: Value,
        timeout: Option<Duration>,
    ) -> Result<Value, RpcError> {
        let ids = kernel_ids
            .iter()
            .map(|id| Value::from(id.as_str()))
            .collect();
        self.invoke_with_timeout(
            AgentMethod::CreateKernels,
            vec![
                Value::from(session_id),
                Value::Array(ids),
                Value::Array(configs),
                cluster_info,
            ],
            Vec::new(),
            timeout,
        )
        .await
    }

    /// `destroy_kernel(kernel_id, session_id, reason, suppress_events=...)`.
    pub async fn destroy_kernel(
        &self,
        kernel_id: &str,
        session_id: &str,
        reason: Option<&str>,
        suppress_events: bool,
    ) -> Result<Value, RpcError> {
        self.invoke(
            AgentMethod::DestroyKernel,
            vec![
                Value::from(kernel_id),
                Value::from(session_id),
                opt_str(reason),
            ],
            vec![("suppress_events".to_owned(), Value::from(suppress_events))],
        )
        .await
    }

    /// `restart_kernel(session_id, kernel_id, updated_config)`.
    pub async fn restart_kernel(
        &self,
        session_id: &str,
        kernel_id: &str,
        updated_config: Value,
    ) -> Result<Value, RpcError> {
        self.invoke(
            AgentMethod::RestartKernel,
            vec![
                Value::from(session_id),
                Value::from(kernel_id),
                updated_config,
            ],
            Vec::new(),
        )
        .await
    }

    /// `execute(session_id, kernel_id, api_version, run_id, mode, code, opts, flush_timeout)`.
    pub async fn execute(
        &self,
        session_id: &str,
        kernel_id: &str,
        request: ExecuteRequest,
    ) -> Result<Value, RpcError> {
        self.invoke(
            AgentMethod::Execute,
            vec![
                Value::from(session_id),
                Value::from(kernel_id),
                Value::from(request.api_version),
                opt_str(request.run_id.as_deref()),
                Value::from(request.mode),
                Value::from(request.code),
                request.opts,
                request.flush_timeout.map_or(Value::Nil, Value::F64),
            ],
            Vec::new(),
        )
        .await
    }

    /// `get_logs(kernel_id)`: the `logs` text of `{"logs": str}`.
    pub async fn get_logs(&self, kernel_id: &str) -> Result<String, RpcError> {
        let method = AgentMethod::GetLogs;
        let reply = self
            .invoke(method, vec![Value::from(kernel_id)], Vec::new())
            .await?;
        let logs = reply.as_map().and_then(|entries| {
            entries
                .iter()
                .find(|(key, _)| key.as_str() == Some("logs"))
                .and_then(|(_, value)| value.as_str())
        });
        match logs {
            Some(text) => Ok(text.to_owned()),
            None => Err(self.bad_reply(method, "a map with \"logs\"", &reply)),
        }
    }

    /// `interrupt_kernel(kernel_id)`.
    pub async fn interrupt_kernel(&self, kernel_id: &str) -> Result<Value, RpcError> {
        self.invoke(
            AgentMethod::InterruptKernel,
            vec![Value::from(kernel_id)],
            Vec::new(),
        )
        .await
    }

    /// `get_completions(kernel_id, text, opts)`.
    pub async fn get_completions(
        &self,
        kernel_id: &str,
        text: &str,
        opts: Value,
    ) -> Result<Value, RpcError> {
        self.invoke(
            AgentMethod::GetCompletions,
            vec![Value::from(kernel_id), Value::from(text), opts],
            Vec::new(),
        )
        .await
    }

    /// `list_files(kernel_id, path)`.
    pub async fn list_files(&self, kernel_id: &str, path: &str) -> Result<Value, RpcError> {
        self.invoke(
            AgentMethod::ListFiles,
            vec![Value::from(kernel_id), Value::from(path)],
            Vec::new(),
        )
        .await
    }

    /// `upload_file(kernel_id, filename, filedata)`.
    pub async fn upload_file(
        &self,
        kernel_id: &str,
        filename: &str,
        data: Vec<u8>,
    ) -> Result<Value, RpcError> {
        self.invoke(
            AgentMethod::UploadFile,
            vec![
                Value::from(kernel_id),
                Value::from(filename),
                Value::Binary(data),
            ],
            Vec::new(),
        )
        .await
    }

    /// `download_file(kernel_id, filepath)`: the bytes (a tar archive) the agent returns.
    pub async fn download_file(&self, kernel_id: &str, path: &str) -> Result<Vec<u8>, RpcError> {
        let method = AgentMethod::DownloadFile;
        let reply = self
            .invoke(
                method,
                vec![Value::from(kernel_id), Value::from(path)],
                Vec::new(),
            )
            .await?;
        match reply {
            Value::Binary(bytes) => Ok(bytes),
            other => Err(self.bad_reply(method, "bytes", &other)),
        }
    }

    /// `download_single(kernel_id, filepath)`: the bytes of the one file the agent returns.
    pub async fn download_single(&self, kernel_id: &str, path: &str) -> Result<Vec<u8>, RpcError> {
        let method = AgentMethod::DownloadSingle;
        let reply = self
            .invoke(
                method,
                vec![Value::from(kernel_id), Value::from(path)],
                Vec::new(),
            )
            .await?;
        match reply {
            Value::Binary(bytes) => Ok(bytes),
            other => Err(self.bad_reply(method, "bytes", &other)),
        }
    }

    /// `sync_kernel_registry([[kernel_id, session_id], ...])`.
    pub async fn sync_kernel_registry(
        &self,
        kernels: &[(String, String)],
    ) -> Result<Value, RpcError> {
        let pairs = kernels
            .iter()
            .map(|(kernel, session)| {
                Value::Array(vec![
                    Value::from(kernel.as_str()),
                    Value::from(session.as_str()),
                ])
            })
            .collect();
        self.invoke(
            AgentMethod::SyncKernelRegistry,
            vec![Value::Array(pairs)],
            Vec::new(),
        )
        .await
    }

    /// `create_local_network(network_name)`.
    pub async fn create_local_network(&self, network_name: &str) -> Result<Value, RpcError> {
        self.invoke(
            AgentMethod::CreateLocalNetwork,
            vec![Value::from(network_name)],
            Vec::new(),
        )
        .await
    }

    /// `destroy_local_network(network_name)`.
    pub async fn destroy_local_network(&self, network_name: &str) -> Result<Value, RpcError> {
        self.invoke(
            AgentMethod::DestroyLocalNetwork,
            vec![Value::from(network_name)],
            Vec::new(),
        )
        .await
    }

    /// `assign_port()`: a host port for a host-network cluster session.
    pub async fn assign_port(&self) -> Result<u16, RpcError> {
        let method = AgentMethod::AssignPort;
        let reply = self.invoke(method, Vec::new(), Vec::new()).await?;
        match reply.as_u64().and_then(|port| u16::try_from(port).ok()) {
            Some(port) => Ok(port),
            None => Err(self.bad_reply(method, "a port number", &reply)),
        }
    }

    /// `release_port(port_no)`.
    pub async fn release_port(&self, port: u16) -> Result<Value, RpcError> {
        self.invoke(
            AgentMethod::ReleasePort,
            vec![Value::from(port)],
            Vec::new(),
        )
        .await
    }

    /// `shutdown_agent(terminate_kernels)` (a no-op on the agent).
    pub async fn shutdown_agent(&self, terminate_kernels: bool) -> Result<Value, RpcError> {
        self.invoke(
            AgentMethod::ShutdownAgent,
            vec![Value::from(terminate_kernels)],
            Vec::new(),
        )
        .await
    }

    /// `trigger_batch_execution(session_id, kernel_id, code)` (24.03 agents only).
    pub async fn trigger_batch_execution(
        &self,
        session_id: &str,
        kernel_id: &str,
        code: &str,
    ) -> Result<Value, RpcError> {
        self.invoke(
            AgentMethod::TriggerBatchExecution,
            vec![
                Value::from(session_id),
                Value::from(kernel_id),
                Value::from(code),
            ],
            Vec::new(),
        )
        .await
    }

    /// `commit`: 24.03 `commit(kernel_id, subdir, canonical=, filename=, extra_labels=)`, 23.09
    /// `commit(kernel_id, subdir, filename)` (§7 item 4).
    pub async fn commit(
        &self,
        kernel_id: &str,
        subdir: &str,
        options: CommitOptions,
    ) -> Result<Value, RpcError> {
        let (args, kwargs) = commit_arguments(&self.version, kernel_id, subdir, options);
        self.invoke(AgentMethod::Commit, args, kwargs).await
    }

    /// `push_image(canonical, architecture, registry_conf, is_local=)` (24.03 agents only).
    pub async fn push_image(
        &self,
        canonical: &str,
        architecture: &str,
        registry_conf: Value,
        is_local: bool,
    ) -> Result<Value, RpcError> {
        self.invoke(
            AgentMethod::PushImage,
            vec![
                Value::from(canonical),
                Value::from(architecture),
                registry_conf,
            ],
            vec![("is_local".to_owned(), Value::from(is_local))],
        )
        .await
    }
}

/// The positional and keyword arguments of `commit` for an agent of `version`.
fn commit_arguments(
    version: &AgentVersion,
    kernel_id: &str,
    subdir: &str,
    options: CommitOptions,
) -> (Vec<Value>, Vec<(String, Value)>) {
    let mut args = vec![Value::from(kernel_id), Value::from(subdir)];
    if version.is_24_03_or_newer() {
        let labels = options
            .extra_labels
            .into_iter()
            .map(|(key, value)| (Value::from(key), Value::from(value)))
            .collect();
        let kwargs = vec![
            (
                "canonical".to_owned(),
                opt_str(options.canonical.as_deref()),
            ),
            ("filename".to_owned(), opt_str(options.filename.as_deref())),
            ("extra_labels".to_owned(), Value::Map(labels)),
        ];
        (args, kwargs)
    } else {
        args.push(opt_str(options.filename.as_deref()));
        (args, Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_with_or_without_leading_zeros() {
        assert_eq!(AgentVersion::parse("24.03.11").numbers(), Some((24, 3, 11)));
        assert_eq!(AgentVersion::parse("24.3.11").numbers(), Some((24, 3, 11)));
        assert_eq!(AgentVersion::parse("23.09.10").numbers(), Some((23, 9, 10)));
        assert_eq!(
            AgentVersion::parse("24.03.0rc1").numbers(),
            Some((24, 3, 0))
        );
        assert_eq!(AgentVersion::parse("24.03").numbers(), Some((24, 3, 0)));
        assert_eq!(AgentVersion::parse("").numbers(), None);
        assert_eq!(AgentVersion::parse("dev").numbers(), None);
        assert!(AgentVersion::parse("24.09.1").is_24_03_or_newer());
        assert!(!AgentVersion::parse("23.09.10").is_24_03_or_newer());
        assert!(!AgentVersion::parse("garbage").is_24_03_or_newer());
    }

    #[test]
    fn the_table_has_the_reference_timeouts() {
        let timeout = |method: AgentMethod| method.invoke_timeout().map(|d| d.as_secs());
        assert_eq!(timeout(AgentMethod::InterruptKernel), Some(30));
        assert_eq!(timeout(AgentMethod::GetCompletions), Some(10));
        assert_eq!(timeout(AgentMethod::GetLogs), Some(30));
        assert_eq!(timeout(AgentMethod::Execute), Some(30));
        assert_eq!(timeout(AgentMethod::TriggerBatchExecution), Some(30));
        assert_eq!(timeout(AgentMethod::ListFiles), Some(30));
        let timed = AgentMethod::ALL
            .iter()
            .filter(|method| method.invoke_timeout().is_some())
            .count();
        assert_eq!(timed, 6, "only the six methods of §3.6 have a timeout");
    }

    #[test]
    fn names_are_unique_and_clean_all_kernels_is_not_a_method() {
        for method in AgentMethod::ALL {
            assert_eq!(AgentMethod::from_name(method.name()), Some(*method));
        }
        let mut names: Vec<_> = AgentMethod::ALL.iter().map(|m| m.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), AgentMethod::ALL.len());
        assert_eq!(AgentMethod::from_name("clean_all_kernels"), None);
        assert_eq!(AgentMethod::from_name("check_and_pull"), None);
    }

    #[test]
    fn agents_23_09_lack_batch_trigger_and_push_image() {
        let old = AgentVersion::parse("23.09.10");
        let new = AgentVersion::parse("24.03.11");
        let unknown = AgentVersion::parse("");
        let missing_on_old: Vec<_> = AgentMethod::ALL
            .iter()
            .filter(|method| !method.available_on(&old))
            .copied()
            .collect();
        assert_eq!(
            missing_on_old,
            [AgentMethod::TriggerBatchExecution, AgentMethod::PushImage]
        );
        assert!(
            AgentMethod::ALL
                .iter()
                .all(|method| method.available_on(&new))
        );
        assert!(!AgentMethod::PushImage.available_on(&unknown));
        assert!(AgentMethod::Ping.available_on(&unknown));
    }

    #[test]
    fn a_method_the_version_lacks_is_refused_with_agent_method_and_version() {
        let old = AgentVersion::parse("23.09.10");
        let error = check_method("i-old", &old, AgentMethod::TriggerBatchExecution)
            .expect_err("23.09 lacks trigger_batch_execution");
        match &error {
            RpcError::Unsupported {
                agent,
                method,
                version,
            } => {
                assert_eq!(agent, "i-old");
                assert_eq!(method, "trigger_batch_execution");
                assert_eq!(version, "23.09.10");
            }
            other => panic!("{other:?}"),
        }
        let text = error.to_string();
        assert!(
            text.contains("i-old") && text.contains("23.09.10"),
            "{text}"
        );
        assert!(check_method("i-old", &old, AgentMethod::PushImage).is_err());
        assert!(check_method("i-old", &old, AgentMethod::Commit).is_ok());
        let new = AgentVersion::parse("24.03.11");
        assert!(check_method("i-new", &new, AgentMethod::TriggerBatchExecution).is_ok());
    }

    #[test]
    fn commit_takes_keywords_on_24_03_and_a_positional_filename_on_23_09() {
        let options = CommitOptions {
            canonical: Some("cr.example/python:3.9".to_owned()),
            filename: Some("out.tar".to_owned()),
            extra_labels: vec![("a".to_owned(), "b".to_owned())],
        };
        let (args, kwargs) = commit_arguments(
            &AgentVersion::parse("24.03.11"),
            "k1",
            "sub",
            options.clone(),
        );
        assert_eq!(args, [Value::from("k1"), Value::from("sub")]);
        let names: Vec<_> = kwargs.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["canonical", "filename", "extra_labels"]);
        assert_eq!(kwargs[1].1, Value::from("out.tar"));

        let (args, kwargs) =
            commit_arguments(&AgentVersion::parse("23.09.10"), "k1", "sub", options);
        assert_eq!(
            args,
            [
                Value::from("k1"),
                Value::from("sub"),
                Value::from("out.tar")
            ]
        );
        assert!(kwargs.is_empty());
    }
}
