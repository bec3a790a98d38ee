//! `fixture populate` and `fixture export` on real PostgreSQL, each test on its own database with
//! the 24.03 schema: the install guide's four reference files, the reference's end state (with
//! our fixes where it differs), all-or-nothing loading, errors that say where, and round trips.

use bai_db_models::fixtures::{self, FixtureError, FixtureFile, PopulateReport, TableReport};
use bai_db_models::testing::TestDatabase;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde_json::{Map, Value, json};

/// The install guide's order (scripts/install-dev.sh): users, keypairs, main access keys, presets.
const INSTALL_GUIDE: [(&str, &str); 4] = [
    (
        "example-users.json",
        include_str!("../reference/example-users.json"),
    ),
    (
        "example-keypairs.json",
        include_str!("../reference/example-keypairs.json"),
    ),
    (
        "example-set-user-main-access-keys.json",
        include_str!("../reference/example-set-user-main-access-keys.json"),
    ),
    (
        "example-resource-presets.json",
        include_str!("../reference/example-resource-presets.json"),
    ),
];

/// The example users' plaintext passwords (spec §4.1) and main access keys (§4.4).
const USERS: [(&str, &str, &str); 5] = [
    ("admin@lablup.com", "wJalrXUt", "AKIAIOSFODNN7EXAMPLE"),
    (
        "domain-admin@lablup.com",
        "cWbsM_vB",
        "AKIAHUKCHDEZGEXAMPLE",
    ),
    ("user@lablup.com", "C8qnIo29", "AKIANABBDUSEREXAMPLE"),
    ("user2@lablup.com", "P7oxTDdz", "AKIANATWOUSEREXAMPLE"),
    ("monitor@lablup.com", "7tuEwF1J", "AKIANAMONITOREXAMPLE"),
];

/// Every model table, parents first, so an export of all of them loads back.
const ALL_TABLES: [&str; 28] = [
    "domains",
    "user_resource_policies",
    "project_resource_policies",
    "keypair_resource_policies",
    "groups",
    "scaling_groups",
    "sgroups_for_domains",
    "users",
    "keypairs",
    "association_groups_users",
    "sgroups_for_groups",
    "sgroups_for_keypairs",
    "resource_presets",
    "agents",
    "images",
    "image_aliases",
    "sessions",
    "kernels",
    "session_dependencies",
    "session_templates",
    "vfolders",
    "vfolder_permissions",
    "vfolder_invitations",
    "vfolder_attachment",
    "endpoints",
    "routings",
    "endpoint_tokens",
    "error_logs",
];

const DEFAULT_GROUP: &str = "2de2b969-1d04-48a6-af16-0bc8adb3c831";
const ADMIN: &str = "f38dea23-50fa-42a0-b5ae-338f5f4693f4";

#[tokio::test]
async fn the_install_guide_files_load_into_the_reference_end_state() {
    let test = TestDatabase::with_schema("fixtures_install_guide").await;
    let db = &test.connection;
    let reports = install_guide(db).await;
    assert_eq!(
        reports[0].tables,
        [
            ("domains", 1),
            ("user_resource_policies", 1),
            ("project_resource_policies", 1),
            ("groups", 2),
            ("scaling_groups", 1),
            ("sgroups_for_domains", 1),
            ("users", 5),
            ("association_groups_users", 10),
        ]
        .map(|(table, rows)| written(table, rows, rows as u64))
    );
    assert_eq!(
        reports[2].tables,
        [written("users", 5, 5)],
        "the update file sets every user's main access key"
    );
    for (table, expected) in [
        ("domains", 1),
        ("user_resource_policies", 1),
        ("project_resource_policies", 1),
        ("groups", 2),
        ("scaling_groups", 1),
        ("sgroups_for_domains", 1),
        ("users", 5),
        ("association_groups_users", 10),
        ("keypair_resource_policies", 1),
        ("keypairs", 5),
        ("resource_presets", 6),
    ] {
        assert_eq!(count(db, table).await, expected, "rows in {table}");
    }

    let domain = only_row(db, "domains").await;
    assert_eq!(
        domain["allowed_docker_registries"],
        json!(["cr.backend.ai", "index.docker.io"])
    );
    assert_eq!(domain["total_resource_slots"], json!({}));
    assert_eq!(domain["allowed_vfolder_hosts"], json!({}));
    assert_eq!(domain["dotfiles"], json!("\\x90"));
    assert_eq!(domain["integration_id"], Value::Null);

    let policy = only_row(db, "user_resource_policies").await;
    assert_eq!(policy["max_customized_image_count"], json!(3));
    let keypair_policy = only_row(db, "keypair_resource_policies").await;
    assert_eq!(
        keypair_policy["default_for_unspecified"],
        json!("UNLIMITED")
    );
    assert_eq!(keypair_policy["max_concurrent_sftp_sessions"], json!(1));
    assert_eq!(keypair_policy["max_pending_session_count"], Value::Null);

    let scaling_group = only_row(db, "scaling_groups").await;
    assert_eq!(scaling_group["is_public"], json!(true));
    assert_eq!(scaling_group["use_host_network"], json!(false));
    assert_eq!(scaling_group["scheduler_opts"], default_scheduler_opts());

    let users = rows(db, "users").await;
    for (email, _, access_key) in USERS {
        let user = find(&users, "email", email);
        let hash = user["password"].as_str().expect("password is set");
        assert!(hash.starts_with("$2b$12$") && hash.len() == 60, "{hash}");
        assert_eq!(user["main_access_key"], json!(access_key), "{email}");
        assert_eq!(user["status"], json!("active"));
        assert_eq!(user["sudo_session_enabled"], json!(false));
        assert_eq!(user["totp_activated"], json!(false));
        assert!(user["password_changed_at"].is_string());
    }
    assert_eq!(
        find(&users, "email", "admin@lablup.com")["role"],
        json!("superadmin")
    );
    assert_eq!(
        find(&users, "email", "monitor@lablup.com")["role"],
        json!("monitor")
    );

    for keypair in rows(db, "keypairs").await {
        assert_eq!(keypair["dotfiles"], json!("\\x90"));
        assert_eq!(keypair["bootstrap_script"], json!(""));
        assert_eq!(keypair["ssh_public_key"], Value::Null);
        assert_eq!(keypair["last_used"], Value::Null);
    }

    // The reference leaves every shared_memory NULL: its INSERT takes the columns of the first
    // row, which has none. Ours takes the union, so the values the file gives are stored.
    let presets = rows(db, "resource_presets").await;
    for (name, shared_memory) in [
        ("cpu01-small", Value::Null),
        ("cpu02-medium", json!(1_073_741_824_i64)),
        ("cpu03-large", json!(2_147_483_648_i64)),
        ("cuda01-small", Value::Null),
        ("cuda02-medium", json!(1_073_741_824_i64)),
        ("cuda03-large", json!(2_147_483_648_i64)),
    ] {
        assert_eq!(
            find(&presets, "name", name)["shared_memory"],
            shared_memory,
            "{name}"
        );
    }
    assert_eq!(
        find(&presets, "name", "cuda02-medium")["resource_slots"]["cuda.shares"],
        json!("2.0"),
        "ResourceSlot JSON is stored as given"
    );
}

#[tokio::test]
async fn every_example_password_verifies() {
    let test = TestDatabase::with_schema("fixtures_passwords").await;
    let db = &test.connection;
    load(db, INSTALL_GUIDE[0].0, INSTALL_GUIDE[0].1).await;
    let users = rows(db, "users").await;
    for (email, password, _) in USERS {
        let hash = find(&users, "email", email)["password"]
            .as_str()
            .expect("password is set")
            .to_owned();
        assert_eq!(bcrypt::verify(password, &hash).ok(), Some(true), "{email}");
        assert_eq!(bcrypt::verify("wrong", &hash).ok(), Some(false), "{email}");
    }
}

#[tokio::test]
async fn populating_twice_changes_nothing() {
    let test = TestDatabase::with_schema("fixtures_twice").await;
    let db = &test.connection;
    install_guide(db).await;
    let before = snapshot(db).await;
    for report in install_guide(db).await {
        for table in report.tables {
            assert_eq!(table.rows_written, 0, "{table:?}");
        }
    }
    assert_eq!(snapshot(db).await, before);
}

#[tokio::test]
async fn a_bad_row_leaves_every_table_untouched() {
    let test = TestDatabase::with_schema("fixtures_bad_row").await;
    let db = &test.connection;
    load(db, INSTALL_GUIDE[0].0, INSTALL_GUIDE[0].1).await;
    let before = snapshot(db).await;

    // Rows 0 and 1 are fine, and an earlier table gets a new row: all of it must go.
    let file_with = |third: Value| {
        fixture(&[
            ("domains", json!([{"name": "extra"}])),
            ("users", json!([new_user(1), new_user(2), third])),
        ])
    };
    let mut unknown_enum = new_user(3);
    unknown_enum["role"] = json!("boss");
    let mut missing_email = new_user(3);
    if let Some(user) = missing_email.as_object_mut() {
        user.remove("email");
    }
    let mut unknown_domain = new_user(3);
    unknown_domain["domain_name"] = json!("nowhere");

    let error = populate_err(db, "bad-enum.json", &file_with(unknown_enum)).await;
    assert_eq!(
        error.to_string(),
        "bad-enum.json: table users, row 2, column role: \"boss\" is not one of superadmin, \
         admin, user, monitor (fixtures give UserRole member values)"
    );
    let error = populate_err(db, "bad-null.json", &file_with(missing_email)).await;
    assert_eq!(
        error.to_string(),
        "bad-null.json: table users, row 2, column email: missing, and the column is NOT NULL \
         without a default"
    );
    // Only the database can tell that the domain does not exist: this one fails inside the
    // transaction, after `domains` and two users went in.
    let error = populate_err(db, "bad-fk.json", &file_with(unknown_domain)).await;
    match &error {
        FixtureError::Row {
            file,
            table,
            row,
            column,
            message,
        } => {
            assert_eq!(
                (file.as_str(), table.as_str(), *row, column.as_deref()),
                ("bad-fk.json", "users", 2, Some("domain_name"))
            );
            assert!(
                message.contains("violates foreign key constraint"),
                "{message}"
            );
        }
        other => panic!("expected a row error, got {other:?}"),
    }
    assert!(
        error
            .to_string()
            .starts_with("bad-fk.json: table users, row 2, column domain_name: "),
        "{error}"
    );
    assert_eq!(snapshot(db).await, before);
}

#[tokio::test]
async fn update_mode_errors_name_the_table_row_and_column() {
    let test = TestDatabase::with_schema("fixtures_update_errors").await;
    let db = &test.connection;
    install_guide(db).await;
    let before = snapshot(db).await;
    let check = async |text: Value, expected: &str| {
        let error = populate_err(db, "update.json", &text.to_string()).await;
        assert_eq!(error.to_string(), expected);
    };
    check(
        json!({"__mode": "update", "users": [
            {"uuid": ADMIN, "full_name": "A"},
            {"full_name": "B"},
        ]}),
        "update.json: table users, row 1, column uuid: missing primary key column (every row of \
         an update gives the same columns)",
    )
    .await;
    check(
        json!({"__mode": "update", "users": [
            {"uuid": ADMIN, "full_name": "A"},
            {"uuid": ADMIN, "description": "B"},
        ]}),
        "update.json: table users, row 0, column description: missing data column (every row of \
         an update gives the same columns)",
    )
    .await;
    check(
        json!({"__mode": "update", "users": [{"uuid": ADMIN, "nickname": "A"}]}),
        "update.json: table users, row 0, column nickname: no such column in the table",
    )
    .await;
    check(
        json!({"__mode": "update", "vfolder_permissions": [{"vfolder": ADMIN, "user": ADMIN}]}),
        "update.json: table vfolder_permissions: has no primary key, so update mode cannot find \
         its rows",
    )
    .await;
    let error = populate_err(
        db,
        "update.json",
        &fixture(&[
            ("__mode", json!("update")),
            (
                "users",
                json!([
                    {"uuid": ADMIN, "full_name": "Changed"},
                    {"uuid": "dfa9da54-4b28-432f-be29-c0d680c7a412", "full_name": "Changed"},
                ]),
            ),
            (
                "keypairs",
                json!([{"access_key": "AKIAIOSFODNN7EXAMPLE", "resource_policy": "nowhere"}]),
            ),
        ]),
    )
    .await;
    assert!(
        error
            .to_string()
            .starts_with("update.json: table keypairs, row 0, column resource_policy: "),
        "{error}"
    );
    assert_eq!(snapshot(db).await, before, "the users' new names are gone");
}

#[tokio::test]
async fn update_mode_sets_modified_at_only_when_something_changes() {
    let test = TestDatabase::with_schema("fixtures_update").await;
    let db = &test.connection;
    install_guide(db).await;
    let modified_at = async || find(&rows(db, "users").await, "uuid", ADMIN)["modified_at"].clone();
    let first = modified_at().await;
    let rename = |name: &str| {
        json!({"__mode": "update", "users": [{"uuid": ADMIN, "full_name": name}]}).to_string()
    };
    let report = load(db, "rename.json", &rename("Admin Lablup")).await;
    assert_eq!(report.tables, [written("users", 1, 0)]);
    assert_eq!(modified_at().await, first);
    let report = load(db, "rename.json", &rename("Renamed")).await;
    assert_eq!(report.tables, [written("users", 1, 1)]);
    assert_ne!(modified_at().await, first);
    let admin = find(&rows(db, "users").await, "uuid", ADMIN);
    assert_eq!(admin["full_name"], json!("Renamed"));
}

#[tokio::test]
async fn columns_are_the_union_of_all_rows_keys() {
    let test = TestDatabase::with_schema("fixtures_union").await;
    let db = &test.connection;
    let report = load(
        db,
        "union.json",
        &fixture(&[
            (
                "resource_presets",
                json!([
                    {"name": "small", "resource_slots": {"cpu": "1"}},
                    {"name": "large", "resource_slots": {"cpu": 8, "mem": "4g"}, "shared_memory": 1024},
                ]),
            ),
            // The reference stops at an empty list and silently skips the rest of the file.
            ("keypair_resource_policies", json!([])),
            ("domains", json!([{"name": "after-an-empty-table"}])),
        ]),
    )
    .await;
    assert_eq!(
        report.tables,
        [
            written("resource_presets", 2, 2),
            written("keypair_resource_policies", 0, 0),
            written("domains", 1, 1),
        ]
    );
    let presets = rows(db, "resource_presets").await;
    assert_eq!(
        find(&presets, "name", "small")["shared_memory"],
        Value::Null
    );
    assert_eq!(
        find(&presets, "name", "large")["shared_memory"],
        json!(1024)
    );
    assert_eq!(
        find(&presets, "name", "large")["resource_slots"],
        json!({"cpu": 8, "mem": "4g"}),
        "ResourceSlot JSON is not normalised, as in the reference"
    );
}

#[tokio::test]
async fn omitted_columns_get_the_defaults_the_reference_meant() {
    let test = TestDatabase::with_schema("fixtures_defaults").await;
    let db = &test.connection;
    load(
        db,
        "defaults.json",
        &fixture(&[
            ("domains", json!([{"name": "bare"}])),
            (
                "project_resource_policies",
                json!([{"name": "p", "max_vfolder_count": 0, "max_quota_scope_size": -1}]),
            ),
            (
                "groups",
                json!([{"name": "g", "domain_name": "bare", "resource_policy": "p"}]),
            ),
            (
                "scaling_groups",
                json!([{"name": "sg", "driver": "static", "scheduler": "fifo"}]),
            ),
        ]),
    )
    .await;
    let domain = only_row(db, "domains").await;
    // The reference stores the JSON string "{}" and the array {"{","}"} here.
    assert_eq!(domain["total_resource_slots"], json!({}));
    assert_eq!(domain["allowed_docker_registries"], json!([]));
    assert_eq!(domain["is_active"], json!(true));
    assert_eq!(domain["dotfiles"], json!("\\x90"));
    let group = only_row(db, "groups").await;
    assert_eq!(group["total_resource_slots"], json!({}));
    assert_eq!(group["type"], json!("general"));
    // The reference crashes on a scaling group without scheduler_opts.
    let scaling_group = only_row(db, "scaling_groups").await;
    assert_eq!(scaling_group["scheduler_opts"], default_scheduler_opts());
    assert_eq!(scaling_group["driver_opts"], json!({}));
}

#[tokio::test]
async fn session_type_is_given_by_value_and_stored_by_name() {
    let test = TestDatabase::with_schema("fixtures_session_type").await;
    let db = &test.connection;
    load(db, INSTALL_GUIDE[0].0, INSTALL_GUIDE[0].1).await;
    let session = "5b1a4a1a-5d16-4a2b-9e4b-4d1c3f5f9a01";
    let owned = json!({"domain_name": "default", "group_id": DEFAULT_GROUP, "user_uuid": ADMIN});
    let with = |extra: Value| {
        let mut row = owned.clone();
        row.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        row
    };
    let file = fixture(&[
        (
            "sessions",
            json!([with(json!({
                "id": session, "session_type": "batch", "occupying_slots": {},
                "requested_slots": {},
            }))]),
        ),
        (
            "kernels",
            json!([with(json!({
                "session_id": session, "session_type": "batch", "cluster_role": "sub",
                "cluster_idx": 2, "occupied_slots": {}, "repl_in_port": 2000,
                "repl_out_port": 2001, "stdin_port": 2002, "stdout_port": 2003,
            }))]),
        ),
    ]);
    load(db, "sessions.json", &file).await;
    assert_eq!(
        text(db, "SELECT session_type || ' ' || cluster_mode || ' ' || target_sgroup_names::text || ' ' || status::text FROM sessions").await,
        "BATCH single-node {} PENDING"
    );
    assert_eq!(
        text(
            db,
            "SELECT session_type || ' ' || cluster_hostname || ' ' || result::text FROM kernels"
        )
        .await,
        "BATCH sub2 UNDEFINED"
    );
    assert_eq!(
        only_row(db, "sessions").await["session_type"],
        json!("batch")
    );

    let error = populate_err(
        db,
        "by-name.json",
        &json!({"sessions": [with(json!({
            "session_type": "INTERACTIVE", "occupying_slots": {}, "requested_slots": {},
        }))]})
        .to_string(),
    )
    .await;
    assert_eq!(
        error.to_string(),
        "by-name.json: table sessions, row 0, column session_type: \"INTERACTIVE\" is not one of \
         interactive, batch, inference, system (fixtures give SessionTypes member values)"
    );
}

#[tokio::test]
async fn an_export_loads_back_into_an_empty_database_unchanged() {
    let source = TestDatabase::with_schema("fixtures_export_source").await;
    install_guide(&source.connection).await;
    let exported = fixtures::export(&source.connection, &ALL_TABLES)
        .await
        .expect("export")
        .to_json_pretty();

    let target = TestDatabase::with_schema("fixtures_export_target").await;
    let db = &target.connection;
    let report = load(db, "export.json", &exported).await;
    let users = report
        .tables
        .iter()
        .find(|table| table.table == "users")
        .expect("users");
    assert_eq!((users.rows_given, users.rows_written), (5, 5));
    let again = fixtures::export(db, &ALL_TABLES)
        .await
        .expect("export")
        .to_json_pretty();
    assert_eq!(again, exported);

    // Hashes are kept as they are, so the passwords still work.
    let admin = find(&rows(db, "users").await, "uuid", ADMIN);
    let hash = admin["password"].as_str().expect("password");
    assert_eq!(bcrypt::verify("wJalrXUt", hash).ok(), Some(true));
    assert_eq!(admin["main_access_key"], json!("AKIAIOSFODNN7EXAMPLE"));
}

#[tokio::test]
async fn unknown_tables_and_top_level_arrays_are_refused() {
    let error = FixtureFile::parse(
        "example-session-templates.json",
        include_str!("../reference/example-session-templates.json"),
    )
    .expect_err("an array is not a fixture file");
    assert_eq!(
        error.to_string(),
        "example-session-templates.json: the top level is a JSON array, but a fixture file is an \
         object mapping table names to lists of rows, e.g. {\"session_templates\": [...]}"
    );

    let test = TestDatabase::with_schema("fixtures_unknown").await;
    let db = &test.connection;
    let error = populate_err(
        db,
        "typo.json",
        &json!({"domains": [{"name": "d"}], "user": [{}]}).to_string(),
    )
    .await;
    assert_eq!(
        error.to_string(),
        "typo.json: table user: no such table in the database"
    );
    assert_eq!(count(db, "domains").await, 0);
    let error = fixtures::export(db, &["domains", "nope"])
        .await
        .expect_err("unknown table");
    assert_eq!(
        error.to_string(),
        "export: table nope: no such table in the database"
    );
}

#[tokio::test]
async fn our_shipped_examples_load() {
    let test = TestDatabase::with_schema("fixtures_shipped").await;
    let db = &test.connection;
    for (name, text) in [
        (
            "example-users.json",
            include_str!("../../../../fixtures/manager/example-users.json"),
        ),
        (
            "example-keypairs.json",
            include_str!("../../../../fixtures/manager/example-keypairs.json"),
        ),
        (
            "example-set-user-main-access-keys.json",
            include_str!("../../../../fixtures/manager/example-set-user-main-access-keys.json"),
        ),
        (
            "example-resource-presets.json",
            include_str!("../../../../fixtures/manager/example-resource-presets.json"),
        ),
        (
            "example-session-templates.json",
            include_str!("../../../../fixtures/manager/example-session-templates.json"),
        ),
    ] {
        load(db, name, text).await;
    }
    assert_eq!(count(db, "session_templates").await, 2);
    assert_eq!(
        text(
            db,
            "SELECT string_agg(type::text, ',') FROM session_templates"
        )
        .await,
        "TASK,TASK"
    );
    let presets = rows(db, "resource_presets").await;
    assert_eq!(
        find(&presets, "name", "cuda03-large")["shared_memory"],
        json!(2_147_483_648_i64)
    );
}

async fn load(db: &DatabaseConnection, name: &str, text: &str) -> PopulateReport {
    let file = FixtureFile::parse(name, text).expect("parses");
    fixtures::populate(db, &file)
        .await
        .unwrap_or_else(|error| panic!("{error}"))
}

async fn populate_err(db: &DatabaseConnection, name: &str, text: &str) -> FixtureError {
    let file = FixtureFile::parse(name, text).expect("parses");
    fixtures::populate(db, &file)
        .await
        .expect_err("the file is refused")
}

async fn install_guide(db: &DatabaseConnection) -> Vec<PopulateReport> {
    let mut reports = Vec::new();
    for (name, text) in INSTALL_GUIDE {
        reports.push(load(db, name, text).await);
    }
    reports
}

/// A fixture file's text with the tables in the order given (`json!` would sort them).
fn fixture(tables: &[(&str, Value)]) -> String {
    let entries: Vec<String> = tables
        .iter()
        .map(|(name, rows)| format!("{}: {rows}", json!(name)))
        .collect();
    format!("{{{}}}", entries.join(", "))
}

fn written(table: &str, rows_given: usize, rows_written: u64) -> TableReport {
    TableReport {
        table: table.to_owned(),
        rows_given,
        rows_written,
    }
}

fn default_scheduler_opts() -> Value {
    json!({
        "allowed_session_types": ["interactive", "batch"],
        "pending_timeout": 0.0,
        "config": {},
        "agent_selection_strategy": "dispersed",
        "roundrobin": false,
    })
}

fn new_user(number: u32) -> Value {
    json!({
        "uuid": format!("00000000-0000-4000-8000-00000000000{number}"),
        "username": format!("new{number}"),
        "email": format!("new{number}@example.com"),
        "password": "secret",
        "domain_name": "default",
        "resource_policy": "default",
        "role": "user",
    })
}

/// Every table's rows, as export spells them.
async fn snapshot(db: &DatabaseConnection) -> String {
    fixtures::export(db, &ALL_TABLES)
        .await
        .expect("export")
        .to_json_pretty()
}

async fn rows(db: &DatabaseConnection, table: &str) -> Vec<Map<String, Value>> {
    let mut file = fixtures::export(db, &[table]).await.expect("export");
    file.tables.remove(0).rows
}

async fn only_row(db: &DatabaseConnection, table: &str) -> Map<String, Value> {
    let mut rows = rows(db, table).await;
    assert_eq!(rows.len(), 1, "{table}");
    rows.remove(0)
}

fn find(rows: &[Map<String, Value>], column: &str, value: &str) -> Map<String, Value> {
    rows.iter()
        .find(|row| row[column] == json!(value))
        .unwrap_or_else(|| panic!("no row with {column} = {value}"))
        .clone()
}

async fn count(db: &DatabaseConnection, table: &str) -> i64 {
    let row = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT count(*) AS n FROM \"{table}\""),
        ))
        .await
        .expect("count")
        .expect("a row");
    row.try_get("", "n").expect("count")
}

async fn text(db: &DatabaseConnection, sql: &str) -> String {
    let row = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT ({sql}) AS value"),
        ))
        .await
        .expect("query")
        .expect("a row");
    row.try_get("", "value").expect("text")
}
