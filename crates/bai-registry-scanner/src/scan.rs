//! A scan from start to end: which registries (or which one image) to read, reading them with a
//! bounded number of requests in flight, checking each platform image's labels, and saving each
//! registry's images in one transaction. Whatever goes wrong with one registry, repository, tag or
//! platform becomes an item of the summary with its reason; the rest is still read and saved.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bai_db_models::image_ref::{ImageRef, KnownRegistries, normalize_architecture};
use bai_db_models::queries::image_scan::{self, SaveOutcome, ScannedImage};
use bai_etcd_store::shared_config::ContainerRegistry;
use futures_util::StreamExt;
use futures_util::future::join_all;
use futures_util::stream::FuturesUnordered;
use indexmap::IndexMap;
use sea_orm::DatabaseConnection;
use tokio::sync::Semaphore;

use crate::client::{Credentials, RegistryClient};
use crate::docker::{self, ConfigCache, Contents};
use crate::error::ScanError;
use crate::{harbor, labels};

/// How hard a scan may press the registries.
#[derive(Clone, Debug)]
pub struct ScanOptions {
    /// Requests in flight at once, across every registry of the scan.
    pub concurrency: usize,
    /// The longest one request (connection, answer and body) may take.
    pub request_timeout: Duration,
    /// Entries asked for per page of the catalog, tag and Harbor lists.
    pub page_size: usize,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            concurrency: 16,
            request_timeout: Duration::from_secs(30),
            page_size: 100,
        }
    }
}

/// What to scan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanTarget {
    /// Every configured registry.
    All,
    /// The registry of this name (its etcd key).
    Registry(String),
    /// One tag of one repository.
    Image {
        registry: String,
        image: String,
        tag: String,
    },
}

impl ScanTarget {
    /// The command line's `[REGISTRY[/IMAGE[:TAG]]]` (the reference's rule: an argument starting with
    /// a configured registry's name and `/` is an image of it, checked in etcd's order; otherwise it
    /// must be a registry's name). A missing tag means `latest`.
    pub fn parse(
        argument: Option<&str>,
        registries: &IndexMap<String, ContainerRegistry>,
    ) -> Result<ScanTarget, ScanError> {
        let Some(argument) = argument.filter(|argument| !argument.is_empty()) else {
            return Ok(ScanTarget::All);
        };
        for name in registries.keys() {
            if let Some(rest) = argument
                .strip_prefix(name.as_str())
                .and_then(|rest| rest.strip_prefix('/'))
            {
                let reference = ImageRef::parse(
                    argument,
                    KnownRegistries::Listed(&[name.as_str()]),
                    "x86_64",
                )
                .map_err(|error| ScanError::InvalidReference {
                    argument: argument.to_owned(),
                    registry: name.clone(),
                    reason: error.to_string(),
                })?;
                if reference.registry() != name || rest.is_empty() {
                    return Err(ScanError::InvalidReference {
                        argument: argument.to_owned(),
                        registry: name.clone(),
                        reason: "expected REGISTRY/IMAGE[:TAG]".to_owned(),
                    });
                }
                return Ok(ScanTarget::Image {
                    registry: name.clone(),
                    image: reference.name().to_owned(),
                    tag: reference.tag().to_owned(),
                });
            }
        }
        if registries.contains_key(argument) {
            return Ok(ScanTarget::Registry(argument.to_owned()));
        }
        Err(ScanError::UnknownRegistry {
            name: argument.to_owned(),
            known: if registries.is_empty() {
                "(none)".to_owned()
            } else {
                registries
                    .keys()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
    }
}

/// Where a scan tells its progress, e.g. a progress bar. Called from the scan's tasks.
pub trait Reporter: Send + Sync {
    /// `count` more tags were found, to be read.
    fn found(&self, count: usize) {
        let _ = count;
    }

    /// One tag was read (each of its platforms), whatever came of it.
    fn scanned(&self, registry: &str, image: &str, tag: &str) {
        let _ = (registry, image, tag);
    }
}

/// No progress to show.
impl Reporter for () {}

/// What came of one registry, repository, tag or platform image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A new row in `images`.
    Added,
    /// An existing row got new values.
    Updated,
    /// An existing row already held the same values.
    Unchanged,
    /// Not a Backend.AI kernel image (or nothing to register), with why.
    Skipped(String),
    /// Could not be read, with why.
    Failed(String),
}

/// One line of a scan's summary: the registry, down to the repository, tag and architecture as far
/// as the outcome concerns them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanItem {
    pub registry: String,
    pub image: Option<String>,
    pub tag: Option<String>,
    pub architecture: Option<String>,
    pub outcome: Outcome,
}

impl fmt::Display for ScanItem {
    /// `registry[/image[:tag]][ (architecture)]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.registry)?;
        if let Some(image) = &self.image {
            write!(f, "/{image}")?;
        }
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(architecture) = &self.architecture {
            write!(f, " ({architecture})")?;
        }
        Ok(())
    }
}

/// Everything a scan found, sorted by registry, image, tag and architecture.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanSummary {
    pub items: Vec<ScanItem>,
}

impl ScanSummary {
    pub fn added(&self) -> usize {
        self.count(|outcome| matches!(outcome, Outcome::Added))
    }

    pub fn updated(&self) -> usize {
        self.count(|outcome| matches!(outcome, Outcome::Updated))
    }

    pub fn unchanged(&self) -> usize {
        self.count(|outcome| matches!(outcome, Outcome::Unchanged))
    }

    pub fn skipped(&self) -> usize {
        self.count(|outcome| matches!(outcome, Outcome::Skipped(_)))
    }

    pub fn failed(&self) -> usize {
        self.count(|outcome| matches!(outcome, Outcome::Failed(_)))
    }

    fn count(&self, wanted: impl Fn(&Outcome) -> bool) -> usize {
        self.items
            .iter()
            .filter(|item| wanted(&item.outcome))
            .count()
    }
}

/// The counts: `2 added, 0 updated, 5 unchanged, 1 skipped, 0 failed`.
impl fmt::Display for ScanSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} added, {} updated, {} unchanged, {} skipped, {} failed",
            self.added(),
            self.updated(),
            self.unchanged(),
            self.skipped(),
            self.failed()
        )
    }
}

/// Scans `target` among `registries` and saves what it finds into `images` (one transaction per
/// registry). Only an unknown registry or a failing database end the scan with an error; everything
/// else is an item of the summary.
pub async fn scan(
    db: &DatabaseConnection,
    registries: &IndexMap<String, ContainerRegistry>,
    target: &ScanTarget,
    options: &ScanOptions,
    reporter: &dyn Reporter,
) -> Result<ScanSummary, ScanError> {
    let limit = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let unknown = |name: &str| ScanError::UnknownRegistry {
        name: name.to_owned(),
        known: registries
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(", "),
    };
    // Each registry to scan, with the one image (repository, tag) to read of it, if only one.
    type Chosen<'a> = (
        &'a String,
        &'a ContainerRegistry,
        Option<(&'a str, &'a str)>,
    );
    let chosen: Vec<Chosen<'_>> = match target {
        ScanTarget::All if registries.is_empty() => return Err(ScanError::NoRegistries),
        ScanTarget::All => registries
            .iter()
            .map(|(name, registry)| (name, registry, None))
            .collect(),
        ScanTarget::Registry(name) => {
            let (name, registry) = registries
                .get_key_value(name)
                .ok_or_else(|| unknown(name))?;
            vec![(name, registry, None)]
        }
        ScanTarget::Image {
            registry,
            image,
            tag,
        } => {
            let (name, config) = registries
                .get_key_value(registry)
                .ok_or_else(|| unknown(registry))?;
            vec![(name, config, Some((image.as_str(), tag.as_str())))]
        }
    };
    let names: Vec<&str> = chosen.iter().map(|(name, ..)| name.as_str()).collect();
    let known = image_scan::known_configs(db, &names)
        .await
        .map_err(|error| ScanError::Catalogue(Box::new(error)))?;
    let configs = ConfigCache::from_catalogue(known);
    let scans = chosen.into_iter().map(|(name, registry, image)| {
        let scan = RegistryScan {
            name,
            registry,
            options,
            reporter,
            configs: &configs,
            limit: Arc::clone(&limit),
        };
        async move { scan.run(db, image).await }
    });
    let mut items = Vec::new();
    for result in join_all(scans).await {
        items.extend(result?);
    }
    items.sort_by(compare_items);
    Ok(ScanSummary { items })
}

fn compare_items(a: &ScanItem, b: &ScanItem) -> Ordering {
    (&a.registry, &a.image, &a.tag, &a.architecture).cmp(&(
        &b.registry,
        &b.image,
        &b.tag,
        &b.architecture,
    ))
}

/// One registry's part of a scan.
struct RegistryScan<'a> {
    name: &'a str,
    registry: &'a ContainerRegistry,
    options: &'a ScanOptions,
    reporter: &'a dyn Reporter,
    configs: &'a ConfigCache,
    limit: Arc<Semaphore>,
}

/// What reading found before labels are checked and rows saved.
enum Finding {
    Image {
        image: String,
        tag: String,
        architecture: String,
        contents: docker::PlatformImage,
    },
    Item(ScanItem),
}

impl RegistryScan<'_> {
    async fn run(
        &self,
        db: &DatabaseConnection,
        image: Option<(&str, &str)>,
    ) -> Result<Vec<ScanItem>, ScanError> {
        let client = match self.client() {
            Ok(client) => client,
            Err(reason) => return Ok(vec![self.item(None, None, None, Outcome::Failed(reason))]),
        };
        let findings = match image {
            Some((image, tag)) => {
                self.reporter.found(1);
                let mut findings = self.read_tag(&client, image, tag, tag).await;
                for finding in &mut findings {
                    if let Finding::Item(item) = finding
                        && item.outcome == Outcome::Skipped(MISSING.to_owned())
                    {
                        item.outcome = Outcome::Failed("the registry has no such tag".to_owned());
                    }
                }
                findings
            }
            None => {
                tracing::info!(
                    registry = self.name,
                    "Scanning kernel images from the registry"
                );
                self.read_registry(&client).await
            }
        };
        self.save(db, findings).await
    }

    fn client(&self) -> Result<RegistryClient, String> {
        let credentials = match (&self.registry.username, &self.registry.password) {
            (Some(username), Some(password)) if !username.is_empty() => Some(Credentials {
                username: username.clone(),
                password: password.clone(),
            }),
            _ => None,
        };
        RegistryClient::new(
            &self.registry.url,
            credentials,
            self.registry.ssl_verify,
            self.options.request_timeout,
            Arc::clone(&self.limit),
        )
    }

    async fn read_registry(&self, client: &RegistryClient) -> Vec<Finding> {
        let failed = |reason: String| {
            vec![Finding::Item(self.item(
                None,
                None,
                None,
                Outcome::Failed(reason),
            ))]
        };
        let docker_hub = reqwest::Url::parse(&self.registry.url)
            .ok()
            .and_then(|url| url.host_str().map(|host| host.ends_with(".docker.io")))
            .unwrap_or(false);
        if docker_hub {
            return failed(
                "scanning a whole Docker Hub account is disabled (API rate limits); scan single images as REGISTRY/IMAGE:TAG"
                    .to_owned(),
            );
        }
        match self.registry.kind.as_str() {
            "docker" => match docker::catalog(client, self.options.page_size).await {
                Ok(repositories) => self.read_repositories(client, repositories).await,
                Err(error) => failed(format!("cannot list the repositories: {error}")),
            },
            "harbor2" => self.read_harbor(client).await,
            "harbor" if self.registry.projects.is_empty() => failed(self.no_projects()),
            "harbor" => {
                match harbor::v1_repositories(
                    client,
                    &self.registry.projects,
                    self.options.page_size,
                )
                .await
                {
                    Ok(repositories) => self.read_repositories(client, repositories).await,
                    Err(error) => failed(format!("cannot list the repositories: {error}")),
                }
            }
            "local" => failed(
                "type local means the local Docker daemon, which bai-manager does not scan"
                    .to_owned(),
            ),
            other => failed(format!(
                "unknown registry type {other:?} (expected docker, harbor or harbor2)"
            )),
        }
    }

    /// Each repository's tags, repositories and tags read concurrently.
    async fn read_repositories(
        &self,
        client: &RegistryClient,
        repositories: Vec<String>,
    ) -> Vec<Finding> {
        let mut pending: FuturesUnordered<_> = repositories
            .iter()
            .map(|image| async move {
                match docker::tags(client, image, self.options.page_size).await {
                    Ok(tags) => {
                        self.reporter.found(tags.len());
                        let reads = tags
                            .iter()
                            .map(|tag| self.read_tag(client, image, tag, tag));
                        join_all(reads).await.into_iter().flatten().collect()
                    }
                    Err(error) => vec![Finding::Item(self.item(
                        Some(image),
                        None,
                        None,
                        Outcome::Failed(format!("cannot list the tags: {error}")),
                    ))],
                }
            })
            .collect();
        let mut findings = Vec::new();
        while let Some(found) = pending.next().await {
            findings.extend(found);
        }
        findings
    }

    /// Harbor 2: each project's repositories, each repository's artifacts, each artifact once for
    /// all of its tags.
    async fn read_harbor(&self, client: &RegistryClient) -> Vec<Finding> {
        if self.registry.projects.is_empty() {
            return vec![Finding::Item(self.item(
                None,
                None,
                None,
                Outcome::Failed(self.no_projects()),
            ))];
        }
        // Harbor's REST API takes HTTP Basic; its registry API (`/v2/`) wants bearer tokens.
        client.learn_scheme().await;
        let mut findings = Vec::new();
        let mut repositories = Vec::new();
        for project in &self.registry.projects {
            match harbor::repositories(client, project, self.options.page_size).await {
                Ok(found) => repositories.extend(found),
                Err(error) => findings.push(Finding::Item(self.item(
                    None,
                    None,
                    None,
                    Outcome::Failed(format!(
                        "cannot list the repositories of project {project:?}: {error}"
                    )),
                ))),
            }
        }
        let mut pending: FuturesUnordered<_> = repositories
            .iter()
            .map(|image| self.read_harbor_repository(client, image))
            .collect();
        while let Some(found) = pending.next().await {
            findings.extend(found);
        }
        findings
    }

    async fn read_harbor_repository(&self, client: &RegistryClient, image: &str) -> Vec<Finding> {
        let artifacts = match harbor::artifacts(client, image, self.options.page_size).await {
            Ok(artifacts) => artifacts,
            Err(error) => {
                return vec![Finding::Item(self.item(
                    Some(image),
                    None,
                    None,
                    Outcome::Failed(format!("cannot list the artifacts: {error}")),
                ))];
            }
        };
        let reads = artifacts.iter().map(|artifact| async move {
            let tags = artifact.tag_names();
            if tags.is_empty() {
                return Vec::new();
            }
            self.reporter.found(tags.len());
            if let Some(kind) = artifact.kind.as_deref().filter(|kind| *kind != "IMAGE") {
                return tags
                    .iter()
                    .map(|tag| {
                        self.reporter.scanned(self.name, image, tag);
                        Finding::Item(self.item(
                            Some(image),
                            Some(tag),
                            None,
                            Outcome::Skipped(format!("a {kind} artifact, not a container image")),
                        ))
                    })
                    .collect();
            }
            let first = self
                .read_tag(client, image, &tags[0], &artifact.digest)
                .await;
            let mut findings = Vec::with_capacity(first.len() * tags.len());
            for tag in &tags[1..] {
                findings.extend(first.iter().map(|finding| retag(finding, tag)));
                self.reporter.scanned(self.name, image, tag);
            }
            findings.extend(first);
            findings
        });
        join_all(reads).await.into_iter().flatten().collect()
    }

    /// What `reference` (the tag itself, or the digest it points at) holds, as `tag`.
    async fn read_tag(
        &self,
        client: &RegistryClient,
        image: &str,
        tag: &str,
        reference: &str,
    ) -> Vec<Finding> {
        let read = docker::read(client, self.configs, image, reference).await;
        self.reporter.scanned(self.name, image, tag);
        let item = |outcome| {
            vec![Finding::Item(self.item(
                Some(image),
                Some(tag),
                None,
                outcome,
            ))]
        };
        match read {
            Err(reason) => item(Outcome::Failed(reason)),
            Ok(Contents::Missing) => item(Outcome::Skipped(MISSING.to_owned())),
            Ok(Contents::Platforms(platforms)) if platforms.is_empty() => item(Outcome::Skipped(
                "the index lists no platform image (only attestations or unknown platforms)"
                    .to_owned(),
            )),
            Ok(Contents::Platforms(platforms)) => platforms
                .into_iter()
                .map(|platform| {
                    let architecture = normalize_architecture(&platform.architecture).to_owned();
                    match platform.image {
                        Ok(contents) => Finding::Image {
                            image: image.to_owned(),
                            tag: tag.to_owned(),
                            architecture,
                            contents,
                        },
                        Err(reason) => Finding::Item(self.item(
                            Some(image),
                            Some(tag),
                            Some(&architecture),
                            Outcome::Failed(reason),
                        )),
                    }
                })
                .collect(),
        }
    }

    /// Checks the labels of what was found, saves the kernel images in one transaction and turns
    /// everything into summary items.
    async fn save(
        &self,
        db: &DatabaseConnection,
        findings: Vec<Finding>,
    ) -> Result<Vec<ScanItem>, ScanError> {
        let mut items = Vec::new();
        let mut images: IndexMap<(String, String), ScannedImage> = IndexMap::new();
        for finding in findings {
            let (image, tag, architecture, contents) = match finding {
                Finding::Item(item) => {
                    items.push(item);
                    continue;
                }
                Finding::Image {
                    image,
                    tag,
                    architecture,
                    contents,
                } => (image, tag, architecture, contents),
            };
            let skipped = |reason: String| {
                self.item(
                    Some(&image),
                    Some(&tag),
                    Some(&architecture),
                    Outcome::Skipped(reason),
                )
            };
            if let Err(reason) = labels::check(&contents.labels) {
                items.push(skipped(reason));
                continue;
            }
            let reference = match ImageRef::parse(
                &format!("{}/{image}:{tag}", self.name),
                KnownRegistries::Listed(&[self.name]),
                &architecture,
            ) {
                Ok(reference) => reference,
                Err(error) => {
                    items.push(skipped(error.to_string()));
                    continue;
                }
            };
            let scanned = ScannedImage {
                name: reference.canonical(),
                image: reference.name().to_owned(),
                tag: reference.tag().to_owned(),
                registry: self.name.to_owned(),
                architecture: reference.architecture().to_owned(),
                config_digest: contents.config_digest,
                size_bytes: contents.size_bytes,
                accelerators: labels::accelerators(&contents.labels),
                resources: labels::resources(&contents.labels),
                labels: serde_json::Value::Object(contents.labels),
                is_local: false,
            };
            images.insert(
                (scanned.name.clone(), scanned.architecture.clone()),
                scanned,
            );
        }
        let images: Vec<ScannedImage> = images.into_values().collect();
        if images.is_empty() {
            tracing::info!(registry = self.name, "No images found in the registry");
        }
        let outcomes =
            image_scan::save_scan(db, &images)
                .await
                .map_err(|source| ScanError::Save {
                    registry: self.name.to_owned(),
                    source: Box::new(source),
                })?;
        for (image, outcome) in images.into_iter().zip(outcomes) {
            items.push(ScanItem {
                registry: image.registry,
                image: Some(image.image),
                tag: Some(image.tag),
                architecture: Some(image.architecture),
                outcome: match outcome {
                    SaveOutcome::Added => Outcome::Added,
                    SaveOutcome::Updated => Outcome::Updated,
                    SaveOutcome::Unchanged => Outcome::Unchanged,
                },
            });
        }
        Ok(items)
    }

    fn no_projects(&self) -> String {
        format!(
            "a {} registry needs its projects in etcd config/docker/registry/{}/project",
            self.registry.kind,
            bai_etcd_store::quote(self.name)
        )
    }

    fn item(
        &self,
        image: Option<&str>,
        tag: Option<&str>,
        architecture: Option<&str>,
        outcome: Outcome,
    ) -> ScanItem {
        ScanItem {
            registry: self.name.to_owned(),
            image: image.map(str::to_owned),
            tag: tag.map(str::to_owned),
            architecture: architecture.map(str::to_owned),
            outcome,
        }
    }
}

/// Why a listed tag that has no manifest any more is skipped.
const MISSING: &str = "the registry has no manifest for it (deleted during the scan?)";

/// `finding` as found under another tag of the same artifact.
fn retag(finding: &Finding, tag: &str) -> Finding {
    match finding {
        Finding::Image {
            image,
            architecture,
            contents,
            ..
        } => Finding::Image {
            image: image.clone(),
            tag: tag.to_owned(),
            architecture: architecture.clone(),
            contents: contents.clone(),
        },
        Finding::Item(item) => Finding::Item(ScanItem {
            tag: Some(tag.to_owned()),
            ..item.clone()
        }),
    }
}
