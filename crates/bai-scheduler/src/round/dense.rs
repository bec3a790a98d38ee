//! The dense per-round form of slot maps: one `i128` per slot of the round, indexed by the slot's
//! position among the round's slot names, in fixed point with one scale per slot (the largest
//! number of decimal places any amount of that slot has in the snapshot). Every amount of the
//! snapshot is therefore exact, sums and comparisons are integer operations, and the agent search
//! does no string hashing and no decimal arithmetic. Infinities are the sentinels [`INFINITY`] and
//! [`NEG_INFINITY`].
//!
//! Pure data conversion: no I/O.

use std::collections::HashMap;

use bai_db_models::entities::{ResourceSlot, SlotAmount};

use crate::slots::KnownSlots;

/// "Unlimited".
pub(crate) const INFINITY: i128 = i128::MAX;
pub(crate) const NEG_INFINITY: i128 = i128::MIN;

/// Decimal places beyond which amounts are truncated; 10^24 times a 28-digit mantissa could
/// overflow, but such a slot amount is beyond any machine, and saturates to an infinity.
const MAX_SCALE: u32 = 24;

/// Python's `sys.maxsize`: the reference's stand-in for a slot an agent lacks.
const PY_MAXSIZE: i128 = 9_223_372_036_854_775_807;

/// The slot names of a round and their fixed-point scales.
#[derive(Clone, Debug)]
pub(crate) struct SlotSpace {
    names: Vec<String>,
    index: HashMap<String, usize>,
    scales: Vec<u32>,
    known: Vec<bool>,
}

impl SlotSpace {
    /// The known slots first (in their order), then every other slot `maps` name, in order of
    /// appearance; each slot's scale covers every amount of it in `maps`.
    pub(crate) fn new<'a>(
        known: &KnownSlots,
        maps: impl IntoIterator<Item = &'a ResourceSlot>,
    ) -> SlotSpace {
        let mut space = SlotSpace {
            names: Vec::new(),
            index: HashMap::new(),
            scales: Vec::new(),
            known: Vec::new(),
        };
        for name in known.names() {
            space.intern(name, true);
        }
        for map in maps {
            for (name, amount) in map.iter() {
                let slot = space.intern(name, false);
                if let SlotAmount::Finite(value) = amount {
                    space.scales[slot] = space.scales[slot].max(value.scale().min(MAX_SCALE));
                }
            }
        }
        space
    }

    fn intern(&mut self, name: &str, known: bool) -> usize {
        if let Some(&slot) = self.index.get(name) {
            return slot;
        }
        let slot = self.names.len();
        self.names.push(name.to_owned());
        self.index.insert(name.to_owned(), slot);
        self.scales.push(0);
        self.known.push(known);
        slot
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }

    pub(crate) fn name(&self, slot: usize) -> &str {
        &self.names[slot]
    }

    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    pub(crate) fn slot(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    pub(crate) fn is_known(&self, slot: usize) -> bool {
        self.known[slot]
    }

    /// One amount in the slot's fixed point.
    pub(crate) fn fixed(&self, slot: usize, amount: SlotAmount) -> i128 {
        match amount {
            SlotAmount::Infinity => INFINITY,
            SlotAmount::NegInfinity => NEG_INFINITY,
            SlotAmount::Finite(value) => {
                let scale = self.scales[slot];
                let mantissa = value.mantissa();
                let saturated = if mantissa < 0 { NEG_INFINITY } else { INFINITY };
                if value.scale() <= scale {
                    10i128
                        .checked_pow(scale - value.scale())
                        .and_then(|factor| mantissa.checked_mul(factor))
                        .unwrap_or(saturated)
                } else {
                    mantissa / 10i128.pow(value.scale() - scale)
                }
            }
        }
    }

    /// `map` densely: missing slots are 0, slots the space lacks are dropped (callers build the
    /// space from every map they encode).
    pub(crate) fn encode(&self, map: &ResourceSlot) -> Vec<i128> {
        let mut dense = vec![0; self.len()];
        for (name, amount) in map.iter() {
            if let Some(slot) = self.slot(name) {
                dense[slot] = self.fixed(slot, amount);
            }
        }
        dense
    }

    /// Which slots `map` names.
    pub(crate) fn presence(&self, map: &ResourceSlot) -> Vec<bool> {
        let mut present = vec![false; self.len()];
        for (name, _) in map.iter() {
            if let Some(slot) = self.slot(name) {
                present[slot] = true;
            }
        }
        present
    }

    /// `sys.maxsize` in the slot's fixed point (what the reference compares a lacking slot as).
    pub(crate) fn py_maxsize(&self, slot: usize) -> i128 {
        10i128
            .checked_pow(self.scales[slot])
            .and_then(|factor| PY_MAXSIZE.checked_mul(factor))
            .unwrap_or(INFINITY - 1)
    }
}

/// `a + b` with infinities absorbing finite amounts and overflow saturating.
pub(crate) fn add(a: i128, b: i128) -> i128 {
    if a == INFINITY || a == NEG_INFINITY {
        return a;
    }
    if b == INFINITY || b == NEG_INFINITY {
        return b;
    }
    a.checked_add(b)
        .unwrap_or(if b < 0 { NEG_INFINITY } else { INFINITY })
}

/// `-a`, infinities swapped.
pub(crate) fn neg(a: i128) -> i128 {
    match a {
        INFINITY => NEG_INFINITY,
        NEG_INFINITY => INFINITY,
        finite => -finite,
    }
}

/// `a - b`.
pub(crate) fn sub(a: i128, b: i128) -> i128 {
    add(a, neg(b))
}

#[cfg(test)]
mod tests {
    use bai_db_models::entities::ResourceSlot;
    use bai_etcd_store::ConfigTree;
    use serde_json::json;

    use super::{INFINITY, SlotSpace, add, sub};
    use crate::slots::KnownSlots;

    fn map(value: serde_json::Value) -> ResourceSlot {
        ResourceSlot::from_json(&value).expect("slots")
    }

    #[test]
    fn amounts_are_exact_in_each_slots_scale() {
        let known = KnownSlots::from_configured(ConfigTree::new());
        let agent = map(json!({"cpu": "8", "mem": "17179869184", "cuda.shares": "1.25"}));
        let request = map(json!({"cpu": "0.125", "mem": "1073741824", "cuda.shares": "0.5"}));
        let space = SlotSpace::new(&known, [&agent, &request]);
        assert_eq!(space.names(), ["cpu", "mem", "cuda.shares"]);
        assert!(space.is_known(1) && !space.is_known(2));
        assert_eq!(space.encode(&agent), [8000, 17179869184, 125]);
        assert_eq!(space.encode(&request), [125, 1073741824, 50]);
        assert_eq!(space.encode(&map(json!({"cpu": "Infinity"})))[0], INFINITY);
        assert_eq!(space.py_maxsize(0), 9_223_372_036_854_775_807_000);
    }

    #[test]
    fn infinities_absorb_and_overflow_saturates() {
        assert_eq!(add(INFINITY, -5), INFINITY);
        assert_eq!(sub(3, INFINITY), i128::MIN);
        assert_eq!(add(i128::MAX - 1, 10), INFINITY);
        assert_eq!(sub(10, 4), 6);
    }
}
