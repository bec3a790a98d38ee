//! Moving a connected `Redis` to another server (etcd `config/redis` changed): every clone of every
//! handle, every dedicated stream and lock connection sends its next command to the new server, a command already
//! waiting on the old one finishes there, and a server that cannot be reached changes nothing.
//! Two private redis-servers per test.

use std::time::Duration;

use bai_config::HostPort;
use bai_redis::testing::PrivateRedis;
use bai_redis::{EntryId, Redis, StreamDb};

#[tokio::test]
async fn a_switch_moves_every_handle_and_dedicated_stream_to_the_new_server() {
    let first = PrivateRedis::start();
    let second = PrivateRedis::start();
    let redis = Redis::connect(&first.config()).await.expect("connect");
    let held_elsewhere = redis.stat.clone();
    let reader = redis.dedicated_stream().await.expect("dedicated stream");
    let locks = redis
        .dedicated_lock()
        .await
        .expect("dedicated lock connection");
    redis.stat.raw().set("where", "first").await.expect("set");

    // A blocking read waiting on the first server when the switch comes.
    let waiting = {
        let reader = reader.clone();
        tokio::spawn(async move {
            reader
                .read_after(EntryId::ZERO, 10, Duration::from_millis(1500))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;

    redis.switch_to(&second.config()).await.expect("switch");
    assert_eq!(redis.config().addr, second.config().addr);
    held_elsewhere
        .raw()
        .set("where", "second")
        .await
        .expect("set after the switch");
    redis
        .stream
        .add("switched", "test", b"")
        .await
        .expect("add after the switch");

    let on_first = Redis::connect(&first.config()).await.expect("first");
    let on_second = Redis::connect(&second.config()).await.expect("second");
    assert_eq!(
        on_first.stat.raw().get("where").await.expect("get"),
        Some("first".to_owned())
    );
    assert_eq!(
        on_second.stat.raw().get("where").await.expect("get"),
        Some("second".to_owned())
    );
    assert_eq!(on_second.stream.entry_count().await.expect("count"), 1);
    assert_eq!(on_first.stream.entry_count().await.expect("count"), 0);
    // The lock connection takes its locks on the second server: the first one has none.
    assert!(
        locks
            .try_take("191", "token", Duration::from_secs(20))
            .await
            .expect("take")
    );
    let first_locks = bai_redis::LockDb::connect(&first.config())
        .await
        .expect("first");
    assert!(first_locks.remaining("191").await.expect("ttl").is_none());
    let second_locks = bai_redis::LockDb::connect(&second.config())
        .await
        .expect("second");
    assert!(second_locks.remaining("191").await.expect("ttl").is_some());
    first_locks.close().await;
    second_locks.close().await;

    // The read sent to the first server before the switch ended there (its block time ran out).
    let read = waiting.await.expect("the read task");
    assert_eq!(read.expect("the in-flight read finishes").len(), 0);
    // The dedicated stream reads the second server now.
    let entries = reader
        .read_after(EntryId::ZERO, 10, Duration::from_millis(100))
        .await
        .expect("read after the switch");
    assert_eq!(entries.len(), 1);
    // A stream opened after the switch is on the second server too.
    let later: StreamDb = redis.dedicated_stream().await.expect("later stream");
    assert_eq!(later.entry_count().await.expect("count"), 1);

    on_first.close().await;
    on_second.close().await;
    redis.close().await;
}

#[tokio::test]
async fn a_server_that_cannot_be_reached_leaves_the_old_one_in_use() {
    let first = PrivateRedis::start();
    let redis = Redis::connect(&first.config()).await.expect("connect");
    let mut nowhere = first.config();
    // A port nothing listens on (this server's port + 1 is taken at most by another test's
    // redis, which would answer: use a reserved port instead).
    nowhere.addr = Some(HostPort::new("127.0.0.1", 1));
    nowhere.helper.socket_connect_timeout = 0.5;
    let error = redis
        .switch_to(&nowhere)
        .await
        .expect_err("nothing listens there");
    assert!(error.to_string().contains("127.0.0.1:1"), "{error}");
    assert_eq!(redis.config().addr, first.config().addr);
    redis
        .stat
        .raw()
        .set("still", "here")
        .await
        .expect("the old server is still in use");
    assert_eq!(
        redis.stat.raw().get("still").await.expect("get"),
        Some("here".to_owned())
    );
    redis.close().await;
}
