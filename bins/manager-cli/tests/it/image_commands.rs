//! `manager-cli image list/inspect/alias/dealias/forget/set-resource-limit` against the halfstack's
//! real PostgreSQL (a database of each test's own, rows inserted through the entities), etcd (a
//! namespace of each test's own, holding `config/redis`) and Redis database 3 (keys named after
//! each test's own registry, deleted at the end).

use std::process::Output;

use crate::support::{manager_cli, manager_toml_dir, text};
use bai_db_models::entities::enums::ImageType;
use bai_db_models::entities::{image_aliases, images};
use bai_db_models::testing::TestDatabase;
use bai_etcd_store::Scope;
use bai_etcd_store::testing::TestNamespace;
use bai_redis::ImageDb;
use sea_orm::prelude::Uuid;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use serde_json::{Value, json};

/// A database with the schema, an etcd namespace, and a manager.toml pointing at both.
struct Catalogue {
    db: TestDatabase,
    etcd: TestNamespace,
    dir: tempfile::TempDir,
}

impl Catalogue {
    async fn new(label: &str) -> Catalogue {
        let db = TestDatabase::with_schema(label).await;
        let etcd = TestNamespace::new(label);
        let dir = manager_toml_dir(&db, &etcd);
        Catalogue { db, etcd, dir }
    }

    fn run(&self, args: &[&str]) -> Output {
        manager_cli(self.dir.path(), args)
    }

    /// Runs `image ARGS`, asserts success, returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(&[&["image"], args].concat());
        assert!(
            output.status.success(),
            "image {args:?} failed: {}",
            text(&output.stderr)
        );
        text(&output.stdout)
    }

    /// Runs `image ARGS`, asserts exit code 1 and nothing on stdout, returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let output = self.run(&[&["image"], args].concat());
        assert_eq!(
            output.status.code(),
            Some(1),
            "image {args:?}: stdout {} stderr {}",
            text(&output.stdout),
            text(&output.stderr)
        );
        assert_eq!(text(&output.stdout), "", "image {args:?}");
        text(&output.stderr)
    }

    async fn insert(&self, registry: &str, image: &str, tag: &str, arch: &str) -> images::Model {
        let digest = format!("sha256:{:0>64}", format!("{:x}", Uuid::new_v4().as_u128()));
        images::ActiveModel {
            id: Set(Uuid::new_v4()),
            name: Set(format!("{registry}/{image}:{tag}")),
            image: Set(image.to_owned()),
            tag: Set(Some(tag.to_owned())),
            registry: Set(registry.to_owned()),
            architecture: Set(arch.to_owned()),
            config_digest: Set(digest),
            size_bytes: Set(123_456_789),
            is_local: Set(false),
            r#type: Set(ImageType::Compute),
            accelerators: Set(Some("cuda,rocm".to_owned())),
            labels: Set(json!({
                "ai.backend.kernelspec": "1",
                "ai.backend.features": "batch query uid-match",
            })),
            resources: Set(json!({
                "cpu": {"min": "1", "max": null},
                "mem": {"min": "1g", "max": null},
            })),
            ..Default::default()
        }
        .insert(&self.db.connection)
        .await
        .expect("insert image")
    }

    async fn row(&self, id: Uuid) -> Option<images::Model> {
        images::Entity::find_by_id(id)
            .one(&self.db.connection)
            .await
            .expect("read image")
    }

    async fn aliases(&self) -> Vec<(String, Uuid)> {
        let mut rows: Vec<(String, Uuid)> = image_aliases::Entity::find()
            .all(&self.db.connection)
            .await
            .expect("read aliases")
            .into_iter()
            .map(|row| (row.alias.expect("alias"), row.image))
            .collect();
        rows.sort();
        rows
    }
}

/// A registry name no other test (or earlier run) uses, so Redis keys never collide.
fn unique_registry(label: &str) -> String {
    format!("{label}-{}.test", &Uuid::new_v4().simple().to_string()[..8])
}

#[tokio::test]
async fn list_prints_each_row_and_short_prints_digests() {
    let catalogue = Catalogue::new("img_list").await;
    let registry = "cr.example.com";
    let py_x86 = catalogue
        .insert(registry, "stable/python", "3.9-ubuntu20.04", "x86_64")
        .await;
    let py_arm = catalogue
        .insert(registry, "stable/python", "3.9-ubuntu20.04", "aarch64")
        .await;
    let tf = catalogue
        .insert(registry, "stable/tensorflow", "2.15-py311", "x86_64")
        .await;

    assert_eq!(
        catalogue.ok(&["list"]),
        "cr.example.com/stable/python:3.9-ubuntu20.04 (aarch64)\n\
         cr.example.com/stable/python:3.9-ubuntu20.04 (x86_64)\n\
         cr.example.com/stable/tensorflow:2.15-py311 (x86_64)\n"
    );
    let digest = |row: &images::Model| row.config_digest.trim().to_owned();
    assert_eq!(py_x86.config_digest.len(), 72, "char(72) pads the digest");
    assert_eq!(
        catalogue.ok(&["list", "--short"]),
        format!(
            "cr.example.com/stable/python:3.9-ubuntu20.04  {}\n\
             cr.example.com/stable/python:3.9-ubuntu20.04  {}\n\
             cr.example.com/stable/tensorflow:2.15-py311   {}\n",
            digest(&py_arm),
            digest(&py_x86),
            digest(&tf)
        )
    );
    assert_eq!(
        catalogue.ok(&["list", "-s"]),
        catalogue.ok(&["list", "--short"])
    );
}

#[tokio::test]
async fn list_installed_shows_only_images_agents_hold() {
    let catalogue = Catalogue::new("img_installed").await;
    let store = catalogue.etcd.store().await;
    store
        .put("config/redis/addr", "127.0.0.1:8110", Scope::Global)
        .await
        .expect("put redis addr");
    store
        .put("config/redis/password", "develove", Scope::Global)
        .await
        .expect("put redis password");
    let registry = unique_registry("installed");
    let held = catalogue
        .insert(&registry, "stable/python", "3.9", "x86_64")
        .await;
    catalogue
        .insert(&registry, "stable/unused", "1.0", "x86_64")
        .await;

    let shared = bai_etcd_store::SharedConfig::load(&store)
        .await
        .expect("reading the shared config");
    let redis = ImageDb::connect(&shared.redis)
        .await
        .expect("Redis at 127.0.0.1:8110; start it with: cargo xtask halfstack up");
    redis
        .raw()
        .sadd(held.name.as_str(), &["i-agent2", "i-agent1"])
        .await
        .expect("sadd");

    let listed = catalogue.ok(&["list", "--installed"]);
    let short = catalogue.ok(&["list", "--installed", "--short"]);
    redis.raw().del(&[held.name.as_str()]).await.expect("del");
    redis.close().await;

    assert_eq!(
        listed,
        format!(
            "{}/stable/python:3.9 (x86_64) @ i-agent1 i-agent2\n",
            registry
        )
    );
    assert_eq!(
        short,
        format!(
            "{}/stable/python:3.9  {}  i-agent1 i-agent2\n",
            registry,
            held.config_digest.trim()
        )
    );
}

#[tokio::test]
async fn list_installed_without_redis_in_etcd_says_so() {
    let catalogue = Catalogue::new("img_noredis").await;
    let stderr = catalogue.fails(&["list", "--installed"]);
    assert!(stderr.contains("config/redis"), "{stderr}");
}

#[tokio::test]
async fn inspect_by_canonical_and_by_alias() {
    let catalogue = Catalogue::new("img_inspect").await;
    let registry = "cr.example.com";
    let x86 = catalogue
        .insert(registry, "stable/python", "3.9-ubuntu20.04", "x86_64")
        .await;
    let arm = catalogue
        .insert(registry, "stable/python", "3.9-ubuntu20.04", "aarch64")
        .await;
    let canonical = "cr.example.com/stable/python:3.9-ubuntu20.04";
    catalogue.ok(&["alias", "python", canonical, "aarch64"]);

    let inspected: Value =
        serde_json::from_str(&catalogue.ok(&["inspect", canonical, "x86_64"])).expect("JSON");
    assert_eq!(
        inspected,
        json!({
            "canonical_ref": canonical,
            "name": "stable/python",
            "humanized_name": "stable/python",
            "tag": "3.9-ubuntu20.04",
            "architecture": "x86_64",
            "registry": registry,
            "digest": x86.config_digest.trim(),
            "labels": {
                "ai.backend.kernelspec": "1",
                "ai.backend.features": "batch query uid-match",
            },
            "size_bytes": 123_456_789,
            "resource_limits": [
                {"key": "cpu", "min": "1", "max": "Infinity"},
                {"key": "mem", "min": "1g", "max": "Infinity"},
            ],
            "supported_accelerators": ["cuda", "rocm"],
            "reverse_aliases": [],
        })
    );
    let pretty = catalogue.ok(&["inspect", canonical, "x86_64"]);
    let keys: Vec<&str> = pretty
        .lines()
        .filter_map(|line| line.strip_prefix("  \""))
        .filter_map(|line| line.split('"').next())
        .collect();
    assert_eq!(
        keys,
        [
            "canonical_ref",
            "name",
            "humanized_name",
            "tag",
            "architecture",
            "registry",
            "digest",
            "labels",
            "size_bytes",
            "resource_limits",
            "supported_accelerators",
            "reverse_aliases"
        ],
        "the reference's field order"
    );

    // arm64 is aarch64; the alias is bound to one row whatever architecture is asked for.
    let by_arch: Value =
        serde_json::from_str(&catalogue.ok(&["inspect", canonical, "arm64"])).expect("JSON");
    assert_eq!(by_arch["digest"], arm.config_digest.trim());
    assert_eq!(by_arch["reverse_aliases"], json!(["python"]));
    let by_alias: Value =
        serde_json::from_str(&catalogue.ok(&["inspect", "python", "x86_64"])).expect("JSON");
    assert_eq!(by_alias["architecture"], "aarch64");
    assert_eq!(by_alias["digest"], arm.config_digest.trim());

    let stderr = catalogue.fails(&["inspect", canonical, "riscv64"]);
    assert!(
        stderr.contains(&format!("ref:'{canonical}' (riscv64)"))
            && stderr.contains(&format!("alias:'{canonical}'")),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_single_row_is_found_whatever_architecture_is_asked() {
    let catalogue = Catalogue::new("img_nonstrict").await;
    let only = catalogue
        .insert("cr.example.com", "stable/r", "4.3", "aarch64")
        .await;
    let inspected: Value =
        serde_json::from_str(&catalogue.ok(&["inspect", "cr.example.com/stable/r:4.3", "x86_64"]))
            .expect("JSON");
    assert_eq!(inspected["digest"], only.config_digest.trim());
    let stderr = catalogue.fails(&["inspect", "stable/r:4.3", "x86_64"]);
    assert!(
        stderr.contains(
            "error: Unknown image references: ref:'stable/r:4.3' (x86_64), alias:'stable/r:4.3'"
        ),
        "any first segment is a registry, as in the reference: {stderr}"
    );
}

#[tokio::test]
async fn alias_and_dealias_round_trip_with_their_errors() {
    let catalogue = Catalogue::new("img_alias").await;
    let target = catalogue
        .insert("cr.example.com", "stable/python", "3.9", "x86_64")
        .await;
    let canonical = "cr.example.com/stable/python:3.9";

    assert_eq!(
        catalogue.ok(&["alias", "py", canonical, "x86_64"]),
        format!("Alias \"py\" now points to {canonical} (x86_64).\n")
    );
    assert_eq!(catalogue.aliases().await, [("py".to_owned(), target.id)]);

    let stderr = catalogue.fails(&["alias", "py", canonical, "x86_64"]);
    assert_eq!(
        stderr,
        format!("error: alias \"py\" already exists: it points to {canonical} (x86_64)\n")
    );
    let stderr = catalogue.fails(&[
        "alias",
        "other",
        "cr.example.com/stable/nothing:1",
        "x86_64",
    ]);
    assert_eq!(
        stderr,
        "error: Unknown image references: ref:'cr.example.com/stable/nothing:1' (x86_64)\n"
    );
    let stderr = catalogue.fails(&["alias", "bad", "cr.example.com/stable/python:-x", "x86_64"]);
    assert!(
        stderr.starts_with("error: invalid image tag \"-x\""),
        "{stderr}"
    );
    assert_eq!(
        catalogue.aliases().await.len(),
        1,
        "nothing added by failures"
    );

    // An alias that is no valid reference (its "tag" ends with '-') is still found as an alias.
    catalogue.ok(&["alias", "py:odd-", canonical, "x86_64"]);
    let inspected: Value =
        serde_json::from_str(&catalogue.ok(&["inspect", "py:odd-", "x86_64"])).expect("JSON");
    assert_eq!(inspected["reverse_aliases"], json!(["py", "py:odd-"]));
    catalogue.ok(&["dealias", "py:odd-"]);

    assert_eq!(
        catalogue.ok(&["dealias", "py"]),
        format!("Removed the alias \"py\" of {canonical} (x86_64).\n")
    );
    assert_eq!(catalogue.aliases().await, []);
    assert_eq!(
        catalogue.fails(&["dealias", "py"]),
        "error: alias \"py\" does not exist\n"
    );
    assert!(catalogue.row(target.id).await.is_some(), "the image stays");
}

#[tokio::test]
async fn forget_round_trip_refuses_while_aliases_point_to_the_image() {
    let catalogue = Catalogue::new("img_forget").await;
    let x86 = catalogue
        .insert("cr.example.com", "stable/python", "3.9", "x86_64")
        .await;
    let arm = catalogue
        .insert("cr.example.com", "stable/python", "3.9", "aarch64")
        .await;
    let canonical = "cr.example.com/stable/python:3.9";
    catalogue.ok(&["alias", "py", canonical, "x86_64"]);
    catalogue.ok(&["alias", "python", canonical, "x86_64"]);

    assert_eq!(
        catalogue.fails(&["forget", "py", "x86_64"]),
        format!(
            "error: image {canonical} (x86_64) still has the aliases py, python; remove them first with `image dealias`\n"
        )
    );
    assert!(catalogue.row(x86.id).await.is_some());

    catalogue.ok(&["dealias", "py"]);
    catalogue.ok(&["dealias", "python"]);
    assert_eq!(
        catalogue.ok(&["forget", canonical, "amd64"]),
        format!("Forgot the image {canonical} (x86_64).\n")
    );
    assert!(catalogue.row(x86.id).await.is_none());
    assert!(
        catalogue.row(arm.id).await.is_some(),
        "the other architecture stays"
    );
    assert_eq!(catalogue.ok(&["list"]), format!("{canonical} (aarch64)\n"));

    // The alias is gone with the row it named: asking for it fails, naming what was searched.
    assert_eq!(
        catalogue.fails(&["forget", "py", "x86_64"]),
        "error: Unknown image references: ref:'index.docker.io/lablup/py:latest' (x86_64), alias:'py'\n"
    );
    assert_eq!(
        catalogue.ok(&["forget", canonical, "aarch64"]),
        format!("Forgot the image {canonical} (aarch64).\n")
    );
    assert_eq!(catalogue.ok(&["list"]), "");
}

#[tokio::test]
async fn set_resource_limit_persists_and_keeps_the_side_not_given() {
    let catalogue = Catalogue::new("img_limits").await;
    let image = catalogue
        .insert("cr.example.com", "stable/python", "3.9", "x86_64")
        .await;
    let canonical = "cr.example.com/stable/python:3.9";
    catalogue.ok(&["alias", "py", canonical, "x86_64"]);

    assert_eq!(
        catalogue.ok(&["set-resource-limit", canonical, "cpu", "2:8", "x86_64"]),
        format!("The cpu limits of {canonical} (x86_64) are now min 2, max 8.\n")
    );
    assert_eq!(
        catalogue.ok(&["set-resource-limit", "py", "mem", ":4294967296", "x86_64"]),
        format!("The mem limits of {canonical} (x86_64) are now min 1g, max 4294967296.\n")
    );
    assert_eq!(
        catalogue.ok(&["set-resource-limit", "py", "cuda.shares", ":2.5", "x86_64"]),
        format!("The cuda.shares limits of {canonical} (x86_64) are now min 0, max 2.5.\n")
    );
    assert_eq!(
        catalogue.row(image.id).await.expect("row").resources,
        json!({
            "cpu": {"min": "2", "max": "8"},
            "mem": {"min": "1g", "max": "4294967296"},
            "cuda.shares": {"min": "0", "max": "2.5"},
        })
    );

    let stderr = catalogue.fails(&["set-resource-limit", "nothing", "cpu", "1:2", "x86_64"]);
    assert_eq!(
        stderr,
        "error: Unknown image references: ref:'index.docker.io/lablup/nothing:latest' (x86_64), alias:'nothing'\n"
    );
    for (range, message) in [
        ("4:1", "MIN is greater than MAX in \"4:1\""),
        (":", "\":\" sets neither MIN nor MAX"),
        ("x:1", "MIN \"x\" of \"x:1\" is not a decimal number"),
        ("-1:", "MIN \"-1\" of \"-1:\" is negative"),
    ] {
        let output = catalogue.run(&["image", "set-resource-limit", "py", "cpu", range, "x86_64"]);
        assert_eq!(output.status.code(), Some(2), "{range}: usage error");
        assert!(
            text(&output.stderr).contains(message),
            "{range}: {}",
            text(&output.stderr)
        );
    }
    assert_eq!(
        catalogue.row(image.id).await.expect("row").resources["cpu"],
        json!({"min": "2", "max": "8"}),
        "refused ranges change nothing"
    );
    let missing = images::Entity::find()
        .filter(images::Column::Name.eq("nothing"))
        .all(&catalogue.db.connection)
        .await
        .expect("query");
    assert!(missing.is_empty());
}
