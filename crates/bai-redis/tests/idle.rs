//! The idle checkers' keys against the halfstack's Redis (127.0.0.1:8110), each test with a
//! session id of its own: the last access as the server's time, `"0"` only over a recorded one,
//! and reports read back per checker in order.

mod common;

use std::time::Duration;

use bai_redis::{IdleKeys, LastAccess, LiveDb, StoredIdleReport};
use common::{HINT, halfstack};
use uuid::Uuid;

async fn last_access(idle: &IdleKeys, session: Uuid) -> Option<LastAccess> {
    idle.network_activity(session)
        .await
        .expect("read")
        .last_access
}

#[tokio::test]
async fn the_last_access_is_the_servers_time_and_zero_only_over_a_recorded_one() {
    let idle = LiveDb::connect(&halfstack()).await.expect(HINT).idle();
    let session = Uuid::new_v4();
    let activity = idle.network_activity(session).await.expect("read");
    assert_eq!(activity.last_access, None);
    assert_eq!(activity.app_connections, 0);
    // Nothing recorded: an execution does not create the key.
    idle.mark_executing(session).await.expect("mark");
    assert_eq!(last_access(&idle, session).await, None);
    idle.touch_last_access(session, Duration::from_secs(60))
        .await
        .expect("touch");
    let activity = idle.network_activity(session).await.expect("read");
    let Some(LastAccess::At(at)) = activity.last_access else {
        panic!("a time: {activity:?}")
    };
    assert!((activity.now - at).abs() < 1.0, "{activity:?}");
    let now = idle.server_time().await.expect("TIME");
    assert!(now >= at, "{now} < {at}");
    idle.mark_executing(session).await.expect("mark");
    assert_eq!(
        last_access(&idle, session).await,
        Some(LastAccess::Executing)
    );
}

#[tokio::test]
async fn reports_are_read_back_per_checker_in_order() {
    let idle = LiveDb::connect(&halfstack()).await.expect(HINT).idle();
    let session = Uuid::new_v4();
    let ttl = Duration::from_secs(60);
    idle.set_report(session, "utilization", vec![0xff], ttl)
        .await
        .expect("SET");
    idle.set_extra(session, "utilization_extra", vec![0x80], ttl)
        .await
        .expect("SET");
    idle.set_report(session, "session_lifetime", vec![0x01], ttl)
        .await
        .expect("SET");
    let reports = idle
        .reports(
            session,
            &[
                ("session_lifetime", None),
                ("network_timeout", None),
                ("utilization", Some("utilization_extra")),
            ],
        )
        .await
        .expect("MGET");
    assert_eq!(
        reports,
        [
            StoredIdleReport {
                remaining: Some(vec![0x01]),
                extra: None
            },
            StoredIdleReport::default(),
            StoredIdleReport {
                remaining: Some(vec![0xff]),
                extra: Some(vec![0x80])
            },
        ]
    );
    let collected = idle.utilization_collection(session).await.expect("MGET");
    assert_eq!((collected.first, collected.last), (None, None));
    idle.set_utilization_first_collected(session, 100.5, ttl)
        .await
        .expect("SET");
    idle.set_utilization_series(session, vec![0x90], 115.25, ttl)
        .await
        .expect("SET");
    let collected = idle.utilization_collection(session).await.expect("MGET");
    assert_eq!(
        (collected.first, collected.last),
        (Some(100.5), Some(115.25))
    );
    assert_eq!(
        idle.utilization_series(session).await.expect("GET"),
        Some(vec![0x90])
    );
}
