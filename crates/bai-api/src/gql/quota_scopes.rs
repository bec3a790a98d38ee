//! Quota scopes of storage volumes (the WebUI's Data page and storage settings):
//! `quota_scope(storage_host_name, quota_scope_id)` with its usage and limit as the volume's
//! storage proxy reports them (`GET quota-scope`), and `set_quota_scope` / `unset_quota_scope`
//! for admins, which change the limit on the proxy.
//!
//! A quota scope id is `user:<uuid>` or `project:<uuid>`; who may reach one is the reference's
//! rule (bai_db_models::queries::quota_scopes). When the proxy answers a non-2xx status to
//! `GET quota-scope` (a volume without quota support, a scope it has not made yet), the details
//! fall back to the owner's resource policy `max_quota_scope_size`, with no usage, as in the
//! reference. A proxy that cannot be reached is a GraphQL error worded as the reference's
//! uncaught `aiohttp` error is.

use std::error::Error as _;

use async_graphql::{
    ComplexObject, Context, ID, InputObject, MaybeUndefined, Object, SimpleObject,
};
use bai_db_models::queries::quota_scopes::{self, Asker};
use bai_etcd_store::shared_config::StorageProxy;
use bai_scheduler::enqueue::py_repr_str;
use bai_storage_proxy::{StorageError, StorageProxies, split_host};
use indexmap::IndexMap;
use uuid::Uuid;

use super::common::{Allowed, BigInt, error, gql, internal, mutation_guard};
use crate::error::{ApiError, ErrorKind};

/// Whose quota a scope is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ScopeKind {
    User,
    Project,
}

/// A parsed quota scope id (the reference's `QuotaScopeID`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct QuotaScopeId {
    kind: ScopeKind,
    id: Uuid,
}

impl QuotaScopeId {
    /// `<type>:<uuid>` as the reference's `QuotaScopeID.parse` reads it: the type in any case,
    /// the UUID in any of the spellings Python's `uuid.UUID` accepts. The error is the message of
    /// the reference's `ValueError`.
    fn parse(raw: &str) -> Result<QuotaScopeId, String> {
        let (kind, rest) = raw.split_once(':').unwrap_or((raw, ""));
        let kind = match kind.to_lowercase().as_str() {
            "user" => ScopeKind::User,
            "project" => ScopeKind::Project,
            _ => return Err(format!("Invalid quota scope type: {}", py_repr_str(kind))),
        };
        Ok(QuotaScopeId {
            kind,
            id: python_uuid(rest)?,
        })
    }
}

impl std::fmt::Display for QuotaScopeId {
    /// The reference's `str(QuotaScopeID)`: `user:<hyphenated uuid>`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            ScopeKind::User => "user",
            ScopeKind::Project => "project",
        };
        write!(f, "{kind}:{}", self.id.hyphenated())
    }
}

/// `uuid.UUID(text)`: `urn:` and `uuid:` dropped anywhere, braces stripped from the ends, dashes
/// dropped anywhere, then exactly 32 hex digits.
fn python_uuid(text: &str) -> Result<Uuid, String> {
    let text = text.replace("urn:", "").replace("uuid:", "");
    let digits = text.trim_matches(|c| c == '{' || c == '}').replace('-', "");
    if digits.chars().count() != 32 {
        return Err("badly formed hexadecimal UUID string".to_owned());
    }
    if !digits.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "invalid literal for int() with base 16: {}",
            py_repr_str(&digits)
        ));
    }
    Uuid::parse_str(&digits).map_err(|error| error.to_string())
}

#[derive(Debug, Default)]
pub struct QuotaScopeQuery;

#[derive(Debug, Default)]
pub struct QuotaScopeMutation;

/// A quota scope on a volume (`proxy:volume`).
#[derive(Clone, Debug, SimpleObject)]
#[graphql(complex, rename_fields = "snake_case")]
pub struct QuotaScope {
    /// `QuotaScope:<storage_host_name>/<quota_scope_id>` (not base64: the reference's `Item` id).
    pub id: ID,
    /// As the caller spelled it.
    pub quota_scope_id: String,
    pub storage_host_name: String,
}

/// A quota scope's usage and limit; null where neither the proxy nor the policy tells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct QuotaDetails {
    pub usage_bytes: Option<BigInt>,
    /// Never counted (the reference's TODO): always null.
    pub usage_count: Option<BigInt>,
    pub hard_limit_bytes: Option<BigInt>,
}

impl QuotaScope {
    fn new(quota_scope_id: String, storage_host_name: String) -> QuotaScope {
        QuotaScope {
            id: ID(format!("QuotaScope:{storage_host_name}/{quota_scope_id}")),
            quota_scope_id,
            storage_host_name,
        }
    }
}

#[ComplexObject(rename_fields = "snake_case")]
impl QuotaScope {
    /// `GET quota-scope` on the volume's proxy (the id sent as the caller spelled it); a negative
    /// usage or a zero limit reads null. On a non-2xx answer: no usage, and the limit of the
    /// owner's resource policy (null when it is negative, i.e. unlimited).
    async fn details(&self, ctx: &Context<'_>) -> async_graphql::Result<QuotaDetails> {
        let configured = proxies_config(ctx);
        let proxies = proxy_clients(&configured)?;
        let (proxy_name, volume) = split_host(&self.storage_host_name);
        match proxies
            .quota_scope(proxy_name, volume, &self.quota_scope_id)
            .await
        {
            Ok(usage) => Ok(QuotaDetails {
                usage_bytes: usage.used_bytes.filter(|bytes| *bytes >= 0).map(BigInt),
                usage_count: None,
                hard_limit_bytes: usage.limit_bytes.filter(|bytes| *bytes != 0).map(BigInt),
            }),
            Err(StorageError::Rejected { .. } | StorageError::RejectedPlain { .. }) => {
                policy_details(ctx, &self.quota_scope_id).await
            }
            Err(failure) => Err(storage_failure(&failure, &configured, "quota-scope")),
        }
    }
}

/// The details the owner's resource policy gives when the proxy cannot tell.
async fn policy_details(
    ctx: &Context<'_>,
    quota_scope_id: &str,
) -> async_graphql::Result<QuotaDetails> {
    let qsid = QuotaScopeId::parse(quota_scope_id).map_err(async_graphql::Error::new)?;
    ensure_accessible(ctx, qsid).await?;
    let db = gql(ctx).api.db();
    let (size, owner) = match qsid.kind {
        ScopeKind::User => (
            quota_scopes::user_max_quota_scope_size(db, qsid.id).await,
            "user",
        ),
        ScopeKind::Project => (
            quota_scopes::project_max_quota_scope_size(db, qsid.id).await,
            "project",
        ),
    };
    let size =
        size.map_err(|source| internal("reading a quota scope's resource policy", &source))?;
    // The reference fails here too (on a missing row), when the id is a project's but the scope
    // says user, or the other way round.
    let size = size.ok_or_else(|| {
        error(ApiError::invalid_params(format!(
            "quota scope {qsid}: no such {owner}"
        )))
    })?;
    Ok(QuotaDetails {
        usage_bytes: None,
        usage_count: None,
        hard_limit_bytes: (size >= 0).then_some(BigInt(size)),
    })
}

/// etcd `volumes/proxies` as in effect now (none when `volumes/` is empty).
fn proxies_config(ctx: &Context<'_>) -> IndexMap<String, StorageProxy> {
    gql(ctx)
        .api
        .shared_config()
        .volumes
        .as_ref()
        .map(|volumes| volumes.proxies.clone())
        .unwrap_or_default()
}

/// Clients for the proxies, made for this request (quota scopes are read rarely).
fn proxy_clients(
    configured: &IndexMap<String, StorageProxy>,
) -> async_graphql::Result<StorageProxies> {
    StorageProxies::new(configured)
        .map_err(|source| internal("making the storage proxy clients", &source))
}

/// The reference's `ensure_quota_scope_accessible_by_user`: "Missing or invalid API parameters."
/// when the caller may not reach the scope.
async fn ensure_accessible(ctx: &Context<'_>, qsid: QuotaScopeId) -> async_graphql::Result<()> {
    let context = gql(ctx);
    let user = &context.caller.user;
    let asker = Asker {
        uuid: user.uuid,
        role: context.caller.role(),
        domain: user.domain_name.as_deref(),
    };
    let accessible = quota_scopes::quota_scope_accessible(context.api.db(), qsid.id, asker)
        .await
        .map_err(|source| internal("reading a quota scope's owner", &source))?;
    if accessible {
        Ok(())
    } else {
        Err(error(ApiError::new(ErrorKind::InvalidApiParameters)))
    }
}

/// A storage proxy call's failure as the reference's GraphQL error reads (`str()` of the
/// uncaught `aiohttp` error of the call to `path`): a refused connection is
/// `Cannot connect to host H:P ssl:default [...]`, a non-2xx answer
/// `500, message='Internal Server Error', url=URL('...')`. Other failures keep our wording.
fn storage_failure(
    failure: &StorageError,
    configured: &IndexMap<String, StorageProxy>,
    path: &str,
) -> async_graphql::Error {
    match failure {
        StorageError::Unreachable { source, .. } if source.is_connect() => {
            let Some(url) = source.url() else {
                return async_graphql::Error::new(failure.to_string());
            };
            let host = url.host_str().unwrap_or_default();
            let port = url.port_or_known_default().unwrap_or_default();
            let mut cause: Option<&(dyn std::error::Error + 'static)> = source.source();
            let mut io_error = None;
            while let Some(error) = cause {
                if let Some(found) = error.downcast_ref::<std::io::Error>() {
                    io_error = Some(found);
                }
                cause = error.source();
            }
            let reason = match io_error {
                // asyncio's wording, which names the address it dialled.
                Some(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                    format!("Connect call failed ({}, {port})", py_repr_str(host))
                }
                Some(io) => io.to_string(),
                None => source.to_string(),
            };
            async_graphql::Error::new(format!(
                "Cannot connect to host {host}:{port} ssl:default [{reason}]"
            ))
        }
        StorageError::Rejected { proxy, status, .. }
        | StorageError::RejectedPlain { proxy, status, .. } => {
            let reason = http::StatusCode::from_u16(*status)
                .ok()
                .and_then(|status| status.canonical_reason())
                .unwrap_or_default();
            let base = configured
                .get(proxy)
                .map(|proxy| proxy.manager_api.trim_end_matches('/'))
                .unwrap_or_default();
            async_graphql::Error::new(format!(
                "{status}, message={}, url=URL({})",
                py_repr_str(reason),
                py_repr_str(&format!("{base}/{path}"))
            ))
        }
        other => async_graphql::Error::new(other.to_string()),
    }
}

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl QuotaScopeQuery {
    /// The quota scope `quota_scope_id` on `storage_host_name` (`proxy:volume`), which a proxy
    /// must serve; every proxy is asked for its volumes first, as in the reference.
    async fn quota_scope(
        &self,
        ctx: &Context<'_>,
        storage_host_name: String,
        quota_scope_id: String,
    ) -> async_graphql::Result<Option<QuotaScope>> {
        if quota_scope_id.is_empty() || storage_host_name.is_empty() {
            return Err(async_graphql::Error::new(
                "Either quota_scope_id and storage_host_name has to be defined",
            ));
        }
        let qsid = QuotaScopeId::parse(&quota_scope_id).map_err(async_graphql::Error::new)?;
        let configured = proxies_config(ctx);
        let volumes = proxy_clients(&configured)?
            .all_volumes()
            .await
            .map_err(|failure| storage_failure(&failure, &configured, "volumes"))?;
        let served = volumes
            .iter()
            .any(|(proxy, volume)| format!("{proxy}:{}", volume.name) == storage_host_name);
        if !served {
            return Err(async_graphql::Error::new(format!(
                "storage volume {storage_host_name} does not exist"
            )));
        }
        ensure_accessible(ctx, qsid).await?;
        Ok(Some(QuotaScope::new(quota_scope_id, storage_host_name)))
    }
}

/// `set_quota_scope`'s changes.
#[derive(Debug, InputObject)]
#[graphql(rename_fields = "snake_case")]
pub struct QuotaScopeInput {
    /// Absent: nothing changes; null: the proxy's limit is cleared.
    pub hard_limit_bytes: MaybeUndefined<BigInt>,
}

/// `set_quota_scope`'s payload: the scope (no `ok` or `msg`).
#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct SetQuotaScope {
    pub quota_scope: Option<QuotaScope>,
}

/// `unset_quota_scope`'s payload: the scope (no `ok` or `msg`).
#[derive(Debug, SimpleObject)]
#[graphql(rename_fields = "snake_case")]
pub struct UnsetQuotaScope {
    pub quota_scope: Option<QuotaScope>,
}

/// Refuses a caller who is neither admin nor superadmin. The reference's middleware answers them
/// with a payload this type cannot hold, which fails as a GraphQL error; ours says why.
async fn admins_only(ctx: &Context<'_>, field: &str) -> async_graphql::Result<()> {
    match mutation_guard(ctx, Allowed::AdminAndSuperAdmin, field).await? {
        Some(refusal) => Err(async_graphql::Error::new(refusal)),
        None => Ok(()),
    }
}

#[Object(rename_fields = "snake_case", rename_args = "snake_case")]
impl QuotaScopeMutation {
    /// `PATCH quota-scope` on the host's proxy with the new limit (the id sent in its canonical
    /// spelling). The host is not checked against the proxies' volumes, as in the reference.
    async fn set_quota_scope(
        &self,
        ctx: &Context<'_>,
        quota_scope_id: String,
        storage_host_name: String,
        props: QuotaScopeInput,
    ) -> async_graphql::Result<Option<SetQuotaScope>> {
        admins_only(ctx, "set_quota_scope").await?;
        let qsid = QuotaScopeId::parse(&quota_scope_id).map_err(async_graphql::Error::new)?;
        ensure_accessible(ctx, qsid).await?;
        let limit_bytes = match props.hard_limit_bytes {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(BigInt(bytes)) => Some(Some(bytes)),
        };
        if let Some(limit_bytes) = limit_bytes {
            let configured = proxies_config(ctx);
            let (proxy_name, volume) = split_host(&storage_host_name);
            proxy_clients(&configured)?
                .set_quota_scope(proxy_name, volume, &qsid.to_string(), limit_bytes)
                .await
                .map_err(|failure| storage_failure(&failure, &configured, "quota-scope"))?;
        }
        Ok(Some(SetQuotaScope {
            quota_scope: Some(QuotaScope::new(quota_scope_id, storage_host_name)),
        }))
    }

    /// `DELETE quota-scope/quota` on the host's proxy: the scope's limit is removed.
    async fn unset_quota_scope(
        &self,
        ctx: &Context<'_>,
        quota_scope_id: String,
        storage_host_name: String,
    ) -> async_graphql::Result<Option<UnsetQuotaScope>> {
        admins_only(ctx, "unset_quota_scope").await?;
        let qsid = QuotaScopeId::parse(&quota_scope_id).map_err(async_graphql::Error::new)?;
        ensure_accessible(ctx, qsid).await?;
        let configured = proxies_config(ctx);
        let (proxy_name, volume) = split_host(&storage_host_name);
        proxy_clients(&configured)?
            .unset_quota(proxy_name, volume, &qsid.to_string())
            .await
            .map_err(|failure| storage_failure(&failure, &configured, "quota-scope/quota"))?;
        Ok(Some(UnsetQuotaScope {
            quota_scope: Some(QuotaScope::new(quota_scope_id, storage_host_name)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::{QuotaScopeId, ScopeKind};

    const ID: &str = "dfa9da54-4b28-432f-be29-c0d680c7a412";

    #[test]
    fn ids_parse_as_python_reads_them_and_print_hyphenated() {
        let id = Uuid::parse_str(ID).expect("uuid");
        for raw in [
            format!("user:{ID}"),
            format!("USER:{}", ID.replace('-', "")),
            format!("User:{{{ID}}}"),
            format!("user:urn:uuid:{ID}"),
        ] {
            let parsed = QuotaScopeId::parse(&raw).expect(&raw);
            assert_eq!(
                parsed,
                QuotaScopeId {
                    kind: ScopeKind::User,
                    id
                }
            );
            assert_eq!(parsed.to_string(), format!("user:{ID}"));
        }
        let project = QuotaScopeId::parse(&format!("project:{ID}")).expect("project");
        assert_eq!(project.kind, ScopeKind::Project);
        assert_eq!(
            QuotaScopeId::parse(&format!("group:{ID}")),
            Err("Invalid quota scope type: 'group'".to_owned())
        );
        assert_eq!(
            QuotaScopeId::parse(ID),
            Err(format!("Invalid quota scope type: '{ID}'"))
        );
        assert_eq!(
            QuotaScopeId::parse("user:1234"),
            Err("badly formed hexadecimal UUID string".to_owned())
        );
        assert_eq!(
            QuotaScopeId::parse("user:zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz"),
            Err(
                "invalid literal for int() with base 16: 'zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz'"
                    .to_owned()
            )
        );
    }
}
