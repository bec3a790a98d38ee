//! What every part of the schema shares: errors as the reference words them, privilege checks, the
//! mutation guard (frozen manager, allowed roles), list pages, and the reference's scalars.

use async_graphql::{Context, InputValueError, InputValueResult, Scalar, ScalarType, Value};
use bai_db_models::entities::enums::UserRole;

use super::GqlContext;
use crate::context::ManagerStatus;
use crate::error::{ApiError, ErrorKind};

/// The resolver context's caller and API context.
pub fn gql<'a>(ctx: &Context<'a>) -> &'a GqlContext {
    ctx.data_unchecked::<GqlContext>()
}

/// A backend error as a GraphQL error whose message is the reference's `str(error)`:
/// `"<title> (<msg>)"`, e.g. "Forbidden operation. (superadmin privilege required)".
pub fn error(error: ApiError) -> async_graphql::Error {
    match &error.msg {
        Some(msg) => async_graphql::Error::new(format!("{} ({msg})", error.kind.title())),
        None => async_graphql::Error::new(error.kind.title()),
    }
}

/// A failure of ours (database, etcd), logged in full and reported without details.
pub fn internal(context: &str, source: &dyn std::error::Error) -> async_graphql::Error {
    error(ApiError::internal(context, source))
}

pub fn forbidden(msg: &str) -> async_graphql::Error {
    error(ApiError::with_msg(ErrorKind::GenericForbidden, msg))
}

/// `privileged_query(SUPERADMIN)`.
pub fn require_superadmin(ctx: &Context<'_>) -> async_graphql::Result<()> {
    if gql(ctx).caller.is_superadmin() {
        Ok(())
    } else {
        Err(forbidden("superadmin privilege required"))
    }
}

/// The roles a mutation allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allowed {
    SuperAdmin,
    AdminAndSuperAdmin,
    Everyone,
}

/// What every mutation checks first: a frozen manager refuses every mutation (a GraphQL error); a
/// caller whose role the mutation does not allow gets `ok: false, msg: "no permission to execute
/// <field>"` (no error). `Ok(Some(msg))` is that refusal message.
pub async fn mutation_guard(
    ctx: &Context<'_>,
    allowed: Allowed,
    field: &str,
) -> async_graphql::Result<Option<String>> {
    let context = gql(ctx);
    let status = context
        .api
        .manager_status()
        .await
        .map_err(|source| internal("reading the manager status", &source))?;
    if status == ManagerStatus::Frozen {
        return Err(error(ApiError::new(ErrorKind::ServerFrozen)));
    }
    let role = context.caller.role();
    let permitted = match allowed {
        Allowed::SuperAdmin => role == UserRole::Superadmin,
        Allowed::AdminAndSuperAdmin => matches!(role, UserRole::Superadmin | UserRole::Admin),
        Allowed::Everyone => true,
    };
    Ok((!permitted).then(|| format!("no permission to execute {field}")))
}

/// A JSON document carried as a string (the reference's `JSONString` scalar), e.g. resource slots.
#[derive(Clone, Debug, PartialEq)]
pub struct JsonString(pub serde_json::Value);

#[Scalar(name = "JSONString")]
impl ScalarType for JsonString {
    fn parse(value: Value) -> InputValueResult<Self> {
        match value {
            Value::String(text) => serde_json::from_str(&text)
                .map(JsonString)
                .map_err(|error| InputValueError::custom(format!("not a JSON string: {error}"))),
            Value::Object(_) | Value::List(_) => value
                .into_json()
                .map(JsonString)
                .map_err(|error| InputValueError::custom(error.to_string())),
            other => Err(InputValueError::expected_type(other)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_string())
    }
}

/// An integer that may exceed 32 bits (the reference's `BigInt`), e.g. sizes in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BigInt(pub i64);

#[Scalar(name = "BigInt")]
impl ScalarType for BigInt {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::Number(number) => number
                .as_i64()
                .map(BigInt)
                .ok_or_else(|| InputValueError::custom("not an integer")),
            Value::String(text) => text
                .parse()
                .map(BigInt)
                .map_err(|_| InputValueError::custom("not an integer")),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::Number(self.0.into())
    }
}
