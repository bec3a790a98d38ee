//! Files of a session's main kernel, through its agent: `POST /session/{name}/upload` (multipart
//! form, the reference's `upload_files`), `POST …/download` (a `multipart/mixed` answer of the
//! agent's tar archives, `download_files`), `POST …/download_single` (one file's bytes),
//! `GET …/files` (the agent's listing, `list_files`), and the anonymous `GET …/download` and
//! `GET …/download_single` that only say "use POST" (`deprecated_get_stub`).
//!
//! The reference's limits hold: at most 20 files per upload, each smaller than 1 MiB (a file is
//! read as it arrives and refused the moment it reaches 1 MiB, so no more than that is ever held
//! for it), at most 5 paths per download. Paths are the agent's business: it confines them to
//! the kernel's home and its refusal comes back as the reference's `kernel-execution-failed`.
//! The sessions are the caller's own (the reference reads no `owner_access_key` here).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Multipart, Request, State};
use axum::handler::Handler;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, Method, StatusCode, header};
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use super::execute::KernelTarget;
use super::session::get_session;
use super::{Access, Authenticated, ParamsIn, Route, StatusGate, inline_schema};
use crate::context::ApiContext;
use crate::error::{ApiError, ErrorKind};
use crate::json::PyJson;
use crate::params::{Params, Path, from_value, non_blank, query_object};

/// The most files one upload may carry (the reference's count).
const MAX_UPLOAD_FILES: usize = 20;
/// An uploaded file must stay below this many bytes: the reference refuses it once it has
/// received 1 MiB of it, so 1 MiB - 1 bytes is the largest file that passes.
const UPLOAD_FILE_LIMIT: usize = 1 << 20;
/// The whole upload body: the files at their largest and room for the parts' headers. Bounds
/// what a client can make the server read besides the files (preambles, headers).
const UPLOAD_BODY_LIMIT: usize = MAX_UPLOAD_FILES * UPLOAD_FILE_LIMIT + (1 << 20);
/// The most paths one download may name (the reference's assertion).
const MAX_DOWNLOAD_FILES: usize = 5;
/// The JSON bodies of the other routes (the size axum's body extractors allow by default).
const JSON_BODY_LIMIT: usize = 2 << 20;
/// What the reference's `deprecated_get_stub` says.
const USE_POST: &str =
    "Use the HTTP POST method to invoke this API with parameters in the request body.";

pub(super) fn routes() -> Vec<Route> {
    let mut list_files = Route::new(
        Method::GET,
        "/session/{session_name}/files",
        "session.list_files",
        list_files,
    )
    .access(Access::User)
    .gate(StatusGate::ReadAllowed)
    .summary(
        "The main kernel's files under `path` (default `.`, relative to its home), as its agent \
         lists them: `{\"files\": <JSON text of the entries>, \"errors\": str, \"abspath\": str}`. \
         The parameters are a JSON body, even on this GET.",
    );
    list_files.params = Some((ParamsIn::Body, inline_schema::<ListFilesParams>));
    vec![
        Route::new(
            Method::POST,
            "/session/{session_name}/upload",
            "session.upload_files",
            upload_files.layer(DefaultBodyLimit::max(UPLOAD_BODY_LIMIT)),
        )
        .body_limit(UPLOAD_BODY_LIMIT)
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .summary(
            "Stores the files of a multipart/form-data body (each part's filename is its path \
             under the main kernel's home) through the kernel's agent: at most 20 files, each \
             smaller than 1 MiB.",
        ),
        Route::new(
            Method::GET,
            "/session/{session_name}/download",
            "session.deprecated_get_stub",
            deprecated_get_stub,
        )
        .summary("Deprecated: answers 400 `deprecated`; use POST."),
        Route::new(
            Method::GET,
            "/session/{session_name}/download_single",
            "session.deprecated_get_stub",
            deprecated_get_stub,
        )
        .summary("Deprecated: answers 400 `deprecated`; use POST."),
        Route::new(
            Method::POST,
            "/session/{session_name}/download",
            "session.download_files",
            download_files,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .params::<DownloadParams>()
        .summary(
            "The main kernel's `files` (at most 5 paths under its home) as a multipart/mixed body \
             of one tar archive per path, as its agent packs them.",
        ),
        Route::new(
            Method::POST,
            "/session/{session_name}/download_single",
            "session.download_single",
            download_single,
        )
        .access(Access::User)
        .gate(StatusGate::ReadAllowed)
        .params::<DownloadSingleParams>()
        .summary("The bytes of one small `file` under the main kernel's home, from its agent."),
        list_files,
    ]
}

// ----- parameters -----

/// `download_files`: `files`, one path or a list of them (the reference's `MultiKey`).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct DownloadParams {
    /// Paths under the main kernel's home, at most 5.
    #[serde(deserialize_with = "one_or_many_paths")]
    files: Vec<String>,
}

/// `download_single`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct DownloadSingleParams {
    /// A path under the main kernel's home.
    #[serde(deserialize_with = "non_blank")]
    file: String,
}

/// `list_files` reads only `path` of its JSON body; other keys are ignored.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct ListFilesParams {
    /// A directory under the main kernel's home; `.` (the home) when absent.
    #[serde(default = "home")]
    path: String,
}

fn home() -> String {
    ".".to_owned()
}

/// A non-blank path or a list of them.
fn one_or_many_paths<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    use serde::de::Error;
    let paths = match Value::deserialize(deserializer)? {
        Value::Array(items) => items,
        single => vec![single],
    };
    paths
        .into_iter()
        .enumerate()
        .map(|(index, path)| match path {
            Value::String(path) if !path.is_empty() => Ok(path),
            Value::String(_) => Err(D::Error::custom(format!(
                "item {index}: blank value is not allowed"
            ))),
            other => Err(D::Error::custom(format!(
                "item {index}: value is not a string: {other}"
            ))),
        })
        .collect()
}

// ----- the main kernel and its agent -----

/// The caller's active session `session_name` and its main kernel, on an agent (checked before
/// the body is read).
async fn main_kernel(
    ctx: &ApiContext,
    session_name: &str,
    access_key: &str,
    what: &str,
) -> Result<KernelTarget, ApiError> {
    let session = get_session(ctx, session_name, access_key).await?;
    let kernel = KernelTarget::of(ctx, &session, what).await?;
    kernel.agent(what)?;
    Ok(kernel)
}

// ----- POST /session/{name}/upload -----

async fn upload_files(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Path(session_name): Path<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let access_key = caller.access_key();
    tracing::info!(
        target: "bai_api",
        "UPLOAD_FILE (ak:{access_key}/{access_key}, s:{session_name})"
    );
    let kernel = Arc::new(main_kernel(&ctx, &session_name, access_key, "Uploading files").await?);
    let mut multipart = multipart.map_err(|rejection| {
        ApiError::invalid_params(format!(
            "The files must come as a multipart/form-data body ({})",
            rejection.body_text()
        ))
    })?;
    // Each file goes to the agent as soon as it is read, while the next one arrives.
    let mut uploads = JoinSet::new();
    let read = read_parts(&mut multipart, |filename, data| {
        let kernel = Arc::clone(&kernel);
        uploads.spawn(async move {
            let kernel_id = kernel.kernel_id.as_str();
            kernel
                .call("upload_file", |connection| async move {
                    connection.upload_file(kernel_id, &filename, data).await
                })
                .await
                .map(drop)
        });
    })
    .await;
    // The uploads already under way finish either way (as in the reference, a refused part does
    // not undo the files before it), so that the answer says what happened.
    let mut failure = None;
    while let Some(joined) = uploads.join_next().await {
        let outcome = joined
            .map_err(|error| ApiError::internal("uploading a file", &error))
            .and_then(|uploaded| uploaded);
        if let Err(error) = outcome {
            failure.get_or_insert(error);
        }
    }
    read?;
    match failure {
        Some(error) => Err(error),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// Reads the parts of the upload one by one and hands each file to `upload`; stops at the first
/// part past the limits.
async fn read_parts(
    multipart: &mut Multipart,
    mut upload: impl FnMut(String, Vec<u8>),
) -> Result<(), ApiError> {
    let mut count = 0;
    while let Some(field) = multipart.next_field().await.map_err(body_error)? {
        if count == MAX_UPLOAD_FILES {
            return Err(ApiError::invalid_params(format!(
                "Too many files: an upload carries at most {MAX_UPLOAD_FILES} files"
            )));
        }
        count += 1;
        let filename = part_filename(&field, count)?;
        let data = read_file(field, &filename).await?;
        tracing::debug!(target: "bai_api", "received file: {filename} ({} bytes)", data.len());
        upload(filename, data);
    }
    Ok(())
}

/// The part's path as the reference's multipart reader spells it (see [`disposition_filename`]);
/// only files are accepted, and only in the identity encodings.
fn part_filename(field: &Field<'_>, number: usize) -> Result<String, ApiError> {
    let filename = field
        .headers()
        .get(header::CONTENT_DISPOSITION)
        // Browsers send a filename's UTF-8 as it is; aiohttp decodes part headers as UTF-8.
        .and_then(|value| disposition_filename(&String::from_utf8_lossy(value.as_bytes())))
        .ok_or_else(|| {
            ApiError::invalid_params(format!(
                "Part {number} of the upload is not a file: its Content-Disposition names no \
                 filename"
            ))
        })?;
    if let Some(encoding) = field
        .headers()
        .get("content-transfer-encoding")
        .map(|value| String::from_utf8_lossy(value.as_bytes()).to_ascii_lowercase())
        && !matches!(encoding.as_str(), "binary" | "8bit" | "7bit")
    {
        return Err(ApiError::invalid_params(format!(
            "{filename}: Content-Transfer-Encoding {encoding} is not supported; send the file's \
             bytes as they are"
        )));
    }
    Ok(filename)
}

/// The whole file of `field`, refused once it reaches [`UPLOAD_FILE_LIMIT`].
async fn read_file(mut field: Field<'_>, filename: &str) -> Result<Vec<u8>, ApiError> {
    let mut data = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(body_error)? {
        if data.len() + chunk.len() >= UPLOAD_FILE_LIMIT {
            return Err(ApiError::invalid_params(format!(
                "Too large file: {filename} reaches {UPLOAD_FILE_LIMIT} bytes; each file must be \
                 smaller than 1 MiB"
            )));
        }
        data.extend_from_slice(&chunk);
    }
    Ok(data)
}

/// A body over the route's limit never gets here: the router's body limit answers 413 instead.
fn body_error(error: MultipartError) -> ApiError {
    ApiError::invalid_params(format!("Malformed multipart body: {}", error.body_text()))
}

/// The filename of a part's `Content-Disposition` as aiohttp's reader (the reference's) reads it:
/// `filename*` (RFC 5987, percent-decoded) first, then `filename` as sent (quoted: unescaped, and
/// leading `/` and `\` dropped; the official clients percent-encode it, `/` included, and that
/// stays as it is), then the RFC 2231 continuations `filename*0`, `filename*1`, …. `None` for a
/// header aiohttp calls malformed or without a filename.
fn disposition_filename(header: &str) -> Option<String> {
    let mut parts = header.split(';').map(str::to_owned).collect::<Vec<_>>();
    let disposition = parts.remove(0);
    if !is_token(&disposition) {
        return None;
    }
    let mut params: Vec<(String, String)> = Vec::new();
    let mut rest = parts.into_iter();
    while let Some(item) = rest.next() {
        let (key, value) = item.split_once('=')?;
        let key = key.trim().to_lowercase();
        let value = value.trim_start();
        if params.iter().any(|(seen, _)| *seen == key) {
            return None;
        }
        if !is_token(&key) {
            continue;
        }
        let value = if is_continuation(&key) {
            if is_quoted(value) {
                unescape(&value[1..value.len() - 1])
            } else if is_token(value) {
                value.to_owned()
            } else {
                continue;
            }
        } else if key.ends_with('*') {
            if !(is_token(value) && value.matches('\'').count() == 2) {
                continue;
            }
            let mut pieces = value.splitn(3, '\'');
            let charset = pieces.next().unwrap_or_default();
            let encoded = pieces.nth(1).unwrap_or_default();
            match percent_decode(encoded, charset) {
                Some(decoded) => decoded,
                None => continue,
            }
        } else if is_quoted(value) {
            unescape(value[1..value.len() - 1].trim_start_matches(['\\', '/']))
        } else if is_token(value) {
            value.to_owned()
        } else {
            // A `;` inside a quoted filename: the reference joins the next piece once.
            let next = rest.next()?;
            let joined = format!("{value};{next}");
            if !is_quoted(&joined) {
                return None;
            }
            unescape(joined[1..joined.len() - 1].trim_start_matches(['\\', '/']))
        };
        params.push((key, value));
    }
    let param = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    if let Some(filename) = param("filename*").or_else(|| param("filename")) {
        return Some(filename);
    }
    // Continuations, in the reference's (lexicographic) order, up to the first gap.
    let mut continued: Vec<&(String, String)> = params
        .iter()
        .filter(|(key, _)| key.starts_with("filename*"))
        .collect();
    continued.sort();
    let mut joined = String::new();
    let mut any = false;
    for (number, (key, value)) in continued.into_iter().enumerate() {
        let tail = key["filename*".len()..].trim_end_matches('*');
        if tail != number.to_string() {
            break;
        }
        joined.push_str(value);
        any = true;
    }
    if !any {
        return None;
    }
    match joined.split_once('\'') {
        Some((charset, rest)) => {
            let encoded = rest.split_once('\'').map_or(rest, |(_, value)| value);
            percent_decode(encoded, charset)
        }
        None => Some(joined),
    }
}

/// An RFC 2616 token: printable ASCII without separators.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|byte| byte.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&byte))
}

fn is_quoted(text: &str) -> bool {
    text.len() >= 2 && text.starts_with('"') && text.ends_with('"')
}

/// `filename*0`, `filename*1*`: a key with digits after its `*`.
fn is_continuation(key: &str) -> bool {
    key.split_once('*').is_some_and(|(_, tail)| {
        let digits = tail.strip_suffix('*').unwrap_or(tail);
        !digits.is_empty() && digits.bytes().all(|byte| byte.is_ascii_digit())
    })
}

/// A backslash escapes the ASCII character after it.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch == '\\'
            && let Some(&next) = chars.peek()
            && next.is_ascii()
        {
            out.push(next);
            chars.next();
        } else {
            out.push(ch);
        }
    }
    out
}

/// Python's `urllib.parse.unquote(text, charset, "strict")` for UTF-8 and Latin-1 (`None` for
/// bytes the charset cannot decode or another charset); a `%` without two hex digits stays.
fn percent_decode(text: &str, charset: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let escaped = (bytes[index] == b'%')
            .then(|| bytes.get(index + 1..index + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                decoded.push(byte);
                index += 3;
            }
            None => {
                decoded.push(bytes[index]);
                index += 1;
            }
        }
    }
    match charset.to_ascii_lowercase().replace('_', "-").as_str() {
        "" | "utf-8" | "utf8" => String::from_utf8(decoded).ok(),
        "latin-1" | "latin1" | "iso-8859-1" => Some(decoded.into_iter().map(char::from).collect()),
        _ => None,
    }
}

// ----- GET /session/{name}/download, /download_single -----

async fn deprecated_get_stub() -> ApiError {
    ApiError::with_msg(ErrorKind::Deprecated, USE_POST)
}

// ----- POST /session/{name}/download -----

async fn download_files(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Path(session_name): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let params = download_params(request).await?;
    let access_key = caller.access_key();
    tracing::info!(
        target: "bai_api",
        "DOWNLOAD_FILE (ak:{access_key}/{access_key}, s:{session_name}, path:{:?})",
        params.files.first().map_or("", String::as_str)
    );
    if params.files.is_empty() {
        return Err(ApiError::invalid_params("Input validation error")
            .data(json!({"files": "at least one path is required"})));
    }
    // The reference counts the paths once it found the session.
    let kernel = Arc::new(main_kernel(&ctx, &session_name, access_key, "Downloading files").await?);
    if params.files.len() > MAX_DOWNLOAD_FILES {
        return Err(ApiError::invalid_params(format!(
            "Too many files: a download names at most {MAX_DOWNLOAD_FILES} paths"
        )));
    }
    let mut downloads = JoinSet::new();
    for (index, path) in params.files.into_iter().enumerate() {
        let kernel = Arc::clone(&kernel);
        downloads.spawn(async move {
            let kernel_id = kernel.kernel_id.as_str();
            let archive = kernel
                .call("download_file", |connection| async move {
                    connection.download_file(kernel_id, &path).await
                })
                .await?;
            Ok::<_, ApiError>((index, archive))
        });
    }
    let mut archives = Vec::new();
    while let Some(joined) = downloads.join_next().await {
        // The first failure answers; dropping the set cancels the other calls.
        archives.push(joined.map_err(|error| ApiError::internal("downloading a file", &error))??);
    }
    archives.sort_by_key(|(index, _)| *index);
    Ok(mixed_archives(
        archives.into_iter().map(|(_, archive)| archive),
    ))
}

/// `download_files`' parameters as the reference's `check_api_params` reads them: the JSON body,
/// or the query string when there is none (where `files` may repeat).
async fn download_params(request: Request) -> Result<DownloadParams, ApiError> {
    let query = request.uri().query().unwrap_or("").to_owned();
    let body = axum::body::to_bytes(request.into_body(), JSON_BODY_LIMIT)
        .await
        .map_err(|_| ApiError::invalid_params("Malformed body"))?;
    let value = if body.is_empty() {
        let mut object = query_object(&query);
        let files: Vec<Value> = form_urlencoded::parse(query.as_bytes())
            .filter(|(key, _)| key == "files")
            .map(|(_, value)| Value::String(value.into_owned()))
            .collect();
        if let (Value::Object(object), false) = (&mut object, files.is_empty()) {
            object.insert("files".to_owned(), Value::Array(files));
        }
        object
    } else {
        serde_json::from_slice(&body).map_err(|_| ApiError::invalid_params("Malformed body"))?
    };
    from_value(value)
}

/// The archives as aiohttp's `MultipartWriter("mixed")` writes them: one part per archive with
/// `Content-Type: application/octet-stream`, `Content-Encoding: identity` and its length.
fn mixed_archives(archives: impl Iterator<Item = Vec<u8>>) -> Response {
    let boundary = uuid::Uuid::new_v4().simple().to_string();
    let mut body = Vec::new();
    for archive in archives {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Type: application/octet-stream\r\n\
                 Content-Encoding: identity\r\nContent-Length: {}\r\n\r\n",
                archive.len()
            )
            .as_bytes(),
        );
        body.extend_from_slice(&archive);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let mut response = Response::new(Body::from(body));
    if let Ok(content_type) =
        HeaderValue::from_str(&format!("multipart/mixed; boundary={boundary}"))
    {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    response
}

// ----- POST /session/{name}/download_single -----

async fn download_single(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Path(session_name): Path<String>,
    Params(params): Params<DownloadSingleParams>,
) -> Result<Response, ApiError> {
    let access_key = caller.access_key();
    tracing::info!(
        target: "bai_api",
        "DOWNLOAD_SINGLE (ak:{access_key}/{access_key}, s:{session_name}, path:{:?})",
        params.file
    );
    let kernel = main_kernel(&ctx, &session_name, access_key, "Downloading a file").await?;
    let (kernel_id, file) = (kernel.kernel_id.as_str(), params.file.as_str());
    let content = kernel
        .call("download_single", |connection| async move {
            connection.download_single(kernel_id, file).await
        })
        .await?;
    // aiohttp names no content type for an empty body, and application/octet-stream otherwise.
    let empty = content.is_empty();
    let mut response = Response::new(Body::from(content));
    if !empty {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
    }
    Ok(response)
}

// ----- GET /session/{name}/files -----

async fn list_files(
    State(ctx): State<ApiContext>,
    Authenticated(caller): Authenticated,
    Path(session_name): Path<String>,
    body: Bytes,
) -> Result<PyJson<Value>, ApiError> {
    let params = list_files_params(&body)?;
    let access_key = caller.access_key();
    tracing::info!(
        target: "bai_api",
        "LIST_FILES (ak:{access_key}/{access_key}, s:{session_name}, path:{})",
        params.path
    );
    let kernel = main_kernel(&ctx, &session_name, access_key, "Listing files").await?;
    let (kernel_id, path) = (kernel.kernel_id.as_str(), params.path.as_str());
    let listing = kernel
        .call("list_files", |connection| async move {
            connection.list_files(kernel_id, path).await
        })
        .await?;
    match bai_events::to_json(&listing) {
        listing @ Value::Object(_) => Ok(PyJson(listing)),
        other => {
            // The reference merges the answer into a dict and fails on anything else.
            tracing::error!(
                target: "bai_api",
                "list_files (k:{}) answered no map: {other}",
                kernel.kernel_id
            );
            Err(ApiError::new(ErrorKind::InternalServerError))
        }
    }
}

/// The JSON body the reference's `list_files` reads even on this GET; a missing body is its
/// JSON decoder's complaint.
fn list_files_params(body: &[u8]) -> Result<ListFilesParams, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::invalid_params(
            "Expecting value: line 1 column 1 (char 0)",
        ));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|error| ApiError::invalid_params(format!("Malformed body: {error}")))?;
    if !value.is_object() {
        return Err(ApiError::invalid_params(
            "Malformed body: the parameters must be a JSON object",
        ));
    }
    from_value(value)
}

#[cfg(test)]
mod tests {
    use super::{disposition_filename, list_files_params, percent_decode};

    #[test]
    fn filenames_are_read_as_aiohttp_reads_them() {
        // What the official clients send (aiohttp quotes and percent-encodes `filename`).
        assert_eq!(
            disposition_filename(r#"form-data; name="src"; filename="sub%2Fdata.txt""#).as_deref(),
            Some("sub%2Fdata.txt")
        );
        assert_eq!(
            disposition_filename("form-data; name=src; filename=plain.txt").as_deref(),
            Some("plain.txt")
        );
        // Quoted values lose leading slashes and backslash escapes.
        assert_eq!(
            disposition_filename(r#"form-data; filename="//etc/pa\"ss""#).as_deref(),
            Some("etc/pa\"ss")
        );
        // `filename*` wins, percent-decoded in its charset.
        assert_eq!(
            disposition_filename(
                r#"form-data; filename="fallback"; filename*=utf-8''%ED%95%9C.txt"#
            )
            .as_deref(),
            Some("한.txt")
        );
        // A `;` inside quotes.
        assert_eq!(
            disposition_filename(r#"form-data; filename="a;b.txt""#).as_deref(),
            Some("a;b.txt")
        );
        // Continuations up to the first gap.
        assert_eq!(
            disposition_filename("form-data; filename*0=ab; filename*1=cd; filename*3=x")
                .as_deref(),
            Some("abcd")
        );
        // No filename, a duplicate key, a bad disposition type: none.
        assert_eq!(disposition_filename(r#"form-data; name="src""#), None);
        assert_eq!(
            disposition_filename("form-data; filename=a; filename=b"),
            None
        );
        assert_eq!(disposition_filename("form data; filename=a"), None);
        assert_eq!(disposition_filename("form-data; filename"), None);
    }

    #[test]
    fn percent_decoding_keeps_stray_percents() {
        assert_eq!(
            percent_decode("a%2Fb%zz%", "utf-8").as_deref(),
            Some("a/b%zz%")
        );
        assert_eq!(percent_decode("%E9", "latin-1").as_deref(), Some("é"));
        assert_eq!(percent_decode("%E9", "utf-8"), None);
        assert_eq!(percent_decode("x", "koi8-r"), None);
    }

    #[test]
    fn list_files_reads_its_json_body() {
        assert_eq!(
            list_files_params(b"{}").map(|p| p.path).ok().as_deref(),
            Some(".")
        );
        assert_eq!(
            list_files_params(br#"{"path": "/home/work", "other": 1}"#)
                .map(|p| p.path)
                .ok()
                .as_deref(),
            Some("/home/work")
        );
        let empty = list_files_params(b"").expect_err("refused");
        assert_eq!(
            empty.msg.as_deref(),
            Some("Expecting value: line 1 column 1 (char 0)")
        );
        assert!(list_files_params(b"[]").is_err());
        assert!(list_files_params(br#"{"path": 3}"#).is_err());
    }
}
