//! `/config/*` (the reference's `etcd.py`): the resource slots and vfolder types the cluster knows,
//! accelerator metadata, the container registries, and raw reads and writes of etcd keys for
//! superadmins.

use std::collections::BTreeSet;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bai_db_models::queries::agent_slots::{self, Schedulable};
use bai_etcd_store::{ConfigNode, ConfigTree, EtcdError, Scope, tree::python_str, unquote};
use bai_scheduler::KnownSlots;
use http::Method;
use indexmap::IndexMap;
use serde::{Deserialize, Deserializer, Serialize, de::Error as _};
use serde_json::Value;

use super::{Access, Authenticated, Route};
use crate::context::ApiContext;
use crate::error::ApiError;
use crate::json::PyJson;
use crate::params::{Params, lenient};

/// etcd prefix of the vfolder types that are enabled (`user`, `group`).
/// etcd prefix of the container registries, one subtree per (quoted) registry name.
const REGISTRIES_PREFIX: &str = "config/docker/registry/";
/// The most keys one `POST /config/set` may write.
const MAX_SET_KEYS: usize = 16;

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/config/resource-slots",
            "config.get_resource_slots",
            get_resource_slots,
        )
        .summary("The resource slots the cluster knows and their units (`count`, `bytes`, `unique`)."),
        Route::new(
            Method::GET,
            "/config/resource-slots/details",
            "config.get_resource_metadata",
            get_resource_metadata,
        )
        .params::<ResourceMetadataParams>()
        .summary(
            "Display metadata of the known resource slots, optionally only those the live agents of a resource group offer.",
        ),
        Route::new(
            Method::GET,
            "/config/vfolder-types",
            "config.get_vfolder_types",
            get_vfolder_types,
        )
        .summary("The enabled vfolder types (etcd `volumes/_types`; `user` when none is set)."),
        Route::new(
            Method::GET,
            "/config/docker-registries",
            "config.get_docker_registries",
            get_docker_registries,
        )
        .access(Access::SuperAdmin)
        .summary("The configured container registries: name -> URL."),
        Route::new(Method::POST, "/config/get", "config.get_config", get_config)
            .access(Access::SuperAdmin)
            .params::<KeyParams>()
            .summary(
                "Reads an etcd key, or with `prefix` every key starting with it as a nested object.",
            ),
        Route::new(Method::POST, "/config/set", "config.set_config", set_config)
            .access(Access::SuperAdmin)
            .params::<SetParams>()
            .summary("Writes an etcd key; an object value is written as up to 16 keys below it."),
        Route::new(
            Method::POST,
            "/config/delete",
            "config.delete_config",
            delete_config,
        )
        .access(Access::SuperAdmin)
        .params::<KeyParams>()
        .summary("Deletes an etcd key, or with `prefix` every key starting with it."),
    ]
}

// ----- parameters -----

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ResourceMetadataParams {
    /// Only the slots the live, schedulable agents of this resource group offer (plus `cpu` and
    /// `mem`).
    #[serde(default, deserialize_with = "optional_non_blank")]
    sgroup: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct KeyParams {
    /// The etcd key below the namespace, as stored (pieces already quoted).
    #[serde(deserialize_with = "non_blank")]
    key: String,
    /// Treat `key` as a plain string prefix.
    #[serde(default, deserialize_with = "lenient::bool")]
    prefix: bool,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct SetParams {
    /// The etcd key below the namespace, as stored (pieces already quoted).
    #[serde(deserialize_with = "non_blank")]
    key: String,
    /// A scalar is stored as Python's `str()` spells it; an object is flattened into keys joined
    /// with `/` (not quoted), at most 16.
    value: Value,
}

/// A string that is not empty (trafaret's `String`).
pub(super) fn non_blank<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.is_empty() {
        return Err(D::Error::custom("blank value is not allowed"));
    }
    Ok(text)
}

/// `null` or a string that is not empty (trafaret's `Null | String`).
pub(super) fn optional_non_blank<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    match Option::<String>::deserialize(deserializer)? {
        Some(text) if text.is_empty() => Err(D::Error::custom("blank value is not allowed")),
        other => Ok(other),
    }
}

// ----- JSON in etcd's order -----

/// An etcd subtree as JSON, keeping the order of the (sorted, quoted) etcd keys.
#[derive(Debug)]
struct TreeJson<'a>(&'a ConfigTree);

impl Serialize for TreeJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(key, node)| (key, NodeJson(node))))
    }
}

#[derive(Debug)]
struct NodeJson<'a>(&'a ConfigNode);

impl Serialize for NodeJson<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            ConfigNode::Value(value) => serializer.serialize_str(value),
            ConfigNode::Tree(tree) => TreeJson(tree).serialize(serializer),
        }
    }
}

/// A JSON object in insertion order.
#[derive(Debug)]
pub(super) struct Ordered<V>(pub(super) Vec<(String, V)>);

impl<V: Serialize> Serialize for Ordered<V> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter().map(|(key, value)| (key, value)))
    }
}

fn etcd_failure(what: &str) -> impl FnOnce(EtcdError) -> ApiError + '_ {
    move |error| ApiError::internal(what, &error)
}

// ----- slots and accelerator metadata -----

async fn get_resource_slots(
    State(ctx): State<ApiContext>,
) -> Result<PyJson<Ordered<OwnedNode>>, ApiError> {
    let known = KnownSlots::load(ctx.etcd())
        .await
        .map_err(etcd_failure("reading etcd config/resource_slots"))?;
    let entries: Vec<(String, OwnedNode)> = known
        .entries()
        .map(|(slot, unit)| (slot.to_owned(), OwnedNode(unit.clone())))
        .collect();
    Ok(PyJson(Ordered(entries)))
}

/// An etcd node (value or subtree) as JSON.
#[derive(Debug)]
struct OwnedNode(ConfigNode);

impl Serialize for OwnedNode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        NodeJson(&self.0).serialize(serializer)
    }
}

/// A JSON value written out in a fixed key order.
#[derive(Debug)]
enum Meta {
    Str(&'static str),
    Bool(bool),
    Int(i64),
    Object(&'static [(&'static str, Meta)]),
}

impl Serialize for Meta {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Meta::Str(text) => serializer.serialize_str(text),
            Meta::Bool(value) => serializer.serialize_bool(*value),
            Meta::Int(value) => serializer.serialize_i64(*value),
            Meta::Object(entries) => serializer.collect_map(entries.iter().map(|(k, v)| (*k, v))),
        }
    }
}

/// The reference's `KNOWN_SLOT_METADATA`, key order included: what the web UI shows for slots
/// whose agents report no metadata of their own (legacy accelerator plugins).
const KNOWN_SLOT_METADATA: &[(&str, Meta)] = &[
    (
        "cpu",
        Meta::Object(&[
            ("slot_name", Meta::Str("cpu")),
            ("description", Meta::Str("CPU")),
            ("human_readable_name", Meta::Str("CPU")),
            ("display_unit", Meta::Str("Core")),
            (
                "number_format",
                Meta::Object(&[
                    ("binary", Meta::Bool(false)),
                    ("round_length", Meta::Int(0)),
                ]),
            ),
            ("display_icon", Meta::Str("cpu")),
        ]),
    ),
    (
        "mem",
        Meta::Object(&[
            ("slot_name", Meta::Str("ram")),
            ("description", Meta::Str("Memory")),
            ("human_readable_name", Meta::Str("RAM")),
            ("display_unit", Meta::Str("GiB")),
            (
                "number_format",
                Meta::Object(&[("binary", Meta::Bool(true)), ("round_length", Meta::Int(0))]),
            ),
            ("display_icon", Meta::Str("cpu")),
        ]),
    ),
    (
        "cuda.device",
        Meta::Object(&[
            ("slot_name", Meta::Str("cuda.device")),
            ("human_readable_name", Meta::Str("GPU")),
            ("description", Meta::Str("CUDA-capable GPU")),
            ("display_unit", Meta::Str("GPU")),
            (
                "number_format",
                Meta::Object(&[
                    ("binary", Meta::Bool(false)),
                    ("round_length", Meta::Int(0)),
                ]),
            ),
            ("display_icon", Meta::Str("gpu1")),
        ]),
    ),
    (
        "cuda.shares",
        Meta::Object(&[
            ("slot_name", Meta::Str("cuda.shares")),
            ("human_readable_name", Meta::Str("fGPU")),
            ("description", Meta::Str("CUDA-capable GPU (fractional)")),
            ("display_unit", Meta::Str("fGPU")),
            (
                "number_format",
                Meta::Object(&[
                    ("binary", Meta::Bool(false)),
                    ("round_length", Meta::Int(2)),
                ]),
            ),
            ("display_icon", Meta::Str("gpu1")),
        ]),
    ),
    (
        "rocm.device",
        Meta::Object(&[
            ("slot_name", Meta::Str("rocm.device")),
            ("human_readable_name", Meta::Str("GPU")),
            ("description", Meta::Str("ROCm-capable GPU")),
            ("display_unit", Meta::Str("GPU")),
            (
                "number_format",
                Meta::Object(&[
                    ("binary", Meta::Bool(false)),
                    ("round_length", Meta::Int(0)),
                ]),
            ),
            ("display_icon", Meta::Str("gpu2")),
        ]),
    ),
    (
        "tpu.device",
        Meta::Object(&[
            ("slot_name", Meta::Str("tpu.device")),
            ("human_readable_name", Meta::Str("TPU")),
            ("description", Meta::Str("TPU device")),
            ("display_unit", Meta::Str("GPU")),
            (
                "number_format",
                Meta::Object(&[
                    ("binary", Meta::Bool(false)),
                    ("round_length", Meta::Int(0)),
                ]),
            ),
            ("display_icon", Meta::Str("tpu")),
        ]),
    ),
];

/// A slot's metadata: reported by an agent, or the built-in entry.
#[derive(Debug, Serialize)]
#[serde(untagged)]
enum SlotMetadata {
    Reported(Value),
    Known(&'static Meta),
}

async fn get_resource_metadata(
    State(ctx): State<ApiContext>,
    Params(params): Params<ResourceMetadataParams>,
) -> Result<PyJson<Ordered<SlotMetadata>>, ApiError> {
    let known = KnownSlots::load(ctx.etcd())
        .await
        .map_err(etcd_failure("reading etcd config/resource_slots"))?;
    let reported = ctx
        .redis()
        .stat
        .reported_slot_metadata()
        .await
        .map_err(|error| ApiError::internal("reading the reported accelerator metadata", &error))?;
    let mut reported: IndexMap<String, Value> = {
        let mut slots: Vec<(String, String)> = reported.into_iter().collect();
        slots.sort();
        slots
            .into_iter()
            .filter_map(|(slot, text)| match serde_json::from_str(&text) {
                Ok(metadata) => Some((slot, metadata)),
                Err(error) => {
                    tracing::warn!(target: "bai_api", "Redis computer.metadata {slot}: not JSON: {error}");
                    None
                }
            })
            .collect()
    };

    // The reference's ChainMap(reported, KNOWN_SLOT_METADATA): built-in slots first, reported
    // metadata wins; then slots only agents report. Only known slots are listed.
    let mut metadata: Vec<(String, SlotMetadata)> = Vec::new();
    for (slot, builtin) in KNOWN_SLOT_METADATA {
        let entry = match reported.shift_remove(*slot) {
            Some(value) => SlotMetadata::Reported(value),
            None => SlotMetadata::Known(builtin),
        };
        metadata.push(((*slot).to_owned(), entry));
    }
    metadata.extend(
        reported
            .into_iter()
            .map(|(slot, value)| (slot, SlotMetadata::Reported(value))),
    );
    metadata.retain(|(slot, _)| known.contains(slot));

    if let Some(sgroup) = &params.sgroup {
        let agents =
            agent_slots::alive_in(ctx.db(), std::slice::from_ref(sgroup), Schedulable::Only)
                .await
                .map_err(|error| {
                    ApiError::internal("reading the agents of a resource group", &error)
                })?;
        let mut offered: BTreeSet<String> = ["cpu", "mem"].map(str::to_owned).into();
        for agent in &agents {
            offered.extend(
                agent
                    .available_slots
                    .iter()
                    .map(|(slot, _)| slot.to_owned()),
            );
        }
        metadata.retain(|(slot, _)| offered.contains(slot));
    }
    Ok(PyJson(Ordered(metadata)))
}

// ----- vfolder types and registries -----

async fn get_vfolder_types(State(ctx): State<ApiContext>) -> Result<PyJson<Vec<String>>, ApiError> {
    Ok(PyJson(super::vfolder::vfolder_types(&ctx).await?))
}

async fn get_docker_registries(
    _caller: Authenticated,
    State(ctx): State<ApiContext>,
) -> Result<PyJson<Ordered<String>>, ApiError> {
    let tree = ctx
        .etcd()
        .get_prefix(REGISTRIES_PREFIX, Scope::Global)
        .await
        .map_err(etcd_failure("reading etcd config/docker/registry"))?;
    let mut registries: Vec<(String, String)> = Vec::new();
    for (name, node) in &tree {
        let url = match node {
            ConfigNode::Value(url) => Some(url.as_str()),
            ConfigNode::Tree(entry) => entry.get("").and_then(ConfigNode::as_value),
        };
        match url {
            // The reference unquotes the (already unquoted) name once more.
            Some(url) => registries.push((unquote(name), url.to_owned())),
            None => tracing::warn!(
                target: "bai_api",
                "etcd {REGISTRIES_PREFIX}{name} has no URL (the value at the node); not listed"
            ),
        }
    }
    Ok(PyJson(Ordered(registries)))
}

// ----- raw etcd access -----

#[derive(Debug, Serialize)]
struct Done {
    result: &'static str,
}

const OK: Done = Done { result: "ok" };

async fn get_config(
    caller: Authenticated,
    State(ctx): State<ApiContext>,
    Params(params): Params<KeyParams>,
) -> Result<Response, ApiError> {
    tracing::info!(
        target: "bai_api",
        "ETCD.GET_CONFIG (ak:{}, key:{}, prefix:{})",
        caller.0.access_key(),
        params.key,
        params.prefix
    );
    if params.prefix {
        #[derive(Debug, Serialize)]
        struct TreeResult<'a> {
            result: TreeJson<'a>,
        }
        let tree = ctx
            .etcd()
            .get_prefix(&params.key, Scope::Global)
            .await
            .map_err(etcd_failure("reading an etcd prefix"))?;
        Ok(PyJson(TreeResult {
            result: TreeJson(&tree),
        })
        .into_response())
    } else {
        #[derive(Debug, Serialize)]
        struct ValueResult {
            result: Option<String>,
        }
        let value = ctx
            .etcd()
            .get(&params.key, Scope::Global)
            .await
            .map_err(etcd_failure("reading an etcd key"))?;
        Ok(PyJson(ValueResult { result: value }).into_response())
    }
}

async fn set_config(
    caller: Authenticated,
    State(ctx): State<ApiContext>,
    Params(params): Params<SetParams>,
) -> Result<PyJson<Done>, ApiError> {
    // Values are not logged: etcd holds passwords.
    tracing::info!(
        target: "bai_api",
        "ETCD.SET_CONFIG (ak:{}, key:{})",
        caller.0.access_key(),
        params.key
    );
    match &params.value {
        Value::Object(object) => {
            let updates = flatten_unquoted(&params.key, object);
            if updates.len() > MAX_SET_KEYS {
                return Err(ApiError::invalid_params(
                    "Too large update! Split into smaller key-value pair sets.",
                ));
            }
            if !updates.is_empty() {
                let pairs: Vec<(String, String)> = updates.into_iter().collect();
                ctx.etcd()
                    .put_dict(&pairs, Scope::Global)
                    .await
                    .map_err(etcd_failure("writing etcd keys"))?;
            }
        }
        scalar => ctx
            .etcd()
            .put(&params.key, &python_str(scalar), Scope::Global)
            .await
            .map_err(etcd_failure("writing an etcd key"))?,
    }
    Ok(PyJson(OK))
}

/// `set_config`'s flattening: nested keys joined with `/` as given (not quoted), the empty key
/// being the node itself, leaves as Python's `str()`; a path given twice keeps the last value.
fn flatten_unquoted(
    prefix: &str,
    object: &serde_json::Map<String, Value>,
) -> IndexMap<String, String> {
    fn walk(
        prefix: &str,
        object: &serde_json::Map<String, Value>,
        out: &mut IndexMap<String, String>,
    ) {
        for (key, value) in object {
            let path = if key.is_empty() {
                prefix.to_owned()
            } else {
                format!("{prefix}/{key}")
            };
            match value {
                Value::Object(child) => walk(&path, child, out),
                leaf => {
                    out.insert(path, python_str(leaf));
                }
            }
        }
    }
    let mut out = IndexMap::new();
    walk(prefix, object, &mut out);
    out
}

async fn delete_config(
    caller: Authenticated,
    State(ctx): State<ApiContext>,
    Params(params): Params<KeyParams>,
) -> Result<PyJson<Done>, ApiError> {
    tracing::info!(
        target: "bai_api",
        "ETCD.DELETE_CONFIG (ak:{}, key:{}, prefix:{})",
        caller.0.access_key(),
        params.key,
        params.prefix
    );
    if params.prefix {
        ctx.etcd()
            .delete_prefix(&params.key, Scope::Global)
            .await
            .map_err(etcd_failure("deleting an etcd prefix"))?;
    } else {
        ctx.etcd()
            .delete(&params.key, Scope::Global)
            .await
            .map_err(etcd_failure("deleting an etcd key"))?;
    }
    Ok(PyJson(OK))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::flatten_unquoted;

    #[test]
    fn set_flattens_without_quoting() {
        let value = json!({"": "root", "a:b": {"c": 1, "d": {"e": true}}, "f": null, "g": [1, "x"], "h": {}});
        let serde_json::Value::Object(object) = value else {
            unreachable!()
        };
        let flat = flatten_unquoted("cfg/x", &object);
        let flat: Vec<(&str, &str)> = flat.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let mut expected = vec![
            ("cfg/x", "root"),
            ("cfg/x/a:b/c", "1"),
            ("cfg/x/a:b/d/e", "True"),
            ("cfg/x/f", "None"),
            ("cfg/x/g", "[1, 'x']"),
        ];
        let mut flat_sorted = flat.clone();
        flat_sorted.sort();
        expected.sort();
        assert_eq!(flat_sorted, expected);
    }
}
