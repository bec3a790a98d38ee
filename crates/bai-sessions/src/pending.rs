//! A new PENDING session as the reference's `create_session` and `enqueue_session` write it, for
//! both callers: `POST /session` (`bai-api`) and the [`Scaler`](crate::Scaler) enqueueing a model
//! service route's INFERENCE session. The rules that decide the values (slots, resource group,
//! ports, cluster kernels) are `bai_scheduler::enqueue`'s; here they become the rows that
//! `queries::session_enqueue::enqueue` inserts, with the owner's image checks and
//! `prepare_dotfiles` that both callers apply the same way.

use bai_db_models::DbError;
use bai_db_models::entities::enums::{KernelStatus, SessionResult, SessionStatus, SessionType};
use bai_db_models::entities::{ResourceSlot, images, kernels, keypairs, sessions};
use bai_db_models::queries::session_enqueue::{self, NewSession};
use bai_scheduler::enqueue::{self as rules, KernelResources};
use chrono::{DateTime, Utc};
use sea_orm::DatabaseConnection;
use sea_orm::prelude::Uuid;
use serde_json::{Map, Value, json};

/// Why an owner may not use an image it found (`create_session`'s checks after
/// `ImageRow.resolve`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageRefusal {
    /// A customized image (label `ai.backend.customized-image.owner`) of another user.
    CustomizedForAnother,
    /// A remote image whose registry the domain does not allow.
    DisallowedRegistry,
}

/// Whether user `owner` of `domain` may not use `image`, and why.
pub async fn image_refusal(
    db: &DatabaseConnection,
    image: &images::Model,
    owner: Uuid,
    domain: &str,
) -> Result<Option<ImageRefusal>, DbError> {
    if let Some(image_owner) = image
        .labels
        .get("ai.backend.customized-image.owner")
        .and_then(Value::as_str)
        .filter(|image_owner| !image_owner.is_empty())
        && image_owner != format!("user:{owner}")
    {
        return Ok(Some(ImageRefusal::CustomizedForAnother));
    }
    if !image.is_local {
        let allowed = session_enqueue::allowed_docker_registries(db, domain)
            .await?
            .unwrap_or_default();
        if !allowed.contains(&image.registry) {
            return Ok(Some(ImageRefusal::DisallowedRegistry));
        }
    }
    Ok(None)
}

/// `prepare_dotfiles` without folders: the owner keypair's dotfiles, then the project's and the
/// domain's (msgpack lists as stored in `groups`/`domains.dotfiles`) whose paths are not taken,
/// the list reversed; then the keypair's SSH keypair when it has both keys. The start of a
/// session's `internal_data`.
pub fn dotfile_data(
    keypair: &keypairs::Model,
    project: Option<&[u8]>,
    domain: Option<&[u8]>,
) -> Map<String, Value> {
    let path_of = |dotfile: &Value| {
        dotfile
            .get("path")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let mut dotfiles = decode_dotfiles(&keypair.dotfiles);
    let mut paths: Vec<String> = dotfiles.iter().filter_map(path_of).collect();
    for extra in [project, domain].into_iter().flatten() {
        for dotfile in decode_dotfiles(extra) {
            if let Some(path) = path_of(&dotfile)
                && !paths.contains(&path)
            {
                paths.push(path);
                dotfiles.push(dotfile);
            }
        }
    }
    dotfiles.reverse();
    let mut data = Map::new();
    data.insert("dotfiles".to_owned(), Value::Array(dotfiles));
    let non_empty = |key: &Option<String>| key.clone().filter(|key| !key.is_empty());
    if let (Some(public_key), Some(private_key)) = (
        non_empty(&keypair.ssh_public_key),
        non_empty(&keypair.ssh_private_key),
    ) {
        data.insert(
            "ssh_keypair".to_owned(),
            json!({"public_key": public_key, "private_key": private_key}),
        );
    }
    data
}

/// A msgpack list of dotfile maps; anything else is no dotfiles.
fn decode_dotfiles(bytes: &[u8]) -> Vec<Value> {
    match bai_events::codec::decode(bytes) {
        Ok(value) => match bai_events::to_json(&value) {
            Value::Array(items) => items,
            _ => Vec::new(),
        },
        Err(_) => Vec::new(),
    }
}

/// What a new PENDING session is made of once its rules have been checked: what differs between
/// a `POST /session` and a model service's route. [`PendingSession::rows`] makes its rows.
#[derive(Clone, Debug)]
pub struct PendingSession<'a> {
    pub name: String,
    pub session_type: SessionType,
    /// `single-node` or `multi-node`.
    pub cluster_mode: String,
    pub cluster_size: i32,
    pub scaling_group: String,
    pub use_host_network: bool,
    pub domain_name: String,
    pub group_id: Uuid,
    pub user_uuid: Uuid,
    /// The owner's access key.
    pub access_key: String,
    pub image: &'a images::Model,
    pub tag: Option<String>,
    /// What each kernel requests (`bai_scheduler::enqueue::kernel_resources`).
    pub kernel_resources: &'a KernelResources,
    /// The session's environment variables, in order.
    pub environ: Vec<(String, String)>,
    /// The owner may use sudo: `SUDO_SESSION_ENABLED=1` in the environment and
    /// `sudo_session_enabled` in `internal_data`.
    pub sudo_session_enabled: bool,
    pub bootstrap_script: Option<String>,
    pub preopen_ports: Vec<i32>,
    /// The agents the kernels must run on, by kernel index (empty: the scheduler picks).
    pub designated_agents: Vec<String>,
    pub starts_at: Option<DateTime<Utc>>,
    pub callback_url: Option<String>,
    pub startup_command: Option<String>,
    /// The kernels' `internal_data` ([`dotfile_data`] and what the caller adds).
    pub internal_data: Map<String, Value>,
    /// Session ids or names among the owner's sessions the new one waits for.
    pub dependencies: Vec<String>,
}

/// The rows of a [`PendingSession`], ready for `queries::session_enqueue::enqueue`.
#[derive(Clone, Debug)]
pub struct PendingRows {
    pub session_id: Uuid,
    /// What `session_enqueued` and `session_started` name the creation by.
    pub creation_id: String,
    pub new_session: NewSession,
}

impl PendingSession<'_> {
    /// The session row and one kernel row per cluster member (every kernel replicates the main
    /// one), PENDING since `now`, under a new session id and creation id.
    pub fn rows(self, now: DateTime<Utc>) -> PendingRows {
        let session_id = Uuid::new_v4();
        let creation_id = token_urlsafe_16();
        let image = self.image;
        let placements = rules::cluster_kernels(self.cluster_size);
        let requested_total =
            rules::session_requested(&self.kernel_resources.requested, placements.len());
        let requested = ResourceSlot::from(&self.kernel_resources.requested);
        let kernel_environ: Vec<String> = self
            .environ
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        let mut session_environ: Map<String, Value> = self
            .environ
            .iter()
            .map(|(key, value)| (key.clone(), Value::String(value.clone())))
            .collect();
        let mut internal_data = self.internal_data;
        if self.sudo_session_enabled {
            session_environ.insert("SUDO_SESSION_ENABLED".to_owned(), json!("1"));
            internal_data.insert("sudo_session_enabled".to_owned(), Value::Bool(true));
        }
        let history = json!({ "PENDING": bai_pyjson::datetime::isoformat(&now) });
        let starts_at = self.starts_at.map(|at| at.fixed_offset());
        let kernel_rows: Vec<kernels::Model> = placements
            .iter()
            .enumerate()
            .map(|(index, placement)| kernels::Model {
                id: Uuid::new_v4(),
                session_id,
                session_creation_id: Some(creation_id.clone()),
                session_name: Some(self.name.clone()),
                session_type: self.session_type,
                cluster_mode: self.cluster_mode.clone(),
                cluster_size: self.cluster_size,
                cluster_role: placement.cluster_role.to_owned(),
                cluster_idx: placement.cluster_idx,
                local_rank: placement.local_rank,
                cluster_hostname: placement.cluster_hostname.clone(),
                scaling_group: Some(self.scaling_group.clone()),
                agent: self.designated_agents.get(index).cloned(),
                agent_addr: None,
                domain_name: self.domain_name.clone(),
                group_id: self.group_id,
                user_uuid: self.user_uuid,
                access_key: Some(self.access_key.clone()),
                image: Some(image.name.clone()),
                architecture: Some(image.architecture.clone()),
                registry: Some(image.registry.clone()),
                tag: self.tag.clone(),
                container_id: None,
                occupied_slots: requested.clone(),
                requested_slots: requested.clone(),
                occupied_shares: json!({}),
                environ: Some(kernel_environ.clone()),
                mounts: Some(Vec::new()),
                mount_map: Some(json!({})),
                vfolder_mounts: Some(json!([])),
                attached_devices: Some(json!({})),
                resource_opts: Some(Value::Object(self.kernel_resources.resource_opts.clone())),
                bootstrap_script: self.bootstrap_script.clone(),
                kernel_host: None,
                repl_in_port: 0,
                repl_out_port: 0,
                stdin_port: 0,
                stdout_port: 0,
                service_ports: None,
                preopen_ports: Some(self.preopen_ports.clone()),
                use_host_network: self.use_host_network,
                created_at: None,
                terminated_at: None,
                starts_at,
                status: KernelStatus::Pending,
                status_changed: None,
                status_info: None,
                status_data: None,
                status_history: Some(history.clone()),
                callback_url: self.callback_url.clone(),
                startup_command: self.startup_command.clone(),
                result: SessionResult::Undefined,
                internal_data: Some(Value::Object(internal_data.clone())),
                container_log: None,
                num_queries: Some(0),
                last_stat: None,
            })
            .collect();
        let session_row = sessions::Model {
            id: session_id,
            creation_id: Some(creation_id.clone()),
            name: Some(self.name),
            session_type: self.session_type,
            cluster_mode: self.cluster_mode,
            cluster_size: self.cluster_size,
            agent_ids: None,
            scaling_group_name: Some(self.scaling_group),
            target_sgroup_names: Some(Vec::new()),
            domain_name: self.domain_name,
            group_id: self.group_id,
            user_uuid: self.user_uuid,
            access_key: Some(self.access_key),
            images: Some(vec![image.name.clone()]),
            tag: self.tag,
            occupying_slots: ResourceSlot::new(),
            requested_slots: ResourceSlot::from(&requested_total),
            vfolder_mounts: Some(json!([])),
            environ: Some(Value::Object(session_environ)),
            bootstrap_script: None,
            use_host_network: self.use_host_network,
            timeout: None,
            created_at: Some(now.fixed_offset()),
            terminated_at: None,
            starts_at,
            status: SessionStatus::Pending,
            status_info: None,
            status_data: None,
            status_history: Some(history),
            callback_url: self.callback_url,
            startup_command: None,
            result: SessionResult::Undefined,
            num_queries: Some(0),
            last_stat: None,
        };
        PendingRows {
            session_id,
            creation_id,
            new_session: NewSession {
                session: session_row,
                kernels: kernel_rows,
                dependencies: self.dependencies,
            },
        }
    }
}

/// `secrets.token_urlsafe(16)`: 16 random bytes, URL-safe base64 without padding.
fn token_urlsafe_16() -> String {
    // A v4 UUID holds 122 random bits; two give 16 random bytes without the version and
    // variant bits.
    let a = Uuid::new_v4().into_bytes();
    let b = Uuid::new_v4().into_bytes();
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&a[..6]);
    bytes[6] = a[7];
    bytes[7..14].copy_from_slice(&a[9..16]);
    bytes[14..16].copy_from_slice(&b[..2]);
    data_encoding::BASE64URL_NOPAD.encode(&bytes)
}
