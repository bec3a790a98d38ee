//! Model services (the reference's `ScheduleDispatcher.scale_services` and the route handlers of
//! `registry.py`): keeping each endpoint's number of inference sessions.
//!
//! On `do_scale` (the global timer of lock 193), [`Scaler::scale_services`] deletes the routes
//! whose session ended without the route noticing, then compares each CREATED or DESTROYING
//! endpoint's routes (those not FAILED_TO_START) with its `desired_session_count`: extra routes
//! that are neither PROVISIONING nor TERMINATING have their sessions destroyed (UNHEALTHY ones
//! last, as the reference sorts them), missing routes are inserted PROVISIONING and announced
//! with `route_created`, unless the endpoint failed more than [`SERVICE_MAX_RETRIES`] times. A
//! DESTROYING endpoint without routes is marked DESTROYED.
//!
//! On `route_created`, [`Scaler::create_route_session`] enqueues the route's INFERENCE session
//! (named `{endpoint}-{route id}`, owned by the endpoint's session owner) with the same rules as
//! `POST /session` (`bai_scheduler::enqueue`) and the same rows ([`crate::pending`]), binds it to
//! the route and announces `session_enqueued`; the scheduler starts it like any other. A session
//! that cannot be created marks the route FAILED_TO_START with the reason and counts a retry.
//! The session events move the route: `session_cancelled` to FAILED_TO_START (a retry counted),
//! `session_terminating` to TERMINATING, `session_terminated` deletes it; the agent's
//! `model_service_status_updated` makes it HEALTHY or UNHEALTHY, and once as many routes are
//! HEALTHY as desired, the endpoint's errors are forgotten.
//!
//! The model folder is mounted at `model_mount_destination` in the reference, which asks the
//! folder's storage proxy for the mount path. Sessions here cannot mount folders yet: the route of
//! an endpoint whose model folder still exists fails as the reference's would with no storage
//! proxy to ask (`There is no such storage proxy`), or, when etcd names the proxy, with the
//! mount reported unsupported. An endpoint whose model folder was deleted (`model` is null) mounts
//! nothing, in the reference as here. No app proxy is told about routes: this manager does not
//! talk to app proxies (the reference logs its failures to reach one and goes on).

use std::sync::Arc;
use std::time::Duration;

use bai_db_models::DbError;
use bai_db_models::entities::endpoints;
use bai_db_models::entities::enums::{EndpointLifecycle, RouteStatus, SessionType};
use bai_db_models::image_ref::{ImageRef, KnownRegistries};
use bai_db_models::queries::endpoints::{self as queries, RouteOfEndpoint};
use bai_db_models::queries::image_listing;
use bai_db_models::queries::scaling_groups;
use bai_db_models::queries::session_enqueue::{self, EnqueueWriteError};
use bai_etcd_store::EtcdStore;
use bai_events::{
    Coalesced, Event, EventProducer, HandlerError, Handlers, Received, SessionCreation, Trigger,
};
use bai_scheduler::KnownSlots;
use bai_scheduler::enqueue::{
    self as rules, EnqueueError, KernelResourceInput, ScalingGroupCandidate,
};
use sea_orm::DatabaseConnection;
use sea_orm::prelude::Uuid;
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use crate::pending::{ImageRefusal, PendingRows, PendingSession, dotfile_data, image_refusal};
use crate::{DestroyError, DestroyRequest, Destroyer};

/// An endpoint that failed to start a session more often than this is UNHEALTHY, and no more
/// sessions are created for it until its errors are cleared (the reference's
/// `SERVICE_MAX_RETRIES`).
pub const SERVICE_MAX_RETRIES: i32 = 5;
/// The reason the sessions of a shrinking service are destroyed with.
pub const SERVICE_SCALED_DOWN: &str = "service-scaled-down";
/// `do_scale` events closer together than this run one round.
const COALESCE_WAIT: Duration = Duration::from_millis(500);
const COALESCE_BATCH: usize = 32;

/// Why a scaling round or a route update did not finish.
#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    #[error(transparent)]
    Db(Box<DbError>),
    #[error("producing {event}: {detail}")]
    Produce { event: &'static str, detail: String },
}

impl From<DbError> for ScaleError {
    fn from(error: DbError) -> Self {
        ScaleError::Db(Box::new(error))
    }
}

/// Why the session of a route was not created: the reference's exception, by class name and
/// `repr`, as the route's `error_data` records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreationFailure {
    pub name: String,
    pub repr: String,
}

impl CreationFailure {
    /// A failure as the reference's `BackendError` subclass `name` with `message`.
    fn api(name: &str, message: &str) -> CreationFailure {
        CreationFailure {
            name: name.to_owned(),
            repr: format!("<{name}: {message}>"),
        }
    }

    fn from_enqueue(error: EnqueueError) -> CreationFailure {
        match error {
            EnqueueError::InvalidParameters(message) => {
                CreationFailure::api("InvalidAPIParameters", &message)
            }
            EnqueueError::QuotaExceeded(message) => CreationFailure::api("QuotaExceeded", &message),
            EnqueueError::ScalingGroupNotFound(message) => {
                CreationFailure::api("ScalingGroupNotFound", &message)
            }
        }
    }
}

/// What one round did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScaleRound {
    /// Routes of ended sessions deleted.
    pub zombies_deleted: u64,
    /// Sessions destroyed to shrink services.
    pub sessions_destroyed: Vec<Uuid>,
    /// Routes created to grow services.
    pub routes_created: Vec<Uuid>,
    /// Endpoints marked DESTROYED.
    pub endpoints_destroyed: Vec<Uuid>,
}

/// Keeps the model services' sessions.
#[derive(Clone, Debug)]
pub struct Scaler {
    db: DatabaseConnection,
    etcd: EtcdStore,
    producer: EventProducer,
    destroyer: Destroyer,
}

impl Scaler {
    pub fn new(
        db: DatabaseConnection,
        etcd: EtcdStore,
        producer: EventProducer,
        destroyer: Destroyer,
    ) -> Scaler {
        Scaler {
            db,
            etcd,
            producer,
            destroyer,
        }
    }

    /// One round of `scale_services`.
    pub async fn scale_services(&self) -> Result<ScaleRound, ScaleError> {
        let mut round = ScaleRound {
            zombies_deleted: queries::delete_zombie_routes(&self.db).await?,
            ..ScaleRound::default()
        };
        if round.zombies_deleted > 0 {
            tracing::info!("Cleared {} zombie routes", round.zombies_deleted);
        }
        let mut to_destroy: Vec<Uuid> = Vec::new();
        let mut to_expand: Vec<(endpoints::Model, usize)> = Vec::new();
        let mut to_mark_destroyed: Vec<Uuid> = Vec::new();
        for (endpoint, routes) in queries::scaling_targets(&self.db).await? {
            let active: Vec<_> = routes
                .iter()
                .filter(|route| route.status != RouteStatus::FailedToStart)
                .collect();
            let desired = usize::try_from(endpoint.desired_session_count).unwrap_or(0);
            if endpoint.lifecycle_stage == EndpointLifecycle::Destroying && active.is_empty() {
                to_mark_destroyed.push(endpoint.id);
                continue;
            }
            if active.len() > desired {
                let mut removable: Vec<_> = active
                    .iter()
                    .filter(|route| {
                        !matches!(
                            route.status,
                            RouteStatus::Provisioning | RouteStatus::Terminating
                        )
                    })
                    .collect();
                // Healthy first: `sorted(key=status == UNHEALTHY)` puts the unhealthy last.
                removable.sort_by_key(|route| route.status == RouteStatus::Unhealthy);
                to_destroy.extend(
                    removable
                        .iter()
                        .take(active.len() - desired)
                        .filter_map(|route| route.session),
                );
                tracing::debug!(
                    "Shrinking {} from {} to {}",
                    endpoint.name,
                    active.len(),
                    desired
                );
            } else if active.len() < desired {
                if endpoint.retries > SERVICE_MAX_RETRIES {
                    continue;
                }
                tracing::debug!(
                    "Expanding {} from {} to {}",
                    endpoint.name,
                    active.len(),
                    desired
                );
                to_expand.push((endpoint, desired - active.len()));
            }
        }
        let mut already_gone = Vec::new();
        for session_id in to_destroy {
            let request = DestroyRequest {
                forced: true,
                reason: Some(SERVICE_SCALED_DOWN),
                superadmin: false,
            };
            match self.destroyer.destroy(session_id, request).await {
                Ok(_) => round.sessions_destroyed.push(session_id),
                // Ended while its route stayed: the route goes below.
                Err(DestroyError::NotFound(_) | DestroyError::Forbidden(_)) => {
                    already_gone.push(session_id);
                }
                Err(DestroyError::Db(error)) => return Err(ScaleError::Db(error)),
            }
        }
        for (endpoint, count) in &to_expand {
            tracing::debug!("Creating {count} session(s) for {}", endpoint.name);
            round
                .routes_created
                .extend(queries::insert_routes(&self.db, endpoint, *count).await?);
        }
        for route_id in &round.routes_created {
            let event = Event::RouteCreated {
                route_id: *route_id,
            };
            self.producer
                .produce(&event, "manager")
                .await
                .map_err(|error| ScaleError::Produce {
                    event: "route_created",
                    detail: error.to_string(),
                })?;
        }
        queries::mark_destroyed(&self.db, &to_mark_destroyed).await?;
        queries::delete_routes_of_sessions(&self.db, &already_gone).await?;
        round.endpoints_destroyed = to_mark_destroyed;
        Ok(round)
    }

    /// `handle_route_creation`: enqueues the session of route `route_id`, or marks the route
    /// FAILED_TO_START with the reason and counts a retry on its endpoint.
    pub async fn create_route_session(&self, route_id: Uuid) -> Result<(), ScaleError> {
        let Some(found) = queries::route_with_endpoint(&self.db, route_id).await? else {
            tracing::debug!("route {route_id} is gone before its session was created");
            return Ok(());
        };
        match self.enqueue_inference(&found).await? {
            Ok(session_id) => {
                tracing::info!(
                    "route {route_id} of {}: session {session_id} enqueued",
                    found.endpoint.name
                );
                Ok(())
            }
            Err(failure) => {
                tracing::warn!(
                    "route {route_id} of {}: cannot create its session: {}",
                    found.endpoint.name,
                    failure.repr
                );
                let error_data = json!({
                    "type": "creation_failed",
                    "errors": [{"src": "", "name": failure.name, "repr": failure.repr}],
                });
                queries::route_failed(&self.db, route_id, Some(error_data)).await?;
                Ok(())
            }
        }
    }

    /// The reference's `create_session(..., enqueue_only=True, route_id=...)` for a route: the
    /// outer error is ours (database, event bus), the inner one the session's refusal.
    async fn enqueue_inference(
        &self,
        found: &RouteOfEndpoint,
    ) -> Result<Result<Uuid, CreationFailure>, ScaleError> {
        let endpoint = &found.endpoint;
        let route = &found.route;
        let db = &self.db;
        let Some(access_key) = queries::access_key_of_user(db, endpoint.session_owner).await?
        else {
            return Ok(Err(CreationFailure::api(
                "InvalidAPIParameters",
                "Unknown owner access key",
            )));
        };
        let Some(owner) = session_enqueue::keypair_owner(db, &access_key).await? else {
            return Ok(Err(CreationFailure::api(
                "InvalidAPIParameters",
                "Unknown owner access key",
            )));
        };
        if !session_enqueue::is_active_domain(db, &endpoint.domain).await? {
            return Ok(Err(CreationFailure::api(
                "InvalidAPIParameters",
                "Invalid domain",
            )));
        }

        // The model folder: mounting needs its storage proxy (see the module's documentation).
        if let Some(model) = endpoint.model
            && let Some(failure) = self.mount_failure(model).await?
        {
            return Ok(Err(failure));
        }

        // create_session: the mount alias, the resources, the image.
        if endpoint.model.is_some()
            && let Err(error) = rules::check_mount_aliases(&[(
                endpoint.model.map(|id| id.to_string()).unwrap_or_default(),
                endpoint.model_mount_destination.clone(),
            )])
        {
            return Ok(Err(CreationFailure::from_enqueue(error)));
        }
        let known = match KnownSlots::load(&self.etcd).await {
            Ok(known) => known,
            Err(error) => {
                return Ok(Err(CreationFailure {
                    name: "EtcdError".to_owned(),
                    repr: error.to_string(),
                }));
            }
        };
        let resources: Vec<(String, Value)> = endpoint
            .resource_slots
            .to_json()
            .as_object()
            .map(|slots| {
                slots
                    .iter()
                    .map(|(slot, amount)| (slot.clone(), amount.clone()))
                    .collect()
            })
            .unwrap_or_default();
        if !resources.is_empty()
            && let Err(error) = rules::slots_from_user_input(&resources, &known)
        {
            return Ok(Err(CreationFailure::api(
                "InvalidAPIParameters",
                &format!("Invalid resource allocation: {error}"),
            )));
        }
        let Some(image) = image_listing::by_id(db, endpoint.image).await? else {
            return Ok(Err(CreationFailure::api(
                "ImageNotFound",
                "Unknown image references",
            )));
        };
        let image = image.image;
        match image_refusal(db, &image, endpoint.session_owner, &endpoint.domain).await? {
            None => {}
            Some(ImageRefusal::CustomizedForAnother) => {
                return Ok(Err(CreationFailure::api("ImageNotFound", "")));
            }
            Some(ImageRefusal::DisallowedRegistry) => {
                return Ok(Err(CreationFailure::api(
                    "ImageNotFound",
                    "unknown alias or disallowed registry",
                )));
            }
        }
        let name = format!("{}-{}", endpoint.name, route.id);
        let existing =
            session_enqueue::match_sessions(db, &name, Some(&access_key), false, false).await?;
        if let Some(session) = existing.first() {
            return Ok(Err(CreationFailure::api(
                "SessionAlreadyExists",
                &format!("existingSessionId: {}", session.id),
            )));
        }

        // enqueue_session: quota, resource group, kernel resources.
        let cluster_size = endpoint.cluster_size.max(1);
        if cluster_size > owner.policy.max_containers_per_session {
            return Ok(Err(CreationFailure::from_enqueue(
                EnqueueError::QuotaExceeded(format!(
                    "You cannot create session with more than {} containers.",
                    owner.policy.max_containers_per_session
                )),
            )));
        }
        let allowed =
            scaling_groups::allowed_for(db, &endpoint.domain, endpoint.project, &access_key)
                .await?;
        let candidates: Vec<ScalingGroupCandidate> =
            allowed.iter().map(ScalingGroupCandidate::from).collect();
        let scaling_group = match rules::select_scaling_group(
            &candidates,
            Some(&endpoint.resource_group),
            SessionType::Inference,
            true,
        ) {
            Ok(name) => name,
            Err(error) => return Ok(Err(CreationFailure::from_enqueue(error))),
        };
        let use_host_network = allowed
            .iter()
            .find(|sgroup| sgroup.name == scaling_group)
            .is_some_and(|sgroup| sgroup.use_host_network);
        let label = |name: &str| image.labels.get(name).and_then(Value::as_str);
        let image_ref = ImageRef::parse(
            &image.name,
            KnownRegistries::Listed(&[image.registry.as_str()]),
            &image.architecture,
        );
        let repository = image_ref
            .as_ref()
            .map_or(image.image.as_str(), |r| r.name());
        if let Err(error) =
            rules::check_image_role(SessionType::Inference, label("ai.backend.role"), repository)
        {
            return Ok(Err(CreationFailure::from_enqueue(error)));
        }
        let empty = Map::new();
        let resource_opts = endpoint
            .resource_opts
            .as_ref()
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let planned = match rules::kernel_resources(KernelResourceInput {
            resources: (!resources.is_empty()).then_some(resources.as_slice()),
            resource_opts,
            image_labels: &image.labels,
            image_resources: &image.resources,
            known: &known,
        }) {
            Ok(planned) => planned,
            Err(error) => return Ok(Err(CreationFailure::from_enqueue(error))),
        };
        let (project_dotfiles, domain_dotfiles) =
            session_enqueue::project_and_domain_dotfiles(db, endpoint.project, &endpoint.domain)
                .await?;
        let mut internal_data = dotfile_data(
            &owner.keypair,
            project_dotfiles.as_deref(),
            domain_dotfiles.as_deref(),
        );
        if let Some(path) = &endpoint.model_definition_path {
            internal_data.insert("model_definition_path".to_owned(), json!(path));
        }
        internal_data.insert(
            "runtime_variant".to_owned(),
            json!(sea_orm::ActiveEnum::to_value(&endpoint.runtime_variant)),
        );

        // Endpoints store the mode by name, sessions by value.
        let cluster_mode = match endpoint.cluster_mode.as_str() {
            "MULTI_NODE" => "multi-node",
            _ => "single-node",
        }
        .to_owned();
        let environ: Vec<(String, String)> = endpoint
            .environ
            .as_ref()
            .and_then(Value::as_object)
            .map(|environ| {
                environ
                    .iter()
                    .map(|(key, value)| {
                        let value = value
                            .as_str()
                            .map_or_else(|| value.to_string(), str::to_owned);
                        (key.clone(), value)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let bootstrap_script = endpoint
            .bootstrap_script
            .clone()
            .filter(|script| !script.is_empty())
            .or_else(|| Some(owner.keypair.bootstrap_script.clone()));
        let callback_url = endpoint
            .callback_url
            .clone()
            .filter(|url| url != "None" && !url.is_empty());
        let PendingRows {
            session_id,
            creation_id,
            new_session,
        } = PendingSession {
            name,
            session_type: SessionType::Inference,
            cluster_mode,
            cluster_size,
            scaling_group,
            use_host_network,
            domain_name: endpoint.domain.clone(),
            group_id: endpoint.project,
            user_uuid: endpoint.session_owner,
            access_key,
            image: &image,
            tag: endpoint.tag.clone(),
            kernel_resources: &planned,
            environ,
            sudo_session_enabled: owner.user.sudo_session_enabled,
            bootstrap_script,
            preopen_ports: Vec::new(),
            designated_agents: Vec::new(),
            starts_at: None,
            callback_url,
            startup_command: endpoint.startup_command.clone(),
            internal_data,
            dependencies: Vec::new(),
        }
        .rows(chrono::Utc::now());
        let inserted = session_enqueue::enqueue(db, new_session).await;
        match inserted {
            Ok(()) => {}
            Err(EnqueueWriteError::Db(error)) => return Err(error.into()),
            Err(other) => {
                return Ok(Err(CreationFailure::api(
                    "InvalidAPIParameters",
                    &other.to_string(),
                )));
            }
        }
        queries::attach_session(db, route.id, session_id).await?;
        let enqueued = Event::SessionEnqueued(SessionCreation {
            session_id,
            creation_id,
            reason: String::new(),
        });
        if let Err(error) = self.producer.produce(&enqueued, "manager").await {
            // The row is committed; the scheduler's periodic round picks it up anyway.
            tracing::warn!("session {session_id}: producing session_enqueued: {error}");
        }
        Ok(Ok(session_id))
    }

    /// Why the model folder `model` cannot be mounted, as the reference would fail with no
    /// storage proxy to give the mount path; `None` when the folder row is gone (nothing to mount).
    async fn mount_failure(&self, model: Uuid) -> Result<Option<CreationFailure>, ScaleError> {
        let folders = queries::folders_with_owners(&self.db, &[model]).await?;
        let Some((folder, _, _)) = folders.into_iter().next() else {
            return Ok(None);
        };
        let proxy = folder
            .host
            .split_once(':')
            .map_or(folder.host.as_str(), |(proxy, _)| proxy);
        let configured = match self
            .etcd
            .get_prefix(
                &format!("volumes/proxies/{proxy}"),
                bai_etcd_store::Scope::Global,
            )
            .await
        {
            Ok(found) => !found.is_empty(),
            Err(error) => {
                return Ok(Some(CreationFailure {
                    name: "EtcdError".to_owned(),
                    repr: error.to_string(),
                }));
            }
        };
        Ok(Some(if configured {
            CreationFailure {
                name: "NotImplementedError".to_owned(),
                repr: format!(
                    "NotImplementedError('mounting the model folder {} from storage proxy {proxy} is not supported by this manager yet')",
                    folder.name
                ),
            }
        } else {
            CreationFailure {
                name: "InvalidArgument".to_owned(),
                repr: format!("InvalidArgument('There is no such storage proxy', '{proxy}')"),
            }
        }))
    }

    /// The route of an INFERENCE session follows the session (`invoke_session_callback`).
    pub async fn session_changed(&self, event: &Event) -> Result<(), ScaleError> {
        let session_id = match event {
            Event::SessionCancelled(creation) => creation.session_id,
            Event::SessionTerminating(termination) | Event::SessionTerminated(termination) => {
                termination.session_id
            }
            _ => return Ok(()),
        };
        let Some(found) = queries::route_of_session(&self.db, session_id).await? else {
            return Ok(());
        };
        match event {
            Event::SessionCancelled(_) => {
                let status_data = queries::session_status_data(&self.db, session_id).await?;
                let error_data = cancelled_error_data(session_id, status_data.as_ref());
                queries::route_failed(&self.db, found.route.id, error_data).await?;
            }
            Event::SessionTerminated(_) => {
                queries::delete_route(&self.db, found.route.id).await?;
            }
            _ => {
                queries::set_route_status(&self.db, found.route.id, RouteStatus::Terminating)
                    .await?;
            }
        }
        queries::forget_errors_when_healthy(&self.db, found.endpoint.id).await?;
        Ok(())
    }

    /// `handle_model_service_status_update`: the agent's health check of the model service.
    pub async fn model_service_status(
        &self,
        session_id: Uuid,
        status: &str,
    ) -> Result<(), ScaleError> {
        let Some(found) = queries::route_of_session(&self.db, session_id).await? else {
            return Ok(());
        };
        let status = match status {
            "healthy" => RouteStatus::Healthy,
            "unhealthy" => RouteStatus::Unhealthy,
            other => {
                tracing::warn!("session {session_id}: unknown model service status {other:?}");
                return Ok(());
            }
        };
        queries::set_route_status(&self.db, found.route.id, status).await?;
        queries::forget_errors_when_healthy(&self.db, found.endpoint.id).await?;
        Ok(())
    }
}

/// The `error_data` of the route of a cancelled session: the session's errors (every agent's,
/// for a `MultiAgentError`), or `None` when the session recorded none.
fn cancelled_error_data(session_id: Uuid, status_data: Option<&Value>) -> Option<Value> {
    let error = status_data?.get("error")?;
    let errors = if error.get("name").and_then(Value::as_str) == Some("MultiAgentError") {
        error
            .get("collection")
            .cloned()
            .unwrap_or_else(|| json!([]))
    } else {
        json!([error])
    };
    Some(json!({
        "type": "session_cancelled",
        "errors": errors,
        "session_id": session_id.to_string(),
    }))
}

/// The trigger of the scaling rounds and the bursts [`run_scaler`] waits for.
pub fn scale_triggers() -> (Trigger, Coalesced) {
    bai_events::coalescing(COALESCE_WAIT, COALESCE_BATCH)
}

/// The handlers of model serving: `do_scale` asks for a round, `route_created` creates the
/// route's session, the session events and `model_service_status_updated` move routes.
pub fn scale_handlers(scaler: &Arc<Scaler>, trigger: &Trigger, into: &mut Handlers) {
    let trigger = trigger.clone();
    into.on("do_scale", "dispatcher.scale_services", move |_| {
        trigger.fire("do_scale");
        async { Ok(()) }
    });
    let creator = Arc::clone(scaler);
    into.on("route_created", "handle_route_creation", move |received| {
        let scaler = Arc::clone(&creator);
        async move { handled(scaler.route_created(&received).await) }
    });
    for event in [
        "session_cancelled",
        "session_terminating",
        "session_terminated",
    ] {
        let follower = Arc::clone(scaler);
        into.on(event, "invoke_session_callback.routes", move |received| {
            let scaler = Arc::clone(&follower);
            async move { handled(scaler.session_changed(&received.event).await) }
        });
    }
    let health = Arc::clone(scaler);
    into.on(
        "model_service_status_updated",
        "handle_model_service_status_update",
        move |received| {
            let scaler = Arc::clone(&health);
            async move {
                let outcome = match &received.event {
                    Event::ModelServiceStatusUpdated {
                        session_id, status, ..
                    } => scaler.model_service_status(*session_id, status).await,
                    _ => Ok(()),
                };
                handled(outcome)
            }
        },
    );
}

fn handled(outcome: Result<(), ScaleError>) -> Result<(), HandlerError> {
    outcome.map_err(HandlerError::from)
}

impl Scaler {
    async fn route_created(&self, received: &Received) -> Result<(), ScaleError> {
        match &received.event {
            Event::RouteCreated { route_id } => self.create_route_session(*route_id).await,
            _ => Ok(()),
        }
    }
}

/// Runs a scaling round on each burst of `do_scale` until `shutdown`.
pub async fn run_scaler(scaler: Arc<Scaler>, mut bursts: Coalesced, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            burst = bursts.next() => if burst.is_none() { return },
        }
        match scaler.scale_services().await {
            Ok(round) => {
                if !round.routes_created.is_empty()
                    || !round.sessions_destroyed.is_empty()
                    || !round.endpoints_destroyed.is_empty()
                {
                    tracing::debug!("scale_services: {round:?}");
                }
            }
            Err(error) => tracing::error!("scale_services: {error}"),
        }
    }
}
