//! The image catalogue's source: scans the container registries configured in etcd
//! (`config/docker/registry/*`: Docker Registry v2 and Harbor v2) for Backend.AI kernel images,
//! reads their manifests, config blobs and labels, and upserts what it finds into `images` through
//! `bai-db-models`, reporting each image as added, updated, unchanged, skipped or failed; removes
//! an image's tag from a Harbor 2 registry (`untag`).
//!
//! It must not stop a scan because one image or tag is bad (that image is reported, the rest is
//! saved), write SQL itself (that is `bai-db-models`), print (callers show progress through the
//! reporter they pass), or log registry passwords.

mod client;
mod docker;
mod error;
mod harbor;
mod labels;
mod probe;
mod scan;
#[cfg(feature = "testing")]
pub mod testing;
mod untag;

pub use error::ScanError;
pub use probe::{ProbeError, ProbeReply, probe};
pub use scan::{Outcome, Reporter, ScanItem, ScanOptions, ScanSummary, ScanTarget, scan};
pub use untag::{UntagError, untag};
