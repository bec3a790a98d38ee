//! `vfolder_host_permissions`: the atomic permissions a storage host can grant (what `backend.ai
//! admin permission list` prints and the WebUI offers when an admin edits allowed hosts). Every
//! signed-in caller may ask, as in the reference; the list is fixed, in the reference's order.

use async_graphql::{Object, SimpleObject};
use bai_db_models::entities::VFolderHostPermission;

/// The reference's `PredefinedAtomicPermission`.
#[derive(SimpleObject, Debug)]
#[graphql(rename_fields = "snake_case")]
pub(super) struct PredefinedAtomicPermission {
    vfolder_host_permission_list: Vec<Option<String>>,
}

#[derive(Default, Debug)]
pub struct PermissionQuery;

#[Object(rename_fields = "snake_case")]
impl PermissionQuery {
    async fn vfolder_host_permissions(&self) -> Option<PredefinedAtomicPermission> {
        Some(PredefinedAtomicPermission {
            vfolder_host_permission_list: VFolderHostPermission::ALL
                .iter()
                .map(|permission| Some(permission.as_str().to_owned()))
                .collect(),
        })
    }
}
