//! Idle checks (the reference's `manager/idle.py`): every [`CHECK_INTERVAL`], and whenever a
//! `do_idle_check` event is consumed, every running session (its main kernel RUNNING, inference
//! sessions aside) is judged by the checkers, and one judged idle is asked to end with
//! `do_terminate_session` and the checker's reason, which the consumer of that event carries out
//! through the [`Destroyer`] (not forced, as the reference's `handle_destroy_session`).
//!
//! The checkers: `session_lifetime` (always on: the keypair policy's `max_session_lifetime`,
//! `idle-session-lifetime`), and those etcd `config/idle/enabled` lists: `network_timeout` (no
//! use for longer than `checkers/network_timeout/threshold` or the policy's `idle_timeout`, by
//! `session.{id}.last_access`, which the `session_started` and `execution_*` handlers keep;
//! `idle-timeout`) and `utilization` (the kernels' live statistics averaged over a time window
//! under `checkers/utilization/resource-thresholds`; `idle-utilization`). A new user's grace
//! period (`checkers/user_grace_period/user_initial_grace_period`) delays them all. Each writes
//! its remaining time (and the utilization checker its averages) to Redis, which
//! [`idle_check_report`] reads back for `GET /session/{name}` and GraphQL `idle_checks`.
//!
//! The configuration is read from etcd at each check, so a change applies at the next one; a
//! checker whose settings are bad is skipped, its problems logged with their keys.
//!
//! It must not know HTTP; SQL goes through `bai-db-models`, Redis through `bai-redis`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bai_db_models::DbError;
use bai_db_models::entities::enums::SessionType;
use bai_db_models::entities::{ResourceSlot, kernels};
use bai_db_models::queries::idle::{self as idle_queries, IdleCandidate, IdlePolicy};
use bai_etcd_store::shared_config::{
    IdleCheckerConfig, NetworkTimeoutConfig, ThresholdsCheckOperator, UtilizationConfig,
};
use bai_etcd_store::{EtcdError, EtcdStore, SharedConfigProblem};
use bai_events::{Coalesced, Event, EventProducer, HandlerError, Handlers, Received, Trigger};
use bai_redis::{IdleKeys, LastAccess, LiveDb, RedisError, StatDb};
use rmpv::Value;
use sea_orm::DatabaseConnection;
use sea_orm::prelude::{DateTimeWithTimeZone, Uuid};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, SerializeStruct, Serializer};
use tokio_util::sync::CancellationToken;

use crate::{DestroyError, DestroyRequest, Destroyer};

/// `KernelLifecycleEventReason`s of the checkers.
pub const IDLE_TIMEOUT: &str = "idle-timeout";
pub const IDLE_SESSION_LIFETIME: &str = "idle-session-lifetime";
pub const IDLE_UTILIZATION: &str = "idle-utilization";
/// The reason of a `do_terminate_session` that names none.
pub const KILLED_BY_EVENT: &str = "killed-by-event";
/// The reference's `DEFAULT_CHECK_INTERVAL`.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(15);
/// How long reports live: ten of the reference's default intervals, whatever the interval.
const REPORT_TTL: Duration = Duration::from_secs(150);
/// The least time the per-session keys live.
const MIN_KEY_TTL: Duration = Duration::from_secs(86_400);
/// The remaining time reported once it ran out (`IDLE_TIMEOUT_VALUE`).
const RAN_OUT: i64 = -1;
/// Coalescing of `do_idle_check` events: a burst is one check.
const COALESCE_WAIT: Duration = Duration::from_millis(500);
const COALESCE_BATCH: usize = 32;
const CHECK_EVENT: &str = "do_idle_check";
/// The utilization metrics of each slot prefix: a session without that slot is not judged by them.
const SLOT_METRICS: [(&str, &[&str]); 4] = [
    ("cpu", &["cpu_util"]),
    ("mem", &["mem"]),
    ("cuda", &["cuda_util", "cuda_mem"]),
    ("atom", &["atom_mem"]),
];

/// Why a check did not run (a checker failing on one session is logged, not an error).
#[derive(Debug, thiserror::Error)]
pub enum IdleError {
    #[error(transparent)]
    Db(Box<DbError>),
    #[error("reading config/idle from etcd: {0}")]
    Etcd(#[from] EtcdError),
    #[error(transparent)]
    Redis(#[from] RedisError),
    #[error("announcing do_terminate_session: {0}")]
    Produce(RedisError),
}

impl From<DbError> for IdleError {
    fn from(error: DbError) -> Self {
        IdleError::Db(Box::new(error))
    }
}

/// A checker, with its settings.
#[derive(Clone, Debug)]
enum Checker {
    SessionLifetime,
    NetworkTimeout(NetworkTimeoutConfig),
    Utilization(UtilizationConfig),
}

/// What the reports of a checker look like.
#[derive(Clone, Copy, Debug)]
struct Kind {
    name: &'static str,
    reason: &'static str,
    /// `RemainingTimeType`.
    remaining_time_type: &'static str,
    /// The key suffix of its extra information, for the checkers that write one.
    extra_key: Option<&'static str>,
}

const SESSION_LIFETIME: Kind = Kind {
    name: "session_lifetime",
    reason: IDLE_SESSION_LIFETIME,
    remaining_time_type: "expire_after",
    extra_key: None,
};
const NETWORK_TIMEOUT: Kind = Kind {
    name: "network_timeout",
    reason: IDLE_TIMEOUT,
    remaining_time_type: "expire_after",
    extra_key: None,
};
const UTILIZATION: Kind = Kind {
    name: "utilization",
    reason: IDLE_UTILIZATION,
    remaining_time_type: "grace_period",
    extra_key: Some("utilization_extra"),
};

impl Checker {
    fn kind(&self) -> Kind {
        match self {
            Checker::SessionLifetime => SESSION_LIFETIME,
            Checker::NetworkTimeout(_) => NETWORK_TIMEOUT,
            Checker::Utilization(_) => UTILIZATION,
        }
    }
}

/// The kinds of the checkers that run, in the reference's order: `session_lifetime`, then those
/// `enabled` lists.
fn kinds(enabled: &[String]) -> Vec<Kind> {
    std::iter::once(SESSION_LIFETIME)
        .chain(enabled.iter().filter_map(|name| match name.as_str() {
            "network_timeout" => Some(NETWORK_TIMEOUT),
            "utilization" => Some(UTILIZATION),
            _ => None,
        }))
        .collect()
}

/// A session a check asked to end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdleVerdict {
    pub session_id: Uuid,
    /// The checker that found it idle.
    pub checker: &'static str,
    pub reason: &'static str,
}

/// Runs the idle checks.
#[derive(Clone, Debug)]
pub struct IdleChecker {
    inner: Arc<Inner>,
    interval: Duration,
}

#[derive(Debug)]
struct Inner {
    db: DatabaseConnection,
    etcd: EtcdStore,
    keys: IdleKeys,
    stat: StatDb,
    producer: EventProducer,
    /// The network-timeout threshold of the last check, in seconds: the lifetime of the
    /// `last_access` keys the handlers write is twice that (at least a day).
    network_threshold_secs: AtomicU64,
    /// The configuration problems logged last, so that each is logged once, not every check.
    logged_problems: Mutex<Vec<String>>,
}

impl IdleChecker {
    pub fn new(
        db: DatabaseConnection,
        etcd: EtcdStore,
        live: &LiveDb,
        stat: StatDb,
        producer: EventProducer,
    ) -> IdleChecker {
        IdleChecker {
            inner: Arc::new(Inner {
                db,
                etcd,
                keys: live.idle(),
                stat,
                producer,
                network_threshold_secs: AtomicU64::new(600),
                logged_problems: Mutex::new(Vec::new()),
            }),
            interval: CHECK_INTERVAL,
        }
    }

    /// Checks every `interval` instead of [`CHECK_INTERVAL`] (tests); the utilization checker
    /// collects once per interval too, as the reference's does.
    #[must_use]
    pub fn with_check_interval(mut self, interval: Duration) -> IdleChecker {
        self.interval = interval;
        self
    }

    pub fn check_interval(&self) -> Duration {
        self.interval
    }

    /// One check of every running session; returns those asked to end.
    pub async fn check(&self) -> Result<Vec<IdleVerdict>, IdleError> {
        let inner = &self.inner;
        let config = IdleCheckerConfig::load(&inner.etcd).await?;
        let (checkers, grace) = self.usable(&config);
        let candidates = idle_queries::running_main_kernels(&inner.db).await?;
        let clock = DbClock::read(&inner.db).await?;
        let mut policies: HashMap<String, Option<IdlePolicy>> = HashMap::new();
        let mut verdicts = Vec::new();
        for candidate in candidates {
            let kernel = &candidate.kernel;
            let Some(access_key) = kernel.access_key.clone() else {
                continue;
            };
            let policy = match policies.get(&access_key) {
                Some(policy) => *policy,
                None => {
                    let policy = idle_queries::keypair_idle_policy(&inner.db, &access_key).await?;
                    policies.insert(access_key.clone(), policy);
                    policy
                }
            };
            let Some(policy) = policy else {
                tracing::warn!(
                    session.id = %kernel.session_id,
                    "idle check: keypair {access_key} has no resource policy; skipped"
                );
                continue;
            };
            let grace_period_end = match (grace, candidate.user_created_at) {
                (Some(grace), Some(created)) => Some(timestamp(created) + grace.as_secs_f64()),
                _ => None,
            };
            let mut ended = false;
            for checker in &checkers {
                let kind = checker.kind();
                let alive = match self
                    .judge(checker, &candidate, policy, grace_period_end, &clock)
                    .await
                {
                    Ok(alive) => alive,
                    Err(error) => {
                        tracing::error!(
                            session.id = %kernel.session_id,
                            "the {} idle checker failed: {error}",
                            kind.name
                        );
                        continue;
                    }
                };
                if alive {
                    continue;
                }
                tracing::info!(
                    "The {} idle checker triggered termination of s:{}",
                    kind.name,
                    kernel.session_id
                );
                if !ended {
                    ended = true;
                    let event = Event::DoTerminateSession {
                        session_id: kernel.session_id,
                        reason: kind.reason.to_owned(),
                    };
                    inner
                        .producer
                        .produce(&event, "manager")
                        .await
                        .map_err(IdleError::Produce)?;
                    verdicts.push(IdleVerdict {
                        session_id: kernel.session_id,
                        checker: kind.name,
                        reason: kind.reason,
                    });
                }
            }
        }
        Ok(verdicts)
    }

    /// The checkers whose settings are good, and the new users' grace period; logs the problems
    /// of the others (once, until they change).
    fn usable(&self, config: &IdleCheckerConfig) -> (Vec<Checker>, Option<Duration>) {
        let mut problems: Vec<&SharedConfigProblem> = config.warnings.iter().collect();
        let mut checkers = vec![Checker::SessionLifetime];
        for name in &config.enabled {
            match name.as_str() {
                "network_timeout" => match &config.network_timeout {
                    Ok(settings) => {
                        self.inner
                            .network_threshold_secs
                            .store(settings.threshold.as_secs(), Ordering::Relaxed);
                        checkers.push(Checker::NetworkTimeout(*settings));
                    }
                    Err(errors) => problems.extend(errors),
                },
                "utilization" => match &config.utilization {
                    Ok(settings) => checkers.push(Checker::Utilization(settings.clone())),
                    Err(errors) => problems.extend(errors),
                },
                _ => {}
            }
        }
        let grace = match &config.user_initial_grace_period {
            Ok(grace) => *grace,
            Err(errors) => {
                problems.extend(errors);
                None
            }
        };
        let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let mut logged = self
            .inner
            .logged_problems
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *logged != shown {
            for problem in &shown {
                tracing::warn!("idle checkers: {problem}; the checker is skipped");
            }
            *logged = shown;
        }
        (checkers, grace)
    }

    /// Whether the session may go on by `checker`; writes the checker's report.
    async fn judge(
        &self,
        checker: &Checker,
        candidate: &IdleCandidate,
        policy: IdlePolicy,
        grace_period_end: Option<f64>,
        clock: &DbClock,
    ) -> Result<bool, IdleError> {
        match checker {
            Checker::SessionLifetime => {
                self.session_lifetime(&candidate.kernel, policy, grace_period_end, clock)
                    .await
            }
            Checker::NetworkTimeout(settings) => {
                self.network_timeout(&candidate.kernel, settings, policy, grace_period_end)
                    .await
            }
            Checker::Utilization(settings) => {
                self.utilization(&candidate.kernel, settings, policy, grace_period_end, clock)
                    .await
            }
        }
    }

    async fn report(&self, session_id: Uuid, kind: Kind, remaining: f64) -> Result<(), IdleError> {
        let value = if remaining > 0.0 {
            Value::F64(remaining)
        } else {
            Value::from(RAN_OUT)
        };
        self.inner
            .keys
            .set_report(
                session_id,
                kind.name,
                bai_events::codec::encode(&value),
                REPORT_TTL,
            )
            .await?;
        Ok(())
    }

    /// `SessionLifetimeChecker`: alive while younger than the policy's `max_session_lifetime`.
    async fn session_lifetime(
        &self,
        kernel: &kernels::Model,
        policy: IdlePolicy,
        grace_period_end: Option<f64>,
        clock: &DbClock,
    ) -> Result<bool, IdleError> {
        let (Ok(lifetime), Some(created)) = (
            u64::try_from(policy.max_session_lifetime),
            kernel.created_at,
        ) else {
            return Ok(true);
        };
        if lifetime == 0 {
            return Ok(true);
        }
        let now = clock.now();
        #[allow(clippy::cast_precision_loss)]
        let remaining = remaining_time(now, timestamp(created), lifetime as f64, grace_period_end);
        self.report(kernel.session_id, SESSION_LIFETIME, remaining)
            .await?;
        Ok(remaining > 0.0)
    }

    /// `NetworkTimeoutIdleChecker`: alive while used within the timeout. Batch sessions, sessions
    /// with app connections, sessions running code and sessions without a recorded access are
    /// alive.
    async fn network_timeout(
        &self,
        kernel: &kernels::Model,
        settings: &NetworkTimeoutConfig,
        policy: IdlePolicy,
        grace_period_end: Option<f64>,
    ) -> Result<bool, IdleError> {
        if kernel.session_type == SessionType::Batch {
            return Ok(true);
        }
        let activity = self.inner.keys.network_activity(kernel.session_id).await?;
        if activity.app_connections > 0 {
            return Ok(true);
        }
        let last_access = match activity.last_access {
            None | Some(LastAccess::Executing) => return Ok(true),
            Some(LastAccess::At(at)) => at,
        };
        // The policy's `idle_timeout` wins unless negative ("undefined"); 0 means no limit.
        #[allow(clippy::cast_precision_loss)]
        let timeout = if policy.idle_timeout >= 0 {
            policy.idle_timeout as f64
        } else {
            settings.threshold.as_secs_f64()
        };
        if timeout <= 0.0 {
            return Ok(true);
        }
        let remaining = remaining_time(activity.now, last_access, timeout, grace_period_end);
        self.report(kernel.session_id, NETWORK_TIMEOUT, remaining)
            .await?;
        Ok(remaining >= 0.0)
    }

    /// `UtilizationIdleChecker`: collects the kernels' utilization once per interval into a
    /// window of `time window / interval` samples; once the window is full (or the time window
    /// passed since the first sample), the session is idle when its averages are under their
    /// thresholds (all of them with `and`, any with `or`).
    async fn utilization(
        &self,
        kernel: &kernels::Model,
        settings: &UtilizationConfig,
        policy: IdlePolicy,
        grace_period_end: Option<f64>,
        clock: &DbClock,
    ) -> Result<bool, IdleError> {
        let keys = &self.inner.keys;
        let session_id = kernel.session_id;
        let interval = self.interval.as_secs_f64();
        #[allow(clippy::cast_precision_loss)]
        let time_window = if policy.idle_timeout >= 0 {
            policy.idle_timeout as f64
        } else {
            settings.time_window.as_secs_f64()
        };
        let window_size = (time_window / interval).floor();
        if window_size <= 0.0 || !window_size.is_finite() {
            return Ok(true);
        }
        // Whole samples; the window holds at most that many.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let window_size = window_size as usize;
        let key_ttl = (settings.time_window * 2).max(MIN_KEY_TTL);
        let now = keys.server_time().await?;
        let collected = keys.utilization_collection(session_id).await?;
        if now - collected.last.unwrap_or(0.0) < interval {
            return Ok(true);
        }
        let first = match collected.first {
            Some(first) => first,
            None => {
                keys.set_utilization_first_collected(session_id, now, key_ttl)
                    .await?;
                now
            }
        };
        let Some(created) = kernel.created_at.map(timestamp) else {
            return Ok(true);
        };
        let db_now = clock.now();
        let start_from = grace_period_end.map_or(created, |grace| grace.max(created));
        let initial_grace_end = start_from + settings.initial_grace_period.as_secs_f64();
        let remaining = remaining_time(db_now, created, time_window, Some(initial_grace_end));
        self.report(session_id, UTILIZATION, remaining).await?;
        if db_now <= initial_grace_end {
            return Ok(true);
        }
        let unavailable = unavailable_metrics(&kernel.occupied_slots);
        let kernel_ids = if kernel.cluster_size > 1 {
            idle_queries::live_kernel_ids(&self.inner.db, session_id).await?
        } else {
            vec![kernel.id]
        };
        let Some(current) = self
            .current_utilization(&kernel_ids, &kernel.occupied_slots, settings)
            .await?
        else {
            return Ok(true);
        };
        let mut series = match keys.utilization_series(session_id).await? {
            Some(packed) => decode_series(&packed).unwrap_or_else(|| {
                tracing::warn!(session.id = %session_id, "unreadable utilization series in Redis; starting over");
                empty_series(settings)
            }),
            None => empty_series(settings),
        };
        let mut full = true;
        for (metric, samples) in &mut series {
            samples.push(current.get(metric.as_str()).copied().unwrap_or(0.0));
            if samples.len() > window_size {
                samples.remove(0);
            } else {
                full = false;
            }
        }
        if now - first >= time_window {
            full = true;
        }
        keys.set_utilization_series(session_id, encode_series(&series), now, key_ttl)
            .await?;
        let averages: HashMap<&str, f64> = series
            .iter()
            .map(|(metric, samples)| (metric.as_str(), average(samples)))
            .collect();
        let judged: Vec<(&str, f64, f64)> = settings
            .resource_thresholds
            .iter()
            .filter_map(|(metric, threshold)| {
                let threshold = (*threshold)?;
                if unavailable.contains(&metric.as_str()) {
                    return None;
                }
                Some((
                    metric.as_str(),
                    averages.get(metric.as_str()).copied().unwrap_or(0.0),
                    threshold,
                ))
            })
            .collect();
        let extra = utilization_extra(settings.thresholds_check_operator, &judged);
        keys.set_extra(
            session_id,
            UTILIZATION.extra_key.unwrap_or_default(),
            bai_events::codec::encode(&extra),
            REPORT_TTL,
        )
        .await?;
        if !full || judged.is_empty() {
            return Ok(true);
        }
        let used = judged
            .iter()
            .map(|(_, average, threshold)| average >= threshold);
        let alive = match settings.thresholds_check_operator {
            ThresholdsCheckOperator::Or => used.clone().all(|used| used),
            ThresholdsCheckOperator::And => used.clone().any(|used| used),
        };
        if !alive {
            tracing::info!(
                "utilization timeout: {session_id} ({averages:?}, {})",
                settings.thresholds_check_operator.as_str()
            );
        }
        Ok(alive)
    }

    /// The kernels' utilization averaged over them, by metric (`{metric}.pct` of their live
    /// statistics; `mem` as `mem.current` over the memory the session occupies); `None` (logged)
    /// when a kernel has no statistics.
    async fn current_utilization(
        &self,
        kernel_ids: &[Uuid],
        occupied: &ResourceSlot,
        settings: &UtilizationConfig,
    ) -> Result<Option<HashMap<String, f64>>, IdleError> {
        let mut sums: HashMap<String, f64> = settings
            .resource_thresholds
            .iter()
            .map(|(metric, _)| (metric.clone(), 0.0))
            .collect();
        let mut last_stat = serde_json::Value::Null;
        for kernel_id in kernel_ids {
            let Some(stat) = self.inner.stat.live_stat(&kernel_id.to_string()).await? else {
                tracing::warn!(
                    "Utilization data not found or failed to fetch utilization data, abort idle check (k:{kernel_id})"
                );
                return Ok(None);
            };
            for (metric, sum) in &mut sums {
                match number(stat.get(metric.as_str()).and_then(|entry| entry.get("pct"))) {
                    Some(pct) => *sum += pct,
                    None => {
                        tracing::warn!(
                            "Unable to collect utilization for idleness check (kernels:{kernel_ids:?}): {metric}.pct is not a number"
                        );
                        return Ok(None);
                    }
                }
            }
            last_stat = stat;
        }
        #[allow(clippy::cast_precision_loss)]
        let divider = kernel_ids.len().max(1) as f64;
        for sum in sums.values_mut() {
            *sum /= divider;
        }
        // `mem.pct` counts the page cache: the reference measures memory against the slot.
        let mem_slot = slot_amount(occupied.get("mem"));
        let mem_current = number(last_stat.get("mem").and_then(|mem| mem.get("current")));
        let Some(mem_current) = mem_current else {
            tracing::warn!(
                "Unable to collect utilization for idleness check (kernels:{kernel_ids:?}): mem.current is not a number"
            );
            return Ok(None);
        };
        sums.insert(
            "mem".to_owned(),
            if mem_slot > 0.0 {
                mem_current / mem_slot * 100.0
            } else {
                0.0
            },
        );
        Ok(Some(sums))
    }

    /// Records that session `session_id` is used now (`session_started`, `execution_finished`,
    /// `execution_timeout`, `execution_cancelled`).
    pub async fn touch(&self, session_id: Uuid) -> Result<(), RedisError> {
        let threshold =
            Duration::from_secs(self.inner.network_threshold_secs.load(Ordering::Relaxed));
        self.inner
            .keys
            .touch_last_access(session_id, (threshold * 2).max(MIN_KEY_TTL))
            .await
    }

    /// Records that code runs in session `session_id` (`execution_started`).
    pub async fn mark_executing(&self, session_id: Uuid) -> Result<(), RedisError> {
        self.inner.keys.mark_executing(session_id).await
    }
}

/// The database's clock (which the reference measures lifetimes by), read once per check and
/// advanced by the local monotonic clock.
struct DbClock {
    at: f64,
    read: std::time::Instant,
}

impl DbClock {
    async fn read(db: &DatabaseConnection) -> Result<DbClock, IdleError> {
        let at = timestamp(idle_queries::database_now(db).await?);
        Ok(DbClock {
            at,
            read: std::time::Instant::now(),
        })
    }

    fn now(&self) -> f64 {
        self.at + self.read.elapsed().as_secs_f64()
    }
}

/// Seconds until the timeout, counted from `baseline` or the end of the grace period, whichever
/// is later (`calculate_remaining_time`).
fn remaining_time(now: f64, baseline: f64, timeout: f64, grace_period_end: Option<f64>) -> f64 {
    let baseline = grace_period_end.map_or(baseline, |grace| grace.max(baseline));
    baseline - now + timeout
}

fn timestamp(at: DateTimeWithTimeZone) -> f64 {
    // Microseconds since the epoch fit an f64 exactly for centuries.
    #[allow(clippy::cast_precision_loss)]
    let seconds = at.timestamp_micros() as f64 / 1e6;
    seconds
}

fn slot_amount(amount: Option<bai_db_models::entities::SlotAmount>) -> f64 {
    amount
        .and_then(|amount| amount.to_string().parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// The metrics of the slots the session does not occupy: a session without a GPU is not judged
/// by `cuda_util`.
fn unavailable_metrics(occupied: &ResourceSlot) -> Vec<&'static str> {
    let mut totals: HashMap<&str, f64> = HashMap::new();
    for (slot, amount) in occupied.iter() {
        let prefix = slot.split('.').next().unwrap_or(slot);
        *totals.entry(prefix).or_default() += slot_amount(Some(amount));
    }
    SLOT_METRICS
        .iter()
        .filter(|(prefix, _)| totals.get(prefix).copied().unwrap_or(0.0) == 0.0)
        .flat_map(|(_, metrics)| metrics.iter().copied())
        .collect()
}

/// A number the agents write as text (`"12.5"`) or as a number; missing is 0, as `nmget`'s
/// default.
fn number(value: Option<&serde_json::Value>) -> Option<f64> {
    match value {
        None | Some(serde_json::Value::Null) => Some(0.0),
        Some(serde_json::Value::Number(number)) => number.as_f64(),
        Some(serde_json::Value::String(text)) => text.trim().parse().ok(),
        Some(_) => None,
    }
}

fn average(samples: &[f64]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    #[allow(clippy::cast_precision_loss)]
    let count = samples.len() as f64;
    samples.iter().sum::<f64>() / count
}

fn empty_series(settings: &UtilizationConfig) -> Vec<(String, Vec<f64>)> {
    settings
        .resource_thresholds
        .iter()
        .map(|(metric, _)| (metric.clone(), Vec::new()))
        .collect()
}

/// `{metric: [samples]}` as the reference stores it.
fn encode_series(series: &[(String, Vec<f64>)]) -> Vec<u8> {
    let map = series
        .iter()
        .map(|(metric, samples)| {
            (
                Value::from(metric.as_str()),
                Value::Array(samples.iter().map(|sample| Value::F64(*sample)).collect()),
            )
        })
        .collect();
    bai_events::codec::encode(&Value::Map(map))
}

fn decode_series(packed: &[u8]) -> Option<Vec<(String, Vec<f64>)>> {
    let Value::Map(pairs) = bai_events::codec::decode(packed).ok()? else {
        return None;
    };
    pairs
        .into_iter()
        .map(|(metric, samples)| {
            let metric = metric.as_str()?.to_owned();
            let Value::Array(samples) = samples else {
                return None;
            };
            let samples = samples
                .iter()
                .map(|sample| {
                    sample
                        .as_f64()
                        .or_else(|| sample.as_i64().map(|n| n as f64))
                })
                .collect::<Option<Vec<f64>>>()?;
            Some((metric, samples))
        })
        .collect()
}

/// `{"thresholds_check_operator": ..., "resources": {metric: [average, threshold]}}`; memory
/// metrics in whole bytes, as the reference's `BinarySize` writes them (we write plain integers,
/// never pickles).
fn utilization_extra(operator: ThresholdsCheckOperator, judged: &[(&str, f64, f64)]) -> Value {
    let in_unit = |metric: &str, value: f64| {
        if metric.contains("mem") {
            // Truncated like `int(value)`.
            #[allow(clippy::cast_possible_truncation)]
            let whole = value as i64;
            Value::from(whole)
        } else {
            Value::F64(value)
        }
    };
    let resources = judged
        .iter()
        .map(|(metric, average, threshold)| {
            (
                Value::from(*metric),
                Value::Array(vec![in_unit(metric, *average), in_unit(metric, *threshold)]),
            )
        })
        .collect();
    Value::Map(vec![
        (
            Value::from("thresholds_check_operator"),
            Value::from(operator.as_str()),
        ),
        (Value::from("resources"), Value::Map(resources)),
    ])
}

/// The coalescing trigger of the idle checks and what [`run_idle_checker`] receives from it.
pub fn idle_triggers() -> (Trigger, Coalesced) {
    bai_events::coalescing(COALESCE_WAIT, COALESCE_BATCH)
}

/// The handlers of the idle checks: `do_idle_check` asks for a check, `do_terminate_session`
/// destroys a session (not forced, with the event's reason), `session_started` and the
/// `execution_*` events keep `session.{id}.last_access`.
///
/// The reference consumes `execution_*` and subscribes to `session_started`; here all are
/// consumed: the consumer group gives each event to one process of the group, which is all that
/// is needed, since `last_access` is in Redis, shared by every process, not in a process's memory.
pub fn idle_handlers(
    checker: &IdleChecker,
    destroyer: &Destroyer,
    trigger: &Trigger,
    into: &mut Handlers,
) {
    let trigger = trigger.clone();
    into.on(CHECK_EVENT, "idle.do_idle_check", move |_| {
        trigger.fire(CHECK_EVENT);
        async { Ok(()) }
    });
    let destroyer = destroyer.clone();
    into.on(
        "do_terminate_session",
        "api.session.doterm",
        move |received| {
            let destroyer = destroyer.clone();
            async move { terminate(&destroyer, &received).await }
        },
    );
    for (event, handler) in [
        ("session_started", "idle.session_started"),
        ("execution_started", "idle.execution_started"),
        ("execution_finished", "idle.execution_exited"),
        ("execution_timeout", "idle.execution_exited"),
        ("execution_cancelled", "idle.execution_exited"),
    ] {
        let checker = checker.clone();
        into.on(event, handler, move |received| {
            let checker = checker.clone();
            async move {
                match &received.event {
                    Event::SessionStarted(started) => checker.touch(started.session_id).await?,
                    Event::ExecutionStarted { session_id } => {
                        checker.mark_executing(*session_id).await?;
                    }
                    Event::ExecutionFinished { session_id }
                    | Event::ExecutionTimeout { session_id }
                    | Event::ExecutionCancelled { session_id } => {
                        checker.touch(*session_id).await?;
                    }
                    _ => {}
                }
                Ok::<(), HandlerError>(())
            }
        });
    }
}

/// `handle_destroy_session`: a session that is gone or cannot be destroyed now is logged; only a
/// database failure is the handler's (the event is handled again).
async fn terminate(destroyer: &Destroyer, received: &Received) -> Result<(), HandlerError> {
    let Event::DoTerminateSession { session_id, reason } = &received.event else {
        return Ok(());
    };
    let reason = if reason.is_empty() {
        KILLED_BY_EVENT
    } else {
        reason.as_str()
    };
    let request = DestroyRequest {
        forced: false,
        reason: Some(reason),
        superadmin: false,
    };
    match destroyer.destroy(*session_id, request).await {
        Ok(_) => {
            tracing::info!(session.id = %session_id, "session destroyed ({reason})");
            Ok(())
        }
        Err(DestroyError::Db(error)) => Err(HandlerError::from(*error)),
        Err(error) => {
            tracing::warn!(session.id = %session_id, "do_terminate_session ({reason}): {error}");
            Ok(())
        }
    }
}

/// Runs a check for every burst of `do_idle_check` events and, with `timer`, every check
/// interval, one at a time, until `shutdown`. The server runs no local timer: the global timer of
/// `bai-locks` produces `do_idle_check` about once per interval cluster-wide.
pub async fn run_idle_checker(
    checker: IdleChecker,
    mut bursts: Coalesced,
    timer: bool,
    shutdown: CancellationToken,
) {
    let mut ticks = timer.then(|| {
        let mut ticks = tokio::time::interval(checker.check_interval());
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    });
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            burst = bursts.next() => if burst.is_none() { return },
            () = tick(&mut ticks) => {}
        }
        match checker.check().await {
            Ok(verdicts) if !verdicts.is_empty() => {
                tracing::debug!("idle check: {} session(s) asked to end", verdicts.len());
            }
            Ok(_) => {}
            Err(error) => tracing::error!("idle check: {error}"),
        }
    }
}

async fn tick(ticks: &mut Option<tokio::time::Interval>) {
    match ticks {
        Some(ticks) => {
            ticks.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// What the checkers last reported about a session, as the reference's
/// `get_idle_check_report` answers: checker name → `remaining` (seconds, -1 once ran out, null
/// before the first report), `remaining_time_type` and `extra`, in the checkers' order.
#[derive(Clone, Debug, PartialEq)]
pub struct IdleCheckReport {
    checkers: Vec<CheckerReport>,
}

#[derive(Clone, Debug, PartialEq)]
struct CheckerReport {
    name: &'static str,
    remaining: Option<Value>,
    remaining_time_type: &'static str,
    extra: Option<Value>,
}

impl IdleCheckReport {
    /// As JSON (object keys sorted).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.checkers
                .iter()
                .map(|report| {
                    let value = |value: &Option<Value>| {
                        value
                            .as_ref()
                            .map_or(serde_json::Value::Null, bai_events::to_json)
                    };
                    (
                        report.name.to_owned(),
                        serde_json::json!({
                            "remaining": value(&report.remaining),
                            "remaining_time_type": report.remaining_time_type,
                            "extra": value(&report.extra),
                        }),
                    )
                })
                .collect(),
        )
    }
}

/// Serialized in the reference's order.
impl Serialize for IdleCheckReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.checkers.len()))?;
        for report in &self.checkers {
            map.serialize_entry(report.name, report)?;
        }
        map.end()
    }
}

impl Serialize for CheckerReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut report = serializer.serialize_struct("ReportInfo", 3)?;
        report.serialize_field("remaining", &self.remaining.as_ref().map(Ordered))?;
        report.serialize_field("remaining_time_type", self.remaining_time_type)?;
        report.serialize_field("extra", &self.extra.as_ref().map(Ordered))?;
        report.end()
    }
}

/// A decoded msgpack value serialized with its maps in their stored order.
struct Ordered<'a>(&'a Value);

impl Serialize for Ordered<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Nil => serializer.serialize_none(),
            Value::Boolean(flag) => serializer.serialize_bool(*flag),
            Value::Integer(number) => match (number.as_i64(), number.as_u64()) {
                (Some(number), _) => serializer.serialize_i64(number),
                (None, Some(number)) => serializer.serialize_u64(number),
                (None, None) => serializer.serialize_none(),
            },
            Value::F32(number) => serializer.serialize_f64(f64::from(*number)),
            Value::F64(number) => serializer.serialize_f64(*number),
            Value::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&Ordered(item))?;
                }
                seq.end()
            }
            Value::Map(pairs) => {
                let mut map = serializer.serialize_map(Some(pairs.len()))?;
                for (key, value) in pairs {
                    let key = match key.as_str() {
                        Some(key) => key.to_owned(),
                        None => key.to_string(),
                    };
                    map.serialize_entry(&key, &Ordered(value))?;
                }
                map.end()
            }
            other => bai_events::to_json(other).serialize(serializer),
        }
    }
}

/// What the checkers last reported about session `session_id` (`get_idle_check_report`), for
/// the checkers that run now (`session_lifetime` and those etcd `config/idle/enabled` lists).
/// A report that cannot be decoded shows as null (logged).
pub async fn idle_check_report(
    etcd: &EtcdStore,
    live: &LiveDb,
    session_id: Uuid,
) -> Result<IdleCheckReport, IdleError> {
    let config = IdleCheckerConfig::load(etcd).await?;
    let kinds = kinds(&config.enabled);
    let wanted: Vec<(&str, Option<&str>)> = kinds
        .iter()
        .map(|kind| (kind.name, kind.extra_key))
        .collect();
    let stored = live.idle().reports(session_id, &wanted).await?;
    let decode = |what: &str, packed: Option<Vec<u8>>| {
        packed.and_then(|packed| match bai_events::codec::decode(&packed) {
            Ok(value) => Some(value),
            Err(error) => {
                tracing::warn!(session.id = %session_id, "unreadable idle check {what} in Redis: {error}");
                None
            }
        })
    };
    Ok(IdleCheckReport {
        checkers: kinds
            .iter()
            .zip(stored)
            .map(|(kind, stored)| CheckerReport {
                name: kind.name,
                remaining: decode("report", stored.remaining),
                remaining_time_type: kind.remaining_time_type,
                extra: decode("extra information", stored.extra),
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_time_counts_from_the_later_of_baseline_and_grace_period() {
        assert!((remaining_time(100.0, 90.0, 30.0, None) - 20.0).abs() < 1e-9);
        assert!((remaining_time(100.0, 90.0, 30.0, Some(95.0)) - 25.0).abs() < 1e-9);
        assert!((remaining_time(100.0, 90.0, 30.0, Some(50.0)) - 20.0).abs() < 1e-9);
    }

    #[test]
    fn metrics_of_slots_a_session_lacks_are_not_judged() {
        let slots = ResourceSlot::from_json(
            &serde_json::json!({"cpu": "1", "mem": "1073741824", "cuda.shares": "0"}),
        )
        .expect("slots");
        assert_eq!(
            unavailable_metrics(&slots),
            ["cuda_util", "cuda_mem", "atom_mem"]
        );
    }

    #[test]
    fn series_roundtrip_and_memory_is_reported_in_whole_bytes() {
        let series = vec![
            ("cpu_util".to_owned(), vec![1.5, 2.0]),
            ("mem".to_owned(), vec![]),
        ];
        assert_eq!(decode_series(&encode_series(&series)), Some(series));
        let extra = utilization_extra(
            ThresholdsCheckOperator::Or,
            &[("cpu_util", 1.75, 30.0), ("mem", 12.9, 30.0)],
        );
        let report = IdleCheckReport {
            checkers: vec![CheckerReport {
                name: "utilization",
                remaining: Some(Value::from(RAN_OUT)),
                remaining_time_type: "grace_period",
                extra: Some(extra),
            }],
        };
        assert_eq!(
            serde_json::to_string(&report).expect("json"),
            r#"{"utilization":{"remaining":-1,"remaining_time_type":"grace_period","extra":{"thresholds_check_operator":"or","resources":{"cpu_util":[1.75,30.0],"mem":[12,30]}}}}"#
        );
    }
}
