//! Logging from `[logging]`, shaped like the reference's: the console driver writes to stderr in
//! its `verbose` line format (`2026-11-28 04:40:00.123 INFO bai_api [12345] message`, coloured
//! like coloredlogs when asked) or `simple` (`INFO message`); the file driver writes one JSON
//! object per line (`timestamp`, `level`, `name`, `processName`, `message`, then the event's other
//! fields) to `{path}/{filename}`, rotated by size into `{filename}.1` .. `{filename}.{backup-count}`.
//!
//! Levels follow Python's logging: a record is written when its level reaches both `level` and the
//! level of the most specific `pkg-ns` entry for its logger (`""` for all others). `pkg-ns` keys
//! name Python packages in the reference; here `ai.backend` means this project's crates, `aiohttp`
//! the HTTP stack (hyper, h2, axum, tower-http), `sqlalchemy` the database stack (sqlx, sea-orm),
//! and any other key is used as a Rust target prefix as it is (`sqlx`, `bai_api::auth`).

use std::fmt::{self, Write as _};
use std::fs;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;

use bai_config::{ConsoleLogFormat, FileLogConfig, LogDriver, LogLevel, LoggingConfig};
use file_rotate::compression::Compression;
use file_rotate::suffix::AppendCount;
use file_rotate::{ContentLimit, FileRotate};
use nu_ansi_term::{Color, Style};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// Why logging could not be set up as configured.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error(
        "[logging] drivers: the {0} driver is not supported by this server (use \"console\" and/or \"file\")"
    )]
    UnsupportedDriver(&'static str),
    #[error("[logging.file] path {path}: cannot create the log directory: {source}")]
    Directory {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("[logging.file] cannot open the log file {path}: {source}")]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("a logger is already installed in this process")]
    AlreadyInstalled,
}

/// Our crates, what the reference's `ai.backend` package names.
const OUR_TARGETS: [&str; 3] = ["bai_", "manager_server", "manager_cli"];
/// The HTTP stack, what `aiohttp` names in the reference.
const HTTP_TARGETS: [&str; 6] = ["hyper", "hyper_util", "h2", "axum", "tower_http", "rustls"];
/// The database stack, what `sqlalchemy` names in the reference.
const DB_TARGETS: [&str; 2] = ["sqlx", "sea_orm"];

/// Installs the process-wide logger (and the bridge for crates that log through `log`).
pub fn init(config: &LoggingConfig) -> Result<(), LoggingError> {
    let terminal = std::io::stderr().is_terminal();
    build(config, std::io::stderr, terminal)?
        .try_init()
        .map_err(|_| LoggingError::AlreadyInstalled)
}

/// The subscriber `init` installs, with the console writing to `console`.
fn build<W>(
    config: &LoggingConfig,
    console: W,
    terminal: bool,
) -> Result<impl Subscriber + Send + Sync + 'static, LoggingError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    for driver in &config.drivers {
        match driver {
            LogDriver::Console | LogDriver::File => {}
            LogDriver::Logstash => return Err(LoggingError::UnsupportedDriver("logstash")),
            LogDriver::Graylog => return Err(LoggingError::UnsupportedDriver("graylog")),
        }
    }
    let pid = std::process::id();
    let console_layer = config.drivers.contains(&LogDriver::Console).then(|| {
        let format = ConsoleFormat {
            verbose: config.console.format == ConsoleLogFormat::Verbose,
            colored: config.console.colored.unwrap_or(true) && terminal,
            pid,
        };
        tracing_subscriber::fmt::layer()
            .with_writer(console)
            .with_ansi(false)
            .event_format(format)
    });
    let file_layer = match (config.drivers.contains(&LogDriver::File), &config.file) {
        (true, Some(file)) => Some(
            tracing_subscriber::fmt::layer()
                .with_writer(Mutex::new(open_rotating(file)?))
                .with_ansi(false)
                .event_format(JsonLines),
        ),
        _ => None,
    };
    Ok(tracing_subscriber::registry()
        .with(console_layer.map(|layer| layer.with_filter(targets(config))))
        .with(file_layer.map(|layer| layer.with_filter(targets(config)))))
}

/// The per-target levels of a configuration (see the module documentation).
pub fn targets(config: &LoggingConfig) -> Targets {
    let global = level_filter(config.level);
    let root = match config.pkg_ns.get("") {
        Some(LogLevel::Notset) | None => global,
        Some(level) => level_filter(*level).min(global),
    };
    let mut targets = Targets::new().with_default(root);
    for (key, level) in &config.pkg_ns {
        if key.is_empty() {
            continue;
        }
        let level = match level {
            LogLevel::Notset => root,
            level => level_filter(*level).min(global),
        };
        for target in rust_targets(key) {
            targets = targets.with_target(target, level);
        }
    }
    targets
}

/// The Rust target prefixes a `pkg-ns` key stands for.
fn rust_targets(key: &str) -> Vec<String> {
    let named: &[&str] = if key == "ai.backend" || key.starts_with("ai.backend.") {
        &OUR_TARGETS
    } else if key == "aiohttp" || key.starts_with("aiohttp.") {
        &HTTP_TARGETS
    } else if key == "sqlalchemy" || key.starts_with("sqlalchemy.") {
        &DB_TARGETS
    } else {
        return vec![key.to_owned()];
    };
    named.iter().map(|target| (*target).to_owned()).collect()
}

/// Python's level as the most verbose tracing level it lets through. Rust has no CRITICAL: it
/// lets errors through, the closest there is.
fn level_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Notset => LevelFilter::TRACE,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warning => LevelFilter::WARN,
        LogLevel::Error | LogLevel::Critical => LevelFilter::ERROR,
    }
}

/// Python's name for a level.
fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARNING",
        Level::INFO => "INFO",
        Level::DEBUG => "DEBUG",
        Level::TRACE => "TRACE",
    }
}

fn open_rotating(file: &FileLogConfig) -> Result<FileRotate<AppendCount>, LoggingError> {
    fs::create_dir_all(&file.path).map_err(|source| LoggingError::Directory {
        path: file.path.clone(),
        source,
    })?;
    let path = file.path.join(&file.filename);
    // file-rotate drops records silently when it cannot open the file: find out now.
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|source| LoggingError::File {
            path: path.clone(),
            source,
        })?;
    let limit = match usize::try_from(file.rotation_size.bytes()) {
        // Python's RotatingFileHandler: a size of 0 never rotates.
        Ok(0) => ContentLimit::None,
        Ok(bytes) => ContentLimit::BytesSurpassed(bytes),
        Err(_) => ContentLimit::None,
    };
    let backups = usize::try_from(file.backup_count.max(1)).unwrap_or(1);
    Ok(FileRotate::new(
        &path,
        AppendCount::new(backups),
        limit,
        Compression::None,
        None,
    ))
}

/// The console line: `verbose` is the reference's `%(asctime)s %(levelname)s %(name)s
/// [%(process)d] %(message)s`, `simple` its `%(levelname)s %(message)s`.
struct ConsoleFormat {
    verbose: bool,
    colored: bool,
    pid: u32,
}

/// coloredlogs' styles in the reference's configuration.
struct Palette {
    time: Style,
    level: Style,
    name: Style,
    process: Style,
}

impl Palette {
    fn new(colored: bool) -> Palette {
        if !colored {
            return Palette {
                time: Style::new(),
                level: Style::new(),
                name: Style::new(),
                process: Style::new(),
            };
        }
        Palette {
            time: Color::Fixed(240).normal(),
            level: Color::Fixed(248).bold(),
            name: Color::Fixed(246).normal(),
            process: Color::Cyan.normal(),
        }
    }

    fn message(colored: bool, level: Level) -> Style {
        if !colored {
            return Style::new();
        }
        match level {
            Level::ERROR => Color::LightRed.normal(),
            Level::WARN => Color::Yellow.normal(),
            Level::INFO => Color::LightCyan.normal(),
            Level::DEBUG | Level::TRACE => Color::Green.normal(),
        }
    }
}

impl<S, N> FormatEvent<S, N> for ConsoleFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let palette = Palette::new(self.colored);
        let level = level_name(*meta.level());
        if self.verbose {
            let now = chrono::Local::now().format("%Y-%m-%d %H:%M:%S%.3f");
            write!(
                writer,
                "{} {} {} {} ",
                palette.time.paint(now.to_string()),
                palette.level.paint(level),
                palette.name.paint(meta.target()),
                palette.process.paint(format!("[{}]", self.pid)),
            )?;
        } else {
            write!(writer, "{} ", palette.level.paint(level))?;
        }
        let message = Palette::message(self.colored, *meta.level());
        write!(writer, "{}", message.prefix())?;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                writer.write_str(span.name())?;
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    write!(writer, "{{{fields}}}")?;
                }
                writer.write_str(": ")?;
            }
        }
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        write!(writer, "{}", message.suffix())?;
        writeln!(writer)
    }
}

/// The file line: the reference's JSON object (python-json-logger, `%(timestamp) %(level)
/// %(name) %(processName) %(message)`), keys in that order, UTC timestamps with microseconds.
struct JsonLines;

/// Keys every line has; event fields of the same name are written as `field.NAME`.
const JSON_KEYS: [&str; 6] = [
    "timestamp",
    "level",
    "name",
    "processName",
    "message",
    "spans",
];

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = JsonFields::default();
        event.record(&mut fields);
        let thread = std::thread::current();
        let mut line = JsonObject::default();
        line.string(
            "timestamp",
            &chrono::Utc::now()
                .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                .to_string(),
        );
        line.string("level", level_name(*meta.level()));
        line.string("name", meta.target());
        line.string("processName", thread.name().unwrap_or("main"));
        line.string("message", fields.message.as_deref().unwrap_or(""));
        if let Some(scope) = ctx.event_scope() {
            let mut spans = String::new();
            for span in scope.from_root() {
                if !spans.is_empty() {
                    spans.push(':');
                }
                spans.push_str(span.name());
                let extensions = span.extensions();
                if let Some(formatted) = extensions.get::<FormattedFields<N>>()
                    && !formatted.is_empty()
                {
                    let _ = write!(spans, "{{{formatted}}}");
                }
            }
            line.string("spans", &spans);
        }
        for (name, value) in fields.others {
            if JSON_KEYS.contains(&name.as_str()) {
                line.value(&format!("field.{name}"), &value);
            } else {
                line.value(&name, &value);
            }
        }
        writeln!(writer, "{}", line.finish())
    }
}

/// A JSON object written key by key, with Python's `json.dumps` separators (`", "`, `": "`).
#[derive(Default)]
struct JsonObject {
    text: String,
}

impl JsonObject {
    fn string(&mut self, key: &str, value: &str) {
        self.value(key, &serde_json::Value::String(value.to_owned()));
    }

    fn value(&mut self, key: &str, value: &serde_json::Value) {
        self.text
            .push_str(if self.text.is_empty() { "{" } else { ", " });
        self.text
            .push_str(&serde_json::Value::from(key).to_string());
        self.text.push_str(": ");
        self.text.push_str(&value.to_string());
    }

    fn finish(mut self) -> String {
        if self.text.is_empty() {
            self.text.push('{');
        }
        self.text.push('}');
        self.text
    }
}

/// An event's fields as JSON values.
#[derive(Default)]
struct JsonFields {
    message: Option<String>,
    others: Vec<(String, serde_json::Value)>,
}

impl JsonFields {
    fn put(&mut self, field: &Field, value: serde_json::Value) {
        if field.name() == "message" {
            self.message = Some(match value {
                serde_json::Value::String(text) => text,
                other => other.to_string(),
            });
        } else {
            self.others.push((field.name().to_owned(), value));
        }
    }
}

impl Visit for JsonFields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.put(field, format!("{value:?}").into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.put(field, crate::error_chain(value).into());
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use bai_config::{BinarySize, ConsoleLogConfig};

    use super::*;

    /// Collects what the console layer writes.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("capture").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Capture {
        type Writer = Capture;

        fn make_writer(&'a self) -> Capture {
            self.clone()
        }
    }

    impl Capture {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().expect("capture").clone()).expect("utf-8")
        }
    }

    fn config(level: LogLevel, pkg_ns: &[(&str, LogLevel)]) -> LoggingConfig {
        LoggingConfig {
            level,
            pkg_ns: pkg_ns
                .iter()
                .map(|(key, level)| ((*key).to_owned(), *level))
                .collect::<BTreeMap<_, _>>(),
            ..LoggingConfig::default()
        }
    }

    fn log_with(config: &LoggingConfig, terminal: bool, emit: impl FnOnce()) -> String {
        let capture = Capture::default();
        let subscriber = build(config, capture.clone(), terminal).expect("build");
        tracing::subscriber::with_default(subscriber, emit);
        capture.text()
    }

    #[test]
    fn levels_are_the_stricter_of_level_and_the_nearest_pkg_ns_entry() {
        let targets = targets(&config(
            LogLevel::Info,
            &[
                ("", LogLevel::Warning),
                ("ai.backend", LogLevel::Debug),
                ("aiohttp", LogLevel::Error),
                ("sqlx", LogLevel::Notset),
                ("bai_api::auth", LogLevel::Critical),
            ],
        ));
        // The most verbose level the filter lets through for a target.
        let level = |target: &str| {
            [
                Level::TRACE,
                Level::DEBUG,
                Level::INFO,
                Level::WARN,
                Level::ERROR,
            ]
            .into_iter()
            .find(|level| targets.would_enable(target, level))
            .map(LevelFilter::from_level)
        };
        // DEBUG for our crates, capped by the global INFO.
        assert_eq!(level("bai_api::routes"), Some(LevelFilter::INFO));
        assert_eq!(level("manager_server"), Some(LevelFilter::INFO));
        // The more specific entry wins.
        assert_eq!(level("bai_api::auth::signature"), Some(LevelFilter::ERROR));
        assert_eq!(level("hyper::proto"), Some(LevelFilter::ERROR));
        assert_eq!(level("tower_http::cors"), Some(LevelFilter::ERROR));
        // NOTSET inherits the root's level.
        assert_eq!(level("sqlx::query"), Some(LevelFilter::WARN));
        assert_eq!(level("fred"), Some(LevelFilter::WARN));
    }

    #[test]
    fn verbose_lines_look_like_the_reference() {
        let config = config(LogLevel::Debug, &[("", LogLevel::Debug)]);
        let text = log_with(&config, false, || {
            tracing::info!(target: "bai_api", "started handling API requests at 0.0.0.0:8081");
            tracing::debug!(target: "sqlx::query", rows = 3, "done");
            tracing::trace!(target: "bai_api", "not shown");
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        // 2026-11-28 04:40:00.123 INFO bai_api [12345] message
        let (stamp, rest) = lines[0].split_at(23);
        assert!(
            chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S%.3f").is_ok(),
            "{stamp}"
        );
        assert_eq!(
            rest,
            format!(
                " INFO bai_api [{}] started handling API requests at 0.0.0.0:8081",
                std::process::id()
            )
        );
        assert!(lines[1].contains(" DEBUG sqlx::query ["), "{}", lines[1]);
        assert!(lines[1].ends_with("] done rows=3"), "{}", lines[1]);
        assert!(!text.contains('\u{1b}'), "no colours off a terminal");
    }

    #[test]
    fn simple_lines_and_colours() {
        let mut config = config(LogLevel::Info, &[("", LogLevel::Info)]);
        config.console = ConsoleLogConfig {
            colored: None,
            format: ConsoleLogFormat::Simple,
        };
        let text = log_with(&config, false, || tracing::warn!("careful"));
        assert_eq!(text, "WARNING careful\n");
        let coloured = log_with(&config, true, || tracing::warn!("careful"));
        assert!(coloured.contains("\u{1b}[33mcareful"), "{coloured:?}");
        config.console.colored = Some(false);
        let plain = log_with(&config, true, || tracing::warn!("careful"));
        assert_eq!(plain, "WARNING careful\n");
    }

    #[test]
    fn remote_drivers_are_refused_naming_the_key() {
        let mut config = LoggingConfig {
            drivers: vec![LogDriver::Console, LogDriver::Logstash],
            ..LoggingConfig::default()
        };
        let error = build(&config, Capture::default(), false)
            .err()
            .expect("refused");
        assert!(
            error
                .to_string()
                .starts_with("[logging] drivers: the logstash driver"),
            "{error}"
        );
        config.drivers = vec![LogDriver::Graylog];
        assert!(matches!(
            build(&config, Capture::default(), false).err(),
            Some(LoggingError::UnsupportedDriver("graylog"))
        ));
    }

    #[test]
    fn the_file_driver_writes_json_lines_and_rotates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = config(LogLevel::Info, &[("", LogLevel::Info)]);
        config.drivers = vec![LogDriver::File];
        config.file = Some(FileLogConfig {
            path: dir.path().join("logs"),
            filename: "manager.log".to_owned(),
            backup_count: 2,
            rotation_size: BinarySize(1024),
            format: None,
        });
        log_with(&config, false, || {
            for index in 0..40 {
                tracing::info!(target: "bai_api", index, "record number {index}");
            }
        });
        let logs = dir.path().join("logs");
        let mut names: Vec<String> = fs::read_dir(&logs)
            .expect("list")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
        names.sort();
        assert_eq!(names, ["manager.log", "manager.log.1", "manager.log.2"]);
        let newest = fs::read_to_string(logs.join("manager.log")).expect("read");
        let last: serde_json::Value =
            serde_json::from_str(newest.lines().last().expect("a line")).expect("json");
        assert_eq!(last["level"], "INFO");
        assert_eq!(last["name"], "bai_api");
        assert_eq!(last["message"], "record number 39");
        assert_eq!(last["index"], 39);
        let line = newest.lines().last().expect("a line");
        assert!(line.starts_with("{\"timestamp\": \""), "{line}");
        assert!(line.contains("\"level\": \"INFO\", \"name\": \"bai_api\", \"processName\": "));
        for name in &names {
            let size = fs::metadata(logs.join(name)).expect("stat").len();
            assert!(size <= 1024 + 200, "{name} is {size} bytes");
        }
    }
}
