//! Task templates (`/template/session`, the reference's `session_template` module) and sessions
//! created from them (`POST /session/_/create-from-template`, `session.create_from_template`).
//!
//! A template arrives as the string `payload`, JSON or YAML, holding a list of
//! `{"template": <task template>, "name"?, "group_id"?, "user_uuid"?}` entries (YAML: one entry per
//! document). Each task template is checked and normalized as the reference's `task_template_v1`
//! does (aliases renamed, defaults filled in) and stored as such. Rows are read and written by
//! `bai_db_models::queries::session_templates`; a session from a template goes through
//! [`session::enqueue_session`], the same path as `POST /session`.
//!
//! Stricter than the reference, which checks no ownership on the routes by id: a template is read
//! (also to create a session from it) only by those whose listing shows it, and replaced or
//! deleted only by its owner, a domain admin of its domain or a superadmin; to anyone else it is
//! as if it did not exist. The helpers for this are shared with
//! [`cluster_template`](super::cluster_template).

use std::collections::BTreeMap;

use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use bai_db_models::entities::enums::{TemplateType, UserRole};
use bai_db_models::entities::session_templates;
use bai_db_models::queries::session_enqueue::KeypairOwner;
use bai_db_models::queries::session_templates::{
    self as queries, Authority, CreateOutcome, ListScope, ListedTemplate, NewTemplate, Requester,
    TemplateOwner, TemplateUpdate, UpdateOutcome,
};
use bai_db_models::{DbError, WriteError};
use http::Method;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::session::{self, CreateParams};
use super::{Access, Authenticated, Route, StatusGate};
use crate::auth::Caller;
use crate::context::ApiContext;
use crate::error::{ApiError, ErrorKind};
use crate::json::PyJson;
use crate::params::{Params, Path, from_value, lenient, non_blank};
use crate::version::ApiVersion;

/// What `TaskTemplateNotFound` is called in its title.
const TASK_TEMPLATE: &str = "task template";

/// The longest template name `session_templates.name` holds.
const MAX_NAME_LENGTH: usize = 128;

pub(super) fn routes() -> Vec<Route> {
    vec![
        Route::new(
            Method::POST,
            "/template/session",
            "session_template.create",
            create,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .params::<PayloadParams>()
        .summary(
            "Stores the task templates of `payload` (JSON or YAML) in one transaction and \
             answers their ids.",
        ),
        Route::new(
            Method::GET,
            "/template/session",
            "session_template.list_template",
            list,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .params::<ListParams>()
        .summary(
            "The caller's task templates, then those of its projects (a domain admin's: of its \
             domain); a superadmin's `all`: every one.",
        ),
        Route::new(
            Method::GET,
            "/template/session/{template_id}",
            "session_template.get",
            get,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .params::<GetParams>()
        .summary("One task template with its name, owner and project (`{}` when there is none)."),
        Route::new(
            Method::PUT,
            "/template/session/{template_id}",
            "session_template.put",
            put,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .params::<PayloadParams>()
        .summary("Replaces a task template with the one in `payload`."),
        Route::new(
            Method::DELETE,
            "/template/session/{template_id}",
            "session_template.delete",
            delete,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .params::<OwnerParams>()
        .summary("Deactivates a task template."),
        Route::new(
            Method::POST,
            "/session/_/create-from-template",
            "session.create_from_template",
            create_from_template,
        )
        .access(Access::User)
        .gate(StatusGate::AllAllowed)
        .params::<FromTemplateParams>()
        .summary(
            "Creates a session as `POST /session` does, with the task template's image, \
             resources, mounts and scripts as defaults for the keys the request leaves out.",
        ),
    ]
}

// ----- parameters -----

fn default_name() -> String {
    "default".to_owned()
}

/// `POST` and `PUT /template/session[/{template_id}]`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PayloadParams {
    /// The project of the templates; aliases `groupName`, `group_name`.
    #[serde(
        default = "default_name",
        alias = "groupName",
        alias = "group_name",
        deserialize_with = "non_blank"
    )]
    pub(super) group: String,
    /// Aliases `domainName`, `domain_name`.
    #[serde(
        default = "default_name",
        alias = "domainName",
        alias = "domain_name",
        deserialize_with = "non_blank"
    )]
    pub(super) domain: String,
    #[serde(default)]
    pub(super) owner_access_key: Option<String>,
    /// A JSON list of `{"template", "name"?, "group_id"?, "user_uuid"?}`, or YAML documents of one
    /// such entry each.
    #[serde(deserialize_with = "non_blank")]
    pub(super) payload: String,
}

/// `GET /template/session`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ListParams {
    /// Every user's templates (superadmins only; ignored for others).
    #[serde(default, deserialize_with = "lenient::bool")]
    pub(super) all: bool,
    /// Only the templates of this project; alias `groupId`.
    #[serde(default, alias = "groupId")]
    pub(super) group_id: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(super) enum Format {
    #[default]
    Json,
    Yaml,
}

/// `GET /template/{session,cluster}/{template_id}`. A task template is answered as JSON whatever
/// `format` says, as the reference's; a cluster template as YAML unless `format` is `json`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct GetParams {
    #[serde(default)]
    pub(super) format: Option<Format>,
    #[serde(default)]
    pub(super) owner_access_key: Option<String>,
}

/// `DELETE /template/session/{template_id}`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct OwnerParams {
    #[serde(default)]
    pub(super) owner_access_key: Option<String>,
}

// ----- the task template -----

/// `task_template_v1`: unknown keys are kept at the top level and refused below it.
#[derive(Debug, Deserialize, Serialize)]
struct TaskTemplate {
    #[serde(alias = "apiVersion", deserialize_with = "non_blank")]
    api_version: String,
    kind: TaskKind,
    metadata: TaskMetadata,
    spec: TaskSpec,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

#[derive(Debug, Deserialize, Serialize)]
enum TaskKind {
    #[serde(rename = "taskTemplate")]
    CamelCase,
    #[serde(rename = "task_template")]
    SnakeCase,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct TaskMetadata {
    #[serde(deserialize_with = "non_blank")]
    name: String,
    #[serde(default)]
    tag: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
enum TemplateSessionType {
    #[default]
    Interactive,
    Batch,
    Inference,
    System,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct TaskSpec {
    #[serde(
        default,
        rename(deserialize = "type"),
        alias = "session_type",
        alias = "sessionType"
    )]
    session_type: TemplateSessionType,
    kernel: TaskKernel,
    #[serde(default)]
    scaling_group: Option<String>,
    /// Folder name → mount path (or null); absent: `{}`.
    #[serde(default = "some_empty_map")]
    mounts: Option<Map<String, Value>>,
    #[serde(default)]
    resources: Option<Map<String, Value>>,
    #[serde(default, alias = "agentList")]
    agent_list: Option<Vec<String>>,
}

pub(super) fn some_empty_map() -> Option<Map<String, Value>> {
    Some(Map::new())
}

fn x86_64() -> Option<String> {
    Some("x86_64".to_owned())
}

fn some_empty_environ() -> Option<BTreeMap<String, String>> {
    Some(BTreeMap::new())
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct TaskKernel {
    #[serde(deserialize_with = "non_blank")]
    image: String,
    #[serde(default = "x86_64")]
    architecture: Option<String>,
    #[serde(default = "some_empty_environ")]
    environ: Option<BTreeMap<String, String>>,
    #[serde(default)]
    run: Option<TaskRun>,
    #[serde(default)]
    git: Option<TaskGit>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct TaskRun {
    #[serde(default)]
    bootstrap: Option<String>,
    #[serde(
        default,
        rename(deserialize = "startup"),
        alias = "startup_command",
        alias = "startupCommand"
    )]
    startup_command: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct TaskGit {
    #[serde(deserialize_with = "non_blank")]
    repository: String,
    #[serde(default)]
    commit: Option<String>,
    #[serde(default)]
    branch: Option<String>,
    #[serde(default)]
    credential: Option<GitCredential>,
    #[serde(
        default,
        rename(deserialize = "destination_dir"),
        alias = "destinationDir"
    )]
    dest_dir: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct GitCredential {
    username: String,
    password: String,
}

/// A template (`T`, its schema) read from `raw`; a problem names its field as
/// `template.<path>`, or `template` for the whole.
pub(super) fn read_template<T: serde::de::DeserializeOwned>(raw: Value) -> Result<T, ApiError> {
    // `from_value` refuses strings holding U+0000 (which JSONB cannot store), naming the field.
    let raw: Value = from_value(raw).map_err(|mut error| {
        error.data = error.data.take().map(template_fields);
        error
    })?;
    serde_path_to_error::deserialize(raw).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner().to_string();
        let named = |prefix: &str| {
            inner
                .strip_prefix(prefix)
                .and_then(|rest| rest.split('`').next())
                .map(str::to_owned)
        };
        // The path of an unknown key ends with the key; that of a missing one at its parent.
        let (field, message) = match (named("unknown field `"), named("missing field `")) {
            (Some(_), _) => (path, "is not allowed key".to_owned()),
            (None, Some(key)) if path == "." => (key, "is required".to_owned()),
            (None, Some(key)) => (format!("{path}.{key}"), "is required".to_owned()),
            (None, None) if path == "." => (String::new(), inner),
            (None, None) => (path, inner),
        };
        ApiError::invalid_params("Input validation error")
            .data(template_fields(json!({ field: message })))
    })
}

/// `check_task_template`: the template checked and normalized; a problem names its field as
/// `template.<path>`.
fn check_task_template(raw: Value) -> Result<Value, ApiError> {
    let template: TaskTemplate = read_template(raw)?;
    for (folder, path) in template.spec.mounts.iter().flatten() {
        let path = match path {
            Value::Null => continue,
            Value::String(path) => path,
            _ => {
                return Err(
                    ApiError::invalid_params("Input validation error").data(json!({
                        format!("template.spec.mounts.{folder}"): "value is not a string",
                    })),
                );
            }
        };
        let name = path.strip_prefix("/home/work/").unwrap_or(path);
        if !bai_scheduler::enqueue::is_allowed_vfolder_name(name) {
            return Err(ApiError::invalid_params(format!(
                "Path {name} is reserved for internal operations."
            )));
        }
    }
    serde_json::to_value(&template)
        .map_err(|error| ApiError::internal("writing the checked task template", &error))
}

/// Validation problems `data` (`{"<field>": "<message>"}`) with each field named inside the
/// template: `template.<field>`, or `template` for the template as a whole.
fn template_fields(data: Value) -> Value {
    let Value::Object(data) = data else {
        return data;
    };
    Value::Object(
        data.into_iter()
            .map(|(key, value)| {
                let key = if key.is_empty() {
                    "template".to_owned()
                } else {
                    format!("template.{key}")
                };
                (key, value)
            })
            .collect(),
    )
}

/// One entry of a payload, checked.
struct PayloadEntry {
    template: Value,
    name: String,
    group_id: Option<Uuid>,
    user_uuid: Option<Uuid>,
}

/// The entries of `payload`: a JSON list, else YAML documents (each an entry, or a list of them
/// for `many`; a single document otherwise, which must be a list).
fn payload_entries(payload: &str, many: bool) -> Result<Vec<PayloadEntry>, ApiError> {
    let malformed = || ApiError::invalid_params("Malformed payload");
    let documents: Vec<Value> = match serde_json::from_str::<Value>(payload) {
        Ok(Value::Array(entries)) => entries,
        Ok(_) => return Err(malformed()),
        Err(_) if many => {
            let mut entries = Vec::new();
            for document in serde_norway::Deserializer::from_str(payload) {
                match Value::deserialize(document).map_err(|_| malformed())? {
                    Value::Array(list) => entries.extend(list),
                    Value::Null => {}
                    entry => entries.push(entry),
                }
            }
            entries
        }
        Err(_) => match serde_norway::from_str::<Value>(payload).map_err(|_| malformed())? {
            Value::Array(entries) => entries,
            _ => return Err(malformed()),
        },
    };
    documents
        .into_iter()
        .enumerate()
        .map(|(index, document)| payload_entry(index, document))
        .collect()
}

fn payload_entry(index: usize, document: Value) -> Result<PayloadEntry, ApiError> {
    let field_error = |field: &str, message: &str| {
        ApiError::invalid_params("Input validation error")
            .data(json!({ format!("payload[{index}].{field}"): message }))
    };
    let Value::Object(mut entry) = document else {
        return Err(field_error("template", "is required"));
    };
    let raw = entry
        .remove("template")
        .ok_or_else(|| field_error("template", "is required"))?;
    let template = check_task_template(raw)?;
    let name = match entry.get("name") {
        None => metadata_name(&template),
        Some(Value::String(name)) if !name.is_empty() => name.clone(),
        Some(_) => return Err(field_error("name", "value is not a non-blank string")),
    };
    if name.chars().count() > MAX_NAME_LENGTH {
        return Err(field_error(
            "name",
            &format!("longer than {MAX_NAME_LENGTH} characters"),
        ));
    }
    let uuid_of = |field: &str| match entry.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Uuid::parse_str(text)
            .map(Some)
            .map_err(|_| field_error(field, "value is not a UUID")),
        Some(_) => Err(field_error(field, "value is not a UUID")),
    };
    Ok(PayloadEntry {
        name,
        group_id: uuid_of("group_id")?,
        user_uuid: uuid_of("user_uuid")?,
        template,
    })
}

// ----- errors and wire shapes -----

pub(super) fn db_error(context: &str) -> impl FnOnce(DbError) -> ApiError + '_ {
    move |error| ApiError::internal(context, &error)
}

pub(super) fn write_error(context: &str) -> impl FnOnce(WriteError) -> ApiError + '_ {
    move |error| match error {
        WriteError::Rejected(msg) => ApiError::invalid_params(msg),
        WriteError::Db(error) => ApiError::internal(context, error.as_ref()),
    }
}

/// The answer for a template that does not exist and for one the caller may not see or change,
/// so that it cannot tell the two apart.
pub(super) fn template_not_found() -> ApiError {
    ApiError::not_found(TASK_TEMPLATE)
}

/// Python's `str()` of an optional UUID.
pub(super) fn python_str_uuid(id: Option<Uuid>) -> String {
    id.map_or_else(|| "None".to_owned(), |id| id.to_string())
}

/// What `GET /template/session` and `GET /template/cluster` show of every template.
#[derive(Debug, Serialize)]
pub(super) struct ListedCommon {
    name: Option<String>,
    /// 32 hex digits, no dashes.
    id: String,
    created_at: String,
    is_owner: bool,
    user: String,
    group: String,
    user_email: Option<String>,
    group_name: Option<String>,
}

impl From<&ListedTemplate> for ListedCommon {
    fn from(listed: &ListedTemplate) -> ListedCommon {
        let row = &listed.row;
        ListedCommon {
            name: row.name.clone(),
            id: row.id.simple().to_string(),
            created_at: bai_pyjson::datetime::str_datetime_or_none(row.created_at.as_ref()),
            is_owner: listed.is_owner,
            user: row.user_uuid.to_string(),
            group: python_str_uuid(row.group_id),
            user_email: listed.user_email.clone(),
            group_name: listed.group_name.clone(),
        }
    }
}

/// One entry of `GET /template/session`.
#[derive(Debug, Serialize)]
struct ListedTask {
    #[serde(flatten)]
    common: ListedCommon,
    /// The requester's domain, as the reference writes it.
    domain_name: Option<String>,
    r#type: &'static str,
    template: Value,
}

impl ListedTask {
    fn new(listed: ListedTemplate, domain_name: Option<String>) -> ListedTask {
        ListedTask {
            common: ListedCommon::from(&listed),
            domain_name,
            r#type: "task",
            template: listed.row.template,
        }
    }
}

/// One template `POST /template/session` stored.
#[derive(Debug, Serialize)]
struct CreatedTemplate {
    id: String,
    user: String,
}

// ----- who may see and change a template -----

/// What the caller's role lets it reach beyond its own templates.
fn authority(caller: &Caller) -> Authority {
    match (caller.role(), &caller.user.domain_name) {
        (UserRole::Superadmin, _) => Authority::Superadmin,
        (UserRole::Admin, Some(domain_name)) => Authority::DomainAdmin(domain_name.clone()),
        _ => Authority::User,
    }
}

/// The caller as a reader of templates: it sees what it may list.
fn reader(caller: &Caller) -> Requester {
    Requester {
        user_uuid: caller.user.uuid,
        authority: authority(caller),
    }
}

/// The caller as a writer of templates: the templates of the owner `owner_access_key` names (the
/// caller itself without one; checked as `POST /session` checks it) are its own, and the caller's
/// role reaches further.
pub(super) async fn editor(
    ctx: &ApiContext,
    caller: &Caller,
    owner_access_key: Option<&str>,
) -> Result<Requester, ApiError> {
    let owner = session::owner_scope(ctx, caller, owner_access_key).await?;
    Ok(editor_for(caller, owner.as_ref()))
}

fn editor_for(caller: &Caller, owner: Option<&KeypairOwner>) -> Requester {
    Requester {
        user_uuid: owner.map_or(caller.user.uuid, |owner| owner.user.uuid),
        authority: authority(caller),
    }
}

/// `get_access_key_scopes` and `query_userinfo`: the writer the request acts as (see [`editor`])
/// and the project it names (checked as `POST /session` checks it).
pub(super) async fn editor_and_project(
    ctx: &ApiContext,
    caller: &Caller,
    params: &PayloadParams,
) -> Result<(Requester, Uuid), ApiError> {
    let owner = session::owner_scope(ctx, caller, params.owner_access_key.as_deref()).await?;
    let scope =
        session::resolve_scope(ctx, caller, owner.as_ref(), &params.domain, &params.group).await?;
    Ok((editor_for(caller, owner.as_ref()), scope.group_id))
}

/// The active template of `kind` a path names, if the caller may see it; `None` also for an id
/// that is no UUID.
pub(super) async fn find_visible(
    ctx: &ApiContext,
    caller: &Caller,
    template_id: &str,
    kind: TemplateType,
) -> Result<Option<session_templates::Model>, ApiError> {
    let Ok(id) = Uuid::parse_str(template_id) else {
        return Ok(None);
    };
    queries::visible_active(ctx.db(), id, Some(kind), &reader(caller))
        .await
        .map_err(db_error("reading the session template"))
}

/// Applies `updates` to the template of `kind` a path names, if `editor` may change it (else as
/// if there were no such template) and give it to each new owner (else 403).
pub(super) async fn update_template(
    ctx: &ApiContext,
    editor: &Requester,
    template_id: &str,
    kind: TemplateType,
    updates: Vec<TemplateUpdate>,
) -> Result<PyJson<Value>, ApiError> {
    let Ok(id) = Uuid::parse_str(template_id) else {
        return Err(template_not_found());
    };
    let outcome = queries::update(ctx.db(), id, kind, editor, updates)
        .await
        .map_err(write_error("updating the session template"))?;
    match outcome {
        UpdateOutcome::Updated => Ok(PyJson(json!({"success": true}))),
        UpdateOutcome::NotFound => Err(template_not_found()),
        UpdateOutcome::OwnerOutOfReach => Err(owner_out_of_reach(editor)),
    }
}

/// 403 for a template given to a user or project beyond `editor`'s reach.
pub(super) fn owner_out_of_reach(editor: &Requester) -> ApiError {
    ApiError::with_msg(
        ErrorKind::GenericForbidden,
        match editor.authority {
            Authority::User => {
                "Users can give their templates only to themselves and to their own projects; \
                 ask an admin to give one to another user or project."
            }
            // A superadmin reaches every owner.
            Authority::DomainAdmin(_) | Authority::Superadmin => {
                "Domain-admins can give templates only to the users and projects of their domain."
            }
        },
    )
}

/// `DELETE /template/{session,cluster}/{template_id}`: deactivates the template of `kind` if the
/// writer may change it, else answers as if there were no such template.
pub(super) async fn delete_template(
    ctx: &ApiContext,
    caller: &Caller,
    template_id: &str,
    params: &OwnerParams,
    kind: TemplateType,
) -> Result<PyJson<Value>, ApiError> {
    let editor = editor(ctx, caller, params.owner_access_key.as_deref()).await?;
    let Ok(id) = Uuid::parse_str(template_id) else {
        return Err(template_not_found());
    };
    let deleted = queries::deactivate(ctx.db(), id, kind, &editor)
        .await
        .map_err(db_error("deleting the session template"))?;
    if !deleted {
        return Err(template_not_found());
    }
    Ok(PyJson(json!({"success": true})))
}

/// The `metadata.name` of a checked template.
pub(super) fn metadata_name(template: &Value) -> String {
    template["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// The active templates of `kind` listed for the caller (see [`list_scope`]).
pub(super) async fn list_templates(
    ctx: &ApiContext,
    caller: &Caller,
    params: &ListParams,
    kind: TemplateType,
) -> Result<Vec<ListedTemplate>, ApiError> {
    let scope = list_scope(caller, params)?;
    queries::list(ctx.db(), kind, &scope)
        .await
        .map_err(db_error("listing session templates"))
}

/// What a listing shows the caller: a superadmin's `all` is everything; a domain admin sees its
/// domain's projects; `group_id` narrows to one project.
fn list_scope(caller: &Caller, params: &ListParams) -> Result<ListScope, ApiError> {
    let group_id = params
        .group_id
        .as_deref()
        .map(|text| {
            Uuid::parse_str(text).map_err(|_| {
                ApiError::invalid_params("Input validation error")
                    .data(json!({"group_id": "value is not a UUID"}))
            })
        })
        .transpose()?;
    Ok(ListScope {
        requester: reader(caller),
        all: params.all && caller.is_superadmin(),
        group_id,
    })
}

// ----- handlers -----

#[tracing::instrument(name = "session_template.create", skip_all, fields(access_key = %caller.access_key()))]
async fn create(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Params(params): Params<PayloadParams>,
) -> Result<PyJson<Vec<CreatedTemplate>>, ApiError> {
    let (editor, group_id) = editor_and_project(&ctx, &caller, &params).await?;
    let entries = payload_entries(&params.payload, true)?;
    let templates: Vec<NewTemplate> = entries
        .into_iter()
        .map(|entry| NewTemplate {
            kind: TemplateType::Task,
            domain_name: params.domain.clone(),
            group_id: entry.group_id.or(Some(group_id)),
            user_uuid: entry.user_uuid.unwrap_or(editor.user_uuid),
            name: entry.name,
            template: entry.template,
        })
        .collect();
    let owners: Vec<Uuid> = templates
        .iter()
        .map(|template| template.user_uuid)
        .collect();
    let ids = match queries::create(ctx.db(), &editor, templates)
        .await
        .map_err(write_error("creating session templates"))?
    {
        CreateOutcome::Created(ids) => ids,
        CreateOutcome::OwnerOutOfReach => return Err(owner_out_of_reach(&editor)),
    };
    Ok(PyJson(
        ids.into_iter()
            .zip(owners)
            .map(|(id, user)| CreatedTemplate {
                id: id.simple().to_string(),
                user: user.simple().to_string(),
            })
            .collect(),
    ))
}

#[tracing::instrument(name = "session_template.list", skip_all, fields(access_key = %caller.access_key()))]
async fn list(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Params(params): Params<ListParams>,
) -> Result<PyJson<Vec<ListedTask>>, ApiError> {
    let listed = list_templates(&ctx, &caller, &params, TemplateType::Task).await?;
    Ok(PyJson(
        listed
            .into_iter()
            .map(|listed| ListedTask::new(listed, caller.user.domain_name.clone()))
            .collect(),
    ))
}

/// A template the caller may not see answers `{}`, as one that does not exist does.
async fn get(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Path(template_id): Path<String>,
    Params(params): Params<GetParams>,
) -> Result<PyJson<Value>, ApiError> {
    session::owner_scope(&ctx, &caller, params.owner_access_key.as_deref()).await?;
    tracing::info!(
        target: "bai_api",
        "SESSION_TEMPLATE.GET (ak:{}, template:{template_id}, format:{:?})",
        caller.access_key(),
        params.format.unwrap_or_default()
    );
    let Some(row) = find_visible(&ctx, &caller, &template_id, TemplateType::Task).await? else {
        return Ok(PyJson(json!({})));
    };
    Ok(PyJson(json!({
        "template": row.template,
        "name": row.name,
        "user_uuid": row.user_uuid.to_string(),
        "group_id": python_str_uuid(row.group_id),
        "domain_name": caller.user.domain_name,
    })))
}

#[tracing::instrument(name = "session_template.put", skip_all, fields(access_key = %caller.access_key()))]
async fn put(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Path(template_id): Path<String>,
    Params(params): Params<PayloadParams>,
) -> Result<PyJson<Value>, ApiError> {
    let (editor, group_id) = editor_and_project(&ctx, &caller, &params).await?;
    let updates = payload_entries(&params.payload, false)?
        .into_iter()
        .map(|entry| TemplateUpdate {
            owner: Some(TemplateOwner {
                group_id: entry.group_id.or(Some(group_id)),
                user_uuid: entry.user_uuid.unwrap_or(editor.user_uuid),
            }),
            name: entry.name,
            template: entry.template,
        })
        .collect();
    update_template(&ctx, &editor, &template_id, TemplateType::Task, updates).await
}

#[tracing::instrument(name = "session_template.delete", skip_all, fields(access_key = %caller.access_key()))]
async fn delete(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Path(template_id): Path<String>,
    Params(params): Params<OwnerParams>,
) -> Result<PyJson<Value>, ApiError> {
    delete_template(&ctx, &caller, &template_id, &params, TemplateType::Task).await
}

// ----- POST /session/_/create-from-template -----

/// A key that may be absent (the reference's `undefined`), null, or a value.
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

fn present_session_name<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    session::session_name(deserializer).map(Some)
}

/// trafaret `Int[0:]`: an integer, not a string of one.
fn non_negative<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let value = i64::deserialize(deserializer)?;
    u64::try_from(value).map_err(|_| D::Error::custom("value is less than 0"))
}

/// `POST /session/_/create-from-template`: `POST /session`'s keys, each optional (the template
/// supplies what is left out), plus `template_id`. Unknown keys are refused.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct FromTemplateParams {
    /// Alias `templateId`.
    #[serde(alias = "templateId")]
    #[schemars(with = "Option<String>")]
    template_id: Option<Uuid>,
    /// Aliases `session_name`, `clientSessionToken`; required in the end.
    #[serde(
        default,
        alias = "session_name",
        alias = "clientSessionToken",
        deserialize_with = "present_session_name"
    )]
    name: Option<String>,
    /// Alias `lang`.
    #[serde(default, alias = "lang", deserialize_with = "present")]
    image: Option<Option<String>>,
    /// Alias `architecture`.
    #[serde(default, alias = "architecture")]
    arch: Option<String>,
    /// Alias `sessionType`.
    #[serde(default, rename = "type", alias = "sessionType")]
    session_type: Option<TemplateSessionType>,
    /// Aliases `groupName`, `group_name`.
    #[serde(
        default,
        alias = "groupName",
        alias = "group_name",
        deserialize_with = "present"
    )]
    group: Option<Option<String>>,
    /// Aliases `domainName`, `domain_name`.
    #[serde(
        default,
        alias = "domainName",
        alias = "domain_name",
        deserialize_with = "present"
    )]
    domain: Option<Option<String>>,
    /// Alias `clusterSize`.
    #[serde(default, alias = "clusterSize")]
    #[schemars(with = "Option<i64>")]
    cluster_size: Option<Value>,
    /// Alias `clusterMode`.
    #[serde(default, alias = "clusterMode")]
    cluster_mode: Option<session::ClusterModeParam>,
    #[serde(default)]
    config: Map<String, Value>,
    #[serde(default, deserialize_with = "present")]
    tag: Option<Option<String>>,
    #[serde(default, rename = "enqueueOnly", deserialize_with = "lenient::bool")]
    enqueue_only: bool,
    #[serde(default, rename = "maxWaitSeconds", deserialize_with = "non_negative")]
    max_wait_seconds: u64,
    /// Alias `startsAt`.
    #[serde(default, alias = "startsAt")]
    starts_at: Option<String>,
    #[serde(
        default = "yes",
        rename = "reuseIfExists",
        deserialize_with = "lenient::bool"
    )]
    reuse: bool,
    #[serde(default, rename = "startupCommand")]
    startup_command: Option<String>,
    /// Alias `bootstrapScript`.
    #[serde(default, alias = "bootstrapScript", deserialize_with = "present")]
    bootstrap_script: Option<Option<String>>,
    #[serde(default)]
    dependencies: Option<Vec<String>>,
    /// Aliases `callbackUrl`, `callbackURL`.
    #[serde(default, alias = "callbackUrl", alias = "callbackURL")]
    callback_url: Option<String>,
    #[serde(default, deserialize_with = "present")]
    owner_access_key: Option<Option<String>>,
}

fn yes() -> bool {
    true
}

/// The reference's `drop(..., undefined)` of a request's config: objects that are (or become)
/// empty are left out, at any depth.
fn without_empty_objects(map: Map<String, Value>) -> Map<String, Value> {
    map.into_iter()
        .filter_map(|(key, value)| match value {
            Value::Object(inner) => {
                let inner = without_empty_objects(inner);
                (!inner.is_empty()).then_some((key, Value::Object(inner)))
            }
            value => Some((key, value)),
        })
        .collect()
}

/// A string at `pointer` of `value` that is not empty (Python's truthiness).
fn truthy_str<'a>(value: &'a Value, pointer: &str) -> Option<&'a str> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .filter(|text| !text.is_empty())
}

/// The commands that clone the template's git repository, appended to the bootstrap script.
fn git_clone_script(git: &Map<String, Value>) -> Option<String> {
    let repository = git.get("repository")?.as_str()?;
    let field = |key: &str| {
        git.get(key)
            .and_then(Value::as_str)
            .filter(|text| !text.is_empty())
    };
    let target = field("dest_dir").map_or_else(
        || {
            repository
                .rsplit('/')
                .next()
                .unwrap_or(repository)
                .to_owned()
        },
        str::to_owned,
    );
    let credential = git.get("credential").and_then(Value::as_object);
    let mut script = String::from("git clone ");
    match (credential, repository.split_once("://")) {
        (Some(credential), Some((scheme, rest))) => {
            let part = |key: &str| credential.get(key).and_then(Value::as_str).unwrap_or("");
            script.push_str(&format!(
                "{scheme}://{}:{}@{rest}",
                part("username"),
                part("password")
            ));
        }
        _ => script.push_str(repository),
    }
    if let Some(branch) = field("branch") {
        script.push_str(&format!(" -b {branch}"));
    }
    script.push_str(&format!(" {target}\n"));
    if let Some(commit) = field("commit") {
        script = format!("CWD=$(pwd)\n{script}cd {target}\ngit checkout {commit}\ncd $CWD\n");
    }
    Some(script)
}

/// `create_from_template`'s merge: the template's values as defaults (image, architecture, the
/// template's domain and project, session type, tag, scripts; scaling group, mounts, environment,
/// resources and agents in the config), overridden by every key the request gives, then the git
/// clone appended to the bootstrap script. Like the reference, a request without
/// `startupCommand` drops the template's startup command (the key's default, null, overrides it).
fn merged_params(
    template: &Value,
    domain_name: &str,
    group_name: Option<String>,
    request: FromTemplateParams,
) -> Result<Map<String, Value>, ApiError> {
    let invalid = || ApiError::invalid_params("Error while validating template");
    let spec = template.get("spec").ok_or_else(invalid)?;
    let kernel = spec.get("kernel").ok_or_else(invalid)?;

    let mut params = Map::new();
    if let Some(image) = kernel.get("image") {
        params.insert("image".to_owned(), image.clone());
    }
    if let Some(architecture) = kernel.get("architecture").filter(|arch| !arch.is_null()) {
        params.insert("arch".to_owned(), architecture.clone());
    }
    params.insert("domain".to_owned(), Value::from(domain_name));
    if let Some(group_name) = group_name {
        params.insert("group".to_owned(), Value::String(group_name));
    }
    if let Some(session_type @ ("interactive" | "batch" | "inference")) =
        spec.get("session_type").and_then(Value::as_str)
    {
        params.insert("type".to_owned(), Value::from(session_type));
    }
    if let Some(tag) = truthy_str(template, "/metadata/tag") {
        params.insert("tag".to_owned(), Value::from(tag));
    }
    if let Some(bootstrap) = truthy_str(kernel, "/run/bootstrap") {
        params.insert("bootstrap_script".to_owned(), Value::from(bootstrap));
    }
    if let Some(startup) = truthy_str(kernel, "/run/startup_command") {
        params.insert("startupCommand".to_owned(), Value::from(startup));
    }

    let mut config = Map::new();
    if let Some(scaling_group) = truthy_str(spec, "/scaling_group") {
        config.insert("scaling_group".to_owned(), Value::from(scaling_group));
    }
    if let Some(mounts) = spec
        .get("mounts")
        .and_then(Value::as_object)
        .filter(|mounts| !mounts.is_empty())
    {
        config.insert(
            "mounts".to_owned(),
            mounts.keys().cloned().map(Value::String).collect(),
        );
        let mount_map: Map<String, Value> = mounts
            .iter()
            .filter(|(_, path)| path.as_str().is_some_and(|path| !path.is_empty()))
            .map(|(folder, path)| (folder.clone(), path.clone()))
            .collect();
        config.insert("mount_map".to_owned(), Value::Object(mount_map));
    }
    if let Some(environ) = kernel
        .get("environ")
        .filter(|environ| environ.as_object().is_some_and(|map| !map.is_empty()))
    {
        config.insert("environ".to_owned(), environ.clone());
    }
    if let Some(resources) = spec
        .get("resources")
        .filter(|resources| resources.as_object().is_some_and(|map| !map.is_empty()))
    {
        config.insert("resources".to_owned(), resources.clone());
    }
    // Null is the template's default; a config of API v5 has no such key to hold it.
    if let Some(agents) = spec.get("agent_list").filter(|agents| !agents.is_null()) {
        config.insert("agent_list".to_owned(), agents.clone());
    }
    config.extend(without_empty_objects(request.config));

    let name = request.name.ok_or_else(invalid)?;
    params.insert("name".to_owned(), Value::String(name));
    let overrides = [
        ("image", request.image.map(Value::from)),
        ("arch", request.arch.map(Value::from)),
        (
            "type",
            request.session_type.map(|session_type| json!(session_type)),
        ),
        ("group", request.group.map(Value::from)),
        ("domain", request.domain.map(Value::from)),
        ("tag", request.tag.map(Value::from)),
        (
            "bootstrap_script",
            request.bootstrap_script.map(Value::from),
        ),
        (
            "owner_access_key",
            request.owner_access_key.map(Value::from),
        ),
        ("cluster_size", request.cluster_size),
        (
            "cluster_mode",
            request.cluster_mode.map(|mode| Value::from(mode.value())),
        ),
        ("enqueueOnly", Some(Value::Bool(request.enqueue_only))),
        (
            "maxWaitSeconds",
            Some(Value::from(request.max_wait_seconds)),
        ),
        ("starts_at", Some(Value::from(request.starts_at))),
        ("reuseIfExists", Some(Value::Bool(request.reuse))),
        ("startupCommand", Some(Value::from(request.startup_command))),
        ("dependencies", Some(json!(request.dependencies))),
        ("callback_url", Some(Value::from(request.callback_url))),
    ];
    for (key, value) in overrides {
        if let Some(value) = value {
            params.insert(key.to_owned(), value);
        }
    }
    if !params.contains_key("type") {
        return Err(invalid());
    }
    params.insert("config".to_owned(), Value::Object(config));

    if let Some(script) = kernel
        .get("git")
        .and_then(Value::as_object)
        .and_then(git_clone_script)
    {
        let encoded = params
            .get("bootstrap_script")
            .and_then(Value::as_str)
            .unwrap_or("");
        let decoded = data_encoding::BASE64
            .decode(encoded.as_bytes())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| {
                ApiError::invalid_params("Input validation error")
                    .data(json!({"bootstrap_script": "value is not base64-encoded UTF-8"}))
            })?;
        let bootstrap = format!("{decoded}\n{script}");
        params.insert(
            "bootstrap_script".to_owned(),
            Value::String(data_encoding::BASE64.encode(bootstrap.as_bytes())),
        );
    }
    Ok(params)
}

#[tracing::instrument(name = "session.create_from_template", skip_all, fields(access_key = %caller.access_key()))]
async fn create_from_template(
    State(ctx): State<ApiContext>,
    Extension(version): Extension<ApiVersion>,
    Authenticated(caller): Authenticated,
    Params(request): Params<FromTemplateParams>,
) -> Result<Response, ApiError> {
    if request.image == Some(None) && request.template_id.is_none() {
        return Err(ApiError::invalid_params(
            "Both image and template_id can't be None!",
        ));
    }
    let Some(template_id) = request.template_id else {
        return Err(template_not_found());
    };
    let db = ctx.db();
    let row = queries::visible_active(db, template_id, None, &reader(&caller))
        .await
        .map_err(db_error("reading the session template"))?
        .ok_or_else(template_not_found)?;
    let group_name = match row.group_id {
        Some(group_id) => queries::project_name(db, &row.domain_name, group_id)
            .await
            .map_err(db_error("reading the template's project"))?,
        None => None,
    };
    let merged = merged_params(&row.template, &row.domain_name, group_name, request)?;
    let params: CreateParams = from_value(Value::Object(merged))?;
    session::enqueue_session(&ctx, &version, &caller, &params).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(spec: Value) -> Value {
        json!({
            "api_version": "6",
            "kind": "taskTemplate",
            "metadata": {"name": "python"},
            "spec": spec,
        })
    }

    fn field_of(error: &ApiError) -> String {
        match &error.data {
            Some(Value::Object(data)) => data.keys().next().cloned().unwrap_or_default(),
            _ => String::new(),
        }
    }

    #[test]
    fn a_task_template_is_normalized_with_the_references_defaults() {
        let checked = check_task_template(template(json!({
            "sessionType": "batch",
            "kernel": {"image": "python:3.9", "run": {"startup": "ls"},
                       "git": {"repository": "https://x/y.git", "destinationDir": "src"}},
        })))
        .expect("a valid template");
        assert_eq!(checked["spec"]["session_type"], "batch");
        assert_eq!(checked["spec"]["mounts"], json!({}));
        assert_eq!(checked["spec"]["agent_list"], Value::Null);
        assert_eq!(checked["spec"]["kernel"]["architecture"], "x86_64");
        assert_eq!(checked["spec"]["kernel"]["environ"], json!({}));
        assert_eq!(checked["spec"]["kernel"]["run"]["startup_command"], "ls");
        assert_eq!(checked["spec"]["kernel"]["git"]["dest_dir"], "src");
        assert_eq!(checked["metadata"]["tag"], Value::Null);
    }

    #[test]
    fn a_bad_task_template_names_the_field() {
        let cases = [
            (json!({"kernel": {}}), "template.spec.kernel.image"),
            (
                json!({"kernel": {"image": "x", "gpu": 1}}),
                "template.spec.kernel.gpu",
            ),
            (
                json!({"type": "daemon", "kernel": {"image": "x"}}),
                "template.spec.type",
            ),
            (
                json!({"kernel": {"image": "x", "environ": {"A": 1}}}),
                "template.spec.kernel.environ.A",
            ),
        ];
        for (spec, field) in cases {
            let error = check_task_template(template(spec)).expect_err(field);
            assert_eq!(field_of(&error), field);
        }
        let error = check_task_template(json!({"kind": "clusterTemplate"})).expect_err("kind");
        assert!(field_of(&error).starts_with("template"), "{error:?}");
    }

    #[test]
    fn a_reserved_mount_path_is_refused() {
        let error = check_task_template(template(json!({
            "kernel": {"image": "x"}, "mounts": {"data": "/home/work/.bashrc"},
        })))
        .expect_err("reserved");
        assert_eq!(error.status().as_u16(), 400);
        assert!(
            check_task_template(template(json!({
                "kernel": {"image": "x"}, "mounts": {"data": "/home/work/data", "other": null},
            })))
            .is_ok()
        );
    }

    #[test]
    fn payloads_are_json_lists_or_yaml_documents() {
        let entry = json!({"template": template(json!({"kernel": {"image": "x"}}))});
        let json_payload = serde_json::to_string(&json!([entry, entry])).expect("JSON");
        assert_eq!(payload_entries(&json_payload, true).expect("JSON").len(), 2);
        let yaml = "template:\n  api_version: '6'\n  kind: task_template\n  metadata: {name: a}\n  \
                    spec: {kernel: {image: x}}\n---\nname: b\ntemplate:\n  apiVersion: '6'\n  \
                    kind: taskTemplate\n  metadata: {name: b}\n  spec: {kernel: {image: y}}\n";
        let entries = payload_entries(yaml, true).expect("YAML");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].name, "b");
        assert!(payload_entries("{not: [valid", true).is_err());
        assert!(payload_entries("{\"template\": {}}", true).is_err());
    }

    #[test]
    fn the_request_overrides_the_template() {
        let template = json!({
            "metadata": {"name": "t", "tag": "v1"},
            "spec": {"session_type": "interactive", "scaling_group": "default",
                     "mounts": {"data": "/home/work/in", "logs": ""},
                     "resources": {"cpu": "2", "mem": "4g"}, "agent_list": null,
                     "kernel": {"image": "python:3.9", "architecture": "x86_64",
                                "environ": {"A": "1"}, "run": {"bootstrap": null,
                                "startup_command": "echo"},
                                "git": {"repository": "https://h/r.git", "branch": "main"}}},
        });
        let request: FromTemplateParams = from_value(json!({
            "template_id": Uuid::nil(), "name": "from-tpl", "group": "other",
            "config": {"resources": {"cpu": "1"}, "environ": {}},
        }))
        .expect("a request");
        let merged =
            merged_params(&template, "default", Some("team".to_owned()), request).expect("merged");
        assert_eq!(merged["image"], "python:3.9");
        assert_eq!(merged["group"], "other");
        assert_eq!(merged["domain"], "default");
        assert_eq!(merged["tag"], "v1");
        assert_eq!(merged["type"], "interactive");
        // The request's default (null) wins over the template's startup command.
        assert_eq!(merged["startupCommand"], Value::Null);
        assert_eq!(merged["config"]["resources"], json!({"cpu": "1"}));
        assert_eq!(merged["config"]["environ"], json!({"A": "1"}));
        assert_eq!(merged["config"]["mounts"], json!(["data", "logs"]));
        assert_eq!(
            merged["config"]["mount_map"],
            json!({"data": "/home/work/in"})
        );
        let bootstrap = data_encoding::BASE64
            .decode(
                merged["bootstrap_script"]
                    .as_str()
                    .expect("a script")
                    .as_bytes(),
            )
            .expect("base64");
        assert_eq!(
            String::from_utf8(bootstrap).expect("UTF-8"),
            "\ngit clone https://h/r.git -b main r.git\n"
        );
        from_value::<CreateParams>(Value::Object(merged)).expect("POST /session's parameters");
    }
}
