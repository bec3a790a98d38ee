//! A small, consistent set of rows for query tests, inserted through the entities with the
//! reference's Python-side defaults (db-fixtures.md §1.4) wherever a column has no server default.

use sea_orm::prelude::{DateTimeWithTimeZone, Uuid};
use sea_orm::{ActiveEnum, ActiveModelTrait, DatabaseConnection, EntityTrait, Set};
use serde_json::json;

use crate::entities::enums::{
    DefaultForUnspecified, KernelStatus, ProjectType, SessionStatus, UserRole, UserStatus,
};
use crate::entities::{
    EMPTY_DOTFILES, ResourceSlot, VFolderHostPermissions, domains, groups, kernels,
    keypair_resource_policies, keypairs, project_resource_policies, scaling_groups, sessions,
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

/// A `sessions` row of the [`Rows`] user and project with its `kernels` rows, for tests of
/// session queries. The defaults ([`TestSession::default`]) are what most tests need: a random id,
/// no name or creation id, one PENDING node of [`Rows::ACCESS_KEY`] outside any resource group,
/// no status history, `created_at` left to the database (`now()`), empty slots, no kernels.
pub struct TestSession {
    pub id: Uuid,
    pub creation_id: Option<String>,
    pub name: Option<String>,
    pub status: SessionStatus,
    pub status_history: Option<serde_json::Value>,
    pub created_at: Option<DateTimeWithTimeZone>,
    pub access_key: Option<String>,
    pub scaling_group: Option<String>,
    pub cluster_size: i32,
    pub kernels: Vec<TestKernel>,
}

/// A kernel of a [`TestSession`]. Its position in the session's list is its `cluster_idx` and
/// `local_rank`, its hostname is the role followed by that position, and it copies the session's
/// cluster size. The defaults ([`TestKernel::default`]): a random id, the main role, no session
/// name, the session's status and access key, the [`Rows::DOMAIN`] domain, no agent, empty slots
/// and all four ports 0.
pub struct TestKernel {
    pub id: Uuid,
    pub role: &'static str,
    /// Not copied from the session: `(access_key, session_name)` is unique among live main
    /// kernels, and some tests keep several live sessions of one name.
    pub session_name: Option<String>,
    /// `None`: the session's status, by name.
    pub status: Option<KernelStatus>,
    /// `None`: the session's access key.
    pub access_key: Option<String>,
    pub domain: String,
    pub agent: Option<String>,
    pub occupied_slots: ResourceSlot,
    pub requested_slots: ResourceSlot,
    /// REPL in, REPL out, stdin and stdout.
    pub ports: [i32; 4],
}

impl Default for TestSession {
    fn default() -> TestSession {
        TestSession {
            id: Uuid::new_v4(),
            creation_id: None,
            name: None,
            status: SessionStatus::Pending,
            status_history: None,
            created_at: None,
            access_key: Some(Rows::ACCESS_KEY.to_owned()),
            scaling_group: None,
            cluster_size: 1,
            kernels: Vec::new(),
        }
    }
}

impl Default for TestKernel {
    fn default() -> TestKernel {
        TestKernel {
            id: Uuid::new_v4(),
            role: "main",
            session_name: None,
            status: None,
            access_key: None,
            domain: Rows::DOMAIN.to_owned(),
            agent: None,
            occupied_slots: ResourceSlot::new(),
            requested_slots: ResourceSlot::new(),
            ports: [0; 4],
        }
    }
}

impl TestSession {
    /// Inserts the session, then its kernels in order; columns not named here take the
    /// database's defaults.
    pub async fn insert(&self, db: &DatabaseConnection, rows: &Rows) {
        let created_at = match self.created_at {
            Some(at) => Set(Some(at)),
            None => sea_orm::NotSet,
        };
        sessions::ActiveModel {
            id: Set(self.id),
            creation_id: Set(self.creation_id.clone()),
            name: Set(self.name.clone()),
            cluster_size: Set(self.cluster_size),
            scaling_group_name: Set(self.scaling_group.clone()),
            domain_name: Set(Rows::DOMAIN.to_owned()),
            group_id: Set(rows.group.id),
            user_uuid: Set(rows.user.uuid),
            access_key: Set(self.access_key.clone()),
            occupying_slots: Set(ResourceSlot::new()),
            requested_slots: Set(ResourceSlot::new()),
            use_host_network: Set(false),
            created_at,
            status: Set(self.status),
            status_history: Set(self.status_history.clone()),
            ..Default::default()
        }
        .insert(db)
        .await
        .expect("session row");
        for (index, kernel) in self.kernels.iter().enumerate() {
            let index = i32::try_from(index).expect("a few kernels");
            let status = kernel.status.unwrap_or_else(|| {
                KernelStatus::try_from_value(&self.status.to_value())
                    .expect("a kernel status of the session status's name")
            });
            let [repl_in_port, repl_out_port, stdin_port, stdout_port] = kernel.ports;
            kernels::ActiveModel {
                id: Set(kernel.id),
                session_id: Set(self.id),
                session_name: Set(kernel.session_name.clone()),
                cluster_size: Set(self.cluster_size),
                cluster_role: Set(kernel.role.to_owned()),
                cluster_idx: Set(index),
                local_rank: Set(index),
                cluster_hostname: Set(format!("{}{index}", kernel.role)),
                agent: Set(kernel.agent.clone()),
                domain_name: Set(kernel.domain.clone()),
                group_id: Set(rows.group.id),
                user_uuid: Set(rows.user.uuid),
                access_key: Set(kernel
                    .access_key
                    .clone()
                    .or_else(|| self.access_key.clone())),
                occupied_slots: Set(kernel.occupied_slots.clone()),
                requested_slots: Set(kernel.requested_slots.clone()),
                occupied_shares: Set(json!({})),
                repl_in_port: Set(repl_in_port),
                repl_out_port: Set(repl_out_port),
                stdin_port: Set(stdin_port),
                stdout_port: Set(stdout_port),
                use_host_network: Set(false),
                status: Set(status),
                ..Default::default()
            }
            .insert(db)
            .await
            .expect("kernel row");
        }
    }
}

/// The `kernels` row `id`, which the test expects to exist.
pub async fn kernel_row(db: &DatabaseConnection, id: Uuid) -> kernels::Model {
    kernels::Entity::find_by_id(id)
        .one(db)
        .await
        .expect("query")
        .expect("kernel")
}

/// The `sessions` row `id`, which the test expects to exist.
pub async fn session_row(db: &DatabaseConnection, id: Uuid) -> sessions::Model {
    sessions::Entity::find_by_id(id)
        .one(db)
        .await
        .expect("query")
        .expect("session")
}
