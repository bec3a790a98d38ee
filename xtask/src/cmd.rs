//! Running external programs, so that every failure says which command failed, how it exited
//! and what it printed last (or what its log file says last).

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::Read;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How many lines of output or log a failure message shows.
const TAIL_LINES: usize = 25;

/// Runs `command` to completion with its output captured and returns its stdout.
/// On failure the error holds the command line, its exit status and the tail of its output.
pub fn run(command: &mut Command) -> Result<String> {
    run_with_log(command, None)
}

/// Like [`run`], but a failure also shows the tail of `log`, a file the program writes to
/// (e.g. `pg_ctl -l`), which usually says more than the program's own output.
pub fn run_with_log(command: &mut Command, log: Option<&Path>) -> Result<String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|err| spawn_error(command, err))?;
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    let message = failure(command, output.status, &text);
    match log {
        Some(log) => bail!("{message}\n{}", log_tail(log)),
        None => bail!(message),
    }
}

/// Runs `command` with stdout and stderr appended to `log` (created if missing).
/// A failure shows the tail of the log.
pub fn run_logged(command: &mut Command, log: &Path) -> Result<()> {
    let (stdout, stderr) = log_files(log)?;
    let status = command
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .status()
        .map_err(|err| spawn_error(command, err))?;
    if status.success() {
        return Ok(());
    }
    bail!(
        "`{}` failed ({status})\n{}",
        display(command),
        log_tail(log)
    )
}

/// Runs `command` with the terminal as its stdin/stdout/stderr, for long tasks whose progress
/// the developer should see (cargo, apt-get). Their output is above the error message.
pub fn run_inherit(command: &mut Command) -> Result<()> {
    let status = command.status().map_err(|err| spawn_error(command, err))?;
    if status.success() {
        Ok(())
    } else {
        bail!(
            "`{}` failed ({status}); its output is above",
            display(command)
        )
    }
}

/// Runs a short check command with a deadline (a probe must never hang `up` or `status`) and
/// returns its stdout when it succeeds. A check whose failure is an answer, not an error: a program
/// that cannot be started, fails, or runs past `timeout` gives `None`.
pub fn probe(command: &mut Command, timeout: Duration) -> Option<String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    // Read on a thread, so a chatty program cannot block on a full pipe while we wait.
    let stdout = read_on_thread(child.stdout.take().expect("stdout is piped"));
    let deadline = Instant::now() + timeout;
    let success = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.success(),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break false;
            }
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    success.then_some(stdout)
}

/// The command line as a developer would type it, for messages.
pub fn display(command: &Command) -> String {
    let mut line = String::new();
    for (key, value) in command.get_envs() {
        if let Some(value) = value {
            let _ = write!(
                line,
                "{}={} ",
                key.to_string_lossy(),
                shell_quote(&value.to_string_lossy())
            );
        }
    }
    line.push_str(&shell_quote(&command.get_program().to_string_lossy()));
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&shell_quote(&arg.to_string_lossy()));
    }
    line
}

/// Quotes `word` for a POSIX shell (and for hyperfine, which splits command lines the same way).
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// `last lines of LOG:` and those lines indented, for failure messages.
pub fn log_tail(log: &Path) -> String {
    let lines = match std::fs::read(log) {
        Ok(bytes) => tail(&String::from_utf8_lossy(&bytes)),
        Err(err) => format!("    (cannot read it: {err})"),
    };
    format!("last lines of {}:\n{lines}", log.display())
}

/// The last [`TAIL_LINES`] lines of `text`, indented.
fn tail(text: &str) -> String {
    let lines: Vec<String> = text
        .trim_end()
        .lines()
        .map(|line| format!("    {line}"))
        .collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n")
}

fn failure(command: &Command, status: ExitStatus, output: &str) -> String {
    let output = tail(output);
    if output.is_empty() {
        format!(
            "`{}` failed ({status}) and printed nothing",
            display(command)
        )
    } else {
        format!(
            "`{}` failed ({status}); last lines of its output:\n{output}",
            display(command),
        )
    }
}

fn spawn_error(command: &Command, err: std::io::Error) -> anyhow::Error {
    let program = command.get_program().to_string_lossy();
    if err.kind() == std::io::ErrorKind::NotFound {
        anyhow::anyhow!(
            "cannot run `{}`: `{program}` was not found",
            display(command)
        )
    } else {
        anyhow::anyhow!("cannot run `{}`: {err}", display(command))
    }
}

fn read_on_thread<R: Read + Send + 'static>(mut reader: R) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = reader.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Opens `log` for appending, twice (stdout and stderr), creating its folder if needed.
pub fn log_files(log: &Path) -> Result<(std::fs::File, std::fs::File)> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create log folder {}", dir.display()))?;
    }
    let open = || {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("cannot open log file {}", log.display()))
    };
    Ok((open()?, open()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_needs_quoting() {
        assert_eq!(shell_quote("/tmp/a-b_c.d"), "/tmp/a-b_c.d");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn failure_names_command_status_and_output() {
        let err = run(Command::new("sh").args(["-c", "echo one; echo two >&2; exit 3"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("`sh -c 'echo one; echo two >&2; exit 3'` failed (exit status: 3)")
        );
        assert!(err.contains("    one\n    two"), "{err}");
    }

    #[test]
    fn probe_times_out() {
        let started = Instant::now();
        let probe = probe(Command::new("sleep").arg("5"), Duration::from_millis(100));
        assert!(probe.is_none());
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
