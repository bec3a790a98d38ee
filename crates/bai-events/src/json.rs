//! Free-form maps of events (`creation_info`, `context_env`, `compute_plugins`) between msgpack
//! values and JSON, the shape the database and the API keep them in.

use rmpv::Value;

/// A msgpack value as JSON: binary as (lossy) UTF-8 text, map keys that are not strings as their
/// msgpack text form, integers beyond i64/u64 and non-finite floats as null.
pub fn to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Nil => serde_json::Value::Null,
        Value::Boolean(flag) => serde_json::Value::Bool(*flag),
        Value::Integer(number) => number
            .as_i64()
            .map(serde_json::Value::from)
            .or_else(|| number.as_u64().map(serde_json::Value::from))
            .unwrap_or(serde_json::Value::Null),
        Value::F32(number) => float(f64::from(*number)),
        Value::F64(number) => float(*number),
        Value::String(text) => {
            serde_json::Value::String(String::from_utf8_lossy(text.as_bytes()).into_owned())
        }
        Value::Binary(bytes) => {
            serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned())
        }
        Value::Array(items) => serde_json::Value::Array(items.iter().map(to_json).collect()),
        Value::Map(pairs) => serde_json::Value::Object(
            pairs
                .iter()
                .map(|(key, value)| {
                    let key = match key {
                        Value::String(text) => {
                            String::from_utf8_lossy(text.as_bytes()).into_owned()
                        }
                        other => other.to_string(),
                    };
                    (key, to_json(value))
                })
                .collect(),
        ),
        Value::Ext(code, _) => serde_json::Value::String(format!("<ext {code}>")),
    }
}

fn float(number: f64) -> serde_json::Value {
    serde_json::Number::from_f64(number).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// JSON as a msgpack value (what we send).
pub fn to_value(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(flag) => Value::Boolean(*flag),
        serde_json::Value::Number(number) => {
            if let Some(integer) = number.as_i64() {
                Value::from(integer)
            } else if let Some(integer) = number.as_u64() {
                Value::from(integer)
            } else {
                Value::F64(number.as_f64().unwrap_or(f64::NAN))
            }
        }
        serde_json::Value::String(text) => Value::from(text.as_str()),
        serde_json::Value::Array(items) => Value::Array(items.iter().map(to_value).collect()),
        serde_json::Value::Object(map) => Value::Map(
            map.iter()
                .map(|(key, value)| (Value::from(key.as_str()), to_value(value)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_roundtrips_and_odd_msgpack_is_kept_readable() {
        let json = serde_json::json!({"a": [1, -2, 2.5, null, true, "x"], "b": {}});
        assert_eq!(to_json(&to_value(&json)), json);
        let odd = Value::Map(vec![
            (Value::from(1), Value::Binary(b"bin".to_vec())),
            (Value::from("n"), Value::F64(f64::NAN)),
        ]);
        assert_eq!(to_json(&odd), serde_json::json!({"1": "bin", "n": null}));
    }
}
