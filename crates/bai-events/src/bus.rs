//! Producing, consuming and subscribing.
//!
//! *Consume* delivers each entry to one process of a consumer group (the manager's group is
//! [`MANAGER_GROUP`]): the reference's `EventDispatcher.consume`. Unlike the reference, which
//! acknowledges an entry before its handlers run, [`run_consumer`] acknowledges it after they
//! finished: a process that dies mid-way leaves the entry pending, and it is handled again, by the
//! same consumer when it restarts or by another one when the entry has been idle for
//! [`ConsumerOptions::claim_min_idle`]. A handler that keeps failing is retried a few times, then
//! the entry is logged with its payload and acknowledged, so one bad entry never blocks the rest.
//!
//! *Subscribe* ([`run_subscriber`]) is the broadcast: every process sees the entries added after
//! it started reading, nothing is acknowledged.
//!
//! Entries of one source (one agent) are handled in stream order; different sources' entries of a
//! batch are handled concurrently.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bai_metrics::record::Redelivery;
use bai_redis::{ClaimedEntry, EntryId, RedisError, StreamDb, StreamEntry};
use sha1::{Digest, Sha1};
use tokio_util::sync::CancellationToken;

use crate::catalogue::Event;

/// The consumer group of manager processes.
pub const MANAGER_GROUP: &str = "manager";

/// What a handler returns when it could not do its job.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;
type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send>>;
type Handler = Arc<dyn Fn(Arc<Received>) -> HandlerFuture + Send + Sync>;

/// A decoded entry.
#[derive(Debug)]
pub struct Received {
    pub id: EntryId,
    /// `manager`, or the id of the agent the event is about.
    pub source: String,
    pub event: Event,
}

/// Adds events to the stream.
#[derive(Clone, Debug)]
pub struct EventProducer {
    stream: StreamDb,
}

impl EventProducer {
    pub fn new(stream: StreamDb) -> EventProducer {
        EventProducer { stream }
    }

    /// Adds `event` with `source` (`"manager"`, or an agent id for events about an agent).
    pub async fn produce(&self, event: &Event, source: &str) -> Result<EntryId, RedisError> {
        self.stream
            .add(event.name(), source, &event.encode_args())
            .await
    }
}

/// The reference's consumer name: `{sha1(node id)}:{sha1(installation)}:{process index}`. The
/// name must be the same after a restart, so that the process finds what it left pending.
pub fn consumer_name(node_id: &str, installation: &str, process_index: usize) -> String {
    let sha1_hex = |text: &str| hex::encode(Sha1::digest(text.as_bytes()));
    format!(
        "{}:{}:{process_index}",
        sha1_hex(node_id),
        sha1_hex(installation)
    )
}

/// The handlers of one consumer or subscriber, by event name, each with a name for the logs.
#[derive(Clone, Default)]
pub struct Handlers {
    by_event: HashMap<&'static str, Vec<(&'static str, Handler)>>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self
            .by_event
            .iter()
            .flat_map(|(event, handlers)| {
                handlers
                    .iter()
                    .map(move |(handler, _)| format!("{event}: {handler}"))
            })
            .collect();
        names.sort();
        f.debug_struct("Handlers")
            .field("handlers", &names)
            .finish()
    }
}

impl Handlers {
    /// Runs `handler` for every `event_name` entry.
    pub fn on<F, Fut>(&mut self, event_name: &'static str, handler_name: &'static str, handler: F)
    where
        F: Fn(Arc<Received>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |received| Box::pin(handler(received)));
        self.by_event
            .entry(event_name)
            .or_default()
            .push((handler_name, handler));
    }

    fn handles(&self, event_name: &[u8]) -> bool {
        std::str::from_utf8(event_name).is_ok_and(|name| self.by_event.contains_key(name))
    }
}

/// How a consumer reads and retries.
#[derive(Clone, Debug)]
pub struct ConsumerOptions {
    pub group: String,
    /// See [`consumer_name`].
    pub consumer: String,
    /// Entries read at once.
    pub batch: usize,
    /// How long one read waits for new entries (also how soon a shutdown is noticed).
    pub block: Duration,
    /// Entries another consumer held this long without acknowledging them are taken over. A
    /// consumer keeps the entries it works on fresh, however long its handlers take.
    pub claim_min_idle: Duration,
    /// An entry delivered this often is logged and acknowledged without running its handlers
    /// (it made its consumers die before).
    pub max_deliveries: u64,
    /// How often a failing handler runs, in all, before the entry is given up.
    pub attempts: u32,
    /// Whether a handler's error means a store is down (the caller knows the stores; by default
    /// none). Such a failure is not counted as an attempt: the handler runs again, with backoff,
    /// until the store is back or [`OUTAGE_PATIENCE`] has passed, so that an outage of a few
    /// seconds loses no event.
    pub is_outage: fn(&(dyn std::error::Error + 'static)) -> bool,
}

/// How long a handler failing for a store outage is retried before its failures count as
/// attempts again.
pub const OUTAGE_PATIENCE: Duration = Duration::from_secs(60);
/// The backoff between runs of a handler while a store is down: doubling up to this.
const OUTAGE_MAX_DELAY: Duration = Duration::from_secs(2);

impl ConsumerOptions {
    pub fn new(group: &str, consumer: String) -> ConsumerOptions {
        ConsumerOptions {
            group: group.to_owned(),
            consumer,
            batch: 256,
            block: Duration::from_secs(1),
            claim_min_idle: Duration::from_secs(10),
            max_deliveries: 5,
            attempts: 3,
            is_outage: |_| false,
        }
    }
}

/// Logs Redis failures once per outage, not once per retry.
struct Outage {
    since: Option<std::time::Instant>,
}

impl Outage {
    fn failed(&mut self, what: &str, error: &RedisError) {
        if self.since.is_none() {
            tracing::warn!("event stream: {what} failed, retrying: {error}");
            self.since = Some(std::time::Instant::now());
        }
    }

    fn recovered(&mut self) {
        if let Some(since) = self.since.take() {
            tracing::info!(
                "event stream: reachable again after {:.1} s",
                since.elapsed().as_secs_f64()
            );
        }
    }
}

const RETRY_PAUSE: Duration = Duration::from_secs(1);

/// Consumes the stream for `options.group` until `shutdown`, running `handlers`; `stream` is a
/// connection of its own (reads block on it).
pub async fn run_consumer(
    stream: StreamDb,
    handlers: Handlers,
    options: ConsumerOptions,
    shutdown: CancellationToken,
) {
    let mut outage = Outage { since: None };
    // What this consumer left pending before a restart comes first.
    loop {
        let pending = tokio::select! {
            () = shutdown.cancelled() => return,
            pending = stream.own_pending(&options.group, &options.consumer, options.batch) => pending,
        };
        match pending {
            Ok(entries) if entries.is_empty() => break,
            Ok(left) => {
                outage.recovered();
                // A restart under the same name counts as a delivery: an entry that kept killing
                // this consumer is given up here, as one that killed others is on take-over.
                let entries = give_up_overdelivered(&stream, &options, left).await;
                bai_metrics::record::events_redelivered(Redelivery::OwnPending, entries.len());
                if !entries.is_empty() {
                    tracing::info!(
                        "event stream: handling {} entries left pending by this consumer before",
                        entries.len()
                    );
                    handle_batch(&stream, &handlers, &options, entries).await;
                }
            }
            Err(error) => {
                outage.failed("reading pending entries", &error);
                pause(&shutdown).await;
            }
        }
    }
    let mut last_claim = tokio::time::Instant::now();
    while !shutdown.is_cancelled() {
        if last_claim.elapsed() >= Duration::from_secs(1) {
            last_claim = tokio::time::Instant::now();
            match stream
                .claim_idle(
                    &options.group,
                    &options.consumer,
                    options.claim_min_idle,
                    options.batch,
                )
                .await
            {
                Ok(claimed) if !claimed.is_empty() => {
                    outage.recovered();
                    let entries = give_up_overdelivered(&stream, &options, claimed).await;
                    bai_metrics::record::events_redelivered(Redelivery::Claimed, entries.len());
                    if !entries.is_empty() {
                        tracing::info!(
                            "event stream: took over {} entries another consumer left pending",
                            entries.len()
                        );
                        handle_batch(&stream, &handlers, &options, entries).await;
                    }
                }
                Ok(_) => outage.recovered(),
                Err(error) => outage.failed("taking over idle entries", &error),
            }
        }
        let read = tokio::select! {
            () = shutdown.cancelled() => return,
            read = stream.read_group(&options.group, &options.consumer, options.batch, options.block) => read,
        };
        match read {
            Ok(entries) => {
                outage.recovered();
                if !entries.is_empty() {
                    handle_batch(&stream, &handlers, &options, entries).await;
                }
            }
            Err(error) => {
                outage.failed("reading", &error);
                pause(&shutdown).await;
            }
        }
    }
}

async fn pause(shutdown: &CancellationToken) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(RETRY_PAUSE) => {}
    }
}

/// Acknowledges the entries delivered more than [`ConsumerOptions::max_deliveries`] times, each
/// logged, without handling them; returns the others.
async fn give_up_overdelivered(
    stream: &StreamDb,
    options: &ConsumerOptions,
    claimed: Vec<ClaimedEntry>,
) -> Vec<StreamEntry> {
    let mut entries = Vec::with_capacity(claimed.len());
    let mut given_up = Vec::new();
    for claim in claimed {
        if claim.deliveries > options.max_deliveries {
            tracing::error!(
                "event stream: entry {} was delivered {} times without being handled; giving it \
                 up: {}",
                claim.entry.id,
                claim.deliveries,
                describe_entry(&claim.entry)
            );
            given_up.push(claim.entry.id);
        } else {
            entries.push(claim.entry);
        }
    }
    ack(stream, options, &given_up).await;
    entries
}

async fn ack(stream: &StreamDb, options: &ConsumerOptions, ids: &[EntryId]) {
    if let Err(error) = stream.ack(&options.group, ids).await {
        // They stay pending: this consumer or another handles them again later.
        tracing::warn!(
            "event stream: cannot acknowledge {} entries: {error}",
            ids.len()
        );
    }
}

/// Handles a batch and acknowledges all of it: entries whose handlers ran (or gave up), entries
/// that are not events, and entries no handler wants.
async fn handle_batch(
    stream: &StreamDb,
    handlers: &Handlers,
    options: &ConsumerOptions,
    entries: Vec<StreamEntry>,
) {
    let ids: Vec<EntryId> = entries.iter().map(|entry| entry.id).collect();
    let retry = Retry {
        attempts: options.attempts,
        is_outage: options.is_outage,
    };
    let work = run_handlers(handlers, entries, Some(retry));
    tokio::pin!(work);
    // Keep the entries fresh while handlers run, so that no other consumer takes them over.
    let refresh_every = (options.claim_min_idle / 3).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            () = &mut work => break,
            () = tokio::time::sleep(refresh_every) => {
                if let Err(error) = stream.keep_claimed(&options.group, &options.consumer, &ids).await {
                    tracing::warn!("event stream: cannot refresh entries being handled: {error}");
                }
            }
        }
    }
    ack(stream, options, &ids).await;
}

/// How a consumer runs a failing handler again (see [`ConsumerOptions`]).
#[derive(Clone, Copy)]
struct Retry {
    attempts: u32,
    is_outage: fn(&(dyn std::error::Error + 'static)) -> bool,
}

/// Decodes `entries` and runs their handlers: per source in order, sources concurrently.
/// `retry` says how a failing handler runs again (`None`: once, failures only logged).
async fn run_handlers(handlers: &Handlers, entries: Vec<StreamEntry>, retry: Option<Retry>) {
    let mut by_source: Vec<(String, Vec<Arc<Received>>)> = Vec::new();
    for entry in entries {
        let Some(received) = decode_entry(handlers, &entry, retry.is_some()) else {
            continue;
        };
        match by_source
            .iter_mut()
            .find(|(source, _)| *source == received.source)
        {
            Some((_, queue)) => queue.push(received),
            None => by_source.push((received.source.clone(), vec![received])),
        }
    }
    futures_util::future::join_all(by_source.into_iter().map(|(_, queue)| async move {
        for received in queue {
            for (handler_name, handler) in &handlers.by_event[received.event.name()] {
                run_one(handler_name, handler, &received, retry).await;
            }
        }
    }))
    .await;
}

/// The entry as an event, if some handler wants it. A consumer (`consuming`) decodes every
/// entry and logs those that are not events, once for the whole group; a subscriber, which every
/// process runs, looks only at the entries its handlers want and logs nothing else.
fn decode_entry(
    handlers: &Handlers,
    entry: &StreamEntry,
    consuming: bool,
) -> Option<Arc<Received>> {
    let (Some(name), Some(source), Some(args)) = (
        entry.field("name"),
        entry.field("source"),
        entry.field("args"),
    ) else {
        if consuming {
            tracing::warn!(
                "event stream: entry {} lacks name, source or args; skipped: {}",
                entry.id,
                describe_entry(entry)
            );
        }
        return None;
    };
    if !consuming && !handlers.handles(name) {
        return None;
    }
    match Event::decode(name, args) {
        Ok(event) if handlers.handles(name) => Some(Arc::new(Received {
            id: entry.id,
            source: String::from_utf8_lossy(source).into_owned(),
            event,
        })),
        Ok(_) => None,
        Err(error) => {
            tracing::warn!(
                "event stream: entry {} is not a valid event ({error}); skipped: {}",
                entry.id,
                describe_entry(entry)
            );
            None
        }
    }
}

/// `retry` as in [`run_handlers`]; only a consumer's runs are counted in the metrics (every
/// process subscribes, one consumes).
async fn run_one(
    handler_name: &'static str,
    handler: &Handler,
    received: &Arc<Received>,
    retry: Option<Retry>,
) {
    let consuming = retry.is_some();
    let attempts = retry.map_or(1, |retry| retry.attempts);
    let event = received.event.name();
    let mut delay = Duration::from_millis(100);
    // When the handler first failed for a store outage, and the pause before its next run.
    let mut outage_since: Option<tokio::time::Instant> = None;
    let mut pause = Duration::from_millis(100);
    let mut attempt = 0;
    while attempt < attempts {
        attempt += 1;
        let result = handler(Arc::clone(received)).await;
        if let (Some(retry), Err(error)) = (retry, &result)
            && (retry.is_outage)(&**error)
            && outage_since
                .get_or_insert_with(tokio::time::Instant::now)
                .elapsed()
                < OUTAGE_PATIENCE
        {
            if pause == Duration::from_millis(100) {
                tracing::warn!(
                    "event {} ({}, entry {}): {handler_name} failed, a store is unavailable; \
                     retrying until it is back: {error}",
                    received.event.name(),
                    received.source,
                    received.id
                );
            }
            attempt -= 1;
            drop(result);
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(OUTAGE_MAX_DELAY);
            continue;
        }
        if outage_since.is_some() && result.is_ok() {
            tracing::info!(
                "event {} ({}, entry {}): {handler_name} succeeded after the store came back",
                received.event.name(),
                received.source,
                received.id
            );
        }
        if consuming {
            match &result {
                Ok(()) => bai_metrics::record::event_handled(event, handler_name),
                Err(_) => bai_metrics::record::event_handler_failed(event, handler_name),
            }
        }
        match result {
            Ok(()) => return,
            Err(error) if attempt < attempts => {
                tracing::warn!(
                    "event {} ({}, entry {}): {handler_name} failed (attempt {attempt} of \
                     {attempts}), retrying: {error}",
                    received.event.name(),
                    received.source,
                    received.id
                );
                tokio::time::sleep(delay).await;
                delay *= 4;
            }
            Err(error) => {
                tracing::error!(
                    "event {} ({}, entry {}): {handler_name} failed {attempts} times; giving the \
                     event up: {error}; event: {:?}",
                    received.event.name(),
                    received.source,
                    received.id,
                    received.event
                );
            }
        }
    }
}

/// An entry for a log line: its fields, binary ones as hex, cut short.
fn describe_entry(entry: &StreamEntry) -> String {
    const LIMIT: usize = 512;
    entry
        .fields
        .iter()
        .map(|(name, value)| {
            let name = String::from_utf8_lossy(name);
            let shown = &value[..value.len().min(LIMIT)];
            let more = if value.len() > LIMIT { "…" } else { "" };
            match std::str::from_utf8(shown) {
                Ok(text) if name != "args" => format!("{name}={text:?}{more}"),
                _ => format!("{name}=0x{}{more}", hex::encode(shown)),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `handlers` for every entry added after it started, until `shutdown` (the reference's
/// `subscribe`): nothing is acknowledged, a failing handler is logged.
pub async fn run_subscriber(stream: StreamDb, handlers: Handlers, shutdown: CancellationToken) {
    let mut outage = Outage { since: None };
    let mut last = loop {
        let last = tokio::select! {
            () = shutdown.cancelled() => return,
            last = stream.last_id() => last,
        };
        match last {
            Ok(last) => break last,
            Err(error) => {
                outage.failed("finding the end of the stream", &error);
                pause(&shutdown).await;
            }
        }
    };
    while !shutdown.is_cancelled() {
        let read = tokio::select! {
            () = shutdown.cancelled() => return,
            read = stream.read_after(last, 256, Duration::from_secs(1)) => read,
        };
        match read {
            Ok(entries) => {
                outage.recovered();
                if let Some(newest) = entries.last() {
                    last = newest.id;
                }
                run_handlers(&handlers, entries, None).await;
            }
            Err(error) => {
                outage.failed("reading", &error);
                pause(&shutdown).await;
            }
        }
    }
}

/// Trims the stream every `every` until `shutdown`, keeping every entry some consumer group has
/// not read or acknowledged (see [`StreamDb::trim_consumed`]); the reference's subscribers cut it
/// to about 128 entries whatever the groups still needed.
pub async fn run_trimmer(stream: StreamDb, every: Duration, shutdown: CancellationToken) {
    let mut outage = Outage { since: None };
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        match stream.trim_consumed().await {
            Ok(removed) => {
                outage.recovered();
                tracing::debug!("event stream: trimmed {removed} consumed entries");
            }
            Err(error) => outage.failed("trimming", &error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_names_are_the_references_shape() {
        let name = consumer_name("i-host", "/opt/bai", 1);
        let parts: Vec<&str> = name.split(':').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0], hex::encode(Sha1::digest(b"i-host")));
        assert_eq!(parts[0].len(), 40);
        assert_eq!(parts[2], "1");
        assert_eq!(name, consumer_name("i-host", "/opt/bai", 1));
    }

    #[test]
    fn entries_are_described_with_binary_args_as_hex() {
        let entry = StreamEntry {
            id: EntryId { millis: 1, seq: 0 },
            fields: vec![
                (b"name".to_vec(), b"agent_started".to_vec()),
                (b"args".to_vec(), vec![0x91, 0xa0]),
            ],
        };
        assert_eq!(describe_entry(&entry), "name=\"agent_started\" args=0x91a0");
    }
}
