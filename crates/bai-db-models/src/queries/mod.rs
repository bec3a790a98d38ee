//! Typed queries the API and scheduler crates need, returning entity models (or small structs of
//! them) and [`DbError`](crate::DbError)s that say what was being looked up.
//!
//! Each takes any [`ConnectionTrait`](sea_orm::ConnectionTrait), so it runs on the pool or inside a
//! transaction alike.

pub mod agent_listing;
pub mod agent_registry;
pub mod agent_slots;
pub mod auth;
pub mod domains;
pub mod dotfiles;
pub mod endpoints;
pub mod error_logs;
pub mod event_feed;
pub mod groups;
pub mod history;
pub mod idle;
pub mod image_admin;
pub mod image_listing;
pub mod image_scan;
pub mod images;
pub mod kernel_listing;
pub mod kernels;
pub mod keypair_admin;
pub mod keypair_listing;
pub mod keypairs;
pub mod occupancy;
pub mod project_membership;
pub mod quota_scopes;
pub mod resource_policies;
pub mod resource_presets;
pub mod scaling_groups;
pub mod scheduling;
pub mod session_batch;
pub mod session_destroy;
pub mod session_enqueue;
pub mod session_faults;
pub mod session_lifecycle;
pub mod session_listing;
pub mod session_ops;
pub mod session_templates;
pub mod stalled_starts;
pub mod usage;
pub mod user_admin;
pub mod user_listing;
pub mod users;
pub mod vfolders;

#[cfg(test)]
mod test_rows;

/// Refuses, as `no such <what> "<name>"`, a row of `E` (keyed by its name) that does not exist:
/// the check every write makes on the domain or policy it refers to.
pub(crate) async fn require_named<E>(
    db: &impl sea_orm::ConnectionTrait,
    name: &str,
    what: &str,
) -> Result<(), crate::WriteError>
where
    E: sea_orm::EntityTrait,
    E::Model: Sync,
    <E::PrimaryKey as sea_orm::PrimaryKeyTrait>::ValueType: From<String>,
{
    use sea_orm::PaginatorTrait;

    let found = E::find_by_id(name.to_owned())
        .count(db)
        .await
        .map_err(crate::DbError::query(format!("reading {what} {name:?}")))?;
    if found == 0 {
        return Err(crate::WriteError::Rejected(format!(
            "no such {what} {name:?}"
        )));
    }
    Ok(())
}
