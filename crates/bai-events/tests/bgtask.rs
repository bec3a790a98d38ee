//! The background-task runner against a real Redis (a `redis-server` of the test's own): a task's
//! tracker `bgtask.{id}` from start to end and the `bgtask_*` events on the stream, for a task that
//! finishes, one that fails and one cancelled by the shutdown signal.

use std::time::Duration;

use bai_events::{BackgroundTasks, Event, FIRST_REPORT_AFTER};
use bai_redis::testing::PrivateRedis;
use bai_redis::{BgtaskTracker, EntryId, StreamDb};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

async fn connect(redis: &PrivateRedis) -> StreamDb {
    StreamDb::connect(&redis.config())
        .await
        .expect("connect to the private redis-server")
}

/// Every event on the stream so far.
async fn events(stream: &StreamDb) -> Vec<Event> {
    stream
        .read_after(EntryId::ZERO, 1_000, Duration::from_millis(100))
        .await
        .expect("XREAD")
        .iter()
        .map(|entry| {
            Event::decode(
                entry.field("name").expect("name"),
                entry.field("args").expect("args"),
            )
            .expect("a catalogue event")
        })
        .collect()
}

async fn tracker(stream: &StreamDb, task_id: Uuid) -> BgtaskTracker {
    stream
        .bgtask_tracker(task_id)
        .await
        .expect("HGETALL")
        .expect("a tracker")
}

fn tracked(status: &str, current: &str, total: &str, msg: &str) -> BgtaskTracker {
    BgtaskTracker {
        status: status.to_owned(),
        current: current.to_owned(),
        total: total.to_owned(),
        msg: msg.to_owned(),
    }
}

#[tokio::test]
async fn a_task_reports_progress_and_ends_done_or_failed() {
    let redis = PrivateRedis::start();
    let stream = connect(&redis).await;
    let tasks = BackgroundTasks::new(stream.clone(), CancellationToken::new());
    let (go, wait) = tokio::sync::oneshot::channel::<()>();
    let done = tasks
        .start("counting", move |reporter| async move {
            reporter.add_total(2);
            reporter.update(1, Some("one")).await?;
            reporter.update(1, Some("two")).await?;
            wait.await?;
            Ok("counted".to_owned())
        })
        .await
        .expect("started");
    let failed = tasks
        .start("failing", |_| async { Err("it broke".into()) })
        .await
        .expect("started");
    // Nothing is reported at first; until it is let go, the task is under way with the progress
    // it reported.
    tokio::time::sleep(FIRST_REPORT_AFTER / 2).await;
    assert_eq!(
        tracker(&stream, done).await,
        tracked("started", "0", "0", "")
    );
    tokio::time::sleep(FIRST_REPORT_AFTER).await;
    assert_eq!(
        tracker(&stream, done).await,
        tracked("started", "2", "2", "two")
    );
    go.send(()).expect("the task waits");
    tasks.wait().await;

    assert_eq!(
        tracker(&stream, done).await,
        tracked("done", "2", "2", "counted")
    );
    assert_eq!(
        tracker(&stream, failed).await,
        tracked("failed", "0", "0", "it broke")
    );
    let of_done: Vec<Event> = events(&stream)
        .await
        .into_iter()
        .filter(|event| match event {
            Event::BgtaskUpdated(progress) => progress.task_id == done,
            Event::BgtaskDone(end) | Event::BgtaskFailed(end) => end.task_id == done,
            _ => false,
        })
        .collect();
    let names: Vec<&str> = of_done.iter().map(Event::name).collect();
    assert_eq!(names, ["bgtask_updated", "bgtask_updated", "bgtask_done"]);
    let Event::BgtaskUpdated(first) = &of_done[0] else {
        unreachable!("checked above")
    };
    assert_eq!(
        (first.current, first.total, first.message.as_deref()),
        (1.0, 2.0, Some("one"))
    );
    assert!(events(&stream).await.iter().any(|event| matches!(
        event,
        Event::BgtaskFailed(end)
            if end.task_id == failed && end.message.as_deref() == Some("it broke")
    )));
}

#[tokio::test]
async fn shutdown_cancels_running_tasks_and_refuses_new_ones() {
    let redis = PrivateRedis::start();
    let stream = connect(&redis).await;
    let shutdown = CancellationToken::new();
    let tasks = BackgroundTasks::new(stream.clone(), shutdown.clone());
    let endless = tasks
        .start("endless", |_| std::future::pending())
        .await
        .expect("started");
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), tasks.wait())
        .await
        .expect("the task ends soon after the shutdown signal");
    assert_eq!(
        tracker(&stream, endless).await,
        tracked("cancelled", "0", "0", "")
    );
    assert!(
        events(&stream)
            .await
            .iter()
            .any(|event| matches!(event, Event::BgtaskCancelled(end) if end.task_id == endless))
    );
    assert!(
        tasks
            .start("late", |_| async { Ok(String::new()) })
            .await
            .is_err()
    );
}
