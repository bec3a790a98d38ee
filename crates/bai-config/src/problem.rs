//! Errors and warnings about a configuration, each naming where the bad value came from (the file or
//! an environment variable), the key path in manager.toml terms (`[db] password`) and what was expected.

use std::fmt;
use std::path::PathBuf;

/// Where a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    File(PathBuf),
    EnvVar(&'static str),
    CommandLine(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::EnvVar(name) => write!(f, "environment variable {name}"),
            Origin::CommandLine(option) => write!(f, "command-line option {option}"),
        }
    }
}

/// A key path such as `["logging", "file", "rotation-size"]`, shown as `[logging.file] rotation-size`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct KeyPath(pub Vec<String>);

impl KeyPath {
    pub fn new<S: Into<String>>(parts: impl IntoIterator<Item = S>) -> Self {
        KeyPath(parts.into_iter().map(Into::into).collect())
    }

    pub fn child(&self, key: impl Into<String>) -> Self {
        let mut parts = self.0.clone();
        parts.push(key.into());
        KeyPath(parts)
    }
}

fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.split_last() {
            None => Ok(()),
            Some((key, [])) => f.write_str(&toml_key(key)),
            Some((key, section)) => {
                let section: Vec<String> = section.iter().map(|k| toml_key(k)).collect();
                write!(f, "[{}] {}", section.join("."), toml_key(key))
            }
        }
    }
}

/// One thing wrong (or suspicious) in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub origin: Origin,
    pub key: KeyPath,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.0.is_empty() {
            write!(f, "{}: {}", self.origin, self.message)
        } else {
            write!(f, "{}: {}: {}", self.origin, self.key, self.message)
        }
    }
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no manager.toml found; looked at: {}", join_paths(.searched))]
    NotFound { searched: Vec<PathBuf> },
    #[error("{}: cannot read the file: {source}", .path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: line {line}, column {column}: {message}", .path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}", join_problems(.problems))]
    Invalid { problems: Vec<Problem> },
}

fn join_paths(paths: &[PathBuf]) -> String {
    let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    shown.join(", ")
}

fn join_problems(problems: &[Problem]) -> String {
    let shown: Vec<String> = problems.iter().map(Problem::to_string).collect();
    shown.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_read_like_toml() {
        assert_eq!(
            KeyPath::new(["db", "password"]).to_string(),
            "[db] password"
        );
        assert_eq!(
            KeyPath::new(["logging", "file", "rotation-size"]).to_string(),
            "[logging.file] rotation-size"
        );
        assert_eq!(
            KeyPath::new(["docker-registry"]).to_string(),
            "docker-registry"
        );
        assert_eq!(
            KeyPath::new(["logging", "pkg-ns", "ai.backend"]).to_string(),
            "[logging.pkg-ns] \"ai.backend\""
        );
        assert_eq!(
            KeyPath::new(["logging", "pkg-ns", ""]).to_string(),
            "[logging.pkg-ns] \"\""
        );
    }
}
