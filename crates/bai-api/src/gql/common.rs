//! What every part of the schema shares: errors as the reference words them, privilege checks, the
//! mutation guard (frozen manager, allowed roles), list pages, and the reference's scalars.

use async_graphql::{
    Context, InputValueError, InputValueResult, MaybeUndefined, Scalar, ScalarType, Value,
};
use bai_db_models::WriteError;
use bai_db_models::entities::enums::UserRole;
use bai_db_models::entities::{ResourceSlot, VFolderHostPermissions};

use super::GqlContext;
use crate::error::{ApiError, ErrorKind};
use bai_stores::ManagerStatus;

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
pub fn internal(context: &str, source: &(dyn std::error::Error + 'static)) -> async_graphql::Error {
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

    /// Spelled as graphene's `json.dumps` does (`{"cpu": "2"}`), since clients pass the string
    /// through to their output.
    fn to_value(&self) -> Value {
        Value::String(String::from_utf8_lossy(&crate::json::to_python_json(&self.0)).into_owned())
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

/// What a mutation did, before it becomes its payload (`ok`, `msg` and the object).
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome<T> {
    /// Done; `msg` is "success", as in the reference.
    Done(T),
    /// Not done, for the reason given (the caller's request or a missing permission).
    Refused(String),
}

impl<T> Outcome<T> {
    /// A write's result: the caller's mistakes become `ok: false` with the message naming the
    /// object and field; a database failure is logged and answered as a GraphQL error.
    pub fn of(result: Result<T, WriteError>, context: &str) -> async_graphql::Result<Outcome<T>> {
        match result {
            Ok(done) => Ok(Outcome::Done(done)),
            Err(WriteError::Rejected(reason)) => Ok(Outcome::Refused(reason)),
            Err(WriteError::Db(source)) => Err(internal(context, &source)),
        }
    }

    pub fn ok(&self) -> bool {
        matches!(self, Outcome::Done(_))
    }

    pub fn msg(&self) -> String {
        match self {
            Outcome::Done(_) => "success".to_owned(),
            Outcome::Refused(reason) => reason.clone(),
        }
    }

    pub fn into_item(self) -> Option<T> {
        match self {
            Outcome::Done(item) => Some(item),
            Outcome::Refused(_) => None,
        }
    }
}

/// The reference's slug rule for domain and project names: letters and digits, with `.`, `_` and
/// `-` inside.
pub fn is_slug(name: &str) -> bool {
    let bytes = name.as_bytes();
    let inner = |byte: &u8| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b'-');
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() && bytes.iter().all(inner)
        }
        _ => false,
    }
}

/// A `JSONString` of resource slots (`{"cpu": "4", "mem": "8g"}`), or why it is not one, naming
/// `field`.
pub fn resource_slots(field: &str, value: &JsonString) -> Result<ResourceSlot, String> {
    ResourceSlot::from_json(&value.0).map_err(|error| format!("{field}: {error}"))
}

/// A `JSONString` of vfolder host permissions (`{"local:volume1": ["create-vfolder"]}`), or why
/// it is not one, naming `field`.
pub fn vfolder_host_permissions(
    field: &str,
    value: &JsonString,
) -> Result<VFolderHostPermissions, String> {
    serde_json::from_value(value.0.clone()).map_err(|error| format!("{field}: {error}"))
}

/// A modify input's nullable field: absent leaves the column (`None`), `null` clears it
/// (`Some(None)`), a value sets it.
pub fn change<T>(field: MaybeUndefined<T>) -> Option<Option<T>> {
    match field {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(value) => Some(Some(value)),
    }
}

#[cfg(test)]
mod tests {
    use super::is_slug;

    #[test]
    fn slugs_are_letters_and_digits_with_dots_dashes_and_underscores_inside() {
        for name in ["default", "a", "lab-1", "a.b_c-d", "9x"] {
            assert!(is_slug(name), "{name}");
        }
        for name in ["", "-a", "a-", ".a", "a b", "한글", "a/b"] {
            assert!(!is_slug(name), "{name}");
        }
    }
}
