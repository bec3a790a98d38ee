//! The progress bar of a long command (indicatif, on stderr, drawn only when stderr is a terminal)
//! and the writer of the log lines, which lifts the bar while a line is written so that a log line
//! and the bar never share a line.

use std::io::{self, IsTerminal, Write};
use std::sync::{Mutex, MutexGuard, PoisonError};

use indicatif::{ProgressBar, ProgressStyle};
use tracing_subscriber::fmt::MakeWriter;

/// The bar on the screen, for the log writer.
static SHOWN: Mutex<Option<ProgressBar>> = Mutex::new(None);

fn shown() -> MutexGuard<'static, Option<ProgressBar>> {
    // A panic while holding the lock cannot leave an `Option` half-written.
    SHOWN.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `[#####---------] 3/10 what was done last`, redrawn at most 20 times a second; hidden when
/// stderr is not a terminal, so that pipes and log files get no bar. It leaves the screen when
/// dropped.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    pub fn on_terminal() -> Progress {
        if !io::stderr().is_terminal() {
            return Progress {
                bar: ProgressBar::hidden(),
            };
        }
        let style = ProgressStyle::with_template("[{bar:30}] {pos}/{len} {wide_msg}")
            .expect("the template is valid")
            .progress_chars("#-");
        let bar = ProgressBar::new(0).with_style(style);
        *shown() = Some(bar.clone());
        Progress { bar }
    }

    /// `count` more items to do.
    pub fn add(&self, count: usize) {
        self.bar
            .inc_length(u64::try_from(count).unwrap_or(u64::MAX));
    }

    /// One item done, `label` naming it.
    pub fn done(&self, label: String) {
        self.bar.set_message(label);
        self.bar.inc(1);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
        shown().take();
    }
}

/// stderr for the log lines: while a bar is shown, each line is written with the bar lifted.
#[derive(Clone, Copy, Debug)]
pub struct LogWriter;

impl MakeWriter<'_> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&self) -> LogWriter {
        LogWriter
    }
}

impl Write for LogWriter {
    /// The formatter hands over one whole line per call, written at once.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // A bar with nothing to do yet has not been drawn, and `suspend` would draw it.
        let bar = shown()
            .clone()
            .filter(|bar| bar.length().is_some_and(|length| length > 0));
        match bar {
            Some(bar) => bar.suspend(|| io::stderr().write_all(buf))?,
            None => io::stderr().write_all(buf)?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}
