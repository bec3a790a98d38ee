//! The event bus of Backend.AI: the Redis stream `events` (database 4) that managers and agents
//! share, entries of `name`, `source` and `args`, the args in Backend.AI's msgpack flavour (ext types
//! for UUIDs, datetimes and pickled enums and decimals), and the typed catalogue of events.
//! Producing, consuming as one process of a consumer group (acknowledged after the handlers ran),
//! subscribing (broadcast), coalescing triggers, trimming the stream; background tasks
//! (`bgtask`: trackers in `bai-redis` and `bgtask_*` events).
//!
//! It must not know what a handler does with an event (agents, sessions, the scheduler live above),
//! SQL, HTTP or manager.toml; Redis commands go through `bai-redis`. Its loops are futures the
//! caller runs with its shutdown signal; only background tasks are spawned, under the runner's
//! shutdown token, which their owner waits for.

mod agent_info;
mod announced;
mod bgtask;
mod bus;
mod catalogue;
mod coalesce;
pub mod codec;
mod json;

pub use agent_info::{AgentInfo, SlotCapacity};
pub use announced::added_after;
pub use bgtask::{
    BackgroundTasks, BgtaskResult, BgtaskStartError, FIRST_REPORT_AFTER, ProgressReporter,
};
pub use bus::{
    ConsumerOptions, EventProducer, HandlerError, Handlers, MANAGER_GROUP, Received, consumer_name,
    run_consumer, run_subscriber, run_trimmer,
};
pub use catalogue::{
    BgtaskEnd, BgtaskProgress, DecodeError, EVENT_NAMES, Event, KernelCreation, KernelTermination,
    SessionCreation, SessionResult, SessionTermination, VolumeMount, VolumeMountResult,
    VolumeUnmount,
};
pub use coalesce::{Burst, Coalesced, Trigger, coalescing};
/// A msgpack value (an event's or an RPC answer's) as JSON, and JSON as a msgpack value (what we
/// send: an RPC's arguments).
pub use json::{to_json, to_value};
