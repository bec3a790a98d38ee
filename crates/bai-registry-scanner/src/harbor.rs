//! Harbor's REST API: for Harbor 2 (`/api/v2.0`) the repositories of the configured projects and
//! their artifacts, for Harbor 1 (`/api`) the projects' repositories, page by page (`Link`
//! headers). What an artifact or tag holds is then read through the registry API Harbor also serves
//! ([`crate::docker::read`]).
//!
//! Unlike the reference, every tag of an artifact is registered (not only the first), the
//! artifact's own manifest decides single- or multi-platform (no guessing the architecture from the
//! tag), and a repository name with slashes is encoded twice in the path, as Harbor documents.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use crate::client::{FetchError, RegistryClient};

/// One artifact of a repository: a digest and the tags pointing at it.
#[derive(Debug, Deserialize)]
pub(crate) struct Artifact {
    pub(crate) digest: String,
    /// `IMAGE`, `CHART`, `CNAB`, ...
    #[serde(rename = "type", default)]
    pub(crate) kind: Option<String>,
    #[serde(default)]
    tags: Option<Vec<ArtifactTag>>,
}

#[derive(Debug, Deserialize)]
struct ArtifactTag {
    name: String,
}

impl Artifact {
    pub(crate) fn tag_names(&self) -> Vec<String> {
        self.tags
            .iter()
            .flatten()
            .map(|tag| tag.name.clone())
            .collect()
    }
}

/// The repositories (`project/name...`) of `project`.
pub(crate) async fn repositories(
    client: &RegistryClient,
    project: &str,
    page_size: usize,
) -> Result<Vec<String>, FetchError> {
    #[derive(Deserialize)]
    struct Repository {
        name: String,
    }
    let first = client.url(&format!(
        "api/v2.0/projects/{}/repositories?page_size={page_size}",
        encode(project)
    ));
    let pages: Vec<Vec<Repository>> = paged(client, first).await?;
    Ok(pages.into_iter().flatten().map(|repo| repo.name).collect())
}

/// The artifacts of the repository `image` (`project/name...`).
pub(crate) async fn artifacts(
    client: &RegistryClient,
    image: &str,
    page_size: usize,
) -> Result<Vec<Artifact>, FetchError> {
    let (project, repository) = image.split_once('/').unwrap_or(("", image));
    let first = client.url(&format!(
        "api/v2.0/projects/{}/repositories/{}/artifacts?page_size={page_size}&with_tag=true",
        encode(project),
        encode(&encode(repository)),
    ));
    let pages: Vec<Vec<Artifact>> = paged(client, first).await?;
    Ok(pages.into_iter().flatten().collect())
}

/// Harbor 1.x: the repositories (`project/name...`) of the projects named `projects`, found through
/// `/api/projects` (by name) and `/api/repositories?project_id=`. Their tags and manifests are
/// read through the registry API, as on a plain registry.
pub(crate) async fn v1_repositories(
    client: &RegistryClient,
    projects: &[String],
    page_size: usize,
) -> Result<Vec<String>, FetchError> {
    #[derive(Deserialize)]
    struct Project {
        name: String,
        project_id: i64,
    }
    #[derive(Deserialize)]
    struct Repository {
        name: String,
    }
    let first = client.url(&format!("api/projects?page_size={page_size}"));
    let pages: Vec<Vec<Project>> = paged(client, first).await?;
    let mut repositories = Vec::new();
    for project in pages
        .into_iter()
        .flatten()
        .filter(|project| projects.contains(&project.name))
    {
        let first = client.url(&format!(
            "api/repositories?project_id={}&page_size={page_size}",
            project.project_id
        ));
        let pages: Vec<Vec<Repository>> = paged(client, first).await?;
        repositories.extend(pages.into_iter().flatten().map(|repo| repo.name));
    }
    Ok(repositories)
}

/// Every page of a Harbor list, from `first` along `Link: <...>; rel="next"`.
async fn paged<T: serde::de::DeserializeOwned>(
    client: &RegistryClient,
    first: reqwest::Url,
) -> Result<Vec<T>, FetchError> {
    let mut url = first;
    let mut pages = Vec::new();
    loop {
        let reply = client.get_ok(&url, "application/json", None).await?;
        pages.push(reply.json()?);
        match reply.next_page() {
            Some(next) => url = next,
            None => return Ok(pages),
        }
    }
}

/// Everything but unreserved characters is encoded (so `/` becomes `%2F`).
const PATH_PIECE_SAFE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

pub(crate) fn encode(text: &str) -> String {
    utf8_percent_encode(text, PATH_PIECE_SAFE).to_string()
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn nested_repository_names_are_encoded_twice() {
        assert_eq!(encode(&encode("ngc/pytorch")), "ngc%252Fpytorch");
        assert_eq!(encode("python"), "python");
    }
}
