//! The reference's background-task trackers in database 4: one hash `bgtask.{task_id}` per task
//! (fields `status` `started`/`done`/`cancelled`/`failed`, `current`, `total`, `msg`,
//! `started_at`, `last_update`), kept 24 hours by whoever runs the task. `GET
//! /events/background-task` reads it to answer for a task that already ended.
//!
//! Read-only here: the writers are the processes that run background tasks.

use std::collections::HashMap;

use fred::prelude::HashesInterface;
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
