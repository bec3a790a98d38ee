//! Python's spelling of the values the scheduler's messages and `status_data` carry: the
//! reference's `ResourceSlot.to_humanized` (binary sizes such as `16g`, decimals in positional
//! notation), the key order in which PostgreSQL returns a jsonb object, and
//! `datetime.isoformat()`.
//!
//! Pure formatting: no I/O.

use bai_db_models::entities::SlotAmount;
use bai_etcd_store::ConfigNode;
use rust_decimal::{Decimal, RoundingStrategy};

use crate::slots::KnownSlots;

/// `BinarySize.suffices`: " ", K, M, G, T, P, E, Z, Y.
const SIZE_SUFFIXES: [char; 9] = [' ', 'k', 'm', 'g', 't', 'p', 'e', 'z', 'y'];

/// `" ".join(f"{k}={v}" for k, v in slots.to_humanized(known).items())`. A slot that is not
/// known makes the reference raise `ValueError`; the `Err` is that exception's `repr`, which is
/// what the reference then records as the predicate's message.
pub(crate) fn humanized_listing<'a>(
    known: &KnownSlots,
    slots: impl IntoIterator<Item = (&'a str, SlotAmount)>,
) -> Result<String, String> {
    let mut parts = Vec::new();
    for (slot, amount) in slots {
        let unit = known
            .entries()
            .find(|(name, _)| *name == slot)
            .map(|(_, unit)| unit)
            .ok_or_else(|| format!("ValueError(\"Unknown slot type: '{slot}'\")"))?;
        let is_bytes = matches!(unit, ConfigNode::Value(unit) if unit == "bytes");
        parts.push(format!("{slot}={}", humanize(amount, is_bytes)));
    }
    Ok(parts.join(" "))
}

/// `ResourceSlot._humanize_value`: bytes as `"{:s}".format(BinarySize(v))`, falling back to the
/// plain number when that overflows (infinities); counts as `"{:f}"`.
pub(crate) fn humanize(amount: SlotAmount, is_bytes: bool) -> String {
    match amount {
        SlotAmount::Finite(value) if is_bytes => humanize_bytes(value),
        other => other.to_string(),
    }
}

/// `"{:s}".format(BinarySize(value))`: the integer part, scaled by the largest power of 1024 it
/// reaches, with two decimal places at most (`1.5g`, `512m`, `1000`).
fn humanize_bytes(value: Decimal) -> String {
    let bytes = value.trunc();
    let mut scaled = bytes;
    let mut suffix = 0;
    let step = Decimal::from(1024);
    while scaled >= step && suffix + 1 < SIZE_SUFFIXES.len() {
        scaled = (scaled / step).floor();
        suffix += 1;
    }
    if suffix == 0 {
        return bytes.to_string();
    }
    let multiplier = (0..suffix).fold(Decimal::ONE, |product, _| product * step);
    let quotient = bytes / multiplier;
    let number = if quotient.fract().is_zero() {
        quotient.trunc().to_string()
    } else {
        python_str_of_normalized(
            quotient
                .round_dp_with_strategy(2, RoundingStrategy::MidpointNearestEven)
                .normalize(),
        )
    };
    format!("{number}{}", SIZE_SUFFIXES[suffix])
}

/// `str(Decimal(...).normalize())`: normalising strips trailing zeros, also of integers, which
/// Python then prints in scientific notation (`1E+1` for ten).
fn python_str_of_normalized(value: Decimal) -> String {
    let mantissa = value.mantissa();
    if value.scale() > 0 || mantissa == 0 || mantissa % 10 != 0 {
        return value.to_string();
    }
    let sign = if mantissa < 0 { "-" } else { "" };
    let digits = mantissa.unsigned_abs().to_string();
    let significant = digits.trim_end_matches('0');
    let exponent = digits.len() - 1;
    let (first, rest) = significant.split_at(1);
    if rest.is_empty() {
        format!("{sign}{first}E+{exponent}")
    } else {
        format!("{sign}{first}.{rest}E+{exponent}")
    }
}

/// The order of a jsonb object's keys as PostgreSQL returns them (shorter keys first, then
/// bytewise), which is the order of the Python dict the reference reads.
pub(crate) fn jsonb_order<'a>(keys: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let mut keys: Vec<&str> = keys.into_iter().collect();
    keys.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    keys
}

#[cfg(test)]
mod tests {
    use bai_db_models::entities::SlotAmount;

    use super::{humanize, jsonb_order};

    fn amount(text: &str) -> SlotAmount {
        text.parse().expect("amount")
    }

    #[test]
    fn bytes_are_humanized_like_binary_size() {
        let cases = [
            ("1023", "1023"),
            ("1024", "1k"),
            ("1073741824", "1g"),
            ("1610612736", "1.5g"),
            ("1000000000", "953.67m"),
            ("17179869184", "16g"),
            // 10.001 GiB: quantized to 10.00, normalised to 1E+1 by Python.
            ("10738491998", "1E+1g"),
            ("1536.7", "1.5k"),
            ("Infinity", "Infinity"),
        ];
        for (bytes, expected) in cases {
            assert_eq!(humanize(amount(bytes), true), expected, "{bytes}");
        }
        assert_eq!(humanize(amount("2.50"), false), "2.50");
        assert_eq!(humanize(amount("Infinity"), false), "Infinity");
    }

    #[test]
    fn jsonb_orders_keys_by_length_then_bytes() {
        assert_eq!(
            jsonb_order(["mem", "cuda.device", "cpu", "tpu.device"]),
            ["cpu", "mem", "tpu.device", "cuda.device"]
        );
    }
}
