use bai_db_models::entities::enums::SessionType;
use bai_etcd_store::{ConfigNode, ConfigTree};
use chrono::{TimeZone, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

use super::*;

fn known() -> KnownSlots {
    let mut configured = ConfigTree::new();
    configured.insert(
        "cuda.device".to_owned(),
        ConfigNode::Value("count".to_owned()),
    );
    KnownSlots::from_configured(configured)
}

fn pairs(value: Value) -> Vec<(String, Value)> {
    value
        .as_object()
        .expect("an object")
        .iter()
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

fn texts(slots: &Slots) -> Vec<(String, String)> {
    slots
        .iter()
        .map(|(slot, amount)| (slot.to_owned(), amount.to_string()))
        .collect()
}

fn text_pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

#[test]
fn user_input_reads_sizes_for_bytes_and_decimals_for_counts() {
    let slots = slots_from_user_input(
        &pairs(json!({"cpu": "1.23456", "mem": "1g", "cuda.device": 2})),
        &known(),
    )
    .unwrap();
    assert_eq!(
        texts(&slots),
        text_pairs(&[
            ("cpu", "1.235"),
            ("cuda.device", "2"),
            ("mem", "1073741824")
        ])
    );
    // Missing known slots become zeros; null amounts are skipped.
    let slots = slots_from_user_input(&pairs(json!({"cpu": 2, "mem": null})), &known()).unwrap();
    assert_eq!(
        texts(&slots),
        text_pairs(&[("cpu", "2"), ("mem", "0"), ("cuda.device", "0")])
    );
    assert_eq!(
        slots_from_user_input(&pairs(json!({"gpu": "1"})), &known()).unwrap_err(),
        "Unknown slot type: 'gpu'"
    );
    assert_eq!(
        slots_from_user_input(&pairs(json!({"shmem": "1g"})), &known()).unwrap_err(),
        "Unknown slot type: 'shmem' (Put it at the 'resource_opts' field in API, or use '--resource-opts shmem=...' in CLI)"
    );
    assert_eq!(
        slots_from_user_input(&pairs(json!({"mem": "lots"})), &known()).unwrap_err(),
        "Cannot convert the slot 'mem' to decimal: 'lots'"
    );
    assert_eq!(
        slots_from_user_input(&pairs(json!({"cpu": "x"})), &known()).unwrap_err(),
        "Cannot convert the slot 'cpu' to decimal: 'x'"
    );
}

#[test]
fn mount_aliases_follow_the_reference() {
    let map = |items: &[(&str, &str)]| -> Vec<(String, String)> {
        items
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    };
    assert_eq!(check_mount_aliases(&map(&[("a", "/home/work/x")])), Ok(()));
    let error = |items| check_mount_aliases(&map(items)).unwrap_err().to_string();
    assert_eq!(
        error(&[("a", "x"), ("b", "x")]),
        "Duplicate alias folder name exists."
    );
    assert_eq!(
        error(&[("a", "/home/work/")]),
        "Alias name cannot be empty."
    );
    assert_eq!(
        error(&[("a", ".bashrc")]),
        ".bashrc is reserved for internal path."
    );
    assert_eq!(
        error(&[("a", "/tmp")]),
        "/tmp is reserved for internal path."
    );
    assert_eq!(
        error(&[("a", "b"), ("b", "c")]),
        "Alias name cannot be set to an existing folder name: b"
    );
}

fn resources<'a>(
    requested: Option<&'a [(String, Value)]>,
    opts: &'a Map<String, Value>,
    labels: &'a Value,
    ranges: &'a Value,
    known: &'a KnownSlots,
) -> KernelResourceInput<'a> {
    KernelResourceInput {
        resources: requested,
        resource_opts: opts,
        image_labels: labels,
        image_resources: ranges,
        known,
    }
}

#[test]
fn kernel_resources_fill_intrinsic_slots_and_add_shared_memory() {
    let known = known();
    let opts = Map::new();
    let labels = json!({});
    let ranges = json!({"cpu": {"min": "1", "max": null}, "mem": {"min": "256m", "max": null}});
    let requested = pairs(json!({"cpu": "2"}));
    let planned =
        kernel_resources(resources(Some(&requested), &opts, &labels, &ranges, &known)).unwrap();
    // mem: the image minimum plus the default 64m of shared memory.
    assert_eq!(
        texts(&planned.requested),
        text_pairs(&[("cpu", "2"), ("mem", "335544320"), ("cuda.device", "0")])
    );
    assert_eq!(
        planned.resource_opts,
        json!({"shmem": 67108864}).as_object().unwrap().clone()
    );

    // The image label chooses the shared memory when the request does not.
    let labels = json!({"ai.backend.resource.preferred.shmem": "1g"});
    let requested = pairs(json!({"cpu": "1", "mem": "1g"}));
    let error = kernel_resources(resources(
        Some(&requested),
        &opts,
        &labels,
        &json!({}),
        &known,
    ))
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "Shared memory should be less than the main memory. (s:1 GiB, m:1 GiB)"
    );
    let requested = pairs(json!({"cpu": "1", "mem": "512m"}));
    let error = kernel_resources(resources(
        Some(&requested),
        &opts,
        &labels,
        &json!({}),
        &known,
    ))
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "Your resource request is smaller than the minimum required by the image. (cpu=0 mem=1g cuda.device=0)"
    );
    let mut opts = Map::new();
    opts.insert("shmem".to_owned(), json!("1g"));
    let requested = pairs(json!({"cpu": "1", "mem": "2g"}));
    let planned = kernel_resources(resources(
        Some(&requested),
        &opts,
        &labels,
        &json!({}),
        &known,
    ))
    .unwrap();
    assert_eq!(planned.resource_opts["shmem"], json!(1073741824));
}

#[test]
fn kernel_resources_check_minimum_maximum_and_shared_memory() {
    let known = known();
    let opts = Map::new();
    let labels = json!({});
    let ranges = json!({"cpu": {"min": "1", "max": "4"}, "mem": {"min": "1g", "max": "8g"}});
    let check = |requested: Value| {
        let requested = pairs(requested);
        kernel_resources(resources(Some(&requested), &opts, &labels, &ranges, &known))
            .map(|planned| texts(&planned.requested))
            .map_err(|error| error.to_string())
    };
    assert_eq!(
        check(json!({"cpu": "8", "mem": "2g"})).unwrap_err(),
        "Your resource request is larger than the maximum allowed by the image. (cpu=4 mem=8g cuda.device=Infinity)"
    );
    // Below the minimum in one slot only is refused too (the reference would let it through).
    assert_eq!(
        check(json!({"cpu": "2", "mem": "512m"})).unwrap_err(),
        "Your resource request is smaller than the minimum required by the image. (cpu=1 mem=1.06g cuda.device=0)"
    );
    assert!(check(json!({"cpu": "2", "mem": "2g"})).is_ok());

    let opts = json!({"shmem": "2g"}).as_object().unwrap().clone();
    let requested = pairs(json!({"cpu": "1", "mem": "2g"}));
    let error = kernel_resources(resources(
        Some(&requested),
        &opts,
        &labels,
        &json!({}),
        &known,
    ))
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "Shared memory should be less than the main memory. (s:2 GiB, m:2 GiB)"
    );
}

#[test]
fn binary_sizes_are_spelled_as_python_does() {
    assert_eq!(binary_size_short(Decimal::from(67108864)), "64m");
    assert_eq!(binary_size_short(Decimal::from(1610612736)), "1.5g");
    assert_eq!(binary_size_short(Decimal::from(1000)), "1000");
    assert_eq!(
        binary_size_text(SlotAmount::from(67108864)),
        "64 MiB".to_owned()
    );
    assert_eq!(binary_size_text(SlotAmount::from(1)), "1 byte");
    assert_eq!(binary_size_text(SlotAmount::from(100)), "100 bytes");
    assert_eq!(binary_size_text(SlotAmount::from(1_500_000_000)), "1.4 GiB");
}

#[test]
fn service_ports_and_preopen_ports() {
    let ports = parse_service_ports(
        "jupyter:http:8080,ttyd:http:7682,vscode:http:[8180,8181],term:pty:8090",
        "vscode",
    )
    .unwrap();
    assert_eq!(
        ports
            .iter()
            .map(|port| (
                port.name.as_str(),
                port.container_ports.clone(),
                port.is_inference
            ))
            .collect::<Vec<_>>(),
        [
            ("jupyter", vec![8080], false),
            ("ttyd", vec![7682], false),
            ("vscode", vec![8180, 8181], true)
        ]
    );
    assert_eq!(parse_service_ports("", ""), Ok(vec![]));
    assert_eq!(
        parse_service_ports("a:http:80", "").unwrap_err(),
        "The service port number 80 must be larger than 1024 to run without the root privilege."
    );
    assert_eq!(
        parse_service_ports("a:udp:8080", "").unwrap_err(),
        "Unsupported service port protocol: udp"
    );
    assert_eq!(
        parse_service_ports("nonsense", "").unwrap_err(),
        "Invalid service-ports format"
    );
    assert_eq!(
        parse_service_ports("a:http:8080,b:tcp:8080", "").unwrap_err(),
        "The port 8080 is already used by another service port."
    );
    assert_eq!(check_preopen_ports(&[9000], &ports), Ok(()));
    assert_eq!(
        check_preopen_ports(&[2200], &ports)
            .unwrap_err()
            .to_string(),
        "Port 2000, 2001, 2200 and 7681 are reserved for internal use"
    );
    assert_eq!(
        check_preopen_ports(&[8181], &ports)
            .unwrap_err()
            .to_string(),
        "Preopen port allocation cannot overlap with service port predefined by image"
    );
}

#[test]
fn scaling_group_selection_follows_check_scaling_group() {
    let candidate = |name: &str, is_public, types: &[&str]| ScalingGroupCandidate {
        name: name.to_owned(),
        is_public,
        allowed_session_types: types.iter().map(|t| (*t).to_owned()).collect(),
    };
    let candidates = [
        candidate("a", true, &["batch"]),
        candidate("b", true, &["interactive", "batch"]),
        candidate("private", false, &["system"]),
    ];
    let select = |requested, session_type, public_only| {
        select_scaling_group(&candidates, requested, session_type, public_only)
            .map_err(|error| error.to_string())
    };
    assert_eq!(
        select(None, SessionType::Interactive, true),
        Ok("b".to_owned())
    );
    assert_eq!(select(None, SessionType::Batch, true), Ok("a".to_owned()));
    assert_eq!(
        select(None, SessionType::Inference, true),
        Err("No scaling groups accept the session type 'inference'.".to_owned())
    );
    assert_eq!(
        select(Some("a"), SessionType::Interactive, true),
        Err("The scaling group 'a' does not accept the session type 'interactive'. ".to_owned())
    );
    assert_eq!(
        select(Some("private"), SessionType::System, true),
        Err("The scaling group 'private' does not exist or you do not have access to the scaling group 'private'.".to_owned())
    );
    assert_eq!(
        select(Some("private"), SessionType::System, false),
        Ok("private".to_owned())
    );
    assert_eq!(
        select_scaling_group(&[], None, SessionType::Interactive, true)
            .unwrap_err()
            .to_string(),
        "You have no scaling groups allowed to use."
    );
    assert_eq!(
        ScalingGroupCandidate::allowed_session_types(&json!({})),
        ["interactive", "batch"]
    );
}

#[test]
fn image_roles_and_starts_at() {
    assert_eq!(
        check_image_role(SessionType::Interactive, Some("INFERENCE"), "stable/vllm")
            .unwrap_err()
            .to_string(),
        "Cannot create interactive session with the given image. (img: stable/vllm, img role: INFERENCE)"
    );
    assert!(check_image_role(SessionType::Inference, Some("INFERENCE"), "x").is_ok());
    assert!(check_image_role(SessionType::Batch, None, "x").is_ok());

    let now = Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap();
    let at = |text| parse_starts_at(text, now).map(|time| time.to_rfc3339());
    assert_eq!(at("1h"), Ok("2024-05-01T11:00:00+00:00".to_owned()));
    assert_eq!(at("1d 30min"), Ok("2024-05-02T10:30:00+00:00".to_owned()));
    assert_eq!(at("-1day"), Ok("2024-04-30T10:00:00+00:00".to_owned()));
    assert_eq!(at("300"), Ok("2024-05-01T10:05:00+00:00".to_owned()));
    assert_eq!(
        at("2024-06-01T12:00:00+09:00"),
        Ok("2024-06-01T03:00:00+00:00".to_owned())
    );
    assert_eq!(at("2024-06-01"), Ok("2024-06-01T00:00:00+00:00".to_owned()));
    assert_eq!(
        at("tomorrow").unwrap_err().to_string(),
        "Invalid time expression"
    );
}

#[test]
fn cluster_kernels_replicate_the_main_kernel() {
    let kernels = cluster_kernels(3);
    assert_eq!(
        kernels
            .iter()
            .map(|k| (
                k.cluster_role,
                k.cluster_idx,
                k.local_rank,
                k.cluster_hostname.as_str()
            ))
            .collect::<Vec<_>>(),
        [
            ("main", 1, 0, "main1"),
            ("sub", 1, 1, "sub1"),
            ("sub", 2, 2, "sub2")
        ]
    );
    assert_eq!(cluster_kernels(1).len(), 1);
    let per_kernel =
        slots_from_user_input(&pairs(json!({"cpu": "1.5", "mem": "1g"})), &known()).unwrap();
    assert_eq!(
        texts(&session_requested(&per_kernel, 2)),
        text_pairs(&[("cpu", "3.0"), ("mem", "2147483648"), ("cuda.device", "0")])
    );
}

#[test]
fn python_reprs() {
    assert_eq!(py_repr_str("it's"), "\"it's\"");
    assert_eq!(
        py_repr(&json!([1, "a", null, true])),
        "[1, 'a', None, True]"
    );
}
