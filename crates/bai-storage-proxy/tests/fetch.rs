//! `folder/file/fetch` against a stand-in storage proxy (an HTTP server of the test's own: the
//! real proxy needs storage volumes this machine does not have): the request's path, token and
//! body, a file streamed back in chunks, and the two kinds of refusal.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use bai_etcd_store::shared_config::StorageProxy;
use bai_storage_proxy::{AUTH_TOKEN_HEADER, StorageError, StorageProxies};
use indexmap::IndexMap;
use serde_json::{Value, json};

type Seen = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// Serves `folder/file/fetch` under `/api`: `task/ok.log` as three chunks, `missing.log` as a
/// JSON 404, `broken.log` as a plain 500. Returns the proxy's manager_api URL.
async fn stand_in(seen: Seen) -> String {
    let app = Router::new().route(
        "/api/folder/file/fetch",
        post(move |headers: HeaderMap, body: String| {
            let seen = Arc::clone(&seen);
            async move {
                let body: Value = serde_json::from_str(&body).expect("JSON body");
                let token = headers
                    .get(AUTH_TOKEN_HEADER)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned);
                seen.lock().expect("lock").push((token, body.clone()));
                let response: Response = match body["relpath"].as_str() {
                    Some("task/ok.log") => {
                        let chunks = ["line 1\n", "line 2\n", "done\n"]
                            .map(|chunk| Ok::<_, std::io::Error>(chunk.as_bytes().to_vec()));
                        Body::from_stream(futures_util::stream::iter(chunks)).into_response()
                    }
                    Some("missing.log") => (
                        StatusCode::NOT_FOUND,
                        [("content-type", "application/json")],
                        json!({"msg": "No such file", "path": "missing.log"}).to_string(),
                    )
                        .into_response(),
                    _ => (StatusCode::INTERNAL_SERVER_ERROR, "boom").into_response(),
                };
                response
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/api/")
}

fn proxies(manager_api: &str) -> StorageProxies {
    let mut config = IndexMap::new();
    config.insert(
        "local".to_owned(),
        StorageProxy {
            client_api: "http://127.0.0.1:1/".to_owned(),
            manager_api: manager_api.to_owned(),
            secret: "s3cret".to_owned(),
            ssl_verify: true,
            sftp_scaling_groups: None,
        },
    );
    StorageProxies::new(&config).expect("clients")
}

#[tokio::test]
async fn a_file_is_fetched_in_chunks_with_the_proxy_token() {
    let seen = Seen::default();
    let proxies = proxies(&stand_in(Arc::clone(&seen)).await);
    let mut file = proxies
        .fetch_file("local:volume1", "user:abc/0123", "task/ok.log")
        .await
        .expect("fetch");
    let mut text = Vec::new();
    while let Some(chunk) = file.next_chunk().await.expect("chunk") {
        text.extend_from_slice(&chunk);
    }
    assert_eq!(text, b"line 1\nline 2\ndone\n");
    let seen = seen.lock().expect("lock").clone();
    assert_eq!(
        seen,
        vec![(
            Some("s3cret".to_owned()),
            json!({"volume": "volume1", "vfid": "user:abc/0123", "relpath": "task/ok.log"})
        )]
    );
}

#[tokio::test]
async fn refusals_are_read_as_the_reference_reads_them() {
    let proxies = proxies(&stand_in(Seen::default()).await);
    match proxies.fetch_file("local:v", "f", "missing.log").await {
        Err(StorageError::Rejected {
            status, msg, data, ..
        }) => {
            assert_eq!(status, 404);
            assert_eq!(msg.as_deref(), Some("No such file"));
            assert_eq!(data, json!({"path": "missing.log"}));
        }
        other => panic!("expected a JSON refusal, got {other:?}"),
    }
    match proxies.fetch_file("local:v", "f", "broken.log").await {
        Err(StorageError::RejectedPlain { status, reason, .. }) => {
            assert_eq!((status, reason.as_str()), (500, "Internal Server Error"));
        }
        other => panic!("expected a plain refusal, got {other:?}"),
    }
    assert!(matches!(
        proxies.fetch_file("elsewhere:v", "f", "x").await,
        Err(StorageError::UnknownProxy(name)) if name == "elsewhere"
    ));
}
