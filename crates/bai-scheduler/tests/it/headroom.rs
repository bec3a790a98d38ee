//! Quota headroom and agent sums on a cluster written as fixtures: the install guide's users,
//! keypairs and presets, agents (alive and schedulable, alive and not schedulable, lost), kernels
//! of two users of one project, and project and domain limits.

use bai_db_models::entities::enums::AgentStatus;
use bai_db_models::fixtures::{self, FixtureFile};
use bai_db_models::queries::agent_listing::AgentScope;
use bai_db_models::queries::occupancy::Occupant;
use bai_db_models::queries::{resource_policies, users};
use bai_db_models::testing::{INSTALL_GUIDE_FIXTURES, TestDatabase};
use bai_etcd_store::testing::TestNamespace;
use bai_etcd_store::{EtcdStore, Scope};
use bai_scheduler::{
    KnownSlots, Requester, SchedulerError, Slots, agent_slot_totals, check_presets, occupancy,
};
use serde_json::{Value, json};

const USER_EMAIL: &str = "user@lablup.com";
const USER_ACCESS_KEY: &str = "AKIANABBDUSEREXAMPLE";
const PROJECT_ID: &str = "2de2b969-1d04-48a6-af16-0bc8adb3c831";
const VISIBILITY_KEY: &str = "config/api/resources/group_resource_visibility";

/// i-ag1 is alive and schedulable, i-ag2 alive but not schedulable, i-ag3 lost. The user has a
/// running and a terminating kernel (and a terminated one), user2 of the same project a running
/// one.
const CLUSTER: &str = r#"{
  "agents": [
    {"id": "i-ag1", "region": "local", "addr": "tcp://127.0.0.1:6001", "version": "24.03.11",
     "architecture": "x86_64",
     "available_slots": {"cpu": "8", "mem": "16g", "cuda.device": "2"},
     "occupied_slots": {"cpu": "3", "mem": "5368709120", "cuda.device": "1"}},
    {"id": "i-ag2", "region": "local", "addr": "tcp://127.0.0.1:6002", "version": "24.03.11",
     "architecture": "x86_64", "schedulable": false,
     "available_slots": {"cpu": "64", "mem": "274877906944", "cuda.device": "8"},
     "occupied_slots": {}},
    {"id": "i-ag3", "region": "local", "addr": "tcp://127.0.0.1:6003", "version": "24.03.11",
     "architecture": "x86_64", "status": "LOST",
     "available_slots": {"cpu": "64", "mem": "274877906944"}, "occupied_slots": {"cpu": "0.5"}}
  ],
  "sessions": [
    {"id": "5e55a0e1-0000-4000-8000-000000000001", "name": "mine", "status": "RUNNING",
     "scaling_group_name": "default", "domain_name": "default",
     "group_id": "2de2b969-1d04-48a6-af16-0bc8adb3c831",
     "user_uuid": "dfa9da54-4b28-432f-be29-c0d680c7a412", "access_key": "AKIANABBDUSEREXAMPLE",
     "occupying_slots": {"cpu": "2.5", "mem": "4294967296"}, "requested_slots": {}},
    {"id": "5e55a0e1-0000-4000-8000-000000000002", "name": "theirs", "status": "RUNNING",
     "scaling_group_name": "default", "domain_name": "default",
     "group_id": "2de2b969-1d04-48a6-af16-0bc8adb3c831",
     "user_uuid": "009fb1a4-487c-4f6e-9b1b-228b94b1d040", "access_key": "AKIANATWOUSEREXAMPLE",
     "occupying_slots": {"cpu": "1", "mem": "1073741824", "cuda.device": "1"}, "requested_slots": {}}
  ],
  "kernels": [
    {"id": "ee000000-0000-4000-8000-000000000001",
     "session_id": "5e55a0e1-0000-4000-8000-000000000001", "status": "RUNNING", "agent": "i-ag1",
     "scaling_group": "default", "domain_name": "default",
     "group_id": "2de2b969-1d04-48a6-af16-0bc8adb3c831",
     "user_uuid": "dfa9da54-4b28-432f-be29-c0d680c7a412", "access_key": "AKIANABBDUSEREXAMPLE",
     "occupied_slots": {"cpu": "2", "mem": "4g", "tpu.device": "1"},
     "repl_in_port": 2000, "repl_out_port": 2001, "stdin_port": 2002, "stdout_port": 2003},
    {"id": "ee000000-0000-4000-8000-000000000002",
     "session_id": "5e55a0e1-0000-4000-8000-000000000001", "status": "TERMINATING",
     "agent": "i-ag1", "cluster_role": "sub", "cluster_idx": 1, "local_rank": 1,
     "scaling_group": "default", "domain_name": "default",
     "group_id": "2de2b969-1d04-48a6-af16-0bc8adb3c831",
     "user_uuid": "dfa9da54-4b28-432f-be29-c0d680c7a412", "access_key": "AKIANABBDUSEREXAMPLE",
     "occupied_slots": {"cpu": "0.5"},
     "repl_in_port": 2000, "repl_out_port": 2001, "stdin_port": 2002, "stdout_port": 2003},
    {"id": "ee000000-0000-4000-8000-000000000003",
     "session_id": "5e55a0e1-0000-4000-8000-000000000001", "status": "TERMINATED",
     "agent": "i-ag1", "cluster_role": "sub", "cluster_idx": 2, "local_rank": 2,
     "scaling_group": "default", "domain_name": "default",
     "group_id": "2de2b969-1d04-48a6-af16-0bc8adb3c831",
     "user_uuid": "dfa9da54-4b28-432f-be29-c0d680c7a412", "access_key": "AKIANABBDUSEREXAMPLE",
     "occupied_slots": {"cpu": "4"},
     "repl_in_port": 2000, "repl_out_port": 2001, "stdin_port": 2002, "stdout_port": 2003},
    {"id": "ee000000-0000-4000-8000-000000000004",
     "session_id": "5e55a0e1-0000-4000-8000-000000000002", "status": "RUNNING", "agent": "i-ag1",
     "scaling_group": "default", "domain_name": "default",
     "group_id": "2de2b969-1d04-48a6-af16-0bc8adb3c831",
     "user_uuid": "009fb1a4-487c-4f6e-9b1b-228b94b1d040", "access_key": "AKIANATWOUSEREXAMPLE",
     "occupied_slots": {"cpu": "1", "mem": "1073741824", "cuda.device": "1"},
     "repl_in_port": 2000, "repl_out_port": 2001, "stdin_port": 2002, "stdout_port": 2003}
  ]
}"#;

/// The project may use 10 cpu and 32 GiB, the domain 6 cpu.
const LIMITS: &str = r#"{
  "__mode": "update",
  "groups": [
    {"id": "2de2b969-1d04-48a6-af16-0bc8adb3c831",
     "total_resource_slots": {"cpu": "10", "mem": "34359738368"}}
  ],
  "domains": [{"name": "default", "total_resource_slots": {"cpu": "6"}}]
}"#;

struct Cluster {
    database: TestDatabase,
    _namespace: TestNamespace,
    etcd: EtcdStore,
}

async fn cluster(label: &str) -> Cluster {
    // The install guide's fixtures come with the template; this test's own rows go on top.
    let database = TestDatabase::with_fixtures(label, &INSTALL_GUIDE_FIXTURES).await;
    for (name, text) in [("cluster.json", CLUSTER), ("limits.json", LIMITS)] {
        let file = FixtureFile::parse(name, text)
            .unwrap_or_else(|error| panic!("fixture {name}: {error}"));
        fixtures::populate(&database.connection, &file)
            .await
            .unwrap_or_else(|error| panic!("fixture {name}: {error}"));
    }
    let namespace = TestNamespace::new(label);
    let etcd = namespace.store().await;
    etcd.put("config/resource_slots/cuda.device", "count", Scope::Global)
        .await
        .expect("etcd put");
    Cluster {
        database,
        _namespace: namespace,
        etcd,
    }
}

/// The reference's `to_json` of `slots`.
fn json(slots: &Slots) -> Value {
    Value::Object(
        slots
            .iter()
            .map(|(slot, amount)| (slot.to_owned(), amount.to_string().into()))
            .collect(),
    )
}

fn names(slots: &Slots) -> Vec<&str> {
    slots.iter().map(|(slot, _)| slot).collect()
}

#[tokio::test]
async fn headroom_is_the_least_of_keypair_project_and_domain_within_the_live_agents() {
    let cluster = cluster("sched_headroom").await;
    let db = &cluster.database.connection;
    let user = users::by_email(db, USER_EMAIL)
        .await
        .expect("query")
        .expect("the example user");
    let policy = resource_policies::keypair_policy(db, "default")
        .await
        .expect("query")
        .expect("the example policy");
    let requester = Requester {
        access_key: USER_ACCESS_KEY,
        keypair_policy: &policy,
        user_uuid: user.uuid,
        domain_name: user.domain_name.as_deref(),
    };

    let headroom = check_presets(db, &cluster.etcd, requester, "default", None)
        .await
        .expect("headroom");
    assert_eq!(
        headroom.known.names().collect::<Vec<_>>(),
        ["cpu", "mem", "cuda.device"]
    );
    // The keypair: unlimited; its running kernel (the unknown tpu.device dropped, the zero the
    // subtraction added to the occupancy kept); what is left is capped by the domain's cpu and the
    // project's mem.
    assert_eq!(
        json(&headroom.keypair.limits),
        json!({"cpu": "Infinity", "mem": "Infinity", "cuda.device": "Infinity"})
    );
    assert_eq!(
        json(&headroom.keypair.occupied),
        json!({"cpu": "2", "mem": "4294967296", "cuda.device": "0"})
    );
    assert_eq!(
        json(&headroom.keypair.remaining),
        json!({"cpu": "3", "mem": "28991029248", "cuda.device": "Infinity"})
    );
    // Hidden unless etcd says otherwise.
    assert_eq!(headroom.project, None);
    // The resource group: the user's kernels still on agents (terminating included; unknown slots
    // kept, as the reference keeps them there), and what the alive, schedulable agent has left
    // (8-3 cpu, 16-5 GiB, 2-1 GPU) capped by the keypair's.
    assert_eq!(headroom.scaling_groups.len(), 1);
    let sgroup = &headroom.scaling_groups[0];
    assert_eq!(sgroup.name, "default");
    assert_eq!(
        json(&sgroup.using),
        json!({"cpu": "2.5", "mem": "4294967296", "cuda.device": "0", "tpu.device": "1"})
    );
    assert_eq!(
        names(&sgroup.using),
        ["cpu", "mem", "cuda.device", "tpu.device"]
    );
    let left = json!({"cpu": "3", "mem": "11811160064", "cuda.device": "1"});
    assert_eq!(json(&sgroup.remaining), left);
    assert_eq!(json(&headroom.scaling_group_remaining), left);
    let allocatable: Vec<(&str, bool)> = headroom
        .presets
        .iter()
        .map(|preset| (preset.name.as_str(), preset.allocatable))
        .collect();
    assert_eq!(
        allocatable,
        [
            ("cpu01-small", true),
            ("cpu02-medium", false),
            ("cpu03-large", false),
            ("cuda01-small", true),
            ("cuda02-medium", false),
            ("cuda03-large", false),
        ]
    );
    let cuda_small = &headroom.presets[3];
    assert_eq!(
        json(&cuda_small.resource_slots),
        json!({"cpu": "1", "cuda.device": "1", "mem": "4294967296"})
    );
    assert_eq!(headroom.presets[1].shared_memory, Some(1 << 30));

    // Shown when the flag is on: the project's limits, both users' running kernels, the rest.
    cluster
        .etcd
        .put(VISIBILITY_KEY, "yes", Scope::Global)
        .await
        .expect("etcd put");
    let headroom = check_presets(db, &cluster.etcd, requester, "default", Some("default"))
        .await
        .expect("headroom");
    let project = headroom.project.expect("visible");
    assert_eq!(
        json(&project.limits),
        json!({"cpu": "10", "mem": "34359738368", "cuda.device": "Infinity"})
    );
    assert_eq!(
        json(&project.occupied),
        json!({"cpu": "3", "mem": "5368709120", "cuda.device": "1"})
    );
    assert_eq!(
        json(&project.remaining),
        json!({"cpu": "7", "mem": "28991029248", "cuda.device": "Infinity"})
    );

    let unknown = check_presets(db, &cluster.etcd, requester, "nope", None).await;
    assert!(
        matches!(&unknown, Err(SchedulerError::UnknownProject(name)) if name == "nope"),
        "{unknown:?}"
    );
    let unknown = check_presets(db, &cluster.etcd, requester, "default", Some("gpu")).await;
    assert!(
        matches!(&unknown, Err(SchedulerError::UnknownScalingGroup(name)) if name == "gpu"),
        "{unknown:?}"
    );
}

#[tokio::test]
async fn occupancy_and_agent_totals_add_up_slot_by_slot() {
    let cluster = cluster("sched_totals").await;
    let db = &cluster.database.connection;
    let known = KnownSlots::load(&cluster.etcd).await.expect("known slots");
    let project: sea_orm::prelude::Uuid = PROJECT_ID.parse().expect("uuid");
    let occupied = occupancy(db, &known, Occupant::Project(project))
        .await
        .expect("occupancy");
    // Quota-occupying kernels only (not terminating or terminated); no unknown slots.
    assert_eq!(
        json(&occupied),
        json!({"cpu": "3", "mem": "5368709120", "cuda.device": "1"})
    );
    let nothing = occupancy(db, &known, Occupant::AccessKey("AKIAIOSFODNN7EXAMPLE"))
        .await
        .expect("occupancy");
    assert_eq!(json(&nothing), json!({}));

    let alive = AgentScope {
        statuses: Some(vec![AgentStatus::Alive]),
        ..AgentScope::default()
    };
    let totals = agent_slot_totals(db, &alive).await.expect("totals");
    assert_eq!(
        json(&totals.occupied_slots),
        json!({"cpu": "3", "mem": "5368709120", "cuda.device": "1"})
    );
    assert_eq!(
        json(&totals.available_slots),
        json!({"cpu": "72", "mem": "292057776128", "cuda.device": "10"})
    );
    let every = agent_slot_totals(db, &AgentScope::default())
        .await
        .expect("totals");
    assert_eq!(
        json(&every.occupied_slots),
        json!({"cpu": "3.5", "mem": "5368709120", "cuda.device": "1"})
    );
    let nowhere = AgentScope {
        scaling_group: Some("nowhere".to_owned()),
        ..AgentScope::default()
    };
    assert_eq!(
        agent_slot_totals(db, &nowhere).await.expect("totals"),
        bai_scheduler::SlotTotals::default()
    );
}
