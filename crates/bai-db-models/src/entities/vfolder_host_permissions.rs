//! `VFolderHostPermissions`: which vfolder operations a domain, project or keypair resource policy
//! allows on each storage host, kept in the reference's `VFolderHostPermissionColumn` jsonb columns
//! (`allowed_vfolder_hosts`) as `{"<proxy>:<volume>": ["create-vfolder", ...]}`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use sea_orm::FromJsonQueryResult;
use serde::{Deserialize, Deserializer, Serialize};

/// Storage host (`proxy:volume`) -> the permissions granted on it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, FromJsonQueryResult)]
pub struct VFolderHostPermissions(BTreeMap<String, BTreeSet<VFolderHostPermission>>);

/// One vfolder operation on a host. These eight are the only values the reference accepts in the
/// column; any other string makes the row unreadable there, and here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum VFolderHostPermission {
    #[serde(rename = "create-vfolder")]
    CreateVfolder,
    #[serde(rename = "modify-vfolder")]
    ModifyVfolder,
    #[serde(rename = "delete-vfolder")]
    DeleteVfolder,
    #[serde(rename = "mount-in-session")]
    MountInSession,
    #[serde(rename = "upload-file")]
    UploadFile,
    #[serde(rename = "download-file")]
    DownloadFile,
    #[serde(rename = "invite-others")]
    InviteOthers,
    #[serde(rename = "set-user-specific-permission")]
    SetUserSpecificPermission,
}

/// A permission string outside the eight of [`VFolderHostPermission`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown vfolder host permission {0:?}")]
pub struct UnknownVFolderHostPermission(pub String);

impl VFolderHostPermissions {
    pub fn new() -> VFolderHostPermissions {
        VFolderHostPermissions::default()
    }

    /// Every permission on each of `hosts`: what the install guide grants the default domain.
    pub fn all_on<I, S>(hosts: I) -> VFolderHostPermissions
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        hosts
            .into_iter()
            .map(|host| {
                (
                    host.into(),
                    VFolderHostPermission::ALL.into_iter().collect(),
                )
            })
            .collect()
    }

    /// The permissions on `host`, if the host is listed at all.
    pub fn get(&self, host: &str) -> Option<&BTreeSet<VFolderHostPermission>> {
        self.0.get(host)
    }

    pub fn allows(&self, host: &str, permission: VFolderHostPermission) -> bool {
        self.0
            .get(host)
            .is_some_and(|permissions| permissions.contains(&permission))
    }

    pub fn insert(
        &mut self,
        host: impl Into<String>,
        permissions: BTreeSet<VFolderHostPermission>,
    ) {
        self.0.insert(host.into(), permissions);
    }

    pub fn hosts(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn as_map(&self) -> &BTreeMap<String, BTreeSet<VFolderHostPermission>> {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(String, BTreeSet<VFolderHostPermission>)> for VFolderHostPermissions {
    fn from_iter<I: IntoIterator<Item = (String, BTreeSet<VFolderHostPermission>)>>(
        iter: I,
    ) -> Self {
        VFolderHostPermissions(iter.into_iter().collect())
    }
}

/// The reference binds `None` as `{}`; a JSON `null` therefore reads as no hosts.
impl<'de> Deserialize<'de> for VFolderHostPermissions {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map =
            Option::<BTreeMap<String, BTreeSet<VFolderHostPermission>>>::deserialize(deserializer)?;
        Ok(VFolderHostPermissions(map.unwrap_or_default()))
    }
}

impl VFolderHostPermission {
    /// All eight, in the reference's declaration order.
    pub const ALL: [VFolderHostPermission; 8] = [
        VFolderHostPermission::CreateVfolder,
        VFolderHostPermission::ModifyVfolder,
        VFolderHostPermission::DeleteVfolder,
        VFolderHostPermission::MountInSession,
        VFolderHostPermission::UploadFile,
        VFolderHostPermission::DownloadFile,
        VFolderHostPermission::InviteOthers,
        VFolderHostPermission::SetUserSpecificPermission,
    ];

    /// The stored (and wire) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            VFolderHostPermission::CreateVfolder => "create-vfolder",
            VFolderHostPermission::ModifyVfolder => "modify-vfolder",
            VFolderHostPermission::DeleteVfolder => "delete-vfolder",
            VFolderHostPermission::MountInSession => "mount-in-session",
            VFolderHostPermission::UploadFile => "upload-file",
            VFolderHostPermission::DownloadFile => "download-file",
            VFolderHostPermission::InviteOthers => "invite-others",
            VFolderHostPermission::SetUserSpecificPermission => "set-user-specific-permission",
        }
    }
}

impl fmt::Display for VFolderHostPermission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for VFolderHostPermission {
    type Err = UnknownVFolderHostPermission;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        VFolderHostPermission::ALL
            .into_iter()
            .find(|permission| permission.as_str() == text)
            .ok_or_else(|| UnknownVFolderHostPermission(text.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_install_guide_grant_reads_as_all_eight() {
        let stored = json!({"bai-m1:local": ["create-vfolder", "modify-vfolder", "delete-vfolder",
            "mount-in-session", "upload-file", "download-file", "invite-others",
            "set-user-specific-permission"]});
        let permissions: VFolderHostPermissions =
            serde_json::from_value(stored.clone()).expect("reads");
        assert_eq!(
            permissions,
            VFolderHostPermissions::all_on(["bai-m1:local"])
        );
        assert!(permissions.allows("bai-m1:local", VFolderHostPermission::InviteOthers));
        assert!(!permissions.allows("other:volume", VFolderHostPermission::UploadFile));
        assert_eq!(serde_json::to_value(&permissions).expect("writes"), stored);
    }

    #[test]
    fn unknown_permissions_are_refused_and_duplicates_collapse() {
        let error = serde_json::from_value::<VFolderHostPermissions>(
            json!({"local:volume1": ["create-vfolder", "read-vfolder"]}),
        )
        .expect_err("refused");
        assert!(error.to_string().contains("read-vfolder"), "{error}");
        let permissions: VFolderHostPermissions =
            serde_json::from_value(json!({"local:volume1": ["upload-file", "upload-file"]}))
                .expect("reads");
        assert_eq!(
            serde_json::to_value(&permissions).expect("writes"),
            json!({"local:volume1": ["upload-file"]})
        );
    }

    #[test]
    fn null_reads_as_no_hosts() {
        let permissions: VFolderHostPermissions =
            serde_json::from_value(json!(null)).expect("reads");
        assert!(permissions.is_empty());
    }

    #[test]
    fn strings_round_trip() {
        for permission in VFolderHostPermission::ALL {
            assert_eq!(permission.as_str().parse(), Ok(permission));
            assert_eq!(
                serde_json::to_value(permission).expect("writes"),
                json!(permission.as_str())
            );
        }
        assert_eq!(
            "mount".parse::<VFolderHostPermission>(),
            Err(UnknownVFolderHostPermission("mount".to_owned()))
        );
    }
}
