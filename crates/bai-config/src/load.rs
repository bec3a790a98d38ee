//! Finding manager.toml, merging the environment overrides over it with figment, and turning serde's
//! errors into [`Problem`]s that name the file or variable and the key.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use figment::providers::{Format, Serialized, Toml};
use figment::{Figment, error::Actual, error::Kind};

use crate::problem::{ConfigError, KeyPath, Origin, Problem};
use crate::schema::ManagerConfig;
use crate::validate;
use crate::values::{LogLevel, parse_bool};

/// The parts of the process environment that configuration depends on, captured once so that tests
/// (and embedders) can load a configuration without touching the real environment.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    vars: BTreeMap<String, String>,
    cwd: PathBuf,
    home: Option<PathBuf>,
}

impl Environment {
    /// Captures the variables, working directory and home directory of this process.
    #[allow(clippy::disallowed_methods)] // This is the one place that reads the process environment.
    pub fn capture() -> Self {
        Environment {
            vars: std::env::vars().collect(),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            home: std::env::var_os("HOME").map(PathBuf::from),
        }
    }

    /// An empty environment working in `cwd`, with no home directory.
    pub fn in_dir(cwd: impl Into<PathBuf>) -> Self {
        Environment {
            vars: BTreeMap::new(),
            cwd: cwd.into(),
            home: None,
        }
    }

    pub fn with_var(mut self, name: &str, value: &str) -> Self {
        self.vars.insert(name.to_owned(), value.to_owned());
        self
    }

    pub fn with_home(mut self, home: impl Into<PathBuf>) -> Self {
        self.home = Some(home.into());
        self
    }

    pub fn cwd(&self) -> &Path {
        &self.cwd
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

/// What the caller asks of [`load`].
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `-f/--config`: use exactly this file.
    pub explicit_path: Option<PathBuf>,
    /// `--log-level`: overrides `[logging] level` (and `[debug] enabled` for DEBUG) when given.
    pub log_level: Option<LogLevel>,
}

/// A validated configuration with where it came from and what looked suspicious in it.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: ManagerConfig,
    pub source: PathBuf,
    /// Keys that are ignored (unknown) and values that work but are probably not meant.
    pub warnings: Vec<Problem>,
    sources: Sources,
}

impl LoadedConfig {
    /// Checks the files the configuration names (the RPC keypair, TLS certificate and key) exist on
    /// this machine. Separate from loading, so that tools which need no keypair can still load.
    pub fn check_files(&self, env: &Environment) -> Result<(), ConfigError> {
        let problems = validate::check_files(&self.config, &self.sources, env.cwd());
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid { problems })
        }
    }

    /// The resolved configuration as TOML, with passwords and secrets replaced by `********`.
    pub fn to_masked_toml(&self) -> String {
        let mut masked = self.config.clone();
        let mask = |secret: &mut String| {
            if !secret.is_empty() {
                *secret = "********".to_owned();
            }
        };
        mask(&mut masked.etcd.password);
        mask(&mut masked.db.password);
        if let Some(secret) = masked.manager.secret.as_mut() {
            mask(secret);
        }
        toml::to_string(&masked)
            .unwrap_or_else(|error| format!("# cannot render the configuration: {error}\n"))
    }
}

/// Environment variables the reference honours, and the key each one sets.
const ENV_OVERRIDES: [(&str, &str); 12] = [
    ("BACKEND_NAMESPACE", "etcd.namespace"),
    ("BACKEND_ETCD_ADDR", "etcd.addr"),
    ("BACKEND_ETCD_USER", "etcd.user"),
    ("BACKEND_ETCD_PASSWORD", "etcd.password"),
    ("BACKEND_DB_ADDR", "db.addr"),
    ("BACKEND_DB_NAME", "db.name"),
    ("BACKEND_DB_USER", "db.user"),
    ("BACKEND_DB_PASSWORD", "db.password"),
    ("BACKEND_MANAGER_NPROC", "manager.num-proc"),
    ("BACKEND_SSL_CERT", "manager.ssl-cert"),
    ("BACKEND_SSL_KEY", "manager.ssl-privkey"),
    ("BACKEND_PID_FILE", "manager.pid-file"),
];

/// Set to true, this turns registry certificate checks off (the reference copied it as-is, inverting it).
const SKIP_SSLCERT_VALIDATION: &str = "BACKEND_SKIP_SSLCERT_VALIDATION";

/// Finds manager.toml the way the reference does: the explicit path, else `BACKEND_CONFIG_FILE`, else the
/// first existing file of `./manager.toml`, `~/.config/backend.ai/manager.toml`,
/// `/etc/backend.ai/manager.toml`.
pub fn discover(explicit: Option<&Path>, env: &Environment) -> Result<PathBuf, ConfigError> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    if let Some(path) = env.var("BACKEND_CONFIG_FILE") {
        return Ok(PathBuf::from(path));
    }
    let mut searched = vec![env.cwd.join("manager.toml")];
    if let Some(home) = &env.home {
        searched.push(home.join(".config/backend.ai/manager.toml"));
    }
    searched.push(PathBuf::from("/etc/backend.ai/manager.toml"));
    searched
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .ok_or(ConfigError::NotFound { searched })
}

/// Finds, reads, merges and validates the configuration.
pub fn load(options: &LoadOptions, env: &Environment) -> Result<LoadedConfig, ConfigError> {
    let path = discover(options.explicit_path.as_deref(), env)?;
    let text =
        fs::read_to_string(env.cwd.join(&path)).map_err(|source| ConfigError::Unreadable {
            path: path.clone(),
            source,
        })?;
    load_from_str(&text, &path, options, env)
}

/// Validates configuration text as if read from `path` (which is only used in messages).
pub fn load_from_str(
    text: &str,
    path: &Path,
    options: &LoadOptions,
    env: &Environment,
) -> Result<LoadedConfig, ConfigError> {
    if let Err(error) = text.parse::<toml::Table>() {
        let (line, column) = error
            .span()
            .map_or((1, 1), |span| line_and_column(text, span.start));
        return Err(ConfigError::Syntax {
            path: path.to_owned(),
            line,
            column,
            message: format!("invalid TOML: {}", error.message().trim_end()),
        });
    }
    let sources = Sources::new(path);
    let (figment, sources, mut problems) =
        overrides(Figment::from(Toml::string(text)), sources, options, env);
    let config: Option<ManagerConfig> = match figment.extract() {
        Ok(config) => Some(config),
        Err(errors) => {
            problems.extend(errors.into_iter().map(|error| sources.problem_from(error)));
            None
        }
    };
    let Some(config) = config.filter(|_| problems.is_empty()) else {
        return Err(ConfigError::Invalid { problems });
    };
    let mut warnings = ignored_keys(&figment, &sources);
    let (errors, suspicious) = validate::check(&config, &sources);
    if !errors.is_empty() {
        return Err(ConfigError::Invalid { problems: errors });
    }
    warnings.extend(suspicious);
    Ok(LoadedConfig {
        config,
        source: path.to_owned(),
        warnings,
        sources,
    })
}

/// Which source set which key: the file, unless an environment variable or option overrode it.
#[derive(Debug, Clone)]
pub(crate) struct Sources {
    file: PathBuf,
    overridden: BTreeMap<KeyPath, Origin>,
}

impl Sources {
    fn new(file: &Path) -> Self {
        Sources {
            file: file.to_owned(),
            overridden: BTreeMap::new(),
        }
    }

    pub(crate) fn origin_of(&self, key: &KeyPath) -> Origin {
        self.overridden
            .get(key)
            .cloned()
            .unwrap_or_else(|| Origin::File(self.file.clone()))
    }

    pub(crate) fn problem(&self, key: KeyPath, message: impl Into<String>) -> Problem {
        Problem {
            origin: self.origin_of(&key),
            key,
            message: message.into(),
        }
    }

    fn problem_from(&self, error: figment::Error) -> Problem {
        let key = KeyPath(error.path.clone());
        match error.kind {
            Kind::MissingField(field) => self.problem(key.child(field), "is required"),
            // figment's path of an unknown field already ends with the field; the snake_case aliases
            // are left out of the list so that it shows each key once.
            Kind::UnknownField(_, expected) => {
                let canonical: Vec<&str> = expected
                    .iter()
                    .copied()
                    .filter(|name| !name.contains('_'))
                    .collect();
                self.problem(
                    key,
                    format!(
                        "unknown key (this section allows only: {})",
                        canonical.join(", ")
                    ),
                )
            }
            Kind::DuplicateField(field) => self.problem(
                key.child(field),
                "given twice (as the dash-case and the snake_case spelling)",
            ),
            Kind::InvalidType(actual, expected) | Kind::InvalidValue(actual, expected) => self
                .problem(
                    key,
                    format!(
                        "expected {}, found {}",
                        friendly_expected(&expected),
                        friendly_actual(&actual)
                    ),
                ),
            Kind::UnknownVariant(given, expected) => self.problem(
                key,
                format!(
                    "unknown value {given:?}, expected one of: {}",
                    expected.join(", ")
                ),
            ),
            Kind::InvalidLength(length, expected) => {
                self.problem(key, format!("expected {expected}, found {length} elements"))
            }
            Kind::Message(message) => self.problem(key, message),
            other => self.problem(key, other.to_string()),
        }
    }
}

/// Merges the environment and command-line overrides, remembering which keys they set.
fn overrides(
    mut figment: Figment,
    mut sources: Sources,
    options: &LoadOptions,
    env: &Environment,
) -> (Figment, Sources, Vec<Problem>) {
    let mut problems = Vec::new();
    for (name, key) in ENV_OVERRIDES {
        if let Some(value) = env.var(name) {
            figment = figment.merge(Serialized::default(key, value));
            sources
                .overridden
                .insert(KeyPath::new(key.split('.')), Origin::EnvVar(name));
        }
    }
    if let Some(value) = env.var(SKIP_SSLCERT_VALIDATION) {
        let key = KeyPath::new(["docker-registry", "ssl-verify"]);
        match parse_bool(value) {
            Some(skip) => {
                figment = figment.merge(Serialized::default("docker-registry.ssl-verify", !skip));
                sources
                    .overridden
                    .insert(key, Origin::EnvVar(SKIP_SSLCERT_VALIDATION));
            }
            None => problems.push(Problem {
                origin: Origin::EnvVar(SKIP_SSLCERT_VALIDATION),
                key,
                message: format!(
                    "expected a boolean (true/false, yes/no, on/off, 1/0), found {value:?}"
                ),
            }),
        }
    }
    if let Some(level) = options.log_level {
        figment = figment
            .merge(Serialized::default("logging.level", level))
            .merge(Serialized::default(
                "debug.enabled",
                level == LogLevel::Debug,
            ));
        sources.overridden.insert(
            KeyPath::new(["logging", "level"]),
            Origin::CommandLine("--log-level"),
        );
        // The reference also sets the levels of its own packages and of the HTTP server.
        let packages = BTreeMap::from([("ai.backend", level), ("aiohttp", level)]);
        figment = figment.merge(Serialized::default("logging.pkg-ns", packages));
        for package in ["ai.backend", "aiohttp"] {
            sources.overridden.insert(
                KeyPath::new(["logging", "pkg-ns", package]),
                Origin::CommandLine("--log-level"),
            );
        }
    }
    (figment, sources, problems)
}

/// Keys that no part of the schema reads: a typo or a key of another version. Warnings, not errors,
/// because the reference accepts them outside `[db]`.
fn ignored_keys(figment: &Figment, sources: &Sources) -> Vec<Problem> {
    let Ok(value) = figment.extract::<figment::value::Value>() else {
        return Vec::new();
    };
    let mut warnings = Vec::new();
    let parsed: Result<ManagerConfig, _> = serde_ignored::deserialize(&value, |path| {
        let mut parts = Vec::new();
        key_parts(&path, &mut parts);
        warnings.push(sources.problem(KeyPath(parts), "unknown key, ignored"));
    });
    match parsed {
        Ok(_) => warnings,
        Err(_) => Vec::new(),
    }
}

fn key_parts(path: &serde_ignored::Path<'_>, parts: &mut Vec<String>) {
    use serde_ignored::Path;
    match path {
        Path::Root => {}
        Path::Seq { parent, index } => {
            key_parts(parent, parts);
            parts.push(index.to_string());
        }
        Path::Map { parent, key } => {
            key_parts(parent, parts);
            parts.push(key.clone());
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => {
            key_parts(parent, parts);
        }
    }
}

fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// serde's names for primitive types, said the way a person editing a TOML file would.
fn friendly_expected(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "i8" | "i16" | "i32" | "i64" | "usize" | "isize" => {
            "an integer".to_owned()
        }
        "f32" | "f64" => "a number".to_owned(),
        "a sequence" => "an array".to_owned(),
        "a map" => "a table".to_owned(),
        other if other.starts_with("struct ") => "a table".to_owned(),
        other => other.to_owned(),
    }
}

fn friendly_actual(actual: &Actual) -> String {
    match actual {
        Actual::Bool(value) => format!("boolean {value}"),
        Actual::Unsigned(value) => format!("integer {value}"),
        Actual::Signed(value) => format!("integer {value}"),
        Actual::Float(value) => format!("float {value}"),
        Actual::Str(value) => format!("string {value:?}"),
        Actual::Seq => "an array".to_owned(),
        Actual::Map => "a table".to_owned(),
        other => other.to_string(),
    }
}
