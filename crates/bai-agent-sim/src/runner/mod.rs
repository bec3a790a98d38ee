//! The local code runner of simulated agents (`--runner local`): `execute` really runs a query's
//! code or a batch's commands in child processes, in a scratch folder per kernel that stands for
//! the container's `/home/work`, and answers as the 24.03 agent and its kernel runner answer
//! (`runId`, `status`, `exitCode`, `options`, `console`, `files`), with the `execution_*`
//! events; batch sessions run their startup command as the agent's `execute_batch` loop does and
//! end with `session_success`/`session_failure`; the file methods work on the folder.
//!
//! It runs users' code on this host as the agent-sim user, without any isolation: for
//! development only. It must not be on unless asked for, and refuses root unless told
//! ([`check_root`]). Python images run `python3`, others `sh`; a query runs in a new process
//! each time (no state is kept between queries, unlike the reference's Python kernel).

mod files;
mod run;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bai_events::{Event, EventProducer, SessionResult};
use nix::sys::signal::Signal;
use rmpv::Value;
use tokio::process::Command;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::methods::{Answer, failure};
use run::{Phase, Run, Step};

pub use run::OUTPUT_CAP;

/// What runs the code of `execute`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CodeRunner {
    /// The real dummy agent's answers: nothing runs.
    #[default]
    Dummy,
    /// Child processes on this host (development only).
    Local(LocalRunnerOptions),
}

/// Where and as whom the local runner runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalRunnerOptions {
    /// Each kernel gets `{scratch_root}/{agent id}/{kernel id}/work`, removed when it is
    /// destroyed.
    pub scratch_root: PathBuf,
    /// Run users' code even as root (uid 0).
    pub allow_root: bool,
}

impl LocalRunnerOptions {
    /// The options with the scratch folders under the system's temporary folder.
    pub fn in_temp_dir() -> LocalRunnerOptions {
        LocalRunnerOptions {
            scratch_root: std::env::temp_dir().join("bai-agent-sim-scratch"),
            allow_root: false,
        }
    }
}

/// Refuses the local runner to root (uid 0) unless `allow_root`: it runs whatever users send.
pub fn check_root(uid: u32, allow_root: bool) -> Result<(), String> {
    if uid == 0 && !allow_root {
        return Err(
            "--runner local runs users' code on this host and refuses to run as root (uid 0); \
             run agent-sim as another user, or pass --allow-root-runner to run it as root anyway"
                .to_owned(),
        );
    }
    Ok(())
}

/// The reserved run id of batch jobs.
const BATCH_RUN_ID: &str = "batch-job";

/// How long each `execute` of the batch loop waits for output (the reference's 1 s).
const BATCH_FLUSH: Duration = Duration::from_secs(1);

/// Replaces `input()` and `getpass()` so that they announce themselves on the control FIFO (the
/// kernel runner's `waiting-input`), then runs the query's code as `__main__`.
const PYTHON_BOOTSTRAP: &str = r#"
import builtins, getpass, json, sys, traceback
_code_path, _fifo_path = sys.argv[1], sys.argv[2]
def _ask(prompt, password):
    if prompt:
        sys.stdout.write(str(prompt))
    sys.stdout.flush()
    with open(_fifo_path, "w") as fifo:
        fifo.write(json.dumps({"is_password": password}) + "\n")
    line = sys.stdin.readline()
    if not line:
        raise EOFError("EOF when reading a line")
    return line[:-1] if line.endswith("\n") else line
builtins.input = lambda prompt="": _ask(prompt, False)
getpass.getpass = lambda prompt="Password: ", stream=None: _ask(prompt, True)
sys.argv = [""]
with open(_code_path, encoding="utf-8") as source:
    _code = compile(source.read(), "<input>", "exec")
try:
    exec(_code, {"__name__": "__main__", "__builtins__": builtins})
except SystemExit:
    raise
except BaseException as error:
    traceback.print_exception(type(error), error, error.__traceback__.tb_next)
    sys.exit(1)
"#;

/// How a kernel's queries run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Language {
    Python,
    Shell,
}

/// One kernel of the local runner.
struct LocalKernel {
    /// `{root}/{kernel id}`: the query file and the input FIFO, out of the user's sight.
    private: PathBuf,
    /// `{private}/work`, the container's `/home/work`.
    home: PathBuf,
    language: Language,
    /// The kernel config's `environ`.
    environ: Vec<(String, String)>,
    /// The run in progress, with its pump.
    current: Mutex<Option<(Arc<Run>, JoinHandle<()>)>>,
    /// A run ended (the next may start).
    run_ended: Notify,
    /// The batch loop, if one runs.
    batch: Mutex<Option<JoinHandle<()>>>,
    /// The kernel is being destroyed.
    closed: CancellationToken,
}

impl LocalKernel {
    fn current(&self) -> Option<Arc<Run>> {
        lock(&self.current).as_ref().map(|(run, _)| Arc::clone(run))
    }

    /// Forgets `run` if it is the current one, letting the next run start.
    fn end(&self, run: &Arc<Run>) {
        let mut current = lock(&self.current);
        if current
            .as_ref()
            .is_some_and(|(running, _)| Arc::ptr_eq(running, run))
        {
            *current = None;
            drop(current);
            self.run_ended.notify_waiters();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `execute`'s arguments after the kernel.
pub(crate) struct ExecuteRequest {
    pub session_id: Uuid,
    pub kernel_id: Uuid,
    pub api_version: i64,
    pub run_id: Option<String>,
    pub mode: String,
    pub code: String,
    pub opts: Value,
    pub flush_timeout: Option<Duration>,
}

/// The local runner of one agent.
pub(crate) struct LocalRunner {
    agent_id: String,
    /// `{scratch_root}/{agent id}`.
    root: PathBuf,
    producer: EventProducer,
    kernels: Mutex<HashMap<Uuid, Arc<LocalKernel>>>,
    /// The agent stops: batch loops end with `task-cancelled`.
    stopping: CancellationToken,
}

/// What ends a batch loop's `execute`.
struct BatchStop {
    /// The agent stops: `execution_cancelled`, and the loop reports `task-cancelled`.
    shutdown: CancellationToken,
    /// The kernel is destroyed: the loop ends without a session event, as the reference's
    /// loop dies on the `RuntimeError` of its next `execute`.
    kernel_gone: CancellationToken,
}

impl LocalRunner {
    pub fn new(agent_id: &str, options: &LocalRunnerOptions, producer: EventProducer) -> Self {
        LocalRunner {
            agent_id: agent_id.to_owned(),
            root: options.scratch_root.join(agent_id),
            producer,
            kernels: Mutex::default(),
            stopping: CancellationToken::new(),
        }
    }

    async fn produce(&self, event: &Event) {
        if let Err(error) = self.producer.produce(event, &self.agent_id).await {
            tracing::warn!("agent {}: sending {}: {error}", self.agent_id, event.name());
        }
    }

    fn kernel(&self, kernel_id: Uuid) -> Option<Arc<LocalKernel>> {
        lock(&self.kernels).get(&kernel_id).cloned()
    }

    /// The kernel, or the real agent's `KeyError` for one it does not hold.
    fn known_kernel(&self, kernel_id: Uuid) -> Result<Arc<LocalKernel>, Answer> {
        self.kernel(kernel_id).ok_or_else(|| Answer::Failure {
            exc_name: "KeyError".to_owned(),
            repr: format!("KeyError(UUID('{kernel_id}'))"),
        })
    }

    /// Makes the kernel's scratch folder; its language from the image of `config`.
    pub async fn create_kernel(&self, kernel_id: Uuid, config: &Value) -> Result<(), Answer> {
        let private = self.root.join(kernel_id.to_string());
        let home = private.join("work");
        let fifo = private.join("input.fifo");
        let made =
            tokio::fs::create_dir_all(&home).await.and_then(|()| {
                match nix::unistd::mkfifo(
                    &fifo,
                    nix::sys::stat::Mode::S_IRUSR | nix::sys::stat::Mode::S_IWUSR,
                ) {
                    Ok(()) | Err(nix::errno::Errno::EEXIST) => Ok(()),
                    Err(errno) => Err(std::io::Error::from(errno)),
                }
            });
        if let Err(error) = made {
            return Err(failure(
                "OSError",
                &format!("making the scratch folder {}: {error}", home.display()),
            ));
        }
        let kernel = LocalKernel {
            private,
            home,
            language: language_of(config),
            environ: environ_of(config),
            current: Mutex::new(None),
            run_ended: Notify::new(),
            batch: Mutex::new(None),
            closed: CancellationToken::new(),
        };
        lock(&self.kernels).insert(kernel_id, Arc::new(kernel));
        Ok(())
    }

    /// Stops what runs in the kernel (its batch loop first) and removes its scratch folder.
    pub async fn destroy_kernel(&self, kernel_id: Uuid) {
        let Some(kernel) = lock(&self.kernels).remove(&kernel_id) else {
            return;
        };
        kernel.closed.cancel();
        let batch = lock(&kernel.batch).take();
        if let Some(batch) = batch {
            let _ = batch.await;
        }
        let current = lock(&kernel.current).take();
        if let Some((run, pump)) = current {
            run.stop.cancel();
            let _ = pump.await;
        }
        kernel.run_ended.notify_waiters();
        if let Err(error) = tokio::fs::remove_dir_all(&kernel.private).await {
            tracing::warn!(
                "agent {}: removing {}: {error}",
                self.agent_id,
                kernel.private.display()
            );
        }
    }

    /// Destroys every kernel (the agent stops: batch loops report `task-cancelled`, as the
    /// agent's shutdown cancels them) and removes the agent's scratch folder.
    pub async fn shutdown(&self) {
        self.stopping.cancel();
        let kernels: Vec<Uuid> = lock(&self.kernels).keys().copied().collect();
        for kernel_id in kernels {
            self.destroy_kernel(kernel_id).await;
        }
        let _ = tokio::fs::remove_dir(&self.root).await;
    }

    /// `execute(...)`, with the agent's `execution_*` events: `execution_started` on every call,
    /// `execution_finished` when the run finished, `execution_cancelled` when the call is
    /// cancelled (by the caller, or for a batch loop by the agent's shutdown).
    async fn execute_stoppable(
        &self,
        request: ExecuteRequest,
        stop: Option<&BatchStop>,
    ) -> Result<Value, Answer> {
        let session_id = request.session_id;
        let kernel_id = request.kernel_id;
        self.produce(&Event::ExecutionStarted { session_id }).await;
        let mut guard = CancelGuard {
            producer: Some((self.producer.clone(), self.agent_id.clone(), session_id)),
        };
        let work = self.execute_in_kernel(request);
        let outcome = match stop {
            Some(stop) => tokio::select! {
                biased;
                () = stop.shutdown.cancelled() => {
                    guard.producer = None;
                    self.produce(&Event::ExecutionCancelled { session_id }).await;
                    return Err(failure("CancelledError", ""));
                }
                () = stop.kernel_gone.cancelled() => {
                    guard.producer = None;
                    return Err(kernel_not_found(kernel_id));
                }
                outcome = work => outcome,
            },
            None => work.await,
        };
        guard.producer = None;
        let (result, status) = outcome?;
        if status == "finished" {
            self.produce(&Event::ExecutionFinished { session_id }).await;
        }
        Ok(result)
    }

    /// `execute(...)` of the RPC.
    pub async fn execute(&self, request: ExecuteRequest) -> Result<Value, Answer> {
        self.execute_stoppable(request, None).await
    }

    async fn execute_in_kernel(
        &self,
        request: ExecuteRequest,
    ) -> Result<(Value, &'static str), Answer> {
        let kernel = self
            .kernel(request.kernel_id)
            .ok_or_else(|| kernel_not_found(request.kernel_id))?;
        let run_id = request.run_id.clone().unwrap_or_else(|| {
            // The kernel runner's `secrets.token_hex(16)`.
            Uuid::new_v4().simple().to_string()
        });
        let run = match request.mode.as_str() {
            "query" | "batch" => Some(self.start(&kernel, &run_id, &request).await?),
            "continue" | "input" => kernel.current().filter(|run| run.run_id == run_id),
            other => {
                return Err(failure(
                    "ValueError",
                    &format!("execute: unknown mode {other:?}"),
                ));
            }
        };
        let Some(run) = run else {
            // Nothing runs under this id: the kernel runner's fresh output queue stays empty.
            if let Some(timeout) = request.flush_timeout {
                tokio::time::sleep(timeout).await;
            }
            return Ok((
                result_map(
                    &run_id,
                    "continued",
                    None,
                    None,
                    Vec::new(),
                    request.api_version,
                ),
                "continued",
            ));
        };
        let _collecting = run.collecting.lock().await;
        if request.mode == "input" {
            run.feed_input(&request.code).await;
        }
        let collected = run.collect(request.flush_timeout).await;
        if collected.status == "finished" {
            kernel.end(&run);
        }
        Ok((
            result_map(
                &run_id,
                collected.status,
                collected.exit_code,
                collected.options,
                collected.console,
                request.api_version,
            ),
            collected.status,
        ))
    }

    /// Starts a query or a batch as the kernel's run, once the run in progress (of another id)
    /// finished, as the kernel runner queues runs.
    async fn start(
        &self,
        kernel: &Arc<LocalKernel>,
        run_id: &str,
        request: &ExecuteRequest,
    ) -> Result<Arc<Run>, Answer> {
        loop {
            let ended = kernel.run_ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if kernel.closed.is_cancelled() {
                return Err(kernel_not_found(request.kernel_id));
            }
            {
                let mut current = lock(&kernel.current);
                match current.as_ref() {
                    Some((running, _)) if running.run_id == run_id => {
                        return Err(failure(
                            "RuntimeError",
                            &format!("run {run_id} is still running in this kernel"),
                        ));
                    }
                    Some(_) => {}
                    None => {
                        let steps = self.steps(kernel, request)?;
                        let run = Arc::new(Run::new(run_id.to_owned()));
                        let pumping = Arc::clone(&run);
                        let (home, environ) = (kernel.home.clone(), kernel.environ.clone());
                        let pump = tokio::spawn(async move {
                            pumping.pump(steps, home, environ).await;
                        });
                        *current = Some((Arc::clone(&run), pump));
                        return Ok(run);
                    }
                }
            }
            ended.await;
        }
    }

    /// The commands of a query (the code, by the kernel's language) or of a batch (`clean`,
    /// `build`, `exec` of `opts`, each with `sh -c`).
    fn steps(&self, kernel: &LocalKernel, request: &ExecuteRequest) -> Result<Vec<Step>, Answer> {
        if request.mode == "query" {
            let command = match kernel.language {
                Language::Python => {
                    let code_path = kernel.private.join("query.py");
                    std::fs::write(&code_path, &request.code).map_err(|error| {
                        failure("OSError", &format!("writing the query: {error}"))
                    })?;
                    let mut command = Command::new("python3");
                    command
                        .arg("-u")
                        .arg("-c")
                        .arg(PYTHON_BOOTSTRAP)
                        .arg(&code_path)
                        .arg(kernel.private.join("input.fifo"));
                    command
                }
                Language::Shell => {
                    let mut command = Command::new("sh");
                    command.arg("-c").arg(&request.code);
                    command
                }
            };
            return Ok(vec![Step {
                phase: Phase::Exec,
                command: Some(command),
                input_fifo: (kernel.language == Language::Python)
                    .then(|| kernel.private.join("input.fifo")),
                stdin: true,
            }]);
        }
        let option = |name: &str| {
            field(&request.opts, name)
                .and_then(Value::as_str)
                .and_then(|command| heuristic(name, command, kernel.language))
                .map(|command| {
                    let mut shell = Command::new("sh");
                    shell.arg("-c").arg(command);
                    if name == "exec" {
                        shell.env("_BACKEND_BATCH_MODE", "1");
                    }
                    shell
                })
        };
        Ok([
            (Phase::Clean, "clean"),
            (Phase::Build, "build"),
            (Phase::Exec, "exec"),
        ]
        .into_iter()
        .map(|(phase, name)| Step {
            phase,
            command: option(name),
            input_fifo: None,
            stdin: false,
        })
        .collect())
    }

    /// `interrupt_kernel(kernel_id)`: SIGINT to the running child's process group (the kernel
    /// runner's interrupt), then SIGKILL if it still runs after a grace period.
    pub fn interrupt(&self, kernel_id: Uuid) -> Result<(), Answer> {
        let kernel = self.known_kernel(kernel_id)?;
        if let Some(run) = kernel.current() {
            let Some(group) = run.group() else {
                return Ok(());
            };
            run.signal(Signal::SIGINT);
            tokio::spawn(async move {
                tokio::time::sleep(run::INTERRUPT_GRACE).await;
                if run.group() == Some(group) {
                    run.signal(Signal::SIGKILL);
                }
            });
        }
        Ok(())
    }

    /// `get_completions(kernel_id, text, opts)`: the agent's RPC answers nothing.
    pub fn complete(&self, kernel_id: Uuid) -> Result<(), Answer> {
        self.known_kernel(kernel_id).map(drop)
    }

    pub async fn upload(
        &self,
        kernel_id: Uuid,
        filename: &str,
        data: Vec<u8>,
    ) -> Result<(), Answer> {
        let kernel = self.known_kernel(kernel_id)?;
        let filename = filename.to_owned();
        blocking(move || files::upload(&kernel.home, &kernel_id.to_string(), &filename, &data))
            .await
    }

    pub async fn download(&self, kernel_id: Uuid, path: &str) -> Result<Vec<u8>, Answer> {
        let kernel = self.known_kernel(kernel_id)?;
        let path = path.to_owned();
        blocking(move || files::download(&kernel.home, &path)).await
    }

    pub async fn download_single(&self, kernel_id: Uuid, path: &str) -> Result<Vec<u8>, Answer> {
        let kernel = self.known_kernel(kernel_id)?;
        let path = path.to_owned();
        blocking(move || files::download_single(&kernel.home, &path)).await
    }

    pub async fn list_files(
        &self,
        kernel_id: Uuid,
        path: &str,
    ) -> Result<serde_json::Value, Answer> {
        let kernel = self.known_kernel(kernel_id)?;
        let path = path.to_owned();
        blocking(move || files::list(&kernel.home, &path)).await
    }

    /// Starts the agent's `execute_batch` loop for `command` in the kernel (nothing if the agent
    /// does not hold it, as the reference logs and returns).
    pub fn start_batch(self: &Arc<Self>, session_id: Uuid, kernel_id: Uuid, command: String) {
        let Some(kernel) = self.kernel(kernel_id) else {
            tracing::warn!("execute_batch(k:{kernel_id}): no such kernel");
            return;
        };
        let runner = Arc::clone(self);
        let stop = BatchStop {
            shutdown: self.stopping.clone(),
            kernel_gone: kernel.closed.clone(),
        };
        let task = tokio::spawn(async move {
            runner
                .execute_batch(session_id, kernel_id, command, &stop)
                .await;
        });
        if let Some(previous) = lock(&kernel.batch).replace(task) {
            previous.abort();
        }
    }

    /// The agent's `execute_batch`: `batch` then `continue` until the run finished, then
    /// `session_success` (`task-done`, 0) or `session_failure` (`task-failed` and the exit
    /// code); `task-cancelled`, -2 when the agent stops first. A destroyed kernel ends it
    /// without a session event.
    async fn execute_batch(
        &self,
        session_id: Uuid,
        kernel_id: Uuid,
        command: String,
        stop: &BatchStop,
    ) {
        let mut mode = "batch";
        let mut opts = Value::Map(vec![(Value::from("exec"), Value::from(command.as_str()))]);
        loop {
            let request = ExecuteRequest {
                session_id,
                kernel_id,
                api_version: 3,
                run_id: Some(BATCH_RUN_ID.to_owned()),
                mode: mode.to_owned(),
                code: String::new(),
                opts: opts.clone(),
                flush_timeout: Some(BATCH_FLUSH),
            };
            let result = match self.execute_stoppable(request, Some(stop)).await {
                Ok(result) => result,
                Err(Answer::Failure { exc_name, .. }) if exc_name == "CancelledError" => {
                    self.produce(&batch_end(session_id, "task-cancelled", -2))
                        .await;
                    return;
                }
                Err(answer) => {
                    // The kernel is gone: the reference's loop dies with the error.
                    tracing::info!("execute_batch(k:{kernel_id}) ends: {answer:?}");
                    return;
                }
            };
            let status = field(&result, "status").and_then(Value::as_str);
            match status {
                Some("finished") => {
                    let exit_code = field(&result, "exitCode")
                        .and_then(Value::as_i64)
                        .unwrap_or(-1);
                    let reason = if exit_code == 0 {
                        "task-done"
                    } else {
                        "task-failed"
                    };
                    self.produce(&batch_end(session_id, reason, exit_code))
                        .await;
                    return;
                }
                Some("exec-timeout") => {
                    self.produce(&batch_end(session_id, "task-timeout", -2))
                        .await;
                    return;
                }
                _ => {
                    mode = "continue";
                    opts = Value::Map(vec![(Value::from("exec"), Value::from(""))]);
                }
            }
        }
    }
}

/// The event that ends a batch session: `session_success` for `task-done`, `session_failure`
/// for any other reason.
fn batch_end(session_id: Uuid, reason: &str, exit_code: i64) -> Event {
    let result = SessionResult {
        session_id,
        reason: reason.to_owned(),
        exit_code,
    };
    if reason == "task-done" {
        Event::SessionSuccess(result)
    } else {
        Event::SessionFailure(result)
    }
}

/// The shell command of a batch step: as given, or for `*` the kernel runner's heuristic
/// (`clean`: nothing; `build`: `make` when there is a Makefile; `exec`: Python's `main.py`, 127
/// when it is missing or for other languages). The Python runner's `pip install -e .` of a
/// `setup.py` is left out: it would install into this host's user site. `None`: skipped (0).
fn heuristic<'a>(step: &str, command: &'a str, language: Language) -> Option<&'a str> {
    match (step, command) {
        (_, "") | ("clean", "*") => None,
        ("build", "*") => Some("if [ -f Makefile ]; then exec make; fi"),
        ("exec", "*") => Some(match language {
            Language::Python => {
                "if [ -f main.py ]; then exec python3 main.py; fi; \
                 echo 'cannot find the main script (\"main.py\").' >&2; exit 127"
            }
            Language::Shell => "echo 'no execution heuristic for this image' >&2; exit 127",
        }),
        (_, command) => Some(command),
    }
}

/// The agent's error for an `execute` in a kernel it does not hold (any more).
fn kernel_not_found(kernel_id: Uuid) -> Answer {
    failure(
        "RuntimeError",
        &format!(
            "The container for kernel {kernel_id} is not found! (might be terminated--try it \
             again)"
        ),
    )
}

/// Sends `execution_cancelled` when an `execute` is dropped unfinished (its RPC call was
/// cancelled).
struct CancelGuard {
    producer: Option<(EventProducer, String, Uuid)>,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if let Some((producer, agent_id, session_id)) = self.producer.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                let event = Event::ExecutionCancelled { session_id };
                if let Err(error) = producer.produce(&event, &agent_id).await {
                    tracing::warn!("agent {agent_id}: sending execution_cancelled: {error}");
                }
            });
        }
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, Answer> + Send + 'static,
) -> Result<T, Answer> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|error| Err(failure("RuntimeError", &error.to_string())))
}

/// The kernel runner's answer map; `console` (API v2 and later) or `stdout`/`stderr`/`media`/
/// `html` (v1), and the agent's `files: []`.
fn result_map(
    run_id: &str,
    status: &str,
    exit_code: Option<i64>,
    options: Option<serde_json::Value>,
    console: Vec<(&'static str, String)>,
    api_version: i64,
) -> Value {
    let mut fields = vec![
        (Value::from("runId"), Value::from(run_id)),
        (Value::from("status"), Value::from(status)),
        (
            Value::from("exitCode"),
            exit_code.map_or(Value::Nil, Value::from),
        ),
        (
            Value::from("options"),
            options
                .as_ref()
                .map_or(Value::Nil, crate::methods::to_value),
        ),
    ];
    if api_version == 1 {
        let joined = |stream: &str| {
            console
                .iter()
                .filter(|(kind, _)| *kind == stream)
                .map(|(_, text)| text.as_str())
                .collect::<String>()
        };
        fields.push((Value::from("stdout"), Value::from(joined("stdout"))));
        fields.push((Value::from("stderr"), Value::from(joined("stderr"))));
        fields.push((Value::from("media"), Value::Array(Vec::new())));
        fields.push((Value::from("html"), Value::Array(Vec::new())));
    } else {
        fields.push((
            Value::from("console"),
            Value::Array(
                console
                    .into_iter()
                    .map(|(kind, text)| Value::Array(vec![Value::from(kind), Value::from(text)]))
                    .collect(),
            ),
        ));
    }
    fields.push((Value::from("files"), Value::Array(Vec::new())));
    Value::Map(fields)
}

fn field<'a>(map: &'a Value, name: &str) -> Option<&'a Value> {
    map.as_map()?
        .iter()
        .find(|(key, _)| key.as_str() == Some(name))
        .map(|(_, value)| value)
}

/// Python for images whose runtime type (`ai.backend.runtime-type` label) is `python`, or,
/// without the label, whose name says python; `sh` otherwise.
fn language_of(config: &Value) -> Language {
    let image = field(config, "image");
    let runtime_type = image
        .and_then(|image| field(image, "labels"))
        .and_then(|labels| field(labels, "ai.backend.runtime-type"))
        .and_then(Value::as_str);
    let python = match runtime_type {
        Some(runtime_type) => runtime_type == "python",
        None => image
            .and_then(|image| field(image, "canonical"))
            .and_then(Value::as_str)
            .is_some_and(|name| name.contains("python")),
    };
    if python {
        Language::Python
    } else {
        Language::Shell
    }
}

/// The kernel config's `environ` (texts only).
fn environ_of(config: &Value) -> Vec<(String, String)> {
    field(config, "environ")
        .and_then(Value::as_map)
        .map(|entries| {
            entries
                .iter()
                .filter_map(|(name, value)| {
                    Some((name.as_str()?.to_owned(), value.as_str()?.to_owned()))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The scratch folder (the container's `/home/work`) of a kernel of agent `agent_id`.
pub fn scratch_folder(options: &LocalRunnerOptions, agent_id: &str, kernel_id: Uuid) -> PathBuf {
    Path::new(&options.scratch_root)
        .join(agent_id)
        .join(kernel_id.to_string())
        .join("work")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_refused_unless_allowed() {
        let refused = check_root(0, false).expect_err("root is refused");
        assert!(refused.contains("--allow-root-runner"), "{refused}");
        assert!(check_root(0, true).is_ok());
        assert!(check_root(1000, false).is_ok());
    }

    #[test]
    fn python_images_run_python_and_others_sh() {
        let config = |labels: Vec<(Value, Value)>, canonical: &str| {
            Value::Map(vec![(
                Value::from("image"),
                Value::Map(vec![
                    (Value::from("canonical"), Value::from(canonical)),
                    (Value::from("labels"), Value::Map(labels)),
                ]),
            )])
        };
        let runtime =
            |kind: &str| vec![(Value::from("ai.backend.runtime-type"), Value::from(kind))];
        assert_eq!(
            language_of(&config(runtime("python"), "x/y:1")),
            Language::Python
        );
        assert_eq!(
            language_of(&config(runtime("app"), "x/python:1")),
            Language::Shell
        );
        assert_eq!(
            language_of(&config(vec![], "cr.backend.ai/testing/python:3.9")),
            Language::Python
        );
        assert_eq!(
            language_of(&config(vec![], "cr.backend.ai/testing/ubuntu:22.04")),
            Language::Shell
        );
    }
}
