//! `manager-cli etcd ...`: the reference's `backend.ai mgr etcd` commands over bai-etcd-store.
//!
//! Keys are used verbatim, as the reference does (`etcd quote` makes a piece like
//! `cr.backend.ai:5000` safe to use in one). What lands in etcd and what `get` prints are the
//! reference's; unlike the reference, a failure exits non-zero with a message saying what failed.

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

use crate::cli::args::etcd::{EtcdCommand, ScopeOption, StoreCommand};
use anyhow::Context;
use bai_config::{EtcdConfig, LoadOptions};
use bai_etcd_store::{
    EtcdError, EtcdStore, EtcdTarget, Scope, ScopePrefixes, Severity, SharedConfig,
    SharedConfigError, SharedConfigProblem, quote, tree, unquote,
};
use serde::Serialize;

/// Runs one `etcd` command; `quote` and `unquote` need no configuration.
pub fn run(command: EtcdCommand, options: &LoadOptions) -> anyhow::Result<ExitCode> {
    match command {
        EtcdCommand::Quote { value } => print_line(&quote(&value)),
        EtcdCommand::Unquote { value } => print_line(&unquote(&value)),
        EtcdCommand::Store(command) => with_etcd(options, |etcd| execute(command, etcd)),
        EtcdCommand::Check { json } => with_etcd(options, |etcd| check(etcd, json)),
    }
}

/// Loads the configuration and runs `command` against its `[etcd]` on a runtime of its own.
fn with_etcd<F: Future<Output = anyhow::Result<ExitCode>>>(
    options: &LoadOptions,
    command: impl FnOnce(EtcdConfig) -> F,
) -> anyhow::Result<ExitCode> {
    let Some(loaded) = crate::load_config(options) else {
        return Ok(ExitCode::FAILURE);
    };
    crate::block_on(command(loaded.config.etcd))?.map_err(|error| {
        match error.downcast::<EtcdError>() {
            // Its message already ends with its cause; main's `{:#}` would repeat it.
            Ok(etcd) => anyhow::anyhow!("{etcd}"),
            Err(other) => other,
        }
    })
}

/// `etcd check --json`.
#[derive(Serialize)]
struct CheckReport {
    namespace: String,
    endpoints: Vec<String>,
    ok: bool,
    errors: Vec<String>,
    warnings: Vec<String>,
}

async fn check(etcd: EtcdConfig, json: bool) -> anyhow::Result<ExitCode> {
    let target = EtcdTarget::from_config(&etcd);
    let where_ = format!(
        "namespace '{}' at {}",
        target.namespace,
        target.endpoints.join(", ")
    );
    let (namespace, endpoints) = (target.namespace.clone(), target.endpoints.clone());
    let store = EtcdStore::connect(target, ScopePrefixes::default()).await?;
    let loaded = SharedConfig::load(&store).await;
    if json {
        let texts = |problems: &[SharedConfigProblem], severity: Severity| -> Vec<String> {
            problems
                .iter()
                .filter(|problem| problem.severity == severity)
                .map(ToString::to_string)
                .collect()
        };
        let (errors, warnings) = match &loaded {
            Ok(shared) => (Vec::new(), texts(&shared.warnings, Severity::Warning)),
            Err(SharedConfigError::Invalid(problems)) => (
                texts(problems, Severity::Error),
                texts(problems, Severity::Warning),
            ),
            Err(SharedConfigError::Etcd(error)) => return Err(anyhow::anyhow!("{error}")),
        };
        let report = CheckReport {
            namespace,
            endpoints,
            ok: errors.is_empty(),
            errors,
            warnings,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(if report.ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    match loaded {
        Ok(shared) => {
            for warning in &shared.warnings {
                eprintln!("{warning}");
            }
            println!("etcd {where_}: the shared configuration is valid");
            Ok(ExitCode::SUCCESS)
        }
        Err(SharedConfigError::Invalid(problems)) => {
            for problem in &problems {
                eprintln!("{problem}");
            }
            Ok(ExitCode::FAILURE)
        }
        Err(SharedConfigError::Etcd(error)) => Err(error.into()),
    }
}

async fn execute(command: StoreCommand, etcd: EtcdConfig) -> anyhow::Result<ExitCode> {
    let etcd = &etcd;
    match command {
        StoreCommand::Get {
            key,
            prefix,
            json,
            scope,
        } => {
            let (store, scope) = connect(etcd, scope).await?;
            if prefix {
                let tree = store.get_prefix(&key, scope).await?;
                return print_line(&tree::tree_to_python_json(&tree));
            }
            let value = store.get(&key, scope).await?;
            if json {
                let found = value.is_some();
                print_line(&serde_json::json!({ "key": key, "value": value }).to_string())?;
                return Ok(if found {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                });
            }
            match value {
                Some(value) => print_line(&value),
                None => Ok(ExitCode::FAILURE),
            }
        }
        StoreCommand::Put { key, value, scope } => {
            let (store, scope) = connect(etcd, scope).await?;
            store.put(&key, &value, scope).await?;
            Ok(ExitCode::SUCCESS)
        }
        StoreCommand::PutJson { key, file, scope } => {
            // Everything is checked before connecting, so a bad file writes nothing.
            let pairs = read_json_pairs(&file, &key)?;
            let (store, scope) = connect(etcd, scope).await?;
            store.put_dict(&pairs, scope).await?;
            let plural = if pairs.len() == 1 { "" } else { "s" };
            eprintln!("Wrote {} key{plural} under '{key}'.", pairs.len());
            Ok(ExitCode::SUCCESS)
        }
        StoreCommand::Delete { key, prefix, scope } => {
            let (store, scope) = connect(etcd, scope).await?;
            if prefix {
                match store.delete_prefix(&key, scope).await? {
                    0 => eprintln!("No keys found to delete with prefix: {key}"),
                    _ => eprintln!("All keys starting with '{key}' successfully deleted."),
                }
            } else if store.delete(&key, scope).await? {
                eprintln!("Key '{key}' successfully deleted.");
            } else {
                eprintln!("No key found to delete: {key}");
            }
            Ok(ExitCode::SUCCESS)
        }
        StoreCommand::MoveSubtree {
            source,
            destination,
            scope,
        } => {
            let (store, scope) = connect(etcd, scope).await?;
            match store.move_subtree(&source, &destination, scope).await? {
                0 => eprintln!("No keys found to move with prefix: {source}"),
                moved => {
                    let plural = if moved == 1 { "" } else { "s" };
                    eprintln!("Moved {moved} key{plural} from '{source}' to '{destination}'.");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Connects with the prefixes `--scope` names, and returns the scope to use them with.
async fn connect(etcd: &EtcdConfig, option: ScopeOption) -> anyhow::Result<(EtcdStore, Scope)> {
    let target = EtcdTarget::from_config(etcd);
    let store = EtcdStore::connect(target, option.scope.prefixes()).await?;
    Ok((store, option.scope.scope()))
}

/// Reads and checks a `put-json` file: valid JSON, an object at the top, and no two JSON paths
/// that land on the same etcd key (etcd refuses a transaction that writes a key twice, and a file
/// too large for one transaction would silently keep whichever came last). Returns the flat pairs
/// to write.
fn read_json_pairs(file: &Path, key: &str) -> anyhow::Result<Vec<(String, String)>> {
    let (name, mut bytes) = if file == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read stdin")?;
        ("<stdin>".to_owned(), bytes)
    } else {
        let name = file.display().to_string();
        let bytes = std::fs::read(file).with_context(|| format!("cannot read {name}"))?;
        (name, bytes)
    };
    // Python's json.load accepts a UTF-8 byte order mark, so files saved by editors that add one
    // work with the reference.
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
    }
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|error| {
        let location = format!(" at line {} column {}", error.line(), error.column());
        let message = error.to_string();
        let message = message.strip_suffix(&location).unwrap_or(&message);
        anyhow::anyhow!(
            "{name}: line {}, column {}: {message}",
            error.line(),
            error.column()
        )
    })?;
    let serde_json::Value::Object(object) = value else {
        anyhow::bail!(
            "{name}: the top level must be a JSON object, found {}",
            json_kind(&value)
        );
    };
    let pairs = tree::flatten(key, &object);
    let mut seen = std::collections::HashSet::new();
    for (path, _) in &pairs {
        // A leading slash is dropped when the key is stored, so `/a` and `a` are the same key.
        let stored = path.strip_prefix('/').unwrap_or(path);
        anyhow::ensure!(
            seen.insert(stored),
            "{name}: two entries would both be written to the key {stored:?} (an empty-string key \
             stands for the object's own key)"
        );
    }
    Ok(pairs)
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Prints like Python's `print`: the text and a newline.
fn print_line(text: &str) -> anyhow::Result<ExitCode> {
    writeln!(std::io::stdout().lock(), "{text}")?;
    Ok(ExitCode::SUCCESS)
}
