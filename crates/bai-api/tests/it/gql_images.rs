//! The GraphQL image queries on the real router, over image rows inserted through the entities:
//! `images` with the reference's load filters and role rules (non-superadmins see only the
//! registries their domain allows), which agents hold each image (Redis image database),
//! `customized_images`, and `image` by id, canonical name or alias.

use crate::common::{Api, data, error_message};
use bai_api::testing::{DOMAIN_ADMIN, MONITOR, SUPERADMIN, USER};
use bai_db_models::entities::enums::ImageType;
use bai_db_models::entities::{image_aliases, images};
use sea_orm::{ActiveModelTrait, Set};
use serde_json::{Value, json};
use uuid::Uuid;

/// `user@lablup.com` of the example fixtures.
const USER_UUID: &str = "dfa9da54-4b28-432f-be29-c0d680c7a412";

/// Image rows of one test, with the agents holding them in the test's Redis image database.
struct Images {
    suffix: String,
}

impl Images {
    fn new() -> Images {
        Images {
            // A platform tag (letters, then a version), so that the tag stays valid.
            suffix: format!("build{}", Uuid::new_v4().as_u128() as u64),
        }
    }

    fn tag(&self, tag: &str) -> String {
        format!("{tag}-{}", self.suffix)
    }

    fn canonical(&self, registry: &str, name: &str, tag: &str) -> String {
        format!("{registry}/{name}:{}", self.tag(tag))
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert(
        &self,
        api: &Api,
        registry: &str,
        name: &str,
        tag: &str,
        labels: Value,
        resources: Value,
        accelerators: Option<&str>,
    ) -> Uuid {
        let id = Uuid::new_v4();
        images::ActiveModel {
            id: Set(id),
            name: Set(self.canonical(registry, name, tag)),
            image: Set(name.to_owned()),
            tag: Set(Some(self.tag(tag))),
            registry: Set(registry.to_owned()),
            architecture: Set("x86_64".to_owned()),
            config_digest: Set(format!("sha256:{:064x}", 7)),
            size_bytes: Set(123_456_789),
            is_local: Set(false),
            r#type: Set(ImageType::Compute),
            accelerators: Set(accelerators.map(str::to_owned)),
            labels: Set(labels),
            resources: Set(resources),
            ..Default::default()
        }
        .insert(&api.cluster.database.connection)
        .await
        .expect("inserting an image");
        id
    }
}

async fn alias(api: &Api, alias: &str, image: Uuid) {
    image_aliases::ActiveModel {
        id: Set(Uuid::new_v4()),
        alias: Set(Some(alias.to_owned())),
        image: Set(image),
    }
    .insert(&api.cluster.database.connection)
    .await
    .expect("inserting an alias");
}

fn names(images: &Value) -> Vec<String> {
    let mut names: Vec<String> = images
        .as_array()
        .expect("a list")
        .iter()
        .map(|image| {
            format!(
                "{}/{}",
                image["registry"].as_str().unwrap(),
                image["name"].as_str().unwrap()
            )
        })
        .collect();
    names.sort();
    names
}

const IMAGES: &str = "query($is_operation: Boolean, $load_filters: [String], $is_installed: Boolean) { images(is_operation: $is_operation, load_filters: $load_filters, is_installed: $is_installed) { name registry architecture tag digest size_bytes aliases } }";

#[tokio::test]
async fn images_by_role_filter_and_installation() {
    let api = Api::start("gql_images").await;
    let rows = Images::new();
    let python = rows
        .insert(
            &api,
            "cr.backend.ai",
            "stable/python",
            "3.9",
            json!({"ai.backend.kernelspec": "1", "ai.backend.base-distro": "ubuntu20.04"}),
            json!({"cpu": {"min": "1", "max": null}, "mem": {"min": "1g"}}),
            Some("cuda,rocm"),
        )
        .await;
    alias(&api, &format!("python-{}", rows.suffix), python).await;
    rows.insert(
        &api,
        "registry.example.com",
        "lab/tool",
        "1",
        json!({}),
        json!({}),
        None,
    )
    .await;
    rows.insert(
        &api,
        "cr.backend.ai",
        "multiarch/operation",
        "1",
        json!({"ai.backend.features": "operation uid-match"}),
        json!({}),
        None,
    )
    .await;
    rows.insert(
        &api,
        "cr.backend.ai",
        "custom/mine",
        "1",
        json!({"ai.backend.customized-image.owner": format!("user:{USER_UUID}")}),
        json!({}),
        None,
    )
    .await;
    let python_name = rows.canonical("cr.backend.ai", "stable/python", "3.9");
    let redis = api.ctx.redis().image.raw();
    redis
        .sadd(python_name.as_str(), &["i-b", "i-a"])
        .await
        .expect("SADD");

    // What `backend.ai admin image list` asks (is_operation false): general and own images.
    let listed = data(&api, &SUPERADMIN, IMAGES, json!({"is_operation": false})).await;
    assert_eq!(
        names(&listed["images"]),
        [
            "cr.backend.ai/stable/python",
            "registry.example.com/lab/tool"
        ]
    );
    let python_item = listed["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|image| image["name"] == "stable/python")
        .unwrap()
        .clone();
    assert_eq!(
        python_item,
        json!({
            "name": "stable/python",
            "registry": "cr.backend.ai",
            "architecture": "x86_64",
            "tag": rows.tag("3.9"),
            "digest": format!("sha256:{:064x}", 7),
            "size_bytes": 123_456_789,
            "aliases": [format!("python-{}", rows.suffix)],
        })
    );

    // Users and domain admins see only their domain's registries, and their own custom images.
    for who in [&USER, &DOMAIN_ADMIN] {
        let mine = data(&api, who, IMAGES, json!({"is_operation": false})).await;
        let expected: &[&str] = if who.email == USER.email {
            &["cr.backend.ai/custom/mine", "cr.backend.ai/stable/python"]
        } else {
            &["cr.backend.ai/stable/python"]
        };
        assert_eq!(names(&mine["images"]), expected, "{}", who.email);
    }
    let operational = data(
        &api,
        &SUPERADMIN,
        IMAGES,
        json!({"load_filters": ["operational"]}),
    )
    .await;
    assert_eq!(
        names(&operational["images"]),
        ["cr.backend.ai/multiarch/operation"]
    );
    let with_null = data(&api, &SUPERADMIN, IMAGES, json!({"is_operation": null})).await;
    assert_eq!(names(&with_null["images"]).len(), 3);
    let customized = data(
        &api,
        &SUPERADMIN,
        IMAGES,
        json!({"load_filters": ["customized"]}),
    )
    .await;
    assert_eq!(names(&customized["images"]), ["cr.backend.ai/custom/mine"]);
    let installed = data(&api, &SUPERADMIN, IMAGES, json!({"is_installed": true})).await;
    assert_eq!(names(&installed["images"]), ["cr.backend.ai/stable/python"]);
    assert_eq!(
        error_message(
            &api,
            &SUPERADMIN,
            IMAGES,
            json!({"load_filters": ["everything"]})
        )
        .await,
        "Missing or invalid API parameters. ('everything' is not a valid PublicImageLoadFilter. All elements of `load_filters` should be one of (general, operational, customized))"
    );
    assert_eq!(
        error_message(&api, &MONITOR, IMAGES, json!({})).await,
        "Missing or invalid API parameters. (Unknown client role)"
    );

    // `backend.ai image list --customized`: the caller's own customized images only.
    let customized_query = "{ customized_images { id row_id name registry architecture tag size_bytes labels { key value } } }";
    let mine = data(&api, &USER, customized_query, json!({})).await;
    let items = mine["customized_images"].as_array().expect("a list");
    assert_eq!(items.len(), 1, "{mine}");
    assert_eq!(items[0]["name"], "custom/mine");
    assert_eq!(
        items[0]["labels"],
        json!([{"key": "ai.backend.customized-image.owner", "value": format!("user:{USER_UUID}")}])
    );
    let row_id = items[0]["row_id"].as_str().expect("a row id");
    assert_eq!(
        items[0]["id"],
        data_encoding::BASE64.encode(format!("ImageNode:{row_id}").as_bytes())
    );
    let none = data(&api, &SUPERADMIN, customized_query, json!({})).await;
    assert_eq!(none["customized_images"], json!([]));

    // One image, with everything the type shows.
    let detail = "query($id: String, $reference: String, $architecture: String) { image(id: $id, reference: $reference, architecture: $architecture) { id name humanized_name tag registry architecture is_local digest hash labels { key value } aliases size_bytes resource_limits { key min max } supported_accelerators installed installed_agents } }";
    let by_alias = data(
        &api,
        &USER,
        detail,
        json!({"reference": format!("python-{}", rows.suffix), "architecture": "x86_64"}),
    )
    .await;
    let mut labels = by_alias["image"]["labels"].as_array().unwrap().clone();
    labels.sort_by_key(|label| label["key"].as_str().unwrap().to_owned());
    assert_eq!(
        labels,
        [
            json!({"key": "ai.backend.base-distro", "value": "ubuntu20.04"}),
            json!({"key": "ai.backend.kernelspec", "value": "1"}),
        ]
    );
    let mut limits = by_alias["image"]["resource_limits"]
        .as_array()
        .unwrap()
        .clone();
    limits.sort_by_key(|limit| limit["key"].as_str().unwrap().to_owned());
    assert_eq!(
        limits,
        [
            json!({"key": "cpu", "min": "1", "max": null}),
            json!({"key": "mem", "min": "1g", "max": "Infinity"}),
        ]
    );
    assert_eq!(by_alias["image"]["id"], python.to_string());
    assert_eq!(by_alias["image"]["hash"], by_alias["image"]["digest"]);
    assert_eq!(
        by_alias["image"]["supported_accelerators"],
        json!(["cuda", "rocm"])
    );
    assert_eq!(by_alias["image"]["installed"], true);
    assert_eq!(by_alias["image"]["installed_agents"], json!(["i-a", "i-b"]));
    let by_name = data(
        &api,
        &SUPERADMIN,
        detail,
        json!({"reference": python_name, "architecture": "x86_64"}),
    )
    .await;
    assert_eq!(by_name["image"]["id"], python.to_string());
    let by_id = data(&api, &SUPERADMIN, detail, json!({"id": python.to_string()})).await;
    assert_eq!(by_id["image"]["name"], "stable/python");

    let tool = rows.canonical("registry.example.com", "lab/tool", "1");
    let tool_detail = data(
        &api,
        &SUPERADMIN,
        detail,
        json!({"reference": tool, "architecture": "x86_64"}),
    )
    .await;
    assert_eq!(tool_detail["image"]["supported_accelerators"], json!([""]));
    assert_eq!(tool_detail["image"]["installed"], false);
    assert_eq!(tool_detail["image"]["installed_agents"], json!([]));
    for (who, variables, message) in [
        (
            &USER,
            json!({"reference": tool, "architecture": "x86_64"}),
            "No such environment image.",
        ),
        (
            &SUPERADMIN,
            json!({"reference": "cr.backend.ai/nothing/here:1", "architecture": "x86_64"}),
            "No such environment image.",
        ),
        (
            &SUPERADMIN,
            json!({"id": Uuid::new_v4().to_string()}),
            "No such environment image.",
        ),
        (
            &SUPERADMIN,
            json!({"architecture": "x86_64"}),
            "Missing or invalid API parameters. (reference/architecture and id can't be omitted at the same time!)",
        ),
    ] {
        assert_eq!(error_message(&api, who, detail, variables).await, message);
    }
    redis.del(&[python_name.as_str()]).await.expect("DEL");
}
