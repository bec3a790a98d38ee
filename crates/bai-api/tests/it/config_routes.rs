//! `/config/*` on the real router against the halfstack: known slots and their metadata, vfolder
//! types, registries, and the superadmin's raw etcd access. Each test has its own database and
//! etcd namespace.

use crate::common::{Answer, Api};
use bai_api::testing::{DOMAIN_ADMIN, SUPERADMIN, USER, anonymous_request, signed_request};
use bai_db_models::fixtures::{self, FixtureFile};
use bai_etcd_store::Scope;
use http::Method;
use serde_json::{Value, json};

/// `POST path` with a JSON body, signed by the superadmin.
async fn post_as_admin(api: &Api, path: &str, body: Value) -> Answer {
    api.send(signed_request(Method::POST, path, Some(&body), &SUPERADMIN))
        .await
}

#[tokio::test]
async fn resource_slots_are_cpu_and_mem_plus_the_slots_in_etcd() {
    let api = Api::start("cfg_slots").await;
    let answer = api
        .send(anonymous_request(Method::GET, "/config/resource-slots"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.text, r#"{"cpu": "count", "mem": "bytes"}"#);
    assert_eq!(answer.header("x-ratelimit-limit"), Some("1000"));

    let store = api.cluster.namespace.store().await;
    for (slot, unit) in [("cuda.shares", "count"), ("cuda.device", "count")] {
        store
            .put(
                &format!("config/resource_slots/{slot}"),
                unit,
                Scope::Global,
            )
            .await
            .expect("etcd put");
    }
    // Anonymous: a broken signature is not even looked at; unknown query keys are ignored.
    let mut request = signed_request(Method::GET, "/config/resource-slots?x=1", None, &USER);
    request
        .headers_mut()
        .insert("authorization", "BackendAI garbage".parse().unwrap());
    let answer = api.send(request).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.text,
        r#"{"cpu": "count", "mem": "bytes", "cuda.device": "count", "cuda.shares": "count"}"#
    );
}

const CPU_METADATA: &str = r#""cpu": {"slot_name": "cpu", "description": "CPU", "human_readable_name": "CPU", "display_unit": "Core", "number_format": {"binary": false, "round_length": 0}, "display_icon": "cpu"}"#;
const MEM_METADATA: &str = r#""mem": {"slot_name": "ram", "description": "Memory", "human_readable_name": "RAM", "display_unit": "GiB", "number_format": {"binary": true, "round_length": 0}, "display_icon": "cpu"}"#;

#[tokio::test]
async fn slot_details_list_the_known_slots_metadata() {
    let api = Api::start("cfg_slot_details").await;
    let answer = api
        .send(anonymous_request(
            Method::GET,
            "/config/resource-slots/details",
        ))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.text, format!("{{{CPU_METADATA}, {MEM_METADATA}}}"));

    // A slot becomes known through etcd; its metadata is the built-in one unless an agent reports
    // its own in Redis (`computer.metadata`).
    let store = api.cluster.namespace.store().await;
    for slot in ["cuda.device", "tpu.device", "bai-test.device"] {
        store
            .put(
                &format!("config/resource_slots/{slot}"),
                "count",
                Scope::Global,
            )
            .await
            .expect("etcd put");
    }
    let reported_tpu = json!({"slot_name": "tpu.device", "description": "reported TPU",
        "human_readable_name": "TPU", "display_unit": "TPU",
        "number_format": {"binary": false, "round_length": 0}, "display_icon": "tpu"});
    let reported_test = json!({"slot_name": "bai-test.device", "description": "test accelerator"});
    let redis = api.ctx.redis().stat.raw();
    redis
        .hset(
            "computer.metadata",
            &[
                ("tpu.device", &reported_tpu.to_string()),
                ("bai-test.device", &reported_test.to_string()),
                ("bai-unknown.device", "{}"),
            ],
        )
        .await
        .expect("HSET");
    let answer = api
        .send(anonymous_request(
            Method::GET,
            "/config/resource-slots/details",
        ))
        .await;
    redis
        .hdel(
            "computer.metadata",
            &["tpu.device", "bai-test.device", "bai-unknown.device"],
        )
        .await
        .expect("HDEL");
    assert_eq!(answer.status, 200, "{}", answer.text);
    // Built-in slots in the reference's order, then slots only agents report; only known slots.
    let position = |slot: &str| {
        answer
            .text
            .find(&format!("\"{slot}\": {{"))
            .unwrap_or_else(|| panic!("{slot} missing: {}", answer.text))
    };
    let order = ["cpu", "mem", "cuda.device", "tpu.device", "bai-test.device"];
    for pair in order.windows(2) {
        assert!(position(pair[0]) < position(pair[1]), "{}", answer.text);
    }
    assert_eq!(answer.json.as_object().map(|o| o.len()), Some(order.len()));
    assert!(
        answer.text.starts_with(&format!(
            "{{{CPU_METADATA}, {MEM_METADATA}, \"cuda.device\": {{\"slot_name\": \"cuda.device\", \"human_readable_name\": \"GPU\""
        )),
        "{}",
        answer.text
    );
    assert_eq!(answer.json["tpu.device"], reported_tpu);
    assert_eq!(answer.json["bai-test.device"], reported_test);

    // With a resource group: only what its live, schedulable agents offer (cpu and mem always).
    let answer = api
        .send(anonymous_request(
            Method::GET,
            "/config/resource-slots/details?sgroup=default",
        ))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.text, format!("{{{CPU_METADATA}, {MEM_METADATA}}}"));
    let agents = FixtureFile::parse(
        "agents.json",
        r#"{"agents": [
            {"id": "i-gpu", "region": "local", "addr": "tcp://127.0.0.1:6011", "version": "24.03.11",
             "architecture": "x86_64", "available_slots": {"cpu": "8", "mem": "8g", "cuda.device": "2"},
             "occupied_slots": {}},
            {"id": "i-tpu-off", "region": "local", "addr": "tcp://127.0.0.1:6012", "version": "24.03.11",
             "architecture": "x86_64", "schedulable": false,
             "available_slots": {"cpu": "8", "mem": "8g", "tpu.device": "1"}, "occupied_slots": {}}
        ]}"#,
    )
    .expect("fixture");
    fixtures::populate(&api.cluster.database.connection, &agents)
        .await
        .expect("agents");
    let answer = api
        .send(anonymous_request(
            Method::GET,
            "/config/resource-slots/details?sgroup=default",
        ))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert!(
        answer.text.starts_with(&format!(
            "{{{CPU_METADATA}, {MEM_METADATA}, \"cuda.device\": {{"
        )),
        "{}",
        answer.text
    );
    assert_eq!(answer.json.as_object().map(|o| o.len()), Some(3));
    let answer = api
        .send(anonymous_request(
            Method::GET,
            "/config/resource-slots/details?sgroup=nowhere",
        ))
        .await;
    assert_eq!(answer.text, format!("{{{CPU_METADATA}, {MEM_METADATA}}}"));

    // Parameters are validated like the reference's trafaret.
    let answer = api
        .send(anonymous_request(
            Method::GET,
            "/config/resource-slots/details?sgroup=",
        ))
        .await;
    answer.assert_problem(400, "invalid-api-params", Some("Input validation error"));
    assert_eq!(
        answer.json["data"],
        json!({"sgroup": "blank value is not allowed"})
    );
    let answer = api
        .send(anonymous_request(
            Method::GET,
            "/config/resource-slots/details?bogus=1",
        ))
        .await;
    answer.assert_problem(400, "invalid-api-params", Some("Input validation error"));
    assert_eq!(
        answer.json["data"],
        json!({"bogus": "bogus is not allowed key"})
    );
}

#[tokio::test]
async fn vfolder_types_default_to_user() {
    let api = Api::start("cfg_vfolder_types").await;
    let answer = api
        .send(anonymous_request(Method::GET, "/config/vfolder-types"))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.text, r#"["user"]"#);

    let store = api.cluster.namespace.store().await;
    for kind in ["user", "group"] {
        store
            .put(&format!("volumes/_types/{kind}"), "", Scope::Global)
            .await
            .expect("etcd put");
    }
    let answer = api
        .send(anonymous_request(Method::GET, "/config/vfolder-types"))
        .await;
    assert_eq!(answer.text, r#"["group", "user"]"#);
}

#[tokio::test]
async fn docker_registries_are_for_superadmins() {
    let api = Api::start("cfg_registries").await;
    let answer = api
        .send(signed_request(
            Method::GET,
            "/config/docker-registries",
            None,
            &SUPERADMIN,
        ))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.text, "{}");

    let store = api.cluster.namespace.store().await;
    for (key, value) in [
        (
            "config/docker/registry/cr.backend.ai",
            "https://cr.backend.ai",
        ),
        ("config/docker/registry/cr.backend.ai/type", "harbor2"),
        ("config/docker/registry/cr.backend.ai/password", "secret"),
        (
            "config/docker/registry/localhost%3A5000",
            "http://localhost:5000",
        ),
        // A registry without a URL is left out.
        ("config/docker/registry/broken/type", "docker"),
    ] {
        store
            .put(key, value, Scope::Global)
            .await
            .expect("etcd put");
    }
    let answer = api
        .send(signed_request(
            Method::GET,
            "/config/docker-registries",
            None,
            &SUPERADMIN,
        ))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.text,
        r#"{"cr.backend.ai": "https://cr.backend.ai", "localhost:5000": "http://localhost:5000"}"#
    );

    // A domain admin (admin keypair, role admin) and a user are not superadmins.
    for user in [&DOMAIN_ADMIN, &USER] {
        api.send(signed_request(
            Method::GET,
            "/config/docker-registries",
            None,
            user,
        ))
        .await
        .assert_problem(401, "auth-failed", Some("Unauthorized access"));
    }
    let mut unsigned = signed_request(Method::GET, "/config/docker-registries", None, &USER);
    unsigned.headers_mut().remove("authorization");
    api.send(unsigned)
        .await
        .assert_problem(401, "auth-failed", Some("Unauthorized access"));
}

#[tokio::test]
async fn set_get_and_delete_etcd_keys() {
    let api = Api::start("cfg_raw").await;
    let answer = post_as_admin(&api, "/config/get", json!({"key": "test/missing"})).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.text, r#"{"result": null}"#);

    // Scalars are stored as Python's str() spells them.
    for (value, stored) in [
        (json!("hello"), "hello"),
        (json!(5), "5"),
        (json!(2.5), "2.5"),
        (json!(true), "True"),
        (json!(null), "None"),
        (json!([1, "a"]), "[1, 'a']"),
    ] {
        let answer = post_as_admin(
            &api,
            "/config/set",
            json!({"key": "test/scalar", "value": value}),
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        assert_eq!(answer.text, r#"{"result": "ok"}"#);
        let answer = post_as_admin(&api, "/config/get", json!({"key": "test/scalar"})).await;
        assert_eq!(answer.json, json!({"result": stored}), "{value}");
    }

    // An object is flattened with `/`, keys as given (not quoted); "" is the node itself.
    let answer = post_as_admin(
        &api,
        "/config/set",
        json!({"key": "test/tree", "value": {"": "root", "a": {"b": 1, "c": {"d": false}}, "e:f": "x"}}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let store = api.cluster.namespace.store().await;
    assert_eq!(
        store
            .get("test/tree/e:f", Scope::Global)
            .await
            .expect("get"),
        Some("x".to_owned())
    );
    store
        .put("test/tree-sibling/y", "z", Scope::Global)
        .await
        .expect("etcd put");
    // `prefix` as the reference reads it: a plain string prefix, so the sibling comes along.
    let answer = post_as_admin(
        &api,
        "/config/get",
        json!({"key": "test/tree", "prefix": true}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(
        answer.text,
        r#"{"result": {"": "root", "-sibling": {"y": "z"}, "a": {"b": "1", "c": {"d": "False"}}, "e:f": "x"}}"#
    );
    let answer = post_as_admin(
        &api,
        "/config/get",
        json!({"key": "test/tree/a/b", "prefix": "yes"}),
    )
    .await;
    assert_eq!(answer.text, r#"{"result": {"": "1"}}"#);

    // More than 16 keys in one update: refused, nothing written.
    let large: serde_json::Map<String, Value> =
        (0..17).map(|i| (format!("k{i}"), json!(i))).collect();
    let answer = post_as_admin(
        &api,
        "/config/set",
        json!({"key": "test/large", "value": large}),
    )
    .await;
    answer.assert_problem(
        400,
        "invalid-api-params",
        Some("Too large update! Split into smaller key-value pair sets."),
    );
    assert_eq!(
        store
            .get_prefix("test/large", Scope::Global)
            .await
            .expect("get")
            .len(),
        0
    );
    let sixteen: serde_json::Map<String, Value> =
        (0..16).map(|i| (format!("k{i}"), json!(i))).collect();
    let answer = post_as_admin(
        &api,
        "/config/set",
        json!({"key": "test/large", "value": sixteen}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);

    // Delete one key, then a prefix (siblings included, as in the reference).
    let answer = post_as_admin(&api, "/config/delete", json!({"key": "test/tree/e:f"})).await;
    assert_eq!(answer.text, r#"{"result": "ok"}"#);
    assert_eq!(
        store
            .get("test/tree/e:f", Scope::Global)
            .await
            .expect("get"),
        None
    );
    assert_eq!(
        store.get("test/tree", Scope::Global).await.expect("get"),
        Some("root".to_owned())
    );
    let answer = post_as_admin(
        &api,
        "/config/delete",
        json!({"key": "test/tree", "prefix": true}),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let answer = post_as_admin(
        &api,
        "/config/get",
        json!({"key": "test/tree", "prefix": true}),
    )
    .await;
    assert_eq!(answer.text, r#"{"result": {}}"#);
    assert_eq!(
        store
            .get("test/large/k0", Scope::Global)
            .await
            .expect("get"),
        Some("0".to_owned())
    );
}

#[tokio::test]
async fn raw_etcd_access_validates_its_parameters_and_is_for_superadmins() {
    let api = Api::start("cfg_raw_invalid").await;
    for (path, body, data) in [
        ("/config/get", json!({}), json!({"key": "is required"})),
        (
            "/config/get",
            json!({"key": ""}),
            json!({"key": "blank value is not allowed"}),
        ),
        (
            "/config/get",
            json!({"key": "x", "prefix": "maybe"}),
            json!({"prefix": "value can't be converted to Bool: \"maybe\""}),
        ),
        (
            "/config/get",
            json!({"key": "x", "bogus": 1}),
            json!({"bogus": "bogus is not allowed key"}),
        ),
        (
            "/config/set",
            json!({"key": "x"}),
            json!({"value": "is required"}),
        ),
        (
            "/config/set",
            json!({"key": 5, "value": 1}),
            json!({"key": "invalid type: integer `5`, expected a string"}),
        ),
        (
            "/config/delete",
            json!({"key": "x", "value": 1}),
            json!({"value": "value is not allowed key"}),
        ),
    ] {
        let answer = post_as_admin(&api, path, body.clone()).await;
        answer.assert_problem(400, "invalid-api-params", Some("Input validation error"));
        assert_eq!(answer.json["data"], data, "{path} {body}");
    }
    let mut request = signed_request(Method::POST, "/config/get", Some(&json!({})), &SUPERADMIN);
    *request.body_mut() = axum::body::Body::from("{not json");
    api.send(request)
        .await
        .assert_problem(400, "invalid-api-params", Some("Malformed body"));
    // With an empty body the query string is read.
    let answer = api
        .send(signed_request(
            Method::POST,
            "/config/get?key=test%2Fq&prefix=false",
            None,
            &SUPERADMIN,
        ))
        .await;
    assert_eq!(answer.text, r#"{"result": null}"#);

    for path in ["/config/get", "/config/set", "/config/delete"] {
        let body = json!({"key": "x", "value": "y"});
        for user in [&USER, &DOMAIN_ADMIN] {
            api.send(signed_request(Method::POST, path, Some(&body), user))
                .await
                .assert_problem(401, "auth-failed", Some("Unauthorized access"));
        }
    }
    assert_eq!(
        api.cluster
            .namespace
            .store()
            .await
            .get("x", Scope::Global)
            .await
            .expect("get"),
        None,
        "nothing was written"
    );
}
