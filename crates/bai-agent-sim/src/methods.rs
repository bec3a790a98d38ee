//! The RPC methods of a simulated agent (`@rpc_function`s of `ai.backend.agent.server`, spec
//! §3.6), with the dummy backend's behaviour (spec §5.1): no containers, fake ports, real slot
//! accounting against the agent's capacity, and the kernel lifecycle events of the real agent.
//! Local networks are kept as a Docker agent keeps them (the dummy backend ignores them), so that
//! a manager that forgets to create or remove a cluster's network is caught.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use bai_events::{Event, EventProducer, KernelCreation, KernelTermination};
use rmpv::Value;
use serde_json::json;
use uuid::Uuid;

use crate::rpc::Faults;
use crate::runner::{ExecuteRequest, LocalRunner};

/// How a handler answers: RESULT, FAILURE (the handler raised) or ERROR (the RPC layer failed).
#[derive(Debug)]
pub(crate) enum Answer {
    Result(Value),
    Failure { exc_name: String, repr: String },
    Error { exc_name: String, repr: String },
}

pub(crate) fn failure(exc_name: &str, message: &str) -> Answer {
    Answer::Failure {
        exc_name: exc_name.to_owned(),
        repr: format!("{exc_name}({message:?})"),
    }
}

/// What aiodocker raises for an error answer of the Docker daemon.
fn docker_error(status: u16, message: &str) -> Answer {
    Answer::Failure {
        exc_name: "DockerError".to_owned(),
        repr: format!("DockerError({status}, {message:?})"),
    }
}

/// The fake ports of the dummy kernel runner.
const REPL_IN_PORT: u16 = 2000;
const REPL_OUT_PORT: u16 = 2001;
const STDIN_PORT: u16 = 2002;
const STDOUT_PORT: u16 = 2003;

/// What the dummy kernel's `get_logs` answers.
const DUMMY_LOGS: &str = "my logs";

/// The host ports `assign_port` hands out.
const PORT_POOL: std::ops::Range<u16> = 30000..31000;

/// A kernel the agent holds, with what it allocated.
struct Kernel {
    slots: Vec<(String, f64)>,
}

struct State {
    /// Canonical names of the images this agent has pulled.
    images: HashSet<String>,
    used: HashMap<String, f64>,
    kernels: HashMap<String, Kernel>,
    free_ports: BTreeSet<u16>,
    /// The local networks made by `create_local_network` and not yet destroyed.
    networks: BTreeSet<String>,
}

/// One agent as its RPC handlers see it.
pub(crate) struct Agent {
    pub id: String,
    producer: EventProducer,
    delay: Duration,
    kernel_host: String,
    agent_addr: String,
    scaling_group: String,
    /// Slot name, type (`count`, `bytes`) and capacity.
    capacity: Vec<(String, String, f64)>,
    state: Mutex<State>,
    /// The local code runner (`--runner local`); `None`: the dummy agent's answers.
    runner: Option<std::sync::Arc<LocalRunner>>,
    /// Before 24.03 the agent starts a batch session's command itself, after `kernel_started`,
    /// and has no `trigger_batch_execution`.
    starts_batches_itself: bool,
}

impl Agent {
    pub fn new(agent: &crate::SimAgent, producer: EventProducer) -> Agent {
        let capacity = agent
            .info
            .resource_slots
            .iter()
            .map(|slot| {
                (
                    slot.slot.clone(),
                    slot.slot_type.clone(),
                    slot.amount.parse().unwrap_or(0.0),
                )
            })
            .collect();
        let runner = match &agent.runner {
            crate::CodeRunner::Dummy => None,
            crate::CodeRunner::Local(options) => Some(std::sync::Arc::new(LocalRunner::new(
                &agent.id,
                options,
                producer.clone(),
            ))),
        };
        Agent {
            runner,
            starts_batches_itself: !bai_agent_rpc::AgentVersion::parse(&agent.info.version)
                .is_24_03_or_newer(),
            id: agent.id.clone(),
            producer,
            delay: agent.rpc.delay,
            kernel_host: agent
                .info
                .public_host
                .clone()
                .unwrap_or_else(|| agent.info.ip.clone()),
            agent_addr: agent.info.addr.clone(),
            scaling_group: agent.info.scaling_group.clone(),
            capacity,
            state: Mutex::new(State {
                images: HashSet::new(),
                used: HashMap::new(),
                kernels: HashMap::new(),
                free_ports: PORT_POOL.collect(),
                networks: BTreeSet::new(),
            }),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `method(*args, **kwargs)`.
    pub async fn call(
        &self,
        method: &str,
        args: Vec<Value>,
        kwargs: Vec<(String, Value)>,
        faults: Faults,
    ) -> Answer {
        let args = Args { method, args };
        if let Some(runner) = &self.runner
            && let Some(outcome) = self.local_call(runner, method, &args).await
        {
            return match outcome {
                Ok(value) => Answer::Result(value),
                Err(answer) => answer,
            };
        }
        let outcome = match method {
            "ping" => args.get(0).cloned(),
            "gather_hwinfo" => Ok(Value::Map(Vec::new())),
            "get_local_config" => Ok(to_value(&json!({
                "agent": {
                    "id": self.id,
                    "scaling-group": self.scaling_group,
                    "abuse-report-path": null,
                },
                "watcher": {},
            }))),
            "create_kernels" => self.create_kernels(&args, faults).await,
            "destroy_kernel" => self.destroy_kernel(&args, &kwargs).await,
            "restart_kernel" => self.restart_kernel(&args).await,
            "trigger_batch_execution" if !self.starts_batches_itself => {
                self.trigger_batch_execution(&args)
            }
            "execute" => args.get(3).map(|run_id| {
                Value::Map(vec![
                    (Value::from("status"), Value::from("finished")),
                    (Value::from("runId"), run_id.clone()),
                    (Value::from("exitCode"), Value::from(0)),
                    (Value::from("console"), Value::Array(Vec::new())),
                    (Value::from("options"), Value::Map(Vec::new())),
                ])
            }),
            "get_logs" => self.get_logs(&args),
            "list_files" => args.get(1).map(|path| {
                Value::Map(vec![
                    (Value::from("files"), Value::from("[]")),
                    (Value::from("errors"), Value::from("")),
                    (Value::from("abspath"), path.clone()),
                ])
            }),
            "download_file" | "download_single" => Ok(Value::Binary(Vec::new())),
            "create_local_network" => args.text(0).and_then(|name| {
                if self.state().networks.insert(name.to_owned()) {
                    Ok(Value::Nil)
                } else {
                    Err(docker_error(
                        409,
                        &format!("network with name {name} already exists"),
                    ))
                }
            }),
            "destroy_local_network" => args.text(0).and_then(|name| {
                if self.state().networks.remove(name) {
                    Ok(Value::Nil)
                } else {
                    Err(docker_error(404, &format!("network {name} not found")))
                }
            }),
            "assign_port" => match self.state().free_ports.pop_first() {
                Some(port) => Ok(Value::from(port)),
                None => Err(failure("RuntimeError", "no free host ports")),
            },
            "release_port" => args.get(0).map(|port| {
                if let Some(port) = port.as_u64().and_then(|port| u16::try_from(port).ok())
                    && PORT_POOL.contains(&port)
                {
                    self.state().free_ports.insert(port);
                }
                Value::Nil
            }),
            "interrupt_kernel"
            | "get_completions"
            | "upload_file"
            | "sync_kernel_registry"
            | "shutdown_agent"
            | "reset_agent"
            | "ping_kernel"
            | "update_scaling_group" => Ok(Value::Nil),
            unknown => {
                // The Python agent's RPC loop dies here (callosum KeyError); the simulator answers.
                tracing::warn!(
                    "agent {}: a call of the unknown RPC method {unknown:?}",
                    self.id
                );
                Err(Answer::Error {
                    exc_name: "KeyError".to_owned(),
                    repr: format!("KeyError({unknown:?})"),
                })
            }
        };
        match outcome {
            Ok(value) => Answer::Result(value),
            Err(answer) => answer,
        }
    }

    /// The methods the local runner answers, `None` for the others.
    async fn local_call(
        &self,
        runner: &LocalRunner,
        method: &str,
        args: &Args<'_>,
    ) -> Option<Result<Value, Answer>> {
        Some(match method {
            "execute" => self.execute(runner, args).await,
            "interrupt_kernel" => args
                .uuid(0)
                .and_then(|kernel_id| runner.interrupt(kernel_id))
                .map(|()| Value::Nil),
            "get_completions" => args
                .uuid(0)
                .and_then(|kernel_id| runner.complete(kernel_id))
                .map(|()| Value::Nil),
            "upload_file" => {
                let kernel_id = args.uuid(0);
                let filename = args.text(1);
                let data = args.bytes(2);
                match (kernel_id, filename, data) {
                    (Ok(kernel_id), Ok(filename), Ok(data)) => runner
                        .upload(kernel_id, filename, data)
                        .await
                        .map(|()| Value::Nil),
                    (Err(error), _, _) | (_, Err(error), _) | (_, _, Err(error)) => Err(error),
                }
            }
            "download_file" => match (args.uuid(0), args.text(1)) {
                (Ok(kernel_id), Ok(path)) => {
                    runner.download(kernel_id, path).await.map(Value::Binary)
                }
                (Err(error), _) | (_, Err(error)) => Err(error),
            },
            "download_single" => match (args.uuid(0), args.text(1)) {
                (Ok(kernel_id), Ok(path)) => runner
                    .download_single(kernel_id, path)
                    .await
                    .map(Value::Binary),
                (Err(error), _) | (_, Err(error)) => Err(error),
            },
            "list_files" => match (args.uuid(0), args.text(1)) {
                (Ok(kernel_id), Ok(path)) => runner
                    .list_files(kernel_id, path)
                    .await
                    .map(|answer| to_value(&answer)),
                (Err(error), _) | (_, Err(error)) => Err(error),
            },
            _ => return None,
        })
    }

    /// `execute(session_id, kernel_id, api_version, run_id, mode, code, opts, flush_timeout)`
    /// on the local runner.
    async fn execute(&self, runner: &LocalRunner, args: &Args<'_>) -> Result<Value, Answer> {
        let flush_timeout = match args.get(7)? {
            Value::Nil => None,
            value => {
                let seconds = value
                    .as_f64()
                    .or_else(|| value.as_i64().map(|seconds| seconds as f64))
                    .filter(|seconds| seconds.is_finite() && *seconds >= 0.0)
                    .ok_or_else(|| args.bad(7, "a number of seconds"))?;
                Some(Duration::from_secs_f64(seconds))
            }
        };
        let request = ExecuteRequest {
            session_id: args.uuid(0)?,
            kernel_id: args.uuid(1)?,
            api_version: args
                .get(2)?
                .as_i64()
                .ok_or_else(|| args.bad(2, "an API version"))?,
            run_id: match args.get(3)? {
                Value::Nil => None,
                _ => Some(args.text(3)?.to_owned()),
            },
            mode: args.text(4)?.to_owned(),
            code: match args.get(5)? {
                Value::Nil => String::new(),
                _ => args.text(5)?.to_owned(),
            },
            opts: args.get(6)?.clone(),
            flush_timeout,
        };
        runner.execute(request).await
    }

    /// `trigger_batch_execution(session_id, kernel_id, code)` (24.03): starts the batch loop and
    /// answers at once. The dummy agent's loop never ends (spec §5.1): without the local runner
    /// nothing runs.
    fn trigger_batch_execution(&self, args: &Args<'_>) -> Result<Value, Answer> {
        let session_id = args.uuid(0)?;
        let kernel_id = args.uuid(1)?;
        let code = args.text(2)?.to_owned();
        if let Some(runner) = &self.runner {
            runner.start_batch(session_id, kernel_id, code);
        }
        Ok(Value::Nil)
    }

    /// Stops the local runner's work and removes its scratch folders (the agent stops).
    pub async fn shutdown(&self) {
        if let Some(runner) = &self.runner {
            runner.shutdown().await;
        }
    }

    async fn create_kernels(&self, args: &Args<'_>, faults: Faults) -> Result<Value, Answer> {
        let session_id = args.uuid(0)?;
        let kernel_ids = args.list(1)?;
        let configs = args.list(2)?;
        if kernel_ids.len() != configs.len() {
            return Err(failure(
                "ValueError",
                "create_kernels: as many kernel configs as kernel ids are needed",
            ));
        }
        let kernel_ids = kernel_ids
            .iter()
            .map(|id| uuid_of(id, "kernel id"))
            .collect::<Result<Vec<_>, _>>()?;
        if faults.fail_create {
            tokio::time::sleep(self.delay).await;
            return Err(failure(
                "RuntimeError",
                "agent-sim: create_kernels fails (--fail-create)",
            ));
        }
        self.check_network(args)?;
        let requests = configs
            .iter()
            .map(requested_slots)
            .collect::<Result<Vec<_>, _>>()?;
        let images = configs
            .iter()
            .map(|config| self.image_to_pull(config))
            .collect::<Result<Vec<_>, _>>()?;
        let mut reservation = self.reserve(&kernel_ids, &requests)?;

        for kernel_id in &kernel_ids {
            let event = Event::KernelPreparing(self.creation(*kernel_id, session_id, json!({})));
            self.produce(&event).await;
        }
        self.pull(session_id, &kernel_ids, &images).await;
        for kernel_id in &kernel_ids {
            let event = Event::KernelCreating(self.creation(*kernel_id, session_id, json!({})));
            self.produce(&event).await;
        }
        tokio::time::sleep(self.delay).await;
        if let Some(runner) = &self.runner {
            for (index, (kernel_id, config)) in kernel_ids.iter().zip(configs).enumerate() {
                if let Err(answer) = runner.create_kernel(*kernel_id, config).await {
                    for made in &kernel_ids[..index] {
                        runner.destroy_kernel(*made).await;
                    }
                    return Err(answer);
                }
            }
        }
        let mut results = Vec::new();
        for ((kernel_id, config), slots) in kernel_ids.iter().zip(configs).zip(&requests) {
            let info = self.creation_info(*kernel_id, config, slots);
            let event = Event::KernelStarted(self.creation(*kernel_id, session_id, info.clone()));
            self.produce(&event).await;
            results.push(to_value(&info));
            // The 23.09 agent starts a batch session's startup command itself (its main kernel).
            if self.starts_batches_itself
                && let Some(runner) = &self.runner
                && map_field(config, "session_type").and_then(Value::as_str) == Some("batch")
                && map_field(config, "cluster_role").and_then(Value::as_str) == Some("main")
            {
                let command = map_field(config, "startup_command")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                runner.start_batch(session_id, *kernel_id, command);
            }
        }
        reservation.keep = true;
        Ok(Value::Array(results))
    }

    /// A single-node cluster's containers join the local network its `cluster_info` names,
    /// which must have been created on this agent (Docker refuses an unknown network).
    fn check_network(&self, args: &Args<'_>) -> Result<(), Answer> {
        let network = args
            .get(3)
            .ok()
            .and_then(|info| map_field(info, "network_name"))
            .and_then(Value::as_str);
        match network {
            Some(name)
                if name.starts_with("bai-singlenode-") && !self.state().networks.contains(name) =>
            {
                Err(docker_error(404, &format!("network {name} not found")))
            }
            _ => Ok(()),
        }
    }

    /// The image a kernel config needs pulled first: its `image.canonical` when this agent has
    /// not pulled it yet. Images built on the agent (`image.is_local`) are there; with
    /// `auto_pull = "none"` a missing image fails as the real agent's `ImageNotAvailable`.
    fn image_to_pull(&self, config: &Value) -> Result<Option<String>, Answer> {
        let Some(image) = map_field(config, "image") else {
            return Ok(None);
        };
        let canonical = map_field(image, "canonical")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                failure(
                    "ValueError",
                    "a kernel config's image has no canonical name",
                )
            })?;
        let is_local = map_field(image, "is_local").and_then(Value::as_bool) == Some(true);
        if is_local || self.state().images.contains(canonical) {
            return Ok(None);
        }
        match map_field(config, "auto_pull").and_then(Value::as_str) {
            Some("none") => Err(failure(
                "ImageNotAvailable",
                &format!(
                    "{canonical} is not on agent {} and auto_pull is none",
                    self.id
                ),
            )),
            _ => Ok(Some(canonical.to_owned())),
        }
    }

    /// `kernel_pulling` (reason: the image) for each kernel whose image is missing, then one
    /// pull per image, each taking the configured delay.
    async fn pull(&self, session_id: Uuid, kernel_ids: &[Uuid], images: &[Option<String>]) {
        let mut pulled = Vec::new();
        for (kernel_id, image) in kernel_ids.iter().zip(images) {
            let Some(image) = image else { continue };
            let mut pulling = self.creation(*kernel_id, session_id, json!({}));
            pulling.reason.clone_from(image);
            self.produce(&Event::KernelPulling(pulling)).await;
            if !pulled.contains(image) {
                tokio::time::sleep(self.delay).await;
                pulled.push(image.clone());
            }
        }
        self.state().images.extend(pulled);
    }

    /// Allocates every kernel's slots, all or nothing.
    fn reserve(
        &self,
        kernel_ids: &[Uuid],
        requests: &[Vec<(String, f64)>],
    ) -> Result<Reservation<'_>, Answer> {
        let mut state = self.state();
        let mut wanted: HashMap<&str, f64> = HashMap::new();
        for (slot, amount) in requests.iter().flatten() {
            *wanted.entry(slot.as_str()).or_default() += amount;
        }
        for (slot, amount) in &wanted {
            if *amount <= 0.0 {
                continue;
            }
            let capacity = self
                .capacity
                .iter()
                .find(|(name, _, _)| name == slot)
                .map_or(0.0, |(_, _, capacity)| *capacity);
            let used = state.used.get(*slot).copied().unwrap_or(0.0);
            // A relative tolerance for decimal fractions of cores.
            if used + amount > capacity * (1.0 + 1e-12) {
                return Err(failure(
                    "InsufficientResource",
                    &format!(
                        "agent {}: not enough {slot}: requested {amount}, free {}",
                        self.id,
                        capacity - used
                    ),
                ));
            }
        }
        for (slot, amount) in wanted {
            *state.used.entry(slot.to_owned()).or_default() += amount;
        }
        for (kernel_id, slots) in kernel_ids.iter().zip(requests) {
            state.kernels.insert(
                kernel_id.to_string(),
                Kernel {
                    slots: slots.clone(),
                },
            );
        }
        Ok(Reservation {
            agent: self,
            kernels: kernel_ids.iter().map(Uuid::to_string).collect(),
            keep: false,
        })
    }

    fn release(&self, kernel_id: &str) -> bool {
        let mut state = self.state();
        let Some(kernel) = state.kernels.remove(kernel_id) else {
            return false;
        };
        for (slot, amount) in kernel.slots {
            if let Some(used) = state.used.get_mut(&slot) {
                *used = (*used - amount).max(0.0);
            }
        }
        true
    }

    /// `restart_kernel(session_id, kernel_id, updated_config)` fails as the real dummy agent's
    /// does: the dummy backend stores no kernel configuration (its `restart_kernel__load_config`
    /// gives `b""`), so the agent's unpickling of it raises `EOFError` before anything restarts.
    async fn restart_kernel(&self, args: &Args<'_>) -> Result<Value, Answer> {
        args.uuid(0)?;
        args.uuid(1)?;
        tokio::time::sleep(self.delay).await;
        Err(Answer::Failure {
            exc_name: "EOFError".to_owned(),
            repr: "EOFError('Ran out of input')".to_owned(),
        })
    }

    /// `get_logs(kernel_id)`: the dummy kernel's `{"logs": "my logs"}`, or the real agent's
    /// `KeyError` for a kernel it does not hold.
    fn get_logs(&self, args: &Args<'_>) -> Result<Value, Answer> {
        let kernel_id = args.uuid(0)?;
        if !self.state().kernels.contains_key(&kernel_id.to_string()) {
            return Err(Answer::Failure {
                exc_name: "KeyError".to_owned(),
                repr: format!("KeyError(UUID('{kernel_id}'))"),
            });
        }
        Ok(to_value(&json!({"logs": DUMMY_LOGS})))
    }

    async fn destroy_kernel(
        &self,
        args: &Args<'_>,
        kwargs: &[(String, Value)],
    ) -> Result<Value, Answer> {
        let kernel_id = args.uuid(0)?;
        let session_id = args.uuid(1)?;
        let reason = match args.args.get(2) {
            None | Some(Value::Nil) => "user-requested".to_owned(),
            Some(reason) => reason
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| args.bad(2, "a reason"))?,
        };
        let suppress_events = kwargs
            .iter()
            .find(|(name, _)| name == "suppress_events")
            .and_then(|(_, value)| value.as_bool())
            .unwrap_or(false);
        tokio::time::sleep(self.delay).await;
        if let Some(runner) = &self.runner {
            runner.destroy_kernel(kernel_id).await;
        }
        if !self.release(&kernel_id.to_string()) {
            tracing::info!(
                "agent {}: destroying the unknown kernel {kernel_id}",
                self.id
            );
        }
        if !suppress_events {
            self.produce(&Event::KernelTerminated(KernelTermination {
                kernel_id,
                session_id,
                reason,
                exit_code: 0,
            }))
            .await;
        }
        Ok(Value::Nil)
    }

    fn creation(
        &self,
        kernel_id: Uuid,
        session_id: Uuid,
        info: serde_json::Value,
    ) -> KernelCreation {
        KernelCreation {
            kernel_id,
            session_id,
            reason: String::new(),
            creation_info: info,
        }
    }

    /// The result of one kernel's creation, as the real agent returns it and puts it into
    /// `kernel_started`.
    fn creation_info(
        &self,
        kernel_id: Uuid,
        config: &Value,
        slots: &[(String, f64)],
    ) -> serde_json::Value {
        let slot_type = |slot: &str| {
            self.capacity
                .iter()
                .find(|(name, _, _)| name == slot)
                .map_or("count", |(_, slot_type, _)| slot_type.as_str())
        };
        let text = |slot: &str, amount: f64| {
            if slot_type(slot) == "bytes" || amount.fract() == 0.0 {
                format!("{amount:.0}")
            } else {
                amount.to_string()
            }
        };
        let slot_map: serde_json::Map<String, serde_json::Value> = slots
            .iter()
            .map(|(slot, amount)| (slot.clone(), json!(text(slot, *amount))))
            .collect();
        let mut allocations = serde_json::Map::new();
        for (slot, amount) in slots {
            let device = if slot_type(slot) == "bytes" {
                "root"
            } else {
                "0"
            };
            let plugin = slot.split('.').next().unwrap_or(slot).to_owned();
            allocations.insert(
                plugin,
                json!({ slot.clone(): { device: text(slot, *amount) } }),
            );
        }
        let scaling_group = map_field(config, "scaling_group")
            .and_then(Value::as_str)
            .unwrap_or(&self.scaling_group)
            .to_owned();
        let agent_addr = map_field(config, "agent_addr")
            .and_then(Value::as_str)
            .unwrap_or(&self.agent_addr)
            .to_owned();
        json!({
            "id": kernel_id.to_string(),
            "kernel_host": self.kernel_host,
            "repl_in_port": REPL_IN_PORT,
            "repl_out_port": REPL_OUT_PORT,
            "stdin_port": STDIN_PORT,
            "stdout_port": STDOUT_PORT,
            "service_ports": [],
            "container_id": "",
            "resource_spec": {
                "container_id": "",
                "slots": slot_map,
                "allocations": allocations,
                "scratch_disk_size": 0,
                "mounts": [],
            },
            "scaling_group": scaling_group,
            "agent_addr": agent_addr,
            "attached_devices": {},
        })
    }

    async fn produce(&self, event: &Event) {
        if let Err(error) = self.producer.produce(event, &self.id).await {
            tracing::warn!("agent {}: sending {}: {error}", self.id, event.name());
        }
    }
}

/// Allocated slots of a `create_kernels` in progress, given back if it does not finish (it
/// failed or was cancelled).
struct Reservation<'a> {
    agent: &'a Agent,
    kernels: Vec<String>,
    keep: bool,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if !self.keep {
            for kernel in &self.kernels {
                self.agent.release(kernel);
            }
        }
    }
}

/// A `KernelCreationConfig`'s `resource_slots`: decimal texts (or numbers) by slot name.
fn requested_slots(config: &Value) -> Result<Vec<(String, f64)>, Answer> {
    let bad = || {
        failure(
            "ValueError",
            "a kernel config's resource_slots is not a slot map",
        )
    };
    let Some(slots) = map_field(config, "resource_slots") else {
        return Ok(Vec::new());
    };
    let Value::Map(entries) = slots else {
        return Err(bad());
    };
    entries
        .iter()
        .map(|(slot, amount)| {
            let slot = slot.as_str().ok_or_else(bad)?.to_owned();
            let amount = match amount {
                Value::String(text) => text.as_str().and_then(|text| text.trim().parse().ok()),
                Value::Integer(number) => number.as_f64(),
                Value::F32(number) => Some(f64::from(*number)),
                Value::F64(number) => Some(*number),
                _ => None,
            }
            .filter(|amount: &f64| amount.is_finite() && *amount >= 0.0)
            .ok_or_else(bad)?;
            Ok((slot, amount))
        })
        .collect()
}

fn map_field<'a>(map: &'a Value, name: &str) -> Option<&'a Value> {
    map.as_map()?
        .iter()
        .find(|(key, _)| key.as_str() == Some(name))
        .map(|(_, value)| value)
}

fn uuid_of(value: &Value, what: &str) -> Result<Uuid, Answer> {
    value
        .as_str()
        .and_then(|text| Uuid::parse_str(text).ok())
        .ok_or_else(|| failure("ValueError", &format!("{what} is not a UUID")))
}

/// Positional arguments, with Python's `TypeError` for a missing one.
struct Args<'a> {
    method: &'a str,
    args: Vec<Value>,
}

impl Args<'_> {
    fn get(&self, index: usize) -> Result<&Value, Answer> {
        self.args.get(index).ok_or_else(|| {
            failure(
                "TypeError",
                &format!(
                    "{}() is missing positional argument {}",
                    self.method,
                    index + 1
                ),
            )
        })
    }

    fn bad(&self, index: usize, what: &str) -> Answer {
        failure(
            "TypeError",
            &format!("{}(): argument {} is not {what}", self.method, index + 1),
        )
    }

    fn text(&self, index: usize) -> Result<&str, Answer> {
        self.get(index)?
            .as_str()
            .ok_or_else(|| self.bad(index, "a string"))
    }

    fn uuid(&self, index: usize) -> Result<Uuid, Answer> {
        let text = self.text(index)?;
        Uuid::parse_str(text).map_err(|_| self.bad(index, "a UUID"))
    }

    fn bytes(&self, index: usize) -> Result<Vec<u8>, Answer> {
        match self.get(index)? {
            Value::Binary(bytes) => Ok(bytes.clone()),
            Value::String(text) => Ok(text.as_bytes().to_vec()),
            _ => Err(self.bad(index, "bytes")),
        }
    }

    fn list(&self, index: usize) -> Result<&[Value], Answer> {
        match self.get(index)? {
            Value::Array(items) => Ok(items),
            _ => Err(self.bad(index, "a list")),
        }
    }
}

/// JSON as msgpack.
pub(crate) fn to_value(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(flag) => Value::Boolean(*flag),
        serde_json::Value::Number(number) => match (number.as_i64(), number.as_u64()) {
            (Some(integer), _) => Value::from(integer),
            (_, Some(integer)) => Value::from(integer),
            _ => Value::F64(number.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(text) => Value::from(text.as_str()),
        serde_json::Value::Array(items) => Value::Array(items.iter().map(to_value).collect()),
        serde_json::Value::Object(fields) => Value::Map(
            fields
                .iter()
                .map(|(key, value)| (Value::from(key.as_str()), to_value(value)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_maps_are_read_from_decimal_texts_and_numbers() {
        let config = Value::Map(vec![(
            Value::from("resource_slots"),
            Value::Map(vec![
                (Value::from("cpu"), Value::from("1.5")),
                (Value::from("mem"), Value::from(1024)),
            ]),
        )]);
        assert_eq!(
            requested_slots(&config).unwrap(),
            vec![("cpu".to_owned(), 1.5), ("mem".to_owned(), 1024.0)]
        );
        assert!(requested_slots(&Value::Map(vec![])).unwrap().is_empty());
        let negative = Value::Map(vec![(
            Value::from("resource_slots"),
            Value::Map(vec![(Value::from("cpu"), Value::from("-1"))]),
        )]);
        assert!(requested_slots(&negative).is_err());
    }
}
