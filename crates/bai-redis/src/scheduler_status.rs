//! What a manager's scheduler says about its last runs, in database 2 as the reference's
//! dispatcher writes it: one hash `manager.{manager_id}.{task}` per task (`schedule`, `prepare`,
//! `scale_services`), emptied when a run begins and then filled with `trigger_event` and
//! `execution_time`, `resource_group` (the last group or session's group handled) and
//! `finish_time` (absent while the run goes on or when it failed). No expiry: the hash of the last
//! run stays until the next run of the same task. `GET /manager/scheduler/status` reads them back.

use std::collections::HashMap;
use std::sync::Arc;

use bai_pyjson::datetime::isoformat;
use chrono::Utc;
use fred::prelude::HashesInterface;
use fred::types::scripts::Script;

use crate::{LiveDb, RedisDb, RedisError};

const DB: RedisDb = RedisDb::Live;

/// KEYS[1] = the task's hash, ARGV = [trigger event, execution time]. A run's hash starts empty,
/// so a reader never sees the previous run's `finish_time` next to this run's start.
const BEGIN_LUA: &str = r"
redis.call('DEL', KEYS[1])
return redis.call('HSET', KEYS[1], 'trigger_event', ARGV[1], 'execution_time', ARGV[2])
";

/// The fields the dispatcher writes, in the order it writes them (the answer keeps this order;
/// any other field follows by name).
const FIELD_ORDER: [&str; 4] = [
    "trigger_event",
    "execution_time",
    "resource_group",
    "finish_time",
];

/// A task of the scheduler, named as the reference's `SchedulerEvent` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SchedulerTask {
    /// PENDING → SCHEDULED.
    Schedule,
    /// SCHEDULED → PREPARING, and the agents asked to create the kernels.
    Prepare,
    /// Inference endpoints scaled to their replica counts.
    ScaleServices,
}

impl SchedulerTask {
    /// Every task, in the reference's order.
    pub const ALL: [SchedulerTask; 3] = [
        SchedulerTask::Schedule,
        SchedulerTask::Prepare,
        SchedulerTask::ScaleServices,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SchedulerTask::Schedule => "schedule",
            SchedulerTask::Prepare => "prepare",
            SchedulerTask::ScaleServices => "scale_services",
        }
    }
}

/// One task's hash as read back: field → value, in [`FIELD_ORDER`] then by name.
pub type SchedulerTaskStatus = Vec<(String, String)>;

/// The status hashes of one manager (`manager.id` of manager.toml).
#[derive(Clone, Debug)]
pub struct SchedulerStatus {
    live: LiveDb,
    manager_id: String,
    begin: Arc<Script>,
}

impl SchedulerStatus {
    pub fn new(live: LiveDb, manager_id: impl Into<String>) -> SchedulerStatus {
        SchedulerStatus {
            live,
            manager_id: manager_id.into(),
            begin: Arc::new(Script::from_lua(BEGIN_LUA)),
        }
    }

    fn key(&self, task: SchedulerTask) -> String {
        format!("manager.{}.{}", self.manager_id, task.name())
    }

    /// A run of `task` begins, set going by `trigger_event` (an event name such as
    /// `do_schedule`): the hash is replaced by the trigger and the time now.
    pub async fn begin(&self, task: SchedulerTask, trigger_event: &str) -> Result<(), RedisError> {
        let _: i64 = self
            .begin
            .evalsha_with_reload(
                &self.live.client(),
                vec![self.key(task)],
                vec![trigger_event.to_owned(), isoformat(&Utc::now())],
            )
            .await
            .map_err(RedisError::in_db(DB))?;
        Ok(())
    }

    /// The run handled `resource_group`.
    pub async fn handled(
        &self,
        task: SchedulerTask,
        resource_group: &str,
    ) -> Result<(), RedisError> {
        self.set(task, "resource_group", resource_group.to_owned())
            .await
    }

    /// The run is over.
    pub async fn finish(&self, task: SchedulerTask) -> Result<(), RedisError> {
        self.set(task, "finish_time", isoformat(&Utc::now())).await
    }

    async fn set(&self, task: SchedulerTask, field: &str, value: String) -> Result<(), RedisError> {
        self.live
            .client()
            .hset::<(), _, _>(self.key(task), (field, value))
            .await
            .map_err(RedisError::in_db(DB))
    }

    /// Every task's hash (empty for a task that never ran here), in [`SchedulerTask::ALL`]'s order.
    pub async fn read(&self) -> Result<Vec<(SchedulerTask, SchedulerTaskStatus)>, RedisError> {
        let mut tasks = Vec::with_capacity(SchedulerTask::ALL.len());
        for task in SchedulerTask::ALL {
            let fields: HashMap<String, String> = self
                .live
                .client()
                .hgetall(self.key(task))
                .await
                .map_err(RedisError::in_db(DB))?;
            let mut fields: Vec<(String, String)> = fields.into_iter().collect();
            fields.sort_by_key(|(field, _)| {
                let rank = FIELD_ORDER
                    .iter()
                    .position(|known| known == field)
                    .unwrap_or(FIELD_ORDER.len());
                (rank, field.clone())
            });
            tasks.push((task, fields));
        }
        Ok(tasks)
    }
}
