//! Where sessions land, against the reference's scheduler: a table of cases, each a resource group
//! of its own with its scheduler (`fifo`, `lifo`, `drf`, `mof`), `scheduler_opts`
//! (`agent_selection_strategy`, `roundrobin`, `config.num_retries_to_skip`), simulated agents of
//! different sizes and architectures (agent-sim, registered by their heartbeats), and pending
//! sessions inserted by the enqueue query the API uses. A scheduling round (`Scheduler`) places
//! them; each case states the agent of every session and the order of the `session_scheduled`
//! events, then `Starter` creates the kernels on the agents and every placed session must reach
//! RUNNING with the agents' occupied slots equal to what was placed on them.
//!
//! The expectations are worked out by hand in each case's comment from the reference, not from
//! our planner: spec `scheduler-agent-rpc.md` §4.3–4.6 and 24.03.11's
//! `manager/scheduler/{dispatcher,fifo,drf,mof}.py`. Three rules carry most of them:
//! `key_by_remaining_slots` (the requested slots in the order `cuda, rocm, tpu, cpu, mem`:
//! `dispersed` takes the agent with the most left, `concentrated` the least, `legacy` the largest
//! `available_slots`), MOF's least `occupied_slots`, and round-robin's ring of agents sorted by id
//! that wants room to spare (`remaining > requested`: all `>=`, not all equal). Ties the reference
//! leaves to the database's row order are avoided: every case has one right answer. MOF compares
//! occupancies with a partial order, so its sessions ask as many GiB as cores, which keeps every two
//! occupancies comparable.
//!
//! Against the halfstack's PostgreSQL (a fresh database with the install guide's fixtures) and
//! etcd (a fresh namespace), and a Redis server of each test's own.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bai_agent_rpc::testing::free_ports;
use bai_agent_sim::RpcOptions;
use bai_db_models::entities::enums::{
    AgentStatus, KernelStatus, SessionResult, SessionStatus, SessionType,
};
use bai_db_models::entities::{ResourceSlot, agents, kernels, sessions};
use bai_db_models::queries::session_enqueue::{self, NewSession};
use bai_etcd_store::Scope;
use bai_events::Event;
use bai_redis::StatDb;
use bai_sessions::{DestroyRequest, Destroyer, Lifecycle, Scheduler, Starter};
use sea_orm::prelude::Uuid;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde_json::{Value, json};

use common::stack::{self, Stack};
use common::{GIB, GROUP, IMAGE};

/// The reference's default `manager.agent-selection-resource-priority`.
const RESOURCE_PRIORITY: [&str; 5] = ["cuda", "rocm", "tpu", "cpu", "mem"];

/// Who owns a session: an access key of the install guide and its user.
#[derive(Clone, Copy, Debug)]
struct Owner {
    access_key: &'static str,
    user: &'static str,
}

const ADMIN: Owner = Owner {
    access_key: common::ACCESS_KEY,
    user: common::USER,
};
const USER: Owner = Owner {
    access_key: "AKIANABBDUSEREXAMPLE",
    user: "dfa9da54-4b28-432f-be29-c0d680c7a412",
};

/// A simulated agent of a case: `cpu` cores and `mem_gib` GiB, nothing reserved.
#[derive(Clone, Copy, Debug)]
struct AgentSpec {
    id: &'static str,
    cpu: u64,
    mem_gib: u64,
    architecture: &'static str,
}

fn agent(id: &'static str, cpu: u64, mem_gib: u64) -> AgentSpec {
    AgentSpec {
        id,
        cpu,
        mem_gib,
        architecture: "x86_64",
    }
}

impl AgentSpec {
    fn arch(self, architecture: &'static str) -> AgentSpec {
        AgentSpec {
            architecture,
            ..self
        }
    }
}

/// A session to enqueue: `kernels` kernels of `cpu` cores and `mem_gib` GiB each.
#[derive(Clone, Copy, Debug)]
struct Ask {
    name: &'static str,
    owner: Owner,
    kernels: i32,
    cpu: u64,
    mem_gib: u64,
    architecture: &'static str,
    multi_node: bool,
    /// A superadmin's `agent_list`: every kernel on this agent.
    designated: Option<&'static str>,
}

fn ask(name: &'static str, cpu: u64, mem_gib: u64) -> Ask {
    Ask {
        name,
        owner: ADMIN,
        kernels: 1,
        cpu,
        mem_gib,
        architecture: "x86_64",
        multi_node: false,
        designated: None,
    }
}

impl Ask {
    fn by(self, owner: Owner) -> Ask {
        Ask { owner, ..self }
    }

    fn multi_node(self, kernels: i32) -> Ask {
        Ask {
            kernels,
            multi_node: true,
            ..self
        }
    }

    fn arch(self, architecture: &'static str) -> Ask {
        Ask {
            architecture,
            ..self
        }
    }

    fn on(self, agent: &'static str) -> Ask {
        Ask {
            designated: Some(agent),
            ..self
        }
    }

    fn kernel_slots(&self) -> ResourceSlot {
        slots(self.cpu, self.mem_gib)
    }
}

fn slots(cpu: u64, mem_gib: u64) -> ResourceSlot {
    ResourceSlot::from_json(&json!({"cpu": cpu.to_string(), "mem": (mem_gib * GIB).to_string()}))
        .expect("slots")
}

/// What a case expects of one session after the round.
#[derive(Clone, Debug)]
enum Expect {
    /// SCHEDULED with `sessions.agent_ids` = these (single-node: the one agent; multi-node: each
    /// kernel's, in kernel order).
    On(&'static [&'static str]),
    /// Still PENDING with `status_info = "no-available-instances"` and this `msg` on the session
    /// (single-node).
    NoInstance(String),
    /// Multi-node: still PENDING, the session's `status_info` untouched, and the kernel at this
    /// index holding `no-available-instances` with this `msg`; no kernel holds an agent.
    KernelNoInstance(usize, String),
}

/// A resource group with its scheduler, options, agents and sessions (oldest first).
struct Case {
    group: &'static str,
    scheduler: &'static str,
    opts: Value,
    agents: Vec<AgentSpec>,
    sessions: Vec<Ask>,
    expect: Vec<(&'static str, Expect)>,
    /// The `session_scheduled` events of this group, in order.
    order: Vec<&'static str>,
}

fn opts(strategy: &str) -> Value {
    json!({
        "allowed_session_types": ["interactive", "batch"],
        "pending_timeout": 0,
        "config": {},
        "agent_selection_strategy": strategy,
        "roundrobin": false,
    })
}

/// The session every selector case enqueues, on three agents of 4, 8 and 2 cores.
fn selector_sessions() -> Vec<Ask> {
    vec![
        ask("s1", 2, 2),
        ask("s2", 2, 2),
        ask("s3", 2, 2),
        ask("s4", 1, 1),
        ask("s5", 6, 6),
    ]
}

fn selector_agents(prefix: &'static str) -> Vec<AgentSpec> {
    let [a, b, c] = match prefix {
        "disp" => ["disp-a", "disp-b", "disp-c"],
        "conc" => ["conc-a", "conc-b", "conc-c"],
        "legacy" => ["legacy-a", "legacy-b", "legacy-c"],
        "lifo" => ["lifo-a", "lifo-b", "lifo-c"],
        "lifoconc" => ["lifoconc-a", "lifoconc-b", "lifoconc-c"],
        "drfconc" => ["drfconc-a", "drfconc-b", "drfconc-c"],
        other => panic!("no agents for {other}"),
    };
    vec![agent(a, 4, 8), agent(b, 8, 16), agent(c, 2, 4)]
}

/// The case of resource group `group` with `scheduler` and agent selection `strategy`, its
/// `selector_agents` and the `selector_sessions`, s1 to s5 landing as `lands` says.
fn selector_case(
    (group, scheduler, strategy): (&'static str, &'static str, &str),
    lands: [Expect; 5],
    order: Vec<&'static str>,
) -> Case {
    Case {
        group,
        scheduler,
        opts: opts(strategy),
        agents: selector_agents(group),
        sessions: selector_sessions(),
        expect: ["s1", "s2", "s3", "s4", "s5"]
            .into_iter()
            .zip(lands)
            .collect(),
        order,
    }
}

fn no_room(group: &str) -> impl Fn(&Uuid) -> String + '_ {
    move |id| {
        format!(
            "Could not find a contiguous resource region in any agent big enough to host the \
             session (id: {id}, resource group: {group})"
        )
    }
}

/// The cases a single round decides (the multi-round ones are tests of their own below).
fn single_round_cases() -> Vec<Case> {
    vec![
        // fifo, dispersed (most left first; cores compared before memory):
        // s1 -> b (8 left), s2 -> b (6 left), s3: a and b both have 4 cores left, b has more
        // memory (12 GiB against 8) -> b; s4: a 4, b 2, c 2 -> a; s5 (6 cores): a 3, b 2, c 2.
        selector_case(
            ("disp", "fifo", "dispersed"),
            [
                Expect::On(&["disp-b"]),
                Expect::On(&["disp-b"]),
                Expect::On(&["disp-b"]),
                Expect::On(&["disp-a"]),
                Expect::NoInstance(String::new()),
            ],
            vec!["s1", "s2", "s3", "s4"],
        ),
        // fifo, concentrated (least left first): s1 -> c (2 left, 0 after), s2: a 4, b 8 -> a,
        // s3: a 2, b 8 -> a, s4: only b fits -> b (7 left), s5 (6 cores) -> b.
        selector_case(
            ("conc", "fifo", "concentrated"),
            [
                Expect::On(&["conc-c"]),
                Expect::On(&["conc-a"]),
                Expect::On(&["conc-a"]),
                Expect::On(&["conc-b"]),
                Expect::On(&["conc-b"]),
            ],
            vec!["s1", "s2", "s3", "s4", "s5"],
        ),
        // fifo, legacy (the largest `available_slots` that fits, however full): b takes s1 to
        // s4 (2 + 2 + 2 + 1 of its 8 cores); s5 (6 cores) fits nowhere (a 4, b 1, c 2).
        selector_case(
            ("legacy", "fifo", "legacy"),
            [
                Expect::On(&["legacy-b"]),
                Expect::On(&["legacy-b"]),
                Expect::On(&["legacy-b"]),
                Expect::On(&["legacy-b"]),
                Expect::NoInstance(String::new()),
            ],
            vec!["s1", "s2", "s3", "s4"],
        ),
        // lifo, dispersed: newest first. s5 (6) -> b (2 left), s4: a 4 -> a (3 left), s3: a 3
        // -> a (1 left), s2: b and c have 2 cores, b more memory (10 GiB against 4) -> b,
        // s1: only c fits -> c.
        selector_case(
            ("lifo", "lifo", "dispersed"),
            [
                Expect::On(&["lifo-c"]),
                Expect::On(&["lifo-b"]),
                Expect::On(&["lifo-a"]),
                Expect::On(&["lifo-a"]),
                Expect::On(&["lifo-b"]),
            ],
            vec!["s5", "s4", "s3", "s2", "s1"],
        ),
        // lifo, concentrated: s5 (6) fits b only (2 left); s4: b and c have 2 cores, c less
        // memory (4 GiB against 10) -> c; s3: a 4, b 2 (c has 1) -> b; s2 and s1 -> a.
        selector_case(
            ("lifoconc", "lifo", "concentrated"),
            [
                Expect::On(&["lifoconc-a"]),
                Expect::On(&["lifoconc-a"]),
                Expect::On(&["lifoconc-b"]),
                Expect::On(&["lifoconc-c"]),
                Expect::On(&["lifoconc-b"]),
            ],
            vec!["s5", "s4", "s3", "s2", "s1"],
        ),
        // drf, concentrated, one access key: its oldest session first each time, so the order
        // of fifo; the agent choice follows the strategy as fifo's does (`conc` above).
        selector_case(
            ("drfconc", "drf", "concentrated"),
            [
                Expect::On(&["drfconc-c"]),
                Expect::On(&["drfconc-a"]),
                Expect::On(&["drfconc-a"]),
                Expect::On(&["drfconc-b"]),
                Expect::On(&["drfconc-b"]),
            ],
            vec!["s1", "s2", "s3", "s4", "s5"],
        ),
        // mof: oldest first, to the least occupied agent that fits (the strategy is ignored:
        // `concentrated` here would have said otherwise). d is designated to a (1 core); s1 (6)
        // fits b only; s2: a {1}, b {6}, c {} -> c; s3: a {1} < b {6} (c is full) -> a;
        // s4: a {3} < b {6} -> a; s5: a is full -> b.
        Case {
            group: "mof",
            scheduler: "mof",
            opts: opts("concentrated"),
            agents: vec![
                agent("mof-a", 4, 8),
                agent("mof-b", 8, 16),
                agent("mof-c", 2, 4),
            ],
            sessions: vec![
                ask("d", 1, 1).on("mof-a"),
                ask("s1", 6, 6),
                ask("s2", 2, 2),
                ask("s3", 2, 2),
                ask("s4", 1, 1),
                ask("s5", 2, 2),
            ],
            expect: vec![
                ("d", Expect::On(&["mof-a"])),
                ("s1", Expect::On(&["mof-b"])),
                ("s2", Expect::On(&["mof-c"])),
                ("s3", Expect::On(&["mof-a"])),
                ("s4", Expect::On(&["mof-a"])),
                ("s5", Expect::On(&["mof-b"])),
            ],
            order: vec!["d", "s1", "s2", "s3", "s4", "s5"],
        },
        // Architecture: candidates are the agents of the kernel's architecture. x1 -> x (the
        // larger aarch64 agent is not a candidate), r1 -> r, x2: x is full, and r does not count
        // -> no room; p1 asks for an architecture no agent has.
        Case {
            group: "arch",
            scheduler: "fifo",
            opts: opts("dispersed"),
            agents: vec![
                agent("arch-r", 8, 16).arch("aarch64"),
                agent("arch-x", 2, 4),
            ],
            sessions: vec![
                ask("x1", 2, 2),
                ask("r1", 1, 1).arch("aarch64"),
                ask("x2", 1, 1),
                ask("p1", 1, 1).arch("ppc64le"),
            ],
            expect: vec![
                ("x1", Expect::On(&["arch-x"])),
                ("r1", Expect::On(&["arch-r"])),
                ("x2", Expect::NoInstance(String::new())),
                (
                    "p1",
                    Expect::NoInstance(format!(
                        "No agents found to be compatible with the image architecture \
                         (image[0]: {IMAGE}, arch: ppc64le)"
                    )),
                ),
            ],
            order: vec!["x1", "r1"],
        },
        // Container cap (etcd config/agent/max-container-count = 2; cap-p reports 2 containers,
        // cap-q none). A single-node session only needs one agent below the cap to exist and then
        // chooses among all compatible agents (`_schedule_single_node_session` picks from
        // `compatible_candidate_agents`): s1 -> p, the larger. A multi-node session chooses among
        // the agents below the cap only: both kernels of m1 -> q.
        Case {
            group: "cap",
            scheduler: "fifo",
            opts: opts("dispersed"),
            agents: vec![agent("cap-p", 8, 16), agent("cap-q", 2, 4)],
            sessions: vec![ask("s1", 1, 1), ask("m1", 1, 1).multi_node(2)],
            expect: vec![
                ("s1", Expect::On(&["cap-p"])),
                ("m1", Expect::On(&["cap-q", "cap-q"])),
            ],
            order: vec!["s1", "m1"],
        },
        // Every agent at the cap.
        Case {
            group: "capfull",
            scheduler: "fifo",
            opts: opts("dispersed"),
            agents: vec![agent("capfull-z", 8, 16)],
            sessions: vec![ask("s1", 1, 1)],
            expect: vec![(
                "s1",
                Expect::NoInstance(
                    "No agents found to be available because all agents have reached the hard \
                     limit of the number of containers."
                        .to_owned(),
                ),
            )],
            order: vec![],
        },
        // Designated agents: only a capacity check of that agent. s1 -> a (dispersed would have
        // taken b); s2 asks 3 cores of a's 2 left; s3 is free to go -> b.
        Case {
            group: "des",
            scheduler: "fifo",
            opts: opts("dispersed"),
            agents: vec![agent("des-a", 4, 8), agent("des-b", 8, 16)],
            sessions: vec![
                ask("s1", 2, 2).on("des-a"),
                ask("s2", 3, 3).on("des-a"),
                ask("s3", 1, 1),
            ],
            expect: vec![
                ("s1", Expect::On(&["des-a"])),
                (
                    "s2",
                    Expect::NoInstance(
                        "The designated agent (des-a) does not have the enough remaining \
                         capacity (cpu, requested: 3, remaining: 2)."
                            .to_owned(),
                    ),
                ),
                ("s3", Expect::On(&["des-b"])),
            ],
            order: vec!["s1", "s3"],
        },
        // Multi-node: an agent per kernel, each choice seeing the kernels before it. mn1 (3 x 2
        // cores): k1 -> a (4 left), k2: a 2, b 3 -> b, k3: a 2 (6 GiB left), c 2 (4 GiB) -> a.
        // mn2 (2 x 2 cores): k1 would go to c, k2 fits nowhere: nothing of mn2 is reserved, so
        // s3 (2 cores) still finds c.
        Case {
            group: "multi",
            scheduler: "fifo",
            opts: opts("dispersed"),
            agents: vec![
                agent("multi-a", 4, 8),
                agent("multi-b", 3, 8),
                agent("multi-c", 2, 4),
            ],
            sessions: vec![
                ask("mn1", 2, 2).multi_node(3),
                ask("mn2", 2, 2).multi_node(2),
                ask("s3", 2, 2),
            ],
            expect: vec![
                ("mn1", Expect::On(&["multi-a", "multi-b", "multi-a"])),
                ("mn2", Expect::KernelNoInstance(1, String::new())),
                ("s3", Expect::On(&["multi-c"])),
            ],
            order: vec!["mn1", "s3"],
        },
    ]
}

struct Harness {
    scheduler: Scheduler,
    starter: Starter,
    destroyer: Destroyer,
    stat: StatDb,
    /// Session name (per group) -> id.
    ids: BTreeMap<(String, String), Uuid>,
    stack: Stack,
}

impl Harness {
    /// The stores, the resource groups of `cases` with their schedulers and options, their
    /// agents (agent-sim, heartbeats every second), and a consumer running the agent registry's
    /// and the lifecycle's handlers; returns once every agent's row is ALIVE.
    async fn new(label: &str, cases: &[Case]) -> Harness {
        let stack = Stack::new(label, Duration::from_secs(30)).await;
        for architecture in ["x86_64", "aarch64"] {
            stack
                .image(
                    architecture,
                    false,
                    "{\"ai.backend.service-ports\": \"jupyter:http:8080\"}",
                )
                .await;
        }
        let db = stack.db();
        // The tables put many sessions of one keypair in flight: no concurrency limit (0).
        db.execute_unprepared("UPDATE keypair_resource_policies SET max_concurrent_sessions = 0")
            .await
            .expect("policy");
        for case in cases {
            db.execute_unprepared(&format!(
                "INSERT INTO scaling_groups (name, is_active, is_public, driver, driver_opts, \
                 scheduler, use_host_network, scheduler_opts) VALUES ('{}', true, true, \
                 'static', '{{}}', '{}', false, '{}')",
                case.group, case.scheduler, case.opts
            ))
            .await
            .expect("resource group");
        }
        let stat = stack.stores.redis.stat.clone();
        let lifecycle = Lifecycle::new(db.clone(), stack.producer.clone(), stat.clone());
        stack.consume(lifecycle).await;

        let specs: Vec<(&str, AgentSpec)> = cases
            .iter()
            .flat_map(|case| case.agents.iter().map(|spec| (case.group, *spec)))
            .collect();
        let base_port = free_ports(u16::try_from(specs.len()).expect("a few agents"));
        let mut sims = Vec::new();
        let mut run_config = None;
        for (offset, (group, spec)) in (0u16..).zip(&specs) {
            let config = stack.agent_config(
                spec.id,
                base_port + offset,
                &format!("scaling-group = {group:?}\n"),
                "[resource]\nreserved-cpu = 0\nreserved-mem = 0\n\n",
            );
            let rpc_options = RpcOptions {
                delay: Duration::from_millis(20),
                ..RpcOptions::default()
            };
            for mut sim in stack::sims(&config, spec.cpu, spec.mem_gib, rpc_options) {
                sim.info.architecture = spec.architecture.to_owned();
                sims.push(sim);
            }
            run_config.get_or_insert(config);
        }
        stack.run_agents(run_config.expect("at least one agent"), sims);

        let status = stack.status("placement");
        let harness = Harness {
            scheduler: stack.scheduler(&RESOURCE_PRIORITY, status.clone()),
            starter: stack.starter(status, Duration::from_secs(10)),
            destroyer: Destroyer::new(
                db.clone(),
                stack.producer.clone(),
                stat.clone(),
                stack.rpc.clone(),
            ),
            stat,
            ids: BTreeMap::new(),
            stack,
        };
        let ids: Vec<&str> = specs.iter().map(|(_, spec)| spec.id).collect();
        harness
            .stack
            .wait_until("every agent's row is ALIVE", || async {
                let alive = agents::Entity::find()
                    .filter(agents::Column::Status.eq(AgentStatus::Alive))
                    .all(harness.db())
                    .await
                    .expect("query");
                ids.iter().all(|id| alive.iter().any(|row| row.id == *id))
            })
            .await;
        harness
    }

    fn db(&self) -> &sea_orm::DatabaseConnection {
        self.stack.db()
    }

    /// Inserts `ask` into resource group `group` as `POST /session` does (the rows of
    /// `routes/session.rs`, through the same enqueue query), one at a time so that `created_at`
    /// orders them.
    async fn enqueue(&mut self, group: &str, ask: &Ask) -> Uuid {
        let session_id = Uuid::new_v4();
        let creation_id = format!("c-{group}-{}", ask.name);
        // Session names are unique per access key, across groups.
        let name = format!("{group}-{}", ask.name);
        let per_kernel = ask.kernel_slots();
        let total = slots(
            ask.cpu * u64::try_from(ask.kernels).expect("kernels"),
            ask.mem_gib * u64::try_from(ask.kernels).expect("kernels"),
        );
        let cluster_mode = if ask.multi_node {
            "multi-node"
        } else {
            "single-node"
        };
        let user_uuid: Uuid = ask.owner.user.parse().expect("uuid");
        let group_id: Uuid = GROUP.parse().expect("uuid");
        let now = chrono::Utc::now();
        let history = json!({"PENDING": now.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()});
        let kernels = bai_scheduler::enqueue::cluster_kernels(ask.kernels)
            .into_iter()
            .map(|placement| kernels::Model {
                id: Uuid::new_v4(),
                session_id,
                session_creation_id: Some(creation_id.clone()),
                session_name: Some(name.clone()),
                session_type: SessionType::Interactive,
                cluster_mode: cluster_mode.to_owned(),
                cluster_size: ask.kernels,
                cluster_role: placement.cluster_role.to_owned(),
                cluster_idx: placement.cluster_idx,
                local_rank: placement.local_rank,
                cluster_hostname: placement.cluster_hostname,
                scaling_group: Some(group.to_owned()),
                agent: ask.designated.map(str::to_owned),
                agent_addr: None,
                domain_name: "default".to_owned(),
                group_id,
                user_uuid,
                access_key: Some(ask.owner.access_key.to_owned()),
                image: Some(IMAGE.to_owned()),
                architecture: Some(ask.architecture.to_owned()),
                registry: Some("cr.backend.ai".to_owned()),
                tag: None,
                container_id: None,
                occupied_slots: per_kernel.clone(),
                requested_slots: per_kernel.clone(),
                occupied_shares: json!({}),
                environ: Some(Vec::new()),
                mounts: Some(Vec::new()),
                mount_map: Some(json!({})),
                vfolder_mounts: Some(json!([])),
                attached_devices: Some(json!({})),
                resource_opts: Some(json!({})),
                bootstrap_script: None,
                kernel_host: None,
                repl_in_port: 0,
                repl_out_port: 0,
                stdin_port: 0,
                stdout_port: 0,
                service_ports: None,
                preopen_ports: Some(Vec::new()),
                use_host_network: false,
                created_at: None,
                terminated_at: None,
                starts_at: None,
                status: KernelStatus::Pending,
                status_changed: None,
                status_info: None,
                status_data: None,
                status_history: Some(history.clone()),
                callback_url: None,
                startup_command: None,
                result: SessionResult::Undefined,
                internal_data: Some(json!({})),
                container_log: None,
                num_queries: Some(0),
                last_stat: None,
            })
            .collect();
        let session = sessions::Model {
            id: session_id,
            creation_id: Some(creation_id.clone()),
            name: Some(name.clone()),
            session_type: SessionType::Interactive,
            cluster_mode: cluster_mode.to_owned(),
            cluster_size: ask.kernels,
            agent_ids: None,
            scaling_group_name: Some(group.to_owned()),
            target_sgroup_names: Some(Vec::new()),
            domain_name: "default".to_owned(),
            group_id,
            user_uuid,
            access_key: Some(ask.owner.access_key.to_owned()),
            images: Some(vec![IMAGE.to_owned()]),
            tag: None,
            occupying_slots: ResourceSlot::new(),
            requested_slots: total,
            vfolder_mounts: Some(json!([])),
            environ: Some(json!({})),
            bootstrap_script: None,
            use_host_network: false,
            timeout: None,
            created_at: Some(now.fixed_offset()),
            terminated_at: None,
            starts_at: None,
            status: SessionStatus::Pending,
            status_info: None,
            status_data: None,
            status_history: Some(history),
            callback_url: None,
            startup_command: None,
            result: SessionResult::Undefined,
            num_queries: Some(0),
            last_stat: None,
        };
        session_enqueue::enqueue(
            self.db(),
            NewSession {
                session,
                kernels,
                dependencies: Vec::new(),
            },
        )
        .await
        .expect("enqueued");
        self.ids
            .insert((group.to_owned(), ask.name.to_owned()), session_id);
        session_id
    }

    fn id(&self, group: &str, name: &str) -> Uuid {
        self.ids[&(group.to_owned(), name.to_owned())]
    }

    fn name_of(&self, id: Uuid) -> Option<(&str, &str)> {
        self.ids
            .iter()
            .find(|(_, known)| **known == id)
            .map(|((group, name), _)| (group.as_str(), name.as_str()))
    }

    async fn session(&self, id: Uuid) -> sessions::Model {
        common::session(self.db(), id).await
    }

    async fn kernels_of(&self, id: Uuid) -> Vec<kernels::Model> {
        kernels::Entity::find()
            .filter(kernels::Column::SessionId.eq(id))
            .order_by_asc(kernels::Column::ClusterRole)
            .order_by_asc(kernels::Column::ClusterIdx)
            .all(self.db())
            .await
            .expect("query")
    }

    /// (cores, GiB) an agent's row says are occupied.
    async fn occupied(&self, agent: &str) -> (u64, u64) {
        let json = common::occupied(self.db(), agent).await.to_json();
        let amount = |slot: &str| {
            json.get(slot)
                .and_then(Value::as_str)
                .map_or(0, |text| text.parse::<u64>().expect("a whole amount"))
        };
        (amount("cpu"), amount("mem") / GIB)
    }

    /// The sessions of the `session_scheduled` events on the stream so far, in order, by
    /// (group, name).
    async fn scheduled_order(&self) -> Vec<(String, String)> {
        self.stack
            .stream_entries()
            .await
            .into_iter()
            .filter(|entry| entry.field("name") == Some(b"session_scheduled".as_slice()))
            .map(|entry| {
                let event = Event::decode(
                    entry.field("name").expect("name"),
                    entry.field("args").expect("args"),
                )
                .expect("an event");
                let Event::SessionScheduled(creation) = event else {
                    panic!("not session_scheduled: {event:?}");
                };
                let (group, name) = self
                    .name_of(creation.session_id)
                    .expect("a session of the test");
                (group.to_owned(), name.to_owned())
            })
            .collect()
    }

    /// `prepare()`, then waits until every session of `ids` is RUNNING.
    async fn start_all(&self, ids: &[Uuid]) {
        self.starter.prepare().await.expect("prepare");
        for &id in ids {
            self.stack
                .wait_until("the session is RUNNING", || async {
                    self.session(id).await.status == SessionStatus::Running
                })
                .await;
        }
    }
}

/// Checks one case after the round: every session as expected, and the order of its
/// `session_scheduled` events.
async fn check_case(harness: &Harness, case: &Case, order: &[(String, String)]) {
    let group = case.group;
    for (name, expect) in &case.expect {
        let id = harness.id(group, name);
        let row = harness.session(id).await;
        let kernels = harness.kernels_of(id).await;
        let context = format!("{group}/{name}: {row:?}");
        match expect {
            Expect::On(agents) => {
                assert_eq!(row.status, SessionStatus::Scheduled, "{context}");
                assert_eq!(row.status_info.as_deref(), Some("scheduled"), "{context}");
                let agent_ids: Vec<&str> = agents.to_vec();
                assert_eq!(
                    row.agent_ids
                        .as_deref()
                        .map(|ids| ids.iter().map(String::as_str).collect::<Vec<_>>()),
                    Some(agent_ids.clone()),
                    "{context}"
                );
                for (index, kernel) in kernels.iter().enumerate() {
                    let expected = if agents.len() == 1 {
                        agents[0]
                    } else {
                        agents[index]
                    };
                    assert_eq!(kernel.status, KernelStatus::Scheduled, "{context}");
                    assert_eq!(kernel.agent.as_deref(), Some(expected), "{context}");
                }
            }
            Expect::NoInstance(msg) => {
                assert_eq!(row.status, SessionStatus::Pending, "{context}");
                assert_eq!(
                    row.status_info.as_deref(),
                    Some("no-available-instances"),
                    "{context}"
                );
                let scheduler = &row.status_data.as_ref().expect("status data")["scheduler"];
                assert_eq!(scheduler["retries"], 1, "{context}");
                let msg = if msg.is_empty() {
                    no_room(group)(&id)
                } else {
                    msg.clone()
                };
                assert_eq!(scheduler["msg"], json!(msg), "{context}");
                assert!(row.agent_ids.is_none(), "{context}");
                for kernel in &kernels {
                    assert_eq!(kernel.status, KernelStatus::Pending, "{context}");
                }
            }
            Expect::KernelNoInstance(index, msg) => {
                assert_eq!(row.status, SessionStatus::Pending, "{context}");
                // Multi-node failures are written to the kernel, not the session (§4.6).
                assert_eq!(row.status_info, None, "{context}");
                assert!(row.agent_ids.is_none(), "{context}");
                let msg = if msg.is_empty() {
                    format!(
                        "Could not find a contiguous resource region in any agent big enough \
                         to host a kernel in the session (id: {id}, resource group: {group})"
                    )
                } else {
                    msg.clone()
                };
                for (position, kernel) in kernels.iter().enumerate() {
                    assert_eq!(kernel.status, KernelStatus::Pending, "{context}");
                    assert_eq!(kernel.agent, None, "{context}");
                    if position == *index {
                        assert_eq!(
                            kernel.status_info.as_deref(),
                            Some("no-available-instances"),
                            "{context}"
                        );
                        let scheduler =
                            &kernel.status_data.as_ref().expect("status data")["scheduler"];
                        assert_eq!(scheduler["retries"], 1, "{context}");
                        assert_eq!(scheduler["msg"], json!(msg), "{context}");
                    }
                }
            }
        }
    }
    let scheduled: Vec<&str> = order
        .iter()
        .filter(|(of, _)| of == group)
        .map(|(_, name)| name.as_str())
        .collect();
    assert_eq!(scheduled, case.order, "the scheduling order of {group}");
}

/// What each agent of `case` holds once its sessions run: Σ of the kernels placed on it.
fn expected_occupancy(case: &Case) -> BTreeMap<&'static str, (u64, u64)> {
    let mut held: BTreeMap<&str, (u64, u64)> =
        case.agents.iter().map(|spec| (spec.id, (0, 0))).collect();
    for (name, expect) in &case.expect {
        let Expect::On(agents) = expect else { continue };
        let ask = case
            .sessions
            .iter()
            .find(|ask| ask.name == *name)
            .expect("the session");
        let kernels = u64::try_from(ask.kernels).expect("kernels");
        if agents.len() == 1 {
            let entry = held.get_mut(agents[0]).expect("an agent of the case");
            entry.0 += ask.cpu * kernels;
            entry.1 += ask.mem_gib * kernels;
        } else {
            for agent in *agents {
                let entry = held.get_mut(agent).expect("an agent of the case");
                entry.0 += ask.cpu;
                entry.1 += ask.mem_gib;
            }
        }
    }
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_picker_and_selector_places_sessions_where_the_reference_does() {
    let cases = single_round_cases();
    let mut harness = Harness::new("sessions_placement", &cases).await;
    // The container cap is cluster-wide; the agents report their container counts to Redis.
    harness
        .stack
        .etcd
        .put("config/agent/max-container-count", "2", Scope::Global)
        .await
        .expect("etcd put");
    for (agent, count) in [("cap-p", "2"), ("capfull-z", "3")] {
        harness
            .stat
            .raw()
            .set(&format!("container_count.{agent}"), count)
            .await
            .expect("container count");
    }
    for case in &cases {
        for ask in &case.sessions {
            harness.enqueue(case.group, ask).await;
        }
    }

    harness.scheduler.schedule().await.expect("round");
    let order = harness.scheduled_order().await;
    for case in &cases {
        check_case(&harness, case, &order).await;
        // The round's reservations, in the agents' rows: a multi-node session that did not fit
        // as a whole reserved nothing.
        for (agent, held) in expected_occupancy(case) {
            assert_eq!(
                harness.occupied(agent).await,
                held,
                "agent {agent} after the round"
            );
        }
    }

    // The same sessions, started on the agents: each RUNNING, each agent holding what was placed
    // on it (the agents' real allocations).
    let placed: Vec<Uuid> = cases
        .iter()
        .flat_map(|case| {
            case.expect
                .iter()
                .filter(|(_, expect)| matches!(expect, Expect::On(_)))
                .map(|(name, _)| harness.id(case.group, name))
        })
        .collect();
    harness.start_all(&placed).await;
    for case in &cases {
        for (agent, held) in expected_occupancy(case) {
            assert_eq!(harness.occupied(agent).await, held, "agent {agent}");
        }
    }
    for &id in &placed {
        for kernel in harness.kernels_of(id).await {
            assert_eq!(kernel.status, KernelStatus::Running);
        }
    }
}

/// Cases over two rounds: what the first round leaves (retries, running sessions, round-robin
/// state) decides the second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_running_sessions_and_the_ring_carry_over_to_the_next_round() {
    let mut rr_opts = opts("dispersed");
    rr_opts["roundrobin"] = json!(true);
    let mut skip_opts = opts("dispersed");
    skip_opts["config"] = json!({"num_retries_to_skip": 1});
    let group = |group, scheduler, opts, agents| Case {
        group,
        scheduler,
        opts,
        agents,
        sessions: Vec::new(),
        expect: Vec::new(),
        order: Vec::new(),
    };
    let cases = [
        group(
            "rr",
            "fifo",
            rr_opts,
            vec![
                agent("rr-a", 4, 8),
                agent("rr-b", 8, 16),
                agent("rr-c", 2, 4),
            ],
        ),
        group("skip", "fifo", skip_opts, vec![agent("skip-a", 4, 8)]),
        group(
            "strict",
            "fifo",
            opts("dispersed"),
            vec![agent("strict-a", 4, 8)],
        ),
        group(
            "drf",
            "drf",
            opts("dispersed"),
            vec![agent("drf-a", 8, 16), agent("drf-b", 6, 12)],
        ),
    ];
    let mut harness = Harness::new("sessions_placement_rounds", &cases).await;

    // Round 1.
    // rr: no state yet, so s1 goes where `dispersed` says (b) and the ring [a, b, c] (agents
    // sorted by id) continues after b: s2 -> c, s3 -> a, s4 -> b; s5 asks exactly what c has
    // left (1 core, 3 GiB), which is not `>`, so -> a; s6 -> b. The state: next index 2.
    for ask in [
        ask("s1", 1, 1),
        ask("s2", 1, 1),
        ask("s3", 1, 1),
        ask("s4", 1, 1),
        ask("s5", 1, 3),
        ask("s6", 2, 2),
    ] {
        harness.enqueue("rr", &ask).await;
    }
    // skip / strict: f takes 2 of the 4 cores, so b (4 cores) fails once (retries 1).
    for group in ["skip", "strict"] {
        harness.enqueue(group, &ask("f", 2, 2)).await;
        harness.enqueue(group, &ask("b", 4, 4)).await;
    }
    // drf: the admin's e1 runs on a (dispersed: 8 cores against 6).
    harness.enqueue("drf", &ask("e1", 4, 4)).await;
    harness.scheduler.schedule().await.expect("round 1");

    let round_one = [
        ("rr", "s1", "rr-b"),
        ("rr", "s2", "rr-c"),
        ("rr", "s3", "rr-a"),
        ("rr", "s4", "rr-b"),
        ("rr", "s5", "rr-a"),
        ("rr", "s6", "rr-b"),
        ("skip", "f", "skip-a"),
        ("strict", "f", "strict-a"),
        ("drf", "e1", "drf-a"),
    ];
    for &(group, name, agent) in &round_one {
        let row = harness.session(harness.id(group, name)).await;
        assert_eq!(row.status, SessionStatus::Scheduled, "{group}/{name}");
        assert_eq!(
            row.agent_ids,
            Some(vec![agent.to_owned()]),
            "{group}/{name}"
        );
    }
    let rr_order: Vec<String> = harness
        .scheduled_order()
        .await
        .into_iter()
        .filter(|(group, _)| group == "rr")
        .map(|(_, name)| name)
        .collect();
    assert_eq!(rr_order, ["s1", "s2", "s3", "s4", "s5", "s6"]);
    let ring = harness
        .stack
        .etcd
        .get("roundrobin_states", Scope::Global)
        .await
        .expect("etcd")
        .expect("the round-robin state");
    let ring: Value = serde_json::from_str(&ring).expect("JSON");
    // md5("rr-a#rr-b#rr-c").
    assert_eq!(
        ring["rr"]["x86_64"],
        json!({"schedulable_group_id": "86bfda11ad9fa7e35f6f7da336aa7274", "next_index": 2})
    );
    for group in ["skip", "strict"] {
        let row = harness.session(harness.id(group, "b")).await;
        assert_eq!(row.status, SessionStatus::Pending);
        assert_eq!(row.status_data.expect("data")["scheduler"]["retries"], 1);
    }

    // Between the rounds: everything placed runs; f is destroyed on its agent and its slots
    // come back.
    let placed: Vec<Uuid> = round_one
        .iter()
        .map(|&(group, name, _)| harness.id(group, name))
        .collect();
    harness.start_all(&placed).await;
    for group in ["skip", "strict"] {
        let f = harness.id(group, "f");
        harness
            .destroyer
            .destroy(
                f,
                DestroyRequest {
                    forced: false,
                    reason: None,
                    superadmin: true,
                },
            )
            .await
            .expect("destroy");
        let agent = format!("{group}-a");
        harness
            .stack
            .wait_until("f's slots are released", || async {
                harness.session(f).await.status == SessionStatus::Terminated
                    && harness.occupied(&agent).await == (0, 0)
            })
            .await;
    }
    let e1 = harness.session(harness.id("drf", "e1")).await;
    assert_eq!(e1.occupying_slots, slots(4, 4));

    // Round 2.
    // rr: the stored ring goes on from index 2: c has 1 core and 3 GiB left, more than s7's.
    harness.enqueue("rr", &ask("s7", 1, 1)).await;
    // skip (num_retries_to_skip 1): b has failed once, so t1 and t2 go first and take the 4
    // cores; then b, the only one left, fails again. strict (0): b first, t1 and t2 wait.
    for group in ["skip", "strict"] {
        harness.enqueue(group, &ask("t1", 2, 2)).await;
        harness.enqueue(group, &ask("t2", 2, 2)).await;
    }
    // drf: total capacity 14 cores, 28 GiB. The admin's share is 4/14 (e1); the user's 0, so the
    // user's oldest, u1 (6 cores), goes first: only b has room. The user's share becomes
    // 6/14, more than the admin's, so the admin's a1 and a2 (2 cores each, on a: 4 left) follow,
    // and the user's u2 finds no room left.
    harness.enqueue("drf", &ask("a1", 2, 2)).await;
    harness.enqueue("drf", &ask("a2", 2, 2)).await;
    harness.enqueue("drf", &ask("u1", 6, 6).by(USER)).await;
    harness.enqueue("drf", &ask("u2", 2, 2).by(USER)).await;
    let first_round_events = harness.scheduled_order().await.len();
    harness.scheduler.schedule().await.expect("round 2");

    let round_two = [
        ("rr", "s7", "rr-c"),
        ("skip", "t1", "skip-a"),
        ("skip", "t2", "skip-a"),
        ("strict", "b", "strict-a"),
        ("drf", "u1", "drf-b"),
        ("drf", "a1", "drf-a"),
        ("drf", "a2", "drf-a"),
    ];
    for &(group, name, agent) in &round_two {
        let row = harness.session(harness.id(group, name)).await;
        assert_eq!(row.status, SessionStatus::Scheduled, "{group}/{name}");
        assert_eq!(
            row.agent_ids,
            Some(vec![agent.to_owned()]),
            "{group}/{name}"
        );
    }
    for (group, name, retries) in [
        ("skip", "b", 2),
        ("strict", "t1", 1),
        ("strict", "t2", 1),
        ("drf", "u2", 1),
    ] {
        let row = harness.session(harness.id(group, name)).await;
        assert_eq!(row.status, SessionStatus::Pending, "{group}/{name}");
        assert_eq!(
            row.status_info.as_deref(),
            Some("no-available-instances"),
            "{group}/{name}"
        );
        assert_eq!(
            row.status_data.expect("data")["scheduler"]["retries"],
            retries,
            "{group}/{name}"
        );
    }
    let order: Vec<(String, String)> = harness
        .scheduled_order()
        .await
        .split_off(first_round_events);
    let of = |group: &str| -> Vec<String> {
        order
            .iter()
            .filter(|(of, _)| of == group)
            .map(|(_, name)| name.clone())
            .collect()
    };
    assert_eq!(of("rr"), ["s7"]);
    assert_eq!(of("skip"), ["t1", "t2"]);
    assert_eq!(of("strict"), ["b"]);
    assert_eq!(of("drf"), ["u1", "a1", "a2"]);

    let placed: Vec<Uuid> = round_two
        .iter()
        .map(|&(group, name, _)| harness.id(group, name))
        .collect();
    harness.start_all(&placed).await;
    for (agent, held) in [
        ("rr-a", (2, 4)),
        ("rr-b", (4, 4)),
        ("rr-c", (2, 2)),
        ("skip-a", (4, 4)),
        ("strict-a", (4, 4)),
        ("drf-a", (8, 8)),
        ("drf-b", (6, 6)),
    ] {
        assert_eq!(harness.occupied(agent).await, held, "agent {agent}");
    }
}
