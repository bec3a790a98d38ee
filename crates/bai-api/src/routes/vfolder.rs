//! `/folders` (the reference's `vfolder.py`), the parts the WebUI's summary, data and session pages
//! call before any folder exists: the folders a caller can reach, the storage hosts they may use
//! (asked of the storage proxies, `bai-storage-proxy`), the enabled folder types (etcd
//! `volumes/_types`), and the pending sharing invitations.

use axum::extract::State;
use bai_db_models::entities::VFolderHostPermissions;
use bai_db_models::entities::enums::{UserRole, VFolderOwnershipType};
use bai_db_models::queries;
use bai_db_models::queries::vfolders::{
    AccessFilter, AccessibleVFolder, InvitationParty, PendingInvitation, Requester,
};
use bai_etcd_store::Scope;
use bai_pyjson::datetime::str_datetime_or_none;
use bai_storage_proxy::{StorageError, StorageProxies, VolumeInfo};
use http::Method;
use indexmap::IndexMap;
use sea_orm::ActiveEnum;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Access, Authenticated, Route, StatusGate};
use crate::auth::Caller;
use crate::context::ApiContext;
use crate::error::{ApiError, ErrorKind};
use crate::json::PyJson;
use crate::params::{Params, lenient, non_blank};

/// etcd prefix whose keys are the enabled vfolder types (`user`, `group`).
const VFOLDER_TYPES_PREFIX: &str = "volumes/_types";
/// etcd key of the host new folders go to by default (`proxy:volume`).
const DEFAULT_HOST_KEY: &str = "volumes/default_host";

pub(super) fn routes() -> Vec<Route> {
    let mut routes = vec![
        Route::new(
            Method::GET,
            "/folders",
            "vfolder.list_folders",
            list_folders,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .params::<ListFoldersParams>()
        .summary(
            "The folders the caller (or, for a superadmin, the user `owner_user_email`) can \
                 reach: their own, those shared with them, and their projects' (only project \
                 `group_id`'s when given, user folders always).",
        ),
        Route::new(
            Method::GET,
            "/folders/_/hosts",
            "vfolder.list_hosts",
            list_hosts,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .params::<ListHostsParams>()
        .summary(
            "The storage hosts the caller may use (by domain, project and keypair policy) that \
             a storage proxy serves, with each volume's backend, capabilities and usage.",
        ),
    ];
    for path in ["/folders/_/all-hosts", "/folders/_/all_hosts"] {
        routes.push(
            Route::new(Method::GET, path, "vfolder.list_all_hosts", list_all_hosts)
                .access(Access::SuperAdmin)
                .gate(StatusGate::ReadAllowed)
                .summary("Every volume of every storage proxy, and the default host."),
        );
    }
    for path in ["/folders/_/allowed-types", "/folders/_/allowed_types"] {
        routes.push(
            Route::new(
                Method::GET,
                path,
                "vfolder.list_allowed_types",
                list_allowed_types,
            )
            .access(Access::User)
            .gate(StatusGate::ReadAllowed)
            .summary("The enabled folder types (etcd `volumes/_types`; `user` when none is set)."),
        );
    }
    for path in [
        "/folders/invitations/list-sent",
        "/folders/invitations/list_sent",
    ] {
        routes.push(
            Route::new(
                Method::GET,
                path,
                "vfolder.list_sent_invitations",
                list_sent_invitations,
            )
            .access(Access::User)
            .gate(StatusGate::ReadAllowed)
            .summary("The caller's pending invitations to share their folders."),
        );
    }
    routes.push(
        Route::new(
            Method::GET,
            "/folders/invitations/list",
            "vfolder.invitations",
            invitations,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .summary("The pending invitations to the caller to share someone's folder."),
    );
    routes
}

// ----- shared reading -----

/// The enabled vfolder types: the keys under etcd `volumes/_types` in etcd's order, `user` alone
/// when there is none (the reference's `get_vfolder_types`).
pub(super) async fn vfolder_types(ctx: &ApiContext) -> Result<Vec<String>, ApiError> {
    let types = ctx
        .etcd()
        .get_prefix(VFOLDER_TYPES_PREFIX, Scope::Global)
        .await
        .map_err(|error| ApiError::internal("reading etcd volumes/_types", &error))?;
    let mut names: Vec<String> = types.keys().cloned().collect();
    if names.is_empty() {
        names.push("user".to_owned());
    }
    Ok(names)
}

/// The kinds of folder the type names enable; other names enable nothing.
fn ownership_types(names: &[String]) -> Vec<VFolderOwnershipType> {
    names
        .iter()
        .filter_map(|name| match name.as_str() {
            "user" => Some(VFolderOwnershipType::User),
            "group" => Some(VFolderOwnershipType::Group),
            _ => None,
        })
        .collect()
}

/// `tx.UUID | t.String | t.Null` of `group_id`. The reference takes any string but fails with a
/// 500 when one that is not a UUID reaches the database; here it is refused as a parameter.
fn project_id(group_id: Option<&str>) -> Result<Option<Uuid>, ApiError> {
    group_id
        .map(|text| {
            Uuid::parse_str(text).map_err(|_| {
                ApiError::invalid_params("Input validation error")
                    .data(json!({"group_id": format!("{text:?} is not a project id (a UUID)")}))
            })
        })
        .transpose()
}

/// The storage proxies of etcd `volumes/proxies` (none when `volumes/` is empty).
fn storage_proxies(ctx: &ApiContext) -> Result<StorageProxies, ApiError> {
    ctx.storage_proxies()
        .map_err(|error| ApiError::internal("making the storage proxy clients", &error))
}

/// Every volume of every proxy. A proxy that cannot be reached (or refuses) fails the request
/// with a 500, as the reference's uncaught `aiohttp` error does.
async fn all_volumes(proxies: &StorageProxies) -> Result<Vec<(String, VolumeInfo)>, ApiError> {
    proxies
        .all_volumes()
        .await
        .map_err(|error| ApiError::internal("listing the storage proxies' volumes", &error))
}

/// etcd `volumes/default_host` if it is one of `hosts`.
async fn default_host(
    ctx: &ApiContext,
    hosts: impl IntoIterator<Item = impl AsRef<str>>,
) -> Result<Option<String>, ApiError> {
    let configured = ctx
        .etcd()
        .get(DEFAULT_HOST_KEY, Scope::Global)
        .await
        .map_err(|error| ApiError::internal("reading etcd volumes/default_host", &error))?;
    Ok(configured.filter(|host| hosts.into_iter().any(|known| known.as_ref() == host)))
}

// ----- GET /folders -----

/// `list_folders`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListFoldersParams {
    /// Deprecated: `true` is refused.
    #[serde(default, deserialize_with = "lenient::bool")]
    all: bool,
    /// A project id: only its project folders are listed (user folders always are).
    #[serde(default, alias = "groupId", deserialize_with = "some_non_blank")]
    #[schemars(extend("format" = "uuid"))]
    group_id: Option<String>,
    /// Superadmins only: list for this user instead (as that user, within the caller's domain).
    #[serde(default, alias = "ownerUserEmail", deserialize_with = "some_email")]
    #[schemars(extend("format" = "email"))]
    owner_user_email: Option<String>,
}

fn some_non_blank<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    non_blank(deserializer).map(Some)
}

/// trafaret's `t.Email`: `local@domain` where the domain is dot-separated labels of letters,
/// digits and hyphens ending in a top-level label of letters.
fn some_email<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    let text = <String as Deserialize>::deserialize(deserializer)?;
    if is_email(&text) {
        Ok(Some(text))
    } else {
        Err(serde::de::Error::custom(
            "value is not a valid email address",
        ))
    }
}

fn is_email(text: &str) -> bool {
    let Some((local, domain)) = text.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    let labels: Vec<&str> = domain.trim_end_matches('.').split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            (1..=63).contains(&label.len())
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.len() >= 2 && tld.chars().all(|c| c.is_ascii_alphabetic()));
    local_ok && domain_ok
}

/// One folder of the listing, field for field as the reference writes it.
#[derive(Debug, Serialize)]
struct FolderEntry {
    name: String,
    /// The id's 32 hex digits.
    id: String,
    quota_scope_id: String,
    host: String,
    status: String,
    usage_mode: String,
    created_at: String,
    is_owner: bool,
    permission: Option<String>,
    user: Option<String>,
    group: Option<String>,
    creator: Option<String>,
    user_email: Option<String>,
    group_name: Option<String>,
    ownership_type: String,
    /// The legacy name of `ownership_type`.
    #[serde(rename = "type")]
    legacy_type: String,
    cloneable: bool,
    max_files: Option<i32>,
    max_size: Option<i32>,
    cur_size: Option<i32>,
}

impl From<AccessibleVFolder> for FolderEntry {
    fn from(entry: AccessibleVFolder) -> FolderEntry {
        let folder = entry.folder;
        let ownership_type = folder.ownership_type.to_value();
        FolderEntry {
            name: folder.name,
            id: folder.id.simple().to_string(),
            quota_scope_id: folder.quota_scope_id,
            host: folder.host,
            status: folder.status.to_value(),
            usage_mode: folder.usage_mode.to_value(),
            created_at: str_datetime_or_none(folder.created_at.as_ref()),
            is_owner: entry.is_owner,
            permission: entry.permission.map(|permission| permission.to_value()),
            user: folder.user.map(|user| user.to_string()),
            group: folder.group.map(|group| group.to_string()),
            creator: folder.creator,
            user_email: entry.user_email,
            group_name: entry.group_name,
            legacy_type: ownership_type.clone(),
            ownership_type,
            cloneable: folder.cloneable,
            max_files: folder.max_files,
            max_size: folder.max_size,
            cur_size: folder.cur_size,
        }
    }
}

async fn list_folders(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Params(params): Params<ListFoldersParams>,
) -> Result<PyJson<Vec<FolderEntry>>, ApiError> {
    tracing::info!(
        target: "bai_api",
        "VFOLDER.LIST (email:{}, ak:{})",
        caller.user.email,
        caller.access_key()
    );
    let group_id = project_id(params.group_id.as_deref())?;
    let (owner_uuid, owner_role) =
        user_scope(&ctx, &caller, params.owner_user_email.as_deref()).await?;
    let types = vfolder_types(&ctx).await?;
    if params.all {
        return Err(ApiError::invalid_params("Deprecated use of 'all' option"));
    }
    // User folders are listed even when a project is given.
    let filter = group_id
        .map(AccessFilter::project_or_user_folders)
        .unwrap_or_default();
    let requester = Requester {
        uuid: owner_uuid,
        role: owner_role,
        domain_name: caller.user.domain_name.as_deref().unwrap_or_default(),
    };
    let found = queries::vfolders::accessible_vfolders(
        ctx.db(),
        &requester,
        &ownership_types(&types),
        &filter,
    )
    .await
    .map_err(|error| ApiError::internal("listing the accessible vfolders", &error))?;
    Ok(PyJson(found.into_iter().map(FolderEntry::from).collect()))
}

/// The user a listing is for (the reference's `get_user_scopes`): the caller, or for a superadmin
/// the user `owner_user_email`.
async fn user_scope(
    ctx: &ApiContext,
    caller: &Caller,
    owner_user_email: Option<&str>,
) -> Result<(Uuid, UserRole), ApiError> {
    let Some(email) = owner_user_email else {
        return Ok((caller.user.uuid, caller.role()));
    };
    // Only superadmins get this far in the reference; its domain-admin branch is unreachable.
    if !caller.is_superadmin() {
        return Err(ApiError::invalid_params(
            "Only superadmins may have user scopes.",
        ));
    }
    let owner = queries::users::by_email(ctx.db(), email)
        .await
        .map_err(|error| ApiError::internal("reading the delegated user", &error))?
        .ok_or_else(|| ApiError::invalid_params("Cannot delegate an unknown user"))?;
    Ok((owner.uuid, owner.role.unwrap_or(UserRole::User)))
}

// ----- GET /folders/_/hosts -----

/// `list_hosts`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListHostsParams {
    /// A project id: its hosts are included (for project folders, only its).
    #[serde(default, alias = "groupId", deserialize_with = "some_non_blank")]
    #[schemars(extend("format" = "uuid"))]
    group_id: Option<String>,
}

#[derive(Debug, Serialize)]
struct Hosts {
    default: Option<String>,
    allowed: Vec<String>,
    volume_info: IndexMap<String, VolumeDetails>,
}

#[derive(Debug, Serialize)]
struct VolumeDetails {
    backend: String,
    capabilities: Vec<String>,
    /// `used`, `total` and `percentage`, those of them `volumes/exposed_volume_info` names.
    usage: IndexMap<&'static str, Value>,
    sftp_scaling_groups: Vec<String>,
}

async fn list_hosts(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Params(params): Params<ListHostsParams>,
) -> Result<PyJson<Hosts>, ApiError> {
    tracing::info!(
        target: "bai_api",
        "VFOLDER.LIST_HOSTS (emai:{}, ak:{})",
        caller.user.email,
        caller.access_key()
    );
    let group_id = project_id(params.group_id.as_deref())?;
    let domain_name = caller.user.domain_name.as_deref().unwrap_or_default();
    let policy_hosts = &caller.keypair_policy.allowed_vfolder_hosts;
    let types = ownership_types(&vfolder_types(&ctx).await?);
    let db_failure = |error| ApiError::internal("reading the allowed vfolder hosts", &error);
    let mut allowed: Vec<VFolderHostPermissions> = Vec::new();
    if types.contains(&VFolderOwnershipType::User) {
        allowed.push(
            queries::vfolders::allowed_hosts_by_user(
                ctx.db(),
                policy_hosts,
                domain_name,
                caller.user.uuid,
                group_id,
            )
            .await
            .map_err(db_failure)?,
        );
    }
    if types.contains(&VFolderOwnershipType::Group) {
        allowed.push(
            queries::vfolders::allowed_hosts_by_project(
                ctx.db(),
                policy_hosts,
                domain_name,
                group_id,
                caller.role() == UserRole::Admin,
            )
            .await
            .map_err(db_failure)?,
        );
    }

    let proxies = storage_proxies(&ctx)?;
    let volumes = all_volumes(&proxies).await?;
    let served: Vec<String> = volumes
        .iter()
        .map(|(proxy, volume)| format!("{proxy}:{}", volume.name))
        .collect();
    let mut allowed_hosts: Vec<String> = served
        .iter()
        .filter(|host| allowed.iter().any(|map| map.get(host).is_some()))
        .cloned()
        .collect();
    allowed_hosts.sort();
    allowed_hosts.dedup();
    let default = default_host(&ctx, &allowed_hosts).await?;

    let config = ctx.shared_config();
    let exposed: &[String] = config
        .volumes
        .as_ref()
        .map(|volumes| volumes.exposed_volume_info.as_slice())
        .unwrap_or_default();
    let mut volume_info = IndexMap::new();
    for ((proxy, volume), host) in volumes.into_iter().zip(served) {
        if allowed_hosts.binary_search(&host).is_err() {
            continue;
        }
        let usage = exposed_usage(&proxies, exposed, &proxy, &volume.name).await?;
        let sftp_scaling_groups = config
            .volumes
            .as_ref()
            .and_then(|volumes| volumes.proxies.get(&proxy))
            .and_then(|proxy| proxy.sftp_scaling_groups.clone())
            .unwrap_or_default();
        volume_info.insert(
            host,
            VolumeDetails {
                backend: volume.backend,
                capabilities: volume.capabilities,
                usage,
                sftp_scaling_groups,
            },
        );
    }
    Ok(PyJson(Hosts {
        default,
        allowed: allowed_hosts,
        volume_info,
    }))
}

/// The usage figures `exposed` names (`used_bytes`, `capacity_bytes`, `percentage`), asked of the
/// proxy when there is any (the reference's `fetch_exposed_volume_fields`, without its Redis
/// cache of one minute: see docs/compat.md).
async fn exposed_usage(
    proxies: &StorageProxies,
    exposed: &[String],
    proxy: &str,
    volume: &str,
) -> Result<IndexMap<&'static str, Value>, ApiError> {
    let shows = |field: &str| exposed.iter().any(|name| name == field);
    let (show_percentage, show_used, show_total) = (
        shows("percentage"),
        shows("used_bytes"),
        shows("capacity_bytes"),
    );
    let mut usage = IndexMap::new();
    if !(show_percentage || show_used || show_total) {
        return Ok(usage);
    }
    let measured = proxies.fs_usage(proxy, volume).await.map_err(|error| {
        storage_refusal(
            error,
            &format!("reading the usage of volume {proxy}:{volume}"),
        )
    })?;
    if show_used {
        usage.insert("used", Value::from(measured.used_bytes));
    }
    if show_total {
        usage.insert("total", Value::from(measured.capacity_bytes));
    }
    if show_percentage {
        // Python's ZeroDivisionError branch writes the integer 0.
        let percentage = if measured.capacity_bytes == 0 {
            Value::from(0)
        } else {
            #[expect(
                clippy::cast_precision_loss,
                reason = "Python divides the two integers as floats too"
            )]
            let ratio = measured.used_bytes as f64 / measured.capacity_bytes as f64;
            Value::from(ratio * 100.0)
        };
        usage.insert("percentage", percentage);
    }
    Ok(usage)
}

/// A storage proxy's refusal as the reference's `StorageSessionManager.request` raises it: a
/// server error's message and data as invalid parameters, any other refusal as a failed folder
/// operation; anything else (unreachable, malformed answer, not configured) is a failure of ours
/// while `doing` what the caller did.
pub(super) fn storage_refusal(error: StorageError, doing: &str) -> ApiError {
    match error {
        StorageError::Rejected {
            status, msg, data, ..
        } => {
            let kind = if status >= 500 {
                ErrorKind::InvalidApiParameters
            } else {
                ErrorKind::VFolderOperationFailed
            };
            let mut refusal = ApiError::new(kind).data(data);
            refusal.msg = msg;
            refusal
        }
        StorageError::RejectedPlain { status, reason, .. } => ApiError::with_msg(
            ErrorKind::VFolderOperationFailed,
            format!("Storage proxy responded with {status} {reason}"),
        ),
        other => ApiError::internal(doing, &other),
    }
}

/// The reference's `VFolderID` string of a folder, as the storage proxies take it:
/// `{quota_scope_id}/{folder id hex}`, or the hex alone.
pub(super) fn vfolder_id(quota_scope_id: &str, folder: Uuid) -> String {
    let hex = folder.simple();
    if quota_scope_id.is_empty() {
        hex.to_string()
    } else {
        format!("{quota_scope_id}/{hex}")
    }
}

// ----- GET /folders/_/all-hosts -----

#[derive(Debug, Serialize)]
struct AllHosts {
    default: Option<String>,
    allowed: Vec<String>,
}

async fn list_all_hosts(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
) -> Result<PyJson<AllHosts>, ApiError> {
    tracing::info!(
        target: "bai_api",
        "VFOLDER.LIST_ALL_HOSTS (email:{}, ak:{})",
        caller.user.email,
        caller.access_key()
    );
    let proxies = storage_proxies(&ctx)?;
    let mut hosts: Vec<String> = all_volumes(&proxies)
        .await?
        .into_iter()
        .map(|(proxy, volume)| format!("{proxy}:{}", volume.name))
        .collect();
    hosts.sort();
    hosts.dedup();
    let default = default_host(&ctx, &hosts).await?;
    Ok(PyJson(AllHosts {
        default,
        allowed: hosts,
    }))
}

// ----- GET /folders/_/allowed-types -----

async fn list_allowed_types(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
) -> Result<PyJson<Vec<String>>, ApiError> {
    tracing::info!(
        target: "bai_api",
        "VFOLDER.LIST_ALLOWED_TYPES (email:{}, ak:{})",
        caller.user.email,
        caller.access_key()
    );
    Ok(PyJson(vfolder_types(&ctx).await?))
}

// ----- GET /folders/invitations/list, list-sent -----

#[derive(Debug, Serialize)]
struct Invitations {
    invitations: Vec<InvitationEntry>,
}

#[derive(Debug, Serialize)]
struct InvitationEntry {
    id: String,
    inviter: Option<String>,
    invitee: String,
    perm: Option<String>,
    state: Option<String>,
    created_at: String,
    modified_at: String,
    vfolder_id: String,
    vfolder_name: String,
}

impl From<PendingInvitation> for InvitationEntry {
    fn from(pending: PendingInvitation) -> InvitationEntry {
        let invitation = pending.invitation;
        InvitationEntry {
            id: invitation.id.to_string(),
            inviter: invitation.inviter,
            invitee: invitation.invitee,
            perm: invitation
                .permission
                .map(|permission| permission.to_value()),
            state: invitation.state.map(|state| state.to_value()),
            created_at: str_datetime_or_none(invitation.created_at.as_ref()),
            modified_at: str_datetime_or_none(invitation.modified_at.as_ref()),
            vfolder_id: invitation.vfolder.to_string(),
            vfolder_name: pending.vfolder_name,
        }
    }
}

async fn pending(ctx: &ApiContext, party: InvitationParty<'_>) -> Result<Invitations, ApiError> {
    let found = queries::vfolders::pending_invitations(ctx.db(), party)
        .await
        .map_err(|error| ApiError::internal("listing the vfolder invitations", &error))?;
    Ok(Invitations {
        invitations: found.into_iter().map(InvitationEntry::from).collect(),
    })
}

async fn invitations(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
) -> Result<PyJson<Invitations>, ApiError> {
    tracing::info!(
        target: "bai_api",
        "VFOLDER.INVITATIONS (email:{}, ak:{})",
        caller.user.email,
        caller.access_key()
    );
    // The reference compares with `request["user"]["id"]`, the keypair's `user_id` (an email).
    let Some(invitee) = caller.keypair.user_id.as_deref() else {
        return Ok(PyJson(Invitations {
            invitations: Vec::new(),
        }));
    };
    Ok(PyJson(
        pending(&ctx, InvitationParty::Invitee(invitee)).await?,
    ))
}

async fn list_sent_invitations(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
) -> Result<PyJson<Invitations>, ApiError> {
    tracing::info!(
        target: "bai_api",
        "VFOLDER.LIST_SENT_INVITATIONS (email:{}, ak:{})",
        caller.user.email,
        caller.access_key()
    );
    Ok(PyJson(
        pending(&ctx, InvitationParty::Inviter(&caller.user.email)).await?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked_as_trafaret_checks_them() {
        for good in ["user@lablup.com", "a.b+c@sub.example.org", "x@y.co."] {
            assert!(is_email(good), "{good}");
        }
        for bad in [
            "",
            "user",
            "@lablup.com",
            "user@",
            "user@localhost",
            "user@lablup.c0m",
            "us er@lablup.com",
            "user@-x.com",
            "a..b@x.com",
        ] {
            assert!(!is_email(bad), "{bad}");
        }
    }

    #[test]
    fn only_uuids_name_projects() {
        let id = "2de2b969-1d04-48a6-af16-0bc8adb3c831";
        assert_eq!(
            project_id(Some(id)).expect("uuid"),
            Some(Uuid::parse_str(id).expect("uuid"))
        );
        assert_eq!(project_id(None).expect("none"), None);
        let refused = project_id(Some("default")).expect_err("a name");
        assert_eq!(refused.status(), http::StatusCode::BAD_REQUEST);
    }
}
