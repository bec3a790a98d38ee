//! The `agent_info` map of `agent_heartbeat`: what an agent says about itself every heartbeat.

use rmpv::Value;

use crate::codec;

/// One resource slot an agent offers: its name (`cpu`, `mem`, `cuda.device`…), its type (`count`,
/// `bytes`, `unique`) and the amount as a decimal string (capacity minus what the agent reserves).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotCapacity {
    pub slot: String,
    pub slot_type: String,
    pub amount: String,
}

/// A heartbeat's `agent_info`.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentInfo {
    pub ip: String,
    pub region: String,
    /// `default` when the agent leaves it out.
    pub scaling_group: String,
    /// `tcp://host:port`, where the agent's RPC server listens.
    pub addr: String,
    /// The agent's CURVE public key (Z85 text), when its RPC requires authentication.
    pub public_key: Option<String>,
    pub public_host: Option<String>,
    pub resource_slots: Vec<SlotCapacity>,
    pub version: String,
    /// Plugin key -> `{"version": …, …}`.
    pub compute_plugins: serde_json::Value,
    /// The images the agent holds: `(repository:tag, digest)`.
    pub images: Vec<(String, String)>,
    /// `x86_64` when the agent leaves it out.
    pub architecture: String,
    pub auto_terminate_abusing_kernel: bool,
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => text.as_str().map(str::to_owned),
        _ => None,
    }
}

impl AgentInfo {
    /// Reads the map; a missing or mistyped key is an error naming it.
    pub fn from_value(value: &Value) -> Result<AgentInfo, String> {
        let Value::Map(pairs) = value else {
            return Err("agent_info is not a map".to_owned());
        };
        let get = |key: &str| {
            pairs
                .iter()
                .find(|(name, _)| name.as_str() == Some(key))
                .map(|(_, value)| value)
        };
        let required_text = |key: &str| {
            get(key)
                .and_then(text)
                .ok_or_else(|| format!("agent_info.{key} is missing or not a string"))
        };
        let optional_text = |key: &str| match get(key) {
            None | Some(Value::Nil) => Ok(None),
            Some(Value::Binary(bytes)) => String::from_utf8(bytes.clone())
                .map(Some)
                .map_err(|_| format!("agent_info.{key} is not UTF-8")),
            Some(value) => text(value)
                .map(Some)
                .ok_or_else(|| format!("agent_info.{key} is not a string")),
        };
        let resource_slots = match get("resource_slots") {
            Some(Value::Map(slots)) => slots
                .iter()
                .map(|(slot, spec)| {
                    let slot = text(slot).ok_or("agent_info.resource_slots has a non-string key")?;
                    match spec {
                        Value::Array(pair) if pair.len() == 2 => Ok(SlotCapacity {
                            slot_type: text(&pair[0]).ok_or_else(|| {
                                format!("agent_info.resource_slots.{slot}: the type is not a string")
                            })?,
                            amount: match &pair[1] {
                                Value::Integer(number) => number.to_string(),
                                other => text(other).ok_or_else(|| {
                                    format!(
                                        "agent_info.resource_slots.{slot}: the amount is not a decimal"
                                    )
                                })?,
                            },
                            slot,
                        }),
                        _ => Err(format!(
                            "agent_info.resource_slots.{slot} is not a [type, amount] pair"
                        )),
                    }
                })
                .collect::<Result<Vec<_>, String>>()?,
            _ => return Err("agent_info.resource_slots is missing or not a map".to_owned()),
        };
        let images = match get("images") {
            None | Some(Value::Nil) => Vec::new(),
            Some(Value::Binary(bytes)) => {
                // The reference's manager always unzips, whatever `images.opts` says.
                let zlib = Value::Map(vec![(Value::from("compression"), Value::from("zlib"))]);
                codec::decode_image_list(bytes, Some(get("images.opts").unwrap_or(&zlib)))
                    .map_err(|error| format!("agent_info.images: {error}"))?
            }
            Some(_) => return Err("agent_info.images is not binary".to_owned()),
        };
        Ok(AgentInfo {
            ip: required_text("ip")?,
            region: required_text("region")?,
            scaling_group: optional_text("scaling_group")?.unwrap_or_else(|| "default".to_owned()),
            addr: required_text("addr")?,
            public_key: optional_text("public_key")?,
            public_host: optional_text("public_host")?,
            resource_slots,
            version: required_text("version")?,
            compute_plugins: get("compute_plugins").map_or(
                serde_json::Value::Object(serde_json::Map::new()),
                crate::json::to_json,
            ),
            images,
            architecture: optional_text("architecture")?.unwrap_or_else(|| "x86_64".to_owned()),
            auto_terminate_abusing_kernel: matches!(
                get("auto_terminate_abusing_kernel"),
                Some(Value::Boolean(true))
            ),
        })
    }

    /// The map as an agent sends it (the public key as binary, the images zlib-packed).
    pub fn to_value(&self) -> Value {
        let (images, images_opts) = codec::encode_image_list(&self.images);
        let entry = |key: &str, value: Value| (Value::from(key), value);
        Value::Map(vec![
            entry("ip", Value::from(self.ip.as_str())),
            entry("region", Value::from(self.region.as_str())),
            entry("scaling_group", Value::from(self.scaling_group.as_str())),
            entry("addr", Value::from(self.addr.as_str())),
            entry(
                "public_key",
                self.public_key
                    .as_ref()
                    .map_or(Value::Nil, |key| Value::Binary(key.as_bytes().to_vec())),
            ),
            entry(
                "public_host",
                self.public_host.as_deref().map_or(Value::Nil, Value::from),
            ),
            entry(
                "resource_slots",
                Value::Map(
                    self.resource_slots
                        .iter()
                        .map(|slot| {
                            (
                                Value::from(slot.slot.as_str()),
                                Value::Array(vec![
                                    Value::from(slot.slot_type.as_str()),
                                    Value::from(slot.amount.as_str()),
                                ]),
                            )
                        })
                        .collect(),
                ),
            ),
            entry("version", Value::from(self.version.as_str())),
            entry(
                "compute_plugins",
                crate::json::to_value(&self.compute_plugins),
            ),
            entry("images", Value::Binary(images)),
            entry("images.opts", images_opts),
            entry("architecture", Value::from(self.architecture.as_str())),
            entry(
                "auto_terminate_abusing_kernel",
                Value::Boolean(self.auto_terminate_abusing_kernel),
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AgentInfo {
        AgentInfo {
            ip: "127.0.0.1".into(),
            region: "local".into(),
            scaling_group: "default".into(),
            addr: "tcp://127.0.0.1:6001".into(),
            public_key: Some("x".repeat(40)),
            public_host: Some("127.0.0.1".into()),
            resource_slots: vec![
                SlotCapacity {
                    slot: "cpu".into(),
                    slot_type: "count".into(),
                    amount: "7".into(),
                },
                SlotCapacity {
                    slot: "mem".into(),
                    slot_type: "bytes".into(),
                    amount: "16106127360".into(),
                },
            ],
            version: "24.03.11".into(),
            compute_plugins: serde_json::json!({"cpu": {"version": "24.03.11"}}),
            images: vec![("cr.backend.ai/stable/python:3.9".into(), "sha256:ab".into())],
            architecture: "x86_64".into(),
            auto_terminate_abusing_kernel: false,
        }
    }

    #[test]
    fn agent_info_roundtrips() {
        let info = sample();
        assert_eq!(AgentInfo::from_value(&info.to_value()).unwrap(), info);
    }

    #[test]
    fn missing_keys_are_named() {
        let Value::Map(mut pairs) = sample().to_value() else {
            unreachable!()
        };
        pairs.retain(|(key, _)| key.as_str() != Some("addr"));
        assert_eq!(
            AgentInfo::from_value(&Value::Map(pairs)).unwrap_err(),
            "agent_info.addr is missing or not a string"
        );
        assert_eq!(
            AgentInfo::from_value(&Value::from(1)).unwrap_err(),
            "agent_info is not a map"
        );
    }
}
