//! `manager-cli image ...`.

use bai_db_models::queries::images::LimitRange;
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// List every image of the catalogue as `CANONICAL (ARCHITECTURE)`.
    List {
        /// Print a table of canonical names and config digests instead.
        #[arg(short, long)]
        short: bool,
        /// Only images some agent has (Redis database 3), with those agents' ids.
        #[arg(short, long)]
        installed: bool,
        /// Print a JSON array of `{"canonical", "architecture", "config_digest"}` (with
        /// `"agents"` when --installed) instead.
        #[arg(long)]
        json: bool,
    },
    /// Show the details of an image (a canonical reference or an alias) as JSON.
    Inspect {
        canonical_or_alias: String,
        architecture: String,
    },
    /// Forget (delete) an image; refused while aliases point to it.
    Forget {
        canonical_or_alias: String,
        architecture: String,
    },
    /// Set the MIN:MAX limits of one resource slot of an image; an empty side keeps that bound.
    SetResourceLimit {
        canonical_or_alias: String,
        slot_type: String,
        #[arg(value_name = "MIN:MAX", allow_hyphen_values = true)]
        range: LimitRange,
        architecture: String,
    },
    /// Add ALIAS for the image TARGET (a canonical reference) of ARCHITECTURE.
    Alias {
        alias: String,
        target: String,
        architecture: String,
    },
    /// Remove an alias.
    Dealias { alias: String },
    /// Read the registries configured in etcd (or one REGISTRY/IMAGE[:TAG]) into the catalogue.
    Rescan(super::image_rescan::RescanArgs),
}
