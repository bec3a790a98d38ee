//! Each backend against its real store (the halfstack's PostgreSQL and etcd, a private Redis, a
//! scratch directory): two factories stand for two manager nodes; a node that dies is a runtime
//! dropped with its lock still held (its connections close, its keepers stop), or a killed child
//! process for `filelock`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use bai_db_models::advisory::terminate_lock_holders;
use bai_db_models::testing::TestDatabase;
use bai_etcd_store::EtcdTarget;
use bai_etcd_store::lock::EtcdLocks;
use bai_locks::{LockFactory, LockGuard, LockId, lock_ttl};
use bai_redis::LockDb;
use bai_redis::testing::PrivateRedis;

const HINT: Duration = Duration::from_secs(10);
/// How long a test waits for something that must happen (not a speed requirement).
const PATIENCE: Duration = Duration::from_secs(30);

async fn take(factory: &LockFactory, id: LockId, hint: Duration) -> LockGuard {
    factory
        .try_lock_for(id, hint, PATIENCE)
        .await
        .expect("the store answers")
        .expect("the lock is free")
}

async fn is_taken_elsewhere(factory: &LockFactory, id: LockId) -> bool {
    factory
        .try_lock_for(id, HINT, Duration::from_millis(300))
        .await
        .expect("the store answers")
        .is_none()
}

/// Two nodes: while one holds the lock the other cannot take it; once released, it can.
async fn excludes_each_other(first: &LockFactory, second: &LockFactory, id: LockId) {
    let held = take(first, id, HINT).await;
    assert!(
        is_taken_elsewhere(second, id).await,
        "the second node took a held lock"
    );
    assert!(
        is_taken_elsewhere(first, id).await,
        "the holder's node took its own lock twice"
    );
    held.release().await;
    let held = take(second, id, HINT).await;
    assert!(is_taken_elsewhere(first, id).await);
    held.release().await;
}

/// Takes the lock on a runtime of its own, then drops the runtime with the lock held: the node
/// is gone without releasing anything.
fn die_holding<F, Fut>(make_factory: F, id: LockId, hint: Duration)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = LockFactory>,
{
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let factory = make_factory().await;
            let guard = take(&factory, id, hint).await;
            std::mem::forget(guard);
        });
        drop(runtime);
    })
    .join()
    .expect("the holder's thread");
}

// ---- pg_advisory ----

#[tokio::test]
async fn pg_advisory_locks_exclude_each_other() {
    let db = TestDatabase::create("locks_pg_excl").await;
    let first = LockFactory::pg_advisory(db.config.clone(), None);
    let second = LockFactory::pg_advisory(db.config.clone(), None);
    excludes_each_other(&first, &second, LockId::TEST).await;
}

#[tokio::test]
async fn pg_advisory_lock_of_a_dead_node_is_released() {
    let db = TestDatabase::create("locks_pg_dead").await;
    let config = db.config.clone();
    die_holding(
        move || async move { LockFactory::pg_advisory(config, None) },
        LockId::SCHEDULE_TIMER,
        HINT,
    );
    // Its connection ended with the runtime: PostgreSQL ended the backend and its locks.
    let survivor = LockFactory::pg_advisory(db.config.clone(), None);
    take(&survivor, LockId::SCHEDULE_TIMER, HINT)
        .await
        .release()
        .await;
}

#[tokio::test]
async fn pg_advisory_lock_is_lost_when_its_backend_is_terminated() {
    let db = TestDatabase::create("locks_pg_term").await;
    let holder = LockFactory::pg_advisory(db.config.clone(), None);
    let waiter = LockFactory::pg_advisory(db.config.clone(), None);
    let held = take(&holder, LockId::PREPARE_TIMER, HINT).await;
    let waiting = tokio::spawn(async move { waiter.lock(LockId::PREPARE_TIMER, HINT).await });
    let ended = terminate_lock_holders(&db.connection, LockId::PREPARE_TIMER.0)
        .await
        .expect("terminating the holder");
    assert_eq!(ended, 1, "one backend held the lock");
    let taken = tokio::time::timeout(PATIENCE, waiting)
        .await
        .expect("the waiter took the lock")
        .expect("the waiter's task");
    tokio::time::timeout(PATIENCE, held.lost())
        .await
        .expect("the holder noticed that its lock is gone");
    held.release().await;
    taken.release().await;
}

#[tokio::test]
async fn pg_advisory_lock_conn_timeout_bounds_the_wait_and_the_hold() {
    let db = TestDatabase::create("locks_pg_timeout").await;
    let bounded = LockFactory::pg_advisory(db.config.clone(), Some(Duration::from_secs(1)));
    let unbounded = LockFactory::pg_advisory(db.config.clone(), None);

    // The hold: the lock is given back after lock-conn-timeout, and the holder is told.
    let held = take(&bounded, LockId::TEST, HINT).await;
    tokio::time::timeout(PATIENCE, held.lost())
        .await
        .expect("the hold ended at lock-conn-timeout");
    let other = take(&unbounded, LockId::TEST, HINT).await;

    // The wait: an attempt that would wait for a minute ends at lock-conn-timeout.
    let attempt = tokio::time::timeout(
        PATIENCE,
        bounded.try_lock_for(LockId::TEST, HINT, Duration::from_secs(60)),
    )
    .await
    .expect("the attempt ended at lock-conn-timeout, not after its minute")
    .expect("the store answers");
    assert!(attempt.is_none(), "a held lock was taken");
    other.release().await;
    held.release().await;
}

// ---- filelock ----

#[tokio::test]
async fn file_locks_exclude_each_other() {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let first = LockFactory::file(dir.path().to_owned(), "i-node".to_owned());
    let second = LockFactory::file(dir.path().to_owned(), "i-node".to_owned());
    excludes_each_other(&first, &second, LockId::TEST).await;
    assert!(dir.path().join("i-node.42.lock").exists());
}

#[tokio::test]
async fn file_lock_of_a_killed_process_is_released() {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let path = dir.path().join("i-node.191.lock");
    let factory = LockFactory::file(dir.path().to_owned(), "i-node".to_owned());
    let mut holder = hold_in_child(&path);
    wait_until(|| async { is_taken_elsewhere(&factory, LockId::SCHEDULE_TIMER).await }).await;
    holder.kill().expect("killing the holder");
    holder.wait().expect("reaping the holder");
    take(&factory, LockId::SCHEDULE_TIMER, HINT)
        .await
        .release()
        .await;
}

/// util-linux `flock(1)`: the same `flock(2)` lock, held by another process until it is killed
/// (`--no-fork`: the process that holds the lock is the one killed, no child keeps it open).
fn hold_in_child(path: &Path) -> std::process::Child {
    Command::new("flock")
        .args(["--exclusive", "--no-fork"])
        .arg(path)
        .args(["sleep", "600"])
        .stdin(Stdio::null())
        .spawn()
        .expect("flock(1) (util-linux) must be installed")
}

// ---- redlock ----

#[tokio::test]
async fn redlock_locks_exclude_each_other() {
    let redis = PrivateRedis::start();
    let db = LockDb::connect(&redis.config()).await.expect("Redis");
    let first = LockFactory::redlock(db.clone());
    let second = LockFactory::redlock(LockDb::connect(&redis.config()).await.expect("Redis"));
    let held = take(&first, LockId::TEST, HINT).await;
    let remaining = db
        .remaining("42")
        .await
        .expect("PTTL")
        .expect("the key exists");
    assert!(
        remaining <= lock_ttl(HINT) && remaining > HINT,
        "{remaining:?}"
    );
    held.release().await;
    assert_eq!(db.remaining("42").await.expect("PTTL"), None);
    excludes_each_other(&first, &second, LockId::TEST).await;
}

#[tokio::test]
async fn redlock_lock_of_a_dead_node_expires() {
    let redis = PrivateRedis::start();
    let config = redis.config();
    let short = Duration::from_secs(1);
    die_holding(
        move || async move { LockFactory::redlock(LockDb::connect(&config).await.expect("Redis")) },
        LockId::TEST,
        short,
    );
    let survivor = LockFactory::redlock(LockDb::connect(&redis.config()).await.expect("Redis"));
    // Held until the key expires: lock_ttl(1 s) = 2 s after it was last renewed.
    take(&survivor, LockId::TEST, HINT).await.release().await;
}

#[tokio::test]
async fn redlock_hold_longer_than_the_expiry_is_kept_and_a_lost_key_is_noticed() {
    let redis = PrivateRedis::start();
    let holder = LockFactory::redlock(LockDb::connect(&redis.config()).await.expect("Redis"));
    let other = LockFactory::redlock(LockDb::connect(&redis.config()).await.expect("Redis"));
    let short = Duration::from_secs(1);
    let held = take(&holder, LockId::TEST, short).await;
    // Three expiries (2 s each) later the holder still has it: it renewed.
    tokio::time::sleep(lock_ttl(short) * 3).await;
    assert!(!held.is_lost());
    assert!(is_taken_elsewhere(&other, LockId::TEST).await);
    // Someone deletes the key: the holder finds out at its next renewal.
    let deleted = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "-n", "5", "DEL", "42"])
        .output()
        .expect("redis-cli (Debian package redis-tools) must be installed");
    assert_eq!(String::from_utf8_lossy(&deleted.stdout).trim(), "1");
    tokio::time::timeout(PATIENCE, held.lost())
        .await
        .expect("the holder noticed it lost the lock");
    held.release().await;
}

// ---- etcd ----

/// etcd lock names are global (outside any namespace), as the reference's are: each test takes
/// its own.
fn etcd_lock_id() -> LockId {
    LockId(1_000_000 + i64::from(fastrand::u32(..)))
}

async fn etcd_factory() -> LockFactory {
    let target = EtcdTarget {
        endpoints: vec!["http://127.0.0.1:8120".to_owned()],
        namespace: "locks-test".to_owned(),
        credentials: None,
    };
    LockFactory::etcd(
        EtcdLocks::connect(&target)
            .await
            .expect("etcd at 127.0.0.1:8120"),
    )
}

#[tokio::test]
async fn etcd_locks_exclude_each_other() {
    let first = etcd_factory().await;
    let second = etcd_factory().await;
    excludes_each_other(&first, &second, etcd_lock_id()).await;
}

#[tokio::test]
async fn etcd_lock_of_a_dead_node_ends_with_its_lease() {
    let id = etcd_lock_id();
    let short = Duration::from_secs(1);
    die_holding(etcd_factory, id, short);
    let survivor = etcd_factory().await;
    // Held until the lease (lock_ttl(1 s) = 2 s) runs out.
    take(&survivor, id, HINT).await.release().await;
}

#[tokio::test]
async fn etcd_hold_longer_than_the_lease_is_kept() {
    let id = etcd_lock_id();
    let holder = etcd_factory().await;
    let other = etcd_factory().await;
    let short = Duration::from_secs(1);
    let held = take(&holder, id, short).await;
    tokio::time::sleep(lock_ttl(short) * 3).await;
    assert!(!held.is_lost());
    assert!(is_taken_elsewhere(&other, id).await);
    held.release().await;
    take(&other, id, HINT).await.release().await;
}

async fn wait_until<F, Fut>(mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    tokio::time::timeout(PATIENCE, async {
        while !condition().await {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the condition held in time");
}
