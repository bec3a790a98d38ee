//! The log lines a test's own code emits, captured so that the test can assert on what was logged
//! (a warning given once, a key named but never its value).

use std::io::Write;
use std::sync::{Arc, Mutex};

use tracing::subscriber::DefaultGuard;

/// The formatted log lines of the current thread that pass the filter, for as long as this lives.
/// Tasks log into it only when they run on this thread: use a current-thread runtime.
#[derive(Debug)]
pub struct CapturedLogs {
    buffer: LogBuffer,
    _logging: DefaultGuard,
}

impl CapturedLogs {
    /// Starts capturing the events that pass `filter` (an `EnvFilter` directive such as
    /// `bai_agents=warn`), without ANSI colours.
    pub fn start(filter: &str) -> CapturedLogs {
        let buffer = LogBuffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_env_filter(filter)
            .finish();
        CapturedLogs {
            buffer,
            _logging: tracing::subscriber::set_default(subscriber),
        }
    }

    /// Everything logged so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.0.lock().expect("the log buffer")).into_owned()
    }
}

/// An `io::Write` into a shared buffer.
#[derive(Clone, Debug, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .expect("the log buffer")
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
