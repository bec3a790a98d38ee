//! Workspace-wide checks run as ordinary tests (see `tests/tidy.rs`), plus the helpers they share:
//! where the workspace is and which member crates it has.
//!
//! This crate must not be a dependency of any product crate; it only reads the source tree.

use std::path::{Path, PathBuf};

/// The workspace root (the folder holding the top-level Cargo.toml).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// A member package of the workspace.
#[derive(Debug)]
pub struct Member {
    pub name: String,
    pub dir: PathBuf,
    pub manifest: toml::Table,
}

/// Every member package, read from the member folders the root manifest names.
pub fn members() -> Vec<Member> {
    let root = workspace_root();
    let mut members = Vec::new();
    for group in ["crates", "bins"] {
        let Ok(entries) = std::fs::read_dir(root.join(group)) else {
            continue;
        };
        for entry in entries.flatten() {
            members.extend(read_member(&entry.path()));
        }
    }
    for single in ["xtask", "tests"] {
        members.extend(read_member(&root.join(single)));
    }
    members.sort_by(|a, b| a.name.cmp(&b.name));
    members
}

fn read_member(dir: &Path) -> Option<Member> {
    let text = std::fs::read_to_string(dir.join("Cargo.toml")).ok()?;
    let manifest: toml::Table = text.parse().ok()?;
    let name = manifest.get("package")?.get("name")?.as_str()?.to_owned();
    Some(Member {
        name,
        dir: dir.to_owned(),
        manifest,
    })
}
