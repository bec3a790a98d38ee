//! Image references as the reference's `ImageRef` (`common/docker.py`) reads them: a string such as
//! `cr.backend.ai/stable/python:3.9-ubuntu20.04` plus an architecture becomes a registry, a
//! repository name and a tag, whose canonical form `{registry}/{name}:{tag}` is what `images.name`
//! stores and what every lookup compares.
//!
//! How the first path segment is read depends on which registries the caller knows
//! ([`KnownRegistries`]): API lookups accept any (`["*"]` in the reference), scans know only the
//! registry being scanned, and an unknown first segment means the whole string is a Docker Hub
//! repository. Architectures are normalised (`amd64` -> `x86_64`, `arm64` -> `aarch64`, ...).

use std::collections::BTreeSet;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The registry of references that name none (`python:3.9`).
pub const DEFAULT_REGISTRY: &str = "index.docker.io";
/// The namespace Docker Hub references without one get (`python` -> `lablup/python`).
pub const DEFAULT_REPOSITORY: &str = "lablup";
/// The architecture of references that name none, as the reference's `ImageRef` defaults it.
pub const DEFAULT_ARCHITECTURE: &str = "x86_64";

/// The architecture names the reference normalises (`common/arch.py: arch_name_aliases`); any other
/// name is kept as given.
const ARCHITECTURE_ALIASES: [(&str, &str); 5] = [
    ("arm64", "aarch64"),
    ("amd64", "x86_64"),
    ("x64", "x86_64"),
    ("x32", "x86"),
    ("i686", "x86"),
];

/// The normalised name of an architecture: `amd64`/`x64` -> `x86_64`, `arm64` -> `aarch64`,
/// `x32`/`i686` -> `x86`; anything else unchanged.
pub fn normalize_architecture(architecture: &str) -> &str {
    ARCHITECTURE_ALIASES
        .iter()
        .find(|(alias, _)| *alias == architecture)
        .map_or(architecture, |(_, normalised)| normalised)
}

/// Which first path segments count as a registry name when a reference is parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KnownRegistries<'a> {
    /// Any first segment is a registry (the reference's magic `["*"]`, used by API and CLI
    /// lookups): `lablup/python:3.9` is repository `python` of registry `lablup`. The Docker Hub
    /// namespace rule applies only to `index.docker.io`, `docker.io` and `*.docker.io`.
    Any,
    /// Only these names (plus `index.docker.io` and IP addresses, with or without a port) are
    /// registries; a reference whose first segment is anything else is a Docker Hub repository:
    /// `lablup/python:3.9` is `index.docker.io/lablup/python:3.9`.
    Listed(&'a [&'a str]),
}

/// A parsed image reference: registry, repository name, tag and normalised architecture.
///
/// Equality is the reference's: all four parts.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageRef {
    registry: String,
    name: String,
    tag: String,
    architecture: String,
}

/// Why a string is not an image reference.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    #[error("invalid image name {value:?}: {reason}")]
    InvalidName { value: String, reason: &'static str },
    #[error("invalid image tag {tag:?} in {value:?}: {reason}")]
    InvalidTag {
        tag: String,
        value: String,
        reason: String,
    },
}

impl ImageRef {
    /// Parses `value` for `architecture` with the reference's rules (spec §1.3).
    pub fn parse(
        value: &str,
        known: KnownRegistries<'_>,
        architecture: &str,
    ) -> Result<ImageRef, ImageRefError> {
        let invalid_name = |reason| ImageRefError::InvalidName {
            value: value.to_owned(),
            reason,
        };
        if value.contains("://") || value.starts_with("//") {
            return Err(invalid_name("a reference is not a URL"));
        }
        let (registry, rest, default_namespace) = match value.split_once('/') {
            None => (DEFAULT_REGISTRY, value, true),
            Some((first, rest)) if is_known_registry(first, known) => {
                let docker_hub = first.ends_with(".docker.io") || first == "docker.io";
                (first, rest, docker_hub)
            }
            Some((first, rest)) if known == KnownRegistries::Any => (first, rest, false),
            Some(_) => (DEFAULT_REGISTRY, value, true),
        };
        let (name, tag) = match rest.rsplit_once(':') {
            Some((name, tag)) => (name, tag),
            None => (rest, "latest"),
        };
        if name.is_empty() {
            return Err(invalid_name("the repository name is empty"));
        }
        validate_tag(tag).map_err(|reason| ImageRefError::InvalidTag {
            tag: tag.to_owned(),
            value: value.to_owned(),
            reason,
        })?;
        let name = if default_namespace && !name.contains('/') {
            format!("{DEFAULT_REPOSITORY}/{name}")
        } else {
            name.to_owned()
        };
        Ok(ImageRef {
            registry: registry.to_owned(),
            name,
            tag: tag.to_owned(),
            architecture: normalize_architecture(architecture).to_owned(),
        })
    }

    /// `{registry}/{name}:{tag}`, the form `images.name` stores.
    pub fn canonical(&self) -> String {
        format!("{}/{}:{}", self.registry, self.name, self.tag)
    }

    /// `{name}:{tag}`, without the registry.
    pub fn short(&self) -> String {
        format!("{}:{}", self.name, self.tag)
    }

    /// The registry name (the etcd key of its configuration, not necessarily a host).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path, e.g. `stable/python`.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// The normalised architecture, e.g. `x86_64` or `aarch64`.
    pub fn architecture(&self) -> &str {
        &self.architecture
    }
}

impl fmt::Display for ImageRef {
    /// The canonical form followed by the architecture, as the reference prints image rows:
    /// `cr.backend.ai/stable/python:3.9 (x86_64)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}:{} ({})",
            self.registry, self.name, self.tag, self.architecture
        )
    }
}

/// `common/docker.py: is_known_registry`: the default registry, a listed name, or an IP address
/// (optionally with a port), whichever list the caller has.
fn is_known_registry(segment: &str, known: KnownRegistries<'_>) -> bool {
    segment == DEFAULT_REGISTRY
        || matches!(known, KnownRegistries::Listed(names) if names.contains(&segment))
        || is_ip_address_with_port(segment)
}

/// `1.2.3.4`, `1.2.3.4:5000`, `[::1]` or `[::1]:5000`: what the reference's
/// `ipaddress.ip_address(yarl.URL("//" + segment).host)` accepts.
fn is_ip_address_with_port(segment: &str) -> bool {
    let port_is_valid = |port: &str| port.parse::<u16>().is_ok();
    if let Some(bracketed) = segment.strip_prefix('[') {
        let Some((host, after)) = bracketed.split_once(']') else {
            return false;
        };
        let port_ok = after.is_empty() || after.strip_prefix(':').is_some_and(port_is_valid);
        return port_ok && host.parse::<Ipv6Addr>().is_ok();
    }
    let (host, port_ok) = match segment.split_once(':') {
        Some((host, port)) => (host, port_is_valid(port)),
        None => (segment, true),
    };
    port_ok && host.parse::<Ipv4Addr>().is_ok()
}

/// The reference's two tag rules: the whole tag matches
/// `^[A-Za-z0-9](?:[A-Za-z0-9-._]*[A-Za-z0-9])?$`, and after the first `-`-separated piece (the
/// version, free-form) every piece is a platform tag `^[a-zA-Z_]+(\d+(\.\d+)*[a-z0-9]*)?$` whose
/// key (the leading letters) appears only once.
fn validate_tag(tag: &str) -> Result<(), String> {
    let is_edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let is_inner = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_');
    if !(is_edge(tag.chars().next()) && is_edge(tag.chars().last()) && tag.chars().all(is_inner)) {
        return Err("a tag starts and ends with a letter or digit and holds only letters, digits, '-', '.' and '_'".to_owned());
    }
    let mut keys = BTreeSet::new();
    for piece in tag.split('-').skip(1) {
        let key_len = piece
            .find(|c: char| !(c.is_ascii_alphabetic() || c == '_'))
            .unwrap_or(piece.len());
        let (key, version) = piece.split_at(key_len);
        if key.is_empty() || !is_platform_version(version) {
            return Err(format!(
                "the platform tag {piece:?} is not letters followed by an optional version (e.g. ubuntu20.04, py39, cuda12.1)"
            ));
        }
        if !keys.insert(key) {
            return Err(format!("the platform tag {key:?} appears twice"));
        }
    }
    Ok(())
}

/// `(\d+(\.\d+)*[a-z0-9]*)?`: empty, or digits, dot-separated digit groups, then lowercase letters
/// and digits.
fn is_platform_version(version: &str) -> bool {
    if version.is_empty() {
        return true;
    }
    let digits = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let leading = digits(version);
    if leading == 0 {
        return false;
    }
    let mut rest = &version[leading..];
    // A dot is only ever consumed by a `.digits` group, so taking every such group greedily
    // accepts exactly what the backtracking regex accepts.
    while let Some(after_dot) = rest.strip_prefix('.') {
        let group = digits(after_dot);
        if group == 0 {
            break;
        }
        rest = &after_dot[group..];
    }
    rest.chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::{ImageRef, ImageRefError, KnownRegistries, normalize_architecture};

    fn canonical(value: &str, known: KnownRegistries<'_>) -> String {
        ImageRef::parse(value, known, "x86_64")
            .unwrap_or_else(|error| panic!("{value}: {error}"))
            .canonical()
    }

    #[test]
    fn bare_names_go_to_docker_hub_under_lablup() {
        let known = KnownRegistries::Listed(&["cr.backend.ai"]);
        assert_eq!(
            canonical("python", known),
            "index.docker.io/lablup/python:latest"
        );
        assert_eq!(
            canonical("python:3.9", KnownRegistries::Any),
            "index.docker.io/lablup/python:3.9"
        );
    }

    #[test]
    fn the_first_segment_depends_on_the_known_registries() {
        let known = KnownRegistries::Listed(&["cr.backend.ai"]);
        assert_eq!(
            canonical("lablup/python:3.9", known),
            "index.docker.io/lablup/python:3.9"
        );
        assert_eq!(
            canonical("lablup/python:3.9", KnownRegistries::Any),
            "lablup/python:3.9"
        );
        assert_eq!(
            canonical("cr.backend.ai/stable/python:3.9-ubuntu20.04", known),
            "cr.backend.ai/stable/python:3.9-ubuntu20.04"
        );
        assert_eq!(
            canonical("cr.backend.ai/python", known),
            "cr.backend.ai/python:latest",
            "no default namespace outside Docker Hub"
        );
        assert_eq!(
            canonical("index.docker.io/python", KnownRegistries::Listed(&[])),
            "index.docker.io/lablup/python:latest"
        );
        assert_eq!(
            canonical("registry-1.docker.io/python", KnownRegistries::Any),
            "registry-1.docker.io/python:latest",
            "with Any the first segment is not 'known', so no namespace"
        );
        assert_eq!(
            canonical(
                "registry-1.docker.io/python",
                KnownRegistries::Listed(&["registry-1.docker.io"])
            ),
            "registry-1.docker.io/lablup/python:latest"
        );
    }

    #[test]
    fn ip_addresses_are_always_registries() {
        let none = KnownRegistries::Listed(&[]);
        assert_eq!(
            canonical("127.0.0.1:5000/test/python:1", none),
            "127.0.0.1:5000/test/python:1"
        );
        assert_eq!(canonical("10.0.0.1/python", none), "10.0.0.1/python:latest");
        assert_eq!(canonical("[::1]:5000/a/b:1", none), "[::1]:5000/a/b:1");
    }

    #[test]
    fn an_unknown_host_with_a_port_yields_a_bad_tag() {
        let error = ImageRef::parse(
            "localhost:5000/python",
            KnownRegistries::Listed(&[]),
            "x86_64",
        )
        .expect_err("tag 5000/python");
        assert!(
            matches!(&error, ImageRefError::InvalidTag { tag, .. } if tag == "5000/python"),
            "{error:?}"
        );
    }

    #[test]
    fn architectures_are_normalised() {
        let parsed = ImageRef::parse("a/b:1", KnownRegistries::Any, "arm64").expect("parse");
        assert_eq!(parsed.architecture(), "aarch64");
        assert_eq!(parsed.to_string(), "a/b:1 (aarch64)");
        assert_eq!(normalize_architecture("amd64"), "x86_64");
        assert_eq!(normalize_architecture("x64"), "x86_64");
        assert_eq!(normalize_architecture("i686"), "x86");
        assert_eq!(normalize_architecture("x32"), "x86");
        assert_eq!(normalize_architecture("riscv64"), "riscv64");
        let x86 = ImageRef::parse("a/b:1", KnownRegistries::Any, "amd64").expect("parse");
        let x86_again = ImageRef::parse("a/b:1", KnownRegistries::Any, "x86_64").expect("parse");
        assert_eq!(x86, x86_again);
        assert_ne!(x86, parsed);
    }

    #[test]
    fn names_that_are_not_references() {
        for value in [
            "https://cr.backend.ai/a:1",
            "//cr.backend.ai/a",
            ":1",
            "reg/:1",
        ] {
            let error = ImageRef::parse(value, KnownRegistries::Any, "x86_64").expect_err(value);
            assert!(
                matches!(error, ImageRefError::InvalidName { .. }),
                "{value}: {error:?}"
            );
        }
    }

    #[test]
    fn tag_rules() {
        let parse =
            |tag: &str| ImageRef::parse(&format!("r/i:{tag}"), KnownRegistries::Any, "x86_64");
        for good in [
            "3.9",
            "latest",
            "3.9-ubuntu20.04",
            "23.09-py310-cuda12.1",
            "1.0-cuda_compat11",
            "2.0-ubuntu22.04-py3.10a",
            "x-ubuntu",
        ] {
            assert!(parse(good).is_ok(), "{good}: {:?}", parse(good));
        }
        for bad in [
            "-3.9",
            "3.9-",
            "3.9/x",
            "3.9-ubuntu-ubuntu20.04",
            "3.9-20.04",
            "3.9--ubuntu",
            "3.9-ubuntu20.x",
            "3.9-py3.",
            "3.9-Ubuntu20.04A",
        ] {
            let error = parse(bad).expect_err(bad);
            assert!(
                matches!(&error, ImageRefError::InvalidTag { tag, .. } if tag == bad),
                "{bad}: {error:?}"
            );
            assert!(error.to_string().contains(bad), "{error}");
        }
    }

    #[test]
    fn short_and_parts() {
        let parsed = ImageRef::parse(
            "cr.backend.ai/stable/python:3.9-ubuntu20.04",
            KnownRegistries::Listed(&["cr.backend.ai"]),
            "aarch64",
        )
        .expect("parse");
        assert_eq!(parsed.registry(), "cr.backend.ai");
        assert_eq!(parsed.name(), "stable/python");
        assert_eq!(parsed.tag(), "3.9-ubuntu20.04");
        assert_eq!(parsed.short(), "stable/python:3.9-ubuntu20.04");
    }
}
