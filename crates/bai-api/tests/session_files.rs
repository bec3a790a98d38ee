//! The session file routes through the real router, with the whole manager around it in this
//! process and a simulated agent (its dummy answers: uploads accepted, empty archives, an empty
//! listing): `POST /session/{name}/upload` and its limits, `POST …/download` (multipart/mixed),
//! `POST …/download_single`, `GET …/files`, the anonymous deprecated GET stubs, and the answers
//! once the agent is gone. What a real folder behind the agent does is the manager-server test's
//! (`session_files`, agent-sim with the local runner and the official clients).
//!
//! On the halfstack's PostgreSQL and etcd (fresh database and namespace) and a private Redis.

#[path = "it/common.rs"]
#[allow(dead_code)]
mod common;
mod support;

use std::time::Duration;

use axum::body::Body;
use bai_api::testing::{DOMAIN_ADMIN, USER, anonymous_request, signed_raw_request, signed_request};
use common::{Answer, Api};
use http::{Method, Request, StatusCode};
use serde_json::{Value, json};
use support::{Stack, assert_agent_timeout, running_session, wait_agents_gone};

const PATIENCE: Duration = Duration::from_secs(60);

const STACK: Stack = Stack::one_agent("files", PATIENCE);

const BOUNDARY: &str = "----bai-test-boundary";

/// A multipart/form-data body of parts `(Content-Disposition parameters, data)`, as aiohttp's
/// `FormData` writes the clients' files.
fn form(parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::new();
    for (disposition, data) in parts {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Type: application/octet-stream\r\n\
                 Content-Disposition: form-data; {disposition}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

/// `POST /session/{session}/upload` of `USER` with the files `(filename, data)`.
async fn upload(api: &Api, session: &str, files: &[(&str, &[u8])]) -> Answer {
    let dispositions: Vec<String> = files
        .iter()
        .map(|(name, _)| format!("name=\"src\"; filename=\"{name}\""))
        .collect();
    let parts: Vec<(&str, &[u8])> = dispositions
        .iter()
        .zip(files)
        .map(|(disposition, (_, data))| (disposition.as_str(), *data))
        .collect();
    upload_body(api, session, form(&parts)).await
}

/// `POST /session/{session}/upload` of `USER` with `body` as the multipart form.
async fn upload_body(api: &Api, session: &str, body: impl Into<Body>) -> Answer {
    send(
        api,
        signed_raw_request(
            Method::POST,
            &format!("/session/{session}/upload"),
            &format!("multipart/form-data; boundary={BOUNDARY}"),
            body,
            &USER,
        ),
    )
    .await
}

/// Sends a request and reads the whole answer, whatever its status (an agent's failure is the
/// reference's 500 `kernel-execution-failed`).
async fn send(api: &Api, request: Request<Body>) -> Answer {
    api.send_allowing_500(request).await
}

async fn post(api: &Api, path: &str, body: &Value) -> Answer {
    send(api, signed_request(Method::POST, path, Some(body), &USER)).await
}

/// `GET /session/{session}/files` with a JSON body, as the clients send it.
async fn list(api: &Api, session: &str, body: Option<&Value>) -> Answer {
    send(
        api,
        signed_request(
            Method::GET,
            &format!("/session/{session}/files"),
            body,
            &USER,
        ),
    )
    .await
}

/// The parts of a multipart/mixed answer: each part's header block and its content.
fn mixed_parts(answer: &Answer) -> Vec<(String, String)> {
    let content_type = answer.header("content-type").expect("a content type");
    let boundary = content_type
        .strip_prefix("multipart/mixed; boundary=")
        .unwrap_or_else(|| panic!("not multipart/mixed: {content_type}"));
    assert_eq!(boundary.len(), 32, "a uuid4 hex boundary: {boundary}");
    let closing = format!("--{boundary}--\r\n");
    let body = answer
        .text
        .strip_suffix(&closing)
        .unwrap_or_else(|| panic!("no closing boundary: {:?}", answer.text));
    body.split(&format!("--{boundary}\r\n"))
        .skip(1)
        .map(|part| {
            let (headers, content) = part.split_once("\r\n\r\n").expect("headers");
            let content = content.strip_suffix("\r\n").expect("CRLF after the part");
            (headers.to_owned(), content.to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_routes_follow_the_reference() {
    let (api, manager) = support::start("session-files", &STACK).await;
    running_session(&api, &USER, "files-a").await;

    // Upload: 204, empty; a file of 1 MiB - 1 bytes is the largest that passes.
    let uploaded = upload(
        &api,
        "files-a",
        &[("a.txt", b"hello"), ("b.bin", &[0, 1, 2])],
    )
    .await;
    assert_eq!(uploaded.status, StatusCode::NO_CONTENT, "{}", uploaded.text);
    assert!(uploaded.text.is_empty());
    let largest = vec![b'x'; (1 << 20) - 1];
    let passed = upload(&api, "files-a", &[("big.bin", &largest)]).await;
    assert_eq!(passed.status, StatusCode::NO_CONTENT, "{}", passed.text);
    let too_large = vec![b'x'; 1 << 20];
    upload(
        &api,
        "files-a",
        &[("ok.txt", b"ok"), ("big.bin", &too_large)],
    )
    .await
    .assert_problem(
        400,
        "invalid-api-params",
        Some(
            "Too large file: big.bin reaches 1048576 bytes; each file must be smaller than \
                 1 MiB",
        ),
    );
    // 20 files pass, the 21st is refused.
    let names: Vec<String> = (0..21).map(|index| format!("f{index}.txt")).collect();
    let twenty: Vec<(&str, &[u8])> = names[..20]
        .iter()
        .map(|name| (name.as_str(), b"x".as_slice()))
        .collect();
    let passed = upload(&api, "files-a", &twenty).await;
    assert_eq!(passed.status, StatusCode::NO_CONTENT, "{}", passed.text);
    let twenty_one: Vec<(&str, &[u8])> = names
        .iter()
        .map(|name| (name.as_str(), b"x".as_slice()))
        .collect();
    upload(&api, "files-a", &twenty_one).await.assert_problem(
        400,
        "invalid-api-params",
        Some("Too many files: an upload carries at most 20 files"),
    );
    // 20 files of the largest size fit in the body limit.
    let largest_twenty: Vec<(&str, &[u8])> = names[..20]
        .iter()
        .map(|name| (name.as_str(), largest.as_slice()))
        .collect();
    let passed = upload(&api, "files-a", &largest_twenty).await;
    assert_eq!(passed.status, StatusCode::NO_CONTENT, "{}", passed.text);
    // Whatever is not a file counts against the body's limit (here a preamble of 22 MiB).
    let mut padded = vec![b'p'; 22 << 20];
    padded.extend_from_slice(b"\r\n");
    padded.extend_from_slice(&form(&[("name=\"src\"; filename=\"a.txt\"", b"x")]));
    upload_body(&api, "files-a", padded).await.assert_problem(
        413,
        "generic-bad-request",
        Some("The request body exceeds the limit of 22020096 bytes"),
    );
    // A filename in raw UTF-8, as browsers send it.
    let utf8 = upload(&api, "files-a", &[("데이터.txt", b"x")]).await;
    assert_eq!(utf8.status, StatusCode::NO_CONTENT, "{}", utf8.text);
    // No files at all: nothing to do.
    let nothing = upload(&api, "files-a", &[]).await;
    assert_eq!(nothing.status, StatusCode::NO_CONTENT, "{}", nothing.text);
    // A part that is no file, a body that is no form, an encoding we do not decode.
    let field = upload_body(&api, "files-a", form(&[("name=\"src\"", b"x")])).await;
    field.assert_problem(
        400,
        "invalid-api-params",
        Some("Part 1 of the upload is not a file: its Content-Disposition names no filename"),
    );
    post(&api, "/session/files-a/upload", &json!({"files": ["a"]}))
        .await
        .assert_problem(400, "invalid-api-params", None);
    let encoded = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"src\"; filename=\"e.txt\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\naGk=\r\n--{BOUNDARY}--\r\n"
    );
    upload_body(&api, "files-a", encoded).await.assert_problem(
        400,
        "invalid-api-params",
        Some(
            "e.txt: Content-Transfer-Encoding base64 is not supported; send the file's bytes as \
             they are",
        ),
    );
    upload(&api, "files-nosuch", &[("a.txt", b"x")])
        .await
        .assert_problem(404, "object-not-found", None);

    // Download: one tar archive per path in a multipart/mixed body, as aiohttp writes it (the
    // simulated agent's archives are empty). One path may come bare.
    let downloaded = post(
        &api,
        "/session/files-a/download",
        &json!({"files": ["a.txt", "b.bin"]}),
    )
    .await;
    assert_eq!(downloaded.status, StatusCode::OK, "{}", downloaded.text);
    let parts = mixed_parts(&downloaded);
    assert_eq!(parts.len(), 2, "{}", downloaded.text);
    for (headers, content) in &parts {
        assert_eq!(
            headers,
            "Content-Type: application/octet-stream\r\nContent-Encoding: identity\r\n\
             Content-Length: 0"
        );
        assert!(content.is_empty());
    }
    let bare = post(
        &api,
        "/session/files-a/download",
        &json!({"files": "a.txt"}),
    )
    .await;
    assert_eq!(mixed_parts(&bare).len(), 1, "{}", bare.text);
    post(
        &api,
        "/session/files-a/download",
        &json!({"files": ["1", "2", "3", "4", "5", "6"]}),
    )
    .await
    .assert_problem(
        400,
        "invalid-api-params",
        Some("Too many files: a download names at most 5 paths"),
    );
    let empty = post(&api, "/session/files-a/download", &json!({"files": []})).await;
    empty.assert_problem(400, "invalid-api-params", Some("Input validation error"));
    assert_eq!(
        empty.json["data"],
        json!({"files": "at least one path is required"})
    );
    let extra = post(
        &api,
        "/session/files-a/download",
        &json!({"files": ["a"], "owner_access_key": DOMAIN_ADMIN.access_key}),
    )
    .await;
    extra.assert_problem(400, "invalid-api-params", Some("Input validation error"));
    assert_eq!(
        extra.json["data"],
        json!({"owner_access_key": "owner_access_key is not allowed key"})
    );
    post(&api, "/session/files-a/download", &json!({}))
        .await
        .assert_problem(400, "invalid-api-params", None);
    // Without a body, the query string (where `files` repeats).
    let by_query = send(
        &api,
        signed_request(
            Method::POST,
            "/session/files-a/download?files=a&files=b&files=c",
            None,
            &USER,
        ),
    )
    .await;
    assert_eq!(mixed_parts(&by_query).len(), 3, "{}", by_query.text);
    post(
        &api,
        "/session/files-nosuch/download",
        &json!({"files": ["a"]}),
    )
    .await
    .assert_problem(404, "object-not-found", None);

    // download_single: the bytes; aiohttp names no content type for an empty body.
    let single = post(
        &api,
        "/session/files-a/download_single",
        &json!({"file": "a.txt"}),
    )
    .await;
    assert_eq!(single.status, StatusCode::OK, "{}", single.text);
    assert!(single.text.is_empty());
    assert_eq!(single.header("content-type"), None);
    post(
        &api,
        "/session/files-a/download_single",
        &json!({"file": ""}),
    )
    .await
    .assert_problem(400, "invalid-api-params", None);

    // The GET forms are deprecated, answered without looking at the credentials at all.
    for path in [
        "/session/files-a/download",
        "/session/files-a/download_single",
    ] {
        let mut request = anonymous_request(Method::GET, path);
        request.headers_mut().insert(
            http::header::AUTHORIZATION,
            http::HeaderValue::from_static("BackendAI signMethod=HMAC-SHA256, credential=x:y"),
        );
        send(&api, request).await.assert_problem(
            400,
            "deprecated",
            Some(
                "Use the HTTP POST method to invoke this API with parameters in the request body.",
            ),
        );
    }

    // files: the agent's listing of `path` (from the JSON body, even on GET; `.` by default).
    let listed = list(&api, "files-a", Some(&json!({"path": "sub"}))).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.text);
    assert_eq!(
        listed.json,
        json!({"files": "[]", "errors": "", "abspath": "sub"})
    );
    let home = list(&api, "files-a", Some(&json!({}))).await;
    assert_eq!(home.json["abspath"], ".", "{}", home.text);
    list(&api, "files-a", None).await.assert_problem(
        400,
        "invalid-api-params",
        Some("Expecting value: line 1 column 1 (char 0)"),
    );
    list(&api, "files-nosuch", Some(&json!({})))
        .await
        .assert_problem(404, "object-not-found", None);
    // Another user's session is not theirs to list.
    send(
        &api,
        signed_request(
            Method::GET,
            "/session/files-a/files",
            Some(&json!({})),
            &DOMAIN_ADMIN,
        ),
    )
    .await
    .assert_problem(404, "object-not-found", None);

    // The agent vanishes: every route answers the reference's agent error, none hangs.
    manager.agent.cancel();
    wait_agents_gone(&api, PATIENCE).await;
    for answer in [
        list(&api, "files-a", Some(&json!({}))).await,
        upload(&api, "files-a", &[("a.txt", b"x")]).await,
        post(&api, "/session/files-a/download", &json!({"files": ["a"]})).await,
        post(
            &api,
            "/session/files-a/download_single",
            &json!({"file": "a"}),
        )
        .await,
    ] {
        assert_agent_timeout(&answer);
    }
}
