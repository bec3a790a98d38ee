//! The manager's local configuration, `manager.toml`: the reference's full schema as typed structs
//! ([`ManagerConfig`], one struct per section), file discovery, the `BACKEND_*` environment overrides,
//! and validation whose every message names the file or variable, the key and what was expected.
//!
//! This crate must not connect to anything, create files or directories, or print: it turns text and
//! an [`Environment`] into a [`LoadedConfig`] or a [`ConfigError`]. It is also the only crate that reads
//! the process environment ([`Environment::capture`]); everything above it gets typed values.
//!
//! Being the lowest crate, it also holds the readers of the reference's number spellings that every
//! crate shares: [`parse_binary_size`] (the workspace's one size parser, Python's `BinarySize`) and
//! [`parse_python_decimal`] (Python's `Decimal(str)`).

mod load;
mod numbers;
mod problem;
mod schema;
mod validate;
mod values;

pub use load::{Environment, LoadOptions, LoadedConfig, discover, load, load_from_str};
pub use numbers::{BinarySizeError, BinarySizeValue, parse_binary_size, parse_python_decimal};
pub use problem::{ConfigError, KeyPath, Origin, Problem};
pub use schema::{
    ConsoleLogConfig, ConsoleLogFormat, DbConfig, DbKind, DebugConfig, DistributedLock,
    DockerRegistryConfig, EtcdConfig, EventLoop, FileLogConfig, GraylogConfig, LogDriver,
    LoggingConfig, LogstashConfig, LogstashProtocol, ManagerConfig, ManagerSection, UnixAccount,
    default_node_id,
};
pub use values::{BinarySize, HostPort, LogLevel, parse_bool};
