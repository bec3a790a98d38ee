//! `/resource/usage/*` and `/resource/stats/*`: what kernels used, as the reference reports it.
//!
//! - `usage/month` (superadmin): one project's kernels alive during a calendar month of the
//!   configured time zone, per project with totals (`g_*`) and one `c_infos` entry per kernel.
//! - `usage/period` (superadmin): the kernels alive during up to 100 days, nested project →
//!   sessions → kernels, each level with its `total_usage`.
//! - `stats/user/month` (the caller's) and `stats/admin/month` (superadmin, everyone's): 2880
//!   fifteen-minute bins over the last 30 days of the kernels that terminated in them.
//!
//! The numbers come from the `kernels` rows and their statistics: the `last_stat` the manager kept
//! at termination, or, while it is empty, the live statistics agents keep in Redis. Python's sets
//! (agents, images, devices, mount hosts) are listed sorted, and Python dicts read from jsonb in
//! jsonb's key order (shorter keys first), so the same rows always give the same bytes.

use std::collections::BTreeSet;

use axum::extract::State;
use bai_db_models::entities::{ResourceSlot, SlotAmount};
use bai_db_models::queries::usage::{
    self as queries, Attribution, BinnedKernel, LocalPeriod, UsageKernel, UsageOrder,
};
use bai_pyjson::datetime::{str_datetime, str_datetime_or_none};
use bai_scheduler::enqueue::py_repr_str;
use chrono::{DateTime, Datelike, Duration, Months, NaiveDate, NaiveDateTime, SubsecRound, Utc};
use http::Method;
use sea_orm::prelude::{Decimal, Uuid};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::super::config::Ordered;
use super::super::{Access, Authenticated, Route, StatusGate};
use crate::context::ApiContext;
use crate::error::ApiError;
use crate::json::PyJson;
use crate::params::Params;

/// The longest period `usage/period` reports, in days.
const MAX_PERIOD_DAYS: i64 = 100;
/// The width of one bin of the monthly statistics, in seconds.
const BIN_SECONDS: f64 = 900.0;
/// How many bins the monthly statistics have: 30 days of 15 minutes.
const BIN_COUNT: usize = 2880;
/// How far back the monthly statistics reach.
const STATS_DAYS: i64 = 30;

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::GET,
            "/resource/usage/month",
            "resource.usage_per_month",
            usage_per_month,
        )
        .access(Access::SuperAdmin)
        .gate(StatusGate::ReadAllowed)
        .params::<MonthParams>()
        .summary(
            "The kernels of a project alive during a month of the configured time zone, with their allocated and used resources and the project's totals.",
        ),
        Route::new(
            Method::GET,
            "/resource/usage/period",
            "resource.usage_per_period",
            usage_per_period,
        )
        .access(Access::SuperAdmin)
        .gate(StatusGate::ReadAllowed)
        .params::<PeriodParams>()
        .summary(
            "The kernels alive during up to 100 days (of one project or all), per project, session and kernel, each with its total usage.",
        ),
        Route::new(
            Method::GET,
            "/resource/stats/user/month",
            "resource.user_month_stats",
            user_month_stats,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .summary(
            "Fifteen-minute bins over the last 30 days of the caller's kernels that terminated in them: sessions, allocated CPU, memory and GPU, I/O.",
        ),
        Route::new(
            Method::GET,
            "/resource/stats/admin/month",
            "resource.admin_month_stats",
            admin_month_stats,
        )
        .access(Access::SuperAdmin)
        .gate(StatusGate::ReadAllowed)
        .summary(
            "Fifteen-minute bins over the last 30 days of every kernel that terminated in them.",
        ),
    ]
}

// ----- parameters -----

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct MonthParams {
    /// The project (id) whose kernels are reported. The reference reads it from the query
    /// string, where only one value counts.
    #[serde(deserialize_with = "project_id")]
    #[schemars(with = "String", extend("format" = "uuid"))]
    group_ids: Uuid,
    /// The month, `YYYYMM`, in the configured time zone.
    #[serde(deserialize_with = "six_digits")]
    #[schemars(regex(pattern = r"^\d{6}"))]
    month: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct PeriodParams {
    /// Only kernels of this project (id); every project's when absent.
    #[serde(default, deserialize_with = "optional_project_id")]
    #[schemars(with = "Option<String>", extend("format" = "uuid"))]
    project_id: Option<Uuid>,
    /// The same as `project_id` (used when `project_id` is absent).
    #[serde(default, deserialize_with = "optional_project_id")]
    #[schemars(with = "Option<String>", extend("format" = "uuid"))]
    group_id: Option<Uuid>,
    /// The first day, `YYYYMMDD`, in the configured time zone.
    #[serde(deserialize_with = "eight_digits")]
    #[schemars(regex(pattern = r"^\d{8}$"))]
    start_date: String,
    /// The last day (included), `YYYYMMDD`; at most 100 days after `start_date`.
    #[serde(deserialize_with = "eight_digits")]
    #[schemars(regex(pattern = r"^\d{8}$"))]
    end_date: String,
}

/// A project id: a non-blank string that is a UUID (the reference passes any string on to the
/// database and fails there).
fn project_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Uuid, D::Error> {
    let text = crate::params::non_blank(deserializer)?;
    Uuid::parse_str(&text).map_err(|_| serde::de::Error::custom("cannot convert value to UUID"))
}

fn optional_project_id<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Uuid>, D::Error> {
    match Option::<String>::deserialize(deserializer)? {
        None => Ok(None),
        Some(text) if text.is_empty() => {
            Err(serde::de::Error::custom("blank value is not allowed"))
        }
        Some(text) => Uuid::parse_str(&text)
            .map(Some)
            .map_err(|_| serde::de::Error::custom("cannot convert value to UUID")),
    }
}

/// trafaret's `Regexp(r"^\d{6}")`: six ASCII digits first, anything after.
fn six_digits<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.len() >= 6 && text.as_bytes()[..6].iter().all(u8::is_ascii_digit) {
        Ok(text)
    } else {
        Err(serde::de::Error::custom(r"does not match pattern ^\d{6}"))
    }
}

/// trafaret's `Regexp(r"^\d{8}$")`: exactly eight ASCII digits.
fn eight_digits<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.len() == 8 && text.bytes().all(|byte| byte.is_ascii_digit()) {
        Ok(text)
    } else {
        Err(serde::de::Error::custom(r"does not match pattern ^\d{8}$"))
    }
}

/// The reference's answer to a date `strptime` refuses, or one beyond year 9999.
fn invalid_dates() -> ApiError {
    ApiError::invalid_params("Invalid date values")
}

/// `datetime.strptime(text, "%Y%m")` of six digits: a year from 1 and a month 01 to 12, and
/// nothing after them.
fn parse_month(text: &str) -> Option<NaiveDate> {
    if text.len() != 6 {
        return None;
    }
    let year: i32 = text[..4].parse().ok()?;
    let month: u32 = text[4..].parse().ok()?;
    (year >= 1)
        .then(|| NaiveDate::from_ymd_opt(year, month, 1))
        .flatten()
}

/// `datetime.strptime(text, "%Y%m%d")` of eight digits.
fn parse_day(text: &str) -> Option<NaiveDate> {
    let year: i32 = text[..4].parse().ok()?;
    let month: u32 = text[4..6].parse().ok()?;
    let day: u32 = text[6..].parse().ok()?;
    (year >= 1)
        .then(|| NaiveDate::from_ymd_opt(year, month, day))
        .flatten()
}

/// Python's `datetime` stops at year 9999: a bound beyond it is an error there.
fn within_python_years(date: NaiveDate) -> Option<NaiveDate> {
    (date.year() <= 9999).then_some(date)
}

fn midnight(date: NaiveDate) -> NaiveDateTime {
    date.and_hms_opt(0, 0, 0).unwrap_or_default()
}

// ----- Python spellings -----

/// `str(timedelta)`: `0:05:00`, `1 day, 2:03:04.500000`, `-1 day, 23:59:59`.
fn python_str_timedelta(duration: Duration) -> String {
    const MICROS_PER_DAY: i64 = 86_400_000_000;
    let micros = duration.num_microseconds().unwrap_or(i64::MAX);
    let days = micros.div_euclid(MICROS_PER_DAY);
    let rest = micros.rem_euclid(MICROS_PER_DAY);
    let seconds = rest / 1_000_000;
    let fraction = rest % 1_000_000;
    let mut text = format!(
        "{}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    );
    if days != 0 {
        let plural = if days.abs() == 1 { "" } else { "s" };
        text = format!("{days} day{plural}, {text}");
    }
    if fraction != 0 {
        text.push_str(&format!(".{fraction:06}"));
    }
    text
}

/// Object keys in the order jsonb keeps them, which is the order Python reads them back in:
/// shorter keys first, then by bytes.
fn jsonb_key_order(a: &str, b: &str) -> std::cmp::Ordering {
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// A JSON value written with its objects' keys in jsonb order.
struct JsonbOrdered<'a>(&'a Value);

impl Serialize for JsonbOrdered<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|(a, _), (b, _)| jsonb_key_order(a, b));
                serializer.collect_map(
                    entries
                        .into_iter()
                        .map(|(key, value)| (key, JsonbOrdered(value))),
                )
            }
            Value::Array(items) => serializer.collect_seq(items.iter().map(JsonbOrdered)),
            other => other.serialize(serializer),
        }
    }
}

/// `str()` of a JSON value as Python holds it after reading it from jsonb.
fn py_str_jsonb(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => py_repr_jsonb(other),
    }
}

/// `repr()` of a JSON value as Python holds it after reading it from jsonb.
fn py_repr_jsonb(value: &Value) -> String {
    match value {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Number(number) if number.is_f64() => {
            bai_pyjson::float_repr(number.as_f64().unwrap_or(0.0))
        }
        Value::Number(number) => number.to_string(),
        Value::String(text) => py_repr_str(text),
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(py_repr_jsonb)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|(a, _), (b, _)| jsonb_key_order(a, b));
            format!(
                "{{{}}}",
                entries
                    .iter()
                    .map(|(key, value)| format!("{}: {}", py_repr_str(key), py_repr_jsonb(value)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    }
}

/// Python's truth value of a JSON value (`if not last_stat:`).
fn is_truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64().is_some_and(|n| n != 0.0),
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

/// The reference's `nmget`: the value under a path of keys, `None` when a key is missing or the
/// value is null.
fn nmget<'a>(value: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter()
        .try_fold(value, |value, key| value.as_object()?.get(*key))
        .filter(|value| !value.is_null())
}

/// `float(x)` of a statistic (agents write numbers as strings); 0 for what is no number.
fn py_float(value: Option<&Value>) -> f64 {
    match value {
        Some(Value::Number(number)) => number.as_f64().unwrap_or(0.0),
        Some(Value::String(text)) => text.trim().parse().unwrap_or(0.0),
        Some(Value::Bool(flag)) => f64::from(u8::from(*flag)),
        _ => 0.0,
    }
}

/// `int(x)` of a statistic; a fractional value is truncated, and what is no number counts 0.
fn py_int(value: Option<&Value>) -> i64 {
    let truncated = |float: f64| float.trunc() as i64;
    match value {
        Some(Value::Number(number)) => number
            .as_i64()
            .unwrap_or_else(|| truncated(number.as_f64().unwrap_or(0.0))),
        Some(Value::String(text)) => {
            let text = text.trim();
            text.parse()
                .unwrap_or_else(|_| truncated(text.parse().unwrap_or(0.0)))
        }
        Some(Value::Bool(flag)) => i64::from(*flag),
        _ => 0,
    }
}

/// A slot amount as a `Decimal`; 0 when absent or infinite.
fn slot_decimal(slots: &ResourceSlot, slot: &str) -> Decimal {
    slots
        .get(slot)
        .and_then(SlotAmount::as_decimal)
        .unwrap_or_default()
}

/// `float(Decimal)`: correctly rounded, as Python converts through the decimal digits.
fn decimal_to_float(amount: Decimal) -> f64 {
    amount.to_string().parse().unwrap_or(0.0)
}

/// `int(Decimal)`: truncated toward zero.
fn decimal_to_int(amount: Decimal) -> i64 {
    i64::try_from(amount.trunc()).unwrap_or(0)
}

// ----- what one kernel used -----

/// The resources one kernel was given and used: the reference's `ResourceUsage` (and the same
/// numbers of its monthly `c_info`).
#[derive(Clone, Debug, Default, Serialize)]
struct ResourceUsage {
    nfs: BTreeSet<String>,
    cpu_allocated: f64,
    cpu_used: f64,
    mem_allocated: i64,
    mem_used: i64,
    shared_memory: i64,
    disk_allocated: i64,
    disk_used: i64,
    io_read: i64,
    io_write: i64,
    device_type: BTreeSet<String>,
    smp: f64,
    gpu_mem_allocated: f64,
    gpu_allocated: f64,
}

impl ResourceUsage {
    fn of(kernel: &UsageKernel, stat: &Value) -> ResourceUsage {
        let slots = &kernel.occupied_slots;
        let (device_type, smp, gpu_mem_allocated) = cuda_devices(kernel);
        // A share count, when the kernel has one, replaces the device count.
        let gpu_allocated = ["cuda.devices", "cuda.shares"]
            .iter()
            .filter_map(|slot| slots.get(slot))
            .next_back()
            .map_or(0.0, |amount| {
                decimal_to_float(amount.as_decimal().unwrap_or_default())
            });
        ResourceUsage {
            nfs: mount_hosts(kernel).unwrap_or_default(),
            cpu_allocated: decimal_to_float(slot_decimal(slots, "cpu")),
            cpu_used: py_float(nmget(stat, &["cpu_used", "current"])),
            mem_allocated: decimal_to_int(slot_decimal(slots, "mem")),
            mem_used: py_int(nmget(stat, &["mem", "capacity"])),
            shared_memory: kernel
                .resource_opts
                .as_ref()
                .map_or(0, |opts| py_int(nmget(opts, &["shmem"]))),
            disk_allocated: 0,
            disk_used: py_int(nmget(stat, &["io_scratch_size", "stats.max"])),
            io_read: py_int(nmget(stat, &["io_read", "current"])),
            io_write: py_int(nmget(stat, &["io_write", "current"])),
            device_type,
            smp,
            gpu_mem_allocated,
            gpu_allocated,
        }
    }

    fn add(&mut self, other: &ResourceUsage) {
        self.nfs.extend(other.nfs.iter().cloned());
        self.device_type.extend(other.device_type.iter().cloned());
        self.cpu_allocated += other.cpu_allocated;
        self.cpu_used += other.cpu_used;
        self.mem_allocated = self.mem_allocated.saturating_add(other.mem_allocated);
        self.mem_used = self.mem_used.saturating_add(other.mem_used);
        self.shared_memory = self.shared_memory.saturating_add(other.shared_memory);
        self.disk_allocated = self.disk_allocated.saturating_add(other.disk_allocated);
        self.disk_used = self.disk_used.saturating_add(other.disk_used);
        self.io_read = self.io_read.saturating_add(other.io_read);
        self.io_write = self.io_write.saturating_add(other.io_write);
        self.smp += other.smp;
        self.gpu_mem_allocated += other.gpu_mem_allocated;
        self.gpu_allocated += other.gpu_allocated;
    }
}

/// The CUDA devices attached to a kernel: their model names, and the sums of their SMs and memory.
fn cuda_devices(kernel: &UsageKernel) -> (BTreeSet<String>, f64, f64) {
    let mut models = BTreeSet::new();
    let (mut smp, mut mem) = (0_i64, 0_i64);
    let devices = kernel
        .attached_devices
        .as_ref()
        .and_then(|devices| devices.get("cuda"))
        .and_then(Value::as_array);
    for device in devices.into_iter().flatten() {
        if let Some(model) = device.get("model_name").filter(|model| is_truthy(model)) {
            models.insert(py_str_jsonb(model));
        }
        smp = smp.saturating_add(py_int(nmget(device, &["data", "smp"])));
        mem = mem.saturating_add(py_int(nmget(device, &["data", "mem"])));
    }
    (models, smp as f64, mem as f64)
}

/// The host directories of a kernel's mounts: those of `vfolder_mounts`, or of a legacy
/// `mounts` array; `None` when it has neither.
fn mount_hosts(kernel: &UsageKernel) -> Option<BTreeSet<String>> {
    match kernel.vfolder_mounts.as_ref().and_then(Value::as_array) {
        Some(mounts) if !mounts.is_empty() => Some(
            mounts
                .iter()
                .map(|mount| {
                    mount
                        .get("host_path")
                        .map_or_else(String::new, py_str_jsonb)
                })
                .collect(),
        ),
        _ => kernel
            .legacy_mount_hosts
            .as_ref()
            .filter(|hosts| !hosts.is_empty())
            .map(|hosts| hosts.iter().cloned().collect()),
    }
}

fn used_time(kernel: &UsageKernel) -> Option<String> {
    let created = kernel.created_at?;
    kernel
        .terminated_at
        .map(|terminated| python_str_timedelta(terminated - created))
}

/// The statistics of each kernel: its `last_stat` when that is not empty, else what Redis holds
/// for it; `None` when Redis holds nothing either.
async fn kernel_stats(
    ctx: &ApiContext,
    kernels: &[UsageKernel],
) -> Result<Vec<Option<Value>>, ApiError> {
    let missing: Vec<String> = kernels
        .iter()
        .filter(|kernel| !kernel.last_stat.as_ref().is_some_and(is_truthy))
        .map(|kernel| kernel.id.to_string())
        .collect();
    let mut live = ctx
        .redis()
        .stat
        .live_stats(&missing)
        .await
        .map_err(|error| ApiError::internal("reading the kernels' live statistics", &error))?
        .into_iter();
    Ok(kernels
        .iter()
        .map(|kernel| match &kernel.last_stat {
            Some(stat) if is_truthy(stat) => Some(stat.clone()),
            _ => live.next().flatten(),
        })
        .collect())
}

fn timezone(ctx: &ApiContext) -> String {
    ctx.shared_config().system.timezone.clone()
}

fn read_failure(error: bai_db_models::DbError) -> ApiError {
    ApiError::internal("reading the kernels for a usage report", &error)
}

// ----- GET /resource/usage/month -----

#[derive(Debug, Serialize)]
struct ProjectMonth {
    domain_name: String,
    g_id: String,
    g_name: String,
    g_cpu_allocated: f64,
    g_cpu_used: f64,
    g_mem_allocated: i64,
    g_mem_used: i64,
    g_shared_memory: i64,
    g_disk_allocated: i64,
    g_disk_used: i64,
    g_io_read: i64,
    g_io_write: i64,
    g_device_type: BTreeSet<String>,
    g_smp: f64,
    g_gpu_mem_allocated: f64,
    g_gpu_allocated: f64,
    c_infos: Vec<KernelMonth>,
}

#[derive(Debug, Serialize)]
struct KernelMonth {
    id: String,
    session_id: String,
    container_id: Option<String>,
    domain_name: String,
    group_id: String,
    group_name: String,
    name: Option<String>,
    access_key: Option<String>,
    email: String,
    full_name: Option<String>,
    agent: Option<String>,
    cpu_allocated: f64,
    cpu_used: f64,
    mem_allocated: i64,
    mem_used: i64,
    shared_memory: i64,
    disk_allocated: i64,
    disk_used: i64,
    io_read: i64,
    io_write: i64,
    used_time: Option<String>,
    used_days: Option<i32>,
    device_type: BTreeSet<String>,
    smp: f64,
    gpu_mem_allocated: f64,
    gpu_allocated: f64,
    nfs: Option<BTreeSet<String>>,
    image_id: Option<String>,
    image_name: Option<String>,
    created_at: String,
    terminated_at: String,
    status: String,
    status_info: Option<String>,
    status_changed: String,
    #[serde(serialize_with = "jsonb_ordered")]
    status_history: Value,
    cluster_mode: String,
}

fn jsonb_ordered<S: Serializer>(value: &Value, serializer: S) -> Result<S::Ok, S::Error> {
    JsonbOrdered(value).serialize(serializer)
}

fn optional_jsonb_ordered<S: Serializer>(
    value: &Option<Value>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    value.as_ref().map(JsonbOrdered).serialize(serializer)
}

impl KernelMonth {
    fn of(kernel: &UsageKernel, stat: &Value) -> KernelMonth {
        let usage = ResourceUsage::of(kernel, stat);
        KernelMonth {
            id: kernel.id.to_string(),
            session_id: kernel.session_id.to_string(),
            container_id: kernel.container_id.clone(),
            domain_name: kernel.domain_name.clone(),
            group_id: kernel.project_id.to_string(),
            group_name: kernel.project_name.clone(),
            name: kernel.session_name.clone(),
            access_key: kernel.access_key.clone(),
            email: kernel.user_email.clone(),
            full_name: kernel.full_name.clone(),
            agent: kernel.agent.clone(),
            cpu_allocated: usage.cpu_allocated,
            cpu_used: usage.cpu_used,
            mem_allocated: usage.mem_allocated,
            mem_used: usage.mem_used,
            shared_memory: usage.shared_memory,
            disk_allocated: usage.disk_allocated,
            disk_used: usage.disk_used,
            io_read: usage.io_read,
            io_write: usage.io_write,
            used_time: used_time(kernel),
            used_days: kernel.used_days,
            device_type: usage.device_type,
            smp: usage.smp,
            gpu_mem_allocated: usage.gpu_mem_allocated,
            gpu_allocated: usage.gpu_allocated,
            nfs: mount_hosts(kernel),
            image_id: kernel.image.clone(),
            image_name: kernel.image.clone(),
            created_at: str_datetime_or_none(kernel.created_at.as_ref()),
            terminated_at: str_datetime_or_none(kernel.terminated_at.as_ref()),
            status: kernel.status.clone(),
            status_info: kernel.status_info.clone(),
            status_changed: str_datetime_or_none(kernel.status_changed.as_ref()),
            status_history: kernel
                .status_history
                .clone()
                .filter(is_truthy)
                .unwrap_or_else(|| Value::Object(Map::new())),
            cluster_mode: kernel.cluster_mode.clone(),
        }
    }
}

impl ProjectMonth {
    fn starting_with(kernel: KernelMonth) -> ProjectMonth {
        ProjectMonth {
            domain_name: kernel.domain_name.clone(),
            g_id: kernel.group_id.clone(),
            g_name: kernel.group_name.clone(),
            g_cpu_allocated: kernel.cpu_allocated,
            g_cpu_used: kernel.cpu_used,
            g_mem_allocated: kernel.mem_allocated,
            g_mem_used: kernel.mem_used,
            g_shared_memory: kernel.shared_memory,
            g_disk_allocated: kernel.disk_allocated,
            g_disk_used: kernel.disk_used,
            g_io_read: kernel.io_read,
            g_io_write: kernel.io_write,
            g_device_type: kernel.device_type.clone(),
            g_smp: kernel.smp,
            g_gpu_mem_allocated: kernel.gpu_mem_allocated,
            g_gpu_allocated: kernel.gpu_allocated,
            c_infos: vec![kernel],
        }
    }

    fn add(&mut self, kernel: KernelMonth) {
        self.g_cpu_allocated += kernel.cpu_allocated;
        self.g_cpu_used += kernel.cpu_used;
        self.g_mem_allocated = self.g_mem_allocated.saturating_add(kernel.mem_allocated);
        self.g_mem_used = self.g_mem_used.saturating_add(kernel.mem_used);
        self.g_shared_memory = self.g_shared_memory.saturating_add(kernel.shared_memory);
        self.g_disk_allocated = self.g_disk_allocated.saturating_add(kernel.disk_allocated);
        self.g_disk_used = self.g_disk_used.saturating_add(kernel.disk_used);
        self.g_io_read = self.g_io_read.saturating_add(kernel.io_read);
        self.g_io_write = self.g_io_write.saturating_add(kernel.io_write);
        self.g_device_type
            .extend(kernel.device_type.iter().cloned());
        self.g_smp += kernel.smp;
        self.g_gpu_mem_allocated += kernel.gpu_mem_allocated;
        self.g_gpu_allocated += kernel.gpu_allocated;
        self.c_infos.push(kernel);
    }
}

async fn usage_per_month(
    _caller: Authenticated,
    State(ctx): State<ApiContext>,
    Params(params): Params<MonthParams>,
) -> Result<PyJson<Vec<ProjectMonth>>, ApiError> {
    tracing::info!(
        target: "bai_api",
        "USAGE_PER_MONTH (g:[{}], month:{})",
        params.group_ids,
        params.month
    );
    let start = parse_month(&params.month).ok_or_else(invalid_dates)?;
    let end = start
        .checked_add_months(Months::new(1))
        .and_then(within_python_years)
        .ok_or_else(invalid_dates)?;
    let timezone = timezone(&ctx);
    let period = LocalPeriod {
        start: midnight(start),
        end: midnight(end),
        timezone: &timezone,
    };
    let kernels = queries::kernels_in_period(
        ctx.db(),
        period,
        Attribution::Kernel,
        Some(params.group_ids),
        UsageOrder::Termination,
    )
    .await
    .map_err(read_failure)?;
    let stats = kernel_stats(&ctx, &kernels).await?;
    let mut projects: Vec<ProjectMonth> = Vec::new();
    for (kernel, stat) in kernels.iter().zip(&stats) {
        // The monthly report leaves out kernels of which there are no statistics at all.
        let Some(stat) = stat else {
            tracing::warn!(kernel = %kernel.id, "stat object not found on redis, skipping");
            continue;
        };
        let kernel = KernelMonth::of(kernel, stat);
        match projects
            .iter_mut()
            .find(|project| project.g_id == kernel.group_id)
        {
            Some(project) => project.add(kernel),
            None => projects.push(ProjectMonth::starting_with(kernel)),
        }
    }
    Ok(PyJson(projects))
}

// ----- GET /resource/usage/period -----

/// The fields every level of the per-period report has (the reference's `to_json_base`).
#[derive(Debug, Clone, Serialize)]
struct UsageBase {
    created_at: Option<String>,
    used_time: Option<String>,
    used_days: Option<i32>,
    user_id: Option<String>,
    user_email: Option<String>,
    access_key: Option<String>,
    project_id: Option<String>,
    project_name: Option<String>,
    kernel_id: Option<String>,
    container_ids: BTreeSet<Option<String>>,
    session_id: Option<String>,
    session_name: Option<String>,
    domain_name: Option<String>,
    #[serde(serialize_with = "optional_jsonb_ordered")]
    last_stat: Option<Value>,
    extra_info: Map<String, Value>,
    full_name: Option<String>,
    images: BTreeSet<Option<String>>,
    agents: BTreeSet<Option<String>>,
    status: Option<String>,
    status_info: Option<String>,
    status_history: Option<String>,
    cluster_mode: Option<String>,
    scheduled_at: Option<String>,
    terminated_at: Option<String>,
    total_usage: ResourceUsage,
}

impl UsageBase {
    /// One kernel's fields, with what it used.
    fn of(kernel: &UsageKernel, stat: &Value) -> UsageBase {
        let total_usage = if is_truthy(stat) {
            ResourceUsage::of(kernel, stat)
        } else {
            ResourceUsage::default()
        };
        UsageBase {
            created_at: kernel.created_at.as_ref().map(str_datetime),
            used_time: used_time(kernel),
            used_days: kernel.used_days,
            user_id: Some(kernel.user_uuid.to_string()),
            user_email: Some(kernel.user_email.clone()),
            access_key: kernel.access_key.clone(),
            project_id: Some(kernel.project_id.to_string()),
            project_name: Some(kernel.project_name.clone()),
            kernel_id: Some(kernel.id.to_string()),
            container_ids: BTreeSet::from([kernel.container_id.clone()]),
            session_id: Some(kernel.session_id.to_string()),
            session_name: kernel.session_name.clone(),
            domain_name: Some(kernel.domain_name.clone()),
            last_stat: Some(stat.clone()).filter(|stat| !stat.is_null()),
            extra_info: Map::new(),
            full_name: kernel.full_name.clone(),
            images: BTreeSet::from([kernel.image.clone()]),
            agents: BTreeSet::from([kernel.agent.clone()]),
            status: Some(kernel.status.clone()),
            status_info: kernel.status_info.clone(),
            status_history: kernel.status_history.as_ref().map(py_str_jsonb),
            cluster_mode: Some(kernel.cluster_mode.clone()),
            scheduled_at: kernel
                .status_history
                .as_ref()
                .and_then(|history| history.get("SCHEDULED"))
                .filter(|at| !at.is_null())
                .map(py_str_jsonb),
            terminated_at: kernel.terminated_at.as_ref().map(str_datetime),
            total_usage,
        }
    }

    /// Adds a kernel's usage and its containers, images and agents.
    fn register(&mut self, kernel: &UsageBase) {
        self.total_usage.add(&kernel.total_usage);
        self.container_ids
            .extend(kernel.container_ids.iter().cloned());
        self.images.extend(kernel.images.iter().cloned());
        self.agents.extend(kernel.agents.iter().cloned());
    }
}

#[derive(Debug, Serialize)]
struct KernelPeriod {
    #[serde(flatten)]
    base: UsageBase,
    agent: Option<String>,
    group_unit: &'static str,
}

#[derive(Debug, Serialize)]
struct SessionPeriod {
    #[serde(flatten)]
    base: UsageBase,
    group_unit: &'static str,
    kernels: Ordered<KernelPeriod>,
}

#[derive(Debug, Serialize)]
struct ProjectPeriod {
    #[serde(flatten)]
    base: UsageBase,
    group_unit: &'static str,
    sessions: Ordered<SessionPeriod>,
}

impl SessionPeriod {
    /// A session named after its first kernel: that kernel's fields, without usage yet.
    fn starting_with(kernel: &UsageBase) -> SessionPeriod {
        SessionPeriod {
            base: UsageBase {
                total_usage: ResourceUsage::default(),
                ..kernel.clone()
            },
            group_unit: "session",
            kernels: Ordered(Vec::new()),
        }
    }

    fn register(&mut self, kernel: UsageBase, agent: Option<String>) {
        self.base.register(&kernel);
        let key = kernel.kernel_id.clone().unwrap_or_default();
        self.kernels.0.push((
            key,
            KernelPeriod {
                base: kernel,
                agent,
                group_unit: "kernel",
            },
        ));
    }
}

impl ProjectPeriod {
    /// A project named after its first kernel, as the reference builds it: that kernel's user,
    /// session and times, no image, status or termination, and no usage yet.
    fn starting_with(kernel: &UsageBase) -> ProjectPeriod {
        ProjectPeriod {
            base: UsageBase {
                images: BTreeSet::new(),
                full_name: None,
                status: None,
                status_info: None,
                status_history: None,
                cluster_mode: None,
                scheduled_at: None,
                terminated_at: None,
                total_usage: ResourceUsage::default(),
                ..kernel.clone()
            },
            group_unit: "project",
            sessions: Ordered(Vec::new()),
        }
    }

    fn register(&mut self, kernel: UsageBase, agent: Option<String>) {
        self.base.register(&kernel);
        let session_id = kernel.session_id.clone().unwrap_or_default();
        let position = match self.sessions.0.iter().position(|(id, _)| *id == session_id) {
            Some(position) => position,
            None => {
                let session = SessionPeriod::starting_with(&kernel);
                self.sessions.0.push((session_id, session));
                self.sessions.0.len() - 1
            }
        };
        self.sessions.0[position].1.register(kernel, agent);
    }
}

async fn usage_per_period(
    _caller: Authenticated,
    State(ctx): State<ApiContext>,
    Params(params): Params<PeriodParams>,
) -> Result<PyJson<Vec<ProjectPeriod>>, ApiError> {
    let project = params.project_id.or(params.group_id);
    let start = parse_day(&params.start_date).ok_or_else(invalid_dates)?;
    let end = parse_day(&params.end_date)
        .and_then(|end| end.succ_opt())
        .and_then(within_python_years)
        .ok_or_else(invalid_dates)?;
    if end - start > Duration::days(MAX_PERIOD_DAYS) {
        return Err(ApiError::invalid_params(format!(
            "Cannot query more than {MAX_PERIOD_DAYS} days"
        )));
    }
    if end <= start {
        return Err(ApiError::invalid_params(
            "end_date must be later than start_date.",
        ));
    }
    tracing::info!(
        target: "bai_api",
        "USAGE_PER_PERIOD (p:{project:?}, start_date:{start}, end_date:{end})"
    );
    let timezone = timezone(&ctx);
    let period = LocalPeriod {
        start: midnight(start),
        end: midnight(end),
        timezone: &timezone,
    };
    let kernels = queries::kernels_in_period(
        ctx.db(),
        period,
        Attribution::Session,
        project,
        UsageOrder::Creation,
    )
    .await
    .map_err(read_failure)?;
    let stats = kernel_stats(&ctx, &kernels).await?;
    let mut projects: Vec<ProjectPeriod> = Vec::new();
    for (kernel, stat) in kernels.iter().zip(&stats) {
        // Without statistics anywhere, the kernel's own (empty or null) `last_stat` is shown.
        let stat = stat.clone().or_else(|| kernel.last_stat.clone());
        let base = UsageBase::of(kernel, stat.as_ref().unwrap_or(&Value::Null));
        let position = match projects
            .iter()
            .position(|project| project.base.project_id == base.project_id)
        {
            Some(position) => position,
            None => {
                projects.push(ProjectPeriod::starting_with(&base));
                projects.len() - 1
            }
        };
        projects[position].register(base, kernel.agent.clone());
    }
    Ok(PyJson(projects))
}

// ----- GET /resource/stats/{user,admin}/month -----

#[derive(Debug, Serialize)]
struct Measure<T> {
    value: T,
    unit_hint: &'static str,
}

#[derive(Debug, Serialize)]
struct StatBin {
    date: f64,
    num_sessions: Measure<i64>,
    cpu_allocated: Measure<i64>,
    mem_allocated: Measure<i64>,
    gpu_allocated: Measure<f64>,
    io_read_bytes: Measure<i64>,
    io_write_bytes: Measure<i64>,
    disk_used: Measure<i64>,
}

/// Python's `a // b` of two floats (`float.__floordiv__`), which is not always `floor(a / b)`.
fn python_floor_div(a: f64, b: f64) -> f64 {
    let remainder = a % b;
    let mut quotient = (a - remainder) / b;
    if remainder != 0.0 && (b < 0.0) != (remainder < 0.0) {
        quotient -= 1.0;
    }
    let floored = quotient.floor();
    if quotient - floored > 0.5 {
        floored + 1.0
    } else {
        floored
    }
}

/// `datetime.timestamp()`: seconds since the epoch as a float, from whole microseconds.
fn python_timestamp(at: DateTime<Utc>) -> f64 {
    at.timestamp_micros() as f64 / 1e6
}

/// What one kernel adds to each bin it spans.
struct BinContribution {
    cpu: i64,
    mem: i64,
    gpu: Decimal,
    io_read: i64,
    io_write: i64,
    disk_used: i64,
}

impl BinContribution {
    fn of(kernel: &BinnedKernel, live: Option<&Value>) -> BinContribution {
        let slots = &kernel.occupied_slots;
        // `int()` of the device count, the share count as it is.
        let gpu = Decimal::from(decimal_to_int(slot_decimal(slots, "cuda.devices")))
            + slot_decimal(slots, "cuda.shares");
        BinContribution {
            cpu: decimal_to_int(slot_decimal(slots, "cpu")),
            mem: decimal_to_int(slot_decimal(slots, "mem")),
            gpu,
            io_read: live.map_or(0, |stat| py_int(nmget(stat, &["io_read", "current"]))),
            io_write: live.map_or(0, |stat| py_int(nmget(stat, &["io_write", "current"]))),
            // The reference looks this up as one key, `io_scratch_size.stats.max`, which agents
            // never write: it is 0 unless a statistic of that very name exists.
            disk_used: live.map_or(0, |stat| {
                py_int(nmget(stat, &["io_scratch_size.stats.max"]))
            }),
        }
    }
}

/// The monthly statistics of the kernels of `user` (everyone's when `None`): 2880 bins of 15
/// minutes, the first starting 30 days ago. A kernel counts in every bin from the one it was
/// created in (or the first) to the one it terminated in. Its I/O comes from the live statistics
/// in Redis, as in the reference (0 once they expired).
async fn monthly_stats(ctx: &ApiContext, user: Option<Uuid>) -> Result<Vec<StatBin>, ApiError> {
    let now = Utc::now().trunc_subsecs(6);
    let start = now - Duration::days(STATS_DAYS);
    let kernels = queries::kernels_terminated_since(ctx.db(), start, user)
        .await
        .map_err(read_failure)?;
    let ids: Vec<String> = kernels.iter().map(|kernel| kernel.id.to_string()).collect();
    let live = ctx
        .redis()
        .stat
        .live_stats(&ids)
        .await
        .map_err(|error| ApiError::internal("reading the kernels' live statistics", &error))?;

    let start_ts = python_timestamp(start);
    let mut sessions = vec![0_i64; BIN_COUNT];
    let mut cpu = vec![0_i64; BIN_COUNT];
    let mut mem = vec![0_i64; BIN_COUNT];
    let mut gpu = vec![Decimal::ZERO; BIN_COUNT];
    let mut io_read = vec![0_i64; BIN_COUNT];
    let mut io_write = vec![0_i64; BIN_COUNT];
    let mut disk_used = vec![0_i64; BIN_COUNT];
    for (kernel, live) in kernels.iter().zip(&live) {
        let created = python_timestamp(kernel.created_at.with_timezone(&Utc));
        let terminated = python_timestamp(kernel.terminated_at.with_timezone(&Utc));
        let first = python_floor_div(created - start_ts, BIN_SECONDS).max(0.0);
        let last = python_floor_div(terminated - start_ts, BIN_SECONDS) + 1.0;
        // Saturating float-to-integer casts: bins outside the 30 days are simply not there.
        let bins = (first as usize).min(BIN_COUNT)..(last as usize).min(BIN_COUNT);
        let contribution = BinContribution::of(kernel, live.as_ref());
        for bin in bins {
            sessions[bin] += 1;
            cpu[bin] = cpu[bin].saturating_add(contribution.cpu);
            mem[bin] = mem[bin].saturating_add(contribution.mem);
            gpu[bin] = gpu[bin].saturating_add(contribution.gpu);
            io_read[bin] = io_read[bin].saturating_add(contribution.io_read);
            io_write[bin] = io_write[bin].saturating_add(contribution.io_write);
            disk_used[bin] = disk_used[bin].saturating_add(contribution.disk_used);
        }
    }
    let count = |value| Measure {
        value,
        unit_hint: "count",
    };
    let bytes = |value| Measure {
        value,
        unit_hint: "bytes",
    };
    Ok((0..BIN_COUNT)
        .map(|bin| StatBin {
            date: start_ts + (bin as f64) * BIN_SECONDS,
            num_sessions: count(sessions[bin]),
            cpu_allocated: count(cpu[bin]),
            mem_allocated: bytes(mem[bin]),
            gpu_allocated: Measure {
                value: decimal_to_float(gpu[bin]),
                unit_hint: "count",
            },
            io_read_bytes: bytes(io_read[bin]),
            io_write_bytes: bytes(io_write[bin]),
            disk_used: bytes(disk_used[bin]),
        })
        .collect())
}

async fn user_month_stats(
    Authenticated(caller): Authenticated,
    State(ctx): State<ApiContext>,
) -> Result<PyJson<Vec<StatBin>>, ApiError> {
    tracing::info!(
        target: "bai_api",
        "USER_LAST_MONTH_STATS (ak:{}, u:{})",
        caller.access_key(),
        caller.user.uuid
    );
    Ok(PyJson(monthly_stats(&ctx, Some(caller.user.uuid)).await?))
}

async fn admin_month_stats(
    _caller: Authenticated,
    State(ctx): State<ApiContext>,
) -> Result<PyJson<Vec<StatBin>>, ApiError> {
    tracing::info!(target: "bai_api", "ADMIN_LAST_MONTH_STATS ()");
    Ok(PyJson(monthly_stats(&ctx, None).await?))
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, NaiveDate};
    use serde_json::json;

    use super::{
        parse_day, parse_month, py_int, py_repr_jsonb, python_floor_div, python_str_timedelta,
    };

    #[test]
    fn timedeltas_read_as_python_writes_them() {
        assert_eq!(python_str_timedelta(Duration::minutes(5)), "0:05:00");
        assert_eq!(
            python_str_timedelta(Duration::days(1) + Duration::milliseconds(7_384_500)),
            "1 day, 2:03:04.500000"
        );
        assert_eq!(python_str_timedelta(Duration::days(3)), "3 days, 0:00:00");
        assert_eq!(
            python_str_timedelta(Duration::seconds(-1)),
            "-1 day, 23:59:59"
        );
    }

    #[test]
    fn dates_follow_strptime() {
        assert_eq!(parse_month("202402"), NaiveDate::from_ymd_opt(2024, 2, 1));
        assert_eq!(parse_month("202413"), None);
        assert_eq!(parse_month("2024011"), None);
        assert_eq!(parse_month("000001"), None);
        assert_eq!(parse_day("20240229"), NaiveDate::from_ymd_opt(2024, 2, 29));
        assert_eq!(parse_day("20230229"), None);
    }

    #[test]
    fn floor_division_and_int_follow_python() {
        assert_eq!(python_floor_div(1799.9, 900.0), 1.0);
        assert_eq!(python_floor_div(-1.0, 900.0), -1.0);
        assert_eq!(py_int(Some(&json!("1073741824"))), 1_073_741_824);
        assert_eq!(py_int(Some(&json!(2.9))), 2);
        assert_eq!(py_int(None), 0);
    }

    #[test]
    fn dicts_are_spelled_in_jsonb_order() {
        let history = json!({"TERMINATED": "b", "PENDING": "a", "x": [1, 1.5, null, true]});
        assert_eq!(
            py_repr_jsonb(&history),
            "{'x': [1, 1.5, None, True], 'PENDING': 'a', 'TERMINATED': 'b'}"
        );
    }
}
