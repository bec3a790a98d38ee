//! The kernels behind the resource usage reports (`/resource/usage/*`, `/resource/stats/*`): the
//! rows whose life overlaps a period, with the names of their project and user, and the kernels
//! that ended within the last days for the time-binned statistics.
//!
//! Periods are given as local wall-clock times in the configured time zone (etcd
//! `config/system/timezone`); PostgreSQL turns them into instants (`AT TIME ZONE`), and counts the
//! calendar days a kernel used in that zone, so no time zone database is needed here.

use chrono::{DateTime, NaiveDateTime, Utc};
use sea_orm::prelude::{DateTimeWithTimeZone, Json, Uuid};
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, Statement, Value};

use crate::entities::ResourceSlot;
use crate::error::DbError;

/// Whose names a kernel is reported under.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Attribution {
    /// The kernel's own columns: its `group_id`, `user_uuid`, `access_key`, `domain_name` and
    /// `session_name` (the reference's monthly report).
    Kernel,
    /// Its session's: `sessions.group_id`, `user_uuid`, `access_key`, `domain_name` and `name`
    /// (the reference's per-period report).
    Session,
}

/// A period in local wall-clock time: `[start, end)`.
#[derive(Clone, Copy, Debug)]
pub struct LocalPeriod<'a> {
    pub start: NaiveDateTime,
    pub end: NaiveDateTime,
    /// An IANA name (`UTC`, `Asia/Seoul`) PostgreSQL knows.
    pub timezone: &'a str,
}

/// One kernel of a usage report.
#[derive(Clone, Debug, FromQueryResult)]
pub struct UsageKernel {
    pub id: Uuid,
    pub container_id: Option<String>,
    pub session_id: Uuid,
    pub session_name: Option<String>,
    pub access_key: Option<String>,
    pub agent: Option<String>,
    pub domain_name: String,
    pub project_id: Uuid,
    pub project_name: String,
    pub user_uuid: Uuid,
    pub user_email: String,
    pub full_name: Option<String>,
    pub attached_devices: Option<Json>,
    pub occupied_slots: ResourceSlot,
    pub resource_opts: Option<Json>,
    pub vfolder_mounts: Option<Json>,
    /// The host directories (third item) of a legacy two-dimensional `mounts` array; `None` when
    /// `mounts` is not one.
    pub legacy_mount_hosts: Option<Vec<String>>,
    pub image: Option<String>,
    /// The status name (`TERMINATED`).
    pub status: String,
    pub status_info: Option<String>,
    pub status_changed: Option<DateTimeWithTimeZone>,
    pub status_history: Option<Json>,
    pub last_stat: Option<Json>,
    pub created_at: Option<DateTimeWithTimeZone>,
    pub terminated_at: Option<DateTimeWithTimeZone>,
    pub cluster_mode: String,
    /// Calendar days from creation to termination in the period's time zone, both counted;
    /// `None` while the kernel has not terminated.
    pub used_days: Option<i32>,
}

/// How the kernels are ordered in the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UsageOrder {
    /// Terminated first, earliest termination first (still running last), then by creation and id.
    Termination,
    /// By creation, then id.
    Creation,
}

/// The kernels whose life overlaps `period`: TERMINATED or RUNNING ones that ended at or after its
/// start and were created before its end, and RUNNING ones created before its end (a RUNNING
/// kernel has no end yet). With `project`, only kernels reported under that project.
///
/// Kernels whose project or user row is gone are left out (the reference fails on them).
pub async fn kernels_in_period(
    db: &impl ConnectionTrait,
    period: LocalPeriod<'_>,
    attribution: Attribution,
    project: Option<Uuid>,
    order: UsageOrder,
) -> Result<Vec<UsageKernel>, DbError> {
    let (owner_columns, owner_joins) = match attribution {
        Attribution::Kernel => (
            "k.session_name AS session_name, k.access_key AS access_key, \
             k.domain_name AS domain_name, k.group_id AS project_id, k.user_uuid AS user_uuid",
            "JOIN groups AS g ON g.id = k.group_id JOIN users AS u ON u.uuid = k.user_uuid",
        ),
        Attribution::Session => (
            "s.name AS session_name, s.access_key AS access_key, \
             s.domain_name AS domain_name, s.group_id AS project_id, s.user_uuid AS user_uuid",
            "JOIN sessions AS s ON s.id = k.session_id \
             JOIN groups AS g ON g.id = s.group_id JOIN users AS u ON u.uuid = s.user_uuid",
        ),
    };
    let order_by = match order {
        UsageOrder::Termination => "k.terminated_at ASC NULLS LAST, k.created_at, k.id",
        UsageOrder::Creation => "k.created_at, k.id",
    };
    let mut values: Vec<Value> = vec![
        period.start.into(),
        period.end.into(),
        period.timezone.to_owned().into(),
    ];
    let project_filter = match project {
        Some(id) => {
            values.push(id.into());
            "AND g.id = $4"
        }
        None => "",
    };
    let sql = format!(
        "SELECT k.id, k.container_id, k.session_id, {owner_columns}, k.agent, \
         g.name AS project_name, u.email AS user_email, u.full_name, \
         k.attached_devices, k.occupied_slots, k.resource_opts, k.vfolder_mounts, \
         CASE WHEN array_ndims(k.mounts) = 2 THEN \
           ARRAY(SELECT k.mounts[i][3] FROM generate_subscripts(k.mounts, 1) AS i) \
         END AS legacy_mount_hosts, \
         k.image, k.status::text AS status, k.status_info, k.status_changed, k.status_history, \
         k.last_stat, k.created_at, k.terminated_at, k.cluster_mode, \
         ((k.terminated_at AT TIME ZONE $3::text)::date \
           - (k.created_at AT TIME ZONE $3::text)::date + 1) \
           AS used_days \
         FROM kernels AS k {owner_joins} \
         WHERE ((k.terminated_at >= ($1::timestamp AT TIME ZONE $3::text) \
                 AND k.created_at < ($2::timestamp AT TIME ZONE $3::text) \
                 AND k.status IN ('TERMINATED', 'RUNNING')) \
             OR (k.created_at < ($2::timestamp AT TIME ZONE $3::text) AND k.status = 'RUNNING')) \
         {project_filter} \
         ORDER BY {order_by}"
    );
    UsageKernel::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        values,
    ))
    .all(db)
    .await
    .map_err(DbError::query(format!(
        "reading the kernels used from {} to {} ({})",
        period.start, period.end, period.timezone
    )))
}

/// One kernel of the time-binned statistics.
#[derive(Clone, Debug, FromQueryResult)]
pub struct BinnedKernel {
    pub id: Uuid,
    pub created_at: DateTimeWithTimeZone,
    pub terminated_at: DateTimeWithTimeZone,
    pub occupied_slots: ResourceSlot,
}

/// The TERMINATED or RUNNING kernels (of `user`, or everyone's) that terminated at or after
/// `since`, by creation then id. Kernels without a creation time cannot be placed and are left out.
pub async fn kernels_terminated_since(
    db: &impl ConnectionTrait,
    since: DateTime<Utc>,
    user: Option<Uuid>,
) -> Result<Vec<BinnedKernel>, DbError> {
    let mut values: Vec<Value> = vec![since.into()];
    let user_filter = match user {
        Some(uuid) => {
            values.push(uuid.into());
            "AND k.user_uuid = $2"
        }
        None => "",
    };
    let sql = format!(
        "SELECT k.id, k.created_at, k.terminated_at, k.occupied_slots FROM kernels AS k \
         WHERE k.terminated_at >= $1 AND k.created_at IS NOT NULL \
         AND k.status IN ('TERMINATED', 'RUNNING') {user_filter} \
         ORDER BY k.created_at, k.id"
    );
    BinnedKernel::find_by_statement(Statement::from_sql_and_values(
        DbBackend::Postgres,
        sql,
        values,
    ))
    .all(db)
    .await
    .map_err(DbError::query(format!(
        "reading the kernels terminated since {since}"
    )))
}
