//! One run of the local code runner: the child processes of a query or a batch, their output as
//! the kernel runner's records (`stdout`, `stderr`, `waiting-input`, `clean-finished`,
//! `build-finished`, `finished` with an exit code), and the collection of those records into one
//! `execute` answer within a flush timeout.
//!
//! Output is bounded: at most [`OUTPUT_CAP`] bytes wait uncollected per run; past that the pump
//! stops reading the child's pipes, so a child writing faster than its client collects blocks on
//! its own writes instead of growing the agent. It must not drop output.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The most output bytes a run holds uncollected, and the most one answer carries.
pub const OUTPUT_CAP: usize = 1 << 20;

/// How much one read of a child's pipe takes.
const READ_CHUNK: usize = 64 << 10;

/// How long the pipes may stay open after the child exited (a grandchild still holding them).
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// How long an interrupted run has to stop on SIGINT before it is killed: long enough for a
/// Python child on a busy machine to print its `KeyboardInterrupt` traceback.
pub const INTERRUPT_GRACE: Duration = Duration::from_secs(3);

/// Which end-of-step record a step emits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Clean,
    Build,
    Exec,
}

impl Phase {
    pub fn status(self) -> &'static str {
        match self {
            Phase::Clean => "clean-finished",
            Phase::Build => "build-finished",
            Phase::Exec => "finished",
        }
    }
}

/// One record of a run's output, as the kernel runner sends them to the agent.
#[derive(Debug)]
pub enum Record {
    Stdout(String),
    Stderr(String),
    /// The child waits for a line on its stdin; the options (`{"is_password": false}`).
    WaitingInput(serde_json::Value),
    Finished(Phase, i64),
}

impl Record {
    fn size(&self) -> usize {
        match self {
            Record::Stdout(text) | Record::Stderr(text) => text.len(),
            Record::WaitingInput(_) | Record::Finished(..) => 0,
        }
    }
}

/// A command of a run, with what its end emits.
pub struct Step {
    pub phase: Phase,
    /// `None`: the step is skipped (an empty `clean`/`build`/`exec`), its end record says 0.
    pub command: Option<Command>,
    /// The FIFO a Python query's `input()` announces itself on.
    pub input_fifo: Option<PathBuf>,
    /// Whether the child's stdin is a pipe `input` mode writes to (queries), or /dev/null.
    pub stdin: bool,
}

#[derive(Default)]
struct Buffer {
    records: VecDeque<Record>,
    bytes: usize,
}

/// What the pump, the `execute` calls, `interrupt_kernel` and `destroy_kernel` share of a run.
pub struct Run {
    pub run_id: String,
    buffer: Mutex<Buffer>,
    /// Records arrived (pump → collector).
    arrived: Notify,
    /// Records were collected, there is room again (collector → pump).
    drained: Notify,
    /// The process group of the step running now.
    group: Mutex<Option<Pid>>,
    stdin: tokio::sync::Mutex<Option<ChildStdin>>,
    /// Kills the run: its process group, and the steps not started yet.
    pub stop: CancellationToken,
    /// Serialises the `execute` calls collecting from this run.
    pub collecting: tokio::sync::Mutex<()>,
}

/// What one collection gives.
pub struct Collected {
    /// `continued`, `waiting-input`, `clean-finished`, `build-finished` or `finished`.
    pub status: &'static str,
    pub exit_code: Option<i64>,
    pub options: Option<serde_json::Value>,
    /// `("stdout" | "stderr", text)`, consecutive texts of one stream joined.
    pub console: Vec<(&'static str, String)>,
}

impl Run {
    pub fn new(run_id: String) -> Run {
        Run {
            run_id,
            buffer: Mutex::default(),
            arrived: Notify::new(),
            drained: Notify::new(),
            group: Mutex::new(None),
            stdin: tokio::sync::Mutex::new(None),
            stop: CancellationToken::new(),
            collecting: tokio::sync::Mutex::new(()),
        }
    }

    fn buffer(&self) -> std::sync::MutexGuard<'_, Buffer> {
        self.buffer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn push(&self, record: Record) {
        let mut buffer = self.buffer();
        buffer.bytes += record.size();
        // Joined as the kernel runner's console aggregation joins them.
        match (buffer.records.back_mut(), record) {
            (Some(Record::Stdout(last)), Record::Stdout(text))
            | (Some(Record::Stderr(last)), Record::Stderr(text)) => last.push_str(&text),
            (_, record) => buffer.records.push_back(record),
        }
        drop(buffer);
        self.arrived.notify_one();
    }

    /// Waits until fewer than [`OUTPUT_CAP`] bytes wait uncollected (false: the run was stopped).
    async fn room(&self) -> bool {
        loop {
            if self.buffer().bytes < OUTPUT_CAP {
                return true;
            }
            tokio::select! {
                () = self.stop.cancelled() => return false,
                () = self.drained.notified() => {}
            }
        }
    }

    /// Sends `signal` to the process group of the running step, if any.
    pub fn signal(&self, signal: Signal) {
        let group = *self
            .group
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(group) = group
            && let Err(error) = killpg(group, signal)
        {
            tracing::debug!("signalling process group {group}: {error}");
        }
    }

    /// The process group of the running step.
    pub fn group(&self) -> Option<Pid> {
        *self
            .group
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Writes `text` and a newline to the child's stdin (`input` mode); a child that does not
    /// read it (or is gone) is no error, as the kernel runner's input queue.
    pub async fn feed_input(&self, text: &str) {
        let mut stdin = self.stdin.lock().await;
        if let Some(pipe) = stdin.as_mut() {
            let line = format!("{text}\n");
            if pipe.write_all(line.as_bytes()).await.is_err() || pipe.flush().await.is_err() {
                *stdin = None;
            }
        }
    }

    /// Collects the records that arrive within `flush_timeout` (without one: until an end), as
    /// the kernel runner's `get_next_result`: an end record (`finished`, `clean-finished`,
    /// `build-finished`, `waiting-input`) answers at once; else `continued` at the timeout, or
    /// as soon as [`OUTPUT_CAP`] bytes were collected.
    pub async fn collect(&self, flush_timeout: Option<Duration>) -> Collected {
        let deadline = flush_timeout.map(|timeout| Instant::now() + timeout);
        let mut console: Vec<(&'static str, String)> = Vec::new();
        let mut size = 0;
        loop {
            let mut end = None;
            {
                let mut buffer = self.buffer();
                while size < OUTPUT_CAP {
                    let Some(mut record) = buffer.records.pop_front() else {
                        break;
                    };
                    // Only what fits this answer; the rest stays for the next.
                    if let Record::Stdout(text) | Record::Stderr(text) = &mut record
                        && size + text.len() > OUTPUT_CAP
                    {
                        let mut cut = OUTPUT_CAP - size;
                        while !text.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        let rest = text.split_off(cut);
                        let rest = match record {
                            Record::Stdout(_) => Record::Stdout(rest),
                            _ => Record::Stderr(rest),
                        };
                        buffer.records.push_front(rest);
                    }
                    buffer.bytes -= record.size();
                    let (stream, text) = match record {
                        Record::Stdout(text) => ("stdout", text),
                        Record::Stderr(text) => ("stderr", text),
                        Record::WaitingInput(options) => {
                            end = Some(Collected {
                                status: "waiting-input",
                                exit_code: None,
                                options: Some(options),
                                console: Vec::new(),
                            });
                            break;
                        }
                        Record::Finished(phase, code) => {
                            end = Some(Collected {
                                status: phase.status(),
                                exit_code: Some(code),
                                options: None,
                                console: Vec::new(),
                            });
                            break;
                        }
                    };
                    size += text.len();
                    match console.last_mut() {
                        Some((last, joined)) if *last == stream => joined.push_str(&text),
                        _ => console.push((stream, text)),
                    }
                }
            }
            self.drained.notify_one();
            if let Some(mut end) = end {
                end.console = console;
                return end;
            }
            if size >= OUTPUT_CAP {
                break;
            }
            match deadline {
                Some(deadline) => tokio::select! {
                    () = self.arrived.notified() => {}
                    () = tokio::time::sleep_until(deadline) => break,
                },
                None => self.arrived.notified().await,
            }
        }
        Collected {
            status: "continued",
            exit_code: None,
            options: None,
            console,
        }
    }

    /// Runs `steps` one after another, as the kernel runner runs `clean`, `build` and `exec`: an
    /// exec after a failed build is skipped with 127. A stopped run kills its step and ends with
    /// the step's end record (its status after the kill).
    pub async fn pump(&self, steps: Vec<Step>, workdir: PathBuf, environ: Vec<(String, String)>) {
        let mut build_failed = false;
        for step in steps {
            let code = match step.command {
                _ if self.stop.is_cancelled() => -9,
                _ if step.phase == Phase::Exec && build_failed => 127,
                None => 0,
                Some(mut command) => {
                    command
                        .current_dir(&workdir)
                        .envs(environ.iter().map(|(name, value)| (name, value)))
                        .stdin(if step.stdin {
                            Stdio::piped()
                        } else {
                            Stdio::null()
                        })
                        .stdout(Stdio::piped())
                        .stderr(Stdio::piped())
                        .process_group(0)
                        .kill_on_drop(true);
                    self.run_step(command, step.input_fifo).await
                }
            };
            if step.phase == Phase::Build {
                build_failed = code != 0;
            }
            self.push(Record::Finished(step.phase, code));
        }
    }

    async fn run_step(&self, mut command: Command, input_fifo: Option<PathBuf>) -> i64 {
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) => {
                // The kernel runner reports a step it could not run as -1.
                self.push(Record::Stderr(format!(
                    "cannot start the command: {error}\n"
                )));
                return -1;
            }
        };
        let group = child
            .id()
            .and_then(|pid| i32::try_from(pid).ok())
            .map(Pid::from_raw);
        *self
            .group
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = group;
        *self.stdin.lock().await = child.stdin.take();
        let code = self.watch(&mut child, input_fifo).await;
        *self
            .group
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
        *self.stdin.lock().await = None;
        code
    }

    /// Reads the child's output until it exited and its pipes closed.
    async fn watch(&self, child: &mut Child, input_fifo: Option<PathBuf>) -> i64 {
        let mut stdout = child.stdout.take().map(Pipe::new);
        let mut stderr = child.stderr.take().map(Pipe::new);
        let mut control = match input_fifo {
            Some(path) => match tokio::net::unix::pipe::OpenOptions::new()
                // Read-write: the FIFO never reads as closed between two `input()` calls.
                .read_write(true)
                .open_receiver(&path)
            {
                Ok(receiver) => Some(BufReader::new(receiver)),
                Err(error) => {
                    tracing::warn!("opening {}: {error}", path.display());
                    None
                }
            },
            None => None,
        };
        let mut control_line = String::new();
        let mut status = None;
        let mut pipes_deadline = None;
        loop {
            let open = stdout.is_some() || stderr.is_some();
            if status.is_some() && !open {
                break;
            }
            if !self.room().await {
                self.signal(Signal::SIGKILL);
                return exit_code(child.wait().await.ok());
            }
            let grace = async {
                match pipes_deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            // Biased: output written before an `input()` announcement is read before it.
            tokio::select! {
                biased;
                () = self.stop.cancelled() => {
                    self.signal(Signal::SIGKILL);
                    return exit_code(child.wait().await.ok());
                }
                chunk = read(&mut stdout) => {
                    if let Some(text) = chunk {
                        self.push(Record::Stdout(text));
                    }
                }
                chunk = read(&mut stderr) => {
                    if let Some(text) = chunk {
                        self.push(Record::Stderr(text));
                    }
                }
                line = read_line(&mut control, &mut control_line) => {
                    if line {
                        self.drain_stdout(&mut stdout).await;
                        let options = serde_json::from_str(control_line.trim())
                            .unwrap_or_else(|_| serde_json::json!({"is_password": false}));
                        control_line.clear();
                        self.push(Record::WaitingInput(options));
                    }
                }
                exited = child.wait(), if status.is_none() => {
                    status = Some(exit_code(exited.ok()));
                    pipes_deadline = Some(Instant::now() + PIPE_GRACE);
                }
                () = grace => break,
            }
        }
        status.unwrap_or(-1)
    }

    /// Reads what stdout holds right now (a prompt written just before an `input()`).
    async fn drain_stdout(&self, stdout: &mut Option<Pipe>) {
        while let Ok(Some(text)) =
            tokio::time::timeout(Duration::from_millis(10), read(stdout)).await
        {
            self.push(Record::Stdout(text));
        }
    }
}

/// The exit code as Python's subprocess gives it: the status, or minus the killing signal.
fn exit_code(status: Option<std::process::ExitStatus>) -> i64 {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Some(status) => match (status.code(), status.signal()) {
            (Some(code), _) => i64::from(code),
            (None, Some(signal)) => -i64::from(signal),
            (None, None) => -1,
        },
        None => -1,
    }
}

/// A child's output pipe with its UTF-8 decoder.
struct Pipe {
    reader: Box<dyn AsyncRead + Unpin + Send>,
    decoder: Utf8Decoder,
    chunk: Vec<u8>,
}

impl Pipe {
    fn new(reader: impl AsyncRead + Unpin + Send + 'static) -> Pipe {
        Pipe {
            reader: Box::new(reader),
            decoder: Utf8Decoder::default(),
            chunk: vec![0; READ_CHUNK],
        }
    }
}

/// The next text of `pipe` (`None` when nothing decodable arrived); the pipe becomes `None` at
/// its end. A closed pipe never resolves.
async fn read(pipe: &mut Option<Pipe>) -> Option<String> {
    let Some(open) = pipe.as_mut() else {
        return std::future::pending().await;
    };
    match open.reader.read(&mut open.chunk).await {
        Ok(0) | Err(_) => {
            let rest = open.decoder.finish();
            *pipe = None;
            (!rest.is_empty()).then_some(rest)
        }
        Ok(count) => {
            let text = open.decoder.decode(&open.chunk[..count]);
            (!text.is_empty()).then_some(text)
        }
    }
}

/// Reads one line of the control FIFO into `line`; true when a whole line is there.
async fn read_line(
    control: &mut Option<BufReader<tokio::net::unix::pipe::Receiver>>,
    line: &mut String,
) -> bool {
    let Some(reader) = control.as_mut() else {
        return std::future::pending().await;
    };
    match reader.read_line(line).await {
        Ok(0) | Err(_) => {
            *control = None;
            false
        }
        Ok(_) => line.ends_with('\n'),
    }
}

/// An incremental UTF-8 decoder replacing invalid sequences (the kernel runner's
/// `getincrementaldecoder("utf8")(errors="replace")`): a character split between two reads is
/// kept until its rest arrives.
#[derive(Default)]
pub struct Utf8Decoder {
    pending: Vec<u8>,
}

impl Utf8Decoder {
    pub fn decode(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut text = String::new();
        let mut rest: &[u8] = &self.pending;
        loop {
            match std::str::from_utf8(rest) {
                Ok(valid) => {
                    text.push_str(valid);
                    rest = &[];
                    break;
                }
                Err(error) => {
                    let (valid, after) = rest.split_at(error.valid_up_to());
                    text.push_str(std::str::from_utf8(valid).unwrap_or_default());
                    match error.error_len() {
                        Some(bad) => {
                            text.push(char::REPLACEMENT_CHARACTER);
                            rest = &after[bad..];
                        }
                        None => {
                            rest = after;
                            break;
                        }
                    }
                }
            }
        }
        self.pending = rest.to_vec();
        text
    }

    /// What is left at the end: an incomplete character becomes one replacement character.
    pub fn finish(&mut self) -> String {
        if self.pending.is_empty() {
            String::new()
        } else {
            self.pending.clear();
            char::REPLACEMENT_CHARACTER.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_split_between_reads_are_joined_and_invalid_bytes_replaced() {
        let mut decoder = Utf8Decoder::default();
        let snowman = "☃".as_bytes();
        assert_eq!(decoder.decode(&[b'a', snowman[0]]), "a");
        assert_eq!(decoder.decode(&snowman[1..]), "☃");
        assert_eq!(decoder.decode(&[b'x', 0xff, b'y']), "x\u{fffd}y");
        assert_eq!(decoder.decode(&snowman[..2]), "");
        assert_eq!(decoder.finish(), "\u{fffd}");
        assert_eq!(decoder.finish(), "");
    }
}
