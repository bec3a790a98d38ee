//! The manager's scheduling core, as far as it goes today: resource slots with the reference's
//! arithmetic ([`Slots`], one type for every sum, difference, "fits" comparison and minimum), the
//! slot types the cluster knows ([`KnownSlots`]: `cpu`, `mem`, then etcd `config/resource_slots`),
//! the sums of agents' slots, and the quota headroom `check-presets` reports (what a keypair, its
//! project and domain may still use, and what the live agents of its resource groups have left),
//! computed from the stores (`bai-db-models` queries, the etcd store), the checks a new session
//! must pass before it is enqueued ([`enqueue`]), and the in-memory decision of a scheduling round
//! ([`round`]).
//!
//! This crate must not know HTTP, the wire form of answers (`NaN` strings, which field holds what),
//! manager.toml or Redis, and it writes no SQL (it calls `bai-db-models`). Slot arithmetic lives here
//! and nowhere else: the database keeps slot maps in their storage shape
//! ([`bai_db_models::entities::ResourceSlot`]), converted explicitly to and from [`Slots`].

mod capacity;
pub mod enqueue;
mod error;
mod headroom;
pub mod round;
mod slots;

pub use capacity::{SlotTotals, agent_slot_totals};
pub use error::SchedulerError;
pub use headroom::{
    Headroom, PresetFit, Quota, Requester, ScalingGroupHeadroom, check_presets, occupancy,
};
pub use slots::{KnownSlots, SlotAmount, Slots, allocated_slots, min_first};
