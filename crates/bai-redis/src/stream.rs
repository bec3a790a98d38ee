//! Database 4, the event stream: the one stream `events` that every manager and agent writes its
//! events to and reads from, with entries of three fields (`name`, `source`, `args`), consumer
//! groups (`manager`, `agent`) and plain readers.
//!
//! A blocking read holds its connection until it returns, so every reader needs a `StreamDb` of
//! its own ([`StreamDb::connect`] opens one); the short commands of many tasks can share one.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use bai_etcd_store::shared_config::RedisConfig;
use fred::prelude::{Client, ClientLike, Options};
use fred::types::{ClusterHash, CustomCommand, Value};

use crate::connect::{COMMAND_TIMEOUT, DbConnection};
use crate::{RedisConnectError, RedisDb, RedisError};

const DB: RedisDb = RedisDb::Stream;
/// The stream's key, fixed by the protocol.
const STREAM: &str = "events";

/// The id Redis gave a stream entry: milliseconds of its clock when the entry was added, and a
/// sequence number within that millisecond. Ids order entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryId {
    pub millis: u64,
    pub seq: u64,
}

impl EntryId {
    /// The smallest id: "from the start of the stream".
    pub const ZERO: EntryId = EntryId { millis: 0, seq: 0 };

    /// The id right after this one.
    fn next(self) -> EntryId {
        match self.seq.checked_add(1) {
            Some(seq) => EntryId { seq, ..self },
            None => EntryId {
                millis: self.millis.saturating_add(1),
                seq: 0,
            },
        }
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.millis, self.seq)
    }
}

/// A stream entry id that is not `{millis}-{seq}`.
#[derive(Debug, thiserror::Error)]
#[error("not a stream entry id: {0:?}")]
pub struct BadEntryId(String);

impl FromStr for EntryId {
    type Err = BadEntryId;

    fn from_str(text: &str) -> Result<EntryId, BadEntryId> {
        let bad = || BadEntryId(text.to_owned());
        let (millis, seq) = text.split_once('-').ok_or_else(bad)?;
        Ok(EntryId {
            millis: millis.parse().map_err(|_| bad())?,
            seq: seq.parse().map_err(|_| bad())?,
        })
    }
}

/// One entry as read, its fields as they are (a malformed entry is the reader's to report).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamEntry {
    pub id: EntryId,
    pub fields: Vec<(Vec<u8>, Vec<u8>)>,
}

impl StreamEntry {
    /// The value of the first field called `name`.
    pub fn field(&self, name: &str) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|(field, _)| field == name.as_bytes())
            .map(|(_, value)| value.as_slice())
    }
}

/// A stream entry another consumer of the group left unacknowledged, taken over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedEntry {
    pub entry: StreamEntry,
    /// How often the group has delivered it, this time included.
    pub deliveries: u64,
}

/// What a Redis answer held that the stream commands do not produce.
fn unexpected(what: &str, value: &Value) -> RedisError {
    RedisError {
        db: DB,
        source: fred::error::Error::new(
            fred::error::ErrorKind::Parse,
            format!("unexpected answer to {what}: {value:?}"),
        ),
    }
}

/// Database 4.
#[derive(Clone, Debug)]
pub struct StreamDb {
    connection: DbConnection,
}

impl StreamDb {
    /// A connection of its own (see the module docs: one per blocking reader).
    pub async fn connect(config: &RedisConfig) -> Result<StreamDb, RedisConnectError> {
        Ok(StreamDb::over(DbConnection::connect(config, DB).await?))
    }

    pub(crate) fn over(connection: DbConnection) -> StreamDb {
        StreamDb { connection }
    }

    pub(crate) fn client(&self) -> Client {
        self.connection.current()
    }

    pub(crate) fn connection(&self) -> &DbConnection {
        &self.connection
    }

    /// Closes the connection; a read blocked on it returns an error.
    pub async fn close(&self) {
        self.connection.close().await;
    }

    async fn command(&self, name: &'static str, args: Vec<Value>) -> Result<Value, RedisError> {
        self.client()
            .custom(
                CustomCommand::new_static(name, ClusterHash::FirstKey, false),
                args,
            )
            .await
            .map_err(RedisError::in_db(DB))
    }

    /// A read that waits up to `block` on the server: its timeout is the block time plus the usual
    /// [`COMMAND_TIMEOUT`].
    async fn blocking_command(
        &self,
        name: &'static str,
        args: Vec<Value>,
        block: Duration,
    ) -> Result<Value, RedisError> {
        let options = Options {
            timeout: Some(block + COMMAND_TIMEOUT),
            ..Options::default()
        };
        self.client()
            .with_options(&options)
            .custom(
                CustomCommand::new_static(name, ClusterHash::FirstKey, true),
                args,
            )
            .await
            .map_err(RedisError::in_db(DB))
    }

    /// Appends an entry (`XADD events * name .. source .. args ..`) and returns its id.
    pub async fn add(&self, name: &str, source: &str, args: &[u8]) -> Result<EntryId, RedisError> {
        let answer = self
            .command(
                "XADD",
                vec![
                    STREAM.into(),
                    "*".into(),
                    "name".into(),
                    name.into(),
                    "source".into(),
                    source.into(),
                    "args".into(),
                    Value::Bytes(args.to_vec().into()),
                ],
            )
            .await?;
        parse_id(&answer).ok_or_else(|| unexpected("XADD", &answer))
    }

    /// Creates consumer group `group` reading from entries added after now, and the stream if
    /// there is none; a group that exists already is left as it is.
    pub async fn ensure_group(&self, group: &str) -> Result<(), RedisError> {
        let created = self
            .command(
                "XGROUP",
                vec![
                    "CREATE".into(),
                    STREAM.into(),
                    group.into(),
                    "$".into(),
                    "MKSTREAM".into(),
                ],
            )
            .await;
        match created {
            Err(error) if error.source.details().starts_with("BUSYGROUP") => Ok(()),
            other => other.map(drop),
        }
    }

    /// Up to `count` entries never delivered to `group` (`XREADGROUP … >`), waiting up to `block`
    /// for the first; they stay pending for `consumer` until acknowledged. A missing group (or
    /// stream) is created first, reading from now.
    pub async fn read_group(
        &self,
        group: &str,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<StreamEntry>, RedisError> {
        self.read_group_from(group, consumer, count, Some(block), ">")
            .await
    }

    /// Up to `count` entries delivered to `consumer` before and not acknowledged, from the oldest
    /// (what a restarted process left behind under its own consumer name), each with its delivery
    /// count: Redis counts this read as one more delivery, as it does a take-over.
    pub async fn own_pending(
        &self,
        group: &str,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<ClaimedEntry>, RedisError> {
        let entries = self
            .read_group_from(group, consumer, count, None, "0")
            .await?;
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(Vec::new());
        };
        let counts = self.delivery_counts(group, first.id, last.id).await?;
        Ok(entries
            .into_iter()
            .map(|entry| ClaimedEntry {
                deliveries: counts
                    .iter()
                    .find(|(id, _)| *id == entry.id)
                    .map_or(1, |(_, count)| *count),
                entry,
            })
            .collect())
    }

    async fn read_group_from(
        &self,
        group: &str,
        consumer: &str,
        count: usize,
        block: Option<Duration>,
        from: &str,
    ) -> Result<Vec<StreamEntry>, RedisError> {
        let mut args: Vec<Value> = vec![
            "GROUP".into(),
            group.into(),
            consumer.into(),
            "COUNT".into(),
            count.max(1).to_string().into(),
        ];
        if let Some(block) = block {
            args.extend(["BLOCK".into(), block.as_millis().to_string().into()]);
        }
        args.extend(["STREAMS".into(), STREAM.into(), from.into()]);
        let read = async |args| match block {
            Some(block) => self.blocking_command("XREADGROUP", args, block).await,
            None => self.command("XREADGROUP", args).await,
        };
        let answer = match read(args.clone()).await {
            Err(error) if error.source.details().starts_with("NOGROUP") => {
                self.ensure_group(group).await?;
                read(args).await?
            }
            other => other?,
        };
        parse_read(&answer).ok_or_else(|| unexpected("XREADGROUP", &answer))
    }

    /// Takes over entries of `group` that another consumer has held unacknowledged for at least
    /// `min_idle` (`XAUTOCLAIM`, the whole pending list in pages of `count`), each with its
    /// delivery count. Entries deleted from the stream meanwhile are dropped from the list.
    pub async fn claim_idle(
        &self,
        group: &str,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<ClaimedEntry>, RedisError> {
        let mut claimed = Vec::new();
        let mut cursor = EntryId::ZERO;
        loop {
            let answer = self
                .command(
                    "XAUTOCLAIM",
                    vec![
                        STREAM.into(),
                        group.into(),
                        consumer.into(),
                        min_idle.as_millis().to_string().into(),
                        cursor.to_string().into(),
                        "COUNT".into(),
                        count.max(1).to_string().into(),
                    ],
                )
                .await;
            let answer = match answer {
                Err(error) if error.source.details().starts_with("NOGROUP") => {
                    return Ok(claimed);
                }
                other => other?,
            };
            let parts = array(&answer).ok_or_else(|| unexpected("XAUTOCLAIM", &answer))?;
            let (next, entries) = match parts {
                [next, entries, ..] => (
                    parse_id(next).ok_or_else(|| unexpected("XAUTOCLAIM", &answer))?,
                    parse_entries(entries).ok_or_else(|| unexpected("XAUTOCLAIM", &answer))?,
                ),
                _ => return Err(unexpected("XAUTOCLAIM", &answer)),
            };
            if !entries.is_empty() {
                let counts = self
                    .delivery_counts(group, entries[0].id, entries[entries.len() - 1].id)
                    .await?;
                claimed.extend(entries.into_iter().map(|entry| {
                    ClaimedEntry {
                        deliveries: counts
                            .iter()
                            .find(|(id, _)| *id == entry.id)
                            .map_or(1, |(_, count)| *count),
                        entry,
                    }
                }));
            }
            if next == EntryId::ZERO {
                return Ok(claimed);
            }
            cursor = next;
        }
    }

    /// How often `group` delivered each pending entry between `first` and `last` (inclusive).
    async fn delivery_counts(
        &self,
        group: &str,
        first: EntryId,
        last: EntryId,
    ) -> Result<Vec<(EntryId, u64)>, RedisError> {
        let answer = self
            .command(
                "XPENDING",
                vec![
                    STREAM.into(),
                    group.into(),
                    first.to_string().into(),
                    last.to_string().into(),
                    "10000".into(),
                ],
            )
            .await?;
        let rows = array(&answer).ok_or_else(|| unexpected("XPENDING", &answer))?;
        rows.iter()
            .map(|row| match array(row) {
                Some([id, _consumer, _idle, deliveries]) => {
                    Some((parse_id(id)?, u64::try_from(deliveries.as_i64()?).ok()?))
                }
                _ => None,
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| unexpected("XPENDING", &answer))
    }

    /// Resets the idle time of entries `consumer` holds and still works on (`XCLAIM … JUSTID`),
    /// so that [`StreamDb::claim_idle`] of other consumers leaves them alone.
    pub async fn keep_claimed(
        &self,
        group: &str,
        consumer: &str,
        ids: &[EntryId],
    ) -> Result<(), RedisError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut args: Vec<Value> = vec![STREAM.into(), group.into(), consumer.into(), "0".into()];
        args.extend(ids.iter().map(|id| Value::from(id.to_string())));
        args.push("JUSTID".into());
        self.command("XCLAIM", args).await.map(drop)
    }

    /// Acknowledges entries for `group`; returns how many were pending.
    pub async fn ack(&self, group: &str, ids: &[EntryId]) -> Result<u64, RedisError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let mut args: Vec<Value> = vec![STREAM.into(), group.into()];
        args.extend(ids.iter().map(|id| Value::from(id.to_string())));
        let answer = self.command("XACK", args).await?;
        answer
            .as_i64()
            .and_then(|count| u64::try_from(count).ok())
            .ok_or_else(|| unexpected("XACK", &answer))
    }

    /// The id of the newest entry, or [`EntryId::ZERO`] for an empty or missing stream: where a
    /// reader starts that wants only what comes next.
    pub async fn last_id(&self) -> Result<EntryId, RedisError> {
        let answer = self
            .command(
                "XREVRANGE",
                vec![
                    STREAM.into(),
                    "+".into(),
                    "-".into(),
                    "COUNT".into(),
                    "1".into(),
                ],
            )
            .await?;
        let entries = parse_entries(&answer).ok_or_else(|| unexpected("XREVRANGE", &answer))?;
        Ok(entries.first().map_or(EntryId::ZERO, |entry| entry.id))
    }

    /// Up to `count` entries after `after`, waiting up to `block` for the first (`XREAD`).
    pub async fn read_after(
        &self,
        after: EntryId,
        count: usize,
        block: Duration,
    ) -> Result<Vec<StreamEntry>, RedisError> {
        let answer = self
            .blocking_command(
                "XREAD",
                vec![
                    "COUNT".into(),
                    count.max(1).to_string().into(),
                    "BLOCK".into(),
                    block.as_millis().to_string().into(),
                    "STREAMS".into(),
                    STREAM.into(),
                    after.to_string().into(),
                ],
                block,
            )
            .await?;
        parse_read(&answer).ok_or_else(|| unexpected("XREAD", &answer))
    }

    /// Removes the entries every consumer group is done with: those older than the oldest entry
    /// any group has pending or not yet read. Entries some group still needs stay, however many.
    /// Without any group nothing is trimmed. Returns how many entries were removed.
    pub async fn trim_consumed(&self) -> Result<u64, RedisError> {
        let mut oldest_needed: Option<EntryId> = None;
        for group in self.groups().await? {
            let mut needed = group.last_delivered.next();
            if let Some(first_pending) = self.first_pending(&group.name).await? {
                needed = needed.min(first_pending);
            }
            oldest_needed = Some(oldest_needed.map_or(needed, |oldest| oldest.min(needed)));
        }
        let Some(oldest_needed) = oldest_needed else {
            return Ok(0);
        };
        let answer = self
            .command(
                "XTRIM",
                vec![
                    STREAM.into(),
                    "MINID".into(),
                    "~".into(),
                    oldest_needed.to_string().into(),
                ],
            )
            .await?;
        answer
            .as_i64()
            .and_then(|count| u64::try_from(count).ok())
            .ok_or_else(|| unexpected("XTRIM", &answer))
    }

    /// How long the oldest entry `group` has not finished with (delivered and not acknowledged,
    /// or not delivered yet) has been in the stream, by the Redis server's clock (which also made
    /// the entry ids); `None` when the group is done with every entry, or does not exist.
    pub async fn oldest_unhandled_age(&self, group: &str) -> Result<Option<Duration>, RedisError> {
        let Some(delivered) = self.last_delivered(group).await? else {
            return Ok(None);
        };
        let undelivered = self
            .command(
                "XRANGE",
                vec![
                    STREAM.into(),
                    format!("({delivered}").into(),
                    "+".into(),
                    "COUNT".into(),
                    "1".into(),
                ],
            )
            .await?;
        let undelivered = parse_entries(&undelivered)
            .ok_or_else(|| unexpected("XRANGE", &undelivered))?
            .first()
            .map(|entry| entry.id);
        let oldest = match (self.first_pending(group).await?, undelivered) {
            (Some(pending), Some(undelivered)) => pending.min(undelivered),
            (Some(oldest), None) | (None, Some(oldest)) => oldest,
            (None, None) => return Ok(None),
        };
        let time = self.command("TIME", Vec::new()).await?;
        let now_millis = match array(&time) {
            Some([seconds, micros]) => {
                let seconds: u64 = seconds
                    .as_str()
                    .and_then(|text| text.parse().ok())
                    .unwrap_or(0);
                let micros: u64 = micros
                    .as_str()
                    .and_then(|text| text.parse().ok())
                    .unwrap_or(0);
                seconds * 1000 + micros / 1000
            }
            _ => return Err(unexpected("TIME", &time)),
        };
        Ok(Some(Duration::from_millis(
            now_millis.saturating_sub(oldest.millis),
        )))
    }

    /// The consumer groups of the stream (none without the stream), as `XINFO GROUPS` tells.
    async fn groups(&self) -> Result<Vec<GroupInfo>, RedisError> {
        let answer = match self
            .command("XINFO", vec!["GROUPS".into(), STREAM.into()])
            .await
        {
            Err(error) if error.source.details().starts_with("ERR no such key") => {
                return Ok(Vec::new());
            }
            other => other?,
        };
        let groups = array(&answer).ok_or_else(|| unexpected("XINFO GROUPS", &answer))?;
        groups
            .iter()
            .map(|group| {
                let info = field_map(group)?;
                let field = |name: &str| {
                    info.iter()
                        .find(|(key, _)| key == name)
                        .map(|(_, value)| value)
                };
                Some(GroupInfo {
                    name: field("name")?.as_string()?,
                    last_delivered: parse_id(field("last-delivered-id")?)?,
                    pending: field("pending")
                        .and_then(Value::as_i64)
                        .and_then(|count| u64::try_from(count).ok())
                        .unwrap_or(0),
                    // Redis 7 says; nil when it cannot tell, absent before 7.
                    lag: field("lag")
                        .and_then(Value::as_i64)
                        .and_then(|count| u64::try_from(count).ok()),
                    // Nil when Redis does not know (a group made at `$` of a non-empty stream).
                    #[cfg(feature = "testing")]
                    entries_read: field("entries-read")
                        .and_then(Value::as_i64)
                        .and_then(|count| u64::try_from(count).ok()),
                })
            })
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| unexpected("XINFO GROUPS", &answer))
    }

    /// How far behind each consumer group of the stream is, for the metrics.
    pub async fn group_backlogs(&self) -> Result<Vec<GroupBacklog>, RedisError> {
        Ok(self
            .groups()
            .await?
            .into_iter()
            .map(|group| GroupBacklog {
                name: group.name,
                pending: group.pending,
                lag: group.lag,
            })
            .collect())
    }

    async fn group(&self, name: &str) -> Result<Option<GroupInfo>, RedisError> {
        Ok(self
            .groups()
            .await?
            .into_iter()
            .find(|group| group.name == name))
    }

    /// The `last-delivered-id` of `group`, if it exists.
    async fn last_delivered(&self, group: &str) -> Result<Option<EntryId>, RedisError> {
        Ok(self.group(group).await?.map(|group| group.last_delivered))
    }

    /// How many entries `group` has delivered and not had acknowledged (0 without the group).
    /// For tests, which watch a group's progress; the manager itself does not ask.
    #[cfg(feature = "testing")]
    pub async fn pending_count(&self, group: &str) -> Result<u64, RedisError> {
        Ok(self.pending_summary(group).await?.0)
    }

    /// The oldest entry `group` has delivered and not had acknowledged.
    async fn first_pending(&self, group: &str) -> Result<Option<EntryId>, RedisError> {
        Ok(self.pending_summary(group).await?.1)
    }

    /// `XPENDING events GROUP`: how many entries are pending and the oldest of them (none
    /// without the group).
    async fn pending_summary(&self, group: &str) -> Result<(u64, Option<EntryId>), RedisError> {
        let answer = match self
            .command("XPENDING", vec![STREAM.into(), group.into()])
            .await
        {
            Err(error) if error.source.details().starts_with("NOGROUP") => return Ok((0, None)),
            other => other?,
        };
        let count = match array(&answer) {
            Some([count, ..]) => count.as_i64().and_then(|count| u64::try_from(count).ok()),
            _ => None,
        }
        .ok_or_else(|| unexpected("XPENDING", &answer))?;
        if count == 0 {
            return Ok((0, None));
        }
        match array(&answer) {
            Some([_, first, ..]) => parse_id(first)
                .map(|first| (count, Some(first)))
                .ok_or_else(|| unexpected("XPENDING", &answer)),
            _ => Err(unexpected("XPENDING", &answer)),
        }
    }

    /// How many entries the stream holds. For tests.
    #[cfg(feature = "testing")]
    pub async fn entry_count(&self) -> Result<u64, RedisError> {
        let answer = self.command("XLEN", vec![STREAM.into()]).await?;
        answer
            .as_i64()
            .and_then(|count| u64::try_from(count).ok())
            .ok_or_else(|| unexpected("XLEN", &answer))
    }

    /// How many entries `group` has read in all (`entries-read` of `XINFO GROUPS`), if the group
    /// exists and Redis knows the count. For tests.
    #[cfg(feature = "testing")]
    pub async fn group_entries_read(&self, group: &str) -> Result<Option<u64>, RedisError> {
        Ok(self
            .group(group)
            .await?
            .and_then(|group| group.entries_read))
    }
}

/// How far behind a consumer group is (`XINFO GROUPS`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupBacklog {
    pub name: String,
    /// Entries delivered and not acknowledged.
    pub pending: u64,
    /// Entries not delivered yet; `None` when Redis cannot tell (before 7.0, or after deletions).
    pub lag: Option<u64>,
}

/// What `XINFO GROUPS` says about one group.
struct GroupInfo {
    name: String,
    last_delivered: EntryId,
    pending: u64,
    lag: Option<u64>,
    #[cfg(feature = "testing")]
    entries_read: Option<u64>,
}

fn array(value: &Value) -> Option<&[Value]> {
    match value {
        Value::Array(items) => Some(items),
        _ => None,
    }
}

fn parse_id(value: &Value) -> Option<EntryId> {
    value.as_str()?.parse().ok()
}

/// `[key, value, key, value, …]` as pairs with text keys (the connections speak RESP2).
fn field_map(value: &Value) -> Option<Vec<(String, Value)>> {
    match value {
        Value::Array(items) if items.len() % 2 == 0 => items
            .chunks(2)
            .map(|pair| Some((pair[0].as_string()?, pair[1].clone())))
            .collect(),
        _ => None,
    }
}

/// The answer of `XREAD`/`XREADGROUP` for the one stream: nil (timeout) or `[[events, entries]]`.
fn parse_read(value: &Value) -> Option<Vec<StreamEntry>> {
    match value {
        Value::Null => Some(Vec::new()),
        Value::Array(streams) => match streams.as_slice() {
            [] => Some(Vec::new()),
            [stream] => match array(stream)? {
                [_key, entries] => parse_entries(entries),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

/// `[[id, [field, value, …]], …]`; an entry deleted while pending comes back with nil fields.
fn parse_entries(value: &Value) -> Option<Vec<StreamEntry>> {
    let mut entries = Vec::new();
    for entry in array(value)? {
        let [id, fields] = array(entry)? else {
            return None;
        };
        let fields = match fields {
            Value::Null => continue,
            Value::Array(items) if items.len() % 2 == 0 => items
                .chunks(2)
                .map(|pair| Some((pair[0].as_bytes()?.to_vec(), pair[1].as_bytes()?.to_vec())))
                .collect::<Option<Vec<_>>>()?,
            _ => return None,
        };
        entries.push(StreamEntry {
            id: parse_id(id)?,
            fields,
        });
    }
    Some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_parse_print_and_order() {
        let id: EntryId = "1733470000123-7".parse().unwrap();
        assert_eq!(
            id,
            EntryId {
                millis: 1_733_470_000_123,
                seq: 7
            }
        );
        assert_eq!(id.to_string(), "1733470000123-7");
        assert!(id < "1733470000124-0".parse().unwrap());
        assert_eq!(id.next().to_string(), "1733470000123-8");
        for bad in ["", "12", "a-1", "1-b", "1-2-3"] {
            assert!(bad.parse::<EntryId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn reads_parse_both_answer_shapes() {
        let entry = Value::Array(vec![
            "5-1".into(),
            Value::Array(vec![
                "name".into(),
                "agent_heartbeat".into(),
                "args".into(),
                Value::Bytes(vec![0x90].into()),
            ]),
        ]);
        let deleted = Value::Array(vec!["5-2".into(), Value::Null]);
        let answer = Value::Array(vec![Value::Array(vec![
            "events".into(),
            Value::Array(vec![entry, deleted]),
        ])]);
        let entries = parse_read(&answer).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].id.to_string(), "5-1");
        assert_eq!(entries[0].field("name"), Some(&b"agent_heartbeat"[..]));
        assert_eq!(entries[0].field("args"), Some(&[0x90u8][..]));
        assert_eq!(entries[0].field("source"), None);
        assert_eq!(parse_read(&Value::Null), Some(Vec::new()));
    }
}
