//! The GraphQL image mutations on the real router: their declarations as the reference's,
//! `modify_image`, `clear_images`, `preload_image`, `untag_image_from_registry` (a Harbor 2
//! registry played by a local HTTP server; other registry types refused), the role rules, and
//! `rescan_images` starting a background task whose tracker records how it ended.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{Api, bare_sdl, data, error_message, serve};
use axum::Router;
use axum::http::{HeaderMap, Method as AxumMethod, StatusCode, Uri};
use bai_api::testing::{DOMAIN_ADMIN, ExampleUser, SUPERADMIN, TestCluster, USER};
use bai_db_models::entities::enums::ImageType;
use bai_db_models::entities::images;
use bai_etcd_store::Scope;
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde_json::{Value, json};
use uuid::Uuid;

/// `user@lablup.com` of the example fixtures.
const USER_UUID: &str = "dfa9da54-4b28-432f-be29-c0d680c7a412";

async fn insert(api: &Api, registry: &str, name: &str, tag: &str, labels: Value) -> Uuid {
    let id = Uuid::new_v4();
    images::ActiveModel {
        id: Set(id),
        name: Set(format!("{registry}/{name}:{tag}")),
        image: Set(name.to_owned()),
        tag: Set(Some(tag.to_owned())),
        registry: Set(registry.to_owned()),
        architecture: Set("x86_64".to_owned()),
        config_digest: Set(format!("sha256:{:064x}", 7)),
        size_bytes: Set(1_000),
        is_local: Set(false),
        r#type: Set(ImageType::Compute),
        accelerators: Set(None),
        labels: Set(labels),
        resources: Set(json!({"cpu": {"min": "1", "max": null}})),
        ..Default::default()
    }
    .insert(&api.cluster.database.connection)
    .await
    .expect("inserting an image");
    id
}

async fn row(api: &Api, id: Uuid) -> Option<images::Model> {
    images::Entity::find_by_id(id)
        .one(&api.cluster.database.connection)
        .await
        .expect("reading an image")
}

#[test]
fn the_schema_declares_the_image_mutations_as_the_reference() {
    let sdl = bare_sdl();
    for declaration in [
        "rescan_images(registry: String): RescanImages ",
        "preload_image(references: [String]!, target_agents: [String]!): PreloadImage ",
        "unload_image(references: [String]!, target_agents: [String]!): UnloadImage ",
        "alias_image(alias: String!, target: String!, architecture: String = \"x86_64\"): AliasImage ",
        "dealias_image(alias: String!): DealiasImage ",
        "modify_image(target: String!, architecture: String = \"x86_64\", props: ModifyImageInput!): ModifyImage ",
        "clear_images(registry: String): ClearImages ",
        "forget_image(reference: String!, architecture: String = \"x86_64\"): ForgetImage ",
        "forget_image_by_id(image_id: String!): ForgetImageById ",
        "untag_image_from_registry(image_id: String!): UntagImageFromRegistry ",
        "type RescanImages { ok: Boolean msg: String task_id: UUID }",
        "type PreloadImage { ok: Boolean msg: String task_id: String }",
        "type AliasImage { ok: Boolean msg: String }",
        "type ForgetImage { ok: Boolean msg: String image: ImageNode }",
        "input ModifyImageInput { name: String registry: String image: String tag: String \
         architecture: String is_local: Boolean size_bytes: Int type: String digest: String \
         labels: [KVPairInput] supported_accelerators: [String] resource_limits: \
         [ResourceLimitInput] }",
        "input KVPairInput { key: String value: String }",
        "input ResourceLimitInput { key: String min: String max: String }",
    ] {
        assert!(sdl.contains(declaration), "missing: {declaration}");
    }
}

const MODIFY: &str = "mutation($target: String!, $props: ModifyImageInput!) { \
                      modify_image(target: $target, props: $props) { ok msg } }";

/// The data of `modify_image` of `target` with `props`, sent by `who`.
async fn modify(api: &Api, who: &ExampleUser, target: &str, props: Value) -> Value {
    data(api, who, MODIFY, json!({"target": target, "props": props})).await
}

#[tokio::test]
async fn modify_image_changes_only_the_given_columns() {
    let api = Api::start("gql_image_modify").await;
    let id = insert(
        &api,
        "cr.backend.ai",
        "stable/python",
        "3.9",
        json!({"a": "1"}),
    )
    .await;
    let props = json!({
        "labels": [{"key": "ai.backend.features", "value": "batch"}],
        "supported_accelerators": ["cuda", "rocm"],
        "resource_limits": [{"key": "cpu", "min": "2", "max": ""}, {"key": "mem", "max": "4g"}],
        "type": "SYSTEM",
        "size_bytes": 5_000_000_000_i64,
    });
    let target = "cr.backend.ai/stable/python:3.9";
    assert_eq!(
        modify(&api, &SUPERADMIN, target, props).await,
        json!({"modify_image": {"ok": true, "msg": ""}})
    );
    let changed = row(&api, id).await.expect("the image");
    assert_eq!(changed.labels, json!({"ai.backend.features": "batch"}));
    assert_eq!(changed.accelerators.as_deref(), Some("cuda,rocm"));
    assert_eq!(
        changed.resources,
        json!({"cpu": {"min": "2"}, "mem": {"max": "4g"}})
    );
    assert_eq!(changed.r#type, ImageType::System);
    assert_eq!(changed.size_bytes, 5_000_000_000);
    assert_eq!(changed.tag.as_deref(), Some("3.9"));

    for (target, props, msg) in [
        (
            "cr.backend.ai/stable/python:3.10",
            json!({"tag": "x"}),
            "Image not found",
        ),
        (
            target,
            json!({"type": "GAME"}),
            "\"GAME\" is not an image type (COMPUTE, SYSTEM or SERVICE)",
        ),
    ] {
        assert_eq!(
            modify(&api, &SUPERADMIN, target, props).await,
            json!({"modify_image": {"ok": false, "msg": msg}})
        );
    }
    assert_eq!(
        modify(&api, &DOMAIN_ADMIN, target, json!({"tag": "x"})).await,
        json!({"modify_image": {"ok": false, "msg": "no permission to execute modify_image"}})
    );
}

#[tokio::test]
async fn clear_images_and_preload_image() {
    let api = Api::start("gql_image_clear").await;
    let cleared = insert(&api, "old.example.com", "stable/python", "1", json!({})).await;
    let kept = insert(&api, "cr.backend.ai", "stable/python", "1", json!({})).await;
    let alias = "mutation { alias_image(alias: \"old\", target: \"old.example.com/stable/python:1\") { ok msg } }";
    assert_eq!(
        data(&api, &SUPERADMIN, alias, json!({})).await,
        json!({"alias_image": {"ok": true, "msg": ""}})
    );
    let clear = "mutation { clear_images(registry: \"old.example.com\") { ok msg } }";
    assert_eq!(
        data(&api, &USER, clear, json!({})).await,
        json!({"clear_images": {"ok": false, "msg": "no permission to execute clear_images"}})
    );
    assert_eq!(
        data(&api, &SUPERADMIN, clear, json!({})).await,
        json!({"clear_images": {"ok": true, "msg": ""}})
    );
    assert!(row(&api, cleared).await.is_none());
    assert!(row(&api, kept).await.is_some());

    let preload = "mutation { preload_image(references: [\"x\"], target_agents: [\"i-1\"]) \
                   { ok msg task_id } }";
    assert_eq!(
        data(&api, &SUPERADMIN, preload, json!({})).await,
        json!({"preload_image": {"ok": false, "msg": "Not implemented.", "task_id": null}})
    );
}

/// What the fake Harbor was asked: method, path and the `Authorization` header.
type Requests = Arc<Mutex<Vec<(String, String, Option<String>)>>>;

/// A Harbor 2 API that answers every request 200 and records it.
async fn fake_harbor() -> (String, Requests) {
    let requests: Requests = Arc::default();
    let recorded = Arc::clone(&requests);
    let router = Router::new().fallback(
        move |method: AxumMethod, uri: Uri, headers: HeaderMap| async move {
            let authorization = headers
                .get("authorization")
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            recorded.lock().expect("requests").push((
                method.to_string(),
                uri.path().to_owned(),
                authorization,
            ));
            StatusCode::OK
        },
    );
    let addr = serve(router).await;
    (format!("http://{addr}"), requests)
}

const UNTAG: &str = "mutation($image_id: String!) { untag_image_from_registry(image_id: $image_id) \
                     { ok msg image { name tag } } }";

#[tokio::test]
async fn untag_deletes_the_harbor_artifact_of_the_callers_image() {
    let cluster = TestCluster::start("gql_image_untag").await;
    let (harbor, requests) = fake_harbor().await;
    let store = cluster.namespace.store().await;
    for (key, value) in [
        ("config/docker/registry/harbor.test", harbor.as_str()),
        ("config/docker/registry/harbor.test/type", "harbor2"),
        ("config/docker/registry/harbor.test/project", "myproject"),
        ("config/docker/registry/harbor.test/username", "admin"),
        ("config/docker/registry/harbor.test/password", "secret"),
        (
            "config/docker/registry/cr.backend.ai",
            "https://cr.backend.ai",
        ),
        ("config/docker/registry/cr.backend.ai/type", "docker"),
    ] {
        store
            .put(key, value, Scope::Global)
            .await
            .expect("etcd put");
    }
    let api = Api::on(cluster).await;
    let owned = json!({"ai.backend.customized-image.owner": format!("user:{USER_UUID}")});
    let mine = insert(
        &api,
        "harbor.test",
        "myproject/team/python",
        "1.0",
        owned.clone(),
    )
    .await;
    let theirs = insert(&api, "harbor.test", "myproject/python", "2.0", json!({})).await;
    let docker = insert(&api, "cr.backend.ai", "stable/python", "3.9", owned).await;

    assert_eq!(
        data(&api, &USER, UNTAG, json!({"image_id": theirs.to_string()})).await,
        json!({"untag_image_from_registry": {"ok": false, "msg": "Forbidden", "image": null}})
    );
    // The relay id works as well as the row id.
    let relay = data_encoding::BASE64.encode(format!("ImageNode:{mine}").as_bytes());
    assert_eq!(
        data(&api, &USER, UNTAG, json!({"image_id": relay})).await,
        json!({"untag_image_from_registry": {
            "ok": true, "msg": "", "image": {"name": "myproject/team/python", "tag": "1.0"},
        }})
    );
    let basic = format!("Basic {}", data_encoding::BASE64.encode(b"admin:secret"));
    assert_eq!(
        *requests.lock().expect("requests"),
        [(
            "DELETE".to_owned(),
            "/api/v2.0/projects/myproject/repositories/team%252Fpython/artifacts/1.0".to_owned(),
            Some(basic),
        )]
    );
    // The row stays.
    assert!(row(&api, mine).await.is_some());

    assert_eq!(
        error_message(&api, &USER, UNTAG, json!({"image_id": docker.to_string()})).await,
        "untagging is only supported for Harbor 2 registries (registry type \"docker\")"
    );
    assert_eq!(
        error_message(&api, &USER, UNTAG, json!({"image_id": "not-an-id"})).await,
        "No such image."
    );
}

const RESCAN: &str = "mutation($registry: String) { rescan_images(registry: $registry) \
                      { ok msg task_id } }";

#[tokio::test]
async fn rescan_images_starts_a_task_for_admins_only() {
    let api = Api::start("gql_image_rescan").await;
    assert_eq!(
        data(&api, &USER, RESCAN, json!({"registry": null})).await,
        json!({"rescan_images": {
            "ok": false, "msg": "no permission to execute rescan_images", "task_id": null,
        }})
    );
    let unknown = data(&api, &DOMAIN_ADMIN, RESCAN, json!({"registry": "nowhere"})).await;
    assert_eq!(unknown["rescan_images"]["ok"], json!(false), "{unknown}");
    assert!(
        unknown["rescan_images"]["msg"]
            .as_str()
            .is_some_and(|msg| msg.contains("nowhere")),
        "{unknown}"
    );
    // No registry is configured: the task starts, and fails.
    let started = data(&api, &DOMAIN_ADMIN, RESCAN, json!({"registry": null})).await;
    assert_eq!(started["rescan_images"]["ok"], json!(true), "{started}");
    let task_id: Uuid = started["rescan_images"]["task_id"]
        .as_str()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("a task id: {started}"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let tracker = api
            .ctx
            .redis()
            .stream
            .bgtask_tracker(task_id)
            .await
            .expect("reading the tracker")
            .expect("a tracker");
        if tracker.status != "started" {
            assert_eq!(tracker.status, "failed", "{tracker:?}");
            assert!(!tracker.msg.is_empty(), "{tracker:?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{tracker:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
