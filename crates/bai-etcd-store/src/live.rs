//! The shared configuration kept current: a [`SharedConfigWatcher`] watches `config/` and
//! `volumes/` and publishes each change, read again and validated, to every [`LiveSharedConfig`].
//! A [`KeysWatcher`] does the same for a few raw keys ([`LiveKeys`]).
//!
//! A section whose new settings have an error keeps its previous settings ([`SharedConfig::revise`])
//! and the errors are logged with their keys; values are never logged (etcd holds passwords, and
//! the problems never quote one). When the watch breaks (etcd restarted, the connection dropped)
//! the watcher opens it again and reads everything once more, so no change is missed.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::watch;

use crate::error::EtcdError;
use crate::shared_config::{SharedConfig, SharedConfigError};
use crate::store::{EtcdStore, Scope};

/// How long the watcher waits after a change for the rest of it (a `put-json` writes many keys, a
/// transaction many events) before reading the tree again.
const SETTLE: Duration = Duration::from_millis(200);
/// The first wait before opening a broken watch again; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(10);

/// The shared configuration in effect. Cheap to clone; [`LiveSharedConfig::current`] costs one
/// reference count, so callers read it per request or per run instead of keeping a copy.
#[derive(Clone)]
pub struct LiveSharedConfig {
    current: watch::Receiver<Arc<SharedConfig>>,
}

impl LiveSharedConfig {
    /// A configuration that never changes (an embedder's, a test's).
    pub fn fixed(config: SharedConfig) -> LiveSharedConfig {
        let (_, current) = watch::channel(Arc::new(config));
        LiveSharedConfig { current }
    }

    /// The settings in effect now.
    pub fn current(&self) -> Arc<SharedConfig> {
        Arc::clone(&self.current.borrow())
    }

    /// Waits for the next change and returns the settings it brought; `None` once nothing will
    /// change any more (the watcher stopped, or the configuration is fixed).
    pub async fn changed(&mut self) -> Option<Arc<SharedConfig>> {
        self.current.changed().await.ok()?;
        Some(Arc::clone(&self.current.borrow_and_update()))
    }
}

impl From<SharedConfig> for LiveSharedConfig {
    fn from(config: SharedConfig) -> Self {
        LiveSharedConfig::fixed(config)
    }
}

impl fmt::Debug for LiveSharedConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LiveSharedConfig")
            .field(&*self.current.borrow())
            .finish()
    }
}

/// Keeps the [`LiveSharedConfig`]s it made current while [`SharedConfigWatcher::run`] runs.
pub struct SharedConfigWatcher {
    store: EtcdStore,
    publish: watch::Sender<Arc<SharedConfig>>,
}

impl fmt::Debug for SharedConfigWatcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedConfigWatcher")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl SharedConfigWatcher {
    /// Reads the shared configuration as a manager does at start (every error refuses it) and
    /// returns it, live, with the watcher that keeps it current once run.
    pub async fn load(
        store: EtcdStore,
    ) -> Result<(LiveSharedConfig, SharedConfigWatcher), SharedConfigError> {
        let config = SharedConfig::load(&store).await?;
        let (publish, current) = watch::channel(Arc::new(config));
        Ok((
            LiveSharedConfig { current },
            SharedConfigWatcher { store, publish },
        ))
    }

    /// Follows etcd until `shutdown` resolves or no [`LiveSharedConfig`] is left.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tokio::select! {
            () = shutdown => {}
            () = self.publish.closed() => {}
            () = follow(
                &self.store,
                "the shared configuration",
                &["config/", "volumes/"],
                SETTLE,
                || self.refresh(),
            ) => {}
        }
    }

    /// Reads both trees and publishes the revised configuration if it differs.
    async fn refresh(&self) -> Result<(), EtcdError> {
        let config = self.store.get_prefix("config", Scope::Global).await?;
        let volumes = self.store.get_prefix("volumes", Scope::Global).await?;
        let previous = Arc::clone(&self.publish.borrow());
        let revision = previous.revise(&config, &volumes);
        for rejected in &revision.rejected {
            for problem in &rejected.problems {
                tracing::error!(
                    target: "bai_etcd_store",
                    "etcd {}: {}; the previous settings of {} stay in effect",
                    problem.key,
                    problem.message,
                    rejected.key
                );
            }
        }
        for warning in &revision.config.warnings {
            if !previous.warnings.contains(warning) {
                tracing::warn!(target: "bai_etcd_store", "etcd {}: {}", warning.key, warning.message);
            }
        }
        let revised = revision.config;
        self.publish.send_if_modified(|current| {
            if **current == revised {
                return false;
            }
            tracing::info!(target: "bai_etcd_store", "the shared configuration changed in etcd");
            *current = Arc::new(revised);
            true
        });
        Ok(())
    }
}

/// Watches `prefixes` and calls `refresh` once they are open (so that nothing changed before is
/// missed), then after each change, once no event came for `settle`. When a watch breaks (etcd
/// restarted, the connection dropped) it opens them again after a backoff. `what` names the data
/// for logs.
async fn follow<Refresh, Refreshed>(
    store: &EtcdStore,
    what: &str,
    prefixes: &[&str],
    settle: Duration,
    mut refresh: Refresh,
) where
    Refresh: FnMut() -> Refreshed,
    Refreshed: Future<Output = Result<(), EtcdError>>,
{
    let mut retry = FIRST_RETRY;
    loop {
        match follow_once(store, prefixes, settle, &mut refresh).await {
            Ok(()) => retry = FIRST_RETRY,
            Err(error) => {
                tracing::warn!(
                    target: "bai_etcd_store",
                    "watching {what}: {error}; again in {retry:?}"
                );
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(MAX_RETRY);
            }
        }
    }
}

async fn follow_once<Refresh, Refreshed>(
    store: &EtcdStore,
    prefixes: &[&str],
    settle: Duration,
    refresh: &mut Refresh,
) -> Result<(), EtcdError>
where
    Refresh: FnMut() -> Refreshed,
    Refreshed: Future<Output = Result<(), EtcdError>>,
{
    let mut watches = Vec::with_capacity(prefixes.len());
    for prefix in prefixes {
        watches.push(store.watch(prefix, Scope::Global, true).await?);
    }
    let mut events = futures_util::stream::select_all(watches);
    refresh().await?;
    loop {
        match events.next().await {
            Some(Ok(_)) => {}
            Some(Err(error)) => return Err(error),
            None => return Ok(()),
        }
        // The rest of the change: events until it settles.
        while !settle.is_zero() {
            tokio::select! {
                event = events.next() => match event {
                    Some(Ok(_)) => {}
                    Some(Err(error)) => return Err(error),
                    None => return Ok(()),
                },
                () = tokio::time::sleep(settle) => break,
            }
        }
        refresh().await?;
    }
}

/// Some keys of the global scope kept current, raw (e.g. the manager status and the announcement
/// under `manager/`), for values read on every request. Cheap to clone: clones share the values.
#[derive(Clone, Debug)]
pub struct LiveKeys {
    values: Arc<RwLock<KeyValues>>,
}

#[derive(Debug)]
struct KeyValues {
    values: BTreeMap<&'static str, String>,
    /// How many values this process noted: a read of etcd that began before the last note may
    /// hold an older value than the noted one, and must not replace it.
    notes: u64,
}

impl LiveKeys {
    fn new(values: BTreeMap<&'static str, String>) -> LiveKeys {
        LiveKeys {
            values: Arc::new(RwLock::new(KeyValues { values, notes: 0 })),
        }
    }

    /// The value of `key` now; `None` when it is absent (or not one of the keys followed).
    pub fn get(&self, key: &str) -> Option<String> {
        self.read().values.get(key).cloned()
    }

    /// Takes a value this process just wrote to etcd (`None`: deleted) at once, without waiting
    /// for the watch to bring it back.
    pub fn note(&self, key: &'static str, value: Option<String>) {
        let mut current = self.write();
        current.notes += 1;
        match value {
            Some(value) => current.values.insert(key, value),
            None => current.values.remove(key),
        };
    }

    /// How many values were noted so far; taken before a read of etcd for [`Self::replace`].
    fn notes(&self) -> u64 {
        self.read().notes
    }

    /// Takes the values of a read of etcd that began when [`Self::notes`] was `notes_before`.
    /// When a value was noted since, the read may predate that write and is dropped: the write's
    /// own watch event brings a read that includes it.
    fn replace(&self, notes_before: u64, values: BTreeMap<&'static str, String>) {
        let mut current = self.write();
        if current.notes == notes_before {
            current.values = values;
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, KeyValues> {
        // Plain values: a panic elsewhere cannot leave them inconsistent.
        self.values.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, KeyValues> {
        self.values.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Keeps the [`LiveKeys`] it made current while [`KeysWatcher::run`] runs.
#[derive(Debug)]
pub struct KeysWatcher {
    store: EtcdStore,
    prefix: &'static str,
    keys: &'static [&'static str],
    live: LiveKeys,
}

impl KeysWatcher {
    /// Reads `keys` (all under `prefix`, which ends with `/`) once and returns them, live, with the
    /// watcher that keeps them current once run.
    pub async fn load(
        store: EtcdStore,
        prefix: &'static str,
        keys: &'static [&'static str],
    ) -> Result<(LiveKeys, KeysWatcher), EtcdError> {
        let live = LiveKeys::new(read_keys(&store, keys).await?);
        Ok((
            live.clone(),
            KeysWatcher {
                store,
                prefix,
                keys,
                live,
            },
        ))
    }

    /// Follows etcd until `shutdown` resolves. A change is read as soon as it is seen (the keys are
    /// written one at a time). While etcd is away the last values read stay in effect.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let what = format!("etcd {}", self.prefix);
        let prefixes = [self.prefix];
        tokio::select! {
            () = shutdown => {}
            () = follow(&self.store, &what, &prefixes, Duration::ZERO, || self.refresh()) => {}
        }
    }

    async fn refresh(&self) -> Result<(), EtcdError> {
        let notes_before = self.live.notes();
        let values = read_keys(&self.store, self.keys).await?;
        self.live.replace(notes_before, values);
        Ok(())
    }
}

async fn read_keys(
    store: &EtcdStore,
    keys: &'static [&'static str],
) -> Result<BTreeMap<&'static str, String>, EtcdError> {
    let mut values = BTreeMap::new();
    for &key in keys {
        if let Some(value) = store.get(key, Scope::Global).await? {
            values.insert(key, value);
        }
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "manager/status";

    fn keys(status: &str) -> BTreeMap<&'static str, String> {
        BTreeMap::from([(STATUS, status.to_owned())])
    }

    #[test]
    fn a_read_that_began_before_a_note_does_not_undo_it() {
        let live = LiveKeys::new(keys("frozen"));
        let notes_before = live.notes();
        live.note(STATUS, Some("running".to_owned()));
        live.replace(notes_before, keys("terminated"));
        assert_eq!(live.get(STATUS).as_deref(), Some("running"));

        live.replace(live.notes(), keys("frozen"));
        assert_eq!(live.get(STATUS).as_deref(), Some("frozen"));
    }
}
