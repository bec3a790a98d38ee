//! `manager-cli etcd ...`.

use std::path::PathBuf;

use bai_etcd_store::{Scope, ScopePrefixes};
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum EtcdCommand {
    #[command(flatten)]
    Store(StoreCommand),
    /// Validate the shared configuration (`config/...`, `volumes/...`) against the schema the
    /// manager reads it with; print every bad key and exit 1 if any is wrong.
    Check {
        /// Print `{"namespace", "endpoints", "ok", "errors", "warnings"}` as JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Print VALUE percent-quoted as one key piece (`urllib.parse.quote(VALUE, safe="")`).
    Quote {
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
    /// Print VALUE with `%XX` sequences decoded (`urllib.parse.unquote`).
    Unquote {
        #[arg(allow_hyphen_values = true)]
        value: String,
    },
}

/// The commands that talk to etcd; each works in one scope (`--scope`, default global).
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Print the value of KEY, or with --prefix every key starting with KEY as JSON.
    ///
    /// A missing KEY prints nothing and exits 1; a prefix without keys prints `{}`.
    Get {
        /// The key below `/sorna/{namespace}/`, used verbatim.
        key: String,
        /// Read every key that starts with KEY (a plain string prefix) as a nested JSON object.
        #[arg(long)]
        prefix: bool,
        /// Print `{"key", "value"}` (`value` null when KEY is missing) instead of the bare value;
        /// with --prefix the output is the JSON object either way.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        scope: ScopeOption,
    },
    /// Set KEY to VALUE.
    Put {
        /// The key below `/sorna/{namespace}/`, used verbatim.
        key: String,
        /// The text to store.
        #[arg(allow_hyphen_values = true)]
        value: String,
        #[command(flatten)]
        scope: ScopeOption,
    },
    /// Write the JSON object in FILE (`-` for stdin) below KEY, all keys or none.
    ///
    /// Object keys become quoted key pieces and leaves are stored as Python's `str()` spells them
    /// (`True`, `None`, `['a', 1]`); empty objects write nothing. The output of
    /// `get --prefix KEY` restores with `put-json KEY`.
    PutJson {
        /// The key the object's keys go below, used verbatim (`""` for the namespace root).
        key: String,
        /// A file holding one JSON object, or `-` for stdin.
        file: PathBuf,
        #[command(flatten)]
        scope: ScopeOption,
    },
    /// Delete KEY, or with --prefix every key starting with KEY (a plain string prefix).
    Delete {
        /// The key below `/sorna/{namespace}/`, used verbatim.
        key: String,
        /// Delete every key that starts with KEY (a plain string prefix).
        #[arg(long)]
        prefix: bool,
        #[command(flatten)]
        scope: ScopeOption,
    },
    /// Move every key starting with SOURCE (a plain string prefix) below DESTINATION.
    MoveSubtree {
        /// The prefix of the keys to move, used verbatim.
        source: String,
        /// The key the moved keys go below, used verbatim.
        destination: String,
        #[command(flatten)]
        scope: ScopeOption,
    },
}

#[derive(Debug, Args)]
pub struct ScopeOption {
    /// The layer to use: `global`, `sgroup:NAME` (a scaling group) or `node:ID` (an agent).
    /// Reads fall back from the node or scaling group to global, as the agents read.
    #[arg(
        short = 's',
        long = "scope",
        value_name = "SCOPE",
        default_value = "global",
        value_parser = parse_scope
    )]
    pub scope: ConfigScope,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigScope {
    Global,
    ScalingGroup(String),
    Node(String),
}

impl ConfigScope {
    /// The prefixes an agent would use, limited to what the operator named: a node scope does not
    /// know its agent's scaling group, so its reads fall back to global directly.
    pub fn prefixes(&self) -> ScopePrefixes {
        match self {
            ConfigScope::Global => ScopePrefixes::default(),
            ConfigScope::ScalingGroup(name) => ScopePrefixes {
                scaling_group: Some(format!("sgroup/{name}")),
                ..ScopePrefixes::default()
            },
            ConfigScope::Node(id) => ScopePrefixes {
                node: Some(format!("nodes/agents/{id}")),
                ..ScopePrefixes::default()
            },
        }
    }

    pub fn scope(&self) -> Scope {
        match self {
            ConfigScope::Global => Scope::Global,
            ConfigScope::ScalingGroup(_) => Scope::ScalingGroup,
            ConfigScope::Node(_) => Scope::Node,
        }
    }
}

fn parse_scope(text: &str) -> Result<ConfigScope, String> {
    if text.eq_ignore_ascii_case("global") {
        return Ok(ConfigScope::Global);
    }
    let expected = || "expected `global`, `sgroup:NAME` or `node:ID`".to_owned();
    let (kind, name) = text.split_once(':').ok_or_else(expected)?;
    // The name becomes one piece of the key prefix; a slash would silently add levels.
    if name.is_empty() || name.contains('/') {
        return Err(format!(
            "the name after `{kind}:` must be non-empty and contain no `/`"
        ));
    }
    match kind.to_ascii_lowercase().as_str() {
        "sgroup" => Ok(ConfigScope::ScalingGroup(name.to_owned())),
        "node" => Ok(ConfigScope::Node(name.to_owned())),
        _ => Err(expected()),
    }
}
