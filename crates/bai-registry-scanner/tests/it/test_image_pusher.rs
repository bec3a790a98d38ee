//! The test-image pusher against a real `docker-registry` (CNCF distribution 2.8) spawned for each
//! test: what it pushes is read back through the registry's HTTP API exactly as a scanner (or
//! `docker pull`) reads it, manifests, lists, indexes and blobs alike.

use std::collections::BTreeMap;

use bai_registry_scanner::testing::{
    Breakage, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, MediaTypes, OCI_INDEX, OCI_MANIFEST,
    PushError, Pusher, RegistryProcess, Shape, TestImage, TestPlatform, kernel_labels,
    sha256_digest,
};
use serde_json::{Value, json};

/// GETs `path` of the registry with `accept`; returns the content type, the digest header and
/// the body, after checking that the body hashes to the digest the registry reports (manifests
/// and blobs have one; listings do not).
async fn get(registry: &RegistryProcess, path: &str, accept: &str) -> (String, String, Vec<u8>) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", registry.url()))
        .header("Accept", accept)
        .send()
        .await
        .unwrap_or_else(|error| panic!("GET {path}: {error}"));
    assert_eq!(response.status(), 200, "GET {path}");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (content_type, digest) = (header("content-type"), header("docker-content-digest"));
    let body = response.bytes().await.expect("body").to_vec();
    if !digest.is_empty() {
        assert_eq!(sha256_digest(&body), digest, "GET {path}: body digest");
    }
    (content_type, digest, body)
}

fn json_of(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).expect("JSON body")
}

#[tokio::test]
async fn a_multi_arch_docker_image_reads_back_as_pushed() {
    let registry = RegistryProcess::spawn();
    let pusher = Pusher::new(&registry.url());
    let image = TestImage::new(
        "stable/python",
        "3.9-ubuntu20.04",
        Shape::MultiArch,
        vec![
            TestPlatform::linux("amd64", kernel_labels()),
            TestPlatform::linux("arm64", kernel_labels()),
        ],
    );
    let pushed = pusher.push(&image).await.expect("push");
    assert_eq!(pushed.media_type, DOCKER_MANIFEST_LIST);

    let (content_type, digest, body) = get(
        &registry,
        "/v2/stable/python/manifests/3.9-ubuntu20.04",
        DOCKER_MANIFEST_LIST,
    )
    .await;
    assert_eq!(content_type, DOCKER_MANIFEST_LIST);
    assert_eq!(digest, pushed.digest);
    let list = json_of(&body);
    let entries = list["manifests"].as_array().expect("manifests");
    assert_eq!(entries.len(), 2);
    for (entry, platform) in entries.iter().zip(&pushed.platforms) {
        assert_eq!(entry["digest"], platform.manifest_digest.as_str());
        assert_eq!(
            entry["platform"]["architecture"],
            platform.architecture.as_str()
        );
        assert_eq!(entry["platform"]["os"], "linux");
        assert!(entry.get("annotations").is_none());

        let (content_type, _, body) = get(
            &registry,
            &format!("/v2/stable/python/manifests/{}", platform.manifest_digest),
            DOCKER_MANIFEST,
        )
        .await;
        assert_eq!(content_type, DOCKER_MANIFEST);
        let manifest = json_of(&body);
        assert_eq!(
            manifest["config"]["digest"],
            platform.config_digest.as_str()
        );
        let layers_size: i64 = manifest["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .map(|layer| layer["size"].as_i64().expect("size"))
            .sum();
        let config_size = manifest["config"]["size"].as_i64().expect("config size");
        assert_eq!(layers_size + config_size, platform.size_bytes);

        let (_, blob_digest, config) = get(
            &registry,
            &format!("/v2/stable/python/blobs/{}", platform.config_digest),
            "*/*",
        )
        .await;
        assert_eq!(blob_digest, platform.config_digest);
        let config = json_of(&config);
        assert_eq!(config["architecture"], platform.architecture.as_str());
        assert_eq!(config["config"]["Labels"], json!(kernel_labels()));
        let layer_digest = manifest["layers"][0]["digest"].as_str().expect("digest");
        let layer_path = format!("/v2/stable/python/blobs/{layer_digest}");
        let (_, digest, _) = get(&registry, &layer_path, "*/*").await;
        assert_eq!(digest, layer_digest);
    }

    let (_, _, tags) = get(&registry, "/v2/stable/python/tags/list", "application/json").await;
    assert_eq!(
        json_of(&tags),
        json!({"name": "stable/python", "tags": ["3.9-ubuntu20.04"]})
    );
}

#[tokio::test]
async fn single_arch_and_oci_images_and_annotated_index_entries() {
    let registry = RegistryProcess::spawn();
    let pusher = Pusher::new(&registry.url());
    let single_docker = pusher
        .push(&TestImage::new(
            "stable/cuda",
            "12.1",
            Shape::SingleArch,
            vec![TestPlatform::linux("amd64", kernel_labels())],
        ))
        .await
        .expect("push single-arch Docker");
    let single_oci = pusher
        .push(
            &TestImage::new(
                "stable/r",
                "4.3",
                Shape::SingleArch,
                vec![TestPlatform::linux("arm64", kernel_labels())],
            )
            .with_media_types(MediaTypes::Oci),
        )
        .await
        .expect("push single-arch OCI");
    let mut annotated = TestPlatform::linux("arm64", kernel_labels());
    annotated.annotations = BTreeMap::from([("org.example".to_owned(), "yes".to_owned())]);
    let index = pusher
        .push(
            &TestImage::new(
                "stable/python",
                "3.9",
                Shape::MultiArch,
                vec![TestPlatform::linux("amd64", kernel_labels()), annotated],
            )
            .with_media_types(MediaTypes::Oci),
        )
        .await
        .expect("push OCI index");

    let (content_type, digest, _) =
        get(&registry, "/v2/stable/cuda/manifests/12.1", DOCKER_MANIFEST).await;
    assert_eq!(
        (content_type.as_str(), digest),
        (DOCKER_MANIFEST, single_docker.digest.clone())
    );
    assert_eq!(
        single_docker.digest,
        single_docker.platforms[0].manifest_digest
    );

    let (content_type, digest, body) =
        get(&registry, "/v2/stable/r/manifests/4.3", OCI_MANIFEST).await;
    assert_eq!(
        (content_type.as_str(), digest),
        (OCI_MANIFEST, single_oci.digest)
    );
    assert_eq!(
        json_of(&body)["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );

    let (content_type, digest, body) =
        get(&registry, "/v2/stable/python/manifests/3.9", OCI_INDEX).await;
    assert_eq!((content_type.as_str(), digest), (OCI_INDEX, index.digest));
    let entries = json_of(&body)["manifests"].clone();
    assert_eq!(entries[0]["mediaType"], OCI_MANIFEST);
    assert!(entries[0].get("annotations").is_none());
    assert_eq!(entries[1]["annotations"], json!({"org.example": "yes"}));

    let (_, _, catalog) = get(&registry, "/v2/_catalog", "application/json").await;
    assert_eq!(
        json_of(&catalog),
        json!({"repositories": ["stable/cuda", "stable/python", "stable/r"]})
    );
}

#[tokio::test]
async fn a_broken_image_is_accepted_by_the_registry_but_its_config_is_not_json() {
    let registry = RegistryProcess::spawn();
    let pusher = Pusher::new(&registry.url());
    let pushed = pusher
        .push(
            &TestImage::new(
                "stable/broken",
                "1.0",
                Shape::MultiArch,
                vec![TestPlatform::linux("amd64", kernel_labels())],
            )
            .broken(Breakage::ConfigNotJson),
        )
        .await
        .expect("push");
    let (_, _, config) = get(
        &registry,
        &format!(
            "/v2/stable/broken/blobs/{}",
            pushed.platforms[0].config_digest
        ),
        "*/*",
    )
    .await;
    assert!(serde_json::from_slice::<Value>(&config).is_err());
}

#[tokio::test]
async fn invalid_images_and_refused_pushes_are_errors_naming_them() {
    let registry = RegistryProcess::spawn();
    let pusher = Pusher::new(&registry.url());
    let two_platforms = TestImage::new(
        "stable/python",
        "1",
        Shape::SingleArch,
        vec![
            TestPlatform::linux("amd64", kernel_labels()),
            TestPlatform::linux("arm64", kernel_labels()),
        ],
    );
    let error = pusher
        .push(&two_platforms)
        .await
        .expect_err("two platforms");
    assert!(matches!(error, PushError::InvalidImage { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "stable/python:1: a single-arch image has exactly one platform"
    );

    let error = pusher
        .put_manifest(
            "stable/python",
            "1",
            DOCKER_MANIFEST,
            b"{\"schemaVersion\": 2}",
        )
        .await
        .expect_err("a manifest without config");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "pushing manifest stable/python:1 ({DOCKER_MANIFEST}): PUT {}/v2/stable/python/manifests/1 answered 400",
            registry.url()
        )),
        "{message}"
    );
}

#[tokio::test]
async fn basic_auth_is_answered_with_the_credentials() {
    let password = "s3cret";
    let hash = bcrypt::hash(password, 4).expect("bcrypt");
    let registry = RegistryProcess::spawn_prepared(
        "auth:\n  htpasswd:\n    realm: test-realm\n    path: htpasswd",
        |dir| std::fs::write(dir.join("htpasswd"), format!("tester:{hash}\n")).expect("htpasswd"),
    );
    let image = TestImage::new(
        "private/python",
        "3.9",
        Shape::SingleArch,
        vec![TestPlatform::linux("amd64", kernel_labels())],
    );
    let error = Pusher::new(&registry.url())
        .push(&image)
        .await
        .expect_err("anonymous push");
    assert!(
        matches!(&error, PushError::Status { status, .. } if status.as_u16() == 401),
        "{error:?}"
    );
    Pusher::new(&registry.url())
        .with_credentials("tester", password)
        .push(&image)
        .await
        .expect("push with credentials");
}
