//! Global timers of two nodes on one lock produce about one event per interval between them, on
//! the real stores (the halfstack's PostgreSQL, a scratch directory, a private Redis for the
//! event stream); a stopped timer gives its lock back.

use std::time::{Duration, Instant};

use bai_db_models::testing::TestDatabase;
use bai_events::{Event, EventProducer};
use bai_locks::{GlobalTimer, LockFactory, LockId};
use bai_redis::StreamDb;
use bai_redis::testing::PrivateRedis;
use tokio_util::sync::CancellationToken;

const INTERVAL: Duration = Duration::from_millis(300);
/// How long the timers run: about ten intervals.
const RUN_FOR: Duration = Duration::from_secs(3);

/// Runs a timer per factory (each a node) for [`RUN_FOR`] and checks how many events they made.
async fn one_event_per_interval_between(nodes: [LockFactory; 2]) {
    let redis = PrivateRedis::start();
    let stream = StreamDb::connect(&redis.config()).await.expect("Redis");
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let timers: Vec<_> = nodes
        .into_iter()
        .map(|locks| {
            let timer = GlobalTimer::new(
                locks,
                LockId::TEST,
                EventProducer::new(stream.clone()),
                Event::DoSchedule,
                INTERVAL,
            );
            tokio::spawn(timer.run(shutdown.clone()))
        })
        .collect();
    tokio::time::sleep(RUN_FOR).await;
    shutdown.cancel();
    for timer in timers {
        timer.await.expect("the timer stopped");
    }
    let intervals = started.elapsed().as_secs_f64() / INTERVAL.as_secs_f64();
    let events = stream.entry_count().await.expect("XLEN") as f64;
    // At most one event per interval that began (two unlocked timers would make twice as many);
    // at least a few, however slow the machine.
    assert!(
        events <= intervals.ceil() + 1.0,
        "{events} events in {intervals:.1} intervals"
    );
    assert!(events >= 3.0, "{events} events in {intervals:.1} intervals");
}

#[tokio::test]
async fn pg_advisory_timers_produce_one_event_per_interval() {
    let db = TestDatabase::create("locks_timer_pg").await;
    one_event_per_interval_between([
        LockFactory::pg_advisory(db.config.clone(), None),
        LockFactory::pg_advisory(db.config.clone(), None),
    ])
    .await;
}

#[tokio::test]
async fn file_lock_timers_produce_one_event_per_interval() {
    let dir = tempfile::tempdir().expect("a scratch directory");
    one_event_per_interval_between([
        LockFactory::file(dir.path().to_owned(), "i-node".to_owned()),
        LockFactory::file(dir.path().to_owned(), "i-node".to_owned()),
    ])
    .await;
}

#[tokio::test]
async fn a_stopped_timer_releases_its_lock() {
    let db = TestDatabase::create("locks_timer_stop").await;
    let redis = PrivateRedis::start();
    let stream = StreamDb::connect(&redis.config()).await.expect("Redis");
    let shutdown = CancellationToken::new();
    // A long interval: after its first event the timer sits holding the lock.
    let timer = GlobalTimer::new(
        LockFactory::pg_advisory(db.config.clone(), None),
        LockId::IDLE_CHECK_TIMER,
        EventProducer::new(stream.clone()),
        Event::DoIdleCheck,
        Duration::from_secs(600),
    );
    let running = tokio::spawn(timer.run(shutdown.clone()));
    tokio::time::timeout(Duration::from_secs(30), async {
        while stream.entry_count().await.expect("XLEN") == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the timer produced its first event");
    let other = LockFactory::pg_advisory(db.config.clone(), None);
    let take_the_timers_lock = async || {
        other
            .try_lock_for(
                LockId::IDLE_CHECK_TIMER,
                Duration::from_secs(10),
                Duration::from_millis(300),
            )
            .await
            .expect("PostgreSQL answers")
    };
    let attempt = take_the_timers_lock().await;
    assert!(
        attempt.is_none(),
        "the timer holds its lock for the interval"
    );
    shutdown.cancel();
    running.await.expect("the timer stopped");
    let taken = take_the_timers_lock().await;
    assert!(taken.is_some(), "the stopped timer released its lock");
    assert_eq!(stream.entry_count().await.expect("XLEN"), 1);
}
