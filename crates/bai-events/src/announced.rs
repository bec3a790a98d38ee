//! Looking back on the stream: was an event added after a given entry? A handler that runs again
//! on an entry (its first consumer died mid-way, another took the entry over) asks this before
//! announcing what the first run may have announced already. Every entry after one that is still
//! pending is still in the stream (trimming stops at the oldest entry a group needs), so the
//! answer is exact for entries added after an entry being handled.

use std::time::Duration;

use bai_redis::{EntryId, RedisError, StreamDb};

use crate::catalogue::Event;

/// Entries read per `XREAD`.
const PAGE: usize = 1024;
/// `XREAD` waits this long when nothing follows (0 would mean forever).
const NO_WAIT: Duration = Duration::from_millis(1);

/// Whether an event for which `wanted` is true was added to the stream after entry `after`
/// (`wanted` sees every event added since, until one is wanted).
pub async fn added_after(
    stream: &StreamDb,
    after: EntryId,
    mut wanted: impl FnMut(&Event) -> bool,
) -> Result<bool, RedisError> {
    let mut from = after;
    loop {
        let entries = stream.read_after(from, PAGE, NO_WAIT).await?;
        let Some(last) = entries.last() else {
            return Ok(false);
        };
        from = last.id;
        let found = entries.iter().any(|entry| {
            let (Some(name), Some(args)) = (entry.field("name"), entry.field("args")) else {
                return false;
            };
            Event::decode(name, args).is_ok_and(|event| wanted(&event))
        });
        if found {
            return Ok(true);
        }
    }
}
