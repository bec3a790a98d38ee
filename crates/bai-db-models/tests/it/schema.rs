//! `schema oneshot` on real PostgreSQL: an empty database gets the 24.03 schema and the reference's
//! Alembic stamp, a current one is left alone, and one with tables of unknown origin is refused.
//! The schema it creates dumps exactly as the reference's does, and the entities agree with it:
//! every table reads and every column type round-trips through them.

use std::collections::BTreeSet;
use std::process::Command;

use bai_db_models::entities::enums::*;
use bai_db_models::entities::*;
use bai_db_models::migration::ALEMBIC_HEAD;
use bai_db_models::schema::{self, OneshotOutcome, SchemaError, SchemaState};
use bai_db_models::testing::TestDatabase;
use sea_orm::prelude::{ChronoDateTimeWithTimeZone, IpNetwork, Uuid};
use sea_orm::{
    ActiveEnum, ActiveModelTrait, ConnectionTrait, DatabaseConnection, EntityName, EntityTrait,
    IntoActiveModel, Iterable, Statement,
};
use serde_json::json;

#[tokio::test]
async fn oneshot_creates_the_schema_once_and_then_says_it_is_current() {
    let test = TestDatabase::create("oneshot").await;
    let db = &test.connection;
    assert_eq!(schema::state(db).await.expect("state"), SchemaState::Empty);

    let created = schema::oneshot(db).await.expect("oneshot");
    assert_eq!(
        created,
        OneshotOutcome::Created {
            applied: vec!["m0001_schema_24_03".to_owned()]
        }
    );
    assert_eq!(
        schema::state(db).await.expect("state"),
        SchemaState::Managed {
            applied: vec!["m0001_schema_24_03".to_owned()],
            pending: vec![],
            alembic_revision: Some(ALEMBIC_HEAD.to_owned()),
        }
    );
    assert_eq!(
        schema::oneshot(db).await.expect("second oneshot"),
        OneshotOutcome::AlreadyCurrent
    );
}

#[tokio::test]
async fn oneshot_refuses_tables_it_did_not_create() {
    let test = TestDatabase::create("oneshot_foreign").await;
    let db = &test.connection;
    db.execute_unprepared("CREATE TABLE users (id int); CREATE TABLE alembic_version (version_num varchar(32)); INSERT INTO alembic_version VALUES ('59a622c31820')")
        .await
        .expect("foreign tables");
    let error = schema::oneshot(db).await.expect_err("refused");
    assert!(matches!(error, SchemaError::Foreign { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "the database already holds tables that bai-manager did not create (alembic_version, users) \
         (alembic_version says 59a622c31820: made by the reference's tooling?); refusing to touch them. \
         Use an empty database, or drop these tables first"
    );
    let tables = db
        .query_all(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
        ))
        .await
        .expect("tables");
    assert_eq!(tables.len(), 2, "nothing was created");
}

/// The reference's `pg_dump -s` of a 24.03.11 `schema oneshot` database (SET/OWNER/comment lines
/// removed), kept beside the test so that it runs from any checkout.
const REFERENCE_DDL: &str = include_str!("../reference/db-schema-24.03.11.sql");

/// The halfstack's pg_dump; any pg_dump on PATH (15 or newer) does as well.
const PG_DUMP: &str = "/usr/lib/postgresql/15/bin/pg_dump";

#[tokio::test]
async fn oneshot_dumps_exactly_as_the_reference_schema() {
    let test = TestDatabase::create("schema_dump").await;
    schema::oneshot(&test.connection).await.expect("oneshot");
    let program = if std::path::Path::new(PG_DUMP).exists() {
        PG_DUMP
    } else {
        "pg_dump"
    };
    let output = Command::new(program)
        .args(["--schema-only", "--no-owner", "-h"])
        .arg(&test.config.addr.host)
        .arg("-p")
        .arg(test.config.addr.port.to_string())
        .arg("-U")
        .arg(&test.config.user)
        .arg(&test.config.name)
        .env("PGPASSWORD", &test.config.password)
        .output()
        .unwrap_or_else(|error| {
            panic!("cannot run {program} ({error}); install the PostgreSQL 15 client tools")
        });
    assert!(
        output.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ours = ddl_statements(&String::from_utf8_lossy(&output.stdout));
    let reference = ddl_statements(REFERENCE_DDL);
    let missing: Vec<&String> = reference.difference(&ours).collect();
    let extra: Vec<&String> = ours.difference(&reference).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "the schema differs from the reference's.\n\nOnly in the reference ({}):\n  {}\n\nOnly in ours ({}):\n  {}\n",
        missing.len(),
        join_lines(&missing),
        extra.len(),
        join_lines(&extra)
    );
}

#[test]
fn ddl_normalisation_ignores_layout_and_our_ledger() {
    let dump = "--\n-- Name: x\n--\n\\restrict abc\nSET lock_timeout = 0;\nSELECT pg_catalog.set_config('search_path', '', false);\n\
        CREATE TABLE public.b (\n    id   integer\n);\nALTER TABLE public.b OWNER TO postgres;\n\n\
        CREATE TABLE public.seaql_migrations (version character varying NOT NULL);\n\
        ALTER TABLE ONLY public.seaql_migrations\n    ADD CONSTRAINT seaql_migrations_pkey PRIMARY KEY (version);\n\
        COMMENT ON EXTENSION \"uuid-ossp\" IS 'generate universally unique identifiers (UUIDs)';\n\
        CREATE TABLE public.a (id integer);\n\\unrestrict abc\n";
    let statements: Vec<String> = ddl_statements(dump).into_iter().collect();
    assert_eq!(
        statements,
        [
            "CREATE TABLE public.a (id integer)",
            "CREATE TABLE public.b ( id integer )"
        ]
    );
}

#[tokio::test]
async fn the_install_guide_vfolder_host_grant_reads_back_typed() {
    let test = TestDatabase::with_schema("install_guide_hosts").await;
    let db = &test.connection;
    domains::ActiveModel {
        name: sea_orm::Set("default".to_owned()),
        description: sea_orm::Set(Some("The default domain".to_owned())),
        is_active: sea_orm::Set(Some(true)),
        total_resource_slots: sea_orm::Set(Some(ResourceSlot::new())),
        allowed_vfolder_hosts: sea_orm::Set(VFolderHostPermissions::new()),
        allowed_docker_registries: sea_orm::Set(vec![]),
        dotfiles: sea_orm::Set(EMPTY_DOTFILES.to_vec()),
        ..Default::default()
    }
    .insert(db)
    .await
    .expect("default domain");
    // Verbatim from the install guide.
    db.execute_unprepared(
        r#"UPDATE domains SET allowed_vfolder_hosts = '{"bai-m1:local": ["create-vfolder", "modify-vfolder", "delete-vfolder", "mount-in-session", "upload-file", "download-file", "invite-others", "set-user-specific-permission"]}' WHERE name = 'default';"#,
    )
    .await
    .expect("the install guide's UPDATE");

    let domain = domains::Entity::find_by_id("default")
        .one(db)
        .await
        .expect("read")
        .expect("found");
    let granted: Vec<VFolderHostPermission> = domain
        .allowed_vfolder_hosts
        .get("bai-m1:local")
        .expect("host listed")
        .iter()
        .copied()
        .collect();
    assert_eq!(granted, VFolderHostPermission::ALL);
    assert_eq!(
        domain.allowed_vfolder_hosts.hosts().collect::<Vec<_>>(),
        ["bai-m1:local"]
    );
}

#[tokio::test]
async fn every_entity_reads_its_table_on_the_empty_schema() {
    let test = TestDatabase::with_schema("entities_read").await;
    let db = &test.connection;
    let mut read = BTreeSet::new();
    macro_rules! read_all {
        ($($table:ident),* $(,)?) => {$(
            let rows = $table::Entity::find()
                .all(db)
                .await
                .unwrap_or_else(|error| panic!("{}: {error}", stringify!($table)));
            assert!(rows.is_empty(), "{}", stringify!($table));
            read.insert($table::Entity.table_name().to_owned());
        )*};
    }
    read_all!(
        agents,
        association_groups_users,
        domains,
        endpoint_tokens,
        endpoints,
        error_logs,
        groups,
        image_aliases,
        images,
        kernels,
        keypair_resource_policies,
        keypairs,
        project_resource_policies,
        resource_presets,
        routings,
        scaling_groups,
        session_dependencies,
        session_templates,
        sessions,
        sgroups_for_domains,
        sgroups_for_groups,
        sgroups_for_keypairs,
        user_resource_policies,
        users,
        vfolder_attachment,
        vfolder_invitations,
        vfolder_permissions,
        vfolders,
    );
    let mut tables = public_tables(db).await;
    tables.remove("alembic_version");
    tables.remove("seaql_migrations");
    assert_eq!(read, tables, "one entity per model table");
    assert_eq!(read.len(), 28);
}

#[tokio::test]
async fn every_postgres_enum_has_exactly_our_labels_in_order() {
    let test = TestDatabase::with_schema("entities_enums").await;
    let db = &test.connection;
    let mut checked = BTreeSet::new();
    macro_rules! labels {
        ($($enum:ty),* $(,)?) => {$(
            let name = <$enum as ActiveEnum>::name().to_string();
            let ours: Vec<String> = <$enum>::iter().map(|member| member.to_value()).collect();
            assert_eq!(enum_labels(db, &name).await, ours, "{name}");
            checked.insert(name);
        )*};
    }
    labels!(
        AgentStatus,
        DefaultForUnspecified,
        EndpointLifecycle,
        ErrorLogSeverity,
        ImageType,
        KernelStatus,
        ProjectType,
        RouteStatus,
        SessionResult,
        SessionStatus,
        TemplateType,
        UserRole,
        UserStatus,
        VFolderInvitationState,
        VFolderOwnershipType,
        VFolderPermission,
        VFolderUsageMode,
    );
    let rows = db
        .query_all(Statement::from_string(
            db.get_database_backend(),
            "SELECT typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
             WHERE n.nspname = 'public' AND t.typtype = 'e'",
        ))
        .await
        .expect("enum types");
    let types: BTreeSet<String> = rows
        .iter()
        .map(|row| row.try_get("", "typname").expect("typname"))
        .collect();
    assert_eq!(checked, types, "a Rust enum for every PostgreSQL enum type");
}

/// One fully populated row per table, written through the entity and read back equal: every
/// column type of the DDL (enums, cidr[], char(72), json, jsonb, arrays, bytea, double) decodes
/// into its field.
#[tokio::test]
async fn every_entity_round_trips_a_full_row() {
    let test = TestDatabase::with_schema("entities_round_trip").await;
    let db = &test.connection;
    let at =
        ChronoDateTimeWithTimeZone::parse_from_rfc3339("2024-03-01T12:34:56+09:00").expect("time");
    let slots = ResourceSlot::from_json(
        &json!({"cpu": "1.50", "mem": "1073741824", "cuda.device": "Infinity"}),
    )
    .expect("slots");
    let hosts = VFolderHostPermissions::all_on(["local:volume1"]);
    let uuid = |n: u128| Uuid::from_u128(n);

    round_trip(
        db,
        domains::Model {
            name: "default".to_owned(),
            description: Some("The default domain".to_owned()),
            is_active: Some(true),
            created_at: Some(at),
            modified_at: Some(at),
            total_resource_slots: Some(slots.clone()),
            allowed_vfolder_hosts: hosts.clone(),
            allowed_docker_registries: vec!["cr.backend.ai".to_owned()],
            integration_id: Some("int".to_owned()),
            dotfiles: EMPTY_DOTFILES.to_vec(),
        },
    )
    .await;
    round_trip(
        db,
        scaling_groups::Model {
            name: "default".to_owned(),
            description: Some("sg".to_owned()),
            is_active: Some(true),
            is_public: true,
            created_at: Some(at),
            wsproxy_addr: Some("http://127.0.0.1:5050".to_owned()),
            wsproxy_api_token: Some("token".to_owned()),
            driver: "static".to_owned(),
            driver_opts: json!({}),
            scheduler: "fifo".to_owned(),
            use_host_network: false,
            scheduler_opts: json!({"allowed_session_types": ["interactive", "batch"]}),
        },
    )
    .await;
    round_trip(
        db,
        user_resource_policies::Model {
            name: "default".to_owned(),
            created_at: Some(at),
            max_vfolder_count: 0,
            max_quota_scope_size: -1,
            max_session_count_per_model_session: 10,
            max_customized_image_count: 3,
        },
    )
    .await;
    round_trip(
        db,
        project_resource_policies::Model {
            name: "default".to_owned(),
            created_at: Some(at),
            max_vfolder_count: 0,
            max_quota_scope_size: -1,
        },
    )
    .await;
    round_trip(
        db,
        keypair_resource_policies::Model {
            name: "default".to_owned(),
            created_at: Some(at),
            default_for_unspecified: DefaultForUnspecified::Unlimited,
            total_resource_slots: ResourceSlot::new(),
            max_session_lifetime: 0,
            max_concurrent_sessions: 5,
            max_pending_session_count: Some(3),
            max_pending_session_resource_slots: Some(slots.clone()),
            max_concurrent_sftp_sessions: 1,
            max_containers_per_session: 1,
            idle_timeout: 3600,
            allowed_vfolder_hosts: hosts.clone(),
        },
    )
    .await;
    round_trip(
        db,
        groups::Model {
            id: uuid(1),
            name: "default".to_owned(),
            description: None,
            is_active: Some(true),
            created_at: Some(at),
            modified_at: Some(at),
            integration_id: None,
            domain_name: "default".to_owned(),
            total_resource_slots: Some(ResourceSlot::new()),
            allowed_vfolder_hosts: hosts.clone(),
            dotfiles: EMPTY_DOTFILES.to_vec(),
            resource_policy: "default".to_owned(),
            r#type: ProjectType::ModelStore,
            container_registry: Some(json!({"registry": "cr.backend.ai", "project": "stable"})),
        },
    )
    .await;
    let networks: Vec<IpNetwork> = ["10.0.0.0/8", "192.168.0.1/32", "2001:db8::/32"]
        .iter()
        .map(|network| network.parse().expect("network"))
        .collect();
    round_trip(
        db,
        users::Model {
            uuid: uuid(2),
            username: Some("admin".to_owned()),
            email: "admin@lablup.com".to_owned(),
            password: Some(
                "$2b$12$cwNwL5zb8GkEbnIMjyU5Xe5X0wCp0Fqzds4/gj20DIpwIjkXUCKKe".to_owned(),
            ),
            need_password_change: Some(false),
            password_changed_at: Some(at),
            full_name: Some("Admin".to_owned()),
            description: None,
            status: UserStatus::BeforeVerification,
            status_info: Some("admin-requested".to_owned()),
            created_at: Some(at),
            modified_at: Some(at),
            integration_id: None,
            domain_name: Some("default".to_owned()),
            role: Some(UserRole::Superadmin),
            allowed_client_ip: Some(networks),
            totp_key: None,
            totp_activated: Some(false),
            totp_activated_at: Some(at),
            resource_policy: "default".to_owned(),
            sudo_session_enabled: true,
            main_access_key: None,
        },
    )
    .await;
    round_trip(
        db,
        keypairs::Model {
            user_id: Some("admin@lablup.com".to_owned()),
            access_key: "AKIAIOSFODNN7EXAMPLE".to_owned(),
            secret_key: Some("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".to_owned()),
            is_active: Some(true),
            is_admin: Some(true),
            created_at: Some(at),
            modified_at: Some(at),
            last_used: Some(at),
            rate_limit: Some(30_000),
            num_queries: Some(0),
            ssh_public_key: Some("ssh-ed25519 AAAA".to_owned()),
            ssh_private_key: None,
            user: uuid(2),
            resource_policy: "default".to_owned(),
            dotfiles: vec![0x91, 0x80],
            bootstrap_script: String::new(),
        },
    )
    .await;
    round_trip(
        db,
        association_groups_users::Model {
            id: uuid(3),
            user_id: uuid(2),
            group_id: uuid(1),
        },
    )
    .await;
    round_trip(
        db,
        sgroups_for_domains::Model {
            id: uuid(4),
            scaling_group: "default".to_owned(),
            domain: "default".to_owned(),
        },
    )
    .await;
    round_trip(
        db,
        sgroups_for_groups::Model {
            id: uuid(5),
            scaling_group: "default".to_owned(),
            group: uuid(1),
        },
    )
    .await;
    round_trip(
        db,
        sgroups_for_keypairs::Model {
            id: uuid(6),
            scaling_group: "default".to_owned(),
            access_key: "AKIAIOSFODNN7EXAMPLE".to_owned(),
        },
    )
    .await;
    round_trip(
        db,
        agents::Model {
            id: "i-agent".to_owned(),
            status: AgentStatus::Alive,
            status_changed: Some(at),
            region: "local".to_owned(),
            scaling_group: "default".to_owned(),
            schedulable: true,
            available_slots: slots.clone(),
            occupied_slots: ResourceSlot::new(),
            addr: "tcp://127.0.0.1:6011".to_owned(),
            public_host: Some("127.0.0.1".to_owned()),
            public_key: Some("x".repeat(40)),
            first_contact: Some(at),
            lost_at: None,
            version: "24.03.11".to_owned(),
            architecture: "x86_64".to_owned(),
            compute_plugins: json!({"cuda": {"version": "12"}}),
            auto_terminate_abusing_kernel: false,
        },
    )
    .await;
    // char(72) pads the usual 71-character digest with a blank (the reference strips it).
    let digest = format!("sha256:{}", "a".repeat(64));
    let image = images::Model {
        id: uuid(7),
        name: "cr.backend.ai/stable/python:3.9-ubuntu20.04".to_owned(),
        image: "stable/python".to_owned(),
        created_at: Some(at),
        tag: Some("3.9-ubuntu20.04".to_owned()),
        registry: "cr.backend.ai".to_owned(),
        architecture: "x86_64".to_owned(),
        config_digest: digest.clone(),
        size_bytes: 1 << 33,
        is_local: false,
        r#type: ImageType::Compute,
        accelerators: Some("cuda".to_owned()),
        labels: json!({"ai.backend.kernelspec": "1"}),
        resources: json!({"cpu": {"min": "1", "max": null}}),
    };
    let stored = image
        .clone()
        .into_active_model()
        .insert(db)
        .await
        .expect("images");
    assert_eq!(stored.config_digest, format!("{digest} "));
    assert_eq!(
        images::Model {
            config_digest: digest,
            ..stored
        },
        image
    );
    round_trip(
        db,
        image_aliases::Model {
            id: uuid(8),
            alias: Some("python".to_owned()),
            image: uuid(7),
        },
    )
    .await;
    for id in [9, 10] {
        round_trip(
            db,
            sessions::Model {
                id: uuid(id),
                creation_id: Some("c".repeat(32)),
                name: Some(format!("session-{id}")),
                session_type: SessionType::Batch,
                cluster_mode: "single-node".to_owned(),
                cluster_size: 1,
                agent_ids: Some(vec!["i-agent".to_owned()]),
                scaling_group_name: Some("default".to_owned()),
                target_sgroup_names: Some(vec!["default".to_owned()]),
                domain_name: "default".to_owned(),
                group_id: uuid(1),
                user_uuid: uuid(2),
                access_key: Some("AKIAIOSFODNN7EXAMPLE".to_owned()),
                images: Some(vec![
                    "cr.backend.ai/stable/python:3.9-ubuntu20.04".to_owned(),
                ]),
                tag: None,
                occupying_slots: slots.clone(),
                requested_slots: slots.clone(),
                vfolder_mounts: Some(json!([])),
                environ: Some(json!({"A": "1"})),
                bootstrap_script: None,
                use_host_network: false,
                timeout: Some(60),
                created_at: Some(at),
                terminated_at: None,
                starts_at: None,
                status: SessionStatus::RunningDegraded,
                status_info: None,
                status_data: Some(json!({})),
                status_history: Some(json!({"PENDING": "2024-03-01T03:34:56+00:00"})),
                callback_url: None,
                startup_command: None,
                result: SessionResult::Success,
                num_queries: Some(0),
                last_stat: None,
            },
        )
        .await;
    }
    round_trip(
        db,
        session_dependencies::Model {
            session_id: uuid(10),
            depends_on: uuid(9),
        },
    )
    .await;
    round_trip(
        db,
        kernels::Model {
            id: uuid(11),
            session_id: uuid(9),
            session_creation_id: None,
            session_name: Some("session-9".to_owned()),
            session_type: SessionType::Batch,
            cluster_mode: "single-node".to_owned(),
            cluster_size: 1,
            cluster_role: "main".to_owned(),
            cluster_idx: 0,
            local_rank: 0,
            cluster_hostname: "main0".to_owned(),
            scaling_group: Some("default".to_owned()),
            agent: Some("i-agent".to_owned()),
            agent_addr: Some("tcp://127.0.0.1:6011".to_owned()),
            domain_name: "default".to_owned(),
            group_id: uuid(1),
            user_uuid: uuid(2),
            access_key: Some("AKIAIOSFODNN7EXAMPLE".to_owned()),
            image: Some("cr.backend.ai/stable/python:3.9-ubuntu20.04".to_owned()),
            architecture: Some("x86_64".to_owned()),
            registry: Some("cr.backend.ai".to_owned()),
            tag: None,
            container_id: Some("f".repeat(64)),
            occupied_slots: slots.clone(),
            requested_slots: slots.clone(),
            occupied_shares: json!({}),
            environ: Some(vec!["A=1".to_owned()]),
            mounts: Some(vec![]),
            mount_map: Some(json!({})),
            vfolder_mounts: None,
            attached_devices: Some(json!({})),
            resource_opts: Some(json!({"shmem": "64m"})),
            bootstrap_script: None,
            kernel_host: Some("127.0.0.1".to_owned()),
            repl_in_port: 2000,
            repl_out_port: 2001,
            stdin_port: 2002,
            stdout_port: 2003,
            service_ports: Some(json!([])),
            preopen_ports: Some(vec![8080, 8081]),
            use_host_network: false,
            created_at: Some(at),
            terminated_at: Some(at),
            starts_at: None,
            status: KernelStatus::Cancelled,
            status_changed: Some(at),
            status_info: None,
            status_data: None,
            status_history: None,
            callback_url: Some("None".to_owned()),
            startup_command: None,
            result: SessionResult::Failure,
            internal_data: None,
            container_log: Some(b"log".to_vec()),
            num_queries: Some(3),
            last_stat: None,
        },
    )
    .await;
    round_trip(
        db,
        vfolders::Model {
            id: uuid(12),
            host: "local:volume1".to_owned(),
            quota_scope_id: format!("user:{}", uuid(2)),
            name: "models".to_owned(),
            usage_mode: VFolderUsageMode::Model,
            permission: Some(VFolderPermission::RwDelete),
            max_files: Some(1000),
            max_size: None,
            num_files: Some(0),
            cur_size: Some(0),
            created_at: Some(at),
            last_used: None,
            creator: Some("admin@lablup.com".to_owned()),
            unmanaged_path: None,
            ownership_type: VFolderOwnershipType::User,
            user: Some(uuid(2)),
            group: None,
            cloneable: false,
            status: VFolderOperationStatus::DeletePending,
            status_history: Some(json!({"ready": "2024-03-01T03:34:56+00:00"})),
            status_changed: Some(at),
        },
    )
    .await;
    round_trip(
        db,
        vfolder_permissions::Model {
            permission: Some(VFolderPermission::ReadOnly),
            vfolder: uuid(12),
            user: uuid(2),
        },
    )
    .await;
    round_trip(
        db,
        vfolder_attachment::Model {
            vfolder: uuid(12),
            kernel: uuid(11),
        },
    )
    .await;
    round_trip(
        db,
        vfolder_invitations::Model {
            id: uuid(13),
            permission: Some(VFolderPermission::ReadWrite),
            inviter: Some("admin@lablup.com".to_owned()),
            invitee: "user@lablup.com".to_owned(),
            state: Some(VFolderInvitationState::Canceled),
            created_at: Some(at),
            modified_at: None,
            vfolder: uuid(12),
        },
    )
    .await;
    round_trip(
        db,
        endpoints::Model {
            id: uuid(14),
            name: "llm".to_owned(),
            created_user: uuid(2),
            session_owner: uuid(2),
            desired_session_count: 1,
            image: uuid(7),
            model: Some(uuid(12)),
            model_mount_destination: "/models".to_owned(),
            domain: "default".to_owned(),
            project: uuid(1),
            resource_group: "default".to_owned(),
            lifecycle_stage: EndpointLifecycle::Destroying,
            tag: None,
            startup_command: None,
            bootstrap_script: None,
            callback_url: None,
            environ: Some(json!({})),
            open_to_public: Some(false),
            runtime_variant: RuntimeVariant::Vllm,
            model_definition_path: Some("model-definition.yaml".to_owned()),
            resource_slots: slots.clone(),
            url: None,
            resource_opts: Some(json!({})),
            cluster_mode: "SINGLE_NODE".to_owned(),
            cluster_size: 1,
            extra_mounts: json!([]),
            retries: 0,
            created_at: Some(at),
            destroyed_at: None,
        },
    )
    .await;
    round_trip(
        db,
        routings::Model {
            id: uuid(15),
            endpoint: uuid(14),
            session: Some(uuid(9)),
            session_owner: uuid(2),
            domain: "default".to_owned(),
            project: uuid(1),
            status: RouteStatus::FailedToStart,
            traffic_ratio: 0.5,
            created_at: Some(at),
            error_data: Some(json!({"errors": []})),
        },
    )
    .await;
    round_trip(
        db,
        endpoint_tokens::Model {
            id: uuid(16),
            token: "t".repeat(100),
            endpoint: Some(uuid(14)),
            session_owner: Some(uuid(2)),
            domain: "default".to_owned(),
            project: uuid(1),
            created_at: Some(at),
        },
    )
    .await;
    round_trip(
        db,
        session_templates::Model {
            id: uuid(17),
            created_at: Some(at),
            is_active: Some(true),
            domain_name: "default".to_owned(),
            group_id: Some(uuid(1)),
            user_uuid: uuid(2),
            r#type: TemplateType::Cluster,
            name: Some("tmpl".to_owned()),
            template: json!({"api_version": "6"}),
        },
    )
    .await;
    round_trip(
        db,
        error_logs::Model {
            id: uuid(18),
            created_at: Some(at),
            severity: Some(ErrorLogSeverity::Warning),
            source: Some("client".to_owned()),
            user: Some(uuid(2)),
            is_read: Some(false),
            is_cleared: Some(false),
            message: Some("oops".to_owned()),
            context_lang: Some("python".to_owned()),
            context_env: Some(json!({})),
            request_url: None,
            request_status: Some(500),
            traceback: None,
        },
    )
    .await;
    round_trip(
        db,
        resource_presets::Model {
            name: "small".to_owned(),
            resource_slots: slots.clone(),
            shared_memory: Some(1 << 30),
        },
    )
    .await;

    let mut tables = public_tables(db).await;
    tables.remove("alembic_version");
    tables.remove("seaql_migrations");
    let empty: Vec<String> = {
        let mut empty = Vec::new();
        for table in tables {
            let row = db
                .query_one(Statement::from_string(
                    db.get_database_backend(),
                    format!("SELECT count(*) AS n FROM public.{table}"),
                ))
                .await
                .expect("count")
                .expect("a row");
            if row.try_get::<i64>("", "n").expect("n") == 0 {
                empty.push(table);
            }
        }
        empty
    };
    assert!(empty.is_empty(), "tables this test did not fill: {empty:?}");
}

/// Inserts `model` through its ActiveModel and checks that what comes back, and what a plain
/// `find()` reads, equals it.
async fn round_trip<M, A>(db: &DatabaseConnection, model: M)
where
    M: sea_orm::ModelTrait + IntoActiveModel<A> + Clone + PartialEq + std::fmt::Debug,
    A: ActiveModelTrait<Entity = M::Entity> + sea_orm::ActiveModelBehavior + Send,
    M::Entity: EntityTrait<Model = M>,
{
    let table = M::Entity::default().table_name().to_owned();
    let inserted = model
        .clone()
        .into_active_model()
        .insert(db)
        .await
        .unwrap_or_else(|error| panic!("inserting into {table}: {error}"));
    assert_eq!(
        inserted, model,
        "{table}: the inserted row comes back changed"
    );
    let read = M::Entity::find()
        .all(db)
        .await
        .unwrap_or_else(|error| panic!("reading {table}: {error}"));
    assert!(
        read.contains(&model),
        "{table}: find() does not return the row"
    );
}

/// The DDL statements of a `pg_dump -s` text, comparable across dumps: comments, `SET`/`SELECT
/// set_config` lines, psql meta-commands (`\restrict`), `OWNER TO` and `COMMENT ON` statements and
/// everything about our own `seaql_migrations` ledger dropped, whitespace collapsed.
fn ddl_statements(dump: &str) -> BTreeSet<String> {
    let text: String = dump
        .lines()
        .filter(|line| {
            let line = line.trim_start();
            !(line.is_empty()
                || line.starts_with("--")
                || line.starts_with('\\')
                || line.starts_with("SET ")
                || line.starts_with("SELECT pg_catalog.set_config"))
        })
        .collect::<Vec<_>>()
        .join("\n");
    text.split(';')
        .map(|statement| statement.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|statement| {
            !(statement.is_empty()
                || statement.contains(" OWNER TO ")
                || statement.starts_with("COMMENT ON ")
                || statement.contains("seaql_migrations"))
        })
        .collect()
}

fn join_lines(statements: &[&String]) -> String {
    statements
        .iter()
        .map(|statement| statement.as_str())
        .collect::<Vec<_>>()
        .join("\n  ")
}

async fn public_tables(db: &DatabaseConnection) -> BTreeSet<String> {
    let rows = db
        .query_all(Statement::from_string(
            db.get_database_backend(),
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
        ))
        .await
        .expect("tables");
    rows.iter()
        .map(|row| row.try_get("", "tablename").expect("tablename"))
        .collect()
}

async fn enum_labels(db: &DatabaseConnection, type_name: &str) -> Vec<String> {
    let rows = db
        .query_all(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT e.enumlabel FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid \
             WHERE t.typname = $1 ORDER BY e.enumsortorder",
            [type_name.into()],
        ))
        .await
        .expect("enum labels");
    rows.iter()
        .map(|row| row.try_get("", "enumlabel").expect("enumlabel"))
        .collect()
}
