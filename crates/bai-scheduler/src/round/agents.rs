//! The agents of a round in dense form, and the reference's choice of an agent for a request:
//! feasibility (`available - occupied >= requested` on every slot), the
//! `key_by_remaining_slots` ordering of FIFO/LIFO (with `num_extras`) and DRF (without), MOF's
//! least-occupied agent, round-robin, and reservations that later choices of the same round see.
//!
//! Pure computation on the snapshot: no I/O.

use std::cmp::Ordering;
use std::collections::HashMap;

use bai_db_models::entities::{ResourceSlot, SlotAmount};

use crate::round::dense::{self, SlotSpace};
use crate::round::md5::md5_hex;
use crate::round::snapshot::{AgentSelectionStrategy, AgentSnapshot, RoundRobinState};

/// How the best of the feasible agents is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Preference {
    /// `max(feasible, key=key_by_remaining_slots)`; FIFO and LIFO put `-num_extras` first, DRF
    /// does not.
    Ranked {
        strategy: AgentSelectionStrategy,
        penalize_extras: bool,
    },
    /// MOF: the least occupied agent.
    LeastOccupied,
}

/// A request in dense form: amounts, and which slots the map names.
#[derive(Clone, Debug)]
pub(crate) struct DenseRequest {
    pub(crate) amounts: Vec<i128>,
    pub(crate) present: Vec<bool>,
}

impl DenseRequest {
    pub(crate) fn new(space: &SlotSpace, slots: &ResourceSlot) -> DenseRequest {
        DenseRequest {
            amounts: space.encode(slots),
            present: space.presence(slots),
        }
    }
}

/// The candidates of one architecture.
#[derive(Clone, Debug, Default)]
pub(crate) struct Architecture {
    /// In input order.
    pub(crate) compatible: Vec<usize>,
    /// Those below the container cap.
    pub(crate) uncapped: Vec<usize>,
    /// `compatible` sorted by agent id (round-robin's ring).
    pub(crate) ring: Vec<usize>,
    /// md5 of the ring's ids joined by `#`.
    pub(crate) ring_id: String,
}

/// Every agent of the round, candidates first; slot vectors are flat, `slots` per agent.
#[derive(Clone, Debug)]
pub(crate) struct AgentTable {
    slots: usize,
    ids: Vec<String>,
    index: HashMap<String, usize>,
    candidates: usize,
    architectures: HashMap<String, Architecture>,
    available: Vec<i128>,
    occupied: Vec<i128>,
    remaining: Vec<i128>,
    /// Slots the agent's `available_slots` or `occupied_slots` name.
    present: Vec<bool>,
    /// The decimal rows, for messages and the plan's reservations.
    available_slots: Vec<ResourceSlot>,
    occupied_slots: Vec<ResourceSlot>,
    /// Per slot, what an agent lacking the slot compares as: `-sys.maxsize`.
    lacking: Vec<i128>,
    /// Slot indices, most important first.
    priority: Vec<usize>,
}

impl AgentTable {
    pub(crate) fn new(
        space: &SlotSpace,
        priority: Vec<usize>,
        candidates: &[AgentSnapshot],
        designated: &[AgentSnapshot],
        max_container_count: Option<u64>,
    ) -> AgentTable {
        let slots = space.len();
        let mut table = AgentTable {
            slots,
            ids: Vec::new(),
            index: HashMap::new(),
            candidates: candidates.len(),
            architectures: HashMap::new(),
            available: Vec::new(),
            occupied: Vec::new(),
            remaining: Vec::new(),
            present: Vec::new(),
            available_slots: Vec::new(),
            occupied_slots: Vec::new(),
            lacking: (0..slots)
                .map(|slot| dense::neg(space.py_maxsize(slot)))
                .collect(),
            priority,
        };
        for (agent, snapshot) in candidates.iter().chain(designated).enumerate() {
            table.ids.push(snapshot.id.clone());
            table.index.entry(snapshot.id.clone()).or_insert(agent);
            let available = space.encode(&snapshot.available_slots);
            let occupied = space.encode(&snapshot.occupied_slots);
            table.remaining.extend(
                available
                    .iter()
                    .zip(&occupied)
                    .map(|(&total, &used)| dense::sub(total, used)),
            );
            table.available.extend(available);
            table.occupied.extend(occupied);
            let mut present = space.presence(&snapshot.available_slots);
            for (slot, named) in space.presence(&snapshot.occupied_slots).iter().enumerate() {
                present[slot] |= named;
            }
            table.present.extend(present);
            table.available_slots.push(snapshot.available_slots.clone());
            table.occupied_slots.push(snapshot.occupied_slots.clone());
            if agent < candidates.len() {
                let architecture = table
                    .architectures
                    .entry(snapshot.architecture.clone())
                    .or_default();
                architecture.compatible.push(agent);
                let capped = max_container_count.is_some_and(|cap| snapshot.container_count >= cap);
                if !capped {
                    architecture.uncapped.push(agent);
                }
            }
        }
        for architecture in table.architectures.values_mut() {
            let mut ring = architecture.compatible.clone();
            ring.sort_by(|&a, &b| table.ids[a].cmp(&table.ids[b]));
            let joined: Vec<&str> = ring
                .iter()
                .map(|&agent| table.ids[agent].as_str())
                .collect();
            architecture.ring_id = md5_hex(joined.join("#").as_bytes());
            architecture.ring = ring;
        }
        table
    }

    pub(crate) fn has_candidates(&self) -> bool {
        self.candidates > 0
    }

    pub(crate) fn architecture(&self, name: &str) -> Option<&Architecture> {
        self.architectures.get(name)
    }

    pub(crate) fn id(&self, agent: usize) -> &str {
        &self.ids[agent]
    }

    pub(crate) fn agent(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    pub(crate) fn available_slots(&self, agent: usize) -> &ResourceSlot {
        &self.available_slots[agent]
    }

    pub(crate) fn occupied_slots(&self, agent: usize) -> &ResourceSlot {
        &self.occupied_slots[agent]
    }

    fn row<'a>(&self, values: &'a [i128], agent: usize) -> &'a [i128] {
        &values[agent * self.slots..(agent + 1) * self.slots]
    }

    /// `available - occupied >= requested`: after the reference's `sync_keys` every slot either
    /// side names is compared, a missing one as 0, so an agent that is over-committed on any slot
    /// fits nothing.
    pub(crate) fn fits(&self, agent: usize, request: &DenseRequest) -> bool {
        self.row(&self.remaining, agent)
            .iter()
            .zip(&request.amounts)
            .all(|(left, wanted)| left >= wanted)
    }

    /// `available - occupied > requested` (ResourceSlot's `>`): fits, and not equal everywhere.
    pub(crate) fn fits_with_room(&self, agent: usize, request: &DenseRequest) -> bool {
        self.fits(agent, request)
            && self
                .row(&self.remaining, agent)
                .iter()
                .zip(&request.amounts)
                .any(|(left, wanted)| left != wanted)
    }

    /// The reference's choice among `agents` (in their order) for `request`, or `None` when none
    /// fits.
    pub(crate) fn choose(
        &self,
        agents: &[usize],
        request: &DenseRequest,
        preference: Preference,
    ) -> Option<usize> {
        let mut best: Option<usize> = None;
        for &agent in agents {
            if !self.fits(agent, request) {
                continue;
            }
            let better = match best {
                None => true,
                Some(current) => match preference {
                    Preference::Ranked {
                        strategy,
                        penalize_extras,
                    } => {
                        self.rank(agent, current, request, strategy, penalize_extras)
                            == Ordering::Greater
                    }
                    Preference::LeastOccupied => {
                        self.row(&self.occupied, agent) < self.row(&self.occupied, current)
                    }
                },
            };
            if better {
                best = Some(agent);
            }
        }
        best
    }

    /// `key_by_remaining_slots(a)` compared with that of `b`.
    fn rank(
        &self,
        a: usize,
        b: usize,
        request: &DenseRequest,
        strategy: AgentSelectionStrategy,
        penalize_extras: bool,
    ) -> Ordering {
        if penalize_extras {
            // Fewer idle slot types (accelerators the request does not use) rank higher.
            let by_extras = self.extras(b, request).cmp(&self.extras(a, request));
            if by_extras != Ordering::Equal {
                return by_extras;
            }
        }
        for &slot in &self.priority {
            let order = self
                .comparator(a, slot, strategy)
                .cmp(&self.comparator(b, slot, strategy));
            if order != Ordering::Equal {
                return order;
            }
        }
        Ordering::Equal
    }

    /// `num_extras`: slot types the agent has (> 0) of which the request asks nothing.
    fn extras(&self, agent: usize, request: &DenseRequest) -> usize {
        self.row(&self.available, agent)
            .iter()
            .zip(&request.amounts)
            .filter(|&(&total, &wanted)| total > 0 && wanted == 0)
            .count()
    }

    /// The agent's amount of `slot` in `key_by_remaining_slots`.
    fn comparator(&self, agent: usize, slot: usize, strategy: AgentSelectionStrategy) -> i128 {
        let at = agent * self.slots + slot;
        if !self.present[at] {
            return self.lacking[slot];
        }
        match strategy {
            AgentSelectionStrategy::Dispersed => self.remaining[at],
            AgentSelectionStrategy::Concentrated => dense::neg(self.remaining[at]),
            AgentSelectionStrategy::Legacy => self.available[at],
        }
    }

    /// Round-robin over the ring of `architecture`: when `state` belongs to the same ring, the
    /// first agent from `next_index` on with room to spare (`>`), and the state that follows.
    pub(crate) fn next_in_ring(
        &self,
        architecture: &Architecture,
        state: &RoundRobinState,
        request: &DenseRequest,
    ) -> Option<(usize, RoundRobinState)> {
        if state.schedulable_group_id != architecture.ring_id {
            return None;
        }
        let size = architecture.ring.len();
        (0..size).find_map(|step| {
            let agent = architecture.ring[(state.next_index + step) % size];
            self.fits_with_room(agent, request).then(|| {
                (
                    agent,
                    RoundRobinState {
                        schedulable_group_id: architecture.ring_id.clone(),
                        next_index: (state.next_index + step + 1) % size,
                    },
                )
            })
        })
    }

    /// The ring state after the fallback chose `agent`.
    pub(crate) fn ring_state_after(
        &self,
        architecture: &Architecture,
        agent: usize,
    ) -> RoundRobinState {
        let position = architecture
            .ring
            .iter()
            .position(|&member| member == agent)
            .unwrap_or(0);
        RoundRobinState {
            schedulable_group_id: architecture.ring_id.clone(),
            next_index: (position + 1) % architecture.ring.len(),
        }
    }

    /// `occupied_slots += requested` on `agent`; the agent's row then names every slot the
    /// request names, as the reference's sum writes it. The returned [`Undo`] takes it back.
    pub(crate) fn reserve(
        &mut self,
        agent: usize,
        request: &DenseRequest,
        slots: &ResourceSlot,
    ) -> Undo {
        let base = agent * self.slots;
        let undo = Undo {
            agent,
            occupied_slots: self.occupied_slots[agent].clone(),
            present: self.present[base..base + self.slots].to_vec(),
        };
        for (slot, &wanted) in request.amounts.iter().enumerate() {
            self.occupied[base + slot] = dense::add(self.occupied[base + slot], wanted);
            self.remaining[base + slot] = dense::sub(self.remaining[base + slot], wanted);
            self.present[base + slot] |= request.present[slot];
        }
        add_into(&mut self.occupied_slots[agent], slots);
        undo
    }

    /// Takes back a reservation of a multi-node session that did not fit as a whole (in reverse
    /// order of the reservations).
    pub(crate) fn unreserve(&mut self, undo: Undo, request: &DenseRequest) {
        let base = undo.agent * self.slots;
        for (slot, &wanted) in request.amounts.iter().enumerate() {
            self.occupied[base + slot] = dense::sub(self.occupied[base + slot], wanted);
            self.remaining[base + slot] = dense::add(self.remaining[base + slot], wanted);
        }
        self.present[base..base + self.slots].copy_from_slice(&undo.present);
        self.occupied_slots[undo.agent] = undo.occupied_slots;
    }
}

/// What an agent looked like before a reservation.
#[derive(Debug)]
pub(crate) struct Undo {
    agent: usize,
    occupied_slots: ResourceSlot,
    present: Vec<bool>,
}

/// The order in which `key_by_remaining_slots` compares slots: by position in the configured
/// `agent-selection-resource-priority`, where a slot such as `cuda.shares` whose device (`cuda`)
/// is listed but which is not itself is inserted right after its device. The reference inserts
/// into the configured list as requests come (names in reverse order), which for one round's
/// slots comes to inserting them all at once; slots listed nowhere come last, in the round's
/// slot order.
pub(crate) fn priority_order(space: &SlotSpace, configured: &[String]) -> Vec<usize> {
    let mut expanded: Vec<&str> = configured.iter().map(String::as_str).collect();
    let mut names: Vec<&str> = space.names().iter().map(String::as_str).collect();
    names.sort_unstable_by(|a, b| b.cmp(a));
    for name in names {
        let device = name.split('.').next().unwrap_or(name);
        if expanded.contains(&name) {
            continue;
        }
        if let Some(position) = expanded.iter().position(|&listed| listed == device) {
            expanded.insert(position + 1, name);
        }
    }
    let mut order: Vec<usize> = (0..space.len()).collect();
    order.sort_by_key(|&slot| {
        expanded
            .iter()
            .position(|&listed| listed == space.name(slot))
            .unwrap_or(usize::MAX)
    });
    order
}

/// `a += b` on decimal rows (the reference's `ResourceSlot.__add__`: every slot of either side).
pub(crate) fn add_into(a: &mut ResourceSlot, b: &ResourceSlot) {
    for (slot, amount) in b.iter() {
        let sum = match a.get(slot) {
            None => amount,
            Some(current) => add_amounts(current, amount),
        };
        a.insert(slot, sum);
    }
}

/// Decimal addition with infinities absorbing (an overflow saturates).
pub(crate) fn add_amounts(a: SlotAmount, b: SlotAmount) -> SlotAmount {
    match (a, b) {
        (SlotAmount::Finite(x), SlotAmount::Finite(y)) => match x.checked_add(y) {
            Some(sum) => SlotAmount::Finite(sum),
            None if y.is_sign_negative() => SlotAmount::NegInfinity,
            None => SlotAmount::Infinity,
        },
        (SlotAmount::Finite(_), infinite) | (infinite, _) => infinite,
    }
}

/// `a - b` on decimals.
pub(crate) fn sub_amounts(a: SlotAmount, b: SlotAmount) -> SlotAmount {
    let negated = match b {
        SlotAmount::Finite(value) => SlotAmount::Finite(-value),
        SlotAmount::Infinity => SlotAmount::NegInfinity,
        SlotAmount::NegInfinity => SlotAmount::Infinity,
    };
    add_amounts(a, negated)
}

#[cfg(test)]
mod tests {
    use bai_db_models::entities::ResourceSlot;
    use bai_etcd_store::{ConfigNode, ConfigTree};
    use serde_json::json;

    use super::{AgentTable, DenseRequest, Preference, priority_order};
    use crate::round::dense::SlotSpace;
    use crate::round::snapshot::{AgentSelectionStrategy, AgentSnapshot};
    use crate::slots::KnownSlots;

    fn map(value: serde_json::Value) -> ResourceSlot {
        ResourceSlot::from_json(&value).expect("slots")
    }

    fn agent(id: &str, available: serde_json::Value, occupied: serde_json::Value) -> AgentSnapshot {
        AgentSnapshot {
            id: id.to_owned(),
            architecture: "x86_64".to_owned(),
            available_slots: map(available),
            occupied_slots: map(occupied),
            container_count: 0,
        }
    }

    #[test]
    fn device_subslots_are_inserted_after_their_device() {
        let mut configured = ConfigTree::new();
        for slot in ["cuda.shares", "cuda.device", "tpu.device", "ipu.device"] {
            configured.insert(slot.to_owned(), ConfigNode::Value("count".to_owned()));
        }
        let space = SlotSpace::new(&KnownSlots::from_configured(configured), []);
        let configured: Vec<String> = crate::round::DEFAULT_RESOURCE_PRIORITY
            .map(str::to_owned)
            .to_vec();
        let order: Vec<&str> = priority_order(&space, &configured)
            .into_iter()
            .map(|slot| space.name(slot))
            .collect();
        assert_eq!(
            order,
            [
                "cuda.device",
                "cuda.shares",
                "tpu.device",
                "cpu",
                "mem",
                "ipu.device"
            ]
        );
    }

    #[test]
    fn feasibility_compares_every_slot_of_either_side() {
        let agents = [
            agent(
                "roomy",
                json!({"cpu": "4", "mem": "8"}),
                json!({"cpu": "1"}),
            ),
            // Over-committed on a slot the request does not name: fits nothing.
            agent("over", json!({"cpu": "4", "mem": "8"}), json!({"mem": "9"})),
            agent("exact", json!({"cpu": "1", "mem": "2"}), json!({})),
        ];
        let request = map(json!({"cpu": "1", "mem": "2"}));
        let known = KnownSlots::from_configured(ConfigTree::new());
        let maps = agents
            .iter()
            .flat_map(|agent| [&agent.available_slots, &agent.occupied_slots])
            .chain([&request]);
        let space = SlotSpace::new(&known, maps);
        let table = AgentTable::new(&space, vec![0, 1], &agents, &[], None);
        let request = DenseRequest::new(&space, &request);
        assert!(table.fits(0, &request));
        assert!(!table.fits(1, &request));
        assert!(table.fits(2, &request));
        // `>` wants room to spare somewhere.
        assert!(table.fits_with_room(0, &request));
        assert!(!table.fits_with_room(2, &request));
        let dispersed = Preference::Ranked {
            strategy: AgentSelectionStrategy::Dispersed,
            penalize_extras: true,
        };
        assert_eq!(table.choose(&[2, 1, 0], &request, dispersed), Some(0));
        assert_eq!(table.choose(&[1], &request, dispersed), None);
    }

    #[test]
    fn an_agent_lacking_a_slot_ranks_below_one_with_none_left() {
        // Both fit a CPU-only request; `dispersed` compares `cuda.device` first, which "zero"
        // has (0 left) and "lacking" does not have at all (-sys.maxsize).
        let agents = [
            agent("lacking", json!({"cpu": "64", "mem": "64"}), json!({})),
            agent(
                "zero",
                json!({"cpu": "2", "mem": "2", "cuda.device": "0"}),
                json!({}),
            ),
        ];
        let request = map(json!({"cpu": "1", "mem": "1"}));
        let mut configured = ConfigTree::new();
        configured.insert(
            "cuda.device".to_owned(),
            ConfigNode::Value("count".to_owned()),
        );
        let known = KnownSlots::from_configured(configured);
        let space = SlotSpace::new(
            &known,
            agents
                .iter()
                .map(|agent| &agent.available_slots)
                .chain([&request]),
        );
        let configured: Vec<String> = crate::round::DEFAULT_RESOURCE_PRIORITY
            .map(str::to_owned)
            .to_vec();
        let table = AgentTable::new(
            &space,
            priority_order(&space, &configured),
            &agents,
            &[],
            None,
        );
        let request = DenseRequest::new(&space, &request);
        for strategy in [
            AgentSelectionStrategy::Dispersed,
            AgentSelectionStrategy::Concentrated,
            AgentSelectionStrategy::Legacy,
        ] {
            let preference = Preference::Ranked {
                strategy,
                penalize_extras: true,
            };
            assert_eq!(
                table.choose(&[0, 1], &request, preference),
                Some(1),
                "{strategy:?}"
            );
        }
    }
}
