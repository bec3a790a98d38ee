//! Tidy rules of docs/ARCHITECTURE.md and ../shared/style.md, checked on the source tree.

use std::path::{Path, PathBuf};

use workspace_tests::{Member, members, workspace_root};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(rust_files(&path));
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
    found
}

fn library_members() -> Vec<Member> {
    members()
        .into_iter()
        .filter(|member| member.dir.join("src/lib.rs").is_file())
        .collect()
}

#[test]
fn every_library_opens_with_a_doc_comment_saying_what_it_must_not_do() {
    for member in library_members() {
        let lib = std::fs::read_to_string(member.dir.join("src/lib.rs")).expect("lib.rs reads");
        assert!(
            lib.starts_with("//!"),
            "{}: lib.rs must open with a //! doc comment",
            member.name
        );
        let header: String = lib
            .lines()
            .take_while(|line| line.starts_with("//!"))
            .collect();
        assert!(
            header.contains("must not"),
            "{}: the lib.rs header must say what the crate must not do",
            member.name
        );
    }
}

#[test]
fn every_member_uses_the_workspace_lints_and_dependency_versions() {
    for member in members() {
        let lints = member
            .manifest
            .get("lints")
            .and_then(|l| l.get("workspace"));
        assert_eq!(
            lints.and_then(toml::Value::as_bool),
            Some(true),
            "{}: needs [lints] workspace = true",
            member.name
        );
        for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
            let Some(deps) = member.manifest.get(section).and_then(toml::Value::as_table) else {
                continue;
            };
            for (dep, spec) in deps {
                let from_workspace =
                    spec.get("workspace").and_then(toml::Value::as_bool) == Some(true);
                assert!(
                    from_workspace,
                    "{}: [{section}] {dep} must be `{dep}.workspace = true` (versions live in the root Cargo.toml)",
                    member.name
                );
            }
        }
    }
}

#[test]
fn no_stubs_or_ignored_tests() {
    let forbidden = ["todo!(", "unimplemented!(", "#[ignore"];
    let root = workspace_root();
    for dir in ["crates", "bins", "xtask", "tests/src"] {
        for file in rust_files(&root.join(dir)) {
            let text = std::fs::read_to_string(&file).expect("source reads");
            for pattern in forbidden {
                assert!(
                    !text.contains(pattern),
                    "{}: contains {pattern}",
                    file.strip_prefix(&root).unwrap_or(&file).display()
                );
            }
        }
    }
}

#[test]
fn the_architecture_map_names_every_crate() {
    let map =
        std::fs::read_to_string(workspace_root().join("docs/ARCHITECTURE.md")).expect("map reads");
    for member in members() {
        let dir = member
            .dir
            .strip_prefix(workspace_root())
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        assert!(
            map.contains(&format!("`{dir}`")),
            "docs/ARCHITECTURE.md does not mention `{dir}` ({})",
            member.name
        );
    }
}

#[test]
fn libraries_use_typed_errors_and_leave_anyhow_to_the_edges() {
    for member in library_members() {
        let deps = member
            .manifest
            .get("dependencies")
            .and_then(toml::Value::as_table);
        let uses_anyhow = deps.is_some_and(|deps| deps.contains_key("anyhow"));
        assert!(
            !uses_anyhow,
            "{}: library crates return their own thiserror enums, not anyhow",
            member.name
        );
    }
}

/// Each store has one crate that talks to it; the Redis client belongs to `bai-redis` alone.
#[test]
fn only_bai_redis_depends_on_the_redis_client() {
    for member in members() {
        if member.name == "bai-redis" {
            continue;
        }
        for section in ["dependencies", "dev-dependencies", "build-dependencies"] {
            let deps = member.manifest.get(section).and_then(toml::Value::as_table);
            assert!(
                !deps.is_some_and(|deps| deps.contains_key("fred")),
                "{}: [{section}] names fred; talk to Redis through bai-redis",
                member.name
            );
        }
    }
}
