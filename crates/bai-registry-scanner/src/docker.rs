//! Docker Registry v2 (the CNCF distribution API, which Harbor also serves under `/v2/`): the
//! catalog and tag lists with their `Link` pagination, and what one tag holds: a manifest list or
//! OCI index of per-platform manifests, or a single schema 2 or OCI manifest, each with its config
//! blob (architecture and labels) and size.
//!
//! Unlike the reference, single-platform manifests are read (their architecture comes from the
//! config blob), index entries are dropped only when they are attestations or of an unknown
//! platform, and the manifest's media type is read with its parameters ignored.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures_util::future::join_all;
use serde::Deserialize;
use serde_json::{Map, Value};

use bai_db_models::queries::image_scan::KnownConfig;

use crate::client::{FetchError, RegistryClient, status_error};

const MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// What a tag may resolve to: every multi-platform and single-platform manifest type we read.
const ANY_MANIFEST: &str = "application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.oci.image.manifest.v1+json";
/// What a platform entry of an index may be.
const SINGLE_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.oci.image.manifest.v1+json";

/// The token scope for reading `image`.
pub(crate) fn pull_scope(image: &str) -> String {
    format!("repository:{image}:pull")
}

/// Every repository of the registry's catalog, following `Link` pages.
pub(crate) async fn catalog(
    client: &RegistryClient,
    page_size: usize,
) -> Result<Vec<String>, FetchError> {
    #[derive(Deserialize)]
    struct Catalog {
        repositories: Option<Vec<String>>,
    }
    const SCOPE: &str = "registry:catalog:*";
    let mut url = client.url(&format!("v2/_catalog?n={page_size}"));
    let mut repositories = Vec::new();
    let mut first = true;
    loop {
        let mut reply = client.get(&url, "application/json", Some(SCOPE)).await?;
        // A registry whose `catalog.maxentries` is below `n` refuses the page size
        // (PAGINATION_NUMBER_INVALID); without `n` it pages by its own maximum.
        if first && reply.status == reqwest::StatusCode::BAD_REQUEST {
            url = client.url("v2/_catalog");
            reply = client.get(&url, "application/json", Some(SCOPE)).await?;
        }
        first = false;
        if !reply.status.is_success() {
            return Err(status_error(&reply));
        }
        let page: Catalog = reply.json()?;
        repositories.extend(page.repositories.unwrap_or_default());
        match reply.next_page() {
            Some(next) => url = next,
            None => return Ok(repositories),
        }
    }
}

/// Every tag of `image`, following `Link` pages.
pub(crate) async fn tags(
    client: &RegistryClient,
    image: &str,
    page_size: usize,
) -> Result<Vec<String>, FetchError> {
    #[derive(Deserialize)]
    struct Tags {
        tags: Option<Vec<String>>,
    }
    let scope = pull_scope(image);
    let mut url = client.url(&format!("v2/{image}/tags/list?n={page_size}"));
    let mut tags = Vec::new();
    loop {
        let reply = client
            .get_ok(&url, "application/json", Some(&scope))
            .await?;
        let page: Tags = reply.json()?;
        tags.extend(page.tags.unwrap_or_default());
        match reply.next_page() {
            Some(next) => url = next,
            None => return Ok(tags),
        }
    }
}

/// What a tag (or digest) of a repository holds.
#[derive(Debug)]
pub(crate) enum Contents {
    /// The registry has no manifest for it (deleted since it was listed).
    Missing,
    /// One entry per platform; empty when an index lists only attestations or unknown platforms.
    Platforms(Vec<Platform>),
}

/// One platform's image, or why it could not be read.
#[derive(Debug)]
pub(crate) struct Platform {
    /// As the index or config blob names it (not yet normalised).
    pub(crate) architecture: String,
    pub(crate) image: Result<PlatformImage, String>,
}

/// What the catalogue stores of one platform's image.
#[derive(Clone, Debug)]
pub(crate) struct PlatformImage {
    pub(crate) config_digest: String,
    /// Σ layer sizes + config size, as the manifest gives them.
    pub(crate) size_bytes: i64,
    pub(crate) labels: Map<String, Value>,
}

/// Config blobs by digest: those the catalogue already holds the labels of, and those read during
/// this scan (tags of one build share them). A digest names one content, so neither goes stale.
#[derive(Debug, Default)]
pub(crate) struct ConfigCache(Mutex<HashMap<String, Arc<ConfigBlob>>>);

impl ConfigCache {
    /// A cache holding what the catalogue knows of each config digest.
    pub(crate) fn from_catalogue(known: Vec<KnownConfig>) -> ConfigCache {
        let blobs = known
            .into_iter()
            .map(|known| {
                let blob = ConfigBlob {
                    architecture: Some(known.architecture),
                    config: Some(ContainerConfig {
                        labels: match known.labels {
                            Value::Object(labels) => Some(labels),
                            _ => None,
                        },
                    }),
                    container_config: None,
                };
                (known.config_digest, Arc::new(blob))
            })
            .collect();
        ConfigCache(Mutex::new(blobs))
    }
}

/// The parts of an image config blob we read.
#[derive(Debug, Deserialize)]
pub(crate) struct ConfigBlob {
    architecture: Option<String>,
    config: Option<ContainerConfig>,
    container_config: Option<ContainerConfig>,
}

#[derive(Debug, Deserialize)]
struct ContainerConfig {
    #[serde(rename = "Labels")]
    labels: Option<Map<String, Value>>,
}

impl ConfigBlob {
    /// `config.Labels`, or `container_config.Labels` when those are empty (the reference's order).
    fn labels(&self) -> Map<String, Value> {
        let labels = |config: &Option<ContainerConfig>| {
            config
                .as_ref()
                .and_then(|config| config.labels.clone())
                .unwrap_or_default()
        };
        let primary = labels(&self.config);
        if primary.is_empty() {
            labels(&self.container_config)
        } else {
            primary
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: Option<u32>,
    media_type: Option<String>,
    manifests: Option<Vec<IndexEntry>>,
    config: Option<Descriptor>,
    layers: Option<Vec<Descriptor>>,
}

#[derive(Debug, Deserialize)]
struct Descriptor {
    digest: String,
    size: i64,
}

#[derive(Debug, Deserialize)]
struct IndexEntry {
    digest: String,
    platform: Option<PlatformSpec>,
    #[serde(default)]
    annotations: HashMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct PlatformSpec {
    architecture: String,
    os: String,
}

/// Reads what `reference` (a tag or a digest) of `image` holds.
pub(crate) async fn read(
    client: &RegistryClient,
    configs: &ConfigCache,
    image: &str,
    reference: &str,
) -> Result<Contents, String> {
    let scope = pull_scope(image);
    let url = client.url(&format!("v2/{image}/manifests/{reference}"));
    let reply = client
        .get(&url, ANY_MANIFEST, Some(&scope))
        .await
        .map_err(|error| error.to_string())?;
    if reply.status == reqwest::StatusCode::NOT_FOUND {
        return Ok(Contents::Missing);
    }
    if !reply.status.is_success() {
        return Err(status_error(&reply).to_string());
    }
    let manifest: Manifest = reply.json().map_err(|error| error.to_string())?;
    let media_type = reply
        .media_type()
        .filter(|media_type| media_type.starts_with("application/vnd."))
        .map(str::to_owned)
        .or_else(|| manifest.media_type.clone())
        .unwrap_or_default();
    if manifest.schema_version == Some(1)
        || media_type.starts_with("application/vnd.docker.distribution.manifest.v1+")
    {
        return Err(format!(
            "{url}: a schema 1 manifest ({media_type}), which is not read; push the image again with a current client"
        ));
    }
    let is_index = media_type == MANIFEST_LIST
        || media_type == OCI_INDEX
        || (media_type.is_empty() && manifest.manifests.is_some());
    if is_index {
        return Ok(Contents::Platforms(
            read_index(client, configs, image, &scope, manifest).await,
        ));
    }
    if media_type != MANIFEST_V2 && media_type != OCI_MANIFEST && !media_type.is_empty() {
        return Err(format!(
            "{url}: unexpected manifest media type {media_type}"
        ));
    }
    let (config, size) = single(&url, &manifest)?;
    let blob = config_blob(client, configs, image, &scope, &config).await?;
    let architecture = blob
        .architecture
        .clone()
        .filter(|architecture| !architecture.is_empty())
        .ok_or_else(|| format!("config blob {config} names no architecture"))?;
    Ok(Contents::Platforms(vec![Platform {
        architecture,
        image: Ok(PlatformImage {
            config_digest: config,
            size_bytes: size,
            labels: blob.labels(),
        }),
    }]))
}

/// The platform images an index lists, read concurrently; attestations and entries of an unknown
/// platform are left out, and of two entries of one architecture the later one counts.
async fn read_index(
    client: &RegistryClient,
    configs: &ConfigCache,
    image: &str,
    scope: &str,
    index: Manifest,
) -> Vec<Platform> {
    let entries: Vec<(String, String)> = index
        .manifests
        .unwrap_or_default()
        .into_iter()
        .filter(|entry| {
            entry
                .annotations
                .get("vnd.docker.reference.type")
                .is_none_or(|kind| kind != "attestation-manifest")
        })
        .filter_map(|entry| {
            let platform = entry.platform?;
            (platform.architecture != "unknown" && platform.os != "unknown")
                .then_some((platform.architecture, entry.digest))
        })
        .collect();
    let read_entry = |architecture: String, digest: String| async move {
        let image = read_platform(client, configs, image, scope, &digest).await;
        Platform {
            architecture,
            image,
        }
    };
    let platforms = join_all(
        entries
            .into_iter()
            .map(|(architecture, digest)| read_entry(architecture, digest)),
    )
    .await;
    let mut by_architecture: Vec<Platform> = Vec::with_capacity(platforms.len());
    for platform in platforms {
        by_architecture.retain(|earlier| earlier.architecture != platform.architecture);
        by_architecture.push(platform);
    }
    by_architecture
}

/// One platform's manifest (by digest) and its config blob.
async fn read_platform(
    client: &RegistryClient,
    configs: &ConfigCache,
    image: &str,
    scope: &str,
    digest: &str,
) -> Result<PlatformImage, String> {
    let url = client.url(&format!("v2/{image}/manifests/{digest}"));
    let reply = client
        .get_ok(&url, SINGLE_MANIFEST, Some(scope))
        .await
        .map_err(|error| error.to_string())?;
    let manifest: Manifest = reply.json().map_err(|error| error.to_string())?;
    let (config, size) = single(&url, &manifest)?;
    let blob = config_blob(client, configs, image, scope, &config).await?;
    Ok(PlatformImage {
        config_digest: config,
        size_bytes: size,
        labels: blob.labels(),
    })
}

/// The config digest and the image size of a single-platform manifest.
fn single(url: &reqwest::Url, manifest: &Manifest) -> Result<(String, i64), String> {
    let config = manifest
        .config
        .as_ref()
        .ok_or_else(|| format!("{url}: the manifest has no config"))?;
    let layers: i64 = manifest
        .layers
        .iter()
        .flatten()
        .map(|layer| layer.size)
        .sum();
    Ok((config.digest.clone(), layers + config.size))
}

async fn config_blob(
    client: &RegistryClient,
    configs: &ConfigCache,
    image: &str,
    scope: &str,
    digest: &str,
) -> Result<Arc<ConfigBlob>, String> {
    let cached = configs
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(digest)
        .cloned();
    if let Some(blob) = cached {
        return Ok(blob);
    }
    let url = client.url(&format!("v2/{image}/blobs/{digest}"));
    let reply = client
        .get_ok(&url, "application/json, */*", Some(scope))
        .await
        .map_err(|error| format!("config blob: {error}"))?;
    let blob: Arc<ConfigBlob> = Arc::new(
        reply
            .json()
            .map_err(|error| format!("config blob: {error}"))?,
    );
    configs
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(digest.to_owned(), Arc::clone(&blob));
    Ok(blob)
}
