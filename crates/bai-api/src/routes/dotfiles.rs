//! Dotfiles, the files copied into the home directory of every new session's containers, and the
//! keypair's bootstrap script: the reference's `userconfig` (`/user-config/dotfiles`,
//! `/user-config/bootstrap-script`), `domainconfig` (`/domain-config/dotfiles`) and `groupconfig`
//! (`/group-config/dotfiles`) modules.
//!
//! Each owner's dotfiles are one msgpack list of `{path, perm, data}` maps in its row's `dotfiles`
//! column (`keypairs`, `domains`, `groups`), at most [`MAXIMUM_DOTFILE_SIZE`] bytes packed and 100
//! entries; `bai_sessions::pending::dotfile_data` reads the same lists into a new session's
//! kernels. Writes go through `queries::dotfiles::rewrite`, which holds the row's lock from the
//! read to the write.

use axum::extract::State;
use bai_db_models::entities::enums::{UserRole, VFolderOwnershipType};
use bai_db_models::entities::vfolders;
use bai_db_models::queries;
use bai_db_models::queries::dotfiles::{DotfileOwner, Rewrite};
use bai_db_models::queries::vfolders::{AccessFilter, Requester};
use http::Method;
use sea_orm::{ColumnTrait, Condition};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::{Access, Authenticated, Route, StatusGate};
use crate::auth::Caller;
use crate::context::ApiContext;
use crate::error::{ApiError, ErrorKind};
use crate::json::PyJson;
use crate::params::{Params, non_blank};

/// The most a packed dotfile list, one dotfile's data or a bootstrap script may hold (64 KiB).
const MAXIMUM_DOTFILE_SIZE: usize = 64 * 1024;

/// The most dotfiles one owner may have.
const MAXIMUM_DOTFILE_COUNT: usize = 100;

/// Paths the agents use themselves (`ai.backend.manager.defs.RESERVED_DOTFILES`).
const RESERVED_DOTFILES: [&str; 6] = [
    ".terminfo",
    ".jupyter",
    ".ssh",
    ".ssh/authorized_keys",
    ".local",
    ".config",
];

/// What `DotfileNotFound` is called in its title.
const DOTFILE: &str = "dotfile";

/// What `GroupNotFound` is called in its title.
const PROJECT: &str = "user group (or project)";

pub(super) fn routes() -> Vec<Route> {
    let mut routes = vec![
        Route::new(
            Method::POST,
            "/user-config/dotfiles",
            "userconfig.create",
            create_user_dotfile,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .params::<UserWriteParams>()
        .summary(
            "Adds a dotfile to the caller's keypair (or, for an admin, `owner_access_key`'s).",
        ),
        Route::new(
            Method::GET,
            "/user-config/dotfiles",
            "userconfig.list_or_get",
            list_or_get_user_dotfiles,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .params::<UserReadParams>()
        .summary(
            "The dotfile `path` of the keypair as stored (`{path, perm, data}`), or without `path` \
             the caller's own dotfiles (`[{path, permission, data}]`).",
        ),
        Route::new(
            Method::PATCH,
            "/user-config/dotfiles",
            "userconfig.update",
            update_user_dotfile,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .params::<UserWriteParams>()
        .summary("Replaces the keypair's dotfile `path` (moved to the end of the list)."),
        Route::new(
            Method::DELETE,
            "/user-config/dotfiles",
            "userconfig.delete",
            delete_user_dotfile,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .params::<UserDeleteParams>()
        .summary("Removes the keypair's dotfile `path`."),
        Route::new(
            Method::POST,
            "/user-config/bootstrap-script",
            "userconfig.update_bootstrap_script",
            update_bootstrap_script,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .params::<BootstrapParams>()
        .summary("Stores the caller keypair's bootstrap script, stripped of surrounding blanks."),
        Route::new(
            Method::GET,
            "/user-config/bootstrap-script",
            "userconfig.get_bootstrap_script",
            get_bootstrap_script,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .summary("The caller keypair's bootstrap script, as a JSON string."),
    ];
    routes.extend([
        Route::new(
            Method::POST,
            "/domain-config/dotfiles",
            "domainconfig.create",
            create_domain_dotfile,
        )
        .access(Access::Admin)
        .gate(StatusGate::ReadAllowed)
        .params::<DomainWriteParams>()
        .summary("Adds a dotfile to `domain` (a domain admin's own domain only)."),
        Route::new(
            Method::GET,
            "/domain-config/dotfiles",
            "domainconfig.list_or_get",
            list_or_get_domain_dotfiles,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .params::<DomainReadParams>()
        .summary(
            "The dotfile `path` of `domain` as stored, or without `path` all of them (the \
             caller's own domain unless a superadmin).",
        ),
        Route::new(
            Method::PATCH,
            "/domain-config/dotfiles",
            "domainconfig.update",
            update_domain_dotfile,
        )
        .access(Access::Admin)
        .gate(StatusGate::ReadAllowed)
        .params::<DomainWriteParams>()
        .summary("Replaces the dotfile `path` of `domain`."),
        Route::new(
            Method::DELETE,
            "/domain-config/dotfiles",
            "domainconfig.delete",
            delete_domain_dotfile,
        )
        .access(Access::Admin)
        .gate(StatusGate::ReadAllowed)
        .params::<DomainDeleteParams>()
        .summary("Removes the dotfile `path` of `domain`."),
    ]);
    routes.extend([
        Route::new(
            Method::POST,
            "/group-config/dotfiles",
            "groupconfig.create",
            create_project_dotfile,
        )
        .access(Access::Admin)
        .gate(StatusGate::ReadAllowed)
        .params::<ProjectWriteParams>()
        .summary(
            "Adds a dotfile to project `group` (an id, or a name with `domain`; a domain admin's \
             own domain only).",
        ),
        Route::new(
            Method::GET,
            "/group-config/dotfiles",
            "groupconfig.list_or_get",
            list_or_get_project_dotfiles,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .params::<ProjectReadParams>()
        .summary(
            "The dotfile `path` of project `group` as stored, or without `path` all of them \
             (members, admins of its domain, superadmins).",
        ),
        Route::new(
            Method::PATCH,
            "/group-config/dotfiles",
            "groupconfig.update",
            update_project_dotfile,
        )
        .access(Access::Admin)
        .gate(StatusGate::ReadAllowed)
        .params::<ProjectWriteParams>()
        .summary("Replaces the dotfile `path` of project `group`."),
        Route::new(
            Method::DELETE,
            "/group-config/dotfiles",
            "groupconfig.delete",
            delete_project_dotfile,
        )
        .access(Access::Admin)
        .gate(StatusGate::ReadAllowed)
        .params::<ProjectDeleteParams>()
        .summary("Removes the dotfile `path` of project `group`."),
    ]);
    routes
}

// ----- parameters -----

/// `userconfig.create` and `update`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct UserWriteParams {
    /// The file's content, at most 65536 characters.
    #[serde(deserialize_with = "dotfile_data")]
    data: String,
    /// Where the file goes, relative to the home directory unless absolute.
    #[serde(deserialize_with = "non_blank")]
    path: String,
    /// The file's mode, three octal digits (`^[0-7]{3}$`).
    #[serde(deserialize_with = "permission")]
    permission: String,
    #[serde(default, deserialize_with = "optional_non_blank")]
    owner_access_key: Option<String>,
}

/// `userconfig.list_or_get`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct UserReadParams {
    #[serde(default, deserialize_with = "optional_non_blank")]
    path: Option<String>,
    #[serde(default, deserialize_with = "optional_non_blank")]
    owner_access_key: Option<String>,
}

/// `userconfig.delete`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct UserDeleteParams {
    #[serde(deserialize_with = "non_blank")]
    path: String,
    #[serde(default, deserialize_with = "optional_non_blank")]
    owner_access_key: Option<String>,
}

/// `userconfig.update_bootstrap_script`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct BootstrapParams {
    /// The script, at most 65536 characters; may be empty.
    #[serde(deserialize_with = "bounded_text")]
    script: String,
}

/// `domainconfig.create` and `update`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct DomainWriteParams {
    #[serde(deserialize_with = "non_blank")]
    domain: String,
    /// The file's content, at most 65536 characters.
    #[serde(deserialize_with = "dotfile_data")]
    data: String,
    /// Where the file goes, relative to the home directory unless absolute.
    #[serde(deserialize_with = "non_blank")]
    path: String,
    /// The file's mode, three octal digits (`^[0-7]{3}$`).
    #[serde(deserialize_with = "permission")]
    permission: String,
}

/// `domainconfig.list_or_get`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct DomainReadParams {
    #[serde(deserialize_with = "non_blank")]
    domain: String,
    #[serde(default, deserialize_with = "optional_non_blank")]
    path: Option<String>,
}

/// `domainconfig.delete`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct DomainDeleteParams {
    #[serde(deserialize_with = "non_blank")]
    domain: String,
    #[serde(deserialize_with = "non_blank")]
    path: String,
}

/// `groupconfig.create` and `update`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ProjectWriteParams {
    /// A project id, or a project name (then `domain` is required).
    #[serde(alias = "groupId", alias = "group_id", deserialize_with = "non_blank")]
    group: String,
    #[serde(default, deserialize_with = "optional_non_blank")]
    domain: Option<String>,
    /// The file's content, at most 65536 characters.
    #[serde(deserialize_with = "dotfile_data")]
    data: String,
    /// Where the file goes, relative to the home directory unless absolute.
    #[serde(deserialize_with = "non_blank")]
    path: String,
    /// The file's mode, three octal digits (`^[0-7]{3}$`).
    #[serde(deserialize_with = "permission")]
    permission: String,
}

/// `groupconfig.list_or_get`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ProjectReadParams {
    /// A project id, or a project name (then `domain` is required).
    #[serde(alias = "groupId", alias = "group_id", deserialize_with = "non_blank")]
    group: String,
    #[serde(default, deserialize_with = "optional_non_blank")]
    domain: Option<String>,
    #[serde(default, deserialize_with = "optional_non_blank")]
    path: Option<String>,
}

/// `groupconfig.delete`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ProjectDeleteParams {
    /// A project id, or a project name (then `domain` is required).
    #[serde(alias = "groupId", alias = "group_id", deserialize_with = "non_blank")]
    group: String,
    #[serde(default, deserialize_with = "optional_non_blank")]
    domain: Option<String>,
    #[serde(deserialize_with = "non_blank")]
    path: String,
}

/// trafaret `t.String(max_length=MAXIMUM_DOTFILE_SIZE)`: not empty, at most 65536 characters.
fn dotfile_data<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let data = non_blank(deserializer)?;
    within_limit(data)
}

/// trafaret `t.String(allow_blank=True, max_length=MAXIMUM_DOTFILE_SIZE)`.
fn bounded_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    within_limit(String::deserialize(deserializer)?)
}

fn within_limit<E: serde::de::Error>(text: String) -> Result<String, E> {
    if text.chars().count() > MAXIMUM_DOTFILE_SIZE {
        return Err(E::custom(format!(
            "String is longer than {MAXIMUM_DOTFILE_SIZE} characters"
        )));
    }
    Ok(text)
}

/// trafaret `t.Regexp(r"^[0-7]{3}$")`.
fn permission<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let permission = String::deserialize(deserializer)?;
    if permission.len() != 3 || !permission.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return Err(D::Error::custom("does not match pattern ^[0-7]{3}$"));
    }
    Ok(permission)
}

/// trafaret `t.Null | t.String`: absent, null, or a string that is not empty.
fn optional_non_blank<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    match Option::<String>::deserialize(deserializer)? {
        Some(text) if text.is_empty() => Err(D::Error::custom("blank value is not allowed")),
        other => Ok(other),
    }
}

// ----- the stored list -----

/// One dotfile as the reference packs it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
struct StoredDotfile {
    path: String,
    perm: String,
    data: String,
}

/// A dotfile in a listing, `perm` spelled out.
#[derive(Debug, Serialize)]
struct ListedDotfile {
    path: String,
    permission: String,
    data: String,
}

impl From<StoredDotfile> for ListedDotfile {
    fn from(dotfile: StoredDotfile) -> ListedDotfile {
        ListedDotfile {
            path: dotfile.path,
            permission: dotfile.perm,
            data: dotfile.data,
        }
    }
}

/// Why a rewrite of an owner's list was not done.
#[derive(Debug)]
enum Refusal {
    Api(ApiError),
    /// The stored list is not a msgpack list of dotfiles.
    Undecodable(rmp_serde::decode::Error),
    Unencodable(rmp_serde::encode::Error),
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Refusal {
        Refusal::Api(error)
    }
}

fn unpack(packed: &[u8]) -> Result<Vec<StoredDotfile>, rmp_serde::decode::Error> {
    rmp_serde::from_slice(packed)
}

fn pack(dotfiles: &[StoredDotfile]) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    rmp_serde::to_vec_named(dotfiles)
}

fn creation_failed(msg: &str) -> ApiError {
    ApiError::with_msg(ErrorKind::DotfileCreationFailed, msg)
}

fn no_room() -> ApiError {
    creation_failed("No leftover space for dotfile storage")
}

fn forbidden(msg: &str) -> ApiError {
    ApiError::with_msg(ErrorKind::GenericForbidden, msg)
}

fn db_error(context: &str) -> impl FnOnce(bai_db_models::DbError) -> ApiError + '_ {
    move |error| ApiError::internal(context, &error)
}

/// The list with `new` added, packed; refused when the owner has no room left, has 100 already,
/// when `path` is reserved or (`folder_conflict`) names one of the caller's folders, or when the
/// owner has `new.path` already (checked in the reference's order).
fn with_added(
    packed: &[u8],
    new: StoredDotfile,
    folder_conflict: bool,
) -> Result<Vec<u8>, Refusal> {
    let mut dotfiles = unpack(packed).map_err(Refusal::Undecodable)?;
    if packed.len() >= MAXIMUM_DOTFILE_SIZE {
        return Err(no_room().into());
    }
    if dotfiles.len() >= MAXIMUM_DOTFILE_COUNT {
        return Err(creation_failed("Dotfile creation limit reached").into());
    }
    if RESERVED_DOTFILES.contains(&new.path.as_str()) {
        return Err(reserved_path().into());
    }
    if folder_conflict {
        return Err(ApiError::invalid_params(
            "dotfile path conflicts with your dot-prefixed vFolder",
        )
        .into());
    }
    if dotfiles.iter().any(|dotfile| dotfile.path == new.path) {
        return Err(ApiError::new(ErrorKind::DotfileAlreadyExists).into());
    }
    dotfiles.push(new);
    packed_within_limit(&dotfiles)
}

/// The list with the dotfile at `new.path` replaced by `new` at the end, packed.
fn with_replaced(packed: &[u8], new: StoredDotfile) -> Result<Vec<u8>, Refusal> {
    let mut dotfiles = without(packed, &new.path)?;
    dotfiles.push(new);
    packed_within_limit(&dotfiles)
}

/// The list without the dotfile at `path`, packed.
fn with_removed(packed: &[u8], path: &str) -> Result<Vec<u8>, Refusal> {
    pack(&without(packed, path)?).map_err(Refusal::Unencodable)
}

/// The list without the dotfile at `path`; `DotfileNotFound` when there is none.
fn without(packed: &[u8], path: &str) -> Result<Vec<StoredDotfile>, Refusal> {
    let mut dotfiles = unpack(packed).map_err(Refusal::Undecodable)?;
    let before = dotfiles.len();
    dotfiles.retain(|dotfile| dotfile.path != path);
    if dotfiles.len() == before {
        return Err(ApiError::not_found(DOTFILE).into());
    }
    Ok(dotfiles)
}

fn packed_within_limit(dotfiles: &[StoredDotfile]) -> Result<Vec<u8>, Refusal> {
    let packed = pack(dotfiles).map_err(Refusal::Unencodable)?;
    if packed.len() > MAXIMUM_DOTFILE_SIZE {
        return Err(no_room().into());
    }
    Ok(packed)
}

fn reserved_path() -> ApiError {
    ApiError::invalid_params("dotfile path is reserved for internal operations.")
}

/// Stores what `edit` makes of the owner's list; `missing` answers for an owner that is gone.
async fn rewrite(
    ctx: &ApiContext,
    owner: DotfileOwner<'_>,
    missing: ApiError,
    edit: impl FnOnce(&[u8]) -> Result<Vec<u8>, Refusal>,
) -> Result<(), ApiError> {
    let outcome = queries::dotfiles::rewrite(ctx.db(), owner, edit)
        .await
        .map_err(db_error("storing the dotfiles"))?;
    match outcome {
        Rewrite::Written => Ok(()),
        Rewrite::OwnerMissing => Err(missing),
        Rewrite::Refused(Refusal::Api(error)) => Err(error),
        Rewrite::Refused(Refusal::Undecodable(error)) => {
            Err(ApiError::internal("reading the stored dotfiles", &error))
        }
        Rewrite::Refused(Refusal::Unencodable(error)) => {
            Err(ApiError::internal("packing the dotfiles", &error))
        }
    }
}

/// The owner's dotfiles; an owner that does not exist has none (the reference's
/// `query_*_dotfiles`).
async fn stored(ctx: &ApiContext, owner: DotfileOwner<'_>) -> Result<Vec<StoredDotfile>, ApiError> {
    let packed = queries::dotfiles::stored(ctx.db(), owner)
        .await
        .map_err(db_error("reading the dotfiles"))?;
    match packed {
        None => Ok(Vec::new()),
        Some(packed) => unpack(&packed)
            .map_err(|error| ApiError::internal("reading the stored dotfiles", &error)),
    }
}

/// `list_or_get`'s answer: the stored dotfile at `path`, or every dotfile.
fn list_or_get(dotfiles: Vec<StoredDotfile>, path: Option<&str>) -> Result<Value, ApiError> {
    match path {
        Some(path) => dotfiles
            .into_iter()
            .find(|dotfile| dotfile.path == path)
            .map(|dotfile| json!(dotfile))
            .ok_or_else(|| ApiError::not_found(DOTFILE)),
        None => Ok(json!(
            dotfiles
                .into_iter()
                .map(ListedDotfile::from)
                .collect::<Vec<_>>()
        )),
    }
}

// ----- /user-config -----

fn log_scope(what: &str, caller: &Caller, owner: &str) {
    let shown = if owner == caller.access_key() {
        "*"
    } else {
        owner
    };
    tracing::info!(target: "bai_api", "{what} (ak:{}/{shown})", caller.access_key());
}

async fn create_user_dotfile(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Params(params): Params<UserWriteParams>,
) -> Result<PyJson<Value>, ApiError> {
    let owner =
        super::session_ops::acting_for(&ctx, &caller, params.owner_access_key.as_deref()).await?;
    log_scope("USERCONFIG.CREATE", &caller, &owner);
    // Refused when the caller (not the owner) can reach a user folder of that name, such as a
    // dot-prefixed folder the agent would mount at the same place.
    let folder_conflict = caller_has_folder(&ctx, &caller, &params.path).await?;
    let new = StoredDotfile {
        path: params.path,
        perm: params.permission,
        data: params.data,
    };
    rewrite(
        &ctx,
        DotfileOwner::Keypair(&owner),
        ApiError::invalid_params("Unknown owner access key"),
        |packed| with_added(packed, new, folder_conflict),
    )
    .await?;
    Ok(PyJson(json!({})))
}

/// Whether the caller can reach a user folder (own or shared) called `name`.
async fn caller_has_folder(
    ctx: &ApiContext,
    caller: &Caller,
    name: &str,
) -> Result<bool, ApiError> {
    // `query_accessible_vfolders(conn, user_uuid, extra_vf_conds=...)` with its defaults: no
    // role (so no privileged access) and user folders only.
    let requester = Requester {
        uuid: caller.user.uuid,
        role: UserRole::User,
        domain_name: caller.user.domain_name.as_deref().unwrap_or_default(),
    };
    let filter = AccessFilter {
        folders: Some(Condition::all().add(vfolders::Column::Name.eq(name))),
        ..AccessFilter::default()
    };
    let found = queries::vfolders::accessible_vfolders(
        ctx.db(),
        &requester,
        &[VFolderOwnershipType::User],
        &filter,
    )
    .await
    .map_err(db_error("looking for a folder named like the dotfile"))?;
    Ok(!found.is_empty())
}

async fn list_or_get_user_dotfiles(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Params(params): Params<UserReadParams>,
) -> Result<PyJson<Value>, ApiError> {
    let owner =
        super::session_ops::acting_for(&ctx, &caller, params.owner_access_key.as_deref()).await?;
    log_scope("USERCONFIG.LIST_OR_GET", &caller, &owner);
    // The reference lists the caller's own dotfiles even when `owner_access_key` names another
    // keypair; only a single `path` is looked up in the owner's.
    let listed = match params.path {
        Some(_) => owner.as_str(),
        None => caller.access_key(),
    };
    let dotfiles = stored(&ctx, DotfileOwner::Keypair(listed)).await?;
    list_or_get(dotfiles, params.path.as_deref()).map(PyJson)
}

async fn update_user_dotfile(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Params(params): Params<UserWriteParams>,
) -> Result<PyJson<Value>, ApiError> {
    let owner =
        super::session_ops::acting_for(&ctx, &caller, params.owner_access_key.as_deref()).await?;
    log_scope("USERCONFIG.UPDATE", &caller, &owner);
    let new = StoredDotfile {
        path: params.path,
        perm: params.permission,
        data: params.data,
    };
    rewrite(
        &ctx,
        DotfileOwner::Keypair(&owner),
        ApiError::not_found(DOTFILE),
        |packed| with_replaced(packed, new),
    )
    .await?;
    Ok(PyJson(json!({})))
}

async fn delete_user_dotfile(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Params(params): Params<UserDeleteParams>,
) -> Result<PyJson<Value>, ApiError> {
    let owner =
        super::session_ops::acting_for(&ctx, &caller, params.owner_access_key.as_deref()).await?;
    log_scope("USERCONFIG.DELETE", &caller, &owner);
    rewrite(
        &ctx,
        DotfileOwner::Keypair(&owner),
        ApiError::not_found(DOTFILE),
        |packed| with_removed(packed, &params.path),
    )
    .await?;
    Ok(PyJson(json!({"success": true})))
}

async fn update_bootstrap_script(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Params(params): Params<BootstrapParams>,
) -> Result<PyJson<Value>, ApiError> {
    let access_key = caller.access_key();
    tracing::info!(target: "bai_api", "UPDATE_BOOTSTRAP_SCRIPT (ak:{access_key})");
    // Python's `str.strip()`: Unicode whitespace on both ends.
    let script = params.script.trim();
    let stored = queries::dotfiles::set_bootstrap_script(ctx.db(), access_key, script)
        .await
        .map_err(db_error("storing the bootstrap script"))?;
    if !stored {
        return Err(ApiError::invalid_params("Unknown access key"));
    }
    Ok(PyJson(json!({})))
}

async fn get_bootstrap_script(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
) -> Result<PyJson<Value>, ApiError> {
    let access_key = caller.access_key();
    tracing::info!(target: "bai_api", "USERCONFIG.GET_BOOTSTRAP_SCRIPT (ak:{access_key})");
    let script = queries::dotfiles::bootstrap_script(ctx.db(), access_key)
        .await
        .map_err(db_error("reading the bootstrap script"))?
        .ok_or_else(|| ApiError::invalid_params("Unknown access key"))?;
    Ok(PyJson(Value::String(script)))
}

// ----- /domain-config -----

/// Anyone but a superadmin may touch only their own domain's dotfiles.
fn check_domain(caller: &Caller, domain: &str, refusal: &str) -> Result<(), ApiError> {
    if !caller.is_superadmin() && caller.user.domain_name.as_deref() != Some(domain) {
        return Err(forbidden(refusal));
    }
    Ok(())
}

async fn create_domain_dotfile(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Params(params): Params<DomainWriteParams>,
) -> Result<PyJson<Value>, ApiError> {
    let domain = params.domain;
    tracing::info!(target: "bai_api", "DOMAINCONFIG.CREATE_DOTFILE (domain: {domain})");
    check_domain(
        &caller,
        &domain,
        "Domain admins cannot create dotfiles of other domains",
    )?;
    let new = StoredDotfile {
        path: params.path,
        perm: params.permission,
        data: params.data,
    };
    rewrite(
        &ctx,
        DotfileOwner::Domain(&domain),
        ApiError::with_msg(
            ErrorKind::ObjectNotFound("domain"),
            "Input domain is not found",
        ),
        |packed| with_added(packed, new, false),
    )
    .await?;
    Ok(PyJson(json!({})))
}

async fn list_or_get_domain_dotfiles(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Params(params): Params<DomainReadParams>,
) -> Result<PyJson<Value>, ApiError> {
    let domain = params.domain;
    tracing::info!(target: "bai_api", "DOMAINCONFIG.LIST_OR_GET_DOTFILE (domain: {domain})");
    check_domain(
        &caller,
        &domain,
        "Users cannot access dotfiles of other domains",
    )?;
    let dotfiles = stored(&ctx, DotfileOwner::Domain(&domain)).await?;
    list_or_get(dotfiles, params.path.as_deref()).map(PyJson)
}

async fn update_domain_dotfile(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Params(params): Params<DomainWriteParams>,
) -> Result<PyJson<Value>, ApiError> {
    let domain = params.domain;
    tracing::info!(target: "bai_api", "DOMAINCONFIG.UPDATE_DOTFILE (domain:{domain})");
    check_domain(
        &caller,
        &domain,
        "Domain admins cannot update dotfiles of other domains",
    )?;
    let new = StoredDotfile {
        path: params.path,
        perm: params.permission,
        data: params.data,
    };
    rewrite(
        &ctx,
        DotfileOwner::Domain(&domain),
        ApiError::not_found(DOTFILE),
        |packed| with_replaced(packed, new),
    )
    .await?;
    Ok(PyJson(json!({})))
}

async fn delete_domain_dotfile(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Params(params): Params<DomainDeleteParams>,
) -> Result<PyJson<Value>, ApiError> {
    let domain = params.domain;
    tracing::info!(target: "bai_api", "DOMAINCONFIG.DELETE_DOTFILE (domain:{domain})");
    check_domain(
        &caller,
        &domain,
        "Domain admins cannot delete dotfiles of other domains",
    )?;
    rewrite(
        &ctx,
        DotfileOwner::Domain(&domain),
        ApiError::not_found(DOTFILE),
        |packed| with_removed(packed, &params.path),
    )
    .await?;
    Ok(PyJson(json!({"success": true})))
}

// ----- /group-config -----

/// The project `group` names (an id, or a name in `domain`) and its domain.
async fn resolve_project(
    ctx: &ApiContext,
    group: &str,
    domain: Option<&str>,
) -> Result<(Uuid, String), ApiError> {
    let found = match Uuid::parse_str(group) {
        Ok(id) => queries::groups::by_id(ctx.db(), id, None)
            .await
            .map_err(db_error("reading the project"))?,
        Err(_) => {
            let Some(domain) = domain else {
                return Err(ApiError::invalid_params("Missing parameter 'domain'"));
            };
            queries::groups::by_name(ctx.db(), group, Some(domain))
                .await
                .map_err(db_error("reading the project"))?
                .into_iter()
                .next()
        }
    };
    found
        .map(|project| (project.id, project.domain_name))
        .ok_or_else(|| ApiError::not_found(PROJECT))
}

async fn create_project_dotfile(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Params(params): Params<ProjectWriteParams>,
) -> Result<PyJson<Value>, ApiError> {
    tracing::info!(target: "bai_api", "GROUPCONFIG.CREATE_DOTFILE (group: {})", params.group);
    let (project, domain) = resolve_project(&ctx, &params.group, params.domain.as_deref()).await?;
    check_domain(
        &caller,
        &domain,
        "Admins cannot create group dotfiles of other domains",
    )?;
    let new = StoredDotfile {
        path: params.path,
        perm: params.permission,
        data: params.data,
    };
    rewrite(
        &ctx,
        DotfileOwner::Project(project),
        ApiError::not_found(PROJECT),
        |packed| with_added(packed, new, false),
    )
    .await?;
    Ok(PyJson(json!({})))
}

async fn list_or_get_project_dotfiles(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Params(params): Params<ProjectReadParams>,
) -> Result<PyJson<Value>, ApiError> {
    tracing::info!(target: "bai_api", "GROUPCONFIG.LIST_OR_GET_DOTFILE (group: {})", params.group);
    let (project, domain) = resolve_project(&ctx, &params.group, params.domain.as_deref()).await?;
    if caller.is_admin() {
        check_domain(
            &caller,
            &domain,
            "Domain admins cannot access group dotfiles of other domains",
        )?;
    } else if !caller.is_superadmin() {
        let member = queries::dotfiles::is_project_member(ctx.db(), caller.user.uuid, project)
            .await
            .map_err(db_error("checking the project membership"))?;
        if !member {
            return Err(forbidden(
                "Users cannot access group dotfiles of other groups",
            ));
        }
    }
    let dotfiles = stored(&ctx, DotfileOwner::Project(project)).await?;
    list_or_get(dotfiles, params.path.as_deref()).map(PyJson)
}

async fn update_project_dotfile(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Params(params): Params<ProjectWriteParams>,
) -> Result<PyJson<Value>, ApiError> {
    tracing::info!(target: "bai_api", "GROUPCONFIG.UPDATE_DOTFILE (group: {})", params.group);
    let (project, domain) = resolve_project(&ctx, &params.group, params.domain.as_deref()).await?;
    check_domain(
        &caller,
        &domain,
        "Admins cannot update group dotfiles of other domains",
    )?;
    let new = StoredDotfile {
        path: params.path,
        perm: params.permission,
        data: params.data,
    };
    rewrite(
        &ctx,
        DotfileOwner::Project(project),
        ApiError::not_found(PROJECT),
        |packed| with_replaced(packed, new),
    )
    .await?;
    Ok(PyJson(json!({})))
}

async fn delete_project_dotfile(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Params(params): Params<ProjectDeleteParams>,
) -> Result<PyJson<Value>, ApiError> {
    tracing::info!(target: "bai_api", "GROUPCONFIG.DELETE_DOTFILE (group: {})", params.group);
    let (project, domain) = resolve_project(&ctx, &params.group, params.domain.as_deref()).await?;
    check_domain(
        &caller,
        &domain,
        "Admins cannot delete dotfiles of other domains",
    )?;
    rewrite(
        &ctx,
        DotfileOwner::Project(project),
        ApiError::not_found(PROJECT),
        |packed| with_removed(packed, &params.path),
    )
    .await?;
    Ok(PyJson(json!({"success": true})))
}
