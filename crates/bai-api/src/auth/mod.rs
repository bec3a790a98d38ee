//! Request authentication (api-auth-client.md §3.2): who signed a request, checked against the
//! keypair in PostgreSQL. Only a user's main access key authenticates. Signers are read from the
//! process's cache (`crate::cache`): no database round trip in the common case.

pub mod signature;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::ConnectInfo;
use bai_db_models::entities::enums::{UserRole, UserStatus};
use bai_db_models::entities::{keypair_resource_policies, keypairs, user_resource_policies, users};
use bai_db_models::queries;
use chrono::Utc;
use futures_util::FutureExt;
use http::request::Parts;
use sea_orm::DatabaseConnection;
use subtle::ConstantTimeEq;

use crate::context::ApiContext;
use crate::error::ApiError;
use crate::version::version_header;
use signature::{AuthorizationHeader, SignatureHash, SignedParts, parse_date, within_clock_skew};

/// The authenticated sender of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub keypair: keypairs::Model,
    pub keypair_policy: keypair_resource_policies::Model,
    pub user: users::Model,
    pub user_policy: user_resource_policies::Model,
}

impl Caller {
    pub fn access_key(&self) -> &str {
        &self.keypair.access_key
    }

    /// `admin_required` checks the keypair's flag, not the user's role (as the reference does).
    pub fn is_admin(&self) -> bool {
        self.keypair.is_admin == Some(true)
    }

    pub fn is_superadmin(&self) -> bool {
        self.user.role == Some(UserRole::Superadmin)
    }

    pub fn role(&self) -> UserRole {
        self.user.role.unwrap_or(UserRole::User)
    }
}

/// A keypair as the signer cache keeps it: with the caller it makes when it is its user's main
/// key, or on its own (a valid signature with it is an anonymous request).
#[derive(Debug)]
pub enum Signer {
    Main(Arc<Caller>),
    Other(Box<keypairs::Model>),
}

impl Signer {
    fn keypair(&self) -> &keypairs::Model {
        match self {
            Signer::Main(caller) => &caller.keypair,
            Signer::Other(keypair) => keypair,
        }
    }

    /// Reads the keypair `access_key` with its policy, and the user whose main key it is.
    async fn load(db: &DatabaseConnection, access_key: &str) -> Result<Option<Signer>, ApiError> {
        let (keypair, user) = tokio::try_join!(
            async {
                queries::keypairs::by_access_key(db, access_key)
                    .await
                    .map_err(|error| ApiError::internal("loading the signing keypair", &error))
            },
            async {
                queries::users::by_main_access_key(db, access_key)
                    .await
                    .map_err(|error| {
                        ApiError::internal("loading the user of the signing keypair", &error)
                    })
            },
        )?;
        let Some(keypair) = keypair else {
            return Ok(None);
        };
        Ok(Some(match user {
            Some(user) => Signer::Main(Arc::new(Caller {
                keypair: keypair.keypair,
                keypair_policy: keypair.resource_policy,
                user: user.user,
                user_policy: user.resource_policy,
            })),
            None => Signer::Other(Box::new(keypair.keypair)),
        }))
    }
}

/// Authenticates a request to a route that requires it. `Ok(None)` is an anonymous request (no
/// `Authorization` header, or a valid key that is not its user's main key): the route then refuses
/// it with 401 "Unauthorized access".
pub(crate) async fn authenticate(
    ctx: &ApiContext,
    parts: &Parts,
) -> Result<Option<Arc<Caller>>, ApiError> {
    let headers = &parts.headers;
    let sync_error = || ApiError::invalid_auth("Date/time sync error");
    let raw_date = ["date", "x-backendai-date", "x-sorna-date"]
        .iter()
        .find_map(|name| headers.get(*name))
        .ok_or_else(sync_error)?
        .to_str()
        .map_err(|_| sync_error())?;
    let date = parse_date(raw_date).ok_or_else(sync_error)?;
    if !within_clock_skew(date, Utc::now()) {
        return Err(sync_error());
    }

    let Some(authorization) = headers.get(http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let authorization = AuthorizationHeader::parse(
        authorization
            .to_str()
            .map_err(|_| ApiError::invalid_auth("Malformed authorization header"))?,
    )?;

    let signer = ctx
        .caches()
        .signers
        .get_or_try_load(
            &authorization.access_key,
            Signer::load(ctx.db(), &authorization.access_key)
                .map(|loaded| loaded.map(|signer| signer.map(Arc::new))),
        )
        .await?
        .filter(|signer| signer.keypair().is_active == Some(true))
        .ok_or_else(|| ApiError::auth_failed("Access key not found"))?;

    let hash = SignatureHash::from_sign_method(&authorization.sign_method)?;
    let version = version_header(headers)
        .ok_or_else(|| ApiError::invalid_auth("API version missing in request headers"))?;
    let header_text =
        |name: http::header::HeaderName| headers.get(&name).and_then(|value| value.to_str().ok());
    let host = header_text(http::header::HOST)
        .or_else(|| parts.uri.authority().map(|authority| authority.as_str()))
        .unwrap_or("");
    let signed = SignedParts {
        method: parts.method.as_str(),
        raw_path: parts
            .uri
            .path_and_query()
            .map_or("/", |path_and_query| path_and_query.as_str()),
        raw_date,
        date,
        host,
        content_type: header_text(http::header::CONTENT_TYPE),
        version_header_name: version.signed_name,
        version: version.value.to_str().unwrap_or(""),
    };
    let secret_key = signer.keypair().secret_key.as_deref().unwrap_or("");
    let expected = signed.signature(secret_key, hash);
    if !bool::from(
        expected
            .as_bytes()
            .ct_eq(authorization.signature.as_bytes()),
    ) {
        return Err(ApiError::auth_failed("Signature mismatch"));
    }

    ctx.caches().call_stats().record(&authorization.access_key);

    let Signer::Main(caller) = &*signer else {
        return Ok(None);
    };
    // The reference lets a deactivated or deleted user's still-active keypair sign requests, so
    // `admin user update --status inactive` would not lock anyone out.
    if caller.user.status != UserStatus::Active {
        return Err(ApiError::auth_failed("User is not active"));
    }
    if let Some(allowed) = caller
        .user
        .allowed_client_ip
        .as_deref()
        .filter(|list| !list.is_empty())
    {
        let address = client_address(parts);
        let ip: IpAddr = address.parse().map_err(|_| {
            ApiError::invalid_auth(format!("{address} is invalid IP address value"))
        })?;
        if !allowed.iter().any(|network| network.contains(ip)) {
            return Err(ApiError::auth_failed(format!(
                "'{address}' is not allowed IP address"
            )));
        }
    }
    Ok(Some(Arc::clone(caller)))
}

/// The client address for `allowed_client_ip`: the whole `X-Forwarded-For` value if present (as the
/// reference trusts it), else the peer address.
fn client_address(parts: &Parts) -> String {
    if let Some(forwarded) = parts
        .headers
        .get("x-forwarded-for")
        .and_then(|value| value.to_str().ok())
    {
        return forwarded.trim().to_owned();
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip().to_string())
        .unwrap_or_default()
}
