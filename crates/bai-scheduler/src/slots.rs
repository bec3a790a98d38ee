//! Resource slots as the reference's `ResourceSlot` computes with them: the known slot types
//! (`cpu`, `mem` and etcd `config/resource_slots`), limits from a policy, normalisation to the
//! known slots, sums, differences, "fits" comparisons and minimums, with the reference's units
//! (`count` slots rounded to three places, `bytes` slots whole) and infinities.
//!
//! The reference's operators *mutate their operands*: `a + b`, `a - b` and `a >= b` first insert a
//! zero into each side for every slot only the other side has (`sync_keys`), and those zeros then
//! show up when either side is serialized later. The responses of `check-presets` depend on that,
//! so the operations here take `&mut` operands and do the same.

use bai_db_models::entities::ResourceSlot;
use bai_db_models::entities::enums::DefaultForUnspecified;
use bai_etcd_store::{ConfigNode, ConfigTree, EtcdError, EtcdStore, Scope};
use indexmap::IndexMap;

/// The amount of one slot: a decimal or an infinity ("unlimited").
pub use bai_db_models::entities::SlotAmount;

/// The etcd prefix of the slot types the manager learned from agents.
const RESOURCE_SLOTS_PREFIX: &str = "config/resource_slots";

/// The slot types the cluster knows, in the reference's order: the intrinsic `cpu` (`count`) and
/// `mem` (`bytes`), then etcd `config/resource_slots/*` (which may redefine the intrinsic ones).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownSlots(IndexMap<String, ConfigNode>);

impl KnownSlots {
    /// Reads etcd `config/resource_slots` (the reference's `get_resource_slots`).
    pub async fn load(etcd: &EtcdStore) -> Result<KnownSlots, EtcdError> {
        let configured = etcd
            .get_prefix(RESOURCE_SLOTS_PREFIX, Scope::Global)
            .await?;
        Ok(KnownSlots::from_configured(configured))
    }

    /// The intrinsic slots merged with `configured`, the tree below `config/resource_slots`.
    pub fn from_configured(configured: ConfigTree) -> KnownSlots {
        let mut slots = IndexMap::new();
        slots.insert("cpu".to_owned(), ConfigNode::Value("count".to_owned()));
        slots.insert("mem".to_owned(), ConfigNode::Value("bytes".to_owned()));
        // An existing key keeps its position, as in `{**INTRINSIC_SLOTS, **configured}`.
        slots.extend(configured);
        KnownSlots(slots)
    }

    pub fn contains(&self, slot: &str) -> bool {
        self.0.contains_key(slot)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Slot name and unit (`count`, `bytes`, `unique`; a subtree if etcd holds one).
    pub fn entries(&self) -> impl Iterator<Item = (&str, &ConfigNode)> {
        self.0.iter().map(|(slot, unit)| (slot.as_str(), unit))
    }

    fn is_bytes(&self, slot: &str) -> bool {
        self.0.get(slot).and_then(ConfigNode::as_value) == Some("bytes")
    }

    /// A zero for every known slot.
    pub fn zeros(&self) -> Slots {
        Slots(self.0.keys().map(|slot| (slot.clone(), zero())).collect())
    }

    /// `ResourceSlot.from_policy`: the policy's known slots (counts rounded to three places, bytes
    /// as they are), every other known slot 0 (`LIMITED`) or infinite (`UNLIMITED`).
    pub fn limits(&self, total: &ResourceSlot, unspecified: DefaultForUnspecified) -> Slots {
        let mut limits = Slots::default();
        for (slot, amount) in total.iter() {
            if self.contains(slot) {
                let amount = if self.is_bytes(slot) {
                    amount
                } else {
                    normalize_count(amount)
                };
                limits.0.insert(slot.to_owned(), amount);
            }
        }
        let fill = match unspecified {
            DefaultForUnspecified::Limited => zero(),
            DefaultForUnspecified::Unlimited => SlotAmount::Infinity,
        };
        for slot in self.0.keys() {
            limits.0.entry(slot.clone()).or_insert(fill);
        }
        limits
    }

    /// `ResourceSlot.normalize_slots(ignore_unknown=True)`: the known slots of `slots`, and a zero
    /// for every known slot it lacks.
    pub fn normalize(&self, slots: &ResourceSlot) -> Slots {
        let mut normalized = Slots(
            slots
                .iter()
                .filter(|(slot, _)| self.contains(slot))
                .map(|(slot, amount)| (slot.to_owned(), amount))
                .collect(),
        );
        for slot in self.0.keys() {
            normalized.0.entry(slot.clone()).or_insert_with(zero);
        }
        normalized
    }

    /// Drops the slots that are not known (what the registry's occupancy queries do).
    pub fn retain_known(&self, slots: &mut Slots) {
        slots.0.retain(|slot, _| self.contains(slot));
    }
}

/// Slot amounts in insertion order, with the reference's mutating operators. The storage shape is
/// [`ResourceSlot`] (ordered by name); `From` converts both ways.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Slots(IndexMap<String, SlotAmount>);

impl From<&ResourceSlot> for Slots {
    fn from(slots: &ResourceSlot) -> Slots {
        Slots(
            slots
                .iter()
                .map(|(slot, amount)| (slot.to_owned(), amount))
                .collect(),
        )
    }
}

impl From<&Slots> for ResourceSlot {
    fn from(slots: &Slots) -> ResourceSlot {
        slots
            .iter()
            .map(|(slot, amount)| (slot.to_owned(), amount))
            .collect()
    }
}

impl Slots {
    pub fn get(&self, slot: &str) -> Option<SlotAmount> {
        self.0.get(slot).copied()
    }

    pub fn contains(&self, slot: &str) -> bool {
        self.0.contains_key(slot)
    }

    pub fn set(&mut self, slot: &str, amount: SlotAmount) {
        self.0.insert(slot.to_owned(), amount);
    }

    /// Slot name and amount, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, SlotAmount)> {
        self.0.iter().map(|(slot, amount)| (slot.as_str(), *amount))
    }

    /// `sync_keys`: a zero on each side for every slot only the other side has.
    pub fn sync_keys(&mut self, other: &mut Slots) {
        for slot in self.0.keys() {
            if !other.0.contains_key(slot) {
                other.0.insert(slot.clone(), zero());
            }
        }
        for slot in other.0.keys() {
            if !self.0.contains_key(slot) {
                self.0.insert(slot.clone(), zero());
            }
        }
    }

    /// `self + other` (both operands synced first, as in the reference).
    pub fn add(&mut self, other: &mut Slots) -> Slots {
        self.sync_keys(other);
        Slots(
            self.0
                .iter()
                .map(|(slot, &amount)| (slot.clone(), plus(amount, other.0[slot])))
                .collect(),
        )
    }

    /// `self - other` (both operands synced first).
    pub fn sub(&mut self, other: &mut Slots) -> Slots {
        self.sync_keys(other);
        Slots(
            self.0
                .iter()
                .map(|(slot, &amount)| (slot.clone(), plus(amount, negate(other.0[slot]))))
                .collect(),
        )
    }

    /// `self += other`: `self` becomes the sum; `other` keeps the zeros the sync gave it.
    pub fn add_assign(&mut self, other: &mut Slots) {
        *self = self.add(other);
    }

    /// `self >= other`: no slot of `self` is below the same slot of `other` (both synced first).
    pub fn covers(&mut self, other: &mut Slots) -> bool {
        self.sync_keys(other);
        !other.0.iter().any(|(slot, &needed)| self.0[slot] < needed)
    }
}

/// What an agent allocated to a kernel (`kernel_started`'s `resource_spec.allocations`,
/// `{device: {slot: {device_id: amount}}}`) as one amount per slot, summed over the devices (the
/// reference's `convert_resource_spec_to_resource_slot`). An amount is a decimal, an integer, or a
/// text ending in a binary-size unit (`"1g"`); a slot several devices report keeps the last sum.
pub fn allocated_slots(allocations: &serde_json::Value) -> Result<Slots, String> {
    let devices = allocations
        .as_object()
        .ok_or_else(|| format!("allocations are not a map: {allocations}"))?;
    let mut slots = Slots::default();
    for (device, by_slot) in devices {
        let by_slot = by_slot
            .as_object()
            .ok_or_else(|| format!("allocations of device {device:?} are not a map"))?;
        for (slot, by_device_id) in by_slot {
            let by_device_id = by_device_id
                .as_object()
                .ok_or_else(|| format!("allocations of slot {slot:?} are not a map"))?;
            let mut total = zero();
            for amount in by_device_id.values() {
                total = plus(total, allocated_amount(slot, amount)?);
            }
            slots.set(slot, total);
        }
    }
    Ok(slots)
}

/// One device's share of a slot: a binary size when the text ends in a size unit, else a decimal.
fn allocated_amount(slot: &str, amount: &serde_json::Value) -> Result<SlotAmount, String> {
    let bad = || format!("allocation {amount} of slot {slot:?} is not an amount");
    let text = match amount {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Number(number) => number.to_string(),
        _ => return Err(bad()),
    };
    let has_unit = text
        .chars()
        .last()
        .is_some_and(|unit| "kmgtpezy".contains(unit.to_ascii_lowercase()));
    if has_unit {
        return match bai_config::parse_binary_size(&text).map_err(|_| bad())? {
            bai_config::BinarySizeValue::Bytes(bytes) => {
                rust_decimal::Decimal::try_from_i128_with_scale(bytes, 0)
                    .map(SlotAmount::Finite)
                    .map_err(|_| bad())
            }
            bai_config::BinarySizeValue::Infinite => Ok(SlotAmount::Infinity),
        };
    }
    text.parse().map_err(|_| bad())
}

/// `min(a, b)` as Python picks it: `a` unless `b` is strictly smaller.
pub fn min_first(a: SlotAmount, b: SlotAmount) -> SlotAmount {
    if b < a { b } else { a }
}

/// A slot's amount in a map that has every known slot.
pub(crate) fn at(slots: &Slots, slot: &str) -> SlotAmount {
    slots.get(slot).unwrap_or(SlotAmount::Infinity)
}

fn zero() -> SlotAmount {
    SlotAmount::from(0i64)
}

fn negate(amount: SlotAmount) -> SlotAmount {
    match amount {
        SlotAmount::Finite(value) => SlotAmount::Finite(-value),
        SlotAmount::Infinity => SlotAmount::NegInfinity,
        SlotAmount::NegInfinity => SlotAmount::Infinity,
    }
}

/// Decimal addition. An infinity absorbs finite amounts; `Infinity + -Infinity` (an error in the
/// reference, which never adds two infinities here) and an overflow keep the left-hand infinity or
/// saturate.
fn plus(a: SlotAmount, b: SlotAmount) -> SlotAmount {
    match (a, b) {
        (SlotAmount::Finite(x), SlotAmount::Finite(y)) => match x.checked_add(y) {
            Some(sum) => SlotAmount::Finite(sum),
            None if y.is_sign_negative() => SlotAmount::NegInfinity,
            None => SlotAmount::Infinity,
        },
        (SlotAmount::Finite(_), infinite) => infinite,
        (infinite, _) => infinite,
    }
}

/// A count (from a policy or a user): quantized to three decimal places (half-even), trailing zeros
/// dropped.
pub(crate) fn normalize_count(amount: SlotAmount) -> SlotAmount {
    match amount {
        SlotAmount::Finite(value) => SlotAmount::Finite(value.round_dp(3).normalize()),
        infinite => infinite,
    }
}

#[cfg(test)]
mod tests {
    use bai_db_models::entities::ResourceSlot;
    use bai_db_models::entities::enums::DefaultForUnspecified;
    use bai_etcd_store::{ConfigNode, ConfigTree};
    use serde_json::json;

    use super::{KnownSlots, SlotAmount, Slots, allocated_slots, min_first};

    #[test]
    fn allocations_add_up_per_slot_over_devices() {
        let allocated = allocated_slots(&json!({
            "cpu": {"cpu": {"0": "1", "1": "0.5"}},
            "mem": {"mem": {"root": "1g"}},
            "cuda": {"cuda.shares": {"0": 0.25, "1": 1}},
        }))
        .expect("allocations");
        let as_text: Vec<(String, String)> = allocated
            .iter()
            .map(|(slot, amount)| (slot.to_owned(), amount.to_string()))
            .collect();
        assert_eq!(
            as_text,
            vec![
                ("cpu".to_owned(), "1.5".to_owned()),
                ("cuda.shares".to_owned(), "1.25".to_owned()),
                ("mem".to_owned(), "1073741824".to_owned()),
            ]
        );
        assert!(
            allocated_slots(&json!({}))
                .expect("none")
                .iter()
                .next()
                .is_none()
        );
        let error = allocated_slots(&json!({"cpu": {"cpu": {"0": "lots"}}})).expect_err("bad");
        assert!(error.contains("\"cpu\""), "{error}");
        assert!(allocated_slots(&json!([1])).is_err());
    }

    fn resource_slot(value: serde_json::Value) -> ResourceSlot {
        ResourceSlot::from_json(&value).expect("slots")
    }

    fn slots(value: serde_json::Value) -> Slots {
        Slots::from(&resource_slot(value))
    }

    /// The reference's `to_json` (the order of the slots is checked with [`keys`]).
    fn json_of(slots: &Slots) -> serde_json::Value {
        serde_json::Value::Object(
            slots
                .iter()
                .map(|(slot, amount)| (slot.to_owned(), amount.to_string().into()))
                .collect(),
        )
    }

    fn keys(slots: &Slots) -> Vec<&str> {
        slots.iter().map(|(slot, _)| slot).collect()
    }

    fn gpu_cluster() -> KnownSlots {
        let mut configured = ConfigTree::new();
        for (slot, unit) in [("cuda.device", "count"), ("cuda.mem", "bytes")] {
            configured.insert(slot.to_owned(), ConfigNode::Value(unit.to_owned()));
        }
        KnownSlots::from_configured(configured)
    }

    #[test]
    fn intrinsic_slots_come_first_and_etcd_may_redefine_them() {
        let mut configured = ConfigTree::new();
        configured.insert(
            "cuda.shares".to_owned(),
            ConfigNode::Value("count".to_owned()),
        );
        configured.insert("cpu".to_owned(), ConfigNode::Value("unique".to_owned()));
        let known = KnownSlots::from_configured(configured);
        let entries: Vec<(&str, Option<&str>)> = known
            .entries()
            .map(|(slot, unit)| (slot, unit.as_value()))
            .collect();
        assert_eq!(
            entries,
            [
                ("cpu", Some("unique")),
                ("mem", Some("bytes")),
                ("cuda.shares", Some("count"))
            ]
        );
        assert_eq!(
            known.names().collect::<Vec<_>>(),
            ["cpu", "mem", "cuda.shares"]
        );
    }

    #[test]
    fn limits_follow_from_policy() {
        let known = gpu_cluster();
        let total = resource_slot(
            json!({"cpu": "2.12345", "mem": "1.5", "tpu.device": "1", "cuda.device": "1.50"}),
        );
        let unlimited = known.limits(&total, DefaultForUnspecified::Unlimited);
        // Counts are quantized and normalized, bytes kept, unknown slots dropped, the rest filled;
        // the policy's own slots come first, in its (name) order.
        assert_eq!(
            json_of(&unlimited),
            json!({"cpu": "2.123", "cuda.device": "1.5", "mem": "1.5", "cuda.mem": "Infinity"})
        );
        assert_eq!(keys(&unlimited), ["cpu", "cuda.device", "mem", "cuda.mem"]);
        let limited = known.limits(&ResourceSlot::new(), DefaultForUnspecified::Limited);
        assert_eq!(
            json_of(&limited),
            json!({"cpu": "0", "mem": "0", "cuda.device": "0", "cuda.mem": "0"})
        );
        assert_eq!(keys(&limited), ["cpu", "mem", "cuda.device", "cuda.mem"]);
        // Half-even at the third place.
        let halves = known.limits(
            &resource_slot(json!({"cpu": "0.0005", "cuda.device": "0.0015"})),
            DefaultForUnspecified::Limited,
        );
        assert_eq!(
            halves.get("cpu").map(|a| a.to_string()).as_deref(),
            Some("0")
        );
        assert_eq!(
            halves.get("cuda.device").map(|a| a.to_string()).as_deref(),
            Some("0.002")
        );
    }

    #[test]
    fn normalize_keeps_known_slots_and_fills_zeros() {
        let known = KnownSlots::from_configured(ConfigTree::new());
        let preset = resource_slot(json!({"cpu": "1", "cuda.shares": "0.5", "mem": "2.0"}));
        let normalized = known.normalize(&preset);
        assert_eq!(json_of(&normalized), json!({"cpu": "1", "mem": "2.0"}));
        let empty = known.normalize(&ResourceSlot::new());
        assert_eq!(json_of(&empty), json!({"cpu": "0", "mem": "0"}));
        let mut occupied = slots(json!({"cpu": "1", "tpu.device": "2", "mem": "3"}));
        known.retain_known(&mut occupied);
        assert_eq!(json_of(&occupied), json!({"cpu": "1", "mem": "3"}));
    }

    #[test]
    fn operators_sync_both_operands_like_the_reference() {
        let mut limits = slots(json!({"cpu": "Infinity", "mem": "Infinity"}));
        let mut occupied = Slots::default();
        let remaining = limits.sub(&mut occupied);
        assert_eq!(
            json_of(&remaining),
            json!({"cpu": "Infinity", "mem": "Infinity"})
        );
        // The empty occupancy now shows zeros: what `keypair_using` reports.
        assert_eq!(json_of(&occupied), json!({"cpu": "0", "mem": "0"}));

        let mut available = slots(json!({"cpu": "8", "mem": "17179869184", "x": "1.5"}));
        let mut used = slots(json!({"cpu": "2.5", "mem": "1073741824"}));
        let left = available.sub(&mut used);
        assert_eq!(
            json_of(&left),
            json!({"cpu": "5.5", "mem": "16106127360", "x": "1.5"})
        );
        assert_eq!(used.get("x"), Some(SlotAmount::from(0i64)));

        let mut total = slots(json!({"cpu": "0"}));
        total.add_assign(&mut slots(json!({"mem": "2.0", "cpu": "1"})));
        assert_eq!(json_of(&total), json!({"cpu": "1", "mem": "2.0"}));
    }

    #[test]
    fn sums_take_the_union_of_slots_and_keep_infinities() {
        let mut total = Slots::default();
        total.add_assign(&mut slots(json!({"cpu": "4", "mem": "1024"})));
        total.add_assign(&mut slots(json!({"cpu": "0.5", "cuda.device": "Infinity"})));
        assert_eq!(
            json_of(&total),
            json!({"cpu": "4.5", "mem": "1024", "cuda.device": "Infinity"})
        );
        // Back to the storage shape, ordered by name.
        assert_eq!(
            ResourceSlot::from(&total).to_json(),
            json!({"cpu": "4.5", "cuda.device": "Infinity", "mem": "1024"})
        );
        let mut finite = slots(json!({"cpu": "79228162514264337593543950335"}));
        let mut more = slots(json!({"cpu": "1"}));
        assert_eq!(finite.add(&mut more).get("cpu"), Some(SlotAmount::Infinity));
    }

    #[test]
    fn covers_compares_every_slot_of_either_side() {
        let mut agent = slots(json!({"cpu": "4", "mem": "8589934592"}));
        let mut small = slots(json!({"cpu": "1", "mem": "1073741824"}));
        assert!(agent.covers(&mut small));
        let mut large = slots(json!({"cpu": "8", "mem": "1073741824"}));
        assert!(!agent.covers(&mut large));
        // A slot the agent lacks counts as zero on the agent.
        let mut gpu = slots(json!({"cpu": "1", "cuda.device": "1"}));
        assert!(!agent.covers(&mut gpu));
        assert_eq!(agent.get("cuda.device"), Some(SlotAmount::from(0i64)));
        // ...and a slot only the agent has lands in the preset as zero.
        let mut extra = slots(json!({"cpu": "1", "mem": "1", "tpu.device": "2"}));
        let mut preset = slots(json!({"cpu": "1", "mem": "1"}));
        assert!(extra.covers(&mut preset));
        assert_eq!(keys(&preset), ["cpu", "mem", "tpu.device"]);
        let mut unlimited = slots(json!({"cpu": "Infinity"}));
        assert!(unlimited.covers(&mut slots(json!({"cpu": "1000000"}))));
    }

    #[test]
    fn min_prefers_the_first_of_equals() {
        let one = "1".parse::<SlotAmount>().unwrap();
        let one_point_zero = "1.0".parse::<SlotAmount>().unwrap();
        assert_eq!(min_first(one, one_point_zero).to_string(), "1");
        assert_eq!(
            min_first(SlotAmount::Infinity, one_point_zero).to_string(),
            "1.0"
        );
    }
}
