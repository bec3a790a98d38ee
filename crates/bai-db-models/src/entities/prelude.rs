//! Every entity under a short name: `use bai_db_models::entities::prelude::*;`.

pub use super::agents::Entity as Agents;
pub use super::association_groups_users::Entity as AssociationGroupsUsers;
pub use super::domains::Entity as Domains;
pub use super::endpoint_tokens::Entity as EndpointTokens;
pub use super::endpoints::Entity as Endpoints;
pub use super::error_logs::Entity as ErrorLogs;
pub use super::groups::Entity as Groups;
pub use super::image_aliases::Entity as ImageAliases;
pub use super::images::Entity as Images;
pub use super::kernels::Entity as Kernels;
pub use super::keypair_resource_policies::Entity as KeypairResourcePolicies;
pub use super::keypairs::Entity as Keypairs;
pub use super::project_resource_policies::Entity as ProjectResourcePolicies;
pub use super::resource_presets::Entity as ResourcePresets;
pub use super::routings::Entity as Routings;
pub use super::scaling_groups::Entity as ScalingGroups;
pub use super::session_dependencies::Entity as SessionDependencies;
pub use super::session_templates::Entity as SessionTemplates;
pub use super::sessions::Entity as Sessions;
pub use super::sgroups_for_domains::Entity as SgroupsForDomains;
pub use super::sgroups_for_groups::Entity as SgroupsForGroups;
pub use super::sgroups_for_keypairs::Entity as SgroupsForKeypairs;
pub use super::user_resource_policies::Entity as UserResourcePolicies;
pub use super::users::Entity as Users;
pub use super::vfolder_attachment::Entity as VfolderAttachment;
pub use super::vfolder_invitations::Entity as VfolderInvitations;
pub use super::vfolder_permissions::Entity as VfolderPermissions;
pub use super::vfolders::Entity as Vfolders;

pub use super::enums::*;
pub use super::{ResourceSlot, SlotAmount, VFolderHostPermission, VFolderHostPermissions};
