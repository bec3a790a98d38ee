//! A small, consistent set of rows for query tests, inserted through the entities with the
//! reference's Python-side defaults (db-fixtures.md §1.4) wherever a column has no server default.

use sea_orm::{ActiveModelTrait, DatabaseConnection, Set};
use serde_json::json;

use crate::entities::enums::{DefaultForUnspecified, ProjectType, UserRole, UserStatus};
use crate::entities::{
    EMPTY_DOTFILES, ResourceSlot, VFolderHostPermissions, domains, groups,
    keypair_resource_policies, keypairs, project_resource_policies, scaling_groups,
    user_resource_policies, users,
};
use crate::testing::TestDatabase;

/// The rows [`database`] inserted, as read back.
pub struct Rows {
    pub user_policy: user_resource_policies::Model,
    pub group: groups::Model,
    pub user: users::Model,
    pub keypair: keypairs::Model,
}

impl Rows {
    pub const DOMAIN: &str = "default";
    pub const EMAIL: &str = "user@lablup.com";
    pub const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
    pub const SECRET_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    pub const KEYPAIR_POLICY: &str = "default";
}

/// A fresh database with the schema, one domain, the three resource policies, a project, a user
/// (without main keypair) and its keypair.
pub async fn database(label: &str) -> (TestDatabase, Rows) {
    let test = TestDatabase::with_schema(label).await;
    let db = &test.connection;
    domains::ActiveModel {
        name: Set(Rows::DOMAIN.to_owned()),
        description: Set(Some("The default domain".to_owned())),
        is_active: Set(Some(true)),
        total_resource_slots: Set(Some(ResourceSlot::new())),
        allowed_vfolder_hosts: Set(VFolderHostPermissions::new()),
        allowed_docker_registries: Set(vec!["cr.backend.ai".to_owned()]),
        integration_id: Set(None),
        dotfiles: Set(EMPTY_DOTFILES.to_vec()),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("domain");
    let user_policy = user_resource_policies::ActiveModel {
        name: Set("default".to_owned()),
        max_vfolder_count: Set(0),
        max_quota_scope_size: Set(-1),
        max_session_count_per_model_session: Set(10),
        max_customized_image_count: Set(3),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("user resource policy");
    keypair_resource_policies::ActiveModel {
        name: Set(Rows::KEYPAIR_POLICY.to_owned()),
        default_for_unspecified: Set(DefaultForUnspecified::Unlimited),
        total_resource_slots: Set(ResourceSlot::from_json(&json!({"cpu": "4"})).expect("slots")),
        max_concurrent_sessions: Set(5),
        max_pending_session_count: Set(None),
        max_pending_session_resource_slots: Set(None),
        max_containers_per_session: Set(1),
        idle_timeout: Set(3600),
        allowed_vfolder_hosts: Set(VFolderHostPermissions::new()),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("keypair resource policy");
    project_resource_policies::ActiveModel {
        name: Set("default".to_owned()),
        max_vfolder_count: Set(0),
        max_quota_scope_size: Set(-1),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("project resource policy");
    let group = groups::ActiveModel {
        name: Set("default".to_owned()),
        description: Set(None),
        is_active: Set(Some(true)),
        integration_id: Set(None),
        domain_name: Set(Rows::DOMAIN.to_owned()),
        total_resource_slots: Set(Some(ResourceSlot::new())),
        allowed_vfolder_hosts: Set(VFolderHostPermissions::new()),
        dotfiles: Set(EMPTY_DOTFILES.to_vec()),
        resource_policy: Set("default".to_owned()),
        r#type: Set(ProjectType::General),
        container_registry: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("group");
    let user = user(db, Rows::EMAIL).await;
    let keypair = keypair(&user, Rows::ACCESS_KEY, Rows::KEYPAIR_POLICY)
        .insert(db)
        .await
        .expect("keypair");
    let rows = Rows {
        user_policy,
        group,
        user,
        keypair,
    };
    (test, rows)
}

/// Inserts an active user of the default domain and policy, with no main keypair yet.
pub async fn user(db: &DatabaseConnection, email: &str) -> users::Model {
    users::ActiveModel {
        username: Set(Some(email.split('@').next().unwrap_or(email).to_owned())),
        email: Set(email.to_owned()),
        // The hash of "wJalrXUt" from db-fixtures.md §5.
        password: Set(Some(
            "$2b$12$cwNwL5zb8GkEbnIMjyU5Xe5X0wCp0Fqzds4/gj20DIpwIjkXUCKKe".to_owned(),
        )),
        need_password_change: Set(Some(false)),
        full_name: Set(None),
        description: Set(None),
        status: Set(UserStatus::Active),
        status_info: Set(None),
        integration_id: Set(None),
        domain_name: Set(Some(Rows::DOMAIN.to_owned())),
        role: Set(Some(UserRole::User)),
        allowed_client_ip: Set(None),
        totp_key: Set(None),
        totp_activated: Set(Some(false)),
        resource_policy: Set("default".to_owned()),
        sudo_session_enabled: Set(false),
        main_access_key: Set(None),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("user")
}

/// An active, non-admin keypair of `user`, ready to insert.
pub fn keypair(user: &users::Model, access_key: &str, policy: &str) -> keypairs::ActiveModel {
    keypairs::ActiveModel {
        user_id: Set(Some(user.email.clone())),
        access_key: Set(access_key.to_owned()),
        secret_key: Set(Some(Rows::SECRET_KEY.to_owned())),
        is_active: Set(Some(true)),
        is_admin: Set(Some(false)),
        rate_limit: Set(Some(30_000)),
        ssh_public_key: Set(None),
        ssh_private_key: Set(None),
        user: Set(user.uuid),
        resource_policy: Set(policy.to_owned()),
        dotfiles: Set(EMPTY_DOTFILES.to_vec()),
        bootstrap_script: Set(String::new()),
        ..Default::default()
    }
}

/// A resource group with the reference's Python defaults, ready to insert.
pub fn scaling_group(name: &str, active: bool) -> scaling_groups::ActiveModel {
    scaling_groups::ActiveModel {
        name: Set(name.to_owned()),
        description: Set(None),
        is_active: Set(Some(active)),
        wsproxy_addr: Set(None),
        wsproxy_api_token: Set(None),
        driver: Set("static".to_owned()),
        driver_opts: Set(json!({})),
        scheduler: Set("fifo".to_owned()),
        use_host_network: Set(false),
        scheduler_opts: Set(json!({})),
        ..Default::default()
    }
}
