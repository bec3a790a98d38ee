//! Test images without a Docker engine: [`Pusher`] uploads blobs, manifests and manifest lists /
//! OCI indexes into a registry through the Docker Registry v2 HTTP API (the same requests `docker
//! push` makes), and [`RegistryProcess`] runs a throwaway CNCF distribution registry (Debian's
//! `docker-registry`) for a test.
//!
//! An image here is what the scanner reads: a config blob carrying the Backend.AI labels, one small
//! layer, and a manifest per platform; a multi-arch image adds a Docker manifest list or an OCI
//! index that names them. [`Breakage`] makes an image the registry accepts but a scanner must
//! reject, so that tests can check that one bad image spoils nothing else.

use std::collections::{BTreeMap, HashMap};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::{CONTENT_TYPE, HeaderMap, LOCATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (multi-arch).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (multi-arch).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Which family of media types an image uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaTypes {
    /// Docker schema 2 manifests and manifest lists.
    Docker,
    /// OCI manifests and indexes.
    Oci,
}

/// How the tag names the image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// The tag names the platform's manifest itself (exactly one platform).
    SingleArch,
    /// The tag names a manifest list / OCI index of every platform (one or more).
    MultiArch,
}

/// Something wrong with an image that the registry still accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Breakage {
    /// The config blob of every platform is not JSON.
    ConfigNotJson,
}

/// One platform of a test image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestPlatform {
    /// As registries spell it (`amd64`, `arm64`, ... or `unknown` for an attestation entry).
    pub architecture: String,
    pub os: String,
    /// The image labels (`config.Labels` of the config blob).
    pub labels: BTreeMap<String, String>,
    /// Annotations of this platform's entry in a manifest list / OCI index.
    pub annotations: BTreeMap<String, String>,
}

impl TestPlatform {
    /// A `linux` platform with `labels` and no annotations.
    pub fn linux(architecture: &str, labels: BTreeMap<String, String>) -> TestPlatform {
        TestPlatform {
            architecture: architecture.to_owned(),
            os: "linux".to_owned(),
            labels,
            annotations: BTreeMap::new(),
        }
    }
}

/// An image to push as `repository:tag`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestImage {
    pub repository: String,
    pub tag: String,
    pub media_types: MediaTypes,
    pub shape: Shape,
    pub platforms: Vec<TestPlatform>,
    pub breakage: Option<Breakage>,
}

impl TestImage {
    /// A well-formed image with Docker media types.
    pub fn new(repository: &str, tag: &str, shape: Shape, platforms: Vec<TestPlatform>) -> Self {
        TestImage {
            repository: repository.to_owned(),
            tag: tag.to_owned(),
            media_types: MediaTypes::Docker,
            shape,
            platforms,
            breakage: None,
        }
    }

    pub fn with_media_types(mut self, media_types: MediaTypes) -> Self {
        self.media_types = media_types;
        self
    }

    pub fn broken(mut self, breakage: Breakage) -> Self {
        self.breakage = Some(breakage);
        self
    }
}

/// The labels of a valid Backend.AI kernel image (`ai.backend.kernelspec` 1 and the other required
/// labels), with resource minimums and service ports as real images carry them.
pub fn kernel_labels() -> BTreeMap<String, String> {
    [
        ("ai.backend.kernelspec", "1"),
        ("ai.backend.features", "batch query uid-match user-input"),
        ("ai.backend.base-distro", "ubuntu20.04"),
        ("ai.backend.runtime-type", "python"),
        ("ai.backend.runtime-path", "/usr/bin/python3"),
        ("ai.backend.resource.min.cpu", "1"),
        ("ai.backend.resource.min.mem", "256m"),
        (
            "ai.backend.service-ports",
            "ipython:pty:3000,jupyter:http:8081",
        ),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value.to_owned()))
    .collect()
}

/// What was pushed, to compare a scan with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushedImage {
    pub repository: String,
    pub tag: String,
    /// The digest of the manifest (or list / index) the tag names.
    pub digest: String,
    pub media_type: &'static str,
    pub platforms: Vec<PushedPlatform>,
}

/// One platform of a pushed image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PushedPlatform {
    pub architecture: String,
    pub manifest_digest: String,
    pub config_digest: String,
    /// The layers' and the config's sizes, what `images.size_bytes` holds.
    pub size_bytes: i64,
}

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("{repository}:{tag}: {reason}")]
    InvalidImage {
        repository: String,
        tag: String,
        reason: &'static str,
    },
    #[error("{what}: {method} {url}: {source}")]
    Http {
        what: String,
        method: Method,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{what}: {method} {url} answered {status}: {body}")]
    Status {
        what: String,
        method: Method,
        url: String,
        status: StatusCode,
        body: String,
    },
    #[error("{what}: {reason}")]
    Auth { what: String, reason: String },
    #[error("{what}: {reason}")]
    Protocol { what: String, reason: &'static str },
}

/// Pushes test images into the registry at one base URL (`http://127.0.0.1:8130`), anonymously,
/// with Basic credentials, or with a bearer token it fetches when the registry asks for one.
#[derive(Debug)]
pub struct Pusher {
    client: reqwest::Client,
    base: String,
    credentials: Option<(String, String)>,
    /// Bearer tokens by repository, once a token server gave one.
    tokens: Mutex<HashMap<String, String>>,
}

impl Pusher {
    pub fn new(base_url: &str) -> Pusher {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("an HTTP client with a timeout and no redirects builds");
        Pusher {
            client,
            base: base_url.trim_end_matches('/').to_owned(),
            credentials: None,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Sends these credentials as Basic auth, and to the token server when asked for a token.
    pub fn with_credentials(mut self, username: &str, password: &str) -> Pusher {
        self.credentials = Some((username.to_owned(), password.to_owned()));
        self
    }

    /// Uploads every blob and manifest of `image` and tags it.
    pub async fn push(&self, image: &TestImage) -> Result<PushedImage, PushError> {
        let invalid = |reason| PushError::InvalidImage {
            repository: image.repository.clone(),
            tag: image.tag.clone(),
            reason,
        };
        if image.platforms.is_empty() {
            return Err(invalid("an image needs at least one platform"));
        }
        if image.shape == Shape::SingleArch && image.platforms.len() != 1 {
            return Err(invalid("a single-arch image has exactly one platform"));
        }
        let (manifest_type, config_type, layer_type, list_type) = match image.media_types {
            MediaTypes::Docker => (
                DOCKER_MANIFEST,
                DOCKER_CONFIG,
                DOCKER_LAYER,
                DOCKER_MANIFEST_LIST,
            ),
            MediaTypes::Oci => (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER, OCI_INDEX),
        };
        let mut pushed = Vec::with_capacity(image.platforms.len());
        let mut entries = Vec::with_capacity(image.platforms.len());
        for platform in &image.platforms {
            // Layers are shared by every image of one architecture, as base layers are in real
            // registries; the config makes each image distinct.
            let layer = format!("test layer for {}/{}", platform.os, platform.architecture);
            let layer_digest = self
                .upload_blob(&image.repository, layer.as_bytes())
                .await?;
            let config = match image.breakage {
                Some(Breakage::ConfigNotJson) => {
                    format!("not JSON: {}:{}", image.repository, image.tag).into_bytes()
                }
                None => config_blob(image, platform, &layer_digest),
            };
            let config_digest = self.upload_blob(&image.repository, &config).await?;
            let manifest = serde_json::to_vec(&json!({
                "schemaVersion": 2,
                "mediaType": manifest_type,
                "config": {
                    "mediaType": config_type,
                    "size": config.len(),
                    "digest": config_digest,
                },
                "layers": [{
                    "mediaType": layer_type,
                    "size": layer.len(),
                    "digest": layer_digest,
                }],
            }))
            .expect("a JSON value serialises");
            let reference = match image.shape {
                Shape::SingleArch => image.tag.clone(),
                Shape::MultiArch => sha256_digest(&manifest),
            };
            let manifest_digest = self
                .put_manifest(&image.repository, &reference, manifest_type, &manifest)
                .await?;
            let mut entry = json!({
                "mediaType": manifest_type,
                "size": manifest.len(),
                "digest": manifest_digest,
                "platform": {"architecture": platform.architecture, "os": platform.os},
            });
            if !platform.annotations.is_empty() {
                entry["annotations"] = json!(platform.annotations);
            }
            entries.push(entry);
            pushed.push(PushedPlatform {
                architecture: platform.architecture.clone(),
                manifest_digest,
                config_digest,
                size_bytes: i64::try_from(layer.len() + config.len()).unwrap_or(i64::MAX),
            });
        }
        let (digest, media_type) = match image.shape {
            Shape::SingleArch => (pushed[0].manifest_digest.clone(), manifest_type),
            Shape::MultiArch => {
                let list = serde_json::to_vec(&json!({
                    "schemaVersion": 2,
                    "mediaType": list_type,
                    "manifests": entries,
                }))
                .expect("a JSON value serialises");
                let digest = self
                    .put_manifest(&image.repository, &image.tag, list_type, &list)
                    .await?;
                (digest, list_type)
            }
        };
        Ok(PushedImage {
            repository: image.repository.clone(),
            tag: image.tag.clone(),
            digest,
            media_type,
            platforms: pushed,
        })
    }

    /// Stores `bytes` as a blob of `repository` (unless it is there already); returns its digest.
    pub async fn upload_blob(&self, repository: &str, bytes: &[u8]) -> Result<String, PushError> {
        let digest = sha256_digest(bytes);
        let what = format!("uploading blob {digest} to {repository}");
        let blob_url = format!("{}/v2/{repository}/blobs/{digest}", self.base);
        let head = self
            .send(repository, &what, Method::HEAD, &blob_url, None)
            .await?;
        if head.status() == StatusCode::OK {
            return Ok(digest);
        }
        let start_url = format!("{}/v2/{repository}/blobs/uploads/", self.base);
        let started = self
            .send(repository, &what, Method::POST, &start_url, None)
            .await?;
        let started = expect_status(
            started,
            StatusCode::ACCEPTED,
            &what,
            Method::POST,
            &start_url,
        )
        .await?;
        let location = header(started.headers(), LOCATION).ok_or_else(|| PushError::Protocol {
            what: what.clone(),
            reason: "the registry answered the upload start without a Location",
        })?;
        // Location may be relative and usually carries the upload state in its query already.
        let mut upload_url = if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location
        };
        upload_url.push(if upload_url.contains('?') { '&' } else { '?' });
        upload_url.push_str("digest=");
        upload_url.push_str(&digest);
        let body = Some(("application/octet-stream", bytes.to_vec()));
        let done = self
            .send(repository, &what, Method::PUT, &upload_url, body)
            .await?;
        expect_status(done, StatusCode::CREATED, &what, Method::PUT, &upload_url).await?;
        Ok(digest)
    }

    /// Stores `manifest` as `repository:reference` (a tag or a digest) with `media_type`;
    /// returns the digest the registry gives it.
    pub async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        manifest: &[u8],
    ) -> Result<String, PushError> {
        let what = format!("pushing manifest {repository}:{reference} ({media_type})");
        let url = format!("{}/v2/{repository}/manifests/{reference}", self.base);
        let body = Some((media_type, manifest.to_vec()));
        let response = self
            .send(repository, &what, Method::PUT, &url, body)
            .await?;
        let response =
            expect_status(response, StatusCode::CREATED, &what, Method::PUT, &url).await?;
        Ok(header(response.headers(), "docker-content-digest")
            .unwrap_or_else(|| sha256_digest(manifest)))
    }

    /// Sends one request, answering one authentication challenge (Basic, or Bearer with a token
    /// for pull and push on `repository`) if the registry makes it.
    async fn send(
        &self,
        repository: &str,
        what: &str,
        method: Method,
        url: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<reqwest::Response, PushError> {
        let token = self.token_for(repository);
        let response = self
            .request(what, &method, url, body.clone(), token.as_deref())
            .await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return Ok(response);
        }
        let challenge = header(response.headers(), WWW_AUTHENTICATE).unwrap_or_default();
        let Some(parameters) = challenge.strip_prefix("Bearer ") else {
            return Ok(response);
        };
        let token = self.fetch_token(repository, what, parameters).await?;
        self.request(what, &method, url, body, Some(&token)).await
    }

    async fn request(
        &self,
        what: &str,
        method: &Method,
        url: &str,
        body: Option<(&str, Vec<u8>)>,
        token: Option<&str>,
    ) -> Result<reqwest::Response, PushError> {
        let mut request = self.client.request(method.clone(), url);
        request = match (token, &self.credentials) {
            (Some(token), _) => request.bearer_auth(token),
            (None, Some((username, password))) => request.basic_auth(username, Some(password)),
            (None, None) => request,
        };
        if let Some((content_type, bytes)) = body {
            request = request.header(CONTENT_TYPE, content_type).body(bytes);
        }
        request.send().await.map_err(|source| PushError::Http {
            what: what.to_owned(),
            method: method.clone(),
            url: url.to_owned(),
            source,
        })
    }

    fn token_for(&self, repository: &str) -> Option<String> {
        self.tokens
            .lock()
            .ok()
            .and_then(|tokens| tokens.get(repository).cloned())
    }

    /// Asks the challenge's realm for a token with pull and push access to `repository`.
    async fn fetch_token(
        &self,
        repository: &str,
        what: &str,
        challenge: &str,
    ) -> Result<String, PushError> {
        let auth_error = |reason: String| PushError::Auth {
            what: what.to_owned(),
            reason,
        };
        let parameter = |name: &str| {
            challenge.split(',').find_map(|pair| {
                let (key, value) = pair.trim().split_once('=')?;
                (key == name).then(|| value.trim_matches('"').to_owned())
            })
        };
        let realm = parameter("realm")
            .ok_or_else(|| auth_error(format!("bearer challenge without realm: {challenge}")))?;
        let mut query = vec![("scope", format!("repository:{repository}:pull,push"))];
        if let Some(service) = parameter("service") {
            query.push(("service", service));
        }
        let mut request = self.client.get(&realm).query(&query);
        if let Some((username, password)) = &self.credentials {
            request = request.basic_auth(username, Some(password));
        }
        let response = request.send().await.map_err(|source| PushError::Http {
            what: what.to_owned(),
            method: Method::GET,
            url: realm.clone(),
            source,
        })?;
        let response = expect_status(response, StatusCode::OK, what, Method::GET, &realm).await?;
        let answer: Value = response.json().await.map_err(|source| PushError::Http {
            what: what.to_owned(),
            method: Method::GET,
            url: realm.clone(),
            source,
        })?;
        let token = ["token", "access_token"]
            .iter()
            .find_map(|key| answer.get(key).and_then(Value::as_str))
            .ok_or_else(|| auth_error(format!("the token server {realm} sent no token")))?
            .to_owned();
        if let Ok(mut tokens) = self.tokens.lock() {
            tokens.insert(repository.to_owned(), token.clone());
        }
        Ok(token)
    }
}

/// `sha256:<hex>` of `bytes`, a content digest as registries name blobs and manifests.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let hex: String = hash.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("sha256:{hex}")
}

fn config_blob(image: &TestImage, platform: &TestPlatform, layer_digest: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "config": {"Labels": platform.labels},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created_by": format!("push-test-images {}:{}", image.repository, image.tag)}],
    }))
    .expect("a JSON value serialises")
}

fn header(headers: &HeaderMap, name: impl reqwest::header::AsHeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

async fn expect_status(
    response: reqwest::Response,
    expected: StatusCode,
    what: &str,
    method: Method,
    url: &str,
) -> Result<reqwest::Response, PushError> {
    if response.status() == expected {
        return Ok(response);
    }
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    Err(PushError::Status {
        what: what.to_owned(),
        method,
        url: url.to_owned(),
        status,
        body: body.chars().take(500).collect(),
    })
}

/// A `docker-registry` (CNCF distribution 2.x) process on a free port of 127.0.0.1 with its own
/// configuration and storage in a temporary directory; killed and removed when dropped.
#[derive(Debug)]
pub struct RegistryProcess {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl RegistryProcess {
    /// The Debian package's binary.
    pub const BINARY: &str = "/usr/bin/docker-registry";

    /// A registry without authentication.
    pub fn spawn() -> RegistryProcess {
        RegistryProcess::spawn_with_auth("")
    }

    /// A registry whose configuration has `auth_yaml` (an `auth:` section, or empty for none).
    /// Panics with a hint when the binary is missing or the registry does not answer: a test that
    /// needs it must fail, never skip.
    pub fn spawn_with_auth(auth_yaml: &str) -> RegistryProcess {
        RegistryProcess::spawn_prepared(auth_yaml, |_| {})
    }

    /// As [`spawn_with_auth`](Self::spawn_with_auth), after `prepare` wrote what the auth section
    /// names (an htpasswd file, a token certificate) into the registry's directory, which is the
    /// registry's working directory, so relative paths in `auth_yaml` point into it.
    pub fn spawn_prepared(auth_yaml: &str, prepare: impl FnOnce(&Path)) -> RegistryProcess {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("bai-test-registry-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(dir.join("storage"))
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", dir.display()));
        prepare(&dir);
        let port = free_port();
        let config = registry_config(&dir.join("storage"), port, auth_yaml);
        let config_path = dir.join("config.yml");
        std::fs::write(&config_path, config)
            .unwrap_or_else(|error| panic!("cannot write {}: {error}", config_path.display()));
        let log = std::fs::File::create(dir.join("registry.log"))
            .unwrap_or_else(|error| panic!("cannot create the registry log: {error}"));
        let log_err = log
            .try_clone()
            .unwrap_or_else(|error| panic!("cannot share the registry log: {error}"));
        let child = Command::new(Self::BINARY)
            .arg("serve")
            .arg(&config_path)
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|error| {
                panic!(
                    "cannot start {} ({error}); install the Debian package docker-registry (cargo xtask halfstack up does)",
                    Self::BINARY
                )
            });
        let mut registry = RegistryProcess { child, dir, port };
        registry.wait_until_ready();
        registry
    }

    /// `http://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the configuration, the storage and `registry.log`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("docker-registry exited with {status}: {}", self.log_tail());
            }
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "docker-registry did not listen on 127.0.0.1:{} within 15 s: {}",
            self.port,
            self.log_tail()
        );
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        // Cleanup must not hide the test's own failure, so its errors are ignored.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port nobody listens on right now (the OS picks it; the registry binds it right after).
fn free_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap_or_else(|error| panic!("cannot find a free port: {error}"))
}

/// A distribution 2.x configuration: filesystem storage, deletes allowed, only `addr`.
fn registry_config(storage: &Path, port: u16, auth_yaml: &str) -> String {
    format!(
        "version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n\
         {auth_yaml}\n",
        storage.display()
    )
}
