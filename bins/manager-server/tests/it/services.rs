//! Model serving against our server with agent-sim agents: `backend.ai service create` (24.3.11
//! client; the `custom` runtime, whose model definition is read through a stand-in storage proxy)
//! makes an endpoint in a resource group with an app proxy address; `do_scale` creates its
//! routes. While the model folder exists its sessions cannot mount it (no storage proxy gives a
//! mount path here) and the routes fail as the reference's would, counted as retries and listed
//! by `GET /services/{id}/errors` until cleared; once the folder is gone, an endpoint with
//! `desired_session_count` 2 gets 2 RUNNING INFERENCE sessions and 2 routes, made HEALTHY by the
//! agents' `model_service_status_updated`; `service scale` to 1 and 0 ends sessions, and
//! `service rm` ends them all and the endpoint is DESTROYED. GraphQL (`endpoint_list`,
//! `endpoint`, `routing_list`) shows the same, with the WebUI's Serving page's fields.

use std::time::Duration;

use axum::http::Method;
use bai_api::testing::{ExampleUser, SUPERADMIN, USER, signed_request};
use bai_db_models::entities::enums::{EndpointLifecycle, RouteStatus, SessionStatus, SessionType};
use bai_db_models::entities::{endpoints, kernels, routings, sessions};
use bai_events::{Event, EventProducer};
use bai_redis::StreamDb;
use sea_orm::prelude::Uuid;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::{Value as Json, json};

use crate::agents::wait_for;
use crate::session_support::{
    local_runner_agent, serve, serve_storage_proxy, stack_with_test_image,
};
use crate::support::{CLIENT_23_09, CLIENT_24_03, PYTHON_IMAGE, Stack};

const PATIENCE: Duration = Duration::from_secs(90);
const SERVICE: &str = "svc-test";
const MODEL_FOLDER: &str = "aaaabbbb-cccc-dddd-eeee-ffff00002222";

async fn signed(
    port: u16,
    method: Method,
    path: &str,
    body: Option<&Json>,
    who: &ExampleUser,
) -> (u16, Json) {
    let (parts, _) = signed_request(method, path, body, who).into_parts();
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let mut builder = client
        .request(parts.method, format!("http://127.0.0.1:{port}{path}"))
        .headers(parts.headers);
    if let Some(body) = body {
        builder = builder.body(body.to_string());
    }
    let response = builder.send().await.expect("the request");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Json::Null);
    (status, body)
}

async fn gql(port: u16, who: &ExampleUser, query: &str, variables: Json) -> Json {
    let (status, body) = signed(
        port,
        Method::POST,
        "/admin/gql",
        Some(&json!({"query": query, "variables": variables})),
        who,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.get("errors").is_none(), "{body}");
    body["data"].clone()
}

/// The WebUI's `EndpointListPageQuery` (24.03.11), fragments included.
const ENDPOINT_LIST_PAGE: &str = "query EndpointListPageQuery($offset: Int!, $limit: Int!, \
    $projectID: UUID, $filter: String) { endpoint_list(offset: $offset, limit: $limit, \
    project: $projectID, filter: $filter) { total_count items { name endpoint_id model domain \
    status project resource_group resource_slots url open_to_public created_at \
    desired_session_count routings { routing_id endpoint session traffic_ratio status id } \
    runtime_variant { name human_readable_name } created_user_email ...EndpointOwnerInfoFragment \
    ...EndpointStatusTagFragment id } } } fragment EndpointOwnerInfoFragment on Endpoint { id \
    created_user_email session_owner_email } fragment EndpointStatusTagFragment on Endpoint { id \
    status }";

/// The WebUI's `EndpointDetailPageQuery` (24.03.11), fragments included.
const ENDPOINT_DETAIL_PAGE: &str = "query EndpointDetailPageQuery($endpointId: UUID!, \
    $tokenListOffset: Int!, $tokenListLimit: Int!) { endpoint(endpoint_id: $endpointId) { name \
    status endpoint_id image image_object { name humanized_name tag registry architecture \
    is_local digest resource_limits { key min max } labels { key value } size_bytes \
    supported_accelerators id } desired_session_count url open_to_public errors { session_id \
    ...InferenceSessionErrorModalFragment } retries runtime_variant { human_readable_name } model \
    model_mount_destiation model_mount_destination model_definition_path extra_mounts { row_id \
    name id } environ resource_group resource_slots resource_opts routings { routing_id session \
    traffic_ratio endpoint status id } created_user_email ...EndpointOwnerInfoFragment \
    ...EndpointStatusTagFragment id } endpoint_token_list(offset: $tokenListOffset, limit: \
    $tokenListLimit, endpoint_id: $endpointId) { total_count items { id token endpoint_id domain \
    project session_owner created_at valid_until } } } fragment EndpointOwnerInfoFragment on \
    Endpoint { id created_user_email session_owner_email } fragment EndpointStatusTagFragment on \
    Endpoint { id status } fragment InferenceSessionErrorModalFragment on InferenceSessionError { \
    session_id errors { repr } }";

async fn endpoint_row(stack: &Stack, id: Uuid) -> endpoints::Model {
    endpoints::Entity::find_by_id(id)
        .one(&stack.db.connection)
        .await
        .expect("endpoints")
        .expect("the endpoint")
}

async fn routes_of(stack: &Stack, id: Uuid) -> Vec<routings::Model> {
    routings::Entity::find()
        .filter(routings::Column::Endpoint.eq(id))
        .all(&stack.db.connection)
        .await
        .expect("routings")
}

async fn inference_sessions(stack: &Stack, status: SessionStatus) -> Vec<sessions::Model> {
    sessions::Entity::find()
        .filter(sessions::Column::SessionType.eq(SessionType::Inference))
        .filter(sessions::Column::Status.eq(status))
        .all(&stack.db.connection)
        .await
        .expect("sessions")
}

/// Asks for a scaling round now, as the timer's event does.
async fn do_scale(producer: &EventProducer) {
    producer
        .produce(&Event::DoScale, "manager")
        .await
        .expect("XADD do_scale");
}

/// The agent's health check of `session`'s model passed.
async fn report_healthy(producer: &EventProducer, session: &sessions::Model) {
    let event = Event::ModelServiceStatusUpdated {
        kernel_id: Uuid::new_v4(),
        session_id: session.id,
        model_name: "echo".to_owned(),
        status: "healthy".to_owned(),
    };
    producer.produce(&event, "i-services").await.expect("XADD");
}

/// Scaling rounds until `probe` holds.
async fn scaled_until<F, Fut, T>(producer: &EventProducer, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    wait_for(what, PATIENCE, || {
        let round = do_scale(producer);
        let probed = probe();
        async move {
            round.await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            probed.await
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_keep_their_inference_sessions() {
    let stack = stack_with_test_image("services").await;
    serve_storage_proxy(
        &stack,
        "./model-definition.yaml",
        "models:\n  - name: echo\n    model_path: /models\n",
    )
    .await;
    let db = &stack.db.connection;
    db.execute_unprepared(
        "UPDATE user_resource_policies SET max_session_count_per_model_session = 4; \
         INSERT INTO vfolders (id, host, quota_scope_id, name, usage_mode, permission, \
         ownership_type, \"user\", creator, cloneable, status) SELECT \
         'aaaabbbb-cccc-dddd-eeee-ffff00002222', 'local:volume1', 'user:' || uuid, 'mymodel', \
         'model', 'rw', 'user', uuid, email, false, 'ready' FROM users \
         WHERE email = 'admin@lablup.com'",
    )
    .await
    .expect("the policy and the model folder");
    let (_server, port) = serve(&stack).await;
    let (agent, _runner) = local_runner_agent(&stack, "i-services", None).await;
    let stream = StreamDb::connect(&stack.redis.config())
        .await
        .expect("Redis");
    let producer = EventProducer::new(stream.clone());

    // Two replicas of the model folder, 1 CPU and 1 GiB each, in the default resource group.
    let create_args = [
        "service",
        "create",
        PYTHON_IMAGE,
        "mymodel",
        "2",
        "-t",
        SERVICE,
        "-r",
        "cpu=1",
        "-r",
        "mem=1g",
        "--scaling-group",
        "default",
    ];
    let create = || CLIENT_24_03.run(&stack, port, "backend.ai", &create_args);

    // The default resource group takes no inference sessions; without an app proxy address (the
    // install guide gives it one) no endpoint can be created in it.
    let output = create();
    let printed = crate::support::printed(&output);
    assert!(!output.status.success(), "{printed}");
    assert!(
        printed.contains("does not accept the session type"),
        "{printed}"
    );
    db.execute_unprepared(
        "UPDATE scaling_groups SET scheduler_opts = jsonb_set(scheduler_opts, \
         '{allowed_session_types}', '[\"interactive\", \"batch\", \"inference\"]'), \
         wsproxy_addr = NULL WHERE name = 'default'",
    )
    .await
    .expect("inference allowed, no app proxy");
    let output = create();
    let printed = crate::support::printed(&output);
    assert!(!output.status.success(), "{printed}");
    assert!(
        printed.contains("No coordinator configured for this resource group"),
        "{printed}"
    );
    db.execute_unprepared(
        "UPDATE scaling_groups SET wsproxy_addr = 'http://127.0.0.1:1', \
         wsproxy_api_token = 'app-proxy-token' WHERE name = 'default'",
    )
    .await
    .expect("an app proxy address");

    // Created: the model definition was found through the storage proxy.
    let printed = CLIENT_24_03.cli(&stack, port, &create_args);
    assert!(printed.contains(SERVICE), "{printed}");
    let (status, listed) = signed(port, Method::GET, "/services", None, &SUPERADMIN).await;
    assert_eq!(status, 200, "{listed}");
    let id: Uuid = listed[0]["id"]
        .as_str()
        .expect("an id")
        .parse()
        .expect("uuid");
    assert_eq!(listed[0]["desired_session_count"], 2, "{listed}");
    let row = endpoint_row(&stack, id).await;
    assert_eq!(row.model, Some(MODEL_FOLDER.parse().expect("uuid")));
    assert_eq!(
        row.model_definition_path.as_deref(),
        Some("model-definition.yaml")
    );
    // Another service of the same name is refused; another user does not see this one.
    let output = create();
    assert!(
        crate::support::printed(&output).contains("Cannot create multiple services with same name")
    );
    let (status, body) = signed(port, Method::GET, &format!("/services/{id}"), None, &USER).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = signed(port, Method::GET, "/services/not-a-uuid", None, &SUPERADMIN).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["data"]["service_id"].is_string(), "{body}");

    // The model folder cannot be mounted: the routes fail, each failure a retry, until the
    // scaler gives up.
    let failed = scaled_until(&producer, "the endpoint gives up", || async {
        let row = endpoint_row(&stack, id).await;
        (row.retries > 5).then_some(row)
    })
    .await;
    let routes = routes_of(&stack, id).await;
    assert!(
        routes
            .iter()
            .all(|route| route.status == RouteStatus::FailedToStart)
    );
    let (status, errors) = signed(
        port,
        Method::GET,
        &format!("/services/{id}/errors"),
        None,
        &SUPERADMIN,
    )
    .await;
    assert_eq!(status, 200, "{errors}");
    assert_eq!(errors["retries"], failed.retries, "{errors}");
    assert_eq!(
        errors["errors"][0]["error"][0]["name"], "NotImplementedError",
        "{errors}"
    );
    let detail = gql(
        port,
        &SUPERADMIN,
        ENDPOINT_DETAIL_PAGE,
        json!({"endpointId": id, "tokenListOffset": 0, "tokenListLimit": 10}),
    )
    .await;
    assert_eq!(detail["endpoint"]["status"], "UNHEALTHY", "{detail}");
    assert!(
        detail["endpoint"]["errors"][0]["errors"][0]["repr"]
            .as_str()
            .is_some_and(|repr| repr.contains("mymodel")),
        "{detail}"
    );
    assert_eq!(detail["endpoint_token_list"]["total_count"], 0, "{detail}");

    // Without its model folder the endpoint mounts nothing, as the reference's would.
    db.execute_unprepared(&format!("DELETE FROM vfolders WHERE id = '{MODEL_FOLDER}'"))
        .await
        .expect("the model folder deleted");
    let (status, body) = signed(
        port,
        Method::POST,
        &format!("/services/{id}/errors/clear"),
        None,
        &SUPERADMIN,
    )
    .await;
    assert_eq!(status, 204, "{body}");
    assert_eq!(endpoint_row(&stack, id).await.retries, 0);
    let running = scaled_until(&producer, "2 RUNNING inference sessions", || async {
        let running = inference_sessions(&stack, SessionStatus::Running).await;
        (running.len() == 2).then_some(running)
    })
    .await;
    let routes = routes_of(&stack, id).await;
    assert_eq!(routes.len(), 2, "{routes:?}");
    for route in &routes {
        assert_eq!(route.status, RouteStatus::Provisioning);
        assert!(
            running
                .iter()
                .any(|session| Some(session.id) == route.session)
        );
    }
    for session in &running {
        let kernel = kernels::Entity::find()
            .filter(kernels::Column::SessionId.eq(session.id))
            .one(&stack.db.connection)
            .await
            .expect("kernels")
            .expect("the main kernel");
        let internal = kernel.internal_data.expect("internal data");
        assert_eq!(internal["runtime_variant"], "custom", "{internal}");
        assert_eq!(
            internal["model_definition_path"], "model-definition.yaml",
            "{internal}"
        );
        assert!(internal["dotfiles"].is_array(), "{internal}");
        assert!(
            session
                .name
                .as_deref()
                .is_some_and(|name| name.starts_with("svc-test-"))
        );
    }
    // The agents' health checks pass.
    for session in &running {
        report_healthy(&producer, session).await;
    }
    wait_for("both routes HEALTHY", PATIENCE, || async {
        let routes = routes_of(&stack, id).await;
        routes
            .iter()
            .all(|route| route.status == RouteStatus::Healthy)
            .then_some(())
    })
    .await;
    let list = gql(
        port,
        &SUPERADMIN,
        ENDPOINT_LIST_PAGE,
        json!({"offset": 0, "limit": 10, "filter": "lifecycle_stage == \"created\" | lifecycle_stage == \"destroying\""}),
    )
    .await;
    let item = &list["endpoint_list"]["items"][0];
    assert_eq!(list["endpoint_list"]["total_count"], 1, "{list}");
    assert_eq!(item["status"], "HEALTHY", "{list}");
    assert_eq!(item["routings"].as_array().map(Vec::len), Some(2), "{list}");
    assert_eq!(
        item["runtime_variant"]["human_readable_name"], "Custom (Default)",
        "{list}"
    );
    assert_eq!(item["created_user_email"], "admin@lablup.com", "{list}");
    let routing_list = gql(
        port,
        &SUPERADMIN,
        "query($id: UUID) { routing_list(limit: 10, offset: 0, endpoint_id: $id) { total_count \
         items { routing_id session status } } }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(
        routing_list["routing_list"]["total_count"], 2,
        "{routing_list}"
    );
    // A user sees none of it.
    let mine = gql(
        port,
        &USER,
        "{ endpoint_list(limit: 10, offset: 0) { total_count } }",
        json!({}),
    )
    .await;
    assert_eq!(mine["endpoint_list"]["total_count"], 0, "{mine}");
    let (_, listed) = signed(port, Method::GET, "/services", None, &SUPERADMIN).await;
    assert_eq!(listed[0]["active_route_count"], 2, "{listed}");

    // The official clients' `service info` and `service list` (GraphQL `endpoint`,
    // `endpoint_list`).
    let info = CLIENT_24_03.cli(&stack, port, &["service", "info", SERVICE]);
    assert!(
        info.contains("HEALTHY") && info.contains(&id.to_string()),
        "{info}"
    );
    for client in [&CLIENT_24_03, &CLIENT_23_09] {
        let listed = client.cli(&stack, port, &["service", "list"]);
        assert!(listed.contains(SERVICE), "{}: {listed}", client.venv);
    }

    // Tokens and route syncs are the app proxy's, which this manager does not talk to.
    for (path, body) in [
        (format!("/services/{id}/token"), json!({"duration": "1h"})),
        (format!("/services/{id}/sync"), json!({})),
    ] {
        let (status, answer) = signed(port, Method::POST, &path, Some(&body), &SUPERADMIN).await;
        assert_eq!(status, 503, "{path}: {answer}");
    }
    let (status, answer) = signed(
        port,
        Method::POST,
        &format!("/services/{id}/token"),
        Some(&json!({})),
        &SUPERADMIN,
    )
    .await;
    assert_eq!(status, 400, "{answer}");

    // Scaled to 1, then 0: the scaler ends the extra sessions.
    for (count, left) in [("1", 1usize), ("0", 0)] {
        CLIENT_24_03.cli(&stack, port, &["service", "scale", SERVICE, count]);
        scaled_until(&producer, &format!("{left} session(s) left"), || async {
            let running = inference_sessions(&stack, SessionStatus::Running).await;
            let routes = routes_of(&stack, id).await;
            (running.len() == left && routes.len() == left).then_some(())
        })
        .await;
    }
    let (status, body) = signed(
        port,
        Method::POST,
        &format!("/services/{id}/scale"),
        Some(&json!({"to": -1})),
        &SUPERADMIN,
    )
    .await;
    assert_eq!(status, 400, "{body}");

    // Back to 2, then removed: every session ends and the endpoint is DESTROYED.
    CLIENT_24_03.cli(&stack, port, &["service", "scale", SERVICE, "2"]);
    scaled_until(&producer, "2 RUNNING again", || async {
        let running = inference_sessions(&stack, SessionStatus::Running).await;
        (running.len() == 2).then_some(())
    })
    .await;
    for session in inference_sessions(&stack, SessionStatus::Running).await {
        report_healthy(&producer, &session).await;
    }
    wait_for("both routes HEALTHY again", PATIENCE, || async {
        let routes = routes_of(&stack, id).await;
        (routes.len() == 2
            && routes
                .iter()
                .all(|route| route.status == RouteStatus::Healthy))
        .then_some(())
    })
    .await;
    CLIENT_24_03.cli(&stack, port, &["service", "rm", SERVICE]);
    assert_eq!(
        endpoint_row(&stack, id).await.lifecycle_stage,
        EndpointLifecycle::Destroying
    );
    let destroyed = scaled_until(&producer, "the endpoint DESTROYED", || async {
        let row = endpoint_row(&stack, id).await;
        (row.lifecycle_stage == EndpointLifecycle::Destroyed).then_some(row)
    })
    .await;
    assert!(destroyed.destroyed_at.is_some());
    assert!(
        inference_sessions(&stack, SessionStatus::Running)
            .await
            .is_empty()
    );
    assert!(routes_of(&stack, id).await.is_empty());
    let (_, listed) = signed(port, Method::GET, "/services", None, &SUPERADMIN).await;
    assert_eq!(listed, json!([]));
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runtimes_and_tokens_without_an_app_proxy() {
    let stack = stack_with_test_image("services_runtimes").await;
    let (_server, port) = serve(&stack).await;
    let (status, body) = signed(port, Method::GET, "/services/_/runtimes", None, &USER).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"runtimes": [
            {"name": "vllm", "human_readable_name": "vLLM"},
            {"name": "nim", "human_readable_name": "NVIDIA NIM"},
            {"name": "cmd", "human_readable_name": "Predefined Image Command"},
            {"name": "custom", "human_readable_name": "Custom (Default)"},
        ]})
    );
    let missing = Uuid::new_v4();
    let (status, body) = signed(
        port,
        Method::POST,
        &format!("/services/{missing}/token"),
        Some(&json!({"duration": "1h"})),
        &USER,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = signed(
        port,
        Method::POST,
        "/services",
        Some(
            &json!({"name": "x", "desired_session_count": 1, "image": PYTHON_IMAGE,
                     "config": {"model": "m", "scaling_group": "default", "resources": {}}}),
        ),
        &USER,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["data"]["name"].is_string(), "{body}");
}
