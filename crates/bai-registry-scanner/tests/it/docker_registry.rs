//! Scans of real `docker-registry` processes (CNCF distribution) into a real database: multi- and
//! single-platform images, images that are not kernel images, broken images, a second scan, one
//! image by reference, catalog pagination, and basic and token authentication.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use crate::support::*;
use bai_db_models::entities::images;
use bai_registry_scanner::testing::{
    Breakage, MediaTypes, PushedImage, Pusher, RegistryProcess, Shape, TestImage, TestPlatform,
    kernel_labels,
};
use bai_registry_scanner::{Outcome, ScanItem, ScanOptions, ScanSummary, ScanTarget, scan};
use sea_orm::{EntityTrait, QueryOrder};
use serde_json::json;

const NAME: &str = "local-registry";

fn lines(summary: &ScanSummary) -> Vec<String> {
    summary
        .items
        .iter()
        .map(|item| match &item.outcome {
            Outcome::Skipped(reason) => format!("{item}: skipped: {reason}"),
            Outcome::Failed(reason) => format!("{item}: failed: {reason}"),
            outcome => format!("{item}: {outcome:?}"),
        })
        .collect()
}

/// `labels` plus `extra`.
fn with(extra: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut labels = kernel_labels();
    labels.extend(
        extra
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned())),
    );
    labels
}

async fn push(pusher: &Pusher, image: TestImage) -> PushedImage {
    pusher.push(&image).await.expect("push")
}

/// One single-platform kernel image `repository:tag` of `architecture`.
fn single(repository: &str, tag: &str, architecture: &str) -> TestImage {
    TestImage::new(
        repository,
        tag,
        Shape::SingleArch,
        vec![TestPlatform::linux(architecture, kernel_labels())],
    )
}

async fn rows(db: &sea_orm::DatabaseConnection) -> Vec<images::Model> {
    images::Entity::find()
        .order_by_asc(images::Column::Name)
        .order_by_asc(images::Column::Architecture)
        .all(db)
        .await
        .expect("images")
}

#[tokio::test]
async fn multi_and_single_platform_images_are_saved_and_the_bad_ones_reported() {
    let registry = RegistryProcess::spawn();
    let pusher = Pusher::new(&registry.url());
    let gpu = with(&[
        ("ai.backend.accelerators", "cuda"),
        ("ai.backend.resource.min.cuda.shares", "0.5"),
        ("ai.backend.resource.max.mem", "64g"),
    ]);
    // Platform entries may carry annotations (the reference dropped them); BuildKit's attestation
    // entries have an unknown platform and a reference type.
    let mut amd64 = TestPlatform::linux("amd64", kernel_labels());
    amd64.annotations.insert(
        "org.opencontainers.image.created".into(),
        "2024-01-01T00:00:00Z".into(),
    );
    let attestation = TestPlatform {
        architecture: "unknown".into(),
        os: "unknown".into(),
        labels: BTreeMap::new(),
        annotations: BTreeMap::from([(
            "vnd.docker.reference.type".into(),
            "attestation-manifest".into(),
        )]),
    };
    let python = push(
        &pusher,
        TestImage::new(
            "stable/python",
            "3.9-ubuntu20.04",
            Shape::MultiArch,
            vec![
                amd64,
                TestPlatform::linux("arm64", gpu.clone()),
                attestation,
            ],
        )
        .with_media_types(MediaTypes::Oci),
    )
    .await;
    let r = push(
        &pusher,
        TestImage::new(
            "community/r",
            "4.3",
            Shape::MultiArch,
            vec![TestPlatform::linux("amd64", kernel_labels())],
        ),
    )
    .await;
    let oci = push(
        &pusher,
        TestImage::new(
            "stable/pytorch",
            "2.0-py311",
            Shape::SingleArch,
            vec![TestPlatform::linux("arm64", gpu.clone())],
        )
        .with_media_types(MediaTypes::Oci),
    )
    .await;
    let docker = push(&pusher, single("stable/pytorch", "2.1-py311", "amd64")).await;
    let no_labels = BTreeMap::from([("maintainer".to_owned(), "someone".to_owned())]);
    push(
        &pusher,
        TestImage::new(
            "library/nginx",
            "latest",
            Shape::SingleArch,
            vec![TestPlatform::linux("amd64", no_labels)],
        ),
    )
    .await;
    let broken = push(
        &pusher,
        single("stable/broken", "1.0", "amd64").broken(Breakage::ConfigNotJson),
    )
    .await;

    let db = database("scan_docker").await;
    let registries = registries(NAME, docker_registry(&registry.url(), None));
    let target = ScanTarget::Registry(NAME.to_owned());
    let summary = scan(
        &db.connection,
        &registries,
        &target,
        &ScanOptions::default(),
        &(),
    )
    .await
    .expect("scan");
    assert_eq!(
        lines(&summary),
        [
            format!("{NAME}/community/r:4.3 (x86_64): Added"),
            format!(
                "{NAME}/library/nginx:latest (x86_64): skipped: no ai.backend.kernelspec label; \
                 no ai.backend.features label; no ai.backend.base-distro label; \
                 no ai.backend.runtime-type label; no ai.backend.runtime-path label"
            ),
            format!(
                "{NAME}/stable/broken:1.0: failed: config blob: GET {}/v2/stable/broken/blobs/{}: \
                 the response is not the JSON expected: expected ident at line 1 column 2",
                registry.url(),
                broken.platforms[0].config_digest
            ),
            format!("{NAME}/stable/python:3.9-ubuntu20.04 (aarch64): Added"),
            format!("{NAME}/stable/python:3.9-ubuntu20.04 (x86_64): Added"),
            format!("{NAME}/stable/pytorch:2.0-py311 (aarch64): Added"),
            format!("{NAME}/stable/pytorch:2.1-py311 (x86_64): Added"),
        ]
    );
    let counts = |summary: &ScanSummary| {
        (
            summary.added(),
            summary.updated(),
            summary.unchanged(),
            summary.skipped(),
            summary.failed(),
        )
    };
    assert_eq!(counts(&summary), (5, 0, 0, 1, 1));

    let saved = rows(&db.connection).await;
    let brief: Vec<(String, &str, &str, i64)> = saved
        .iter()
        .map(|row| {
            (
                format!("{} {}", row.name, row.tag.as_deref().unwrap_or_default()),
                row.architecture.as_str(),
                row.config_digest.trim_end(),
                row.size_bytes,
            )
        })
        .collect();
    fn platform(image: &PushedImage, index: usize) -> (&str, i64) {
        (
            image.platforms[index].config_digest.as_str(),
            image.platforms[index].size_bytes,
        )
    }
    let expected = [
        (
            format!("{NAME}/community/r:4.3 4.3"),
            "x86_64",
            platform(&r, 0),
        ),
        (
            format!("{NAME}/stable/python:3.9-ubuntu20.04 3.9-ubuntu20.04"),
            "aarch64",
            platform(&python, 1),
        ),
        (
            format!("{NAME}/stable/python:3.9-ubuntu20.04 3.9-ubuntu20.04"),
            "x86_64",
            platform(&python, 0),
        ),
        (
            format!("{NAME}/stable/pytorch:2.0-py311 2.0-py311"),
            "aarch64",
            platform(&oci, 0),
        ),
        (
            format!("{NAME}/stable/pytorch:2.1-py311 2.1-py311"),
            "x86_64",
            platform(&docker, 0),
        ),
    ];
    let expected: Vec<(String, &str, &str, i64)> = expected
        .into_iter()
        .map(|(name, architecture, (digest, size))| (name, architecture, digest, size))
        .collect();
    assert_eq!(brief, expected);
    let gpu_row = &saved[1];
    assert_eq!(gpu_row.registry, NAME);
    assert_eq!(gpu_row.image, "stable/python");
    assert!(!gpu_row.is_local);
    assert_eq!(gpu_row.accelerators.as_deref(), Some("cuda"));
    assert_eq!(
        gpu_row.resources,
        json!({"cpu": {"min": "1", "max": null}, "mem": {"min": "256m", "max": "64g"},
               "cuda.shares": {"min": "0.5", "max": null}})
    );
    assert_eq!(gpu_row.labels, serde_json::to_value(&gpu).unwrap());
    assert_eq!(saved[2].accelerators, None);
    assert_eq!(
        saved[2].resources,
        json!({"cpu": {"min": "1", "max": null}, "mem": {"min": "256m", "max": null}})
    );

    // The second scan finds the same images: nothing is written.
    let again = scan(
        &db.connection,
        &registries,
        &target,
        &ScanOptions::default(),
        &(),
    )
    .await
    .expect("second scan");
    assert_eq!(counts(&again), (0, 0, 5, 1, 1), "{:#?}", lines(&again));
    assert_eq!(rows(&db.connection).await, saved);

    // A tag moved to another build is updated in place; the other rows stay as they were.
    let moved = push(
        &pusher,
        TestImage::new(
            "stable/pytorch",
            "2.1-py311",
            Shape::SingleArch,
            vec![TestPlatform::linux(
                "amd64",
                with(&[("ai.backend.resource.min.mem", "4g")]),
            )],
        ),
    )
    .await;
    let third = scan(
        &db.connection,
        &registries,
        &target,
        &ScanOptions::default(),
        &(),
    )
    .await
    .expect("third scan");
    assert_eq!(counts(&third), (0, 1, 4, 1, 1), "{:#?}", lines(&third));
    let after = rows(&db.connection).await;
    assert_eq!(after[4].id, saved[4].id, "the row is updated, not replaced");
    assert_eq!(after[4].created_at, saved[4].created_at);
    assert_eq!(
        after[4].config_digest.trim_end(),
        moved.platforms[0].config_digest
    );
    assert_eq!(after[4].resources["mem"], json!({"min": "4g", "max": null}));
    assert_eq!(after[..4], saved[..4]);
}

#[tokio::test]
async fn one_image_is_scanned_by_reference() {
    let registry = RegistryProcess::spawn();
    let pusher = Pusher::new(&registry.url());
    push(&pusher, single("stable/python", "3.9", "amd64")).await;
    push(&pusher, single("stable/python", "3.10", "amd64")).await;
    let db = database("scan_one").await;
    let registries = registries(NAME, docker_registry(&registry.url(), None));

    let target = ScanTarget::parse(Some(&format!("{NAME}/stable/python:3.10")), &registries)
        .expect("a reference");
    assert_eq!(
        target,
        ScanTarget::Image {
            registry: NAME.to_owned(),
            image: "stable/python".to_owned(),
            tag: "3.10".to_owned()
        }
    );
    let summary = scan(
        &db.connection,
        &registries,
        &target,
        &ScanOptions::default(),
        &(),
    )
    .await
    .expect("scan");
    assert_eq!(
        lines(&summary),
        [format!("{NAME}/stable/python:3.10 (x86_64): Added")]
    );

    let missing = ScanTarget::parse(Some(&format!("{NAME}/stable/python:4.0")), &registries)
        .expect("a reference");
    let summary = scan(
        &db.connection,
        &registries,
        &missing,
        &ScanOptions::default(),
        &(),
    )
    .await
    .expect("scan");
    assert_eq!(
        lines(&summary),
        [format!(
            "{NAME}/stable/python:4.0: failed: the registry has no such tag"
        )]
    );
    assert_eq!(rows(&db.connection).await.len(), 1);

    assert_eq!(
        ScanTarget::parse(Some(NAME), &registries).expect("a registry"),
        ScanTarget::Registry(NAME.to_owned())
    );
    assert_eq!(
        ScanTarget::parse(Some("cr.backend.ai"), &registries)
            .unwrap_err()
            .to_string(),
        format!(
            "unknown registry \"cr.backend.ai\"; the registries in etcd config/docker/registry are: {NAME}"
        )
    );
}

#[tokio::test]
async fn the_catalog_is_read_page_by_page() {
    // The registry refuses pages larger than `catalog.maxentries`, so the scan pages by 2 here.
    let registry = RegistryProcess::spawn_with_auth("catalog:\n  maxentries: 2");
    let pusher = Pusher::new(&registry.url());
    for index in 0..5 {
        push(
            &pusher,
            single(&format!("stable/image-{index}"), "1.0", "amd64"),
        )
        .await;
    }
    let db = database("scan_pages").await;
    let registries = registries(NAME, docker_registry(&registry.url(), None));
    let summary = scan(
        &db.connection,
        &registries,
        &ScanTarget::All,
        &ScanOptions::default(),
        &(),
    )
    .await
    .expect("scan");
    assert_eq!(summary.added(), 5, "{:#?}", lines(&summary));
    assert_eq!(summary.items.len(), 5);
}

#[tokio::test]
async fn basic_authentication_with_the_registry_credentials() {
    let htpasswd = HtpasswdRegistry::spawn("scanner", "s3cret");
    let url = htpasswd.registry.url();
    push(
        &Pusher::new(&url).with_credentials("scanner", "s3cret"),
        single("stable/python", "3.9", "amd64"),
    )
    .await;
    let db = database("scan_basic").await;

    let anonymous = registries(NAME, docker_registry(&url, None));
    let summary = scan(
        &db.connection,
        &anonymous,
        &ScanTarget::All,
        &ScanOptions::default(),
        &(),
    )
    .await
    .expect("scan");
    assert_eq!(
        lines(&summary),
        [format!(
            "{NAME}: failed: cannot list the repositories: GET {url}/v2/_catalog?n=100: \
             HTTP 401 Unauthorized: UNAUTHORIZED: authentication required"
        )]
    );

    let wrong = registries(NAME, docker_registry(&url, Some(("scanner", "wrong"))));
    let summary = scan(
        &db.connection,
        &wrong,
        &ScanTarget::All,
        &ScanOptions::default(),
        &(),
    )
    .await
    .expect("scan");
    assert_eq!(summary.failed(), 1, "{:#?}", lines(&summary));

    let right = registries(NAME, docker_registry(&url, Some(("scanner", "s3cret"))));
    let summary = scan(
        &db.connection,
        &right,
        &ScanTarget::All,
        &ScanOptions::default(),
        &(),
    )
    .await
    .expect("scan");
    assert_eq!(
        lines(&summary),
        [format!("{NAME}/stable/python:3.9 (x86_64): Added")]
    );
}

#[tokio::test]
async fn bearer_tokens_from_the_challenge_are_fetched_once_per_scope() {
    let tokens = TokenServer::start(Some(("scanner", "s3cret"))).await;
    let registry = token_registry(&tokens);
    let pusher = Pusher::new(&registry.url()).with_credentials("scanner", "s3cret");
    for image in ["stable/python", "stable/pytorch", "community/r"] {
        for tag in ["1.0", "2.0", "3.0"] {
            push(&pusher, single(image, tag, "amd64")).await;
        }
    }
    let pushed_tokens = tokens.issued.load(Ordering::SeqCst);
    let db = database("scan_token").await;

    let right = registries(
        NAME,
        docker_registry(&registry.url(), Some(("scanner", "s3cret"))),
    );
    let summary = scan(
        &db.connection,
        &right,
        &ScanTarget::All,
        &ScanOptions::default(),
        &(),
    )
    .await
    .expect("scan");
    assert_eq!(
        (summary.added(), summary.failed()),
        (9, 0),
        "{:#?}",
        lines(&summary)
    );
    // One token for the catalog and one per repository, whatever the number of tags.
    assert_eq!(tokens.issued.load(Ordering::SeqCst) - pushed_tokens, 4);
    let scopes: Vec<String> = tokens
        .server
        .requests()
        .iter()
        .skip(pushed_tokens)
        .flat_map(|request| {
            assert_eq!(request.query("service"), ["test-registry"]);
            request.query("scope")
        })
        .collect();
    assert!(
        scopes.contains(&"registry:catalog:*".to_owned()),
        "{scopes:?}"
    );
    assert!(
        scopes.contains(&"repository:stable/pytorch:pull".to_owned()),
        "{scopes:?}"
    );

    let wrong = registries(
        NAME,
        docker_registry(&registry.url(), Some(("scanner", "wrong"))),
    );
    let summary = scan(
        &db.connection,
        &wrong,
        &ScanTarget::All,
        &ScanOptions::default(),
        &(),
    )
    .await
    .expect("scan");
    assert_eq!(
        lines(&summary),
        [format!(
            "{NAME}: failed: cannot list the repositories: token server {} (scope registry:catalog:*): \
             HTTP 401 Unauthorized (the registry's username or password is wrong)",
            tokens.realm()
        )]
    );
}

#[tokio::test]
async fn ssl_verify_decides_whether_an_unknown_certificate_is_accepted() {
    let registry = TlsRegistry::spawn().await;
    let db = database("scan_tls").await;
    let verified = registries(NAME, docker_registry(&registry.url, None));
    let summary = scan(
        &db.connection,
        &verified,
        &ScanTarget::All,
        &ScanOptions::default(),
        &(),
    )
    .await
    .expect("scan");
    let text = lines(&summary);
    assert_eq!(text.len(), 1);
    assert!(
        text[0].starts_with(&format!(
            "{NAME}: failed: cannot list the repositories: GET {}/v2/_catalog?n=100: ",
            registry.url
        )),
        "{text:?}"
    );
    assert!(text[0].contains("invalid peer certificate"), "{text:?}");

    let mut unverified = docker_registry(&registry.url, None);
    unverified.ssl_verify = false;
    let summary = scan(
        &db.connection,
        &registries(NAME, unverified),
        &ScanTarget::All,
        &ScanOptions::default(),
        &(),
    )
    .await
    .expect("scan");
    assert_eq!(summary.items, [], "an empty registry, read over TLS");
}

#[test]
fn summary_items_name_what_they_are_about() {
    let item = ScanItem {
        registry: "cr.backend.ai".into(),
        image: Some("stable/python".into()),
        tag: Some("3.9".into()),
        architecture: Some("aarch64".into()),
        outcome: Outcome::Added,
    };
    assert_eq!(
        item.to_string(),
        "cr.backend.ai/stable/python:3.9 (aarch64)"
    );
    let registry_only = ScanItem {
        image: None,
        tag: None,
        architecture: None,
        ..item
    };
    assert_eq!(registry_only.to_string(), "cr.backend.ai");
}
