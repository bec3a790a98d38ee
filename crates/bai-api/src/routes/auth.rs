//! `/auth/*`: signature checks, sign-in with a password, roles and password changes.
//!
//! Password hashes are checked and made on blocking threads: bcrypt at cost 12 takes a quarter of a
//! second of CPU, which would stall every request sharing the runtime worker.

use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use bai_db_models::entities::enums::UserStatus;
use bai_db_models::entities::users;
use bai_db_models::{password, queries};
use chrono::{DateTime, FixedOffset, TimeDelta, Timelike, Utc};
use http::{Method, StatusCode};
use sea_orm::prelude::Uuid;
use sea_orm::{ActiveEnum, TransactionTrait};
use serde::{Deserialize, Serialize};

use super::{Access, Authenticated, Route};
use crate::context::ApiContext;
use crate::error::{ApiError, ErrorKind};
use crate::json::PyJson;
use crate::params::{Params, non_blank};

pub(super) fn routes() -> Vec<Route> {
    let mut routes = Vec::new();
    for path in ["/auth", "/auth/test"] {
        for method in [Method::GET, Method::POST] {
            routes.push(
                Route::new(method, path, "auth.test", test)
                    .access(Access::User)
                    .params::<EchoParams>()
                    .summary("Echoes `echo` back to a correctly signed request."),
            );
        }
    }
    routes.extend([
        Route::new(Method::POST, "/auth/authorize", "auth.authorize", authorize)
            .params::<AuthorizeParams>()
            .summary("Trades a user's email and password for the user's API keypair."),
        Route::new(Method::GET, "/auth/role", "auth.get_role", get_role)
            .access(Access::User)
            .params::<RoleParams>()
            .summary("The caller's global, domain and (given a project) project role."),
        Route::new(
            Method::POST,
            "/auth/update-password",
            "auth.update_password",
            update_password,
        )
        .access(Access::User)
        .params::<PasswordUpdate>()
        .summary("Changes the caller's password, given the current one."),
    ]);
    routes
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct EchoParams {
    echo: String,
}

#[derive(Debug, Serialize)]
struct Echoed {
    authorized: &'static str,
    echo: String,
}

async fn test(_caller: Authenticated, Params(params): Params<EchoParams>) -> impl IntoResponse {
    PyJson(Echoed {
        authorized: "yes",
        echo: params.echo,
    })
}

/// A user's credentials. Other keys are allowed and ignored (the web server sends `otp`, say).
// No `Debug`: it holds a password.
#[derive(Deserialize, schemars::JsonSchema)]
struct AuthorizeParams {
    #[serde(rename = "type")]
    kind: AuthorizationType,
    #[serde(deserialize_with = "non_blank")]
    domain: String,
    /// The user's email.
    #[serde(deserialize_with = "non_blank")]
    username: String,
    #[serde(deserialize_with = "non_blank")]
    password: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
enum AuthorizationType {
    Keypair,
    // Accepted by the schema, refused by the handler (as in the reference).
    Jwt,
}

#[derive(Serialize)]
struct Authorized {
    data: KeypairGrant,
}

// No `Debug`: it holds a secret key.
#[derive(Serialize)]
struct KeypairGrant {
    access_key: String,
    secret_key: Option<String>,
    role: Option<String>,
    status: String,
}

/// The reference's answer to every sign-in whose email, domain or password is wrong, and to
/// inactive or deleted users: nothing tells them apart.
const CREDENTIAL_MISMATCH: &str = "User credential mismatch.";

async fn authorize(
    State(ctx): State<ApiContext>,
    Params(params): Params<AuthorizeParams>,
) -> Result<PyJson<Authorized>, ApiError> {
    if params.kind != AuthorizationType::Keypair {
        return Err(ApiError::invalid_params("Unsupported authorization type"));
    }
    let db = ctx.db();
    let user = queries::auth::user_in_domain(db, &params.domain, &params.username)
        .await
        .map_err(|error| ApiError::internal("looking up the user signing in", &error))?
        .ok_or_else(|| ApiError::auth_failed(CREDENTIAL_MISMATCH))?;
    if !password_matches(params.password, user.password.clone()).await? {
        return Err(ApiError::auth_failed(CREDENTIAL_MISMATCH));
    }
    match user.status {
        UserStatus::Active => {}
        UserStatus::BeforeVerification => {
            return Err(ApiError::auth_failed(
                "This account needs email verification.",
            ));
        }
        UserStatus::Inactive | UserStatus::Deleted => {
            return Err(ApiError::auth_failed(CREDENTIAL_MISMATCH));
        }
    }
    let keypair = queries::auth::sign_in_keypair(db, &user)
        .await
        .map_err(|error| ApiError::internal("looking up the keypair of a sign-in", &error))?
        .ok_or_else(|| ApiError::auth_failed("No API keypairs found."))?;
    // After the keypair, as in the reference: a user without keypairs hears about that first.
    check_password_age(&ctx, &user).await?;
    Ok(PyJson(Authorized {
        data: KeypairGrant {
            access_key: keypair.access_key,
            secret_key: keypair.secret_key,
            role: user.role.map(|role| role.to_value()),
            status: user.status.to_value(),
        },
    }))
}

/// Whether `plaintext` is the password of a user whose stored hash is `stored_hash` (a user
/// without a password matches nothing), checked on a blocking thread.
async fn password_matches(
    plaintext: String,
    stored_hash: Option<String>,
) -> Result<bool, ApiError> {
    let Some(stored_hash) = stored_hash else {
        return Ok(false);
    };
    tokio::task::spawn_blocking(move || password::verify(&plaintext, &stored_hash))
        .await
        .map_err(|error| ApiError::internal("checking a password", &error))
}

/// etcd `config/auth/max_password_age`: a password older than that no longer signs in.
async fn check_password_age(ctx: &ApiContext, user: &users::Model) -> Result<(), ApiError> {
    let Some(max_age) = ctx.shared_config().auth.max_password_age else {
        return Ok(());
    };
    let now = queries::auth::database_now(ctx.db())
        .await
        .map_err(|error| ApiError::internal("reading the database's clock", &error))?;
    match password_expiry(user.password_changed_at, max_age, now) {
        PasswordAge::Valid => Ok(()),
        PasswordAge::ExpiredOn(expired_on) => Err(ApiError::with_msg(
            ErrorKind::PasswordExpired,
            format!("Password expired on {}.", python_datetime(expired_on)),
        )),
        PasswordAge::NeverChanged => Err(ApiError::with_msg(
            ErrorKind::PasswordExpired,
            "Password expired.",
        )),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PasswordAge {
    Valid,
    ExpiredOn(DateTime<Utc>),
    /// No `password_changed_at`: its age is unknown, so it counts as expired. (The reference
    /// fails with a 500 adding the age to `None`.)
    NeverChanged,
}

/// Whether a password changed at `changed_at` has outlived `max_age` at `now`. The reference
/// expires it when `changed_at + max_age < now`; an age too large to add never expires.
fn password_expiry(
    changed_at: Option<DateTime<FixedOffset>>,
    max_age: Duration,
    now: DateTime<FixedOffset>,
) -> PasswordAge {
    let Some(changed_at) = changed_at else {
        return PasswordAge::NeverChanged;
    };
    let expires = TimeDelta::from_std(max_age)
        .ok()
        .and_then(|age| changed_at.to_utc().checked_add_signed(age));
    match expires {
        Some(expires) if expires < now.to_utc() => PasswordAge::ExpiredOn(expires),
        _ => PasswordAge::Valid,
    }
}

/// Python's `str()` of a UTC datetime, as asyncpg returns `timestamptz` values:
/// `2024-05-01 12:34:56.789012+00:00`, the fraction only when there is one.
fn python_datetime(at: DateTime<Utc>) -> String {
    let micros = at.nanosecond() / 1_000 % 1_000_000;
    let seconds = at.format("%Y-%m-%d %H:%M:%S");
    if micros == 0 {
        format!("{seconds}+00:00")
    } else {
        format!("{seconds}.{micros:06}+00:00")
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct RoleParams {
    /// A project (id) to tell the caller's role in.
    #[serde(default)]
    #[schemars(with = "Option<String>", extend("format" = "uuid"))]
    group: Option<Uuid>,
}

#[derive(Debug, Serialize)]
struct Roles {
    global_role: &'static str,
    domain_role: &'static str,
    group_role: Option<&'static str>,
}

async fn get_role(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Params(params): Params<RoleParams>,
) -> Result<PyJson<Roles>, ApiError> {
    let mut group_role = None;
    if let Some(group) = params.group {
        let member = queries::auth::is_project_member(ctx.db(), group, caller.user.uuid)
            .await
            .map_err(|error| ApiError::internal("checking a project membership", &error))?;
        if !member {
            return Err(ApiError::with_msg(
                ErrorKind::ObjectNotFound("project (user group)"),
                "No such project or you are not the member of it.",
            ));
        }
        // Per-project roles do not exist (yet) in the reference either: members are users.
        group_role = Some("user");
    }
    Ok(PyJson(Roles {
        global_role: if caller.is_superadmin() {
            "superadmin"
        } else {
            "user"
        },
        // The keypair's admin flag, as everywhere the reference says "admin".
        domain_role: if caller.is_admin() { "admin" } else { "user" },
        group_role,
    }))
}

// No `Debug`: it holds passwords.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct PasswordUpdate {
    #[serde(deserialize_with = "non_blank")]
    old_password: String,
    #[serde(deserialize_with = "non_blank")]
    new_password: String,
    /// `new_password` again.
    #[serde(deserialize_with = "non_blank")]
    new_password2: String,
}

#[derive(Debug, Serialize)]
struct PasswordMismatch {
    error_msg: &'static str,
}

#[derive(Debug, Serialize)]
struct Empty {}

async fn update_password(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Params(params): Params<PasswordUpdate>,
) -> Result<Response, ApiError> {
    let internal = |error: &(dyn std::error::Error + 'static)| {
        ApiError::internal("changing a password", error)
    };
    let txn = ctx.db().begin().await.map_err(|error| internal(&error))?;
    let user = queries::auth::lock_user(&txn, caller.user.uuid)
        .await
        .map_err(|error| internal(&error))?;
    let stored_hash = user.and_then(|user| user.password);
    if !password_matches(params.old_password, stored_hash).await? {
        return Err(ApiError::auth_failed("Old password mismatch"));
    }
    if params.new_password != params.new_password2 {
        // A plain JSON body, not a problem document: the reference answers this one by hand.
        return Ok((
            StatusCode::BAD_REQUEST,
            PyJson(PasswordMismatch {
                error_msg: "new password mismatch",
            }),
        )
            .into_response());
    }
    let new_password = params.new_password;
    let new_hash = tokio::task::spawn_blocking(move || password::hash(&new_password))
        .await
        .map_err(|error| internal(&error))?
        .map_err(|error| internal(&error))?;
    queries::auth::set_password_hash(&txn, caller.user.uuid, &new_hash)
        .await
        .map_err(|error| internal(&error))?;
    txn.commit().await.map_err(|error| internal(&error))?;
    // The signer cache keeps users' rows.
    ctx.caches().changed(ctx.db(), "a user's password").await;
    Ok(PyJson(Empty {}).into_response())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono::{DateTime, TimeDelta, Utc};

    use super::{PasswordAge, password_expiry, python_datetime};

    fn at(text: &str) -> DateTime<chrono::FixedOffset> {
        DateTime::parse_from_rfc3339(text).expect("RFC 3339")
    }

    #[test]
    fn a_password_expires_strictly_after_its_age() {
        let day = Duration::from_secs(86_400);
        let changed = at("2024-05-01T12:00:00+09:00");
        assert_eq!(
            password_expiry(Some(changed), day, at("2024-05-02T03:00:00Z")),
            PasswordAge::Valid,
            "exactly one day old is still valid"
        );
        assert_eq!(
            password_expiry(Some(changed), day, at("2024-05-02T03:00:00.000001Z")),
            PasswordAge::ExpiredOn(at("2024-05-02T03:00:00Z").to_utc())
        );
        assert_eq!(
            password_expiry(None, day, at("2024-05-02T03:00:00Z")),
            PasswordAge::NeverChanged
        );
        assert_eq!(
            password_expiry(Some(changed), Duration::MAX, Utc::now().fixed_offset()),
            PasswordAge::Valid,
            "an age beyond the calendar never expires"
        );
    }

    #[test]
    fn expiry_dates_are_spelled_like_python() {
        let base = at("2024-05-01T12:34:56Z").to_utc();
        assert_eq!(python_datetime(base), "2024-05-01 12:34:56+00:00");
        assert_eq!(
            python_datetime(base + TimeDelta::microseconds(789_012)),
            "2024-05-01 12:34:56.789012+00:00"
        );
        assert_eq!(
            python_datetime(base + TimeDelta::microseconds(10)),
            "2024-05-01 12:34:56.000010+00:00"
        );
    }
}
