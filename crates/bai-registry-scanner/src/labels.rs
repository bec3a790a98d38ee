//! Backend.AI's image labels: which images are kernel images (the reference's
//! `validate_image_labels`: `common_image_label_schema`, the inference labels and the service-port
//! rules), and what the catalogue stores from them (resource limits, accelerators).

use serde_json::{Map, Value, json};

const KERNELSPEC: &str = "ai.backend.kernelspec";
/// The kernel spec versions this manager runs (`MIN_KERNELSPEC`..=`MAX_KERNELSPEC`).
const SUPPORTED_KERNELSPEC: i64 = 1;
const RESOURCE_MIN: &str = "ai.backend.resource.min.";
const RESOURCE_MAX: &str = "ai.backend.resource.max.";
/// Ports the container's own daemons use.
const RESERVED_PORTS: [u64; 6] = [2000, 2001, 2002, 2003, 2200, 7681];

/// Why the image with `labels` is not a kernel image this manager can run, or `Ok`. Every problem
/// is named, separated by "; ".
pub(crate) fn check(labels: &Map<String, Value>) -> Result<(), String> {
    let mut problems = Vec::new();
    let text = |key: &str, problems: &mut Vec<String>| -> Option<String> {
        match labels.get(key) {
            None => {
                problems.push(format!("no {key} label"));
                None
            }
            Some(Value::String(value)) => Some(value.clone()),
            Some(other) => {
                problems.push(format!("{key} is not a string ({other})"));
                None
            }
        }
    };
    if let Some(spec) = text(KERNELSPEC, &mut problems) {
        match spec.trim().parse::<i64>() {
            Ok(SUPPORTED_KERNELSPEC) => {}
            Ok(other) => problems.push(format!(
                "{KERNELSPEC} is {other}; this manager runs kernel spec {SUPPORTED_KERNELSPEC}"
            )),
            Err(_) => problems.push(format!("{KERNELSPEC} {spec:?} is not an integer")),
        }
    }
    if let Some(features) = text("ai.backend.features", &mut problems)
        && features.split(' ').any(str::is_empty)
    {
        problems.push(format!(
            "ai.backend.features {features:?} has an empty item (features are separated by single spaces)"
        ));
    }
    for key in ["ai.backend.base-distro", "ai.backend.runtime-type"] {
        if text(key, &mut problems).is_some_and(|value| value.is_empty()) {
            problems.push(format!("{key} is empty"));
        }
    }
    text("ai.backend.runtime-path", &mut problems);
    let role = match labels.get("ai.backend.role") {
        None => "COMPUTE".to_owned(),
        Some(_) => text("ai.backend.role", &mut problems).unwrap_or_default(),
    };
    if labels.get("ai.backend.role").is_none_or(Value::is_string)
        && !["COMPUTE", "INFERENCE", "SYSTEM"].contains(&role.as_str())
    {
        problems.push(format!(
            "ai.backend.role is {role:?}; expected COMPUTE, INFERENCE or SYSTEM"
        ));
    }
    let service_ports = match labels.get("ai.backend.service-ports") {
        Some(Value::String(ports)) => match service_ports(ports) {
            Ok(ports) => ports,
            Err(problem) => {
                problems.push(format!("ai.backend.service-ports: {problem}"));
                Vec::new()
            }
        },
        Some(other) => {
            problems.push(format!(
                "ai.backend.service-ports is not a string ({other})"
            ));
            Vec::new()
        }
        None => Vec::new(),
    };
    if role == "INFERENCE" {
        if let Some(endpoints) = text("ai.backend.endpoint-ports", &mut problems) {
            if endpoints.split(',').any(str::is_empty) {
                problems.push(format!(
                    "ai.backend.endpoint-ports {endpoints:?} has an empty item"
                ));
            }
            for name in endpoints.split(',').filter(|name| !name.is_empty()) {
                match service_ports.iter().find(|port| port.name == name) {
                    None => problems.push(format!(
                        "ai.backend.endpoint-ports contains an undefined service port: {name}"
                    )),
                    Some(port) if port.protocol != "preopen" => problems.push(format!(
                        "the endpoint port {name} must be a preopen service port"
                    )),
                    Some(_) => {}
                }
            }
        }
        text("ai.backend.model-path", &mut problems);
        if text("ai.backend.model-format", &mut problems).is_some_and(|value| value.is_empty()) {
            problems.push("ai.backend.model-format is empty".to_owned());
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// The `resources` column: `cpu` and `mem` minimums by default (1 core, 1 GiB), then each
/// `ai.backend.resource.min.SLOT` as `SLOT`'s minimum and each `ai.backend.resource.max.SLOT` as its
/// maximum (`null`: no maximum). A slot with only a maximum gets the minimum "0".
pub(crate) fn resources(labels: &Map<String, Value>) -> Value {
    let mut slots = Map::new();
    slots.insert("cpu".into(), json!({"min": "1", "max": null}));
    slots.insert("mem".into(), json!({"min": "1g", "max": null}));
    for (key, value) in labels {
        if let (Some(slot), Some(min)) = (key.strip_prefix(RESOURCE_MIN), value.as_str()) {
            slots.insert(slot.to_owned(), json!({"min": min, "max": null}));
        }
    }
    for (key, value) in labels {
        if let (Some(slot), Some(max)) = (key.strip_prefix(RESOURCE_MAX), value.as_str()) {
            let entry = slots
                .entry(slot.to_owned())
                .or_insert_with(|| json!({"min": "0", "max": null}));
            entry["max"] = Value::String(max.to_owned());
        }
    }
    Value::Object(slots)
}

/// The label `ai.backend.accelerators` when it is not empty.
pub(crate) fn accelerators(labels: &Map<String, Value>) -> Option<String> {
    labels
        .get("ai.backend.accelerators")
        .and_then(Value::as_str)
        .filter(|accelerators| !accelerators.is_empty())
        .map(str::to_owned)
}

/// One entry of `ai.backend.service-ports`.
#[derive(Debug, PartialEq)]
struct ServicePort {
    name: String,
    protocol: String,
}

/// `name:protocol:port,...` as the reference reads the comma-split label: items that do not have
/// that form are ignored, `pty` items are dropped, and the protocols and ports must be valid.
fn service_ports(label: &str) -> Result<Vec<ServicePort>, String> {
    let mut ports = Vec::new();
    let mut used = Vec::new();
    for item in label.split(',') {
        let mut pieces = item.splitn(3, ':');
        let (Some(name), Some(protocol), Some(port)) =
            (pieces.next(), pieces.next(), pieces.next())
        else {
            continue;
        };
        let word = |text: &str, extra: char| {
            !text.is_empty()
                && text
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == extra)
        };
        let number = port
            .strip_prefix('[')
            .and_then(|p| p.strip_suffix(']'))
            .unwrap_or(port);
        if !word(name, '-')
            || !word(protocol, '_')
            || number.is_empty()
            || !number.chars().all(|c| c.is_ascii_digit())
        {
            continue;
        }
        if protocol == "pty" {
            continue;
        }
        if !["tcp", "http", "preopen"].contains(&protocol) {
            return Err(format!("unsupported service port protocol: {protocol}"));
        }
        let number: u64 = number.parse().unwrap_or(u64::MAX);
        if used.contains(&number) {
            return Err(format!("the port {number} is used by two service ports"));
        }
        if number <= 1024 {
            return Err(format!(
                "the service port {number} must be larger than 1024 to run without root privileges"
            ));
        }
        if number >= 65535 {
            return Err(format!(
                "the service port {number} must be smaller than 65535"
            ));
        }
        if RESERVED_PORTS.contains(&number) {
            return Err(format!(
                "the service port {number} is reserved (2000 to 2003, 2200 and 7681 are for internal use)"
            ));
        }
        used.push(number);
        ports.push(ServicePort {
            name: name.to_owned(),
            protocol: protocol.to_owned(),
        });
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Map<String, Value> {
        pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), Value::String((*value).to_owned())))
            .collect()
    }

    const KERNEL: [(&str, &str); 5] = [
        ("ai.backend.kernelspec", "1"),
        ("ai.backend.features", "batch query uid-match"),
        ("ai.backend.base-distro", "ubuntu22.04"),
        ("ai.backend.runtime-type", "python"),
        ("ai.backend.runtime-path", "/usr/bin/python3"),
    ];

    fn check_with(extra: &[(&str, &str)]) -> Result<(), String> {
        let mut all = labels(&KERNEL);
        all.extend(labels(extra));
        check(&all)
    }

    #[test]
    fn a_kernel_image_passes() {
        assert_eq!(
            check_with(&[(
                "ai.backend.service-ports",
                "jupyter:http:8081,ttyd:pty:7681"
            )]),
            Ok(())
        );
    }

    #[test]
    fn missing_and_bad_labels_are_all_named() {
        assert_eq!(
            check(&labels(&[("maintainer", "someone")])),
            Err("no ai.backend.kernelspec label; no ai.backend.features label; no ai.backend.base-distro label; \
                 no ai.backend.runtime-type label; no ai.backend.runtime-path label"
                .to_owned())
        );
        assert_eq!(
            check_with(&[("ai.backend.kernelspec", "2")]),
            Err("ai.backend.kernelspec is 2; this manager runs kernel spec 1".to_owned())
        );
        assert_eq!(
            check_with(&[("ai.backend.role", "BATCH")]),
            Err("ai.backend.role is \"BATCH\"; expected COMPUTE, INFERENCE or SYSTEM".to_owned())
        );
        assert_eq!(
            check_with(&[("ai.backend.service-ports", "web:http:80")]),
            Err("ai.backend.service-ports: the service port 80 must be larger than 1024 to run without root privileges".to_owned())
        );
        assert_eq!(
            check_with(&[("ai.backend.service-ports", "a:http:8080,b:tcp:8080")]),
            Err("ai.backend.service-ports: the port 8080 is used by two service ports".to_owned())
        );
        assert_eq!(
            check_with(&[("ai.backend.service-ports", "a:udp:8080")]),
            Err("ai.backend.service-ports: unsupported service port protocol: udp".to_owned())
        );
    }

    #[test]
    fn inference_images_need_preopen_endpoint_ports() {
        let inference = [
            ("ai.backend.role", "INFERENCE"),
            ("ai.backend.service-ports", "api:preopen:8000,ui:http:8080"),
            ("ai.backend.model-path", "/models"),
            ("ai.backend.model-format", "onnx"),
        ];
        let mut good = inference.to_vec();
        good.push(("ai.backend.endpoint-ports", "api"));
        assert_eq!(check_with(&good), Ok(()));
        let mut http = inference.to_vec();
        http.push(("ai.backend.endpoint-ports", "ui,missing"));
        assert_eq!(
            check_with(&http),
            Err("the endpoint port ui must be a preopen service port; \
                 ai.backend.endpoint-ports contains an undefined service port: missing"
                .to_owned())
        );
    }

    #[test]
    fn resources_take_min_and_max_labels() {
        let found = resources(&labels(&[
            ("ai.backend.resource.min.cpu", "2"),
            ("ai.backend.resource.min.cuda.shares", "0.5"),
            ("ai.backend.resource.max.cuda.shares", "4"),
            ("ai.backend.resource.max.mem", "64g"),
        ]));
        assert_eq!(
            found,
            json!({
                "cpu": {"min": "2", "max": null},
                "mem": {"min": "1g", "max": "64g"},
                "cuda.shares": {"min": "0.5", "max": "4"},
            })
        );
    }
}
