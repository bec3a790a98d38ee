//! The pure rules of enqueueing a session (the reference's `create_session` and `enqueue_session`
//! in `registry.py`): resources from user input (`ResourceSlot.from_user_input`), an image's slot
//! ranges (`get_slot_ranges`), shared memory, the minimum/maximum checks, service ports and
//! preopen ports, `mount_map` aliases, the resource group a session may use
//! (`check_scaling_group`), `starts_at`, and the kernels of a cluster session.
//!
//! Nothing here reads a store: the caller loads the rows and passes the values in. Every refusal
//! is an [`EnqueueError`] whose text is the reference's message, word for word.

use bai_config::{BinarySizeValue, parse_binary_size};
use bai_db_models::entities::enums::SessionType;
use bai_db_models::entities::scaling_groups;
use bai_etcd_store::ConfigNode;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde_json::{Map, Value};

use crate::slots::{KnownSlots, SlotAmount, Slots};

/// The cluster role of a session's first kernel (the reference's `DEFAULT_ROLE`).
pub const MAIN_ROLE: &str = "main";
/// The cluster role of the other kernels of a cluster session.
pub const SUB_ROLE: &str = "sub";
/// Container ports the agent keeps for itself; no preopen port may use them.
pub const RESERVED_PREOPEN_PORTS: [i64; 4] = [2000, 2001, 2200, 7681];
/// The slots the manager itself knows; missing or zero amounts of these are filled from the
/// image's minimum.
const INTRINSIC_SLOTS: [&str; 2] = ["cpu", "mem"];
/// The shared memory of a kernel when neither the request nor the image says.
const DEFAULT_SHMEM: &str = "64m";

/// Why a session cannot be enqueued. The text is the reference's message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EnqueueError {
    /// A request the reference refuses with 400 `invalid-api-params`.
    #[error("{0}")]
    InvalidParameters(String),
    /// More containers than the keypair's policy allows (412 `quota-exceeded`).
    #[error("{0}")]
    QuotaExceeded(String),
    /// No resource group the owner may use takes the session (404, "No such scaling group.").
    #[error("{0}")]
    ScalingGroupNotFound(String),
}

fn invalid(message: impl Into<String>) -> EnqueueError {
    EnqueueError::InvalidParameters(message.into())
}

// ----- mount_map -----

/// The reference's checks of `mount_map` aliases (`create_session`), pairs in request order.
pub fn check_mount_aliases(mount_map: &[(String, String)]) -> Result<(), EnqueueError> {
    let aliases: Vec<&str> = mount_map.iter().map(|(_, alias)| alias.as_str()).collect();
    let mut unique = aliases.clone();
    unique.sort_unstable();
    unique.dedup();
    if unique.len() != aliases.len() {
        return Err(invalid("Duplicate alias folder name exists."));
    }
    for alias in aliases {
        let alias = alias.strip_prefix("/home/work/").unwrap_or(alias);
        if alias.is_empty() {
            return Err(invalid("Alias name cannot be empty."));
        }
        if !is_allowed_vfolder_name(alias) {
            return Err(invalid(format!("{alias} is reserved for internal path.")));
        }
        if mount_map.iter().any(|(folder, _)| folder == alias) {
            return Err(invalid(format!(
                "Alias name cannot be set to an existing folder name: {alias}"
            )));
        }
    }
    Ok(())
}

/// `verify_vfolder_name`: not a reserved path and no shell rc/profile file.
pub fn is_allowed_vfolder_name(name: &str) -> bool {
    const RESERVED: [&str; 23] = [
        ".terminfo",
        ".jupyter",
        ".tmux.conf",
        ".ssh",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/lib",
        "/lib64",
        "/media",
        "/mnt",
        "/opt",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/srv",
        "/sys",
        "/tmp",
        "/usr",
        "/var",
        "/home",
    ];
    if RESERVED.contains(&name) {
        return false;
    }
    // `^\.[a-z0-9]+rc$` and `^\.[a-z0-9]+_profile$`
    let dotted = |suffix: &str| {
        name.strip_prefix('.')
            .and_then(|rest| rest.strip_suffix(suffix))
            .is_some_and(|middle| {
                !middle.is_empty()
                    && middle
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            })
    };
    !(dotted("rc") || dotted("_profile"))
}

// ----- resources -----

/// `ResourceSlot.from_user_input(resources, known)`: every non-null amount read in its slot's
/// unit (`bytes`: an integer or a binary size such as `"1g"`; otherwise a decimal rounded to three
/// places), then a zero for every known slot not given. The error is the reference's `ValueError`
/// text (`Unknown slot type: 'x'`, `Cannot convert the slot 'mem' to decimal: 'abc'`).
pub fn slots_from_user_input(
    resources: &[(String, Value)],
    known: &KnownSlots,
) -> Result<Slots, String> {
    let mut slots = Slots::default();
    for (slot, value) in resources {
        if value.is_null() {
            continue;
        }
        let Some(unit) = known
            .entries()
            .find(|(name, _)| name == slot)
            .map(|(_, u)| u)
        else {
            let guide = if slot == "shmem" {
                " (Put it at the 'resource_opts' field in API, or use '--resource-opts shmem=...' in CLI)"
            } else {
                ""
            };
            return Err(format!("Unknown slot type: {}{guide}", py_repr_str(slot)));
        };
        let amount = if unit_is_bytes(unit) {
            bytes_amount(value)
        } else {
            count_amount(value)
        }
        .ok_or_else(|| {
            format!(
                "Cannot convert the slot {} to decimal: {}",
                py_repr_str(slot),
                py_repr(value)
            )
        })?;
        slots.set(slot, amount);
    }
    for slot in known.names() {
        if !slots.contains(slot) {
            slots.set(slot, SlotAmount::from(0i64));
        }
    }
    Ok(slots)
}

fn unit_is_bytes(unit: &ConfigNode) -> bool {
    unit.as_value() == Some("bytes")
}

fn bytes_amount(value: &Value) -> Option<SlotAmount> {
    match value {
        Value::Bool(flag) => Some(SlotAmount::from(i64::from(*flag))),
        Value::Number(number) => {
            if let Some(int) = number.as_i64() {
                Some(SlotAmount::from(int))
            } else {
                number
                    .as_u64()
                    .map(|int| SlotAmount::Finite(Decimal::from(int)))
            }
        }
        Value::String(text) => binary_size(text),
        _ => None,
    }
}

/// `BinarySize.from_str(text)` as a slot amount.
fn binary_size(text: &str) -> Option<SlotAmount> {
    match parse_binary_size(text).ok()? {
        BinarySizeValue::Bytes(bytes) => Decimal::try_from_i128_with_scale(bytes, 0)
            .ok()
            .map(SlotAmount::Finite),
        BinarySizeValue::Infinite => Some(SlotAmount::Infinity),
    }
}

fn count_amount(value: &Value) -> Option<SlotAmount> {
    let amount = match value {
        Value::Bool(flag) => SlotAmount::from(i64::from(*flag)),
        Value::Number(number) => {
            if let Some(int) = number.as_i64() {
                SlotAmount::from(int)
            } else if let Some(int) = number.as_u64() {
                SlotAmount::Finite(Decimal::from(int))
            } else {
                SlotAmount::Finite(Decimal::try_from(number.as_f64()?).ok()?)
            }
        }
        Value::String(text) => text.parse::<SlotAmount>().ok()?,
        _ => return None,
    };
    Some(crate::slots::normalize_count(amount))
}

/// An image's resource ranges (`ImageRow.get_slot_ranges`): from the `images.resources` column
/// (`{"slot": {"min": "1", "max": null}}`), known slots only, read in each slot's unit; every
/// known slot the image does not name is `0` to infinity. Amounts that cannot be read count as
/// unset.
pub fn image_slot_ranges(resources: &Value, known: &KnownSlots) -> (Slots, Slots) {
    let mut min = Slots::default();
    let mut max = Slots::default();
    if let Value::Object(ranges) = resources {
        for (slot, range) in jsonb_order(ranges) {
            let Some(unit) = known
                .entries()
                .find(|(name, _)| *name == slot)
                .map(|(_, u)| u)
            else {
                continue;
            };
            let read = |bound: &str| -> Option<SlotAmount> {
                let value = range.get(bound).filter(|value| !value.is_null())?;
                if unit_is_bytes(unit) {
                    bytes_amount(value)
                } else {
                    match value {
                        Value::String(text) => text.parse().ok(),
                        other => count_amount(other),
                    }
                }
            };
            min.set(slot, read("min").unwrap_or(SlotAmount::from(0i64)));
            max.set(slot, read("max").unwrap_or(SlotAmount::Infinity));
        }
    }
    for slot in known.names() {
        if !min.contains(slot) {
            min.set(slot, SlotAmount::from(0i64));
        }
        if !max.contains(slot) {
            max.set(slot, SlotAmount::Infinity);
        }
    }
    (min, max)
}

/// The keys of a `jsonb` object in the order PostgreSQL keeps them: shorter keys first, then by
/// bytes.
fn jsonb_order(object: &Map<String, Value>) -> Vec<(&str, &Value)> {
    let mut entries: Vec<(&str, &Value)> = object
        .iter()
        .map(|(key, value)| (key.as_str(), value))
        .collect();
    entries.sort_by(|(a, _), (b, _)| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
    entries
}

// ----- one kernel's slots -----

/// What decides a kernel's resources.
#[derive(Clone, Copy, Debug)]
pub struct KernelResourceInput<'a> {
    /// `config.resources` in request order; `None` when the request has none (legacy clients).
    pub resources: Option<&'a [(String, Value)]>,
    /// `config.resource_opts`, as given.
    pub resource_opts: &'a Map<String, Value>,
    /// The image row's `labels`.
    pub image_labels: &'a Value,
    /// The image row's `resources` column.
    pub image_resources: &'a Value,
    pub known: &'a KnownSlots,
}

/// A kernel's resources once checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelResources {
    /// What the kernel requests (and, while pending, occupies): every known slot.
    pub requested: Slots,
    /// `resource_opts` with `shmem` in bytes.
    pub resource_opts: Map<String, Value>,
}

/// The resource part of `enqueue_session` for one kernel: shared memory (the request's
/// `resource_opts.shmem`, else the image label `ai.backend.resource.preferred.shmem`, else 64m)
/// added to the image's minimum memory, the request read against the known slots with `cpu`/`mem`
/// filled from the image minimum when zero, then the minimum, maximum and shared-memory checks.
///
/// Unlike the reference, a request below the image minimum in *any* slot is refused: the
/// reference's `ResourceSlot.__gt__` refuses only when every slot is at or below the minimum.
pub fn kernel_resources(input: KernelResourceInput<'_>) -> Result<KernelResources, EnqueueError> {
    let known = input.known;
    let shmem_value = match input.resource_opts.get("shmem").filter(|v| !v.is_null()) {
        Some(value) => value.clone(),
        None => input
            .image_labels
            .get("ai.backend.resource.preferred.shmem")
            .cloned()
            .unwrap_or_else(|| Value::String(DEFAULT_SHMEM.to_owned())),
    };
    let shmem = match bytes_amount(&shmem_value) {
        Some(SlotAmount::Finite(bytes)) if !bytes.is_sign_negative() => bytes,
        _ => {
            return Err(invalid(format!(
                "Invalid shared memory size: {}",
                py_repr(&shmem_value)
            )));
        }
    };
    let mut resource_opts = input.resource_opts.clone();
    resource_opts.insert(
        "shmem".to_owned(),
        Value::Number(
            u64::try_from(shmem.mantissa())
                .map(serde_json::Number::from)
                .unwrap_or_else(|_| serde_json::Number::from(0u64)),
        ),
    );

    let (mut min, mut max) = image_slot_ranges(input.image_resources, known);
    let min_mem = min.get("mem").unwrap_or(SlotAmount::from(0i64));
    min.set("mem", add(min_mem, SlotAmount::Finite(shmem)));

    let mut requested = match input.resources {
        Some(resources) => {
            for (slot, _) in resources {
                if !known.contains(slot) {
                    return Err(invalid(format!("Unknown requested resource slot: {slot}")));
                }
            }
            let mut requested = slots_from_user_input(resources, known).map_err(|_| {
                invalid("Your resource request has resource type(s) not supported by the image.")
            })?;
            for slot in INTRINSIC_SLOTS {
                if requested.get(slot) == Some(SlotAmount::from(0i64)) {
                    requested.set(slot, min.get(slot).unwrap_or(SlotAmount::from(0i64)));
                }
            }
            requested
        }
        None => {
            let mut requested = known.zeros();
            requested.set("cpu", min.get("cpu").unwrap_or(SlotAmount::from(0i64)));
            requested.set("mem", min.get("mem").unwrap_or(SlotAmount::from(0i64)));
            requested
        }
    };

    let humanized = |slots: &Slots| {
        slots
            .iter()
            .map(|(slot, amount)| format!("{slot}={}", humanize_amount(amount, known, slot)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    min.sync_keys(&mut requested);
    if requested
        .iter()
        .any(|(slot, amount)| amount < min.get(slot).unwrap_or(SlotAmount::from(0i64)))
    {
        return Err(invalid(format!(
            "Your resource request is smaller than the minimum required by the image. ({})",
            humanized(&min)
        )));
    }
    if !max.covers(&mut requested) {
        return Err(invalid(format!(
            "Your resource request is larger than the maximum allowed by the image. ({})",
            humanized(&max)
        )));
    }
    let mem = requested.get("mem").unwrap_or(SlotAmount::from(0i64));
    if SlotAmount::Finite(shmem) >= mem {
        return Err(invalid(format!(
            "Shared memory should be less than the main memory. (s:{}, m:{})",
            binary_size_text(SlotAmount::Finite(shmem)),
            binary_size_text(mem)
        )));
    }
    Ok(KernelResources {
        requested,
        resource_opts,
    })
}

fn add(a: SlotAmount, b: SlotAmount) -> SlotAmount {
    match (a, b) {
        (SlotAmount::Finite(x), SlotAmount::Finite(y)) => x
            .checked_add(y)
            .map_or(SlotAmount::Infinity, SlotAmount::Finite),
        (SlotAmount::Finite(_), other) => other,
        (other, _) => other,
    }
}

/// `ResourceSlot._humanize_value`: bytes as `"{:s}"` of a `BinarySize` (`320m`), counts as plain
/// decimals, infinities as `Infinity`.
pub fn humanize_amount(amount: SlotAmount, known: &KnownSlots, slot: &str) -> String {
    let bytes = known
        .entries()
        .find(|(name, _)| *name == slot)
        .is_some_and(|(_, unit)| unit_is_bytes(unit));
    match amount {
        SlotAmount::Finite(value) if bytes => binary_size_short(value),
        other => other.to_string(),
    }
}

const SUFFIXES: [&str; 9] = ["", "k", "m", "g", "t", "p", "e", "z", "y"];

/// `BinarySize._preformat` and `_quantize`: the largest unit the value reaches and the value in
/// it (two places, trailing zeros dropped, or an integer).
fn scaled(bytes: Decimal) -> (String, usize) {
    let whole = bytes.trunc();
    let mut scale = whole;
    let mut index = 0;
    let step = Decimal::from(1024);
    while scale >= step && index + 1 < SUFFIXES.len() {
        scale = (scale / step).trunc();
        index += 1;
    }
    if index == 0 {
        return (whole.to_string(), 0);
    }
    let multiplier = Decimal::from_i128_with_scale(1i128 << (10 * index), 0);
    let value = bytes / multiplier;
    let text = if value == value.trunc() {
        value.trunc().to_string()
    } else {
        value
            .round_dp_with_strategy(2, RoundingStrategy::MidpointNearestEven)
            .normalize()
            .to_string()
    };
    (text, index)
}

/// `"{:s}".format(BinarySize(bytes))`: `64m`, `1.5g`, `1000`.
pub fn binary_size_short(bytes: Decimal) -> String {
    let (value, index) = scaled(bytes);
    format!("{value}{}", SUFFIXES[index])
}

/// `str(BinarySize(amount))`: `64 MiB`, `1.5 GiB`, `1 byte`, `100 bytes`.
pub fn binary_size_text(amount: SlotAmount) -> String {
    let SlotAmount::Finite(bytes) = amount else {
        return amount.to_string();
    };
    let (value, index) = scaled(bytes);
    match index {
        0 if bytes.trunc() == Decimal::ONE => "1 byte".to_owned(),
        0 => format!("{value} bytes"),
        _ => format!("{value} {}iB", SUFFIXES[index].to_uppercase()),
    }
}

/// The session's `requested_slots`: the sum of its kernels' (every kernel requests `per_kernel`).
pub fn session_requested(per_kernel: &Slots, kernels: usize) -> Slots {
    let mut total = Slots::default();
    for _ in 0..kernels {
        total.add_assign(&mut per_kernel.clone());
    }
    total
}

// ----- ports -----

/// One entry of an image's `ai.backend.service-ports` label.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub name: String,
    pub protocol: String,
    pub container_ports: Vec<i64>,
    pub is_inference: bool,
}

/// `parse_service_ports(service_ports_label, endpoint_ports_label)`: `name:proto:port` or
/// `name:proto:[p1,p2]`, comma separated; `pty` entries skipped. The error is the reference's
/// message.
pub fn parse_service_ports(label: &str, endpoint_label: &str) -> Result<Vec<ServicePort>, String> {
    let inference_apps: Vec<&str> = endpoint_label.split(',').collect();
    let mut items = Vec::new();
    let mut used = Vec::new();
    let mut rest = label;
    while !rest.is_empty() {
        let (name, protocol, ports, consumed) =
            match_service_port(rest).ok_or_else(|| "Invalid service-ports format".to_owned())?;
        rest = &rest[consumed..];
        if protocol == "pty" {
            continue;
        }
        if !matches!(protocol, "tcp" | "http" | "preopen") {
            return Err(format!("Unsupported service port protocol: {protocol}"));
        }
        for &port in &ports {
            if used.contains(&port) {
                return Err(format!(
                    "The port {port} is already used by another service port."
                ));
            }
            if port <= 1024 {
                return Err(format!(
                    "The service port number {port} must be larger than 1024 to run without the root privilege."
                ));
            }
            if port >= 65535 {
                return Err(format!(
                    "The service port number {port} must be smaller than 65535."
                ));
            }
            if [2000, 2001, 2002, 2003, 2200, 7681].contains(&port) {
                return Err(
                    "The service ports 2000 to 2003, 2200 and 7681 are reserved for internal use."
                        .to_owned(),
                );
            }
            used.push(port);
        }
        items.push(ServicePort {
            is_inference: inference_apps.contains(&name),
            name: name.to_owned(),
            protocol: protocol.to_owned(),
            container_ports: ports,
        });
    }
    Ok(items)
}

/// `^(?P<name>[\w-]+):(?P<proto>\w+):(?P<ports>\[\d+(?:,\d+)*\]|\d+)(?:,|$)` at the start of
/// `text`: name, protocol, ports and the length matched.
fn match_service_port(text: &str) -> Option<(&str, &str, Vec<i64>, usize)> {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    let name_end = text.find(|c: char| !(word(c) || c == '-'))?;
    if name_end == 0 || !text[name_end..].starts_with(':') {
        return None;
    }
    let after_name = name_end + 1;
    let proto_len = text[after_name..].find(|c: char| !word(c))?;
    if proto_len == 0 || !text[after_name + proto_len..].starts_with(':') {
        return None;
    }
    let proto = &text[after_name..after_name + proto_len];
    let ports_start = after_name + proto_len + 1;
    let tail = &text[ports_start..];
    let (ports_text, ports_len) = if let Some(inner) = tail.strip_prefix('[') {
        let close = inner.find(']')?;
        (&inner[..close], close + 2)
    } else {
        let digits = tail
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(tail.len());
        (&tail[..digits], digits)
    };
    let mut ports = Vec::new();
    for piece in ports_text.split(',') {
        if piece.is_empty() || !piece.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        ports.push(piece.parse::<i64>().ok()?);
    }
    let end = ports_start + ports_len;
    let consumed = match text[end..].chars().next() {
        None => end,
        Some(',') => end + 1,
        Some(_) => return None,
    };
    Some((&text[..name_end], proto, ports, consumed))
}

/// The preopen-port checks of `enqueue_session`: no reserved port, none that a service port of
/// the image uses.
pub fn check_preopen_ports(
    preopen_ports: &[i64],
    service_ports: &[ServicePort],
) -> Result<(), EnqueueError> {
    for port in preopen_ports {
        if RESERVED_PREOPEN_PORTS.contains(port) {
            return Err(invalid(
                "Port 2000, 2001, 2200 and 7681 are reserved for internal use",
            ));
        }
        if service_ports
            .iter()
            .any(|service| service.container_ports.contains(port))
        {
            return Err(invalid(
                "Preopen port allocation cannot overlap with service port predefined by image",
            ));
        }
    }
    Ok(())
}

// ----- session types, images, resource groups -----

/// `SessionTypes` values as clients spell them.
pub fn session_type_value(session_type: SessionType) -> &'static str {
    match session_type {
        SessionType::Interactive => "interactive",
        SessionType::Batch => "batch",
        SessionType::Inference => "inference",
        SessionType::System => "system",
    }
}

/// `ALLOWED_IMAGE_ROLES_FOR_SESSION_TYPE`: an image labelled `ai.backend.role` serves only its
/// session types.
pub fn check_image_role(
    session_type: SessionType,
    image_role: Option<&str>,
    image_name: &str,
) -> Result<(), EnqueueError> {
    let Some(role) = image_role else {
        return Ok(());
    };
    let allowed = match session_type {
        SessionType::Batch | SessionType::Interactive => "COMPUTE",
        SessionType::Inference => "INFERENCE",
        SessionType::System => "SYSTEM",
    };
    if role == allowed {
        return Ok(());
    }
    Err(invalid(format!(
        "Cannot create {} session with the given image. (img: {image_name}, img role: {role})",
        session_type_value(session_type)
    )))
}

/// A resource group the owner may use, as `check_scaling_group` looks at it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalingGroupCandidate {
    pub name: String,
    pub is_public: bool,
    /// `scheduler_opts.allowed_session_types` (`["interactive", "batch"]` when absent).
    pub allowed_session_types: Vec<String>,
}

impl ScalingGroupCandidate {
    /// `allowed_session_types` from a `scheduler_opts` column value.
    pub fn allowed_session_types(scheduler_opts: &Value) -> Vec<String> {
        match scheduler_opts.get("allowed_session_types") {
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_lowercase))
                .collect(),
            _ => vec!["interactive".to_owned(), "batch".to_owned()],
        }
    }
}

impl From<&scaling_groups::Model> for ScalingGroupCandidate {
    fn from(sgroup: &scaling_groups::Model) -> Self {
        ScalingGroupCandidate {
            name: sgroup.name.clone(),
            is_public: sgroup.is_public,
            allowed_session_types: ScalingGroupCandidate::allowed_session_types(
                &sgroup.scheduler_opts,
            ),
        }
    }
}

/// `check_scaling_group`: the requested resource group if the owner may use it and it takes the
/// session type, else the first allowed one that takes it. Only public groups count when
/// `public_only` (every session type but `system`).
pub fn select_scaling_group(
    candidates: &[ScalingGroupCandidate],
    requested: Option<&str>,
    session_type: SessionType,
    public_only: bool,
) -> Result<String, EnqueueError> {
    let candidates: Vec<&ScalingGroupCandidate> = candidates
        .iter()
        .filter(|candidate| !public_only || candidate.is_public)
        .collect();
    if candidates.is_empty() {
        return Err(EnqueueError::ScalingGroupNotFound(
            "You have no scaling groups allowed to use.".to_owned(),
        ));
    }
    let stype = session_type_value(session_type);
    let accepts = |candidate: &ScalingGroupCandidate| {
        candidate.allowed_session_types.iter().any(|t| t == stype)
    };
    match requested {
        None => candidates
            .iter()
            .find(|candidate| accepts(candidate))
            .map(|candidate| candidate.name.clone())
            .ok_or_else(|| {
                EnqueueError::ScalingGroupNotFound(format!(
                    "No scaling groups accept the session type '{stype}'."
                ))
            }),
        Some(name) => {
            let mut message = format!(
                "The scaling group '{name}' does not exist or you do not have access to the scaling group '{name}'."
            );
            for candidate in candidates {
                if candidate.name == name {
                    if accepts(candidate) {
                        return Ok(name.to_owned());
                    }
                    message = format!(
                        "The scaling group '{name}' does not accept the session type '{stype}'. "
                    );
                }
            }
            Err(EnqueueError::ScalingGroupNotFound(message))
        }
    }
}

// ----- starts_at -----

/// `starts_at` of a batch session: an ISO 8601 time (dateutil's `isoparse`; without an offset it
/// is UTC), else a duration from `now` (`str_to_timedelta`: `1h`, `30min`, `1d2h`, `-1day`, a bare
/// number of seconds).
pub fn parse_starts_at(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, EnqueueError> {
    if let Some(time) = parse_iso8601(text) {
        return Ok(time);
    }
    let delta = str_to_timedelta(text).ok_or_else(|| invalid("Invalid time expression"))?;
    now.checked_add_signed(delta)
        .ok_or_else(|| invalid("Invalid time expression"))
}

fn parse_iso8601(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M%:z",
        "%Y-%m-%dT%H:%M%z",
    ] {
        if let Ok(time) = DateTime::parse_from_str(text, format) {
            return Some(time.with_timezone(&Utc));
        }
    }
    if let Some(stripped) = text.strip_suffix('Z') {
        return parse_naive(stripped);
    }
    parse_naive(text)
}

fn parse_naive(text: &str) -> Option<DateTime<Utc>> {
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H",
        "%Y%m%dT%H%M%S",
    ] {
        if let Ok(time) = NaiveDateTime::parse_from_str(text, format) {
            return Some(time.and_utc());
        }
    }
    for format in ["%Y-%m-%d", "%Y%m%d"] {
        if let Ok(date) = NaiveDate::parse_from_str(text, format) {
            return date.and_hms_opt(0, 0, 0).map(|time| time.and_utc());
        }
    }
    None
}

/// `str_to_timedelta`: `[+-] [N(d|day|days)] [N(h|hr|hrs|hour|hours)] [N(m|min|mins|minute|minutes)]
/// [N(s|sec|secs|second|seconds)]`, whitespace between parts, at least one part; or a bare number
/// of seconds.
pub fn str_to_timedelta(text: &str) -> Option<TimeDelta> {
    const UNITS: [(&[&str], f64); 4] = [
        (&["days", "day", "d"], 86_400.0),
        (&["hours", "hour", "hrs", "hr", "h"], 3_600.0),
        (&["minutes", "minute", "mins", "min", "m"], 60.0),
        (&["seconds", "second", "secs", "sec", "s"], 1.0),
    ];
    let mut rest = text;
    let mut negative = false;
    if let Some(stripped) = rest.strip_prefix(['+', '-', '|']) {
        negative = rest.starts_with('-');
        rest = stripped;
    }
    rest = rest.trim_start();
    let mut seconds = 0.0;
    let mut any = false;
    for (names, factor) in UNITS {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number = &rest[..digits];
        if number.is_empty() || !is_plain_number(number) {
            continue;
        }
        let Some(name) = names.iter().find(|name| rest[digits..].starts_with(**name)) else {
            continue;
        };
        seconds += number.parse::<f64>().ok()? * factor;
        any = true;
        rest = rest[digits + name.len()..].trim_start();
    }
    if any && rest.is_empty() {
        let signed = if negative { -seconds } else { seconds };
        return TimeDelta::try_milliseconds((signed * 1000.0).round() as i64);
    }
    // A bare number is seconds (`timedelta(seconds=float(text))`).
    let seconds: f64 = text.trim().parse().ok()?;
    if !seconds.is_finite() {
        return None;
    }
    TimeDelta::try_milliseconds((seconds * 1000.0).round() as i64)
}

/// `\d+(\.\d+)?`
fn is_plain_number(text: &str) -> bool {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, "0"));
    !whole.is_empty()
        && !fraction.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit())
}

// ----- cluster kernels -----

/// Where one kernel of a session sits in its cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelPlacement {
    pub cluster_role: &'static str,
    pub cluster_idx: i32,
    pub local_rank: i32,
    pub cluster_hostname: String,
}

/// The kernels of a session of `cluster_size` containers, the main one first: `main1` (rank 0),
/// then `sub1`, `sub2`, ... (ranks 1, 2, ...), replicating the main kernel's configuration as the
/// reference does.
pub fn cluster_kernels(cluster_size: i32) -> Vec<KernelPlacement> {
    let mut kernels = vec![KernelPlacement {
        cluster_role: MAIN_ROLE,
        cluster_idx: 1,
        local_rank: 0,
        cluster_hostname: format!("{MAIN_ROLE}1"),
    }];
    for index in 1..cluster_size.max(1) {
        kernels.push(KernelPlacement {
            cluster_role: SUB_ROLE,
            cluster_idx: index,
            local_rank: index,
            cluster_hostname: format!("{SUB_ROLE}{index}"),
        });
    }
    kernels
}

// ----- Python spellings for messages -----

/// `repr(text)` of a Python `str`.
pub fn py_repr_str(text: &str) -> String {
    let quote = if text.contains('\'') && !text.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// `repr(value)` of a JSON value as Python holds it.
pub fn py_repr(value: &Value) -> String {
    match value {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => py_repr_str(text),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(py_repr).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(key, value)| format!("{}: {}", py_repr_str(key), py_repr(value)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

#[cfg(test)]
mod tests;
