//! Virtual folders a user can reach: their own, those shared with them by invitation, and their
//! projects' (the reference's `query_accessible_vfolders`), plus the invitations between users.

use std::collections::{BTreeSet, HashMap};

use sea_orm::prelude::Uuid;
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, EntityTrait, JoinType, QueryFilter, QueryOrder,
    QuerySelect, RelationDef, RelationTrait, Select,
};

use crate::entities::enums::{
    UserRole, VFolderInvitationState, VFolderOperationStatus, VFolderOwnershipType,
    VFolderPermission,
};
use crate::entities::{
    VFolderHostPermissions, association_groups_users, domains, groups, users, vfolder_invitations,
    vfolder_permissions, vfolders,
};
use crate::error::DbError;

/// Who asks: the user whose folders are listed (for a superadmin acting on behalf of another user,
/// that user's uuid and role), and the domain their project folders are looked up in.
#[derive(Clone, Copy, Debug)]
pub struct Requester<'a> {
    pub uuid: Uuid,
    pub role: UserRole,
    pub domain_name: &'a str,
}

/// A named set of vfolder statuses (the reference's `VFolderStatusSet` and `vfolder_status_map`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VFolderStatusSet {
    /// Normal: readable, mountable and cloneable, or failed, or waiting in the trash bin.
    Readable,
    Mountable,
    /// Idle: not being cloned or removed.
    Updatable,
    /// Like `Updatable` but not mounted.
    Deletable,
    /// In the trash bin or removed from storage.
    Purgable,
    /// In the trash bin.
    Recoverable,
    /// Removed from storage; only the row is kept.
    Inaccessible,
}

impl VFolderStatusSet {
    /// The operation statuses the set stands for.
    pub fn statuses(self) -> &'static [VFolderOperationStatus] {
        use VFolderOperationStatus as S;
        match self {
            VFolderStatusSet::Readable => &[
                S::Ready,
                S::Performing,
                S::Cloning,
                S::Mounted,
                S::Error,
                S::DeletePending,
            ],
            VFolderStatusSet::Mountable => &[S::Ready, S::Performing, S::Cloning, S::Mounted],
            VFolderStatusSet::Updatable => &[S::Ready, S::Mounted],
            VFolderStatusSet::Deletable => &[S::Ready],
            VFolderStatusSet::Purgable => &[S::DeletePending, S::DeleteComplete],
            VFolderStatusSet::Recoverable => &[S::DeletePending],
            VFolderStatusSet::Inaccessible => &[S::DeleteComplete],
        }
    }
}

/// Narrows [`accessible_vfolders`]; `AccessFilter::default()` is the reference's call with no
/// keyword arguments. Each condition is on `vfolders` columns (e.g.
/// `Condition::all().add(vfolders::Column::Name.eq("models"))`).
#[derive(Clone, Debug, Default)]
pub struct AccessFilter {
    /// `allow_privileged_access`: an admin or superadmin sees every user's own folders, not just
    /// theirs.
    pub privileged_access: bool,
    /// `allowed_status_set`: the statuses user folders (own and shared) may be in; `None` means all
    /// but [`VFolderStatusSet::Inaccessible`]. Project folders are not filtered by status, as in
    /// the reference.
    pub status: Option<VFolderStatusSet>,
    /// `extra_vf_conds`: applies to every kind of folder.
    pub folders: Option<Condition>,
    /// `extra_vf_user_conds`: despite the name, the reference applies it to every kind of folder
    /// too, and so do we.
    pub user_folders: Option<Condition>,
    /// `extra_invited_vf_conds`: applies to folders shared with the requester only.
    pub invited_folders: Option<Condition>,
    /// `extra_vf_group_conds`: applies to project folders only.
    pub group_folders: Option<Condition>,
}

impl AccessFilter {
    /// `list_folders`'s `extra_vf_conds` for a project: that project's folders and every user
    /// folder.
    pub fn project_or_user_folders(project: Uuid) -> AccessFilter {
        AccessFilter {
            folders: Some(
                Condition::any()
                    .add(vfolders::Column::Group.eq(project))
                    .add(vfolders::Column::User.is_not_null()),
            ),
            ..AccessFilter::default()
        }
    }
}

/// One folder the requester can reach, and how.
#[derive(Clone, Debug, PartialEq)]
pub struct AccessibleVFolder {
    pub folder: vfolders::Model,
    /// The requester's own folder, or (for an admin or superadmin) any project folder listed.
    pub is_owner: bool,
    /// The folder's own permission, or the one it was shared with, or the per-user override on a
    /// project folder. `None` only when the row has none.
    pub permission: Option<VFolderPermission>,
    /// The owning user's email, for user folders (own or shared).
    pub user_email: Option<String>,
    /// The owning project's name, for project folders.
    pub group_name: Option<String>,
}

/// The folders `requester` can reach, of the `allowed_types` (the keys of etcd `volumes/_types`;
/// the reference's legacy default is `[User]`), narrowed by `filter`: the reference's
/// `query_accessible_vfolders`.
///
/// In order: the requester's own folders, those shared with them (`vfolder_permissions`, user
/// folders only), then project folders: of the domain's projects for a domain admin, of every
/// project for a superadmin, of the projects they belong to otherwise. A project folder's
/// permission is replaced by the requester's `vfolder_permissions` row on it, if any.
///
/// For example, the model folder `id` the requester may mount:
///
/// ```ignore
/// let filter = AccessFilter {
///     status: Some(VFolderStatusSet::Mountable),
///     folders: Some(Condition::all().add(vfolders::Column::Id.eq(id))),
///     ..AccessFilter::default()
/// };
/// let found = accessible_vfolders(db, &requester, &[User, Group], &filter).await?;
/// ```
pub async fn accessible_vfolders(
    db: &impl ConnectionTrait,
    requester: &Requester<'_>,
    allowed_types: &[VFolderOwnershipType],
    filter: &AccessFilter,
) -> Result<Vec<AccessibleVFolder>, DbError> {
    let mut found = Vec::new();
    if allowed_types.contains(&VFolderOwnershipType::User) {
        found.extend(own_folders(db, requester, filter).await?);
        found.extend(shared_folders(db, requester, filter).await?);
    }
    if allowed_types.contains(&VFolderOwnershipType::Group) {
        found.extend(project_folders(db, requester, filter).await?);
    }
    Ok(found)
}

/// `vfolders.user` -> `users.uuid`: not a foreign key since 24.03, so no entity relation.
fn owning_user() -> RelationDef {
    vfolders::Entity::belongs_to(users::Entity)
        .from(vfolders::Column::User)
        .to(users::Column::Uuid)
        .into()
}

/// `vfolders.group` -> `groups.id`, likewise.
fn owning_project() -> RelationDef {
    vfolders::Entity::belongs_to(groups::Entity)
        .from(vfolders::Column::Group)
        .to(groups::Column::Id)
        .into()
}

/// The status condition of user folders.
fn status_condition(filter: &AccessFilter) -> Condition {
    match filter.status {
        Some(set) => Condition::all().add(vfolders::Column::Status.is_in(set.statuses().to_vec())),
        None => Condition::all().add(
            vfolders::Column::Status.is_not_in(VFolderStatusSet::Inaccessible.statuses().to_vec()),
        ),
    }
}

/// Adds the conditions the reference's `_append_entries` adds to every part.
fn with_common_conditions<E: EntityTrait>(
    mut select: Select<E>,
    filter: &AccessFilter,
) -> Select<E> {
    for condition in [&filter.folders, &filter.user_folders]
        .into_iter()
        .flatten()
    {
        select = select.filter(condition.clone());
    }
    select
}

async fn own_folders(
    db: &impl ConnectionTrait,
    requester: &Requester<'_>,
    filter: &AccessFilter,
) -> Result<Vec<AccessibleVFolder>, DbError> {
    let mut select = vfolders::Entity::find()
        .join(JoinType::InnerJoin, owning_user())
        .filter(status_condition(filter));
    let sees_everyone = filter.privileged_access
        && matches!(requester.role, UserRole::Admin | UserRole::Superadmin);
    if !sees_everyone {
        select = select.filter(vfolders::Column::User.eq(requester.uuid));
    }
    let rows = with_common_conditions(select, filter)
        .order_by_asc(vfolders::Column::CreatedAt)
        .order_by_asc(vfolders::Column::Id)
        .select_also(users::Entity)
        .all(db)
        .await
        .map_err(DbError::query(format!(
            "reading the vfolders of user {}",
            requester.uuid
        )))?;
    Ok(rows
        .into_iter()
        .map(|(folder, owner)| AccessibleVFolder {
            permission: folder.permission,
            folder,
            is_owner: true,
            user_email: owner.map(|owner| owner.email),
            group_name: None,
        })
        .collect())
}

async fn shared_folders(
    db: &impl ConnectionTrait,
    requester: &Requester<'_>,
    filter: &AccessFilter,
) -> Result<Vec<AccessibleVFolder>, DbError> {
    let mut select = vfolder_permissions::Entity::find()
        .join(
            JoinType::InnerJoin,
            vfolder_permissions::Relation::Vfolder.def(),
        )
        .filter(vfolder_permissions::Column::User.eq(requester.uuid))
        .filter(vfolders::Column::OwnershipType.eq(VFolderOwnershipType::User))
        .filter(status_condition(filter));
    if let Some(condition) = &filter.invited_folders {
        select = select.filter(condition.clone());
    }
    let rows = with_common_conditions(select, filter)
        .order_by_asc(vfolders::Column::CreatedAt)
        .order_by_asc(vfolders::Column::Id)
        .select_also(vfolders::Entity)
        .all(db)
        .await
        .map_err(DbError::query(format!(
            "reading the vfolders shared with user {}",
            requester.uuid
        )))?;
    // The owner is an outer join in the reference: a folder whose owner is gone still shows.
    let owners: BTreeSet<Uuid> = rows
        .iter()
        .filter_map(|(_, folder)| folder.as_ref().and_then(|folder| folder.user))
        .collect();
    let emails: HashMap<Uuid, String> = if owners.is_empty() {
        HashMap::new()
    } else {
        users::Entity::find()
            .filter(users::Column::Uuid.is_in(owners))
            .all(db)
            .await
            .map_err(DbError::query("reading the owners of shared vfolders"))?
            .into_iter()
            .map(|owner| (owner.uuid, owner.email))
            .collect()
    };
    Ok(rows
        .into_iter()
        .filter_map(|(grant, folder)| {
            let folder = folder?;
            let user_email = folder.user.and_then(|owner| emails.get(&owner).cloned());
            Some(AccessibleVFolder {
                folder,
                is_owner: false,
                permission: grant.permission,
                user_email,
                group_name: None,
            })
        })
        .collect())
}

async fn project_folders(
    db: &impl ConnectionTrait,
    requester: &Requester<'_>,
    filter: &AccessFilter,
) -> Result<Vec<AccessibleVFolder>, DbError> {
    let project_ids: Vec<Uuid> = if requester.role == UserRole::Admin {
        groups::Entity::find()
            .filter(groups::Column::DomainName.eq(requester.domain_name))
            .select_only()
            .column(groups::Column::Id)
            .into_tuple()
            .all(db)
            .await
            .map_err(DbError::query(format!(
                "reading the projects of domain {:?}",
                requester.domain_name
            )))?
    } else {
        association_groups_users::Entity::find()
            .filter(association_groups_users::Column::UserId.eq(requester.uuid))
            .select_only()
            .column(association_groups_users::Column::GroupId)
            .into_tuple()
            .all(db)
            .await
            .map_err(DbError::query(format!(
                "reading the projects of member {}",
                requester.uuid
            )))?
    };
    let mut select = vfolders::Entity::find().join(JoinType::InnerJoin, owning_project());
    if requester.role != UserRole::Superadmin {
        select = select.filter(vfolders::Column::Group.is_in(project_ids.clone()));
    }
    if let Some(condition) = &filter.group_folders {
        select = select.filter(condition.clone());
    }
    let rows = with_common_conditions(select, filter)
        .order_by_asc(vfolders::Column::CreatedAt)
        .order_by_asc(vfolders::Column::Id)
        .select_also(groups::Entity)
        .all(db)
        .await
        .map_err(DbError::query(format!(
            "reading the project vfolders of user {}",
            requester.uuid
        )))?;

    let overrides: HashMap<Uuid, Option<VFolderPermission>> = with_common_conditions(
        vfolder_permissions::Entity::find()
            .join(
                JoinType::InnerJoin,
                vfolder_permissions::Relation::Vfolder.def(),
            )
            .filter(vfolders::Column::Group.is_in(project_ids))
            .filter(vfolder_permissions::Column::User.eq(requester.uuid))
            .filter(status_condition(filter)),
        filter,
    )
    .all(db)
    .await
    .map_err(DbError::query(format!(
        "reading the project vfolder permissions of user {}",
        requester.uuid
    )))?
    .into_iter()
    .map(|grant| (grant.vfolder, grant.permission))
    .collect();

    let is_owner = matches!(requester.role, UserRole::Admin | UserRole::Superadmin);
    Ok(rows
        .into_iter()
        .map(|(folder, project)| {
            let permission = match overrides.get(&folder.id) {
                Some(granted) if folder.ownership_type == VFolderOwnershipType::Group => *granted,
                _ => folder.permission,
            };
            AccessibleVFolder {
                folder,
                is_owner,
                permission,
                user_email: None,
                group_name: project.map(|project| project.name),
            }
        })
        .collect())
}

/// A pending invitation with the name of the folder it is for.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingInvitation {
    pub invitation: vfolder_invitations::Model,
    pub vfolder_name: String,
}

/// Who an invitation listing is about.
#[derive(Clone, Copy, Debug)]
pub enum InvitationParty<'a> {
    /// Invitations to this invitee. The reference compares with the caller's keypair `user_id`,
    /// which is their email.
    Invitee(&'a str),
    /// Invitations sent by this inviter's email.
    Inviter(&'a str),
}

/// The pending invitations to or from `party`, oldest first (the reference's `invitations` and
/// `list_sent_invitations`).
pub async fn pending_invitations(
    db: &impl ConnectionTrait,
    party: InvitationParty<'_>,
) -> Result<Vec<PendingInvitation>, DbError> {
    let (column, email) = match party {
        InvitationParty::Invitee(email) => (vfolder_invitations::Column::Invitee, email),
        InvitationParty::Inviter(email) => (vfolder_invitations::Column::Inviter, email),
    };
    let rows = vfolder_invitations::Entity::find()
        .join(
            JoinType::InnerJoin,
            vfolder_invitations::Relation::Vfolder.def(),
        )
        .filter(column.eq(email))
        .filter(vfolder_invitations::Column::State.eq(VFolderInvitationState::Pending))
        .order_by_asc(vfolder_invitations::Column::CreatedAt)
        .order_by_asc(vfolder_invitations::Column::Id)
        .select_also(vfolders::Entity)
        .all(db)
        .await
        .map_err(DbError::query(format!(
            "reading the invitations of {party:?}"
        )))?;
    Ok(rows
        .into_iter()
        .filter_map(|(invitation, folder)| {
            Some(PendingInvitation {
                vfolder_name: folder?.name,
                invitation,
            })
        })
        .collect())
}

/// The hosts a user may use for their own folders, with what they may do there (the reference's
/// `get_allowed_vfolder_hosts_by_user`): the union of the active domain's, of the active projects
/// of the domain the user belongs to (only `project` when given), and of `keypair_policy_hosts`
/// (the caller's keypair resource policy's `allowed_vfolder_hosts`).
pub async fn allowed_hosts_by_user(
    db: &impl ConnectionTrait,
    keypair_policy_hosts: &VFolderHostPermissions,
    domain_name: &str,
    user_uuid: Uuid,
    project: Option<Uuid>,
) -> Result<VFolderHostPermissions, DbError> {
    let mut allowed = active_domain_hosts(db, domain_name).await?;
    let mut select = groups::Entity::find()
        .join(
            JoinType::InnerJoin,
            groups::Relation::AssociationGroupsUsers.def(),
        )
        .filter(association_groups_users::Column::UserId.eq(user_uuid))
        .filter(groups::Column::DomainName.eq(domain_name))
        .filter(groups::Column::IsActive.eq(true));
    if let Some(project) = project {
        select = select.filter(groups::Column::Id.eq(project));
    }
    let projects = select.all(db).await.map_err(DbError::query(format!(
        "reading the vfolder hosts of the projects of member {user_uuid}"
    )))?;
    for project in &projects {
        allowed = union(&allowed, &project.allowed_vfolder_hosts);
    }
    Ok(union(&allowed, keypair_policy_hosts))
}

/// The hosts usable for project folders (the reference's `get_allowed_vfolder_hosts_by_group`):
/// the union of the active domain's, of the active `project` of the domain when given (else, for a
/// domain admin, of every active project of the domain), and of `keypair_policy_hosts`.
pub async fn allowed_hosts_by_project(
    db: &impl ConnectionTrait,
    keypair_policy_hosts: &VFolderHostPermissions,
    domain_name: &str,
    project: Option<Uuid>,
    domain_admin: bool,
) -> Result<VFolderHostPermissions, DbError> {
    let mut allowed = active_domain_hosts(db, domain_name).await?;
    let select = groups::Entity::find()
        .filter(groups::Column::DomainName.eq(domain_name))
        .filter(groups::Column::IsActive.eq(true));
    let select = match project {
        Some(project) => Some(select.filter(groups::Column::Id.eq(project))),
        None if domain_admin => Some(select),
        None => None,
    };
    if let Some(select) = select {
        let projects = select.all(db).await.map_err(DbError::query(format!(
            "reading the vfolder hosts of the projects of domain {domain_name:?}"
        )))?;
        for project in &projects {
            allowed = union(&allowed, &project.allowed_vfolder_hosts);
        }
    }
    Ok(union(&allowed, keypair_policy_hosts))
}

/// The `allowed_vfolder_hosts` of the domain `name` if it is active, else none.
async fn active_domain_hosts(
    db: &impl ConnectionTrait,
    name: &str,
) -> Result<VFolderHostPermissions, DbError> {
    let domain = domains::Entity::find_by_id(name.to_owned())
        .filter(domains::Column::IsActive.eq(true))
        .one(db)
        .await
        .map_err(DbError::query(format!(
            "reading the vfolder hosts of domain {name:?}"
        )))?;
    Ok(domain
        .map(|domain| domain.allowed_vfolder_hosts)
        .unwrap_or_default())
}

/// Every host of either map, with the permissions either grants there (the reference's
/// `VFolderHostPermissionMap.__or__`).
fn union(a: &VFolderHostPermissions, b: &VFolderHostPermissions) -> VFolderHostPermissions {
    let mut merged = a.as_map().clone();
    for (host, permissions) in b.as_map() {
        merged
            .entry(host.clone())
            .or_default()
            .extend(permissions.iter().copied());
    }
    merged.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use sea_orm::{ActiveModelTrait, ColumnTrait, Condition, Set};

    use super::{AccessFilter, Requester, VFolderStatusSet, accessible_vfolders};
    use crate::entities::enums::{
        UserRole, VFolderOperationStatus, VFolderOwnershipType, VFolderPermission, VFolderUsageMode,
    };
    use crate::entities::{association_groups_users, vfolder_permissions, vfolders};
    use crate::queries::test_rows::{self, Rows};
    use sea_orm::prelude::Uuid;

    fn folder(
        name: &str,
        owner: (VFolderOwnershipType, Uuid),
        status: VFolderOperationStatus,
    ) -> vfolders::ActiveModel {
        let (ownership_type, id) = owner;
        let is_user = ownership_type == VFolderOwnershipType::User;
        vfolders::ActiveModel {
            id: Set(Uuid::new_v4()),
            host: Set("local:volume1".to_owned()),
            quota_scope_id: Set(format!("{}:{id}", if is_user { "user" } else { "project" })),
            name: Set(name.to_owned()),
            usage_mode: Set(VFolderUsageMode::Model),
            permission: Set(Some(VFolderPermission::ReadWrite)),
            max_files: Set(None),
            max_size: Set(None),
            num_files: Set(None),
            cur_size: Set(None),
            last_used: Set(None),
            creator: Set(None),
            unmanaged_path: Set(None),
            ownership_type: Set(ownership_type),
            user: Set(is_user.then_some(id)),
            group: Set((!is_user).then_some(id)),
            cloneable: Set(false),
            status: Set(status),
            status_history: Set(None),
            status_changed: Set(None),
            ..Default::default()
        }
    }

    fn names(found: &[super::AccessibleVFolder]) -> Vec<(&str, bool, Option<VFolderPermission>)> {
        found
            .iter()
            .map(|entry| (entry.folder.name.as_str(), entry.is_owner, entry.permission))
            .collect()
    }

    #[tokio::test]
    async fn the_filter_narrows_by_status_condition_and_privilege() {
        let (test, rows) = test_rows::database("q_vfolders_access").await;
        let db = &test.connection;
        let other = test_rows::user(db, "other@lablup.com").await;
        let own = (VFolderOwnershipType::User, rows.user.uuid);
        let ready = folder("ready", own, VFolderOperationStatus::Ready)
            .insert(db)
            .await
            .expect("folder");
        folder("trashed", own, VFolderOperationStatus::DeletePending)
            .insert(db)
            .await
            .expect("folder");
        folder(
            "others",
            (VFolderOwnershipType::User, other.uuid),
            VFolderOperationStatus::Ready,
        )
        .insert(db)
        .await
        .expect("folder");
        let user = Requester {
            uuid: rows.user.uuid,
            role: UserRole::User,
            domain_name: Rows::DOMAIN,
        };
        let types = [VFolderOwnershipType::User, VFolderOwnershipType::Group];
        let rw = Some(VFolderPermission::ReadWrite);

        let all = accessible_vfolders(db, &user, &types, &AccessFilter::default())
            .await
            .expect("query");
        assert_eq!(names(&all), [("ready", true, rw), ("trashed", true, rw)]);
        assert_eq!(all[0].user_email.as_deref(), Some(Rows::EMAIL));

        let mountable = AccessFilter {
            status: Some(VFolderStatusSet::Mountable),
            ..AccessFilter::default()
        };
        let found = accessible_vfolders(db, &user, &types, &mountable)
            .await
            .expect("query");
        assert_eq!(names(&found), [("ready", true, rw)]);

        let by_id = AccessFilter {
            folders: Some(Condition::all().add(vfolders::Column::Id.eq(ready.id))),
            ..AccessFilter::default()
        };
        let found = accessible_vfolders(db, &user, &types, &by_id)
            .await
            .expect("query");
        assert_eq!(names(&found), [("ready", true, rw)]);

        // Privileged access shows an admin every user's folders; without it, only theirs.
        let admin = Requester {
            role: UserRole::Admin,
            ..user
        };
        let privileged = AccessFilter {
            privileged_access: true,
            ..AccessFilter::default()
        };
        let found = accessible_vfolders(db, &admin, &types, &privileged)
            .await
            .expect("query");
        assert_eq!(found.len(), 3);
        let found = accessible_vfolders(db, &user, &types, &privileged)
            .await
            .expect("query");
        assert_eq!(found.len(), 2, "privilege needs an admin role");
    }

    #[tokio::test]
    async fn project_folders_need_membership_and_take_the_users_override() {
        let (test, rows) = test_rows::database("q_vfolders_projects").await;
        let db = &test.connection;
        let project = folder(
            "project",
            (VFolderOwnershipType::Group, rows.group.id),
            VFolderOperationStatus::Ready,
        )
        .insert(db)
        .await
        .expect("folder");
        let user = Requester {
            uuid: rows.user.uuid,
            role: UserRole::User,
            domain_name: Rows::DOMAIN,
        };
        let types = [VFolderOwnershipType::User, VFolderOwnershipType::Group];
        let found = accessible_vfolders(db, &user, &types, &AccessFilter::default())
            .await
            .expect("query");
        assert!(found.is_empty(), "not a member yet");
        // A domain admin sees the domain's project folders as their owner.
        let admin = Requester {
            role: UserRole::Admin,
            ..user
        };
        let found = accessible_vfolders(db, &admin, &types, &AccessFilter::default())
            .await
            .expect("query");
        assert_eq!(
            names(&found),
            [("project", true, Some(VFolderPermission::ReadWrite))]
        );
        assert_eq!(found[0].group_name.as_deref(), Some("default"));

        association_groups_users::ActiveModel {
            id: Set(Uuid::new_v4()),
            user_id: Set(rows.user.uuid),
            group_id: Set(rows.group.id),
        }
        .insert(db)
        .await
        .expect("membership");
        vfolder_permissions::ActiveModel {
            permission: Set(Some(VFolderPermission::ReadOnly)),
            vfolder: Set(project.id),
            user: Set(rows.user.uuid),
        }
        .insert(db)
        .await
        .expect("override");
        let found = accessible_vfolders(db, &user, &types, &AccessFilter::default())
            .await
            .expect("query");
        assert_eq!(
            names(&found),
            [("project", false, Some(VFolderPermission::ReadOnly))]
        );
        // Project folders only when the group type is enabled.
        let found = accessible_vfolders(
            db,
            &user,
            &[VFolderOwnershipType::User],
            &AccessFilter::default(),
        )
        .await
        .expect("query");
        assert!(found.is_empty());
    }
}
