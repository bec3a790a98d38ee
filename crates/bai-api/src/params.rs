//! Request parameters as the reference's `check_api_params` reads them: the JSON body for methods
//! other than GET/HEAD when there is one, else the query string (a flat map of strings). Unknown
//! keys are refused, and every problem names its field.

use axum::extract::{FromRequest, FromRequestParts, Request};
use bytes::Bytes;
use http::Method;
use http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::ApiError;

/// Validated parameters of type `T` (a `#[serde(deny_unknown_fields)]` struct).
#[derive(Debug)]
pub struct Params<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let method = request.method().clone();
        let query = request.uri().query().unwrap_or("").to_owned();
        let body = Bytes::from_request(request, state)
            .await
            .map_err(|_| ApiError::invalid_params("Malformed body"))?;
        let value = if method != Method::GET && method != Method::HEAD && !body.is_empty() {
            serde_json::from_slice::<Value>(&body)
                .map_err(|_| ApiError::invalid_params("Malformed body"))?
        } else {
            query_object(&query)
        };
        from_value(value).map(Params)
    }
}

/// The query string as a JSON object of strings; a repeated key keeps its last value.
pub fn query_object(query: &str) -> Value {
    let mut object = Map::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        object.insert(key.into_owned(), Value::String(value.into_owned()));
    }
    Value::Object(object)
}

/// A route's path parameters (`/session/{session_name}`), like axum's `Path`, but a value it
/// cannot read (percent-encoded bytes that are not UTF-8) is refused as 400 `invalid-api-params`
/// in a problem document instead of axum's plain-text 400.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| {
                ApiError::invalid_params("Malformed path parameter")
                    .data(Value::String(rejection.body_text()))
            })
            .and_then(|axum::extract::Path(value)| {
                // As in `from_value`: PostgreSQL cannot compare with a string holding U+0000.
                if parts.uri.path().to_ascii_lowercase().contains("%00") {
                    return Err(ApiError::invalid_params("Malformed path parameter")
                        .data(Value::String("NUL characters are not allowed".to_owned())));
                }
                Ok(Path(value))
            })
    }
}

/// Deserializes parameters, turning the first problem into the reference's
/// `{"<field>": "<message>"}` validation error.
///
/// A string holding U+0000 anywhere in the parameters is refused first: PostgreSQL cannot store
/// it in text or JSON columns, and the reference answers 500 when one reaches the database.
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    if let Some(field) = nul_holding_field(&value, "") {
        let mut data = Map::new();
        data.insert(
            field,
            Value::String("NUL characters are not allowed".to_owned()),
        );
        return Err(ApiError::invalid_params("Input validation error").data(Value::Object(data)));
    }
    serde_path_to_error::deserialize(value).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner().to_string();
        let (field, message) = if let Some(field) = quoted_field(&inner, "unknown field `") {
            let message = format!("{field} is not allowed key");
            (field, message)
        } else if let Some(field) = quoted_field(&inner, "missing field `") {
            let field = if path == "." {
                field
            } else {
                format!("{path}.{field}")
            };
            (field, "is required".to_owned())
        } else if path == "." {
            (String::new(), inner)
        } else {
            (path, inner)
        };
        let mut data = Map::new();
        data.insert(field, Value::String(message));
        ApiError::invalid_params("Input validation error").data(Value::Object(data))
    })
}

/// The dotted path (`config.environ.X`, `args[2]`) of the first key or string in `value` that holds
/// U+0000.
fn nul_holding_field(value: &Value, path: &str) -> Option<String> {
    match value {
        Value::String(text) if text.contains('\0') => Some(path.to_owned()),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(index, item)| nul_holding_field(item, &format!("{path}[{index}]"))),
        Value::Object(object) => object.iter().find_map(|(key, item)| {
            let field = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            if key.contains('\0') {
                Some(field)
            } else {
                nul_holding_field(item, &field)
            }
        }),
        _ => None,
    }
}

/// The field named by serde's "unknown field `x`, expected ..." or "missing field `x`" message.
fn quoted_field(message: &str, prefix: &str) -> Option<String> {
    let rest = message.strip_prefix(prefix)?;
    rest.split_once('`').map(|(field, _)| field.to_owned())
}

/// trafaret's `t.String()`: a string that is not empty (`"blank value is not allowed"`).
pub fn non_blank<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    let text = <String as serde::Deserialize>::deserialize(deserializer)?;
    if text.is_empty() {
        return Err(serde::de::Error::custom("blank value is not allowed"));
    }
    Ok(text)
}

/// Lenient scalar forms for parameters that may come from a query string, where every value is a
/// string (the reference's trafaret `ToBool`, `ToInt`).
pub mod lenient {
    use serde::{Deserialize, Deserializer, de::Error};
    use serde_json::Value;

    /// `true`/`false`, or `1`/`0`, `yes`/`no`, `y`/`n`, `t`/`f`, `on`/`off` as strings.
    pub fn bool<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Bool(value) => Ok(value),
            Value::Number(number) if number.as_i64() == Some(1) => Ok(true),
            Value::Number(number) if number.as_i64() == Some(0) => Ok(false),
            Value::String(text) => match text.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "y" | "t" | "on" => Ok(true),
                "0" | "false" | "no" | "n" | "f" | "off" => Ok(false),
                _ => Err(D::Error::custom(format!(
                    "value can't be converted to Bool: {text:?}"
                ))),
            },
            other => Err(D::Error::custom(format!(
                "value can't be converted to Bool: {other}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::{from_value, query_object};

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Echo {
        echo: String,
        #[serde(default, deserialize_with = "super::lenient::bool")]
        prefix: bool,
    }

    #[test]
    fn query_strings_become_string_maps() {
        let value = query_object("echo=a+b%2Bc&prefix=true&echo=last");
        assert_eq!(value, json!({"echo": "last", "prefix": "true"}));
        assert_eq!(
            from_value::<Echo>(value).unwrap(),
            Echo {
                echo: "last".into(),
                prefix: true
            }
        );
    }

    #[test]
    fn strings_holding_nul_are_refused_with_their_field() {
        let error = from_value::<Echo>(json!({"echo": "a\u{0}b"})).unwrap_err();
        assert_eq!(error.status(), 400);
        assert_eq!(error.kind.slug(), "invalid-api-params");
        assert_eq!(
            error.data,
            Some(json!({"echo": "NUL characters are not allowed"}))
        );
        let nested = from_value::<serde_json::Value>(json!({"args": ["x", "\u{0}"]})).unwrap_err();
        assert_eq!(
            nested.data,
            Some(json!({"args[1]": "NUL characters are not allowed"}))
        );
        let from_query = from_value::<Echo>(query_object("echo=%00")).unwrap_err();
        assert_eq!(from_query.status(), 400);
    }

    #[test]
    fn unknown_and_missing_keys_name_the_field() {
        let error = from_value::<Echo>(json!({"echo": "x", "bogus": 1})).unwrap_err();
        assert_eq!(error.status(), 400);
        assert_eq!(error.msg.as_deref(), Some("Input validation error"));
        assert_eq!(
            error.data,
            Some(json!({"bogus": "bogus is not allowed key"}))
        );
        let missing = from_value::<Echo>(json!({})).unwrap_err();
        assert_eq!(missing.data, Some(json!({"echo": "is required"})));
        let wrong = from_value::<Echo>(json!({"echo": 5})).unwrap_err();
        assert_eq!(
            wrong.data,
            Some(json!({"echo": "invalid type: integer `5`, expected a string"}))
        );
    }
}
