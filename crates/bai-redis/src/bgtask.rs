//! The reference's background-task trackers in database 4: one hash `bgtask.{task_id}` per task
//! (fields `status` `started`/`done`/`cancelled`/`failed`, `current`, `total`, `msg`,
//! `started_at`, `last_update`), kept 24 hours after its last write. `GET
//! /events/background-task` reads it to answer for a task that already ended; the runner of
//! `bai-events` writes it as the reference's `BackgroundTaskManager` does: every field when the
//! task starts, `current`/`total`/`msg` on each progress report, `status`/`msg` when it ends,
//! `last_update` each time (Unix seconds, as Python's `str(time.time())`).

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use fred::prelude::{HashesInterface, KeysInterface};
use uuid::Uuid;

use crate::{RedisDb, RedisError, StreamDb};

/// The last state a task's runner recorded, fields as stored (numbers as Python's `str`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BgtaskTracker {
    /// `started` while it runs, then `done`, `cancelled` or `failed`.
    pub status: String,
    pub current: String,
    pub total: String,
    pub msg: String,
}

/// How long a tracker stays after its last write (the reference's `MAX_BGTASK_ARCHIVE_PERIOD`).
pub const BGTASK_TRACKER_TTL_SECONDS: i64 = 86_400;

/// How a task ended, as its tracker's `status` spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BgtaskEnding {
    Done,
    Cancelled,
    Failed,
}

impl BgtaskEnding {
    pub fn as_str(self) -> &'static str {
        match self {
            BgtaskEnding::Done => "done",
            BgtaskEnding::Cancelled => "cancelled",
            BgtaskEnding::Failed => "failed",
        }
    }
}

impl StreamDb {
    /// The tracker of `task_id`; `None` when there is none (never started here, or ended more
    /// than 24 hours ago) or it lacks `status`.
    pub async fn bgtask_tracker(&self, task_id: Uuid) -> Result<Option<BgtaskTracker>, RedisError> {
        let mut fields: HashMap<String, String> = self
            .client()
            .hgetall(format!("bgtask.{task_id}"))
            .await
            .map_err(RedisError::in_db(RedisDb::Stream))?;
        let Some(status) = fields.remove("status") else {
            return Ok(None);
        };
        let mut take = |field: &str| fields.remove(field).unwrap_or_default();
        Ok(Some(BgtaskTracker {
            status,
            current: take("current"),
            total: take("total"),
            msg: take("msg"),
        }))
    }
}

impl StreamDb {
    /// Creates the tracker of a task that starts now: `started`, no progress, no message.
    pub async fn start_bgtask_tracker(&self, task_id: Uuid) -> Result<(), RedisError> {
        let now = unix_now();
        self.write_tracker(
            task_id,
            vec![
                ("status", "started".to_owned()),
                ("current", "0".to_owned()),
                ("total", "0".to_owned()),
                ("msg", String::new()),
                ("started_at", now.clone()),
                ("last_update", now),
            ],
        )
        .await
    }

    /// Records a task's progress (`current` of `total`, with `message` or none).
    pub async fn update_bgtask_tracker(
        &self,
        task_id: Uuid,
        current: u64,
        total: u64,
        message: Option<&str>,
    ) -> Result<(), RedisError> {
        self.write_tracker(
            task_id,
            vec![
                ("current", current.to_string()),
                ("total", total.to_string()),
                ("msg", message.unwrap_or_default().to_owned()),
                ("last_update", unix_now()),
            ],
        )
        .await
    }

    /// Records how a task ended, with its message (a result, or what went wrong).
    pub async fn end_bgtask_tracker(
        &self,
        task_id: Uuid,
        ending: BgtaskEnding,
        message: &str,
    ) -> Result<(), RedisError> {
        self.write_tracker(
            task_id,
            vec![
                ("status", ending.as_str().to_owned()),
                ("msg", message.to_owned()),
                ("last_update", unix_now()),
            ],
        )
        .await
    }

    /// `HSET` of `fields` and the tracker's expiry, in one round trip.
    async fn write_tracker(
        &self,
        task_id: Uuid,
        fields: Vec<(&'static str, String)>,
    ) -> Result<(), RedisError> {
        let key = format!("bgtask.{task_id}");
        let pipeline = self.client().pipeline();
        let _: () = pipeline
            .hset(&key, fields)
            .await
            .map_err(RedisError::in_db(RedisDb::Stream))?;
        let _: () = pipeline
            .expire(&key, BGTASK_TRACKER_TTL_SECONDS, None)
            .await
            .map_err(RedisError::in_db(RedisDb::Stream))?;
        for answer in pipeline.try_all::<i64>().await {
            answer.map_err(RedisError::in_db(RedisDb::Stream))?;
        }
        Ok(())
    }
}

/// Unix time in seconds with a fraction, as Python's `str(time.time())` writes it.
fn unix_now() -> String {
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:06}", elapsed.as_secs(), elapsed.subsec_micros())
}
