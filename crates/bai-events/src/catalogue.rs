//! The events of Backend.AI 24.03 (and 23.09: the names and arguments are the same), as typed
//! values: decoded from an entry's `name` and msgpack `args` array, and encoded back the way the
//! reference's `serialize()` writes them (ids as strings, enums as plain strings).
//!
//! Free-form maps (`creation_info`, `context_env`, `compute_plugins`) are kept as JSON values.

use rmpv::Value;
use uuid::Uuid;

use crate::agent_info::AgentInfo;
use crate::codec::{self, CodecError};

/// Why an entry is not an event of the catalogue.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown event name {0:?}")]
    UnknownName(String),
    #[error("the event name is not UTF-8")]
    NameNotUtf8,
    #[error("args of {name} do not decode: {source}")]
    Msgpack {
        name: &'static str,
        #[source]
        source: CodecError,
    },
    #[error("args of {name} are not an array")]
    NotAnArray { name: &'static str },
    #[error("{name} takes {expected} args, got {got}")]
    Arity {
        name: &'static str,
        expected: &'static str,
        got: usize,
    },
    #[error("arg {index} of {name} should be {expected}, got {got}")]
    Arg {
        name: &'static str,
        index: usize,
        expected: &'static str,
        got: String,
    },
    #[error("agent_heartbeat: {0}")]
    AgentInfo(String),
}

/// `kernel_preparing`, `kernel_pulling`, `kernel_creating`, `kernel_started`, `kernel_cancelled`.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelCreation {
    pub kernel_id: Uuid,
    pub session_id: Uuid,
    /// For `kernel_pulling` the image's canonical name; a lifecycle reason otherwise.
    pub reason: String,
    pub creation_info: serde_json::Value,
}

/// `kernel_terminating`, `kernel_terminated`.
#[derive(Clone, Debug, PartialEq)]
pub struct KernelTermination {
    pub kernel_id: Uuid,
    pub session_id: Uuid,
    pub reason: String,
    pub exit_code: i64,
}

/// `session_enqueued`, `session_scheduled`, `session_preparing`, `session_cancelled`,
/// `session_started`.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionCreation {
    pub session_id: Uuid,
    pub creation_id: String,
    pub reason: String,
}

/// `session_terminating`, `session_terminated`.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionTermination {
    pub session_id: Uuid,
    pub reason: String,
}

/// `session_success`, `session_failure`.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionResult {
    pub session_id: Uuid,
    pub reason: String,
    pub exit_code: i64,
}

/// `bgtask_updated`.
#[derive(Clone, Debug, PartialEq)]
pub struct BgtaskProgress {
    pub task_id: Uuid,
    pub current: f64,
    pub total: f64,
    pub message: Option<String>,
}

/// `bgtask_done`, `bgtask_cancelled`, `bgtask_failed`.
#[derive(Clone, Debug, PartialEq)]
pub struct BgtaskEnd {
    pub task_id: Uuid,
    pub message: Option<String>,
}

/// `do_volume_mount`.
#[derive(Clone, Debug, PartialEq)]
pub struct VolumeMount {
    pub dir_name: String,
    pub volume_backend_name: String,
    pub quota_scope_id: String,
    pub fs_location: String,
    pub fs_type: String,
    pub cmd_options: Option<String>,
    pub scaling_group: Option<String>,
    pub edit_fstab: bool,
    pub fstab_path: String,
}

/// `do_volume_unmount`.
#[derive(Clone, Debug, PartialEq)]
pub struct VolumeUnmount {
    pub dir_name: String,
    pub volume_backend_name: String,
    pub quota_scope_id: String,
    pub scaling_group: Option<String>,
    pub edit_fstab: bool,
    pub fstab_path: Option<String>,
}

/// `volume_mounted`, `volume_unmounted`.
#[derive(Clone, Debug, PartialEq)]
pub struct VolumeMountResult {
    pub node_id: String,
    pub node_type: String,
    pub mount_path: String,
    pub quota_scope_id: String,
    pub err_msg: Option<String>,
}

/// Every event of the catalogue.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    DoSchedule,
    DoPrepare,
    DoScale,
    DoIdleCheck,
    DoLogCleanup,
    DoTerminateSession {
        session_id: Uuid,
        reason: String,
    },
    AgentStarted {
        reason: String,
    },
    AgentTerminated {
        reason: String,
    },
    AgentHeartbeat(Box<AgentInfo>),
    AgentError {
        message: String,
        traceback: Option<String>,
        user: serde_json::Value,
        context_env: serde_json::Value,
        /// `ERROR` from 24.03 agents, `error` from 23.09 ones.
        severity: String,
    },
    DoAgentResourceCheck {
        agent_id: String,
    },
    KernelPreparing(KernelCreation),
    KernelPulling(KernelCreation),
    KernelPullProgress {
        kernel_id: Uuid,
        current: f64,
        total: f64,
        message: Option<String>,
    },
    KernelCreating(KernelCreation),
    KernelStarted(KernelCreation),
    KernelCancelled(KernelCreation),
    KernelTerminating(KernelTermination),
    KernelTerminated(KernelTermination),
    ModelServiceStatusUpdated {
        kernel_id: Uuid,
        session_id: Uuid,
        model_name: String,
        status: String,
    },
    SessionEnqueued(SessionCreation),
    SessionScheduled(SessionCreation),
    SessionPreparing(SessionCreation),
    SessionCancelled(SessionCreation),
    SessionStarted(SessionCreation),
    SessionTerminating(SessionTermination),
    SessionTerminated(SessionTermination),
    SessionSuccess(SessionResult),
    SessionFailure(SessionResult),
    RouteCreated {
        route_id: Uuid,
    },
    DoSyncKernelLogs {
        kernel_id: Uuid,
        container_id: String,
    },
    ExecutionStarted {
        session_id: Uuid,
    },
    ExecutionFinished {
        session_id: Uuid,
    },
    ExecutionTimeout {
        session_id: Uuid,
    },
    ExecutionCancelled {
        session_id: Uuid,
    },
    BgtaskUpdated(BgtaskProgress),
    BgtaskDone(BgtaskEnd),
    BgtaskCancelled(BgtaskEnd),
    BgtaskFailed(BgtaskEnd),
    DoVolumeMount(VolumeMount),
    DoVolumeUnmount(VolumeUnmount),
    VolumeMounted(VolumeMountResult),
    VolumeUnmounted(VolumeMountResult),
}

/// Every event name of the catalogue.
pub const EVENT_NAMES: &[&str] = &[
    "do_schedule",
    "do_prepare",
    "do_scale",
    "do_idle_check",
    "do_log_cleanup",
    "do_terminate_session",
    "agent_started",
    "agent_terminated",
    "agent_heartbeat",
    "agent_error",
    "do_agent_resource_check",
    "kernel_preparing",
    "kernel_pulling",
    "kernel_pull_progress",
    "kernel_creating",
    "kernel_started",
    "kernel_cancelled",
    "kernel_terminating",
    "kernel_terminated",
    "model_service_status_updated",
    "session_enqueued",
    "session_scheduled",
    "session_preparing",
    "session_cancelled",
    "session_started",
    "session_terminating",
    "session_terminated",
    "session_success",
    "session_failure",
    "route_created",
    "do_sync_kernel_logs",
    "execution_started",
    "execution_finished",
    "execution_timeout",
    "execution_cancelled",
    "bgtask_updated",
    "bgtask_done",
    "bgtask_cancelled",
    "bgtask_failed",
    "do_volume_mount",
    "do_volume_unmount",
    "volume_mounted",
    "volume_unmounted",
];

impl Event {
    /// The event's name on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Event::DoSchedule => "do_schedule",
            Event::DoPrepare => "do_prepare",
            Event::DoScale => "do_scale",
            Event::DoIdleCheck => "do_idle_check",
            Event::DoLogCleanup => "do_log_cleanup",
            Event::DoTerminateSession { .. } => "do_terminate_session",
            Event::AgentStarted { .. } => "agent_started",
            Event::AgentTerminated { .. } => "agent_terminated",
            Event::AgentHeartbeat(_) => "agent_heartbeat",
            Event::AgentError { .. } => "agent_error",
            Event::DoAgentResourceCheck { .. } => "do_agent_resource_check",
            Event::KernelPreparing(_) => "kernel_preparing",
            Event::KernelPulling(_) => "kernel_pulling",
            Event::KernelPullProgress { .. } => "kernel_pull_progress",
            Event::KernelCreating(_) => "kernel_creating",
            Event::KernelStarted(_) => "kernel_started",
            Event::KernelCancelled(_) => "kernel_cancelled",
            Event::KernelTerminating(_) => "kernel_terminating",
            Event::KernelTerminated(_) => "kernel_terminated",
            Event::ModelServiceStatusUpdated { .. } => "model_service_status_updated",
            Event::SessionEnqueued(_) => "session_enqueued",
            Event::SessionScheduled(_) => "session_scheduled",
            Event::SessionPreparing(_) => "session_preparing",
            Event::SessionCancelled(_) => "session_cancelled",
            Event::SessionStarted(_) => "session_started",
            Event::SessionTerminating(_) => "session_terminating",
            Event::SessionTerminated(_) => "session_terminated",
            Event::SessionSuccess(_) => "session_success",
            Event::SessionFailure(_) => "session_failure",
            Event::RouteCreated { .. } => "route_created",
            Event::DoSyncKernelLogs { .. } => "do_sync_kernel_logs",
            Event::ExecutionStarted { .. } => "execution_started",
            Event::ExecutionFinished { .. } => "execution_finished",
            Event::ExecutionTimeout { .. } => "execution_timeout",
            Event::ExecutionCancelled { .. } => "execution_cancelled",
            Event::BgtaskUpdated(_) => "bgtask_updated",
            Event::BgtaskDone(_) => "bgtask_done",
            Event::BgtaskCancelled(_) => "bgtask_cancelled",
            Event::BgtaskFailed(_) => "bgtask_failed",
            Event::DoVolumeMount(_) => "do_volume_mount",
            Event::DoVolumeUnmount(_) => "do_volume_unmount",
            Event::VolumeMounted(_) => "volume_mounted",
            Event::VolumeUnmounted(_) => "volume_unmounted",
        }
    }

    /// Decodes an entry's `name` and `args`.
    pub fn decode(name: &[u8], args: &[u8]) -> Result<Event, DecodeError> {
        let name = std::str::from_utf8(name).map_err(|_| DecodeError::NameNotUtf8)?;
        let name = EVENT_NAMES
            .iter()
            .copied()
            .find(|known| *known == name)
            .ok_or_else(|| DecodeError::UnknownName(name.to_owned()))?;
        let value = codec::decode(args).map_err(|source| DecodeError::Msgpack { name, source })?;
        let Value::Array(items) = value else {
            return Err(DecodeError::NotAnArray { name });
        };
        let args = Args { name, items };
        Ok(match name {
            "do_schedule" => args.none(Event::DoSchedule)?,
            "do_prepare" => args.none(Event::DoPrepare)?,
            "do_scale" => args.none(Event::DoScale)?,
            "do_idle_check" => args.none(Event::DoIdleCheck)?,
            "do_log_cleanup" => args.none(Event::DoLogCleanup)?,
            "do_terminate_session" => {
                args.arity(2, 2, "2")?;
                Event::DoTerminateSession {
                    session_id: args.uuid(0)?,
                    reason: args.string(1)?,
                }
            }
            "agent_started" => Event::AgentStarted {
                reason: args.reason_only()?,
            },
            "agent_terminated" => Event::AgentTerminated {
                reason: args.reason_only()?,
            },
            "agent_heartbeat" => {
                args.arity(1, 1, "1")?;
                Event::AgentHeartbeat(Box::new(
                    AgentInfo::from_value(&args.items[0]).map_err(DecodeError::AgentInfo)?,
                ))
            }
            "agent_error" => {
                args.arity(1, 5, "1 to 5")?;
                Event::AgentError {
                    message: args.string(0)?,
                    traceback: args.optional_string(1)?,
                    user: args.json(2),
                    context_env: args.json(3),
                    severity: match args.items.get(4) {
                        Some(_) => args.string(4)?,
                        None => "ERROR".to_owned(),
                    },
                }
            }
            "do_agent_resource_check" => {
                args.arity(1, 1, "1")?;
                Event::DoAgentResourceCheck {
                    agent_id: args.string(0)?,
                }
            }
            "kernel_preparing" => Event::KernelPreparing(args.kernel_creation()?),
            "kernel_pulling" => Event::KernelPulling(args.kernel_creation()?),
            "kernel_creating" => Event::KernelCreating(args.kernel_creation()?),
            "kernel_started" => Event::KernelStarted(args.kernel_creation()?),
            "kernel_cancelled" => Event::KernelCancelled(args.kernel_creation()?),
            "kernel_pull_progress" => {
                args.arity(3, 4, "3 or 4")?;
                Event::KernelPullProgress {
                    kernel_id: args.uuid(0)?,
                    current: args.float(1)?,
                    total: args.float(2)?,
                    message: args.optional_string(3)?,
                }
            }
            "kernel_terminating" => Event::KernelTerminating(args.kernel_termination()?),
            "kernel_terminated" => Event::KernelTerminated(args.kernel_termination()?),
            "model_service_status_updated" => {
                args.arity(4, 4, "4")?;
                Event::ModelServiceStatusUpdated {
                    kernel_id: args.uuid(0)?,
                    session_id: args.uuid(1)?,
                    model_name: args.string(2)?,
                    status: args.string(3)?,
                }
            }
            "session_enqueued" => Event::SessionEnqueued(args.session_creation()?),
            "session_scheduled" => Event::SessionScheduled(args.session_creation()?),
            "session_preparing" => Event::SessionPreparing(args.session_creation()?),
            "session_cancelled" => Event::SessionCancelled(args.session_creation()?),
            "session_started" => Event::SessionStarted(args.session_creation()?),
            "session_terminating" => Event::SessionTerminating(args.session_termination()?),
            "session_terminated" => Event::SessionTerminated(args.session_termination()?),
            "session_success" => Event::SessionSuccess(args.session_result()?),
            "session_failure" => Event::SessionFailure(args.session_result()?),
            "route_created" => {
                args.arity(1, 1, "1")?;
                Event::RouteCreated {
                    route_id: args.uuid(0)?,
                }
            }
            "do_sync_kernel_logs" => {
                args.arity(2, 2, "2")?;
                Event::DoSyncKernelLogs {
                    kernel_id: args.uuid(0)?,
                    container_id: args.string(1)?,
                }
            }
            "execution_started" => Event::ExecutionStarted {
                session_id: args.session_only()?,
            },
            "execution_finished" => Event::ExecutionFinished {
                session_id: args.session_only()?,
            },
            "execution_timeout" => Event::ExecutionTimeout {
                session_id: args.session_only()?,
            },
            "execution_cancelled" => Event::ExecutionCancelled {
                session_id: args.session_only()?,
            },
            "bgtask_updated" => {
                args.arity(3, 4, "3 or 4")?;
                Event::BgtaskUpdated(BgtaskProgress {
                    task_id: args.uuid(0)?,
                    current: args.float(1)?,
                    total: args.float(2)?,
                    message: args.optional_string(3)?,
                })
            }
            "bgtask_done" => Event::BgtaskDone(args.bgtask_end()?),
            "bgtask_cancelled" => Event::BgtaskCancelled(args.bgtask_end()?),
            "bgtask_failed" => Event::BgtaskFailed(args.bgtask_end()?),
            "do_volume_mount" => {
                args.arity(9, 9, "9")?;
                Event::DoVolumeMount(VolumeMount {
                    dir_name: args.string(0)?,
                    volume_backend_name: args.string(1)?,
                    quota_scope_id: args.string(2)?,
                    fs_location: args.string(3)?,
                    fs_type: args.string(4)?,
                    cmd_options: args.optional_string(5)?,
                    scaling_group: args.optional_string(6)?,
                    edit_fstab: args.boolean(7)?,
                    fstab_path: args.string(8)?,
                })
            }
            "do_volume_unmount" => {
                args.arity(6, 6, "6")?;
                Event::DoVolumeUnmount(VolumeUnmount {
                    dir_name: args.string(0)?,
                    volume_backend_name: args.string(1)?,
                    quota_scope_id: args.string(2)?,
                    scaling_group: args.optional_string(3)?,
                    edit_fstab: args.boolean(4)?,
                    fstab_path: args.optional_string(5)?,
                })
            }
            "volume_mounted" => Event::VolumeMounted(args.volume_mount_result()?),
            "volume_unmounted" => Event::VolumeUnmounted(args.volume_mount_result()?),
            other => return Err(DecodeError::UnknownName(other.to_owned())),
        })
    }

    /// The msgpack `args` of this event, as the reference's `serialize()` writes them.
    pub fn encode_args(&self) -> Vec<u8> {
        codec::encode(&Value::Array(self.args()))
    }

    fn args(&self) -> Vec<Value> {
        fn uuid(id: &Uuid) -> Value {
            Value::from(id.to_string())
        }
        fn text(value: &str) -> Value {
            Value::from(value)
        }
        fn optional(value: &Option<String>) -> Value {
            value.as_deref().map_or(Value::Nil, Value::from)
        }
        fn kernel_creation(event: &KernelCreation) -> Vec<Value> {
            vec![
                uuid(&event.kernel_id),
                uuid(&event.session_id),
                text(&event.reason),
                crate::json::to_value(&event.creation_info),
            ]
        }
        fn kernel_termination(event: &KernelTermination) -> Vec<Value> {
            vec![
                uuid(&event.kernel_id),
                uuid(&event.session_id),
                text(&event.reason),
                Value::from(event.exit_code),
            ]
        }
        fn session_creation(event: &SessionCreation) -> Vec<Value> {
            vec![
                uuid(&event.session_id),
                text(&event.creation_id),
                text(&event.reason),
            ]
        }
        fn session_termination(event: &SessionTermination) -> Vec<Value> {
            vec![uuid(&event.session_id), text(&event.reason)]
        }
        fn session_result(event: &SessionResult) -> Vec<Value> {
            vec![
                uuid(&event.session_id),
                text(&event.reason),
                Value::from(event.exit_code),
            ]
        }
        /// A whole number as an integer, as the reference's counters are (Python ints), so
        /// that its consumers print `3`, not `3.0`.
        fn progress(value: f64) -> Value {
            if value.fract() == 0.0 && value.abs() < 1e15 {
                // Whole and far inside i64: the cast is exact.
                Value::from(value as i64)
            } else {
                Value::from(value)
            }
        }
        fn bgtask_end(event: &BgtaskEnd) -> Vec<Value> {
            vec![uuid(&event.task_id), optional(&event.message)]
        }
        fn volume_mount_result(event: &VolumeMountResult) -> Vec<Value> {
            vec![
                text(&event.node_id),
                text(&event.node_type),
                text(&event.mount_path),
                text(&event.quota_scope_id),
                optional(&event.err_msg),
            ]
        }
        match self {
            Event::DoSchedule
            | Event::DoPrepare
            | Event::DoScale
            | Event::DoIdleCheck
            | Event::DoLogCleanup => Vec::new(),
            Event::DoTerminateSession { session_id, reason } => {
                vec![uuid(session_id), text(reason)]
            }
            Event::AgentStarted { reason } | Event::AgentTerminated { reason } => {
                vec![text(reason)]
            }
            Event::AgentHeartbeat(info) => vec![info.to_value()],
            Event::AgentError {
                message,
                traceback,
                user,
                context_env,
                severity,
            } => vec![
                text(message),
                optional(traceback),
                crate::json::to_value(user),
                crate::json::to_value(context_env),
                text(severity),
            ],
            Event::DoAgentResourceCheck { agent_id } => vec![text(agent_id)],
            Event::KernelPreparing(event)
            | Event::KernelPulling(event)
            | Event::KernelCreating(event)
            | Event::KernelStarted(event)
            | Event::KernelCancelled(event) => kernel_creation(event),
            Event::KernelPullProgress {
                kernel_id,
                current,
                total,
                message,
            } => vec![
                uuid(kernel_id),
                Value::from(*current),
                Value::from(*total),
                optional(message),
            ],
            Event::KernelTerminating(event) | Event::KernelTerminated(event) => {
                kernel_termination(event)
            }
            Event::ModelServiceStatusUpdated {
                kernel_id,
                session_id,
                model_name,
                status,
            } => vec![
                uuid(kernel_id),
                uuid(session_id),
                text(model_name),
                text(status),
            ],
            Event::SessionEnqueued(event)
            | Event::SessionScheduled(event)
            | Event::SessionPreparing(event)
            | Event::SessionCancelled(event)
            | Event::SessionStarted(event) => session_creation(event),
            Event::SessionTerminating(event) | Event::SessionTerminated(event) => {
                session_termination(event)
            }
            Event::SessionSuccess(event) | Event::SessionFailure(event) => session_result(event),
            Event::RouteCreated { route_id } => vec![uuid(route_id)],
            Event::DoSyncKernelLogs {
                kernel_id,
                container_id,
            } => vec![uuid(kernel_id), text(container_id)],
            Event::ExecutionStarted { session_id }
            | Event::ExecutionFinished { session_id }
            | Event::ExecutionTimeout { session_id }
            | Event::ExecutionCancelled { session_id } => vec![uuid(session_id)],
            Event::BgtaskUpdated(event) => vec![
                uuid(&event.task_id),
                progress(event.current),
                progress(event.total),
                optional(&event.message),
            ],
            Event::BgtaskDone(event)
            | Event::BgtaskCancelled(event)
            | Event::BgtaskFailed(event) => bgtask_end(event),
            Event::DoVolumeMount(event) => vec![
                text(&event.dir_name),
                text(&event.volume_backend_name),
                text(&event.quota_scope_id),
                text(&event.fs_location),
                text(&event.fs_type),
                optional(&event.cmd_options),
                optional(&event.scaling_group),
                Value::from(event.edit_fstab),
                text(&event.fstab_path),
            ],
            Event::DoVolumeUnmount(event) => vec![
                text(&event.dir_name),
                text(&event.volume_backend_name),
                text(&event.quota_scope_id),
                optional(&event.scaling_group),
                Value::from(event.edit_fstab),
                optional(&event.fstab_path),
            ],
            Event::VolumeMounted(event) | Event::VolumeUnmounted(event) => {
                volume_mount_result(event)
            }
        }
    }
}

/// The positional args of one event, read with the event's name in every error.
struct Args {
    name: &'static str,
    items: Vec<Value>,
}

impl Args {
    fn arity(&self, min: usize, max: usize, expected: &'static str) -> Result<(), DecodeError> {
        if (min..=max).contains(&self.items.len()) {
            Ok(())
        } else {
            Err(DecodeError::Arity {
                name: self.name,
                expected,
                got: self.items.len(),
            })
        }
    }

    fn none(&self, event: Event) -> Result<Event, DecodeError> {
        self.arity(0, 0, "no")?;
        Ok(event)
    }

    fn wrong(&self, index: usize, expected: &'static str) -> DecodeError {
        DecodeError::Arg {
            name: self.name,
            index,
            expected,
            got: self
                .items
                .get(index)
                .map_or_else(|| "nothing".to_owned(), describe),
        }
    }

    fn string(&self, index: usize) -> Result<String, DecodeError> {
        match self.items.get(index) {
            Some(Value::String(text)) => text
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| self.wrong(index, "a UTF-8 string")),
            _ => Err(self.wrong(index, "a string")),
        }
    }

    fn optional_string(&self, index: usize) -> Result<Option<String>, DecodeError> {
        match self.items.get(index) {
            None | Some(Value::Nil) => Ok(None),
            Some(_) => self.string(index).map(Some),
        }
    }

    fn uuid(&self, index: usize) -> Result<Uuid, DecodeError> {
        let text = self.string(index)?;
        Uuid::parse_str(&text).map_err(|_| self.wrong(index, "a UUID"))
    }

    fn float(&self, index: usize) -> Result<f64, DecodeError> {
        match self.items.get(index) {
            Some(Value::F64(number)) => Ok(*number),
            Some(Value::F32(number)) => Ok(f64::from(*number)),
            Some(Value::Integer(number)) => {
                number.as_f64().ok_or_else(|| self.wrong(index, "a number"))
            }
            _ => Err(self.wrong(index, "a number")),
        }
    }

    fn integer(&self, index: usize) -> Result<i64, DecodeError> {
        match self.items.get(index) {
            Some(Value::Integer(number)) => {
                number.as_i64().ok_or_else(|| self.wrong(index, "an i64"))
            }
            _ => Err(self.wrong(index, "an integer")),
        }
    }

    fn boolean(&self, index: usize) -> Result<bool, DecodeError> {
        match self.items.get(index) {
            Some(Value::Boolean(value)) => Ok(*value),
            _ => Err(self.wrong(index, "a boolean")),
        }
    }

    fn json(&self, index: usize) -> serde_json::Value {
        self.items
            .get(index)
            .map_or(serde_json::Value::Null, crate::json::to_json)
    }

    /// `agent_started`, `agent_terminated`: one reason, empty when left out.
    fn reason_only(&self) -> Result<String, DecodeError> {
        self.arity(0, 1, "0 or 1")?;
        if self.items.is_empty() {
            Ok(String::new())
        } else {
            self.string(0)
        }
    }

    fn session_only(&self) -> Result<Uuid, DecodeError> {
        self.arity(1, 1, "1")?;
        self.uuid(0)
    }

    fn kernel_creation(&self) -> Result<KernelCreation, DecodeError> {
        self.arity(2, 4, "2 to 4")?;
        Ok(KernelCreation {
            kernel_id: self.uuid(0)?,
            session_id: self.uuid(1)?,
            reason: self.optional_string(2)?.unwrap_or_default(),
            creation_info: match self.items.get(3) {
                None | Some(Value::Nil) => serde_json::Value::Object(serde_json::Map::new()),
                Some(Value::Map(_)) => self.json(3),
                Some(_) => return Err(self.wrong(3, "a map")),
            },
        })
    }

    fn kernel_termination(&self) -> Result<KernelTermination, DecodeError> {
        self.arity(2, 4, "2 to 4")?;
        Ok(KernelTermination {
            kernel_id: self.uuid(0)?,
            session_id: self.uuid(1)?,
            reason: self
                .optional_string(2)?
                .unwrap_or_else(|| "unknown".to_owned()),
            exit_code: match self.items.get(3) {
                None | Some(Value::Nil) => -1,
                Some(_) => self.integer(3)?,
            },
        })
    }

    fn session_creation(&self) -> Result<SessionCreation, DecodeError> {
        self.arity(2, 3, "2 or 3")?;
        Ok(SessionCreation {
            session_id: self.uuid(0)?,
            creation_id: self.string(1)?,
            reason: self
                .optional_string(2)?
                .unwrap_or_else(|| "unknown".to_owned()),
        })
    }

    fn session_termination(&self) -> Result<SessionTermination, DecodeError> {
        self.arity(1, 2, "1 or 2")?;
        Ok(SessionTermination {
            session_id: self.uuid(0)?,
            reason: self.optional_string(1)?.unwrap_or_default(),
        })
    }

    fn session_result(&self) -> Result<SessionResult, DecodeError> {
        self.arity(1, 3, "1 to 3")?;
        Ok(SessionResult {
            session_id: self.uuid(0)?,
            reason: self
                .optional_string(1)?
                .unwrap_or_else(|| "unknown".to_owned()),
            exit_code: match self.items.get(2) {
                None | Some(Value::Nil) => -1,
                Some(_) => self.integer(2)?,
            },
        })
    }

    fn bgtask_end(&self) -> Result<BgtaskEnd, DecodeError> {
        self.arity(1, 2, "1 or 2")?;
        Ok(BgtaskEnd {
            task_id: self.uuid(0)?,
            message: self.optional_string(1)?,
        })
    }

    fn volume_mount_result(&self) -> Result<VolumeMountResult, DecodeError> {
        self.arity(4, 5, "4 or 5")?;
        Ok(VolumeMountResult {
            node_id: self.string(0)?,
            node_type: self.string(1)?,
            mount_path: self.string(2)?,
            quota_scope_id: self.string(3)?,
            err_msg: self.optional_string(4)?,
        })
    }
}

/// A short description of a value for error messages (never a whole payload).
fn describe(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(60) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(event: Event) {
        let args = event.encode_args();
        let decoded = Event::decode(event.name().as_bytes(), &args).unwrap();
        assert_eq!(decoded, event);
    }

    #[test]
    fn every_name_is_decodable_and_names_roundtrip() {
        for name in EVENT_NAMES {
            let error = Event::decode(name.as_bytes(), &[0xc0]).unwrap_err();
            assert!(
                matches!(error, DecodeError::NotAnArray { .. }),
                "{name}: {error}"
            );
        }
        let session_id = Uuid::new_v4();
        roundtrip(Event::DoSchedule);
        roundtrip(Event::AgentStarted {
            reason: "self-started".into(),
        });
        roundtrip(Event::KernelTerminated(KernelTermination {
            kernel_id: Uuid::new_v4(),
            session_id,
            reason: "user-requested".into(),
            exit_code: 0,
        }));
        roundtrip(Event::KernelStarted(KernelCreation {
            kernel_id: Uuid::new_v4(),
            session_id,
            reason: String::new(),
            creation_info: serde_json::json!({"container_id": "", "repl_in_port": 2000}),
        }));
        roundtrip(Event::SessionEnqueued(SessionCreation {
            session_id,
            creation_id: "abc".into(),
            reason: "unknown".into(),
        }));
        roundtrip(Event::DoVolumeMount(VolumeMount {
            dir_name: "d".into(),
            volume_backend_name: "nfs".into(),
            quota_scope_id: "user:x".into(),
            fs_location: "host:/x".into(),
            fs_type: "nfs".into(),
            cmd_options: None,
            scaling_group: Some("default".into()),
            edit_fstab: false,
            fstab_path: "/etc/fstab".into(),
        }));
        roundtrip(Event::BgtaskUpdated(BgtaskProgress {
            task_id: Uuid::new_v4(),
            current: 1.0,
            total: 2.5,
            message: None,
        }));
    }

    #[test]
    fn bad_args_are_errors_naming_the_event() {
        let unknown = Event::decode(b"no_such_event", &[0x90]).unwrap_err();
        assert_eq!(unknown.to_string(), "unknown event name \"no_such_event\"");
        // agent_started with three args.
        let arity =
            Event::decode(b"agent_started", &[0x93, 0xa1, b'a', 0xa1, b'b', 0x01]).unwrap_err();
        assert_eq!(arity.to_string(), "agent_started takes 0 or 1 args, got 3");
        // do_terminate_session with a session id that is not a UUID.
        let bad_uuid = Event::decode(
            b"do_terminate_session",
            &codec::encode(&Value::Array(vec!["nope".into(), "x".into()])),
        )
        .unwrap_err();
        assert_eq!(
            bad_uuid.to_string(),
            "arg 0 of do_terminate_session should be a UUID, got \"nope\""
        );
        let garbage = Event::decode(b"do_schedule", &[0xc1]).unwrap_err();
        assert!(matches!(garbage, DecodeError::Msgpack { .. }), "{garbage}");
    }
}
