//! The GraphQL agent queries on the real router, over agent rows inserted through the entities:
//! `agent`, `agents` and `agent_list` for superadmins (with the live statistics from Redis), and
//! the summaries everyone may read for the resource groups they may use.

use crate::common::{Api, ask, data};
use bai_api::testing::{DOMAIN_ADMIN, MONITOR, SUPERADMIN, USER};
use bai_db_models::entities::enums::AgentStatus;
use bai_db_models::entities::{ResourceSlot, agents};
use bai_db_models::queries::scaling_groups::{self as sgroups, NewScalingGroup};
use sea_orm::{ActiveModelTrait, Set};
use serde_json::{Value, json};
use uuid::Uuid;

/// Agent ids of one test, with their live statistics in the test's Redis.
struct Agents {
    prefix: String,
}

impl Agents {
    fn new() -> Agents {
        Agents {
            prefix: format!("i-{}", Uuid::new_v4().simple()),
        }
    }

    fn id(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    async fn insert(
        &self,
        api: &Api,
        name: &str,
        scaling_group: &str,
        status: AgentStatus,
        region: &str,
    ) {
        let mut available = ResourceSlot::new();
        available.insert("cpu", 8);
        available.insert("mem", 16i64 << 30);
        available.insert("cuda.device", 2);
        let mut occupied = ResourceSlot::new();
        occupied.insert("cpu", 2);
        occupied.insert("mem", 3i64 << 29);
        agents::ActiveModel {
            id: Set(self.id(name)),
            status: Set(status),
            region: Set(region.to_owned()),
            scaling_group: Set(scaling_group.to_owned()),
            schedulable: Set(true),
            available_slots: Set(available),
            occupied_slots: Set(occupied),
            addr: Set("tcp://10.0.0.1:6011".to_owned()),
            version: Set("24.03.11".to_owned()),
            architecture: Set("x86_64".to_owned()),
            compute_plugins: Set(json!({"cuda": {"version": "12"}})),
            auto_terminate_abusing_kernel: Set(true),
            ..Default::default()
        }
        .insert(&api.cluster.database.connection)
        .await
        .expect("inserting an agent");
    }
}

async fn create_group(api: &Api, name: &str) {
    sgroups::create(
        &api.cluster.database.connection,
        name,
        NewScalingGroup {
            description: None,
            is_active: true,
            is_public: true,
            wsproxy_addr: None,
            wsproxy_api_token: None,
            driver: "static".into(),
            driver_opts: json!({}),
            scheduler: "fifo".into(),
            scheduler_opts: json!({}),
            use_host_network: false,
        },
    )
    .await
    .expect("a scaling group");
}

fn ids(items: &Value) -> Vec<&str> {
    items
        .as_array()
        .expect("a list")
        .iter()
        .map(|item| item["id"].as_str().expect("an id"))
        .collect()
}

const LIST: &str = "query($limit: Int!, $offset: Int!, $status: String, $scaling_group: String, $filter: String, $order: String) { agent_list(limit: $limit, offset: $offset, status: $status, scaling_group: $scaling_group, filter: $filter, order: $order) { items { id status scaling_group region } total_count } }";

#[tokio::test]
async fn agent_list_agents_and_agent_for_superadmins() {
    let api = Api::start("gql_agents").await;
    let empty = data(
        &api,
        &SUPERADMIN,
        LIST,
        json!({"limit": 20, "offset": 0, "status": "ALIVE"}),
    )
    .await;
    assert_eq!(empty["agent_list"], json!({"items": [], "total_count": 0}));

    create_group(&api, "gpu").await;
    let agents = Agents::new();
    agents
        .insert(&api, "a", "default", AgentStatus::Alive, "local")
        .await;
    agents
        .insert(&api, "b", "gpu", AgentStatus::Alive, "eu")
        .await;
    agents
        .insert(&api, "c", "default", AgentStatus::Lost, "local")
        .await;
    let (a, b, c) = (agents.id("a"), agents.id("b"), agents.id("c"));

    let list = |variables: Value| {
        let api = &api;
        async move {
            let mut all = json!({"limit": 20, "offset": 0});
            for (key, value) in variables.as_object().expect("variables") {
                all[key] = value.clone();
            }
            data(api, &SUPERADMIN, LIST, all).await["agent_list"].clone()
        }
    };
    let alive = list(json!({"status": "ALIVE"})).await;
    assert_eq!(alive["total_count"], 2);
    // Default order: status, resource group, id.
    assert_eq!(ids(&alive["items"]), [a.as_str(), b.as_str()]);
    assert_eq!(
        alive["items"][0],
        json!({"id": a, "status": "ALIVE", "scaling_group": "default", "region": "local"})
    );
    let every = list(json!({})).await;
    assert_eq!(ids(&every["items"]), [&a, &b, &c]);
    let several = list(json!({"status": "ALIVE,LOST", "scaling_group": "default"})).await;
    assert_eq!(ids(&several["items"]), [&a, &c]);
    let filtered = list(json!({"filter": "region == \"eu\" | status == \"LOST\""})).await;
    assert_eq!(ids(&filtered["items"]), [&b, &c]);
    assert_eq!(filtered["total_count"], 2);
    let ordered = list(json!({"order": "-id"})).await;
    assert_eq!(ids(&ordered["items"]), [&c, &b, &a]);
    let page = list(json!({"order": "id", "limit": 1, "offset": 1})).await;
    assert_eq!(ids(&page["items"]), [&b]);
    assert_eq!(page["total_count"], 3);

    for (variables, message) in [
        (
            json!({"status": "ALIVE,GONE"}),
            "Missing or invalid API parameters. (unknown agent status \"GONE\" (one of ALIVE, LOST, RESTARTING, TERMINATED))",
        ),
        (
            json!({"filter": "addr ilike \"%10.%\" & nope == 1"}),
            "Unknown/unsupported field name: nope",
        ),
        (
            json!({"order": "addr"}),
            "Unknown/unsupported field name: addr",
        ),
    ] {
        let mut all = json!({"limit": 20, "offset": 0});
        for (key, value) in variables.as_object().unwrap() {
            all[key] = value.clone();
        }
        let answer = ask(&api, &SUPERADMIN, LIST, all).await;
        assert_eq!(
            answer.json["errors"][0]["message"], message,
            "{}",
            answer.text
        );
    }

    let legacy = data(
        &api,
        &SUPERADMIN,
        "{ agents(status: \"ALIVE\", scaling_group: \"gpu\") { id } all: agents { id } }",
        Value::Null,
    )
    .await;
    assert_eq!(ids(&legacy["agents"]), [&b]);
    assert_eq!(ids(&legacy["all"]), [&a, &b, &c]);
    let answer = ask(
        &api,
        &SUPERADMIN,
        "{ agents(status: \"ALIVE,LOST\") { id } }",
        Value::Null,
    )
    .await;
    assert!(
        answer.json["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("unknown agent status \"ALIVE,LOST\"")
    );

    let one = data(
        &api,
        &SUPERADMIN,
        "query($id: String!) { agent(agent_id: $id) { id status status_changed region scaling_group schedulable available_slots occupied_slots addr architecture first_contact lost_at version compute_plugins hardware_metadata auto_terminate_abusing_kernel local_config mem_slots cpu_slots gpu_slots tpu_slots used_mem_slots used_cpu_slots used_gpu_slots used_tpu_slots } }",
        json!({"id": c}),
    )
    .await;
    let agent = &one["agent"];
    assert!(agent["first_contact"].is_string(), "{agent}");
    let mut agent = agent.clone();
    agent.as_object_mut().unwrap().remove("first_contact");
    assert_eq!(
        agent,
        json!({
            "id": c, "status": "LOST", "status_changed": null, "region": "local",
            "scaling_group": "default", "schedulable": true,
            "available_slots": "{\"cpu\": \"8\", \"cuda.device\": \"2\", \"mem\": \"17179869184\"}",
            "occupied_slots": "{\"cpu\": \"2\", \"mem\": \"1610612736\"}",
            "addr": "tcp://10.0.0.1:6011", "architecture": "x86_64", "lost_at": null,
            "version": "24.03.11", "compute_plugins": "{\"cuda\": {\"version\": \"12\"}}",
            "hardware_metadata": null, "auto_terminate_abusing_kernel": true,
            "local_config": "{\"agent\": {\"auto_terminate_abusing_kernel\": true}}",
            "mem_slots": 16384, "cpu_slots": 8.0, "gpu_slots": 2.0, "tpu_slots": 0.0,
            "used_mem_slots": 1536, "used_cpu_slots": 2.0, "used_gpu_slots": 0.0,
            "used_tpu_slots": 0.0,
        })
    );
    let missing = data(
        &api,
        &SUPERADMIN,
        "{ agent(agent_id: \"i-nowhere\") { id } }",
        Value::Null,
    )
    .await;
    assert_eq!(missing["agent"], Value::Null);

    for who in [&DOMAIN_ADMIN, &USER, &MONITOR] {
        for query in [
            "{ agent(agent_id: \"i-nowhere\") { id } }",
            "{ agents { id } }",
            "{ agent_list(limit: 1, offset: 0) { total_count } }",
        ] {
            let answer = ask(&api, who, query, Value::Null).await;
            assert_eq!(
                answer.json["errors"][0]["message"],
                "Forbidden operation. (superadmin privilege required)",
                "{query}: {}",
                answer.text
            );
        }
    }
}

#[tokio::test]
async fn live_statistics_come_from_redis() {
    let api = Api::start("gql_agents_stats").await;
    let agents = Agents::new();
    agents
        .insert(&api, "a", "default", AgentStatus::Alive, "local")
        .await;
    agents
        .insert(&api, "b", "default", AgentStatus::Alive, "local")
        .await;
    let (a, b) = (agents.id("a"), agents.id("b"));
    let stats = json!({
        "node": {
            "cpu_util": {"current": "250", "capacity": "800", "pct": "31.25", "unit_hint": "percent"},
            "mem": {"current": "2147483648", "capacity": "17179869184", "pct": "12.5", "unit_hint": "bytes"},
        },
        "devices": {},
    });
    let redis = api.ctx.redis().stat.raw();
    let packed = rmp_serde::to_vec_named(&stats).expect("msgpack");
    redis
        .set(a.as_str(), packed)
        .await
        .expect("writing the statistics");
    redis
        .set(&format!("container_count.{a}"), "3")
        .await
        .expect("writing the container count");

    let answer = data(
        &api,
        &SUPERADMIN,
        "{ agent_list(limit: 10, offset: 0, status: \"ALIVE\") { items { id cpu_cur_pct mem_cur_bytes live_stat container_count } } }",
        Value::Null,
    )
    .await;
    let items = &answer["agent_list"]["items"];
    assert_eq!(items[0]["id"], a.as_str());
    assert_eq!(items[0]["cpu_cur_pct"], 31.25);
    assert_eq!(items[0]["mem_cur_bytes"], 2147483648.0);
    assert_eq!(items[0]["container_count"], 3);
    let live: Value = serde_json::from_str(items[0]["live_stat"].as_str().unwrap()).unwrap();
    assert_eq!(live, stats);
    assert_eq!(
        items[1],
        json!({"id": b, "cpu_cur_pct": 0.0, "mem_cur_bytes": 0.0, "live_stat": null, "container_count": 0})
    );

    redis
        .del(&[a.as_str(), &format!("container_count.{a}")])
        .await
        .expect("cleaning up");
}

#[tokio::test]
async fn summaries_show_the_agents_of_usable_resource_groups() {
    let api = Api::start("gql_agents_summary").await;
    create_group(&api, "private").await;
    let agents = Agents::new();
    agents
        .insert(&api, "a", "default", AgentStatus::Alive, "local")
        .await;
    agents
        .insert(&api, "b", "private", AgentStatus::Alive, "local")
        .await;
    agents
        .insert(&api, "c", "default", AgentStatus::Lost, "local")
        .await;
    let (a, b, c) = (agents.id("a"), agents.id("b"), agents.id("c"));
    let query = "query($status: String, $scaling_group: String) { agent_summary_list(limit: 10, offset: 0, status: $status, scaling_group: $scaling_group) { items { id status scaling_group schedulable available_slots occupied_slots architecture } total_count } }";

    // The default resource group is the default domain's; "private" is nobody's yet.
    for who in [&SUPERADMIN, &DOMAIN_ADMIN, &USER] {
        let listed = data(&api, who, query, json!({})).await;
        assert_eq!(ids(&listed["agent_summary_list"]["items"]), [&a, &c]);
        let alive = data(&api, who, query, json!({"status": "ALIVE"})).await;
        assert_eq!(
            alive["agent_summary_list"],
            json!({"items": [{
                "id": a, "status": "ALIVE", "scaling_group": "default", "schedulable": true,
                "available_slots": "{\"cpu\": \"8\", \"cuda.device\": \"2\", \"mem\": \"17179869184\"}",
                "occupied_slots": "{\"cpu\": \"2\", \"mem\": \"1610612736\"}",
                "architecture": "x86_64",
            }], "total_count": 1})
        );
        let private = data(&api, who, query, json!({"scaling_group": "private"})).await;
        assert_eq!(private["agent_summary_list"]["total_count"], 0);
        let one = data(
            &api,
            who,
            "query($a: String!, $b: String!) { a: agent_summary(agent_id: $a) { id } b: agent_summary(agent_id: $b) { id } }",
            json!({"a": a, "b": b}),
        )
        .await;
        assert_eq!(one, json!({"a": {"id": a}, "b": null}));
    }

    // Associated with the user's keypair, "private" becomes usable for that user only.
    sgroups::associate(
        &api.cluster.database.connection,
        &["private".into()],
        &sgroups::Associate::Keypair(USER.access_key.into()),
    )
    .await
    .expect("association");
    let listed = data(&api, &USER, query, json!({"scaling_group": "private"})).await;
    assert_eq!(ids(&listed["agent_summary_list"]["items"]), [&b]);
    let listed = data(
        &api,
        &DOMAIN_ADMIN,
        query,
        json!({"scaling_group": "private"}),
    )
    .await;
    assert_eq!(listed["agent_summary_list"]["total_count"], 0);

    let answer = ask(&api, &MONITOR, query, json!({})).await;
    assert_eq!(
        answer.json["errors"][0]["message"],
        "Missing or invalid API parameters. (Unknown client role)",
        "{}",
        answer.text
    );
    let answer = ask(&api, &USER, query, json!({"status": "ALIVE,LOST"})).await;
    assert!(
        answer.json["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("unknown agent status"),
        "{}",
        answer.text
    );
}

/// `hardware_metadata` asks an ALIVE agent (`gather_hwinfo` over the agent RPC, here the real
/// 24.3.11 dummy agent, which reports no devices); an agent that does not answer is an error
/// naming it; without agent RPC in the context it is null.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hardware_metadata_comes_from_the_agent_over_rpc() {
    use bai_agent_rpc::testing::{MANAGER_UP_KEY, RealAgent, free_port};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    let mut api = crate::common::Api::start("gql_agents_hwinfo").await;
    let agents = Agents::new();
    let cache = Arc::new(bai_agents::AgentRpcCache::new(
        api.ctx.db().clone(),
        bai_agent_rpc::RpcClient::new(None).with_handshake_timeout(Duration::from_secs(1)),
    ));
    let without_rpc = api.router.clone();
    api.ctx = api.cluster.context().await.with_agent_rpc(cache);
    api.router = bai_api::router(api.ctx.clone());

    api.ctx
        .etcd()
        .put(MANAGER_UP_KEY, "up", bai_etcd_store::Scope::Global)
        .await
        .expect("etcd put");
    let real = RealAgent::start(&api.cluster.namespace.name, &agents.id("real"));
    for (name, addr) in [
        ("real", real.addr()),
        ("silent", format!("tcp://127.0.0.1:{}", free_port())),
    ] {
        agents
            .insert(&api, name, "default", AgentStatus::Alive, "local")
            .await;
        agents::ActiveModel {
            id: Set(agents.id(name)),
            addr: Set(addr),
            ..Default::default()
        }
        .update(&api.cluster.database.connection)
        .await
        .expect("setting the agent's address");
    }
    let query = "query($id: String!) { agent(agent_id: $id) { hardware_metadata } }";

    // The agent takes a few seconds to answer RPC.
    let deadline = Instant::now() + Duration::from_secs(60);
    let hwinfo = loop {
        let answer = ask(&api, &SUPERADMIN, query, json!({"id": agents.id("real")})).await;
        if answer.json.get("errors").is_none() {
            break answer.json["data"]["agent"]["hardware_metadata"].clone();
        }
        assert!(
            Instant::now() < deadline,
            "{}; agent log:\n{}",
            answer.text,
            real.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(hwinfo, json!("{}"));

    let answer = ask(&api, &SUPERADMIN, query, json!({"id": agents.id("silent")})).await;
    let message = answer.json["errors"][0]["message"].as_str().unwrap_or("");
    assert!(
        message.contains("agent RPC failed")
            && message.contains(&agents.id("silent"))
            && message.contains("did not answer PING"),
        "{}",
        answer.text
    );

    // The router of a context without agent RPC answers null, as for agents not alive.
    api.router = without_rpc;
    let plain = data(&api, &SUPERADMIN, query, json!({"id": agents.id("real")})).await;
    assert_eq!(plain["agent"]["hardware_metadata"], Value::Null);
}
