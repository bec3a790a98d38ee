//! Scans of Harbor registries. Harbor (a dozen services around PostgreSQL and Redis) cannot run
//! here, so an in-test HTTP server answers the endpoints the scanner uses, as Harbor does: for
//! Harbor 2 the project repositories and artifacts lists of `/api/v2.0` (HTTP Basic, `Link` pages,
//! repository names with a slash encoded twice) and the registry API under `/v2/` (bearer tokens
//! from `/service/token`), serving manifests and config blobs built here; for Harbor 1 the
//! `/api/projects` and `/api/repositories` lists and the registry API.

use std::collections::{BTreeMap, HashMap};

use crate::support::*;
use bai_etcd_store::shared_config::ContainerRegistry;
use bai_registry_scanner::testing::{kernel_labels, sha256_digest};
use bai_registry_scanner::{Outcome, ScanOptions, ScanTarget, scan};
use serde_json::{Value, json};

const NAME: &str = "harbor";
const BASIC: &str = "Basic c2Nhbm5lcjpzM2NyZXQ="; // scanner:s3cret
const TOKEN: &str = "harbor-issued-token";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Content-addressed manifests and blobs of the fake registry: digest -> (media type, bytes).
#[derive(Default)]
struct Contents(HashMap<String, (String, Vec<u8>)>);

impl Contents {
    fn add(&mut self, media_type: &str, bytes: Vec<u8>) -> (String, usize) {
        let digest = sha256_digest(&bytes);
        let size = bytes.len();
        self.0
            .insert(digest.clone(), (media_type.to_owned(), bytes));
        (digest, size)
    }

    /// A config blob with `labels`, a layer and a manifest of `media_type`; returns the manifest's
    /// digest and size.
    fn image(
        &mut self,
        media_type: &str,
        architecture: &str,
        labels: &BTreeMap<String, String>,
    ) -> (String, usize) {
        let config =
            json!({"architecture": architecture, "os": "linux", "config": {"Labels": labels}});
        let (config_digest, config_size) = self.add(
            "application/octet-stream",
            serde_json::to_vec(&config).unwrap(),
        );
        let (layer_digest, layer_size) = self.add(
            "application/octet-stream",
            format!("layer {architecture}").into_bytes(),
        );
        let manifest = json!({
            "schemaVersion": 2, "mediaType": media_type,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer_size}],
        });
        self.add(media_type, serde_json::to_vec(&manifest).unwrap())
    }
}

fn artifact(digest: &str, kind: &str, tags: &[&str]) -> Value {
    let tags: Vec<Value> = tags.iter().map(|tag| json!({"name": tag})).collect();
    json!({"digest": digest, "type": kind, "tags": if tags.is_empty() { Value::Null } else { Value::Array(tags) }})
}

fn harbor_registry(url: &str, projects: &[&str]) -> ContainerRegistry {
    ContainerRegistry {
        url: url.to_owned(),
        kind: "harbor2".to_owned(),
        username: Some("scanner".to_owned()),
        password: Some("s3cret".to_owned()),
        projects: projects
            .iter()
            .map(|project| (*project).to_owned())
            .collect(),
        ssl_verify: true,
    }
}

#[tokio::test]
async fn every_tag_of_every_artifact_in_the_projects_is_catalogued() {
    let mut contents = Contents::default();
    let gpu = {
        let mut labels = kernel_labels();
        labels.insert("ai.backend.accelerators".into(), "cuda".into());
        labels
    };
    let (amd64, amd64_size) = contents.image(OCI_MANIFEST, "amd64", &kernel_labels());
    let (arm64, arm64_size) = contents.image(OCI_MANIFEST, "arm64", &gpu);
    let (attestation, attestation_size) = contents.image(OCI_MANIFEST, "unknown", &BTreeMap::new());
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": amd64, "size": amd64_size,
         "platform": {"architecture": "amd64", "os": "linux"}},
        {"mediaType": OCI_MANIFEST, "digest": arm64, "size": arm64_size,
         "platform": {"architecture": "arm64", "os": "linux"}},
        {"mediaType": OCI_MANIFEST, "digest": attestation, "size": attestation_size,
         "platform": {"architecture": "unknown", "os": "unknown"},
         "annotations": {"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": amd64}},
    ]});
    let (python_index, _) = contents.add(OCI_INDEX, serde_json::to_vec(&index).unwrap());
    let (python_38, _) = contents.image(OCI_MANIFEST, "amd64", &kernel_labels());
    // Single-platform Docker manifest of an arm64 build whose tag says nothing about arm64.
    let (pytorch, _) = contents.image(DOCKER_MANIFEST, "arm64", &gpu);
    let (chart, _) = contents.image(OCI_MANIFEST, "amd64", &BTreeMap::new());

    let contents = contents.0;
    let index_digest = python_index.clone();
    let server = TinyServer::start(move |request| {
        let path = request.path();
        if path == "/service/token" {
            return if request.headers.get("authorization").map(String::as_str) == Some(BASIC) {
                Response::json(200, &json!({"token": TOKEN, "expires_in": 1800}))
            } else {
                Response::json(401, &json!({"errors": [{"code": "UNAUTHORIZED"}]}))
            };
        }
        if let Some(reference) = path.strip_prefix("/v2/") {
            if request.headers.get("authorization") != Some(&format!("Bearer {TOKEN}")) {
                let host = request.headers.get("host").cloned().unwrap_or_default();
                let mut refused =
                    Response::json(401, &json!({"errors": [{"code": "UNAUTHORIZED"}]}));
                refused.headers.push((
                    "WWW-Authenticate".into(),
                    format!(
                        r#"Bearer realm="http://{host}/service/token",service="harbor-registry""#
                    ),
                ));
                return refused;
            }
            let digest = reference.rsplit('/').next().unwrap_or_default();
            return match contents.get(digest) {
                Some((media_type, bytes)) => Response {
                    status: 200,
                    headers: vec![
                        ("Content-Type".into(), media_type.clone()),
                        ("Docker-Content-Digest".into(), digest.to_owned()),
                    ],
                    body: bytes.clone(),
                },
                None => Response::json(404, &json!({"errors": [{"code": "MANIFEST_UNKNOWN"}]})),
            };
        }
        if request.headers.get("authorization").map(String::as_str) != Some(BASIC) {
            return Response::json(
                401,
                &json!({"errors": [{"code": "UNAUTHORIZED", "message": "unauthorized"}]}),
            );
        }
        let page = request
            .query("page")
            .first()
            .cloned()
            .unwrap_or_else(|| "1".into());
        let next = |path: &str| {
            (
                "Link".to_owned(),
                format!(r#"<{path}?page=2&page_size=30>; rel="next""#),
            )
        };
        let list = |items: Value| Response::json(200, &items);
        match (path, page.as_str()) {
            ("/api/v2.0/projects/stable/repositories", "1") => {
                let mut response = list(json!([{"name": "stable/python"}]));
                response.headers.push(next(path));
                response
            }
            ("/api/v2.0/projects/stable/repositories", "2") => {
                list(json!([{"name": "stable/ngc/pytorch"}]))
            }
            ("/api/v2.0/projects/community/repositories", _) => {
                list(json!([{"name": "community/charts"}]))
            }
            ("/api/v2.0/projects/stable/repositories/python/artifacts", "1") => {
                let mut response = list(json!([
                    artifact(&python_index, "IMAGE", &["3.9", "3.9-ubuntu20.04"]),
                    artifact(&amd64, "IMAGE", &[]),
                ]));
                response.headers.push(next(path));
                response
            }
            ("/api/v2.0/projects/stable/repositories/python/artifacts", "2") => {
                list(json!([artifact(&python_38, "IMAGE", &["3.8"])]))
            }
            ("/api/v2.0/projects/stable/repositories/ngc%252Fpytorch/artifacts", _) => {
                list(json!([artifact(&pytorch, "IMAGE", &["2.0"])]))
            }
            ("/api/v2.0/projects/community/repositories/charts/artifacts", _) => {
                list(json!([artifact(&chart, "CHART", &["1.0"])]))
            }
            _ => Response::json(
                404,
                &json!({"errors": [{"code": "NOT_FOUND", "message": path}]}),
            ),
        }
    })
    .await;

    let db = database("scan_harbor").await;
    let registries = registries(NAME, harbor_registry(&server.url, &["stable", "community"]));
    let summary = scan(
        &db.connection,
        &registries,
        &ScanTarget::Registry(NAME.to_owned()),
        &ScanOptions::default(),
        &(),
    )
    .await
    .expect("scan");
    let lines: Vec<String> = summary
        .items
        .iter()
        .map(|item| match &item.outcome {
            Outcome::Skipped(reason) => format!("{item}: skipped: {reason}"),
            Outcome::Failed(reason) => format!("{item}: failed: {reason}"),
            outcome => format!("{item}: {outcome:?}"),
        })
        .collect();
    assert_eq!(
        lines,
        [
            "harbor/community/charts:1.0: skipped: a CHART artifact, not a container image",
            "harbor/stable/ngc/pytorch:2.0 (aarch64): Added",
            "harbor/stable/python:3.8 (x86_64): Added",
            "harbor/stable/python:3.9 (aarch64): Added",
            "harbor/stable/python:3.9 (x86_64): Added",
            "harbor/stable/python:3.9-ubuntu20.04 (aarch64): Added",
            "harbor/stable/python:3.9-ubuntu20.04 (x86_64): Added",
        ]
    );
    // The index of the two 3.9 tags was read once, with the token: the scan met the registry API's
    // challenge once, before reading repositories.
    let index_reads = server
        .requests()
        .iter()
        .filter(|request| request.path().ends_with(&index_digest))
        .count();
    assert_eq!(index_reads, 1);

    let requests_before = server.requests().len();
    let again = scan(
        &db.connection,
        &registries,
        &ScanTarget::All,
        &ScanOptions::default(),
        &(),
    )
    .await
    .expect("second scan");
    assert_eq!(
        (
            again.added(),
            again.updated(),
            again.unchanged(),
            again.skipped(),
            again.failed()
        ),
        (0, 0, 6, 1, 0)
    );
    // The catalogue knows the labels of every config digest it saved: no config blob is read
    // again (the chart's config, never saved, is).
    let blobs_read: Vec<String> = server.requests()[requests_before..]
        .iter()
        .filter(|request| request.path().contains("/blobs/"))
        .map(|request| request.path().to_owned())
        .collect();
    assert_eq!(blobs_read, Vec::<String>::new());

    let no_projects = registries_without_projects(&server.url);
    let summary = scan(
        &db.connection,
        &no_projects,
        &ScanTarget::All,
        &ScanOptions::default(),
        &(),
    )
    .await
    .expect("scan");
    assert_eq!(
        summary.items[0].outcome,
        Outcome::Failed(
            "a harbor2 registry needs its projects in etcd config/docker/registry/harbor/project"
                .to_owned()
        )
    );
}

fn registries_without_projects(url: &str) -> indexmap::IndexMap<String, ContainerRegistry> {
    registries(NAME, harbor_registry(url, &[]))
}

#[tokio::test]
async fn a_failing_project_is_reported_and_the_others_are_scanned() {
    let mut contents = Contents::default();
    let (python, _) = contents.image(OCI_MANIFEST, "amd64", &kernel_labels());
    let contents = contents.0;
    let server = TinyServer::start(move |request| {
        let path = request.path();
        if let Some(reference) = path.strip_prefix("/v2/") {
            let digest = reference.rsplit('/').next().unwrap_or_default();
            return match contents.get(digest) {
                Some((media_type, bytes)) => Response {
                    status: 200,
                    headers: vec![("Content-Type".into(), media_type.clone())],
                    body: bytes.clone(),
                },
                None => Response::json(404, &json!({})),
            };
        }
        match path {
            "/api/v2.0/projects/stable/repositories" => {
                Response::json(200, &json!([{"name": "stable/python"}]))
            }
            "/api/v2.0/projects/stable/repositories/python/artifacts" => {
                Response::json(200, &json!([artifact(&python, "IMAGE", &["3.9"])]))
            }
            _ => Response::json(
                403,
                &json!({"errors": [{"code": "FORBIDDEN", "message": "forbidden"}]}),
            ),
        }
    })
    .await;
    let db = database("scan_harbor_fail").await;
    let registries = registries(NAME, harbor_registry(&server.url, &["secret", "stable"]));
    let summary = scan(
        &db.connection,
        &registries,
        &ScanTarget::All,
        &ScanOptions::default(),
        &(),
    )
    .await
    .expect("scan");
    let text: Vec<String> = summary
        .items
        .iter()
        .map(|item| format!("{item}: {:?}", item.outcome))
        .collect();
    assert_eq!(
        text,
        [
            format!(
                "harbor: Failed(\"cannot list the repositories of project \\\"secret\\\": GET {}/api/v2.0/projects/secret/repositories?page_size=100: HTTP 403 Forbidden: FORBIDDEN: forbidden\")",
                server.url
            ),
            "harbor/stable/python:3.9 (x86_64): Added".to_owned(),
        ]
    );
}

#[tokio::test]
async fn harbor_1_projects_are_found_by_name_and_read_through_the_registry_api() {
    let mut contents = Contents::default();
    let (manifest, _) = contents.image(DOCKER_MANIFEST, "amd64", &kernel_labels());
    let contents = contents.0;
    let server = TinyServer::start(move |request| {
        if request.headers.get("authorization").map(String::as_str) != Some(BASIC) {
            return Response::json(401, &json!({"errors": [{"code": "UNAUTHORIZED"}]}));
        }
        let page = request
            .query("page")
            .first()
            .cloned()
            .unwrap_or_else(|| "1".into());
        let project_id = request.query("project_id").first().cloned();
        match (request.path(), page.as_str(), project_id.as_deref()) {
            ("/api/projects", "1", None) => {
                let mut response =
                    Response::json(200, &json!([{"name": "library", "project_id": 1}]));
                response.headers.push((
                    "Link".into(),
                    r#"</api/projects?page=2&page_size=100>; rel="next""#.into(),
                ));
                response
            }
            ("/api/projects", "2", None) => {
                Response::json(200, &json!([{"name": "stable", "project_id": 2}]))
            }
            ("/api/repositories", _, Some("2")) => {
                Response::json(200, &json!([{"name": "stable/python"}]))
            }
            ("/v2/stable/python/tags/list", _, None) => {
                Response::json(200, &json!({"name": "stable/python", "tags": ["3.9"]}))
            }
            ("/v2/stable/python/manifests/3.9", _, None) => {
                let (media_type, bytes) = &contents[&manifest];
                Response {
                    status: 200,
                    headers: vec![("Content-Type".into(), media_type.clone())],
                    body: bytes.clone(),
                }
            }
            (path, _, None) if path.starts_with("/v2/stable/python/blobs/") => {
                let digest = path.rsplit('/').next().unwrap_or_default();
                Response {
                    status: 200,
                    headers: Vec::new(),
                    body: contents[digest].1.clone(),
                }
            }
            (path, _, _) => Response::json(
                404,
                &json!({"errors": [{"code": "NOT_FOUND", "message": path}]}),
            ),
        }
    })
    .await;
    let db = database("scan_harbor1").await;
    let mut registry = harbor_registry(&server.url, &["stable"]);
    registry.kind = "harbor".to_owned();
    let summary = scan(
        &db.connection,
        &registries(NAME, registry),
        &ScanTarget::All,
        &ScanOptions::default(),
        &(),
    )
    .await
    .expect("scan");
    let text: Vec<String> = summary
        .items
        .iter()
        .map(|item| format!("{item}: {:?}", item.outcome))
        .collect();
    assert_eq!(text, ["harbor/stable/python:3.9 (x86_64): Added"]);
    assert!(
        server
            .requests()
            .iter()
            .all(|request| request.query("project_id") != ["1"]),
        "only the configured projects' repositories are listed"
    );
}
