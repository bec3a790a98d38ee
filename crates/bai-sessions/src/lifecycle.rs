//! What the agents' kernel events do to sessions (spec §4.9, §4.10): `kernel_pulling` and
//! `kernel_creating` move a kernel on, `kernel_started` makes it RUNNING with what the agent
//! allocated, `kernel_terminated` releases its slots; after each, the session's status is
//! recomputed from its kernels, and `session_started` / `session_terminated` announce the two
//! ends.
//!
//! Unlike the reference, a session's status only ever moves by the transition map: a late
//! `kernel_pulling` does not pull a session back from TERMINATING, and a `kernel_started`
//! delivered twice adds its allocation to the session once.

use std::sync::Arc;

use bai_db_models::DbError;
use bai_db_models::entities::ResourceSlot;
use bai_db_models::entities::enums::{KernelStatus, SessionStatus};
use bai_db_models::queries::session_lifecycle::{self, KernelStatuses, StartedKernel};
use bai_events::{
    Event, EventProducer, HandlerError, Handlers, KernelCreation, KernelTermination, Received,
    SessionCreation, SessionTermination,
};
use bai_redis::StatDb;
use bai_scheduler::Slots;
use sea_orm::DatabaseConnection;
use sea_orm::prelude::Uuid;

use crate::status::{kernel_may_go, session_may_go, session_status_from_kernels};

/// Why a kernel event could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Db(Box<DbError>),
    #[error("kernel {kernel_id}: kernel_started carries an unusable creation_info: {detail}")]
    CreationInfo { kernel_id: Uuid, detail: String },
    #[error("announcing {event} of session {session_id}: {source}")]
    Produce {
        event: &'static str,
        session_id: Uuid,
        source: bai_redis::RedisError,
    },
}

impl From<DbError> for LifecycleError {
    fn from(error: DbError) -> Self {
        LifecycleError::Db(Box::new(error))
    }
}

/// Applies kernel events to the database and announces session-level changes.
#[derive(Debug)]
pub struct Lifecycle {
    db: DatabaseConnection,
    producer: EventProducer,
    stat: StatDb,
}

impl Lifecycle {
    /// `stat` (Redis database 0) holds the kernels' last statistics, kept on termination.
    pub fn new(db: DatabaseConnection, producer: EventProducer, stat: StatDb) -> Lifecycle {
        Lifecycle { db, producer, stat }
    }

    /// `kernel_pulling`: the kernel is PULLING with the image as its `status_info`.
    pub async fn kernel_pulling(&self, event: &KernelCreation) -> Result<(), LifecycleError> {
        self.move_kernel(event, KernelStatus::Pulling).await
    }

    /// `kernel_creating`: the kernel is PREPARING again after its pull.
    pub async fn kernel_creating(&self, event: &KernelCreation) -> Result<(), LifecycleError> {
        self.move_kernel(event, KernelStatus::Preparing).await
    }

    async fn move_kernel(
        &self,
        event: &KernelCreation,
        to: KernelStatus,
    ) -> Result<(), LifecycleError> {
        let reason = (!event.reason.is_empty()).then_some(event.reason.as_str());
        let moved =
            session_lifecycle::set_kernel_status(&self.db, event.kernel_id, to, reason, |from| {
                kernel_may_go(from, to)
            })
            .await?;
        if moved {
            self.recompute(event.session_id, None).await?;
        }
        Ok(())
    }

    /// `kernel_started`: the kernel is RUNNING with its ports, container and actual allocation,
    /// which the session's `occupying_slots` gains; when the session becomes RUNNING,
    /// `session_started` is announced.
    pub async fn kernel_started(&self, event: &KernelCreation) -> Result<(), LifecycleError> {
        let started = started_kernel(event)?;
        let moved = session_lifecycle::start_kernel(
            &self.db,
            event.session_id,
            event.kernel_id,
            &started,
            |from| kernel_may_go(from, KernelStatus::Running),
            add_slots,
        )
        .await?;
        if !moved {
            return Ok(());
        }
        if self.recompute(event.session_id, None).await? == Some(SessionStatus::Running) {
            let creation_id = session_lifecycle::creation_id(&self.db, event.session_id).await?;
            self.announce(Event::SessionStarted(SessionCreation {
                session_id: event.session_id,
                creation_id: creation_id.unwrap_or_default(),
                reason: String::new(),
            }))
            .await?;
        }
        Ok(())
    }

    /// `kernel_terminated`: the kernel is TERMINATED with its exit code and last statistics, its
    /// agent's occupancy recomputed; when the session is over, `session_terminated` is announced.
    pub async fn kernel_terminated(&self, event: &KernelTermination) -> Result<(), LifecycleError> {
        // Statistics are a nicety: a Redis hiccup must not keep the kernel alive in the database.
        let last_stat = match self.stat.live_stat(&event.kernel_id.to_string()).await {
            Ok(stat) => stat,
            Err(error) => {
                tracing::warn!(kernel.id = %event.kernel_id, "cannot read the kernel's last statistics: {error}");
                None
            }
        };
        // A kernel already terminated (its destroyer did it) still has its session looked at,
        // as the reference's `check_session_terminated` does.
        let terminated = session_lifecycle::terminate_kernel(
            &self.db,
            event.kernel_id,
            &event.reason,
            Some(event.exit_code),
            last_stat,
            sum_slots,
        )
        .await?;
        if let Some(access_key) = terminated.and_then(|kernel| kernel.access_key) {
            sync_concurrency(&self.db, &self.stat, [access_key]).await;
        }
        let over = self
            .recompute(event.session_id, Some(&event.reason))
            .await?;
        if matches!(
            over,
            Some(SessionStatus::Terminated | SessionStatus::Cancelled)
        ) {
            self.announce(Event::SessionTerminated(SessionTermination {
                session_id: event.session_id,
                reason: event.reason.clone(),
            }))
            .await?;
        }
        Ok(())
    }

    /// The session's status from its kernels, written when the transition map allows it.
    async fn recompute(
        &self,
        session_id: Uuid,
        status_info: Option<&str>,
    ) -> Result<Option<SessionStatus>, DbError> {
        session_lifecycle::recompute_session_status(
            &self.db,
            session_id,
            status_info,
            derive_session_status,
        )
        .await
    }

    async fn announce(&self, event: Event) -> Result<(), LifecycleError> {
        let session_id = match &event {
            Event::SessionStarted(creation) => creation.session_id,
            Event::SessionTerminated(termination) => termination.session_id,
            _ => Uuid::nil(),
        };
        self.producer
            .produce(&event, "manager")
            .await
            .map_err(|source| LifecycleError::Produce {
                event: event.name(),
                session_id,
                source,
            })?;
        Ok(())
    }
}

/// The new status of a session in `current` with `kernels`, if it differs and may be taken.
fn derive_session_status(
    current: SessionStatus,
    kernels: &KernelStatuses,
) -> Option<SessionStatus> {
    let main = kernels.main?;
    let derived = session_status_from_kernels(main, kernels.siblings.iter().copied());
    (derived != current && session_may_go(current, derived)).then_some(derived)
}

/// The columns `kernel_started`'s `creation_info` sets.
fn started_kernel(event: &KernelCreation) -> Result<StartedKernel, LifecycleError> {
    let info = &event.creation_info;
    let bad = |detail: String| LifecycleError::CreationInfo {
        kernel_id: event.kernel_id,
        detail,
    };
    let allocations = &info["resource_spec"]["allocations"];
    let allocated = bai_scheduler::allocated_slots(allocations).map_err(bad)?;
    let port = |name: &str| -> Result<i32, LifecycleError> {
        info[name]
            .as_i64()
            .and_then(|port| i32::try_from(port).ok())
            .ok_or_else(|| bad(format!("{name} is not a port: {}", info[name])))
    };
    let text = |name: &str| info[name].as_str().map(str::to_owned);
    let agent_host = text("agent_addr").and_then(|addr| host_of(&addr));
    Ok(StartedKernel {
        occupied_slots: ResourceSlot::from(&allocated),
        scaling_group: text("scaling_group"),
        container_id: text("container_id"),
        attached_devices: match &info["attached_devices"] {
            serde_json::Value::Null => serde_json::json!({}),
            devices => devices.clone(),
        },
        kernel_host: text("kernel_host").or(agent_host),
        repl_in_port: port("repl_in_port")?,
        repl_out_port: port("repl_out_port")?,
        stdin_port: port("stdin_port")?,
        stdout_port: port("stdout_port")?,
        service_ports: match &info["service_ports"] {
            serde_json::Value::Null => serde_json::json!([]),
            ports => ports.clone(),
        },
    })
}

/// The host of `tcp://host:port`.
fn host_of(addr: &str) -> Option<String> {
    let rest = addr.split_once("://").map_or(addr, |(_, rest)| rest);
    let host = rest.rsplit_once(':').map_or(rest, |(host, _)| host);
    (!host.is_empty()).then(|| host.trim_matches(['[', ']']).to_owned())
}

fn add_slots(a: &ResourceSlot, b: &ResourceSlot) -> ResourceSlot {
    ResourceSlot::from(&Slots::from(a).add(&mut Slots::from(b)))
}

pub(crate) fn sum_slots(held: &[ResourceSlot]) -> ResourceSlot {
    let mut total = Slots::default();
    for slots in held {
        total.add_assign(&mut Slots::from(slots));
    }
    ResourceSlot::from(&total)
}

/// Writes the Redis counters of running sessions (`keypair.concurrency_used.{ak}` and the SFTP
/// one) of `access_keys` from the rows, for the admin API and older tools that read them; the
/// scheduler itself counts from the rows. A failure is logged: the next change writes them again.
pub(crate) async fn sync_concurrency(
    db: &DatabaseConnection,
    stat: &StatDb,
    access_keys: impl IntoIterator<Item = String>,
) {
    let keys: std::collections::BTreeSet<String> = access_keys.into_iter().collect();
    if keys.is_empty() {
        return;
    }
    let counts = match bai_db_models::queries::scheduling::concurrency_used(db, &keys).await {
        Ok(counts) => counts,
        Err(error) => {
            tracing::warn!("cannot count the running sessions of {keys:?}: {error}");
            return;
        }
    };
    for (key, (used, sftp_used)) in counts {
        if let Err(error) = stat.set_keypair_concurrency(&key, used, sftp_used).await {
            tracing::warn!(
                access_key = key,
                "cannot record the keypair's concurrency: {error}"
            );
        }
    }
}

/// Sets every agent's `occupied_slots` to what its kernels hold: what a manager does when it
/// starts, so that occupancy is derived from the kernels whatever happened before. Returns how
/// many agents there are.
pub async fn recompute_agent_occupancy(db: &DatabaseConnection) -> Result<usize, DbError> {
    bai_db_models::queries::scheduling::recompute_all_agent_occupancy(db, sum_slots).await
}

/// The lifecycle's event handlers, for a consumer of `bai-events` (one manager process handles
/// each event).
pub fn handlers(lifecycle: &Arc<Lifecycle>, into: &mut Handlers) {
    for (event, handler) in [
        ("kernel_pulling", "handle_kernel_pulling"),
        ("kernel_creating", "handle_kernel_creating"),
        ("kernel_started", "handle_kernel_started"),
        ("kernel_terminated", "handle_kernel_terminated"),
    ] {
        let lifecycle = Arc::clone(lifecycle);
        into.on(event, handler, move |received| {
            let lifecycle = Arc::clone(&lifecycle);
            async move { lifecycle.handle(&received).await }
        });
    }
}

impl Lifecycle {
    async fn handle(&self, received: &Received) -> Result<(), HandlerError> {
        let outcome = match &received.event {
            Event::KernelPulling(event) => self.kernel_pulling(event).await,
            Event::KernelCreating(event) => self.kernel_creating(event).await,
            Event::KernelStarted(event) => self.kernel_started(event).await,
            Event::KernelTerminated(event) => self.kernel_terminated(event).await,
            _ => Ok(()),
        };
        outcome.map_err(HandlerError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_read_from_agent_addresses() {
        assert_eq!(host_of("tcp://10.0.0.5:6001").as_deref(), Some("10.0.0.5"));
        assert_eq!(host_of("tcp://[::1]:6001").as_deref(), Some("::1"));
        assert_eq!(host_of("tcp://:6001"), None);
    }

    #[test]
    fn a_session_moves_only_where_the_map_allows() {
        let kernels = |main, siblings: &[KernelStatus]| KernelStatuses {
            main: Some(main),
            siblings: siblings.to_vec(),
        };
        assert_eq!(
            derive_session_status(
                SessionStatus::Preparing,
                &kernels(KernelStatus::Running, &[KernelStatus::Running])
            ),
            Some(SessionStatus::Running)
        );
        // Still waiting for a sibling.
        assert_eq!(
            derive_session_status(
                SessionStatus::Preparing,
                &kernels(KernelStatus::Running, &[KernelStatus::Preparing])
            ),
            None
        );
        // A late pull does not bring a terminating session back.
        assert_eq!(
            derive_session_status(
                SessionStatus::Terminating,
                &kernels(KernelStatus::Pulling, &[])
            ),
            None
        );
        assert_eq!(
            derive_session_status(
                SessionStatus::Terminating,
                &KernelStatuses {
                    main: None,
                    siblings: vec![KernelStatus::Terminated]
                }
            ),
            None
        );
    }
}
