//! The connection to etcd and the reference's operations on it: every key lives under
//! `/sorna/{namespace}/`, then an optional scope prefix (scaling group or node), then the caller's key.

use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, EventType, GetOptions, SortOrder,
    SortTarget, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use futures_util::{Stream, StreamExt};

use crate::error::EtcdError;
use crate::tree::{ConfigTree, flatten, merge_shallow, tree_from_pairs, tree_to_json};

mod lease;
pub use lease::LeaseId;

/// etcd's default `--max-txn-ops`: the most operations one transaction may hold.
pub const MAX_TXN_OPS: usize = 128;

/// How often [`EtcdStore::replace_node`] reads the node again when it changed meanwhile.
const REPLACE_ATTEMPTS: usize = 5;

/// How long to wait for an unreachable etcd before saying so.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Each request, once connected: while etcd is down or wedged, callers (API requests among them)
/// hear so within this bound instead of waiting for it to come back.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Connecting and the first answer together: an operator hears about a dead or hung etcd within
/// 5 s, even when it accepts the connection and then stays silent.
const FIRST_ANSWER_TIMEOUT: Duration = Duration::from_secs(4);

/// What [`EtcdStore::replace_node`] requires of the node before it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeCondition {
    /// Write whether or not the node is there (create or replace).
    Any,
    /// Write only if a value is stored at the node's own key (replace or delete what exists).
    ValuePresent,
}

/// Which layer of the configuration an operation reads or writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Reads search node, then scaling group, then global; writes are not allowed.
    Merged,
    Global,
    ScalingGroup,
    Node,
}

/// The key prefix of each scope below the namespace root. The manager and its CLI use only the
/// global scope with an empty prefix; agents add `sgroup/{name}` and `nodes/agents/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScopePrefixes {
    pub global: String,
    pub scaling_group: Option<String>,
    pub node: Option<String>,
}

impl ScopePrefixes {
    /// The prefixes an agent of `scaling_group` with id `agent_id` uses.
    pub fn for_agent(scaling_group: &str, agent_id: &str) -> Self {
        ScopePrefixes {
            global: String::new(),
            scaling_group: Some(format!("sgroup/{scaling_group}")),
            node: Some(format!("nodes/agents/{agent_id}")),
        }
    }
}

/// Where to connect and as whom.
#[derive(Debug, Clone)]
pub struct EtcdTarget {
    pub endpoints: Vec<String>,
    pub namespace: String,
    /// User and password for etcd's own authentication; none when the user is empty.
    pub credentials: Option<(String, String)>,
}

impl EtcdTarget {
    /// The target `[etcd]` of manager.toml describes (all of `addrs` when given, else `addr`).
    pub fn from_config(config: &bai_config::EtcdConfig) -> Self {
        EtcdTarget {
            endpoints: config
                .endpoints()
                .iter()
                .map(|addr| format!("http://{addr}"))
                .collect(),
            namespace: config.namespace.clone(),
            credentials: (!config.user.is_empty())
                .then(|| (config.user.clone(), config.password.clone())),
        }
    }
}

/// What a watch saw happen to a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchEvent {
    Put { key: String, value: String },
    Delete { key: String },
}

/// A connected etcd client bound to one namespace and set of scope prefixes.
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    target: EtcdTarget,
    scopes: ScopePrefixes,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.target.endpoints)
            .field("namespace", &self.target.namespace)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connects and checks that etcd answers, failing within a few seconds when it does not.
    pub async fn connect(target: EtcdTarget, scopes: ScopePrefixes) -> Result<Self, EtcdError> {
        let mut options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT);
        if let Some((user, password)) = &target.credentials {
            options = options.with_user(user.clone(), password.clone());
        }
        let unreachable = |source| EtcdError::Unreachable {
            endpoints: target.endpoints.join(", "),
            source,
        };
        let connecting = async {
            let mut client = Client::connect(target.endpoints.clone(), Some(options)).await?;
            client.status().await?;
            Ok::<_, etcd_client::Error>(client)
        };
        let client = tokio::time::timeout(FIRST_ANSWER_TIMEOUT, connecting)
            .await
            .map_err(|_| EtcdError::Timeout {
                endpoints: target.endpoints.join(", "),
            })?
            .map_err(unreachable)?;
        Ok(EtcdStore {
            client,
            target,
            scopes,
        })
    }

    pub fn namespace(&self) -> &str {
        &self.target.namespace
    }

    /// The full etcd key of `key` in `scope`: `/sorna/{namespace}/{scope prefix/}{key}`.
    pub fn raw_key(&self, key: &str, scope: Scope) -> Result<String, EtcdError> {
        let prefix = self.scope_prefix(scope)?;
        Ok(self.mangle(prefix, key))
    }

    /// The value of `key`, from the first scope (in search order) that has it.
    pub async fn get(&self, key: &str, scope: Scope) -> Result<Option<String>, EtcdError> {
        for prefix in self.read_prefixes(scope)? {
            let mut response = self
                .client
                .kv_client()
                .get(self.mangle(prefix, key), None)
                .await
                .map_err(|source| self.failed("get", key, source))?;
            if let Some(kv) = response.take_kvs().into_iter().next() {
                return Ok(Some(String::from_utf8_lossy(kv.value()).into_owned()));
            }
        }
        Ok(None)
    }

    /// Every key starting with `key` (a plain string prefix, so `config/redis` also matches
    /// `config/redis-x`), as a tree; scopes are merged at the top level only.
    pub async fn get_prefix(&self, key: &str, scope: Scope) -> Result<ConfigTree, EtcdError> {
        let mut trees = Vec::new();
        for prefix in self.read_prefixes(scope)? {
            let pairs = self.scan(prefix, key).await?;
            let relative_prefix = format!("{}{key}", slash(prefix));
            trees.push(tree_from_pairs(
                &relative_prefix,
                pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            ));
        }
        Ok(merge_shallow(trees))
    }

    pub async fn put(&self, key: &str, value: &str, scope: Scope) -> Result<(), EtcdError> {
        let raw = self.raw_key(key, self.write_scope(scope)?)?;
        self.client
            .kv_client()
            .put(raw, value, None)
            .await
            .map_err(|source| self.failed("put", key, source))?;
        Ok(())
    }

    /// Writes a JSON object below `key` with the reference's flattening (see [`crate::flatten`]).
    /// Returns how many keys were written.
    pub async fn put_prefix(
        &self,
        key: &str,
        object: &serde_json::Map<String, serde_json::Value>,
        scope: Scope,
    ) -> Result<usize, EtcdError> {
        let pairs = flatten(key, object);
        self.put_dict(&pairs, scope).await?;
        Ok(pairs.len())
    }

    /// Writes already-quoted `(key, value)` pairs, all or none.
    ///
    /// Up to [`MAX_TXN_OPS`] pairs go in one transaction. A larger set is written in several
    /// transactions; the previous values of the keys are read first, and if a later transaction
    /// fails the earlier ones are undone, so a reader may briefly see part of the new values but
    /// the end state is either all new or all old.
    pub async fn put_dict(
        &self,
        pairs: &[(String, String)],
        scope: Scope,
    ) -> Result<(), EtcdError> {
        let scope = self.write_scope(scope)?;
        let puts: Vec<(String, String)> = pairs
            .iter()
            .map(|(key, value)| Ok((self.raw_key(key, scope)?, value.clone())))
            .collect::<Result<_, EtcdError>>()?;
        if puts.len() <= MAX_TXN_OPS {
            return self
                .commit(
                    puts.iter()
                        .map(|(k, v)| TxnOp::put(k.as_str(), v.as_str(), None)),
                )
                .await;
        }
        // The previous values, read MAX_TXN_OPS keys per round trip, to undo a partial write.
        let mut previous = Vec::with_capacity(puts.len());
        for chunk in puts.chunks(MAX_TXN_OPS) {
            let gets: Vec<TxnOp> = chunk
                .iter()
                .map(|(key, _)| TxnOp::get(key.as_str(), None))
                .collect();
            let response = self
                .client
                .kv_client()
                .txn(Txn::new().and_then(gets))
                .await
                .map_err(|source| self.failed("read before writing", &chunk[0].0, source))?;
            for ((key, _), answer) in chunk.iter().zip(response.op_responses()) {
                let old = match answer {
                    TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.value().to_vec()),
                    _ => None,
                };
                previous.push((key.clone(), old));
            }
        }
        for (index, chunk) in puts.chunks(MAX_TXN_OPS).enumerate() {
            let ops = chunk
                .iter()
                .map(|(k, v)| TxnOp::put(k.as_str(), v.as_str(), None));
            if let Err(error) = self.commit(ops).await {
                let written = &previous[..index * MAX_TXN_OPS];
                let undo = written.iter().map(|(key, old)| match old {
                    Some(value) => TxnOp::put(key.as_str(), value.clone(), None),
                    None => TxnOp::delete(key.as_str(), None),
                });
                let undo: Vec<TxnOp> = undo.collect();
                for chunk in undo.chunks(MAX_TXN_OPS) {
                    self.commit(chunk.iter().cloned()).await?;
                }
                return Err(error);
            }
        }
        Ok(())
    }

    /// Deletes one key; returns whether it existed.
    pub async fn delete(&self, key: &str, scope: Scope) -> Result<bool, EtcdError> {
        let raw = self.raw_key(key, self.write_scope(scope)?)?;
        let response = self
            .client
            .kv_client()
            .delete(raw, None)
            .await
            .map_err(|source| self.failed("delete", key, source))?;
        Ok(response.deleted() > 0)
    }

    /// Deletes every key starting with `key` (a plain string prefix); returns how many.
    pub async fn delete_prefix(&self, key: &str, scope: Scope) -> Result<i64, EtcdError> {
        let raw = self.raw_key(key, self.write_scope(scope)?)?;
        let response = self
            .client
            .kv_client()
            .delete(raw, Some(DeleteOptions::new().with_prefix()))
            .await
            .map_err(|source| self.failed("delete", key, source))?;
        Ok(response.deleted())
    }

    /// Replaces the node `key` (the value at `key` itself and every key below `key/`, but no
    /// sibling that merely starts with the same text, such as `key-2`) with `pairs` (full keys,
    /// already quoted, as for [`EtcdStore::put_dict`]; empty to delete the node) in one
    /// transaction, so a reader sees the old node or the new one, never a mix. Returns whether the
    /// node was there; under [`NodeCondition::ValuePresent`] a node without a value at `key` is left
    /// alone and nothing is written. etcd refuses more than [`MAX_TXN_OPS`] keys old and new.
    ///
    /// etcd refuses a transaction whose range delete overlaps one of its puts, so the node's keys
    /// are read first and the transaction deletes those the new pairs do not overwrite, one by one,
    /// if none of them changed and none was added since; otherwise it reads again.
    pub async fn replace_node(
        &self,
        key: &str,
        pairs: &[(String, String)],
        condition: NodeCondition,
        scope: Scope,
    ) -> Result<bool, EtcdError> {
        let scope = self.write_scope(scope)?;
        let node = self.raw_key(key, scope)?;
        let below = format!("{node}/");
        let puts: Vec<(String, &str)> = pairs
            .iter()
            .map(|(pair_key, value)| Ok((self.raw_key(pair_key, scope)?, value.as_str())))
            .collect::<Result<_, EtcdError>>()?;
        for _ in 0..REPLACE_ATTEMPTS {
            let snapshot = self.node_snapshot(key, &node, &below).await?;
            if condition == NodeCondition::ValuePresent && snapshot.node_revision == 0 {
                return Ok(false);
            }
            let unchanged = [
                Compare::mod_revision(node.as_str(), CompareOp::Equal, snapshot.node_revision),
                Compare::mod_revision(below.as_str(), CompareOp::Less, snapshot.revision + 1)
                    .with_prefix(),
            ];
            let mut ops: Vec<TxnOp> = snapshot
                .keys
                .iter()
                .filter(|old| !puts.iter().any(|(new, _)| new.as_bytes() == old.as_slice()))
                .map(|old| TxnOp::delete(old.clone(), None))
                .collect();
            ops.extend(
                puts.iter()
                    .map(|(new, value)| TxnOp::put(new.as_str(), *value, None)),
            );
            let response = self
                .client
                .kv_client()
                .txn(Txn::new().when(unchanged).and_then(ops))
                .await
                .map_err(|source| self.failed("replace", key, source))?;
            if response.succeeded() {
                return Ok(!snapshot.keys.is_empty());
            }
        }
        Err(EtcdError::ReplaceConflict {
            key: key.to_owned(),
        })
    }

    /// Moves every key below `source` to `destination`. When the subtree fits one transaction the
    /// move is atomic and happens only if nothing below `source` changed since it was read.
    pub async fn move_subtree(
        &self,
        source: &str,
        destination: &str,
        scope: Scope,
    ) -> Result<usize, EtcdError> {
        let scope = self.write_scope(scope)?;
        let prefix = self.scope_prefix(scope)?;
        // Only this scope's keys move (a read through `get_prefix` would fall back to the global
        // scope and copy its keys here), and the same snapshot is both moved and compared.
        let snapshot = self.scan(prefix, source).await?;
        let tree = tree_from_pairs(
            &format!("{}{source}", slash(prefix)),
            snapshot.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        );
        let pairs = flatten(destination, &tree_to_json(&tree));
        let source_raw = self.mangle(prefix, source);
        if pairs.len() < MAX_TXN_OPS {
            let unchanged: Vec<Compare> = snapshot
                .iter()
                .map(|(key, value)| {
                    Compare::value(self.mangle("", key), CompareOp::Equal, value.as_str())
                })
                .collect();
            let mut ops = vec![TxnOp::delete(
                source_raw.as_str(),
                Some(DeleteOptions::new().with_prefix()),
            )];
            for (key, value) in &pairs {
                ops.push(TxnOp::put(self.mangle(prefix, key), value.as_str(), None));
            }
            let response = self
                .client
                .kv_client()
                .txn(Txn::new().when(unchanged).and_then(ops))
                .await
                .map_err(|error| self.failed("move", source, error))?;
            if !response.succeeded() {
                return Err(EtcdError::Conflict {
                    key: source.to_owned(),
                });
            }
        } else {
            self.put_dict(&pairs, scope).await?;
            self.delete_prefix(source, scope).await?;
        }
        Ok(pairs.len())
    }

    /// Changes to `key` (or, with `prefix`, to every key starting with it) in one scope, with keys
    /// relative to that scope, as the reference's `watch`/`watch_prefix` report them.
    pub async fn watch(
        &self,
        key: &str,
        scope: Scope,
        prefix: bool,
    ) -> Result<impl Stream<Item = Result<WatchEvent, EtcdError>> + use<>, EtcdError> {
        let scope_root = self.mangle(self.scope_prefix(self.write_scope(scope)?)?, "");
        let options = prefix.then(|| WatchOptions::new().with_prefix());
        let stream = self
            .client
            .watch_client()
            .watch(format!("{scope_root}{key}"), options)
            .await
            .map_err(|source| self.failed("watch", key, source))?;
        let events = stream.flat_map(move |message| {
            let events: Vec<Result<WatchEvent, EtcdError>> = match message {
                Err(source) => vec![Err(EtcdError::WatchBroken { source })],
                Ok(response) => response
                    .events()
                    .iter()
                    .filter_map(|event| {
                        let kv = event.kv()?;
                        let key = String::from_utf8_lossy(kv.key());
                        let key = key.strip_prefix(&scope_root).unwrap_or(&key).to_owned();
                        Some(Ok(match event.event_type() {
                            EventType::Put => WatchEvent::Put {
                                key,
                                value: String::from_utf8_lossy(kv.value()).into_owned(),
                            },
                            EventType::Delete => WatchEvent::Delete { key },
                        }))
                    })
                    .collect(),
            };
            futures_util::stream::iter(events)
        });
        Ok(events)
    }

    /// The raw keys of the node at `node` (its own key and those below `below`), read in one
    /// snapshot, with the revision of that snapshot and the node's own key's (0 when absent).
    async fn node_snapshot(
        &self,
        key: &str,
        node: &str,
        below: &str,
    ) -> Result<NodeSnapshot, EtcdError> {
        let reads = [
            TxnOp::get(node, None),
            TxnOp::get(
                below,
                Some(GetOptions::new().with_prefix().with_keys_only()),
            ),
        ];
        let response = self
            .client
            .kv_client()
            .txn(Txn::new().and_then(reads))
            .await
            .map_err(|source| self.failed("read before replacing", key, source))?;
        let mut snapshot = NodeSnapshot {
            revision: response.header().map_or(0, |header| header.revision()),
            node_revision: 0,
            keys: Vec::new(),
        };
        for answer in response.op_responses() {
            if let TxnOpResponse::Get(get) = answer {
                for kv in get.kvs() {
                    if kv.key() == node.as_bytes() {
                        snapshot.node_revision = kv.mod_revision();
                    }
                    snapshot.keys.push(kv.key().to_vec());
                }
            }
        }
        Ok(snapshot)
    }

    /// Every `(key, value)` below `key` in the scope with `prefix`, keys relative to the namespace
    /// root, sorted.
    async fn scan(&self, prefix: &str, key: &str) -> Result<Vec<(String, String)>, EtcdError> {
        let options = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Key, SortOrder::Ascend);
        let mut response = self
            .client
            .kv_client()
            .get(self.mangle(prefix, key), Some(options))
            .await
            .map_err(|source| self.failed("get", key, source))?;
        let root = self.mangle("", "");
        Ok(response
            .take_kvs()
            .iter()
            .map(|kv| {
                let raw = String::from_utf8_lossy(kv.key());
                let relative = raw.strip_prefix(&root).unwrap_or(&raw).to_owned();
                (relative, String::from_utf8_lossy(kv.value()).into_owned())
            })
            .collect())
    }

    async fn commit(&self, ops: impl IntoIterator<Item = TxnOp>) -> Result<(), EtcdError> {
        let ops: Vec<TxnOp> = ops.into_iter().collect();
        self.client
            .kv_client()
            .txn(Txn::new().and_then(ops))
            .await
            .map_err(|source| EtcdError::Transaction {
                namespace: self.target.namespace.clone(),
                source,
            })?;
        Ok(())
    }

    fn mangle(&self, scope_prefix: &str, key: &str) -> String {
        let key = key.strip_prefix('/').unwrap_or(key);
        format!(
            "/sorna/{}/{}{key}",
            self.target.namespace,
            slash(scope_prefix)
        )
    }

    fn scope_prefix(&self, scope: Scope) -> Result<&str, EtcdError> {
        let missing = |name| EtcdError::ScopeNotConfigured { scope: name };
        match scope {
            Scope::Global => Ok(&self.scopes.global),
            Scope::ScalingGroup => self
                .scopes
                .scaling_group
                .as_deref()
                .ok_or(missing("scaling-group")),
            Scope::Node => self.scopes.node.as_deref().ok_or(missing("node")),
            Scope::Merged => Err(EtcdError::MergedWrite),
        }
    }

    fn write_scope(&self, scope: Scope) -> Result<Scope, EtcdError> {
        self.scope_prefix(scope).map(|_| scope)
    }

    /// The scope prefixes a read searches, most specific first.
    fn read_prefixes(&self, scope: Scope) -> Result<Vec<&str>, EtcdError> {
        let node = self.scopes.node.as_deref();
        let group = self.scopes.scaling_group.as_deref();
        let global = Some(self.scopes.global.as_str());
        let order = match scope {
            Scope::Merged | Scope::Node => [node, group, global],
            Scope::ScalingGroup => [None, group, global],
            Scope::Global => [None, None, global],
        };
        if scope != Scope::Merged {
            self.scope_prefix(scope)?;
        }
        Ok(order.into_iter().flatten().collect())
    }

    fn failed(&self, operation: &'static str, key: &str, source: etcd_client::Error) -> EtcdError {
        EtcdError::Request {
            operation,
            key: key.to_owned(),
            endpoints: self.target.endpoints.join(", "),
            source,
        }
    }
}

/// A node's keys as [`EtcdStore::replace_node`] read them.
struct NodeSnapshot {
    /// The store's revision when read.
    revision: i64,
    /// The node's own key's last change; 0 when it has no value.
    node_revision: i64,
    /// Raw keys: the node's own (when it has a value) and every key below it.
    keys: Vec<Vec<u8>>,
}

/// `prefix/` for a non-empty scope prefix, nothing for an empty one.
fn slash(prefix: &str) -> String {
    if prefix.is_empty() {
        String::new()
    } else {
        format!("{}/", prefix.trim_end_matches('/'))
    }
}
