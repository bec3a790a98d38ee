//! The typed databases against the halfstack's Redis (127.0.0.1:8110). Every test uses keys of its
//! own (named after the process and the clock), so tests and runs never see each other's keys.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use bai_config::HostPort;
use bai_redis::{CallStats, ImageDb, LiveDb, RateLimitDb, Redis, RedisConnectError, StatDb};
use common::{HINT, halfstack};

/// A name no other test or run uses.
fn unique(label: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    format!("t-{label}-{}-{nanos}", std::process::id())
}

#[tokio::test]
async fn the_rate_limit_counts_each_request_of_a_key_into_its_window() {
    let db = RateLimitDb::connect(&halfstack()).await.expect(HINT);
    let access_key = unique("rlim");
    let mut verdicts = Vec::new();
    for _ in 0..3 {
        verdicts.push(db.hit(&access_key, 2).await.expect("hit"));
    }
    let counts: Vec<i64> = verdicts.iter().map(|verdict| verdict.count).collect();
    assert_eq!(counts, [1, 2, 3]);
    assert!(!verdicts[1].exceeded());
    assert_eq!(verdicts[1].remaining(), 0);
    assert!(verdicts[2].exceeded());
    assert_eq!(
        db.hit(&unique("rlim-other"), 2).await.expect("hit").count,
        1,
        "another key has a window of its own"
    );
    db.raw().del(&[&access_key]).await.expect("cleanup");
}

#[tokio::test]
async fn call_statistics_are_counted_and_read_back() {
    let db = StatDb::connect(&halfstack()).await.expect(HINT);
    let access_key = unique("stat");
    assert_eq!(db.keypair_num_queries(&access_key).await.unwrap(), 0);
    assert_eq!(db.keypair_last_call_time(&access_key).await.unwrap(), None);
    // Counted in memory, written in batches: what is written adds up like single calls.
    let calls = CallStats::new();
    calls.record(&access_key);
    calls.record(&access_key);
    assert_eq!(calls.flush(&db).await.expect("write"), 1);
    calls.record(&access_key);
    assert_eq!(calls.flush(&db).await.expect("write"), 1);
    assert_eq!(calls.flush(&db).await.expect("nothing to write"), 0);
    assert_eq!(db.keypair_num_queries(&access_key).await.unwrap(), 3);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let last = db
        .keypair_last_call_time(&access_key)
        .await
        .unwrap()
        .expect("a last call time");
    assert!((now - last).abs() < 60.0, "last call {last}, now {now}");
    db.raw()
        .del(&[
            &format!("kp:{access_key}:num_queries"),
            &format!("kp:{access_key}:last_call_time"),
        ])
        .await
        .expect("cleanup");
}

#[tokio::test]
async fn session_counters_of_gone_keypairs_are_forgotten() {
    let db = StatDb::connect(&halfstack()).await.expect(HINT);
    let access_key = unique("conc");
    let counter = format!("keypair.concurrency_used.{access_key}");
    db.raw().set(&counter, "3").await.expect("set");
    assert_eq!(db.keypair_concurrency_used(&access_key).await.unwrap(), 3);
    db.forget_keypair_counters(std::slice::from_ref(&access_key))
        .await
        .expect("forget");
    assert_eq!(db.keypair_concurrency_used(&access_key).await.unwrap(), 0);
    db.forget_keypair_counters(&[])
        .await
        .expect("nothing to forget");
}

#[tokio::test]
async fn live_statistics_are_decoded_from_msgpack_and_garbage_reads_as_none() {
    let db = StatDb::connect(&halfstack()).await.expect(HINT);
    let (agent, broken) = (unique("agent"), unique("broken"));
    let stats = serde_json::json!({"node": {"cpu_util": {"pct": "12.5"}}, "devices": {}});
    db.raw()
        .set(&agent, rmp_serde::to_vec_named(&stats).unwrap())
        .await
        .expect("set");
    db.raw()
        .set(&broken, vec![0xc1, 0xff, 0x00])
        .await
        .expect("set");
    db.raw()
        .set(&format!("container_count.{agent}"), "7")
        .await
        .expect("set");
    assert_eq!(db.live_stat(&agent).await.unwrap(), Some(stats));
    assert_eq!(db.live_stat(&broken).await.unwrap(), None);
    assert_eq!(db.live_stat(&unique("none")).await.unwrap(), None);
    assert_eq!(db.container_count(&agent).await.unwrap(), 7);
    assert_eq!(db.container_count(&broken).await.unwrap(), 0);
    assert_eq!(
        db.container_counts(&[&broken, &agent]).await.unwrap(),
        [0, 7]
    );
    assert!(db.container_counts(&[]).await.unwrap().is_empty());
    db.raw()
        .del(&[&agent, &broken, &format!("container_count.{agent}")])
        .await
        .expect("cleanup");
}

#[tokio::test]
async fn reported_metadata_and_abuse_reports_are_hash_fields() {
    let db = StatDb::connect(&halfstack()).await.expect(HINT);
    let slot = unique("slot");
    db.raw()
        .hset("computer.metadata", &[(&slot, "{\"slot_name\": \"x\"}")])
        .await
        .expect("hset");
    let kernel = unique("kernel");
    db.raw()
        .hset("abuse_report", &[(&kernel, "DETECTED")])
        .await
        .expect("hset");
    let reported = db.reported_slot_metadata().await.expect("hgetall");
    assert_eq!(
        reported.get(&slot).map(String::as_str),
        Some("{\"slot_name\": \"x\"}")
    );
    assert_eq!(
        db.abuse_report(&kernel).await.unwrap().as_deref(),
        Some("DETECTED")
    );
    assert_eq!(db.abuse_report(&unique("clean")).await.unwrap(), None);
    db.raw()
        .hdel("computer.metadata", &[&slot])
        .await
        .expect("cleanup");
    db.raw()
        .hdel("abuse_report", &[&kernel])
        .await
        .expect("cleanup");
}

#[tokio::test]
async fn inference_metrics_need_both_counters() {
    let db = LiveDb::connect(&halfstack()).await.expect(HINT);
    let session = uuid::Uuid::new_v4();
    let requests = format!("session.{session}.requests");
    let last = format!("session.{session}.last_response_time");
    assert_eq!(
        db.inference_metrics(session).await.unwrap(),
        Default::default()
    );
    db.raw().set(&requests, "12").await.expect("set");
    assert_eq!(
        db.inference_metrics(session).await.unwrap(),
        Default::default(),
        "one counter alone reads as zeros, as in the reference"
    );
    db.raw().set(&last, "250").await.expect("set");
    let metrics = db.inference_metrics(session).await.unwrap();
    assert_eq!((metrics.requests, metrics.last_response_ms), (12, 250));
    db.raw().del(&[&requests, &last]).await.expect("cleanup");
}

#[tokio::test]
async fn the_agents_holding_each_image_come_sorted_in_request_order() {
    let db = ImageDb::connect(&halfstack()).await.expect(HINT);
    let (python, tool, missing) = (unique("python"), unique("tool"), unique("missing"));
    db.raw()
        .sadd(&python, &["i-b", "i-c", "i-a"])
        .await
        .expect("sadd");
    db.raw().sadd(&tool, &["i-z"]).await.expect("sadd");
    let held = db
        .agents_holding(&[&tool, &missing, &python])
        .await
        .expect("smembers");
    assert_eq!(
        held,
        [vec!["i-z"], vec![], vec!["i-a", "i-b", "i-c"]],
        "one answer per name, in order"
    );
    assert!(
        db.agents_holding::<&str>(&[]).await.unwrap().is_empty(),
        "no names, no round trip"
    );
    db.raw().del(&[&python, &tool]).await.expect("cleanup");
    db.close().await;
}

#[tokio::test]
async fn connection_problems_name_the_server_and_database_but_never_the_password() {
    let mut nowhere = halfstack();
    nowhere.addr = None;
    assert!(matches!(
        Redis::connect(&nowhere).await,
        Err(RedisConnectError::NotConfigured)
    ));

    let mut wrong_password = halfstack();
    wrong_password.password = Some("not-the-password".to_owned());
    let message = StatDb::connect(&wrong_password)
        .await
        .expect_err("a wrong password is refused")
        .to_string();
    assert!(
        message.contains("127.0.0.1:8110") && message.contains("database 0 (stat)"),
        "{message}"
    );
    assert!(!message.contains("not-the-password"), "{message}");

    let mut closed_port = halfstack();
    // Port 9 (discard) has no Redis on this machine.
    closed_port.addr = Some(HostPort::new("127.0.0.1", 9));
    closed_port.helper.socket_connect_timeout = 0.5;
    let message = ImageDb::connect(&closed_port)
        .await
        .expect_err("nothing listens there")
        .to_string();
    assert!(
        message.contains("127.0.0.1:9") && message.contains("database 3 (image)"),
        "{message}"
    );
}

#[tokio::test]
async fn all_databases_connect_and_close() {
    let redis = Redis::connect(&halfstack()).await.expect(HINT);
    let key = unique("all");
    assert_eq!(
        redis
            .stat
            .keypair_num_queries(&key)
            .await
            .expect("stat answers"),
        0
    );
    assert_eq!(
        redis
            .rate_limit
            .hit(&key, 1)
            .await
            .expect("rlim answers")
            .count,
        1
    );
    redis.close().await;
    let cleanup = StatDb::connect(&halfstack()).await.expect(HINT);
    cleanup
        .raw()
        .del(&[
            &format!("kp:{key}:num_queries"),
            &format!("kp:{key}:last_call_time"),
        ])
        .await
        .expect("cleanup");
    RateLimitDb::connect(&halfstack())
        .await
        .expect(HINT)
        .raw()
        .del(&[&key])
        .await
        .expect("cleanup");
}
