//! `POST /session` (up to PENDING), `GET /session/{name}` and `DELETE /session/{name}` of a
//! PENDING session, through the real router of a test cluster on the halfstack: the rows written,
//! the events on the bus, reuse, dependencies, cluster sessions, and every refusal with the
//! reference's message.

#[path = "it/common.rs"]
#[allow(dead_code)]
mod common;

use std::sync::Arc;
use std::time::Duration;

use bai_api::testing::{DOMAIN_ADMIN, ExampleUser, SUPERADMIN, USER, signed_request};
use bai_db_models::entities::enums::ImageType;
use bai_db_models::entities::{
    images, kernels, keypair_resource_policies, session_dependencies, sessions,
};
use bai_events::Event;
use bai_redis::EntryId;
use common::{Answer, Api};
use http::Method;
use sea_orm::{
    ActiveEnum, ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, Set,
};
use serde_json::{Value, json};
use uuid::Uuid;

const GROUP: &str = "2de2b969-1d04-48a6-af16-0bc8adb3c831";
const USER_UUID: &str = "dfa9da54-4b28-432f-be29-c0d680c7a412";
const PYTHON: &str = "cr.backend.ai/stable/python:3.9-ubuntu20.04";

/// An image row; `labels` and `resources` as the scanner stores them.
async fn insert_image(
    api: &Api,
    registry: &str,
    name: &str,
    tag: &str,
    labels: Value,
    resources: Value,
) {
    images::ActiveModel {
        id: Set(Uuid::new_v4()),
        name: Set(format!("{registry}/{name}:{tag}")),
        image: Set(name.to_owned()),
        tag: Set(Some(tag.to_owned())),
        registry: Set(registry.to_owned()),
        architecture: Set("x86_64".to_owned()),
        config_digest: Set(format!("sha256:{:064x}", 7)),
        size_bytes: Set(1),
        is_local: Set(false),
        r#type: Set(ImageType::Compute),
        accelerators: Set(None),
        labels: Set(labels),
        resources: Set(resources),
        ..Default::default()
    }
    .insert(&api.cluster.database.connection)
    .await
    .expect("inserting an image");
}

/// A cluster whose worker calls agents (without CURVE): destroying a session past PENDING does.
async fn start(label: &str) -> Api {
    let mut api = Api::start(label).await;
    let rpc = bai_agents::AgentRpcCache::new(
        api.cluster.database.connection.clone(),
        bai_agent_rpc::RpcClient::new(None),
    );
    api.ctx = api.cluster.context().await.with_agent_rpc(Arc::new(rpc));
    api.router = bai_api::router(api.ctx.clone());
    insert_image(
        &api,
        "cr.backend.ai",
        "stable/python",
        "3.9-ubuntu20.04",
        json!({"ai.backend.service-ports": "jupyter:http:8080,vscode:http:[8180,8181]"}),
        json!({"cpu": {"min": "1", "max": null}, "mem": {"min": "256m", "max": null}}),
    )
    .await;
    api
}

/// The body the 23.09 client sends for `session create --enqueue-only`.
fn body(name: &str) -> Value {
    json!({"tag": null, "name": name,
        "config": {"mounts": [], "environ": {}, "resources": {"cpu": "1", "mem": "1g"},
                   "resource_opts": {}, "scalingGroup": null, "mount_map": {}, "preopen_ports": null},
        "dependencies": [], "callback_url": null, "architecture": "x86_64", "clusterSize": 1,
        "clusterMode": "single-node", "starts_at": null, "bootstrap_script": null,
        "owner_access_key": null, "domain": "default", "group": "default", "type": "interactive",
        "enqueueOnly": true, "maxWaitSeconds": 0, "reuseIfExists": true, "startupCommand": null,
        "image": PYTHON})
}

async fn post(api: &Api, who: &ExampleUser, body: &Value) -> Answer {
    api.send(signed_request(Method::POST, "/session", Some(body), who))
        .await
}

async fn session_rows(api: &Api, name: &str) -> Vec<sessions::Model> {
    sessions::Entity::find()
        .filter(sessions::Column::Name.eq(name))
        .all(&api.cluster.database.connection)
        .await
        .expect("reading sessions")
}

async fn kernel_rows(api: &Api, session_id: Uuid) -> Vec<kernels::Model> {
    kernels::Entity::find()
        .filter(kernels::Column::SessionId.eq(session_id))
        .order_by_asc(kernels::Column::ClusterRole)
        .order_by_asc(kernels::Column::ClusterIdx)
        .all(&api.cluster.database.connection)
        .await
        .expect("reading kernels")
}

/// Every event on the test's bus so far, with its source.
async fn events(api: &Api) -> Vec<(String, Event)> {
    let entries = api
        .ctx
        .redis()
        .stream
        .read_after(EntryId::ZERO, 1000, Duration::from_millis(10))
        .await
        .expect("reading the event stream");
    entries
        .iter()
        .map(|entry| {
            let name = entry.field("name").expect("name");
            let args = entry.field("args").expect("args");
            let source =
                String::from_utf8_lossy(entry.field("source").expect("source")).into_owned();
            (source, Event::decode(name, args).expect("a known event"))
        })
        .collect()
}

async fn set_max_containers(api: &Api, max: i32) {
    let policy = keypair_resource_policies::Entity::find_by_id("default")
        .one(&api.cluster.database.connection)
        .await
        .expect("reading the policy")
        .expect("the default policy");
    let mut policy: keypair_resource_policies::ActiveModel = policy.into();
    policy.max_containers_per_session = Set(max);
    policy
        .update(&api.cluster.database.connection)
        .await
        .expect("updating the policy");
    // As an announced write of ours would: the callers' policies are cached.
    api.ctx.caches().invalidation().invalidate();
}

#[tokio::test]
async fn a_created_session_is_pending_with_its_rows_and_event() {
    let api = start("session-create-rows").await;
    let answer = post(&api, &USER, &body("mysess01")).await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    let session_id = answer.json["sessionId"]
        .as_str()
        .expect("sessionId")
        .to_owned();
    assert_eq!(
        answer.text,
        format!(
            r#"{{"sessionId": "{session_id}", "sessionName": "mysess01", "status": "PENDING", "servicePorts": [], "created": true}}"#
        )
    );
    let session_id: Uuid = session_id.parse().unwrap();

    let rows = session_rows(&api, "mysess01").await;
    assert_eq!(rows.len(), 1);
    let session = &rows[0];
    assert_eq!(session.id, session_id);
    assert_eq!(
        session.status.clone(),
        bai_db_models::entities::enums::SessionStatus::Pending
    );
    let creation_id = session.creation_id.clone().expect("creation id");
    assert_eq!(creation_id.len(), 22, "token_urlsafe(16): {creation_id}");
    assert!(
        creation_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    let history = session.status_history.clone().expect("history");
    assert_eq!(
        history.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["PENDING"]
    );
    assert_eq!(session.scaling_group_name.as_deref(), Some("default"));
    assert_eq!(session.access_key.as_deref(), Some(USER.access_key));
    assert_eq!(session.user_uuid.to_string(), USER_UUID);
    assert_eq!(session.group_id.to_string(), GROUP);
    assert_eq!(session.domain_name, "default");
    assert_eq!(session.cluster_mode, "single-node");
    assert_eq!(session.images, Some(vec![PYTHON.to_owned()]));
    assert_eq!(session.occupying_slots.to_json(), json!({}));
    assert_eq!(
        session.requested_slots.to_json(),
        json!({"cpu": "1", "mem": "1073741824"})
    );
    assert_eq!(session.environ, Some(json!({})));
    assert_eq!(session.vfolder_mounts, Some(json!([])));
    assert!(session.created_at.is_some());

    let kernels = kernel_rows(&api, session_id).await;
    assert_eq!(kernels.len(), 1);
    let main = &kernels[0];
    assert_eq!(
        (
            main.cluster_role.as_str(),
            main.cluster_idx,
            main.local_rank,
            main.cluster_hostname.as_str()
        ),
        ("main", 1, 0, "main1")
    );
    assert_eq!(
        main.session_creation_id.as_deref(),
        Some(creation_id.as_str())
    );
    assert_eq!(main.image.as_deref(), Some(PYTHON));
    assert_eq!(main.registry.as_deref(), Some("cr.backend.ai"));
    assert_eq!(main.architecture.as_deref(), Some("x86_64"));
    assert_eq!(main.occupied_slots, main.requested_slots);
    assert_eq!(
        main.requested_slots.to_json(),
        json!({"cpu": "1", "mem": "1073741824"})
    );
    assert_eq!(main.resource_opts, Some(json!({"shmem": 67108864})));
    assert_eq!(main.environ, Some(vec![]));
    assert_eq!(main.preopen_ports, Some(vec![]));
    assert_eq!(main.occupied_shares, json!({}));
    assert_eq!(main.internal_data, Some(json!({"dotfiles": []})));
    assert_eq!(main.scaling_group.as_deref(), Some("default"));
    assert_eq!((main.repl_in_port, main.stdout_port), (0, 0));
    assert_eq!(main.agent, None);
    assert_eq!(main.bootstrap_script.as_deref(), Some(""));
    assert!(main.status_history.clone().unwrap()["PENDING"].is_string());

    let events = events(&api).await;
    let enqueued: Vec<_> = events
        .iter()
        .filter_map(|(source, event)| match event {
            Event::SessionEnqueued(creation) => Some((source.as_str(), creation.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(enqueued.len(), 1, "{events:?}");
    assert_eq!(enqueued[0].0, "manager");
    assert_eq!(enqueued[0].1.session_id, session_id);
    assert_eq!(enqueued[0].1.creation_id, creation_id);

    // The same name again: reused (201, created false, snake_case service_ports).
    let again = post(&api, &USER, &body("mysess01")).await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(
        again.text,
        format!(
            r#"{{"sessionId": "{session_id}", "sessionName": "mysess01", "status": "PENDING", "service_ports": null, "created": false}}"#
        )
    );
    let mut no_reuse = body("mysess01");
    no_reuse["reuseIfExists"] = json!(false);
    let refused = post(&api, &USER, &no_reuse).await;
    refused.assert_problem(400, "session-already-exists", None);
    assert_eq!(
        refused.json["data"],
        json!({"existingSessionId": session_id.to_string()})
    );
    assert_eq!(
        refused.json["title"],
        "The session already exists but you requested not to reuse existing one."
    );
    insert_image(
        &api,
        "cr.backend.ai",
        "stable/r",
        "4.0",
        json!({}),
        json!({}),
    )
    .await;
    let mut other_image = body("mysess01");
    other_image["image"] = json!("cr.backend.ai/stable/r:4.0");
    post(&api, &USER, &other_image)
        .await
        .assert_problem(400, "session-already-exists", None);
    // Another owner may use the name.
    assert_eq!(
        post(&api, &DOMAIN_ADMIN, &body("mysess01")).await.status,
        201
    );
}

#[tokio::test]
async fn get_info_by_name_and_id_and_cancel_a_pending_session() {
    let api = start("session-info-cancel").await;
    let mut request = body("infosess");
    request["config"]["environ"] = json!({"B": "2", "A": "1"});
    let answer = post(&api, &USER, &request).await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    let session_id = answer.json["sessionId"].as_str().unwrap().to_owned();

    let get = |path: String| {
        let api = &api;
        async move {
            api.send(signed_request(Method::GET, &path, None, &USER))
                .await
        }
    };
    for reference in ["infosess", session_id.as_str()] {
        let info = get(format!("/session/{reference}")).await;
        assert_eq!(info.status, 200, "{}", info.text);
        let json = &info.json;
        assert_eq!(json["domainName"], "default");
        assert_eq!(json["groupId"], GROUP);
        assert_eq!(json["userId"], USER_UUID);
        assert_eq!(json["lang"], PYTHON);
        assert_eq!(json["image"], PYTHON);
        assert_eq!(json["architecture"], "x86_64");
        assert_eq!(json["registry"], "cr.backend.ai");
        assert_eq!(json["tag"], Value::Null);
        assert_eq!(json["containerId"], "None");
        assert_eq!(
            json["occupiedSlots"],
            "{'cpu': Decimal('1'), 'mem': Decimal('1073741824')}"
        );
        assert_eq!(json["occupyingSlots"], "{}");
        assert_eq!(
            json["requestedSlots"],
            "{'cpu': Decimal('1'), 'mem': Decimal('1073741824')}"
        );
        assert_eq!(json["occupiedShares"], "{}");
        assert_eq!(json["environ"], "{'A': '1', 'B': '2'}");
        assert_eq!(json["resourceOpts"], "{'main1': {'shmem': 67108864}}");
        assert_eq!(json["status"], "PENDING");
        assert_eq!(json["statusInfo"], "None");
        assert_eq!(json["statusData"], Value::Null);
        assert!(json["age"].as_i64().unwrap() >= 0);
        assert!(json["creationTime"].as_str().unwrap().ends_with("+00:00"));
        assert_eq!(json["terminationTime"], Value::Null);
        assert_eq!(json["numQueriesExecuted"], 0);
        assert_eq!(json["lastStat"], Value::Null);
        // The session-lifetime checker always reports, as the reference's does.
        assert_eq!(
            json["idleChecks"],
            json!({"session_lifetime": {
                "remaining": null, "remaining_time_type": "expire_after", "extra": null
            }})
        );
    }
    // The reference matches whole ids only (no prefixes) and only the caller's sessions.
    get(format!("/session/{}", &session_id[..8]))
        .await
        .assert_problem(
            404,
            "object-not-found",
            Some(&format!(
                "Session (id={}) does not exist.",
                &session_id[..8]
            )),
        );
    api.send(signed_request(
        Method::GET,
        "/session/infosess",
        None,
        &DOMAIN_ADMIN,
    ))
    .await
    .assert_problem(404, "object-not-found", None);

    // Another user may not cancel it; an admin may act for the owner.
    api.send(signed_request(
        Method::DELETE,
        "/session/infosess?owner_access_key=AKIAIOSFODNN7EXAMPLE",
        None,
        &USER,
    ))
    .await
    .assert_problem(
        403,
        "generic-forbidden",
        Some("Only admins can perform operations on behalf of other users."),
    );
    let cancelled = api
        .send(signed_request(
            Method::DELETE,
            &format!("/session/infosess?owner_access_key={}", USER.access_key),
            None,
            &DOMAIN_ADMIN,
        ))
        .await;
    assert_eq!(cancelled.status, 200, "{}", cancelled.text);
    assert_eq!(cancelled.text, r#"{"stats": {"status": "terminated"}}"#);

    let session = session_rows(&api, "infosess").await.remove(0);
    assert_eq!(
        session.status,
        bai_db_models::entities::enums::SessionStatus::Cancelled
    );
    assert_eq!(session.status_info.as_deref(), Some("user-requested"));
    assert!(session.terminated_at.is_some());
    let history = session.status_history.clone().unwrap();
    assert!(
        history["PENDING"].is_string() && history["CANCELLED"].is_string(),
        "{history}"
    );
    let kernels = kernel_rows(&api, session.id).await;
    assert_eq!(
        kernels[0].status,
        bai_db_models::entities::enums::KernelStatus::Cancelled
    );
    assert_eq!(kernels[0].status_info.as_deref(), Some("user-requested"));
    assert!(kernels[0].terminated_at.is_some() && kernels[0].status_changed.is_some());
    assert!(kernels[0].status_history.clone().unwrap()["CANCELLED"].is_string());

    let events = events(&api).await;
    assert!(
        events.iter().any(|(_, event)| matches!(event,
        Event::KernelCancelled(k) if k.kernel_id == kernels[0].id && k.reason == "user-requested"))
    );
    assert!(events.iter().any(|(_, event)| matches!(event,
        Event::SessionCancelled(s) if s.session_id == session.id
            && Some(&s.creation_id) == session.creation_id.as_ref()
            && s.reason == "user-requested")));

    // Cancelled sessions are gone for GET and DELETE, and the name is free again.
    get("/session/infosess".to_owned())
        .await
        .assert_problem(404, "object-not-found", None);
    api.send(signed_request(
        Method::DELETE,
        "/session/infosess",
        None,
        &USER,
    ))
    .await
    .assert_problem(404, "object-not-found", None);
    let again = post(&api, &USER, &body("infosess")).await;
    assert_eq!(again.status, 201, "{}", again.text);
    assert_eq!(again.json["created"], true);
}

#[tokio::test]
async fn cluster_sessions_replicate_the_main_kernel() {
    let api = start("session-cluster").await;
    let mut request = body("cluster2");
    request["clusterSize"] = json!(2);
    post(&api, &USER, &request).await.assert_problem(
        412,
        "quota-exceeded",
        Some("You cannot create session with more than 1 containers."),
    );
    set_max_containers(&api, 4).await;
    request["config"]["environ"] = json!({"X": "y"});
    let answer = post(&api, &USER, &request).await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    let session = session_rows(&api, "cluster2").await.remove(0);
    assert_eq!(session.cluster_size, 2);
    assert_eq!(
        session.requested_slots.to_json(),
        json!({"cpu": "2", "mem": "2147483648"})
    );
    let kernels = kernel_rows(&api, session.id).await;
    assert_eq!(
        kernels
            .iter()
            .map(|k| (
                k.cluster_role.as_str(),
                k.cluster_idx,
                k.local_rank,
                k.cluster_hostname.as_str()
            ))
            .collect::<Vec<_>>(),
        [("main", 1, 0, "main1"), ("sub", 1, 1, "sub1")]
    );
    for kernel in &kernels {
        assert_eq!(kernel.cluster_size, 2);
        assert_eq!(
            kernel.requested_slots.to_json(),
            json!({"cpu": "1", "mem": "1073741824"})
        );
        assert_eq!(kernel.environ, Some(vec!["X=y".to_owned()]));
        assert_eq!(kernel.session_creation_id, session.creation_id);
    }
}

#[tokio::test]
async fn dependencies_are_resolved_by_name_or_id() {
    let api = start("session-deps").await;
    let first = post(&api, &USER, &body("first01")).await;
    let first_id: Uuid = first.json["sessionId"].as_str().unwrap().parse().unwrap();
    let second = post(&api, &USER, &body("second01")).await;
    let second_id: Uuid = second.json["sessionId"].as_str().unwrap().parse().unwrap();
    let mut request = body("third01");
    request["dependencies"] = json!(["first01", second_id.to_string()]);
    let third = post(&api, &USER, &request).await;
    assert_eq!(third.status, 201, "{}", third.text);
    let third_id: Uuid = third.json["sessionId"].as_str().unwrap().parse().unwrap();
    let mut rows = session_dependencies::Entity::find()
        .filter(session_dependencies::Column::SessionId.eq(third_id))
        .all(&api.cluster.database.connection)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.depends_on)
        .collect::<Vec<_>>();
    rows.sort();
    let mut expected = vec![first_id, second_id];
    expected.sort();
    assert_eq!(rows, expected);

    let mut unknown = body("fourth01");
    unknown["dependencies"] = json!(["nope-session"]);
    let refused = post(&api, &USER, &unknown).await;
    refused.assert_problem(
        400,
        "invalid-api-params",
        Some("Unknown session ID or name in the dependency list"),
    );
    assert_eq!(refused.json["data"], json!({"session_ref": "nope-session"}));
    // Nothing of the refused session was written.
    assert!(session_rows(&api, "fourth01").await.is_empty());
    // A recursive DELETE cancels the sessions that depend on it, then the session itself.
    let removed = api
        .send(signed_request(
            Method::DELETE,
            "/session/first01?recursive=true",
            None,
            &USER,
        ))
        .await;
    assert_eq!(removed.status, 200, "{}", removed.text);
    assert_eq!(
        removed.text,
        r#"[{"status": "terminated"}, {"status": "terminated"}]"#
    );
    for (name, status) in [
        ("first01", "CANCELLED"),
        ("third01", "CANCELLED"),
        ("second01", "PENDING"),
    ] {
        let row = session_rows(&api, name).await.remove(0);
        assert_eq!(row.status.to_value(), status, "{name}");
    }

    // Another user's sessions are not dependencies of mine.
    let mut foreign = body("fifth01");
    foreign["dependencies"] = json!(["first01"]);
    post(&api, &DOMAIN_ADMIN, &foreign)
        .await
        .assert_problem(400, "invalid-api-params", None);
}

#[tokio::test]
async fn waiting_for_the_start_times_out_or_follows_the_cancellation() {
    let api = start("session-wait").await;
    let mut request = body("waiter01");
    request["enqueueOnly"] = json!(false);
    request["maxWaitSeconds"] = json!(1);
    let answer = post(&api, &USER, &request).await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    assert_eq!(answer.json["status"], "TIMEOUT");
    assert_eq!(answer.json["created"], true);

    // Without a limit it waits until the session is cancelled, then reports the main kernel.
    let mut request = body("waiter02");
    request["enqueueOnly"] = json!(false);
    let db = api.cluster.database.connection.clone();
    let router = api.router.clone();
    let canceller = tokio::spawn(async move {
        use tower::ServiceExt;
        for _ in 0..100 {
            let found = sessions::Entity::find()
                .filter(sessions::Column::Name.eq("waiter02"))
                .one(&db)
                .await
                .unwrap();
            if found.is_some() {
                let response = router
                    .oneshot(signed_request(
                        Method::DELETE,
                        "/session/waiter02",
                        None,
                        &USER,
                    ))
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the session never appeared");
    });
    let answer = tokio::time::timeout(Duration::from_secs(20), post(&api, &USER, &request))
        .await
        .expect("the request ends after the cancellation");
    canceller.await.unwrap();
    assert_eq!(answer.status, 201, "{}", answer.text);
    assert_eq!(answer.json["status"], "CANCELLED", "{}", answer.text);

    // A started session answers RUNNING with the main kernel's service ports.
    let mut request = body("waiter03");
    request["enqueueOnly"] = json!(false);
    request["maxWaitSeconds"] = json!(30);
    let db = api.cluster.database.connection.clone();
    let stream = api.ctx.redis().stream.clone();
    let starter = tokio::spawn(async move {
        for _ in 0..100 {
            let found = sessions::Entity::find()
                .filter(sessions::Column::Name.eq("waiter03"))
                .one(&db)
                .await
                .unwrap();
            if let Some(session) = found {
                let main = kernels::Entity::find()
                    .filter(kernels::Column::SessionId.eq(session.id))
                    .one(&db)
                    .await
                    .unwrap()
                    .expect("the main kernel");
                let mut main: kernels::ActiveModel = main.into();
                main.status = Set(bai_db_models::entities::enums::KernelStatus::Running);
                main.service_ports = Set(Some(json!([{
                    "name": "jupyter", "protocol": "http", "container_ports": [8080],
                    "host_ports": [30001], "is_inference": false,
                }])));
                main.update(&db).await.unwrap();
                let started = Event::SessionStarted(bai_events::SessionCreation {
                    session_id: session.id,
                    creation_id: session.creation_id.unwrap(),
                    reason: String::new(),
                });
                bai_events::EventProducer::new(stream)
                    .produce(&started, "manager")
                    .await
                    .unwrap();
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the session never appeared");
    });
    let answer = post(&api, &USER, &request).await;
    starter.await.unwrap();
    assert_eq!(answer.status, 201, "{}", answer.text);
    assert_eq!(answer.json["status"], "RUNNING", "{}", answer.text);
    assert_eq!(
        answer.json["servicePorts"],
        json!([{"name": "jupyter", "protocol": "http", "ports": [8080]}])
    );
}

#[tokio::test]
async fn refusals_have_the_reference_messages() {
    let api = start("session-refusals").await;
    insert_image(&api, "other.io", "lab/python", "1.0", json!({}), json!({})).await;
    insert_image(
        &api,
        "cr.backend.ai",
        "stable/custom",
        "1.0",
        json!({"ai.backend.customized-image.owner": "user:00000000-0000-0000-0000-000000000000"}),
        json!({}),
    )
    .await;
    insert_image(
        &api,
        "cr.backend.ai",
        "stable/plain",
        "1.0",
        json!({}),
        json!({}),
    )
    .await;
    insert_image(
        &api,
        "cr.backend.ai",
        "stable/vllm",
        "1.0",
        json!({"ai.backend.role": "INFERENCE"}),
        json!({}),
    )
    .await;
    insert_image(
        &api,
        "cr.backend.ai",
        "stable/badports",
        "1.0",
        json!({"ai.backend.service-ports": "x:udp:8080"}),
        json!({}),
    )
    .await;

    let with = |change: &dyn Fn(&mut Value)| {
        let mut request = body("refused1");
        change(&mut request);
        request
    };
    let check = |request: Value,
                 who: &'static ExampleUser,
                 status: u16,
                 slug: &'static str,
                 msg: Option<&'static str>| {
        let api = &api;
        async move {
            let answer = post(api, who, &request).await;
            answer.assert_problem(status, slug, msg);
            answer
        }
    };

    let answer = check(
        with(&|r| r["bogus"] = json!(1)),
        &USER,
        400,
        "invalid-api-params",
        Some("Input validation error"),
    )
    .await;
    assert_eq!(
        answer.json["data"],
        json!({"bogus": "bogus is not allowed key"})
    );
    let answer = check(
        with(&|r| r["config"]["bogus"] = json!(1)),
        &USER,
        400,
        "invalid-api-params",
        Some("Input validation error"),
    )
    .await;
    assert_eq!(
        answer.json["data"],
        json!({"config.bogus": "bogus is not allowed key"})
    );
    let answer = check(
        with(&|r| r["name"] = json!("ab")),
        &USER,
        400,
        "invalid-api-params",
        Some("Input validation error"),
    )
    .await;
    assert!(
        answer.json["data"]["name"]
            .as_str()
            .unwrap()
            .contains("does not match pattern"),
        "{}",
        answer.text
    );
    check(
        with(&|r| r["name"] = json!("from-template")),
        &USER,
        400,
        "invalid-api-params",
        Some("Requested session ID from-template is reserved word"),
    )
    .await;
    check(
        with(&|r| r["config"]["agentList"] = json!(["i-1"])),
        &USER,
        403,
        "insufficient-privilege",
        Some("You are not allowed to manually assign agents for your session."),
    )
    .await;
    check(with(&|r| r["config"]["agent_list"] = json!(["i-1", "i-2"])), &SUPERADMIN, 400, "invalid-api-params", Some("For non-cluster sessions and single-node cluster sessions, you may specify only one manually assigned agent.")).await;
    check(with(&|r| { r["config"]["agent_list"] = json!(["i-1"]); r["clusterMode"] = json!("multi-node"); r["clusterSize"] = json!(2); }), &SUPERADMIN, 400, "invalid-api-params", Some("For multi-node cluster sessions, the number of manually assigned agents must be same to the cluster size. Note that you may specify duplicate agents in the list.")).await;
    check(
        with(&|r| r["config"]["agent_list"] = json!(["i-nowhere"])),
        &SUPERADMIN,
        400,
        "invalid-api-params",
        Some("No such agent: i-nowhere"),
    )
    .await;

    // Owners.
    check(
        with(&|r| r["owner_access_key"] = json!("AKIANOSUCHKEYEXAMPLE")),
        &DOMAIN_ADMIN,
        400,
        "invalid-api-params",
        Some("Unknown owner access key"),
    )
    .await;
    check(
        with(&|r| r["owner_access_key"] = json!(SUPERADMIN.access_key)),
        &USER,
        403,
        "generic-forbidden",
        Some("Only admins can perform operations on behalf of other users."),
    )
    .await;
    check(
        with(&|r| r["owner_access_key"] = json!(SUPERADMIN.access_key)),
        &DOMAIN_ADMIN,
        403,
        "generic-forbidden",
        Some("Domain-admins cannot perform operations on behalf of super-admins."),
    )
    .await;
    check(
        with(&|r| r["domain"] = json!("elsewhere")),
        &USER,
        400,
        "invalid-api-params",
        Some("You can only set the domain to your domain."),
    )
    .await;
    check(
        with(&|r| r["group"] = json!("nope")),
        &USER,
        400,
        "invalid-api-params",
        Some("Invalid group"),
    )
    .await;

    // Mounts, resources, images.
    check(
        with(&|r| r["config"]["mount_map"] = json!({"a": "x", "b": "x"})),
        &USER,
        400,
        "invalid-api-params",
        Some("Duplicate alias folder name exists."),
    )
    .await;
    check(
        with(&|r| r["config"]["mount_map"] = json!({"a": ".bashrc"})),
        &USER,
        400,
        "invalid-api-params",
        Some(".bashrc is reserved for internal path."),
    )
    .await;
    check(
        with(&|r| r["config"]["resources"] = json!({"cpu": "1", "gpu": "1"})),
        &USER,
        400,
        "invalid-api-params",
        Some("Invalid resource allocation: Unknown slot type: 'gpu'"),
    )
    .await;
    check(
        with(&|r| r["config"]["resources"] = json!({"mem": "lots"})),
        &USER,
        400,
        "invalid-api-params",
        Some("Invalid resource allocation: Cannot convert the slot 'mem' to decimal: 'lots'"),
    )
    .await;
    check(with(&|r| r["image"] = json!("cr.backend.ai/stable/nope:1")), &USER, 404, "object-not-found", Some("Unknown image references: ref:'cr.backend.ai/stable/nope:1', alias:'cr.backend.ai/stable/nope:1'")).await;
    let answer = check(
        with(&|r| r["image"] = json!("other.io/lab/python:1.0")),
        &USER,
        404,
        "object-not-found",
        Some("unknown alias or disallowed registry"),
    )
    .await;
    assert_eq!(answer.json["title"], "No such environment image.");
    let answer = check(
        with(&|r| r["image"] = json!("cr.backend.ai/stable/custom:1.0")),
        &USER,
        404,
        "object-not-found",
        None,
    )
    .await;
    assert!(answer.json.get("msg").is_none());

    // Session types and times.
    check(
        with(&|r| r["type"] = json!("batch")),
        &USER,
        400,
        "invalid-api-params",
        Some("Batch sessions must have a non-empty startup command."),
    )
    .await;
    check(
        with(&|r| r["starts_at"] = json!("1h")),
        &USER,
        400,
        "invalid-api-params",
        Some("Parameter starts_at should be used only for batch sessions"),
    )
    .await;
    check(
        with(&|r| {
            r["type"] = json!("batch");
            r["startupCommand"] = json!("run");
            r["starts_at"] = json!("someday");
        }),
        &USER,
        400,
        "invalid-api-params",
        Some("Invalid time expression"),
    )
    .await;

    // Resource groups.
    check(with(&|r| r["config"]["scalingGroup"] = json!("nope")), &USER, 404, "object-not-found", Some("The scaling group 'nope' does not exist or you do not have access to the scaling group 'nope'.")).await;
    check(
        with(&|r| r["type"] = json!("inference")),
        &USER,
        404,
        "object-not-found",
        Some("No scaling groups accept the session type 'inference'."),
    )
    .await;

    // Vfolders need the storage proxy.
    check(with(&|r| r["config"]["mounts"] = json!(["data"])), &USER, 400, "not-implemented", Some("Mounting virtual folders is not supported by this manager yet (no storage proxy): data")).await;

    // The image's labels and limits.
    check(with(&|r| r["image"] = json!("cr.backend.ai/stable/vllm:1.0")), &USER, 400, "invalid-api-params", Some("Cannot create interactive session with the given image. (img: stable/vllm, img role: INFERENCE)")).await;
    check(
        with(&|r| r["image"] = json!("cr.backend.ai/stable/badports:1.0")),
        &USER,
        400,
        "invalid-api-params",
        Some("Unsupported service port protocol: udp"),
    )
    .await;
    check(
        with(&|r| r["config"]["preopen_ports"] = json!([2200])),
        &USER,
        400,
        "invalid-api-params",
        Some("Port 2000, 2001, 2200 and 7681 are reserved for internal use"),
    )
    .await;
    check(
        with(&|r| r["config"]["preopen_ports"] = json!([8080])),
        &USER,
        400,
        "invalid-api-params",
        Some("Preopen port allocation cannot overlap with service port predefined by image"),
    )
    .await;
    check(with(&|r| r["config"]["resources"] = json!({"cpu": "1", "mem": "128m"})), &USER, 400, "invalid-api-params", Some("Your resource request is smaller than the minimum required by the image. (cpu=1 mem=320m)")).await;
    check(
        with(&|r| {
            r["image"] = json!("cr.backend.ai/stable/plain:1.0");
            r["config"]["resources"] = json!({"cpu": "1", "mem": "1g"});
            r["config"]["resource_opts"] = json!({"shmem": "1g"});
        }),
        &USER,
        400,
        "invalid-api-params",
        Some("Shared memory should be less than the main memory. (s:1 GiB, m:1 GiB)"),
    )
    .await;

    // None of them left a row.
    assert!(session_rows(&api, "refused1").await.is_empty());
}

#[tokio::test]
async fn destroying_sessions_past_pending_is_refused_or_left_to_the_agents() {
    use bai_db_models::entities::enums::SessionStatus;
    let api = start("session-destroy-statuses").await;
    let answer = post(&api, &USER, &body("busy0001")).await;
    let session_id: Uuid = answer.json["sessionId"].as_str().unwrap().parse().unwrap();
    let set_status = |status: SessionStatus| {
        let db = api.cluster.database.connection.clone();
        async move {
            let mut row: sessions::ActiveModel = sessions::Entity::find_by_id(session_id)
                .one(&db)
                .await
                .unwrap()
                .unwrap()
                .into();
            row.status = Set(status);
            row.update(&db).await.unwrap();
            // Its kernel follows (the statuses used here have the same name for kernels).
            db.execute_unprepared(&format!(
                "UPDATE kernels SET status = '{}' WHERE session_id = '{session_id}'",
                status.to_value()
            ))
            .await
            .unwrap();
        }
    };
    let delete = |query: &'static str| {
        let api = &api;
        async move {
            api.send(signed_request(
                Method::DELETE,
                &format!("/session/busy0001{query}"),
                None,
                &USER,
            ))
            .await
        }
    };
    set_status(SessionStatus::Pulling).await;
    delete("").await.assert_problem(
        403,
        "generic-forbidden",
        Some("Cannot destroy sessions in pulling status"),
    );
    set_status(SessionStatus::Preparing).await;
    delete("").await.assert_problem(
        403,
        "generic-forbidden",
        Some("Cannot destroy sessions in scheduled/preparing/terminating/error status"),
    );
    // Forced, by a user: the kernel (never placed) is terminated at once, the session waits in
    // TERMINATING for the kernel's `kernel_terminated`, which a consumer of the bus handles.
    let forced = delete("?forced=true").await;
    assert_eq!(forced.status, 200, "{}", forced.text);
    assert_eq!(forced.json, json!({"stats": {"status": "terminated"}}));
    let rows = session_rows(&api, "busy0001").await;
    assert_eq!(rows[0].status, SessionStatus::Terminating);
    assert_eq!(rows[0].status_info.as_deref(), Some("force-terminated"));
    // Terminating may only be forced; a TERMINATED session is not found any more (the
    // reference's lookup skips finished sessions).
    delete("").await.assert_problem(
        403,
        "generic-forbidden",
        Some("Cannot destroy sessions in scheduled/preparing/terminating/error status"),
    );
    set_status(SessionStatus::Terminated).await;
    delete("?forced=true").await.assert_problem(
        404,
        "object-not-found",
        Some("Session (id=busy0001) does not exist."),
    );
}
