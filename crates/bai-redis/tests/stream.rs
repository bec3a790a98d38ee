//! The event stream (`StreamDb`, database 4), agents' liveness (`LiveDb`, `agent.last_seen` in
//! database 2) and image holders (`ImageDb`, database 3) against real Redis servers: each test
//! starts a `redis-server` of its own (`PrivateRedis`), because the stream's key and the databases
//! are fixed by the protocol and tests sharing a server would see each other's entries.
//!
//! It checks consumer-group reads and acknowledgements, taking over idle entries and keeping them,
//! trimming only what every group is done with, plain reads after an id, the single winner of a
//! stale agent among concurrent checkers, and removing an agent from every image set over several
//! pages of `SCAN`.

use std::time::Duration;

use bai_redis::testing::PrivateRedis;
use bai_redis::{ClaimedEntry, EntryId, ImageDb, LiveDb, StreamDb, StreamEntry};

const BLOCK: Duration = Duration::from_millis(200);
const MIN_IDLE: Duration = Duration::from_millis(300);

async fn stream_of(redis: &PrivateRedis) -> StreamDb {
    StreamDb::connect(&redis.config())
        .await
        .expect("connect to the private redis-server")
}

/// Adds `count` entries of one source, their args the entry's number as one byte.
async fn add_many(stream: &StreamDb, count: usize) -> Vec<EntryId> {
    let mut ids = Vec::with_capacity(count);
    for index in 0..count {
        let byte = u8::try_from(index % 256).expect("fits");
        ids.push(
            stream
                .add("do_schedule", "manager", &[byte])
                .await
                .expect("XADD"),
        );
    }
    ids
}

fn ids_of(entries: &[StreamEntry]) -> Vec<EntryId> {
    entries.iter().map(|entry| entry.id).collect()
}

fn claimed_ids(claims: &[ClaimedEntry]) -> Vec<EntryId> {
    claims.iter().map(|claim| claim.entry.id).collect()
}

/// Reads everything `group` has not been delivered yet, as `consumer`, in pages.
async fn read_all(stream: &StreamDb, group: &str, consumer: &str) -> Vec<StreamEntry> {
    let mut all = Vec::new();
    loop {
        let page = stream
            .read_group(group, consumer, 100, BLOCK)
            .await
            .expect("XREADGROUP");
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

#[tokio::test]
async fn an_added_entry_is_read_once_with_its_fields_and_stays_pending_until_acknowledged() {
    let redis = PrivateRedis::start();
    let stream = stream_of(&redis).await;
    stream.ensure_group("manager").await.expect("XGROUP CREATE");
    let args = [
        0x91, 0xac, b's', b'e', b'l', b'f', b'-', b's', b't', b'a', b'r', b't', b'e', b'd',
    ];
    let id = stream
        .add("agent_started", "i-agent-1", &args)
        .await
        .expect("XADD");

    let read = stream
        .read_group("manager", "c1", 10, BLOCK)
        .await
        .expect("XREADGROUP");
    assert_eq!(ids_of(&read), [id]);
    let entry = &read[0];
    assert_eq!(entry.field("name"), Some(&b"agent_started"[..]));
    assert_eq!(entry.field("source"), Some(&b"i-agent-1"[..]));
    assert_eq!(entry.field("args"), Some(&args[..]));
    assert_eq!(
        entry.fields.len(),
        3,
        "exactly the three fields of the protocol"
    );

    assert!(
        stream
            .read_group("manager", "c1", 10, BLOCK)
            .await
            .expect("XREADGROUP")
            .is_empty(),
        "`>` never delivers an entry twice"
    );
    assert!(
        stream
            .read_group("manager", "c2", 10, BLOCK)
            .await
            .expect("XREADGROUP")
            .is_empty(),
        "nor to another consumer of the group"
    );
    let own = stream.own_pending("manager", "c1", 10).await.expect("own");
    assert_eq!(own.len(), 1);
    assert_eq!(
        own[0].entry, read[0],
        "pending for the consumer that read it, with its fields"
    );
    assert_eq!(
        own[0].deliveries, 2,
        "reading one's own pending entries again counts as a delivery"
    );
    assert!(
        stream
            .own_pending("manager", "c2", 10)
            .await
            .expect("own")
            .is_empty(),
        "not pending for the other consumer"
    );

    assert_eq!(stream.ack("manager", &[id]).await.expect("XACK"), 1);
    assert!(
        stream
            .own_pending("manager", "c1", 10)
            .await
            .expect("own")
            .is_empty()
    );
    assert_eq!(
        stream.ack("manager", &[id]).await.expect("XACK"),
        0,
        "acknowledged already"
    );
    assert_eq!(stream.ack("manager", &[]).await.expect("no ids"), 0);
}

#[tokio::test]
async fn every_read_of_ones_own_pending_entries_counts_as_a_delivery() {
    let redis = PrivateRedis::start();
    let stream = stream_of(&redis).await;
    stream.ensure_group("manager").await.expect("XGROUP CREATE");
    let ids = add_many(&stream, 3).await;
    assert_eq!(ids_of(&read_all(&stream, "manager", "a").await), ids);
    stream.ack("manager", &ids[1..2]).await.expect("XACK");

    for deliveries in 2..=4 {
        let own = stream.own_pending("manager", "a", 10).await.expect("own");
        assert_eq!(claimed_ids(&own), [ids[0], ids[2]], "oldest first");
        assert!(
            own.iter().all(|claim| claim.deliveries == deliveries),
            "{deliveries}: {own:?}"
        );
    }
    let first = stream.own_pending("manager", "a", 1).await.expect("own");
    assert_eq!(claimed_ids(&first), [ids[0]], "COUNT limits the read");
    assert!(
        stream
            .own_pending("other", "a", 10)
            .await
            .expect("own pending of a missing group")
            .is_empty()
    );
}

#[tokio::test]
async fn reading_a_missing_group_creates_it_reading_from_now() {
    let redis = PrivateRedis::start();
    let stream = stream_of(&redis).await;
    add_many(&stream, 3).await;
    assert_eq!(
        stream.group_entries_read("manager").await.expect("XINFO"),
        None
    );

    let first = stream
        .read_group("manager", "c1", 10, BLOCK)
        .await
        .expect("XREADGROUP on a missing group");
    assert!(
        first.is_empty(),
        "entries added before the group existed are not delivered: {first:?}"
    );

    let later = add_many(&stream, 1).await;
    let read = stream
        .read_group("manager", "c1", 10, BLOCK)
        .await
        .expect("XREADGROUP");
    assert_eq!(ids_of(&read), later);
    assert_eq!(
        stream.group_entries_read("manager").await.expect("XINFO"),
        Some(4),
        "the group exists and has read up to the 4th entry"
    );
}

#[tokio::test]
async fn reading_a_missing_group_on_a_missing_stream_creates_both() {
    let redis = PrivateRedis::start();
    let stream = stream_of(&redis).await;
    assert!(
        stream
            .read_group("agent", "c1", 10, BLOCK)
            .await
            .expect("XREADGROUP without a stream")
            .is_empty()
    );
    assert_eq!(stream.entry_count().await.expect("XLEN"), 0);
    let later = add_many(&stream, 2).await;
    assert_eq!(
        ids_of(&read_all(&stream, "agent", "c1").await),
        later,
        "the group reads what comes after"
    );
}

#[tokio::test]
async fn idle_entries_are_taken_over_with_their_delivery_count() {
    let redis = PrivateRedis::start();
    let stream = stream_of(&redis).await;
    stream.ensure_group("manager").await.expect("XGROUP CREATE");
    let ids = add_many(&stream, 2).await;
    // One read that returns at once: a blocking read that times out may return late.
    let read = stream
        .read_group("manager", "a", 10, BLOCK)
        .await
        .expect("XREADGROUP");
    assert_eq!(ids_of(&read), ids);

    assert!(
        stream
            .claim_idle("manager", "b", MIN_IDLE, 10)
            .await
            .expect("XAUTOCLAIM")
            .is_empty(),
        "not idle long enough yet"
    );
    tokio::time::sleep(MIN_IDLE + Duration::from_millis(50)).await;
    let claimed = stream
        .claim_idle("manager", "b", MIN_IDLE, 10)
        .await
        .expect("XAUTOCLAIM");
    assert_eq!(claimed_ids(&claimed), ids);
    for claim in &claimed {
        assert_eq!(claim.deliveries, 2, "read by a, then claimed by b");
        assert_eq!(claim.entry.field("name"), Some(&b"do_schedule"[..]));
    }
    assert_eq!(
        claimed_ids(&stream.own_pending("manager", "b", 10).await.expect("own")),
        ids,
        "b holds them now"
    );
    assert!(
        stream
            .own_pending("manager", "a", 10)
            .await
            .expect("own")
            .is_empty(),
        "a does not any more"
    );
}

#[tokio::test]
async fn claiming_pages_through_the_whole_pending_list() {
    let redis = PrivateRedis::start();
    let stream = stream_of(&redis).await;
    stream.ensure_group("manager").await.expect("XGROUP CREATE");
    let ids = add_many(&stream, 25).await;
    assert_eq!(read_all(&stream, "manager", "a").await.len(), 25);
    tokio::time::sleep(MIN_IDLE + Duration::from_millis(50)).await;
    let claimed = stream
        .claim_idle("manager", "b", MIN_IDLE, 10)
        .await
        .expect("XAUTOCLAIM in pages of 10");
    assert_eq!(claimed_ids(&claimed), ids);
    assert!(claimed.iter().all(|claim| claim.deliveries == 2));
}

#[tokio::test]
async fn kept_entries_are_not_taken_over_until_idle_again() {
    let redis = PrivateRedis::start();
    let stream = stream_of(&redis).await;
    stream.ensure_group("manager").await.expect("XGROUP CREATE");
    let ids = add_many(&stream, 1).await;
    assert_eq!(ids_of(&read_all(&stream, "manager", "a").await), ids);

    // a keeps the entry fresh twice before it has been idle for MIN_IDLE.
    for _ in 0..2 {
        tokio::time::sleep(MIN_IDLE * 2 / 3).await;
        stream
            .keep_claimed("manager", "a", &ids)
            .await
            .expect("XCLAIM JUSTID");
        assert!(
            stream
                .claim_idle("manager", "b", MIN_IDLE, 10)
                .await
                .expect("XAUTOCLAIM")
                .is_empty(),
            "a keeps it"
        );
    }
    stream
        .keep_claimed("manager", "a", &[])
        .await
        .expect("nothing to keep");

    tokio::time::sleep(MIN_IDLE + Duration::from_millis(50)).await;
    let claimed = stream
        .claim_idle("manager", "b", MIN_IDLE, 10)
        .await
        .expect("XAUTOCLAIM");
    assert_eq!(claimed.len(), 1, "idle again once a stopped keeping it");
    assert_eq!(
        claimed[0].deliveries, 2,
        "keeping an entry does not count as a delivery"
    );
}

#[tokio::test]
async fn claiming_on_a_missing_group_finds_nothing() {
    let redis = PrivateRedis::start();
    let stream = stream_of(&redis).await;
    add_many(&stream, 1).await;
    assert!(
        stream
            .claim_idle("manager", "b", Duration::ZERO, 10)
            .await
            .expect("XAUTOCLAIM without a group")
            .is_empty()
    );
}

/// Entries trimmed beyond this many would have needed a macro node to straddle `MINID`:
/// `XTRIM MINID ~` removes only whole nodes (100 entries each by default).
const TRIM_SLACK: u64 = 100;

#[tokio::test]
async fn trimming_keeps_what_a_lagging_group_has_not_read_or_acknowledged() {
    let redis = PrivateRedis::start();
    let stream = stream_of(&redis).await;
    stream.ensure_group("fast").await.expect("XGROUP CREATE");
    stream.ensure_group("slow").await.expect("XGROUP CREATE");
    let ids = add_many(&stream, 250).await;

    let fast = read_all(&stream, "fast", "f").await;
    assert_eq!(ids_of(&fast), ids);
    assert_eq!(stream.ack("fast", &ids).await.expect("XACK"), 250);
    assert_eq!(
        stream.trim_consumed().await.expect("trim"),
        0,
        "slow has read nothing"
    );
    assert_eq!(stream.entry_count().await.expect("XLEN"), 250);

    let slow = read_all(&stream, "slow", "s").await;
    assert_eq!(
        ids_of(&slow),
        ids,
        "the lagging group still gets every entry"
    );
    assert_eq!(
        stream.trim_consumed().await.expect("trim"),
        0,
        "slow has every entry pending"
    );
    assert_eq!(stream.entry_count().await.expect("XLEN"), 250);

    // slow acknowledges the first 150: only those may go.
    assert_eq!(stream.ack("slow", &ids[..150]).await.expect("XACK"), 150);
    let removed = stream.trim_consumed().await.expect("trim");
    assert!(
        removed <= 150,
        "removed {removed}, but slow still has entries from the 151st on pending"
    );
    assert!(
        removed + TRIM_SLACK >= 150,
        "removed only {removed} of 150 done"
    );
    assert_eq!(stream.entry_count().await.expect("XLEN"), 250 - removed);
    assert_eq!(
        claimed_ids(&stream.own_pending("slow", "s", 200).await.expect("own")),
        ids[150..],
        "every entry slow still holds is in the stream with its fields"
    );

    assert_eq!(stream.ack("slow", &ids[150..]).await.expect("XACK"), 100);
    let more = stream.trim_consumed().await.expect("trim");
    let left = stream.entry_count().await.expect("XLEN");
    assert_eq!(left, 250 - removed - more);
    assert!(
        left <= TRIM_SLACK,
        "everything is done with, {left} entries left"
    );
}

#[tokio::test]
async fn trimming_counts_unread_entries_of_a_group_as_needed() {
    let redis = PrivateRedis::start();
    let stream = stream_of(&redis).await;
    stream.ensure_group("manager").await.expect("XGROUP CREATE");
    let ids = add_many(&stream, 250).await;
    // Read and acknowledge the first 120 only; the other 130 are not delivered yet.
    let mut read = Vec::new();
    while read.len() < 120 {
        let page = stream
            .read_group("manager", "c", 120 - read.len(), BLOCK)
            .await
            .expect("XREADGROUP");
        read.extend(page);
    }
    assert_eq!(ids_of(&read), ids[..120]);
    stream.ack("manager", &ids[..120]).await.expect("XACK");

    let removed = stream.trim_consumed().await.expect("trim");
    assert!(removed <= 120, "removed {removed} of 120 done");
    assert!(removed + TRIM_SLACK >= 120, "removed only {removed}");
    assert_eq!(
        ids_of(&read_all(&stream, "manager", "c").await),
        ids[120..],
        "the group still reads every entry it had not read"
    );
}

#[tokio::test]
async fn without_groups_nothing_is_trimmed() {
    let redis = PrivateRedis::start();
    let stream = stream_of(&redis).await;
    assert_eq!(
        stream
            .trim_consumed()
            .await
            .expect("trim of a missing stream"),
        0
    );
    add_many(&stream, 250).await;
    assert_eq!(stream.trim_consumed().await.expect("trim"), 0);
    assert_eq!(stream.entry_count().await.expect("XLEN"), 250);
}

#[tokio::test]
async fn plain_reads_see_only_entries_after_the_given_id() {
    let redis = PrivateRedis::start();
    let stream = stream_of(&redis).await;
    assert_eq!(
        stream
            .last_id()
            .await
            .expect("XREVRANGE of a missing stream"),
        EntryId::ZERO
    );
    let before = add_many(&stream, 3).await;
    let last = stream.last_id().await.expect("XREVRANGE");
    assert_eq!(last, before[2]);

    assert!(
        stream
            .read_after(last, 10, BLOCK)
            .await
            .expect("XREAD")
            .is_empty(),
        "nothing after the newest entry"
    );
    let after = add_many(&stream, 2).await;
    assert_eq!(
        ids_of(&stream.read_after(last, 10, BLOCK).await.expect("XREAD")),
        after
    );
    assert_eq!(
        ids_of(
            &stream
                .read_after(before[0], 10, BLOCK)
                .await
                .expect("XREAD")
        ),
        [before[1], before[2], after[0], after[1]]
    );
    assert_eq!(
        ids_of(
            &stream
                .read_after(EntryId::ZERO, 2, BLOCK)
                .await
                .expect("XREAD")
        ),
        before[..2],
        "COUNT limits the read"
    );
    assert_eq!(stream.last_id().await.expect("XREVRANGE"), after[1]);
}

#[tokio::test]
async fn a_blocked_plain_read_returns_the_entry_added_meanwhile() {
    let redis = PrivateRedis::start();
    let reader = stream_of(&redis).await;
    let writer = stream_of(&redis).await;
    let last = reader.last_id().await.expect("XREVRANGE");
    let read = tokio::spawn(async move {
        reader
            .read_after(last, 10, Duration::from_secs(3))
            .await
            .expect("XREAD")
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let id = writer
        .add("do_prepare", "manager", &[0x90])
        .await
        .expect("XADD");
    let read = tokio::time::timeout(Duration::from_secs(2), read)
        .await
        .expect("the blocked read returns as soon as an entry arrives")
        .expect("reader task");
    assert_eq!(ids_of(&read), [id]);
}

#[tokio::test]
async fn agents_last_seen_round_trips() {
    let redis = PrivateRedis::start();
    let live = LiveDb::connect(&redis.config()).await.expect("connect");
    assert!(live.agents_last_seen().await.expect("HGETALL").is_empty());
    live.record_agent_seen("i-agent-1", 1_733_470_000.25)
        .await
        .expect("HSET");
    live.record_agent_seen("i-agent-2", 1_733_470_001.5)
        .await
        .expect("HSET");
    live.record_agent_seen("i-agent-1", 1_733_470_002.125)
        .await
        .expect("HSET again");

    let mut seen = live.agents_last_seen().await.expect("HGETALL");
    seen.sort_by(|a, b| a.agent_id.cmp(&b.agent_id));
    let summary: Vec<(&str, f64, &str)> = seen
        .iter()
        .map(|entry| (entry.agent_id.as_str(), entry.at, entry.raw.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("i-agent-1", 1_733_470_002.125, "1733470002.125000"),
            ("i-agent-2", 1_733_470_001.5, "1733470001.500000"),
        ]
    );

    live.forget_agent_seen("i-agent-1").await.expect("HDEL");
    let left: Vec<String> = live
        .agents_last_seen()
        .await
        .expect("HGETALL")
        .into_iter()
        .map(|entry| entry.agent_id)
        .collect();
    assert_eq!(left, ["i-agent-2"]);
    live.forget_agent_seen("i-never-seen")
        .await
        .expect("forgetting an unknown agent is fine");
}

#[tokio::test]
async fn an_unparsable_last_seen_reads_as_nan_and_can_still_be_taken() {
    let redis = PrivateRedis::start();
    let live = LiveDb::connect(&redis.config()).await.expect("connect");
    live.raw()
        .hset("agent.last_seen", &[("i-odd", "not-a-number")])
        .await
        .expect("HSET");
    let seen = live.agents_last_seen().await.expect("HGETALL");
    assert_eq!(seen.len(), 1);
    assert!(seen[0].at.is_nan());
    assert_eq!(seen[0].raw, "not-a-number");
    assert!(live.take_stale_agent(&seen[0]).await.expect("take"));
    assert!(live.agents_last_seen().await.expect("HGETALL").is_empty());
}

#[tokio::test]
async fn of_two_checkers_taking_the_same_stale_agent_exactly_one_wins() {
    let redis = PrivateRedis::start();
    let config = redis.config();
    let checker_1 = LiveDb::connect(&config).await.expect("connect");
    let checker_2 = LiveDb::connect(&config).await.expect("connect");
    checker_1
        .record_agent_seen("i-agent-1", 1_000.5)
        .await
        .expect("HSET");
    checker_1
        .record_agent_seen("i-agent-2", 1_000.5)
        .await
        .expect("HSET");
    let seen = checker_1.agents_last_seen().await.expect("HGETALL");
    let agent_1 = seen
        .iter()
        .find(|entry| entry.agent_id == "i-agent-1")
        .expect("agent 1");

    let (first, second) = tokio::join!(
        checker_1.take_stale_agent(agent_1),
        checker_2.take_stale_agent(agent_1)
    );
    let wins = [first.expect("take"), second.expect("take")];
    assert_eq!(
        wins.iter().filter(|won| **won).count(),
        1,
        "exactly one checker takes it: {wins:?}"
    );
    assert!(
        !checker_1.take_stale_agent(agent_1).await.expect("take"),
        "taken already"
    );
    let left: Vec<String> = checker_2
        .agents_last_seen()
        .await
        .expect("HGETALL")
        .into_iter()
        .map(|entry| entry.agent_id)
        .collect();
    assert_eq!(left, ["i-agent-2"], "the other agent stays");
}

#[tokio::test]
async fn a_heartbeat_after_the_check_keeps_the_agent() {
    let redis = PrivateRedis::start();
    let live = LiveDb::connect(&redis.config()).await.expect("connect");
    live.record_agent_seen("i-agent-1", 1_000.5)
        .await
        .expect("HSET");
    let stale = live
        .agents_last_seen()
        .await
        .expect("HGETALL")
        .pop()
        .expect("one entry");

    live.record_agent_seen("i-agent-1", 1_040.75)
        .await
        .expect("a newer heartbeat");
    assert!(
        !live.take_stale_agent(&stale).await.expect("take"),
        "the value seen is not the one stored any more"
    );
    let now = live.agents_last_seen().await.expect("HGETALL");
    assert_eq!(now.len(), 1);
    assert_eq!(now[0].at, 1_040.75, "the newer heartbeat stays");
    assert!(
        live.take_stale_agent(&now[0]).await.expect("take"),
        "the current value can be taken"
    );
}

#[tokio::test]
async fn removing_an_agent_everywhere_visits_every_page_of_keys() {
    const IMAGES: usize = 2500;
    let redis = PrivateRedis::start();
    let images = ImageDb::connect(&redis.config()).await.expect("connect");
    let names: Vec<String> = (0..IMAGES)
        .map(|index| format!("cr.backend.ai/stable/image-{index}:1.0"))
        .collect();
    images
        .add_agent_images("i-gone", &names)
        .await
        .expect("SADD");
    let every_tenth: Vec<String> = names.iter().step_by(10).cloned().collect();
    images
        .add_agent_images("i-stays", &every_tenth)
        .await
        .expect("SADD");
    images
        .add_agent_images("i-gone", &[])
        .await
        .expect("nothing to add");

    let holders = images.agents_holding(&names).await.expect("SMEMBERS");
    assert_eq!(holders[0], ["i-gone", "i-stays"]);
    assert_eq!(holders[1], ["i-gone"]);

    images
        .remove_agent_everywhere("i-gone")
        .await
        .expect("SCAN and SREM");
    let holders = images.agents_holding(&names).await.expect("SMEMBERS");
    for (index, agents) in holders.iter().enumerate() {
        let expect: &[&str] = if index % 10 == 0 { &["i-stays"] } else { &[] };
        assert_eq!(agents, expect, "{}", names[index]);
    }
    images
        .remove_agent_everywhere("i-unknown")
        .await
        .expect("removing an agent that holds nothing is fine");
    assert_eq!(
        images.raw().smembers(&names[0]).await.expect("SMEMBERS"),
        ["i-stays"]
    );
}
