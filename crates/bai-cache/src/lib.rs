//! Per-process caches of what the API reads on every request (the signing keypairs with their
//! users and policies, read-mostly answers such as resource presets and GraphQL queries over
//! identity data), and what keeps them coherent with PostgreSQL.
//!
//! Coherence comes from two sides. Every write of ours to cached data bumps the process's
//! generation at once ([`Caches::changed`]), so that the very next request of any worker thread
//! reads the database again, and announces the change to every other process (`NOTIFY`, through
//! `bai_db_models::changes`), where [`follow_changes`] bumps the generation in turn. An entry
//! loaded under an older generation is never served. Writes made behind the manager's back (psql)
//! are caught by each cache's age bound.
//!
//! It must not know HTTP or what the cached values mean; SQL only through `bai-db-models`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use bai_config::DbConfig;
use bai_db_models::changes::{Change, ChangeListener};
use sea_orm::DatabaseConnection;

/// The first wait before listening again after PostgreSQL failed; it doubles up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(10);

/// The caches of one process share a generation: bumping it invalidates every entry at once.
/// Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Caches {
    generation: Arc<AtomicU64>,
}

impl Caches {
    pub fn new() -> Caches {
        Caches::default()
    }

    /// Invalidates every entry of every cache made from these.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// A write of ours changed cached data (`what`, for logs): invalidates this process's caches
    /// at once and announces it to the others. The write is done already, so a failed
    /// announcement is logged and left to the other processes' age bounds.
    pub async fn changed(&self, db: &DatabaseConnection, what: &str) {
        self.invalidate();
        if let Err(error) = bai_db_models::changes::announce(db, what).await {
            tracing::warn!(
                target: "bai_cache",
                "cannot announce a change of {what} to the other manager processes \
                 (they see it within their caches' age bound): {error}"
            );
        }
    }

    /// A cache of at most `capacity` weight units (each entry weighing `weigh(key, value)`), whose
    /// entries live at most `max_age`.
    pub fn keyed<V>(
        &self,
        name: &'static str,
        max_age: Duration,
        capacity: u64,
        weigh: fn(&str, &V) -> u32,
    ) -> KeyedCache<V>
    where
        V: Clone + Send + Sync + 'static,
    {
        let entries = moka::sync::Cache::builder()
            .name(name)
            .max_capacity(capacity)
            .time_to_live(max_age)
            .weigher(move |key: &String, entry: &Tagged<V>| weigh(key, &entry.value))
            .build();
        KeyedCache {
            entries,
            generation: Arc::clone(&self.generation),
            loads: Arc::default(),
        }
    }
}

/// A value with the generation it was loaded under.
#[derive(Clone, Debug)]
struct Tagged<V> {
    generation: u64,
    value: V,
}

/// Values by string key, served only while their generation is current and younger than the age
/// bound. Cheap to clone: clones share the entries.
#[derive(Clone)]
pub struct KeyedCache<V> {
    entries: moka::sync::Cache<String, Tagged<V>>,
    generation: Arc<AtomicU64>,
    /// One lock per key being loaded ([`KeyedCache::load_turn`]), dropped with its last holder.
    loads: Arc<Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>>,
}

/// The right to load one key while the other requests for it wait (and then find the value).
pub type LoadTurn = tokio::sync::OwnedMutexGuard<()>;

impl<V> std::fmt::Debug for KeyedCache<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyedCache")
            .field("name", &self.entries.name())
            .field("entries", &self.entries.entry_count())
            .finish()
    }
}

/// The generation a load started under: a value loaded with it is stored under it, so that a
/// change announced while the load ran makes the value unservable.
#[derive(Clone, Copy, Debug)]
pub struct Ticket(u64);

impl<V: Clone + Send + Sync + 'static> KeyedCache<V> {
    /// The value under `key`, if it is current.
    pub fn get(&self, key: &str) -> Option<V> {
        let entry = self.entries.get(key)?;
        if entry.generation == self.generation.load(Ordering::Acquire) {
            return Some(entry.value);
        }
        self.entries.invalidate(key);
        None
    }

    /// Take a ticket before reading what will be stored.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.generation.load(Ordering::Acquire))
    }

    /// Stores `value`, read after `ticket` was taken.
    pub fn insert(&self, key: String, value: V, ticket: Ticket) {
        self.entries.insert(
            key,
            Tagged {
                generation: ticket.0,
                value,
            },
        );
    }

    /// Waits until no other caller is loading `key`: a caller that found no value takes its turn,
    /// looks again, and loads only if the value is still missing, so that an expired entry asked
    /// for by many requests at once is loaded once.
    pub async fn load_turn(&self, key: &str) -> LoadTurn {
        let lock = {
            let mut loads = self.loads.lock().unwrap_or_else(PoisonError::into_inner);
            match loads.get(key).and_then(Weak::upgrade) {
                Some(lock) => lock,
                None => {
                    // Locks nobody holds any more go as new ones come.
                    loads.retain(|_, lock| lock.strong_count() > 0);
                    let lock = Arc::new(tokio::sync::Mutex::new(()));
                    loads.insert(key.to_owned(), Arc::downgrade(&lock));
                    lock
                }
            }
        };
        lock.lock_owned().await
    }

    /// The value under `key`, loaded by `load` when there is no current one. Nothing is stored
    /// for `Ok(None)` (an unknown key costs a load each time, so that nobody fills the cache with
    /// keys that do not exist) or for an error.
    pub async fn get_or_try_load<E>(
        &self,
        key: &str,
        load: impl Future<Output = Result<Option<V>, E>>,
    ) -> Result<Option<V>, E> {
        if let Some(value) = self.get(key) {
            return Ok(Some(value));
        }
        let ticket = self.ticket();
        let loaded = load.await?;
        if let Some(value) = &loaded {
            self.insert(key.to_owned(), value.clone(), ticket);
        }
        Ok(loaded)
    }
}

/// Follows the changes other processes announce (and, after an outage, the reconnection, since
/// announcements may have been missed) until `shutdown` resolves, invalidating `caches` on each.
/// PostgreSQL being away is logged and retried with backoff; the caches' age bounds cover what is
/// missed meanwhile.
pub async fn follow_changes(caches: Caches, db: DbConfig, shutdown: impl Future<Output = ()>) {
    tokio::select! {
        () = shutdown => {}
        () = follow(&caches, &db) => {}
    }
}

async fn follow(caches: &Caches, db: &DbConfig) {
    let mut listener: Option<ChangeListener> = None;
    let mut retry = FIRST_RETRY;
    loop {
        let heard = match &mut listener {
            Some(listener) => listener.next().await,
            None => ChangeListener::connect(db).await.map(|connected| {
                listener = Some(connected);
                Change::Reconnected
            }),
        };
        match heard {
            Ok(change) => {
                retry = FIRST_RETRY;
                tracing::debug!(target: "bai_cache", "invalidating the caches: {change:?}");
                caches.invalidate();
            }
            Err(error) => {
                tracing::warn!(
                    target: "bai_cache",
                    "cannot follow the changes other manager processes announce: {error}; \
                     again in {retry:?}"
                );
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(MAX_RETRY);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bai_db_models::testing::TestDatabase;
    use tokio_util::sync::CancellationToken;

    use super::{Caches, follow_changes};

    fn one(_: &str, _: &String) -> u32 {
        1
    }

    #[test]
    fn a_bumped_generation_hides_entries_loaded_before() {
        let caches = Caches::new();
        let cache = caches.keyed("test", Duration::from_secs(60), 100, one);
        let ticket = cache.ticket();
        caches.invalidate();
        // Loaded before the change, stored after it: never served.
        cache.insert("stale".into(), "old".into(), ticket);
        assert_eq!(cache.get("stale"), None);
        cache.insert("fresh".into(), "new".into(), cache.ticket());
        assert_eq!(cache.get("fresh").as_deref(), Some("new"));
        caches.invalidate();
        assert_eq!(cache.get("fresh"), None);
    }

    #[test]
    fn entries_expire_at_their_age_bound() {
        let caches = Caches::new();
        let cache = caches.keyed("test", Duration::from_millis(50), 100, one);
        cache.insert("key".into(), "value".into(), cache.ticket());
        assert!(cache.get("key").is_some());
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(cache.get("key"), None);
    }

    #[tokio::test]
    async fn unknown_keys_are_not_stored() {
        let caches = Caches::new();
        let cache = caches.keyed("test", Duration::from_secs(60), 100, one);
        let mut loads = 0;
        for _ in 0..2 {
            loads += 1;
            let found = cache
                .get_or_try_load("missing", async { Ok::<_, ()>(None) })
                .await;
            assert_eq!(found, Ok(None));
        }
        assert_eq!(loads, 2);
        let found = cache
            .get_or_try_load("present", async { Ok::<_, ()>(Some("v".to_owned())) })
            .await;
        assert_eq!(found.unwrap().as_deref(), Some("v"));
        let again = cache
            .get_or_try_load("present", async { Err::<Option<String>, _>("not called") })
            .await;
        assert_eq!(again.unwrap().as_deref(), Some("v"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_that_miss_together_load_once() {
        let caches = Caches::new();
        let cache = caches.keyed("test", Duration::from_secs(60), 100, one);
        let loads = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let requests = (0..8).map(|_| {
            let (cache, loads) = (cache.clone(), std::sync::Arc::clone(&loads));
            tokio::spawn(async move {
                if let Some(value) = cache.get("key") {
                    return value;
                }
                let _turn = cache.load_turn("key").await;
                if let Some(value) = cache.get("key") {
                    return value;
                }
                let ticket = cache.ticket();
                loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(50)).await;
                cache.insert("key".into(), "value".into(), ticket);
                "value".to_owned()
            })
        });
        for request in requests.collect::<Vec<_>>() {
            assert_eq!(request.await.unwrap(), "value");
        }
        assert_eq!(loads.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    /// Two processes on one database: a change one of them makes reaches the other's caches.
    #[tokio::test]
    async fn a_change_announced_by_one_process_invalidates_the_others() {
        let database = TestDatabase::create("cache_follow").await;
        let (here, there) = (Caches::new(), Caches::new());
        let cache = there.keyed("test", Duration::from_secs(60), 100, one);
        let stop = CancellationToken::new();
        let follower = tokio::spawn(follow_changes(
            there.clone(),
            database.config.clone(),
            stop.clone().cancelled_owned(),
        ));
        // The follower announces its first connection as a change: wait until it has listened.
        tokio::time::timeout(Duration::from_secs(10), async {
            while there.generation.load(std::sync::atomic::Ordering::Acquire) == 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the follower listens within 10 s");
        cache.insert("key".into(), "value".into(), cache.ticket());
        here.changed(&database.connection, "keypairs").await;
        tokio::time::timeout(Duration::from_secs(10), async {
            while cache.get("key").is_some() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the other process's entry is invalidated within 10 s");
        stop.cancel();
        follower.await.unwrap();
    }
}
