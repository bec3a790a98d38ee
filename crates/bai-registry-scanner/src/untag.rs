//! Removing an image's tag from a Harbor 2 registry (GraphQL `untag_image_from_registry`, spec
//! registry-server.md §1.5 "untag"): `DELETE` of the artifact the tag names, with the registry's
//! Basic credentials. The image's row stays in the catalogue.

use std::time::Duration;

use bai_etcd_store::shared_config::ContainerRegistry;
use reqwest::StatusCode;

use crate::harbor::encode;

/// Why a tag could not be removed; the message names the image and the reason, never the password.
#[derive(Debug, thiserror::Error)]
pub enum UntagError {
    #[error("untagging is only supported for Harbor 2 registries (registry type {kind:?})")]
    NotHarbor2 { kind: String },
    #[error("{image} is not PROJECT/REPOSITORY")]
    NoProject { image: String },
    #[error("Failed to untag {image}:{tag}: {reason}")]
    Failed {
        image: String,
        tag: String,
        reason: String,
    },
}

/// Deletes the artifact `image:tag` (`image` is `project/repository...`) from `registry`, a
/// `harbor2` registry; an artifact already gone (404) is no error.
pub async fn untag(
    registry: &ContainerRegistry,
    image: &str,
    tag: &str,
    timeout: Duration,
) -> Result<(), UntagError> {
    if registry.kind != "harbor2" {
        return Err(UntagError::NotHarbor2 {
            kind: registry.kind.clone(),
        });
    }
    let Some((project, repository)) = image.split_once('/') else {
        return Err(UntagError::NoProject {
            image: image.to_owned(),
        });
    };
    let failed = |reason: String| UntagError::Failed {
        image: image.to_owned(),
        tag: tag.to_owned(),
        reason,
    };
    // Harbor takes a repository name with slashes encoded twice, as the scan sends it.
    let url = format!(
        "{}/api/v2.0/projects/{}/repositories/{}/artifacts/{}",
        registry.url.trim_end_matches('/'),
        encode(project),
        encode(&encode(repository)),
        encode(tag),
    );
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .danger_accept_invalid_certs(!registry.ssl_verify)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|error| failed(format!("cannot create an HTTP client: {error}")))?;
    let mut request = http.delete(&url);
    if let Some(username) = &registry.username {
        request = request.basic_auth(username, registry.password.as_deref());
    }
    let reply = request
        .send()
        .await
        .map_err(|error| failed(error.without_url().to_string()))?;
    let status = reply.status();
    if status.is_success() || status == StatusCode::NOT_FOUND {
        Ok(())
    } else {
        Err(failed(format!("DELETE {url} answered {status}")))
    }
}
