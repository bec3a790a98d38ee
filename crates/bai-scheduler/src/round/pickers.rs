//! The session pickers (`pick_session` of `fifo.py`, `drf.py`, `mof.py`): which pending session
//! a round tries next. A picker is made fresh for each group in each round; every pending
//! session is picked once.
//!
//! Pure computation on the snapshot: no I/O.

use std::collections::{BTreeSet, HashMap, VecDeque};

use bai_db_models::entities::{ResourceSlot, SlotAmount};
use rust_decimal::Decimal;

use crate::round::agents::add_into;
use crate::round::snapshot::{ExistingSession, PendingSession, SchedulerKind};

/// The picking state of one round.
#[derive(Debug)]
pub(crate) enum Picker {
    /// FIFO (MOF picks like strict FIFO): the oldest session, skipping those that already failed
    /// `skip_retries` times or more unless every remaining one did.
    Oldest {
        skip_retries: u64,
        picked: Vec<bool>,
        retries: Vec<u64>,
        first: usize,
        first_unskipped: usize,
    },
    /// LIFO: the newest session.
    Newest {
        next: usize,
    },
    Drf(DominantShares),
}

impl Picker {
    /// A picker over `pending` (oldest first); `capacity` is Σ `available_slots` of the group's
    /// candidates (DRF's `total_capacity`).
    pub(crate) fn new(
        kind: SchedulerKind,
        pending: &[&PendingSession],
        existing: &[ExistingSession],
        capacity: ResourceSlot,
    ) -> Picker {
        let oldest = |skip_retries| Picker::Oldest {
            skip_retries,
            picked: vec![false; pending.len()],
            retries: pending.iter().map(|session| session.retries).collect(),
            first: 0,
            first_unskipped: 0,
        };
        match kind {
            SchedulerKind::Fifo {
                num_retries_to_skip,
            } => oldest(num_retries_to_skip),
            SchedulerKind::Mof => oldest(0),
            SchedulerKind::Lifo => Picker::Newest {
                next: pending.len(),
            },
            SchedulerKind::Drf => Picker::Drf(DominantShares::new(pending, existing, capacity)),
        }
    }

    /// The position (in `pending`) of the next session to try, `None` when all were tried.
    pub(crate) fn pick(&mut self) -> Option<usize> {
        match self {
            Picker::Oldest {
                skip_retries,
                picked,
                retries,
                first,
                first_unskipped,
            } => {
                while *first < picked.len() && picked[*first] {
                    *first += 1;
                }
                let skipped =
                    |position: usize| *skip_retries > 0 && retries[position] >= *skip_retries;
                while *first_unskipped < picked.len()
                    && (picked[*first_unskipped] || skipped(*first_unskipped))
                {
                    *first_unskipped += 1;
                }
                let chosen = if *first_unskipped < picked.len() {
                    *first_unskipped
                } else if *first < picked.len() {
                    *first
                } else {
                    return None;
                };
                picked[chosen] = true;
                Some(chosen)
            }
            Picker::Newest { next } => {
                *next = next.checked_sub(1)?;
                Some(*next)
            }
            Picker::Drf(shares) => shares.pick(),
        }
    }

    /// DRF's share update when `_assign_agent` found a feasible agent for `requested` of the
    /// session at `position`; the other pickers keep no state on it.
    pub(crate) fn assigned(&mut self, position: usize, requested: &ResourceSlot) {
        if let Picker::Drf(shares) = self {
            shares.bump(position, requested);
        }
    }
}

/// DRF: each access key's dominant share, the least first.
#[derive(Debug)]
pub(crate) struct DominantShares {
    capacity: ResourceSlot,
    /// Access key of each pending position.
    owner: Vec<usize>,
    shares: Vec<SlotAmount>,
    /// Each access key's untried pending positions, oldest first.
    queues: Vec<VecDeque<usize>>,
    /// (share, oldest untried position, access key) of every access key with untried sessions.
    order: BTreeSet<(SlotAmount, usize, usize)>,
}

impl DominantShares {
    fn new(
        pending: &[&PendingSession],
        existing: &[ExistingSession],
        mut capacity: ResourceSlot,
    ) -> DominantShares {
        let mut keys: HashMap<&str, usize> = HashMap::new();
        let mut queues: Vec<VecDeque<usize>> = Vec::new();
        let mut owner = Vec::with_capacity(pending.len());
        for (position, session) in pending.iter().enumerate() {
            let key = *keys.entry(&session.access_key).or_insert_with(|| {
                queues.push(VecDeque::new());
                queues.len() - 1
            });
            queues[key].push_back(position);
            owner.push(key);
        }
        let zero = SlotAmount::from(0i64);
        // `total_capacity.sync_keys(...)` gives the capacity a zero for every slot sessions name.
        for session in existing {
            add_into(&mut capacity, &zero_like(&session.occupying_slots));
        }
        let mut shares = vec![zero; queues.len()];
        for session in existing {
            if let Some(&key) = keys.get(session.access_key.as_str()) {
                let share = dominant_share(&session.occupying_slots, &capacity);
                if shares[key] < share {
                    shares[key] = share;
                }
            }
        }
        let order = queues
            .iter()
            .enumerate()
            .map(|(key, queue)| (shares[key], queue[0], key))
            .collect();
        DominantShares {
            capacity,
            owner,
            shares,
            queues,
            order,
        }
    }

    /// The oldest untried session of the access key with the least dominant share (ties: the
    /// access key whose oldest untried session is oldest; the reference's tie order is Python's
    /// set iteration order, which is arbitrary).
    fn pick(&mut self) -> Option<usize> {
        let (share, _, key) = self.order.pop_first()?;
        let position = self.queues[key].pop_front()?;
        if let Some(&next) = self.queues[key].front() {
            self.order.insert((share, next, key));
        }
        Some(position)
    }

    /// `per_user_dominant_share[ak] = max(it, dominant share of requested)`.
    fn bump(&mut self, position: usize, requested: &ResourceSlot) {
        let key = self.owner[position];
        add_into(&mut self.capacity, &zero_like(requested));
        let share = dominant_share(requested, &self.capacity);
        if self.shares[key] >= share {
            return;
        }
        if let Some(&next) = self.queues[key].front() {
            self.order.remove(&(self.shares[key], next, key));
            self.order.insert((share, next, key));
        }
        self.shares[key] = share;
    }
}

/// A zero for every slot `slots` names.
fn zero_like(slots: &ResourceSlot) -> ResourceSlot {
    slots
        .iter()
        .map(|(slot, _)| (slot.to_owned(), SlotAmount::from(0i64)))
        .collect()
}

/// max over slots of `slots[s] / capacity[s]`, skipping slots of zero capacity (0 when none).
fn dominant_share(slots: &ResourceSlot, capacity: &ResourceSlot) -> SlotAmount {
    let zero = SlotAmount::from(0i64);
    let mut dominant = zero;
    for (slot, amount) in slots.iter() {
        let cap = capacity.get(slot).unwrap_or(zero);
        if cap == zero {
            continue;
        }
        let share = divide(amount, cap);
        if dominant < share {
            dominant = share;
        }
    }
    dominant
}

/// Decimal division with Python's infinities (`inf / x = inf`, `x / inf = 0`); `inf / inf`,
/// an error in Python, counts as no share.
fn divide(amount: SlotAmount, capacity: SlotAmount) -> SlotAmount {
    match (amount, capacity) {
        (SlotAmount::Finite(value), SlotAmount::Finite(cap)) => value
            .checked_div(cap)
            .map(SlotAmount::Finite)
            .unwrap_or(if value.is_sign_negative() == cap.is_sign_negative() {
                SlotAmount::Infinity
            } else {
                SlotAmount::NegInfinity
            }),
        (SlotAmount::Finite(_), _) => SlotAmount::Finite(Decimal::ZERO),
        (infinite, SlotAmount::Finite(cap)) if cap.is_sign_negative() => match infinite {
            SlotAmount::Infinity => SlotAmount::NegInfinity,
            _ => SlotAmount::Infinity,
        },
        (infinite, SlotAmount::Finite(_)) => infinite,
        _ => SlotAmount::Finite(Decimal::ZERO),
    }
}

#[cfg(test)]
mod tests {
    use bai_db_models::entities::enums::SessionType;
    use bai_db_models::entities::{ResourceSlot, SlotAmount};
    use chrono::DateTime;
    use serde_json::json;
    use uuid::Uuid;

    use super::{Picker, divide};
    use crate::round::snapshot::{ClusterMode, ExistingSession, PendingSession, SchedulerKind};

    fn picks(mut picker: Picker) -> Vec<usize> {
        std::iter::from_fn(|| picker.pick()).collect()
    }

    fn oldest(skip_retries: u64, retries: Vec<u64>) -> Picker {
        Picker::Oldest {
            skip_retries,
            picked: vec![false; retries.len()],
            retries,
            first: 0,
            first_unskipped: 0,
        }
    }

    #[test]
    fn fifo_skips_sessions_that_failed_too_often_until_only_they_are_left() {
        assert_eq!(picks(oldest(0, vec![5, 0, 5, 0])), [0, 1, 2, 3]);
        assert_eq!(picks(oldest(2, vec![5, 0, 2, 1, 3])), [1, 3, 0, 2, 4]);
        assert_eq!(picks(Picker::Newest { next: 3 }), [2, 1, 0]);
    }

    #[test]
    fn drf_breaks_ties_by_the_oldest_pending_session() {
        let session = |number: u128, access_key: &str| PendingSession {
            id: Uuid::from_u128(number),
            creation_id: format!("c{number}"),
            name: format!("s{number}"),
            access_key: access_key.to_owned(),
            user_uuid: Uuid::nil(),
            group_id: Uuid::nil(),
            domain_name: String::new(),
            session_type: SessionType::Interactive,
            cluster_mode: ClusterMode::SingleNode,
            requested_slots: ResourceSlot::new(),
            kernels: Vec::new(),
            created_at: DateTime::UNIX_EPOCH,
            starts_at: None,
            retries: 0,
            dependencies: Vec::new(),
        };
        let pending = [session(1, "B"), session(2, "A"), session(3, "B")];
        let pending: Vec<_> = pending.iter().collect();
        let capacity = ResourceSlot::from_json(&json!({"cpu": "10"})).unwrap();
        let existing = [ExistingSession {
            access_key: "C".to_owned(),
            occupying_slots: ResourceSlot::from_json(&json!({"cpu": "5"})).unwrap(),
        }];
        // A and B both have no share: B's oldest session is older.
        let picker = Picker::new(SchedulerKind::Drf, &pending, &existing, capacity);
        assert_eq!(picks(picker), [0, 1, 2]);
    }

    #[test]
    fn shares_divide_like_python_decimals() {
        let amount = |text: &str| text.parse::<SlotAmount>().unwrap();
        assert_eq!(divide(amount("1"), amount("4")), amount("0.25"));
        assert_eq!(
            divide(amount("Infinity"), amount("4")),
            SlotAmount::Infinity
        );
        assert_eq!(divide(amount("3"), amount("Infinity")), amount("0"));
    }
}
