//! The manager's process runtime: everything between `main` and a request handler. It writes and
//! removes the pid file (refusing to start while another live process holds it), binds `num-proc`
//! listeners on `service-addr` with `SO_REUSEPORT`, loads the TLS certificate and key (rustls),
//! drops root privileges to `[manager] user`/`group`, runs one worker thread per listener (each with
//! its own current-thread tokio runtime and its own application state), turns SIGTERM and SIGINT
//! into a graceful shutdown bounded to fit systemd's 5 s stop timeout, and sets up logging from
//! `[logging]` (console and size-rotated file, per-package levels).
//!
//! Beside HTTP it runs the app's long-lived background tasks: [`App::start`] spawns them on its
//! worker's runtime through [`Tasks`] (on worker 0 for once-per-node work, on every worker for
//! once-per-worker work), each holding a shutdown token (tokio-util's `CancellationToken`) that
//! SIGTERM cancels at once. The runtime waits for them within [`ShutdownBudget::tasks`] while the
//! connections drain, aborts the rest, and reports a task that dies as an ERROR line, stopping
//! the process when the task is [`Criticality::Essential`].
//!
//! It serves any `tower::Service` over HTTP/1.1 and HTTP/2 through an [`App`] the binary supplies.
//! It must not know routes, SQL, etcd keys or Redis (those belong to `bai-api` and the store crates),
//! must not read the environment or manager.toml (it is handed `bai-config` values), and must never
//! log a secret: it logs paths, addresses and error messages, never configuration values wholesale.

mod activity;
pub mod limits;
mod listener;
pub mod logging;
mod pidfile;
mod privileges;
mod runtime;
mod serve;
mod tasks;
mod tls;

pub use limits::ConnectionLimits;
pub use listener::{BindError, bind_listeners, resolve};
pub use logging::LoggingError;
pub use pidfile::{PidFile, PidFileError};
pub use privileges::{PrivilegeError, drop_privileges};
pub use runtime::{App, ServerError, ServerOptions, ShutdownBudget, run};
pub use serve::serve;
pub use tasks::{Criticality, TaskFailure, Tasks};
pub use tls::{TlsError, TlsFiles, load_tls_config};

/// One line with an error and the causes its message does not already contain (many errors put
/// their source into their own message; repeating it would make the line unreadable).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::error_chain;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Embeds(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Wraps(#[source] std::io::Error);

    #[test]
    fn causes_appear_once() {
        let io = || std::io::Error::other("connection refused");
        assert_eq!(error_chain(&Embeds(io())), "outer: connection refused");
        assert_eq!(error_chain(&Wraps(io())), "outer: connection refused");
    }
}
