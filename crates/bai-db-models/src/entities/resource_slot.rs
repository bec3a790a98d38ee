//! `ResourceSlot`: the amounts of each resource slot (`cpu`, `mem`, `cuda.shares`, ...) that the
//! reference keeps in its `ResourceSlotColumn` jsonb columns.
//!
//! Written as `{"slot": "decimal-string"}` (Python's `"{:f}"` of a `Decimal`, never an exponent),
//! exactly what the reference writes. Read leniently, because fixtures store whatever JSON they
//! hold: JSON numbers, numeric strings, `"Infinity"`, and binary size strings such as `"4g"` for
//! memory-like slots (db-fixtures.md §6, traps 7 and 8).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use bai_config::BinarySizeValue;
use rust_decimal::{Decimal, RoundingStrategy};
use sea_orm::FromJsonQueryResult;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Slot name -> amount. Ordered by slot name so the serialised form is stable.
#[derive(Clone, Debug, Default, PartialEq, Eq, FromJsonQueryResult)]
pub struct ResourceSlot(BTreeMap<String, SlotAmount>);

/// The amount of one slot: a decimal (bytes for `mem`-like slots, a count otherwise) or an
/// infinity, which the reference uses for "unlimited" (`DefaultForUnspecified.UNLIMITED`).
///
/// The variant order makes the derived ordering numeric: -Infinity < every decimal < Infinity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SlotAmount {
    NegInfinity,
    Finite(Decimal),
    Infinity,
}

/// A slot value the reference itself could not have read either.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceSlotError {
    #[error("a resource slot map must be a JSON object, not {0}")]
    NotAnObject(String),
    #[error("cannot convert the slot '{slot}' to decimal: {value}")]
    NotADecimal { slot: String, value: String },
    #[error("the slot '{slot}' holds bytes and cannot be a fractional JSON number ({value})")]
    FractionalBytes { slot: String, value: String },
    #[error("{0:?} is not a decimal")]
    InvalidDecimal(String),
    #[error("the slot '{slot}' holds bytes: {source}")]
    InvalidBinarySize {
        slot: String,
        source: bai_config::BinarySizeError,
    },
    #[error("the slot '{slot}' holds bytes and {value:?} is beyond what a decimal holds")]
    TooManyBytes { slot: String, value: String },
}

impl ResourceSlot {
    /// An empty map (`{}`).
    pub fn new() -> ResourceSlot {
        ResourceSlot::default()
    }

    pub fn get(&self, slot: &str) -> Option<SlotAmount> {
        self.0.get(slot).copied()
    }

    pub fn insert(&mut self, slot: impl Into<String>, amount: impl Into<SlotAmount>) {
        self.0.insert(slot.into(), amount.into());
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, SlotAmount)> {
        self.0.iter().map(|(slot, amount)| (slot.as_str(), *amount))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_map(&self) -> &BTreeMap<String, SlotAmount> {
        &self.0
    }

    /// The stored and wire form: every amount as a string.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.0
                .iter()
                .map(|(slot, amount)| (slot.clone(), amount.to_string().into()))
                .collect(),
        )
    }

    /// Reads any form the reference's column reader accepts (`ResourceSlot.from_json`, falling back
    /// to `from_user_input(value, None)` when a value is not a plain decimal):
    ///
    /// * `null` values are dropped, JSON numbers and numeric strings (`"2"`, `"0.5"`, `"1e3"`,
    ///   `"Infinity"`) are taken as they are;
    /// * when some string is not a decimal, the whole map is read again as user input: slots whose
    ///   name contains `mem` are binary sizes (`"4g"` = 4 GiB), the others counts rounded to three
    ///   decimal places;
    /// * the JSON *string* `"{}"` that a Python default leaves in `domains`/`groups`
    ///   `total_resource_slots` reads as the object it spells; a JSON `null` as an empty map.
    ///
    /// A JSON float is taken by its shortest decimal spelling (`0.1` -> `0.1`), where Python's
    /// `Decimal(float)` would keep the binary expansion; only hand-written fixtures hold floats.
    pub fn from_json(value: &serde_json::Value) -> Result<ResourceSlot, ResourceSlotError> {
        let parsed;
        let object = match value {
            serde_json::Value::Object(object) => object,
            serde_json::Value::Null => return Ok(ResourceSlot::new()),
            serde_json::Value::String(text) => {
                parsed = serde_json::from_str::<serde_json::Value>(text).ok();
                match &parsed {
                    Some(serde_json::Value::Object(object)) => object,
                    _ => {
                        return Err(ResourceSlotError::NotAnObject(format!(
                            "the string {text:?}"
                        )));
                    }
                }
            }
            other => return Err(ResourceSlotError::NotAnObject(json_kind(other).to_owned())),
        };
        match read_plain(object) {
            Ok(slots) => Ok(slots),
            Err(NotPlain::Arithmetic) => read_as_user_input(object),
            Err(NotPlain::Invalid(error)) => Err(error),
        }
    }
}

impl FromIterator<(String, SlotAmount)> for ResourceSlot {
    fn from_iter<I: IntoIterator<Item = (String, SlotAmount)>>(iter: I) -> Self {
        ResourceSlot(iter.into_iter().collect())
    }
}

impl From<BTreeMap<String, SlotAmount>> for ResourceSlot {
    fn from(map: BTreeMap<String, SlotAmount>) -> Self {
        ResourceSlot(map)
    }
}

impl Serialize for ResourceSlot {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(
            self.0
                .iter()
                .map(|(slot, amount)| (slot, amount.to_string())),
        )
    }
}

impl<'de> Deserialize<'de> for ResourceSlot {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        ResourceSlot::from_json(&value).map_err(D::Error::custom)
    }
}

impl SlotAmount {
    /// The decimal, or `None` for an infinity.
    pub fn as_decimal(self) -> Option<Decimal> {
        match self {
            SlotAmount::Finite(amount) => Some(amount),
            SlotAmount::Infinity | SlotAmount::NegInfinity => None,
        }
    }

    pub fn is_finite(self) -> bool {
        matches!(self, SlotAmount::Finite(_))
    }
}

impl From<Decimal> for SlotAmount {
    fn from(amount: Decimal) -> Self {
        SlotAmount::Finite(amount)
    }
}

impl From<i64> for SlotAmount {
    fn from(amount: i64) -> Self {
        SlotAmount::Finite(Decimal::from(amount))
    }
}

/// Python's `"{:f}"`: plain positional notation keeping the decimal's own scale (`1.50` stays
/// `1.50`), and `Infinity` / `-Infinity`.
impl fmt::Display for SlotAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlotAmount::Finite(amount) => write!(f, "{amount}"),
            SlotAmount::Infinity => f.write_str("Infinity"),
            SlotAmount::NegInfinity => f.write_str("-Infinity"),
        }
    }
}

/// What Python's `Decimal(str)` accepts, except NaN: surrounding whitespace, a sign, `_` anywhere
/// (Python drops them all), an exponent (`1e3`), and `inf` / `Infinity` in any case.
impl FromStr for SlotAmount {
    type Err = ResourceSlotError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_decimal(text).ok_or_else(|| ResourceSlotError::InvalidDecimal(text.to_owned()))
    }
}

/// The amount of the `mem`-like `slot` from a binary size string (`"4g"`), read by the
/// workspace's size parser; `inf` is [`SlotAmount::Infinity`].
fn binary_size_amount(slot: &str, text: &str) -> Result<SlotAmount, ResourceSlotError> {
    let parsed = bai_config::parse_binary_size(text).map_err(|source| {
        ResourceSlotError::InvalidBinarySize {
            slot: slot.to_owned(),
            source,
        }
    })?;
    match parsed {
        BinarySizeValue::Bytes(bytes) => Decimal::try_from_i128_with_scale(bytes, 0)
            .map(SlotAmount::Finite)
            .map_err(|_| ResourceSlotError::TooManyBytes {
                slot: slot.to_owned(),
                value: text.to_owned(),
            }),
        BinarySizeValue::Infinite => Ok(SlotAmount::Infinity),
    }
}

/// Why the plain reading of a map failed.
enum NotPlain {
    /// A string that is not a decimal: Python raises an `ArithmeticError`, and the column reader
    /// retries the map as user input.
    Arithmetic,
    /// A value no reading accepts.
    Invalid(ResourceSlotError),
}

/// `ResourceSlot.from_json`: `Decimal(v)` for every non-null value.
fn read_plain(
    object: &serde_json::Map<String, serde_json::Value>,
) -> Result<ResourceSlot, NotPlain> {
    let mut slots = ResourceSlot::new();
    for (slot, value) in object {
        let amount = match value {
            serde_json::Value::Null => continue,
            serde_json::Value::Number(number) => number_to_decimal(number)
                .ok_or_else(|| NotPlain::Invalid(not_a_decimal(slot, value)))?,
            serde_json::Value::String(text) => parse_decimal(text).ok_or(NotPlain::Arithmetic)?,
            _ => return Err(NotPlain::Invalid(not_a_decimal(slot, value))),
        };
        slots.insert(slot.clone(), amount);
    }
    Ok(slots)
}

/// `ResourceSlot.from_user_input(value, None)`: slots named like `mem` are bytes, the rest counts.
fn read_as_user_input(
    object: &serde_json::Map<String, serde_json::Value>,
) -> Result<ResourceSlot, ResourceSlotError> {
    let mut slots = ResourceSlot::new();
    for (slot, value) in object {
        let amount = if slot.contains("mem") {
            match value {
                serde_json::Value::Null => continue,
                serde_json::Value::String(text) => binary_size_amount(slot, text)?,
                serde_json::Value::Number(number) if number.is_f64() => {
                    return Err(ResourceSlotError::FractionalBytes {
                        slot: slot.clone(),
                        value: value.to_string(),
                    });
                }
                serde_json::Value::Number(number) => {
                    number_to_decimal(number).ok_or_else(|| not_a_decimal(slot, value))?
                }
                _ => return Err(not_a_decimal(slot, value)),
            }
        } else {
            let amount = match value {
                serde_json::Value::Null => continue,
                serde_json::Value::String(text) => parse_decimal(text),
                serde_json::Value::Number(number) => number_to_decimal(number),
                _ => None,
            }
            .ok_or_else(|| not_a_decimal(slot, value))?;
            normalize_count(amount)
        };
        slots.insert(slot.clone(), amount);
    }
    Ok(slots)
}

/// Counts from user input keep three decimal places (half-even), then lose trailing zeros.
fn normalize_count(amount: SlotAmount) -> SlotAmount {
    match amount {
        SlotAmount::Finite(count) => SlotAmount::Finite(
            count
                .round_dp_with_strategy(3, RoundingStrategy::MidpointNearestEven)
                .normalize(),
        ),
        infinite => infinite,
    }
}

/// Python's `Decimal(text)`, with `inf`/`Infinity` (any case, signed) as the infinities.
fn parse_decimal(text: &str) -> Option<SlotAmount> {
    let trimmed = text.trim();
    let (negative, unsigned) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    if unsigned.eq_ignore_ascii_case("inf") || unsigned.eq_ignore_ascii_case("infinity") {
        return Some(if negative {
            SlotAmount::NegInfinity
        } else {
            SlotAmount::Infinity
        });
    }
    bai_config::parse_python_decimal(text).map(SlotAmount::Finite)
}

fn number_to_decimal(number: &serde_json::Number) -> Option<SlotAmount> {
    if let Some(integer) = number.as_i64() {
        return Some(SlotAmount::Finite(Decimal::from(integer)));
    }
    if let Some(integer) = number.as_u64() {
        return Some(SlotAmount::Finite(Decimal::from(integer)));
    }
    // Rust prints floats in their shortest round-tripping positional form, never with an exponent.
    let float = number.as_f64()?;
    Decimal::from_str(&float.to_string())
        .ok()
        .map(SlotAmount::Finite)
}

fn not_a_decimal(slot: &str, value: &serde_json::Value) -> ResourceSlotError {
    ResourceSlotError::NotADecimal {
        slot: slot.to_owned(),
        value: value.to_string(),
    }
}

fn json_kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(value: serde_json::Value) -> serde_json::Value {
        ResourceSlot::from_json(&value)
            .unwrap_or_else(|error| panic!("{value} does not read: {error}"))
            .to_json()
    }

    fn dec(text: &str) -> SlotAmount {
        SlotAmount::Finite(Decimal::from_str(text).expect("decimal"))
    }

    #[test]
    fn what_the_server_writes_reads_back_unchanged() {
        let stored = json!({"cpu": "2", "mem": "4294967296", "cuda.shares": "0.5", "x": "1.50"});
        assert_eq!(read(stored.clone()), stored);
        assert_eq!(
            read(json!({"cpu": "Infinity", "mem": "-Infinity"})),
            json!({"cpu": "Infinity", "mem": "-Infinity"})
        );
    }

    #[test]
    fn fixture_numbers_and_nulls_are_accepted() {
        assert_eq!(
            read(json!({"cpu": 4, "mem": 1073741824, "cuda.shares": 0.25, "tpu.device": null})),
            json!({"cpu": "4", "mem": "1073741824", "cuda.shares": "0.25"})
        );
        assert_eq!(read(json!({"cpu": "1e3"})), json!({"cpu": "1000"}));
    }

    #[test]
    fn binary_size_strings_make_the_whole_map_user_input() {
        // As in the reference's fallback, the counts are then rounded to three places too.
        assert_eq!(
            read(json!({"cpu": "2.12345", "mem": "4g", "cuda.mem": "512m", "gpu": 1})),
            json!({"cpu": "2.123", "mem": "4294967296", "cuda.mem": "536870912", "gpu": "1"})
        );
        assert_eq!(
            read(json!({"cpu": "1.0005", "mem": "1.5g"})),
            json!({"cpu": "1", "mem": "1610612736"})
        );
        let error = ResourceSlot::from_json(&json!({"cpu": "4g"})).expect_err("not bytes");
        assert_eq!(
            error.to_string(),
            "cannot convert the slot 'cpu' to decimal: \"4g\""
        );
        let error =
            ResourceSlot::from_json(&json!({"mem": 1.5, "x.mem": "4g"})).expect_err("float");
        assert!(
            matches!(error, ResourceSlotError::FractionalBytes { .. }),
            "{error}"
        );
    }

    #[test]
    fn python_default_leftovers_read_as_empty() {
        assert_eq!(read(json!("{}")), json!({}));
        assert_eq!(read(json!(null)), json!({}));
        assert!(ResourceSlot::from_json(&json!([1])).is_err());
        assert!(ResourceSlot::from_json(&json!({"cpu": true})).is_err());
    }

    #[test]
    fn serde_round_trip_uses_strings() {
        let mut slots = ResourceSlot::new();
        slots.insert("cpu", dec("0.5"));
        slots.insert("mem", 1_073_741_824i64);
        slots.insert("cuda.device", SlotAmount::Infinity);
        let text = serde_json::to_string(&slots).expect("serialises");
        assert_eq!(
            text,
            r#"{"cpu":"0.5","cuda.device":"Infinity","mem":"1073741824"}"#
        );
        let back: ResourceSlot = serde_json::from_str(&text).expect("deserialises");
        assert_eq!(back, slots);
    }

    #[test]
    fn amounts_order_numerically_with_infinities_at_the_ends() {
        let mut amounts = vec![
            SlotAmount::Infinity,
            dec("2"),
            SlotAmount::NegInfinity,
            dec("-1.5"),
            dec("10"),
        ];
        amounts.sort();
        assert_eq!(
            amounts,
            vec![
                SlotAmount::NegInfinity,
                dec("-1.5"),
                dec("2"),
                dec("10"),
                SlotAmount::Infinity
            ]
        );
    }

    #[test]
    fn decimal_strings_follow_python() {
        for (text, expected) in [
            (" 2 ", dec("2")),
            ("+0.5", dec("0.5")),
            ("-3", dec("-3")),
            ("1_000", dec("1000")),
            ("1.2E-3", dec("0.0012")),
            ("inf", SlotAmount::Infinity),
            ("-Infinity", SlotAmount::NegInfinity),
        ] {
            assert_eq!(text.parse::<SlotAmount>(), Ok(expected), "{text:?}");
        }
        for text in ["", "-", "4g", "NaN", "1-2", "--1", "0x10", "e3"] {
            assert!(text.parse::<SlotAmount>().is_err(), "{text:?} parsed");
        }
    }

    #[test]
    fn mem_slots_read_binary_sizes_with_the_shared_parser() {
        for (text, bytes) in [
            ("1g", "1073741824"),
            ("1 GiB", "1073741824"),
            ("2K", "2048"),
            ("1.0000001k", "1024"),
            ("-1g", "-1073741824"),
            ("1y", "1208925819614629174706176"),
            ("Infinity", "Infinity"),
        ] {
            assert_eq!(
                read(json!({"mem": text})),
                json!({"mem": bytes}),
                "{text:?}"
            );
        }
        // Once the map is user input, a bare fraction is no size (the reference's "Fractional
        // bytes are not allowed").
        let error = ResourceSlot::from_json(&json!({"mem": "1.5", "cuda.mem": "1g"}))
            .expect_err("fractional bytes");
        assert_eq!(
            error.to_string(),
            "the slot 'mem' holds bytes: \"1.5\" is a fractional number of bytes (without a unit \
             a size must be an integer)"
        );
    }
}
