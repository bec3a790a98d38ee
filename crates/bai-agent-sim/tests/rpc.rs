//! agent-sim's RPC server against the manager's client (`bai-agent-rpc`), the agents running in
//! this process on a fresh etcd namespace and a private Redis: the methods, the kernel lifecycle
//! events on the stream, slot allocation, CURVE with the ZAP handler, and the fault injection.
//! Every wait has a timeout.

mod common;

use std::time::{Duration, Instant};

use bai_agent_rpc::{AgentTarget, Connection, RpcError};
use bai_agent_sim::{Faults, RpcOptions};
use bai_events::Event;
use bai_redis::EntryId;
use bai_rpc_keys::CurveKeypair;
use common::{CALL, Curve, Kernel, Setup, Sim, client, connect_to, create_args, map, map_get};
use rmpv::Value;
use uuid::Uuid;

/// One agent with `faults`, and `curve` when given.
async fn start(label: &str, faults: Faults, curve: Option<&Curve>) -> Sim {
    Sim::start(
        label,
        Setup {
            curve,
            rpc: rpc(Duration::from_millis(20), faults),
            ..Setup::default()
        },
    )
    .await
}

fn rpc(delay: Duration, faults: Faults) -> RpcOptions {
    RpcOptions { delay, faults }
}

fn kernel_config(cpu: &str, mem: &str) -> Value {
    map(&[
        (
            "resource_slots",
            map(&[("cpu", Value::from(cpu)), ("mem", Value::from(mem))]),
        ),
        ("image", map(&[("canonical", Value::from(IMAGE))])),
    ])
}

/// The image of [`kernel_config`]; a new agent has not pulled it.
const IMAGE: &str = "cr.backend.ai/stable/python:3.9-ubuntu20.04";

/// `create_kernels` of one new kernel of a new session, asking for `cpu` cores and `mem` bytes.
async fn create_one(connection: &Connection, cpu: &str, mem: &str) -> Result<Value, RpcError> {
    connection
        .call(
            "create_kernels",
            create_args(
                Uuid::new_v4(),
                &[Uuid::new_v4()],
                vec![kernel_config(cpu, mem)],
            ),
            vec![],
            CALL,
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_answer_concurrently_and_kernels_live_and_die_on_the_event_stream() {
    let sim = start("methods", Faults::default(), None).await;
    let mut after = EntryId::ZERO;
    let connection = sim.connect(&client(None)).await;

    assert_eq!(
        connection.ping("hello", CALL).await.expect("ping"),
        Value::from("hello")
    );
    let pings = (0..16).map(|index| {
        let connection = &connection;
        async move { connection.ping(&format!("ping-{index}"), CALL).await }
    });
    let answers = futures_util::future::join_all(pings).await;
    for (index, answer) in answers.into_iter().enumerate() {
        assert_eq!(answer.expect("ping"), Value::from(format!("ping-{index}")));
    }
    let hwinfo = connection
        .call("gather_hwinfo", vec![], vec![], CALL)
        .await
        .expect("gather_hwinfo");
    assert_eq!(hwinfo, Value::Map(vec![]));
    let config = connection
        .call("get_local_config", vec![], vec![], CALL)
        .await
        .expect("get_local_config");
    assert_eq!(
        map_get(map_get(&config, "agent"), "id"),
        &Value::from(sim.id.as_str())
    );
    assert_eq!(map_get(&config, "watcher"), &Value::Map(vec![]));

    // 4 cores and 8 GiB: two kernels of 1 core and 1 GiB fit, then 3 more cores do not.
    let session = Uuid::new_v4();
    let kernels = [Uuid::new_v4(), Uuid::new_v4()];
    let gib = (1u64 << 30).to_string();
    let created = connection
        .call(
            "create_kernels",
            create_args(
                session,
                &kernels,
                vec![kernel_config("1", &gib), kernel_config("1", &gib)],
            ),
            vec![],
            CALL,
        )
        .await
        .expect("create_kernels");
    let results = created.as_array().expect("a list of results");
    assert_eq!(results.len(), 2);
    assert_eq!(
        map_get(&results[0], "id"),
        &Value::from(kernels[0].to_string())
    );
    assert_eq!(map_get(&results[0], "container_id"), &Value::from(""));
    assert_eq!(map_get(&results[0], "repl_in_port"), &Value::from(2000));

    let Event::KernelPreparing(preparing) = sim.wait_for("kernel_preparing", &mut after).await
    else {
        panic!("not kernel_preparing");
    };
    assert_eq!(
        (preparing.kernel_id, preparing.session_id),
        (kernels[0], session)
    );
    // A new agent pulls the image first, once for both kernels.
    let Event::KernelPulling(pulling) = sim.wait_for("kernel_pulling", &mut after).await else {
        panic!("not kernel_pulling");
    };
    assert_eq!(
        (pulling.kernel_id, pulling.reason.as_str()),
        (kernels[0], IMAGE)
    );
    let Event::KernelStarted(started) = sim.wait_for("kernel_started", &mut after).await else {
        panic!("not kernel_started");
    };
    assert_eq!(
        (started.kernel_id, started.session_id),
        (kernels[0], session)
    );
    let info = &started.creation_info;
    assert_eq!(info["id"], kernels[0].to_string());
    assert_eq!(info["container_id"], "");
    assert_eq!(info["kernel_host"], "127.0.0.1");
    assert_eq!(info["repl_out_port"], 2001);
    assert_eq!(info["resource_spec"]["slots"]["cpu"], "1");
    assert_eq!(info["resource_spec"]["slots"]["mem"], gib.as_str());

    let error = create_one(&connection, "3", "1024")
        .await
        .expect_err("3 more cores do not fit");
    match &error {
        RpcError::Failure {
            agent,
            method,
            exc_name,
            ..
        } => {
            assert_eq!(agent, &sim.id);
            assert_eq!(method, "create_kernels");
            assert_eq!(exc_name, "InsufficientResource");
        }
        other => panic!("expected a failure, got {other:?}"),
    }

    // Destroying frees the slots and says so on the stream.
    Kernel {
        session,
        kernel: kernels[0],
    }
    .destroy(&connection)
    .await;
    let Event::KernelTerminated(terminated) = sim.wait_for("kernel_terminated", &mut after).await
    else {
        panic!("not kernel_terminated");
    };
    assert_eq!(terminated.kernel_id, kernels[0]);
    assert_eq!(terminated.reason, "user-requested");
    assert_eq!(terminated.exit_code, 0);
    create_one(&connection, "3", "1024")
        .await
        .expect("3 cores fit after the destroy");
    // The image is there now: no pull before the kernel starts.
    let names = sim.names_until("kernel_started", &mut after).await;
    assert!(
        !names.iter().any(|name| name == "kernel_pulling"),
        "{names:?}"
    );
    // An image it lacks, with auto_pull "none", is not pulled: the real agent's error.
    let mut config = kernel_config("1", "1");
    if let Value::Map(entries) = &mut config {
        entries.push((Value::from("auto_pull"), Value::from("none")));
        entries[1].1 = Value::Map(vec![(
            Value::from("canonical"),
            Value::from("cr.backend.ai/stable/missing:1.0"),
        )]);
    }
    let error = connection
        .call(
            "create_kernels",
            create_args(Uuid::new_v4(), &[Uuid::new_v4()], vec![config]),
            vec![],
            CALL,
        )
        .await
        .expect_err("a missing image with auto_pull none");
    assert!(
        matches!(&error, RpcError::Failure { exc_name, .. } if exc_name == "ImageNotAvailable"),
        "{error:?}"
    );

    let kernel = Value::from(kernels[1].to_string());
    let logs = connection
        .call("get_logs", vec![kernel.clone()], vec![], CALL)
        .await
        .expect("get_logs");
    // The dummy kernel's log; a kernel the agent does not hold is the real agent's KeyError.
    assert_eq!(map_get(&logs, "logs"), &Value::from("my logs"));
    let stranger = Uuid::new_v4();
    let error = connection
        .call(
            "get_logs",
            vec![Value::from(stranger.to_string())],
            vec![],
            CALL,
        )
        .await
        .expect_err("get_logs of an unknown kernel");
    assert!(
        matches!(&error, RpcError::Failure { exc_name, repr, .. }
            if exc_name == "KeyError" && *repr == format!("KeyError(UUID('{stranger}'))")),
        "{error:?}"
    );
    // The real dummy agent cannot restart a kernel: it stores no configuration to restart from.
    let error = connection
        .call(
            "restart_kernel",
            vec![
                Value::from(session.to_string()),
                kernel.clone(),
                Value::Map(vec![]),
            ],
            vec![],
            CALL,
        )
        .await
        .expect_err("restart_kernel on the dummy backend");
    assert!(
        matches!(&error, RpcError::Failure { exc_name, repr, .. }
            if exc_name == "EOFError" && repr == "EOFError('Ran out of input')"),
        "{error:?}"
    );
    let args = Kernel {
        session,
        kernel: kernels[1],
    }
    .execute_args(3, "run-1", "query", "print(1)", map(&[]), Value::Nil);
    let executed = connection
        .call("execute", args, vec![], CALL)
        .await
        .expect("execute");
    assert_eq!(map_get(&executed, "status"), &Value::from("finished"));
    assert_eq!(map_get(&executed, "runId"), &Value::from("run-1"));
    let files = connection
        .call(
            "list_files",
            vec![kernel.clone(), Value::from("/home/work")],
            vec![],
            CALL,
        )
        .await
        .expect("list_files");
    assert_eq!(map_get(&files, "abspath"), &Value::from("/home/work"));
    let port = connection
        .call("assign_port", vec![], vec![], CALL)
        .await
        .expect("assign_port");
    assert!(port.as_u64().is_some(), "{port}");
    connection
        .call("release_port", vec![port], vec![], CALL)
        .await
        .expect("release_port");

    // An unknown method is an ERROR, and the agent keeps answering.
    let error = connection
        .call("clean_all_kernels", vec![], vec![], CALL)
        .await
        .expect_err("unknown");
    assert!(matches!(error, RpcError::Internal { .. }), "{error:?}");
    // Suppressed events: the kernel goes without a kernel_terminated.
    connection
        .call(
            "destroy_kernel",
            vec![kernel, Value::from(session.to_string()), Value::Nil],
            vec![("suppress_events".to_owned(), Value::from(true))],
            CALL,
        )
        .await
        .expect("destroy_kernel");
    assert_eq!(
        connection.ping("still", CALL).await.expect("ping"),
        Value::from("still")
    );
    drop(connection);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_past_its_timeout_is_cancelled_on_the_agent_and_gives_its_slots_back() {
    let sim = Sim::start(
        "cancel",
        Setup {
            rpc: rpc(Duration::from_secs(1), Faults::default()),
            ..Setup::default()
        },
    )
    .await;
    let connection = sim.connect(&client(None)).await;
    let all_cores = || {
        create_args(
            Uuid::new_v4(),
            &[Uuid::new_v4()],
            vec![kernel_config("4", "1024")],
        )
    };
    let error = connection
        .call(
            "create_kernels",
            all_cores(),
            vec![],
            Some(Duration::from_millis(200)),
        )
        .await
        .expect_err("slower than its timeout");
    assert!(matches!(error, RpcError::Timeout { .. }), "{error:?}");
    // Had the first call run to its end, it would hold every core and this one would fail.
    connection
        .call("create_kernels", all_cores(), vec![], CALL)
        .await
        .expect("the cancelled call gave its cores back");
    drop(connection);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_agents_serve_on_consecutive_ports() {
    let sim = Sim::start(
        "several",
        Setup {
            agents: Some(2),
            rpc: rpc(Duration::from_millis(20), Faults::default()),
            ..Setup::default()
        },
    )
    .await;
    let port: u16 = sim
        .addr
        .rsplit(':')
        .next()
        .and_then(|port| port.parse().ok())
        .expect("port");
    for index in 0..2u16 {
        let target = AgentTarget {
            agent_id: format!("{}-{index}", sim.id),
            addr: format!("tcp://127.0.0.1:{}", port + index),
            public_key: None,
        };
        let connection = connect_to(&client(None), &target).await;
        assert_eq!(
            connection.ping("which", CALL).await.expect("ping"),
            Value::from("which")
        );
        let config = connection
            .call("get_local_config", vec![], vec![], CALL)
            .await
            .expect("get_local_config");
        assert_eq!(
            map_get(map_get(&config, "agent"), "id"),
            &Value::from(format!("{}-{index}", sim.id))
        );
    }
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_curve_only_the_configured_manager_gets_in() {
    let curve = Curve {
        agent: CurveKeypair::generate().expect("keypair"),
        manager: CurveKeypair::generate().expect("keypair"),
    };
    let sim = start("curve", Faults::default(), Some(&curve)).await;
    let connection = sim.connect(&client(Some(curve.manager.clone()))).await;
    assert_eq!(
        connection.ping("secret", CALL).await.expect("ping"),
        Value::from("secret")
    );

    let stranger = CurveKeypair::generate().expect("keypair");
    let started = Instant::now();
    let error = client(Some(stranger))
        .connect(&sim.target())
        .await
        .expect_err("the ZAP handler refuses an unknown manager");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(error, RpcError::CurveHandshake { .. }),
        "{error:?}"
    );
    assert!(
        error.to_string().contains("CURVE handshake failed"),
        "{error}"
    );
    drop(connection);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_fails_create_kernels_gives_a_typed_failure() {
    let faults = Faults {
        fail_create: true,
        ..Faults::default()
    };
    let sim = start("fail-create", faults, None).await;
    let connection = sim.connect(&client(None)).await;
    let error = create_one(&connection, "1", "1")
        .await
        .expect_err("--fail-create");
    assert!(
        matches!(&error, RpcError::Failure { method, .. } if method == "create_kernels"),
        "{error:?}"
    );
    assert!(error.to_string().contains(&sim.id), "{error}");
    drop(connection);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_never_answers_times_calls_out() {
    let faults = Faults {
        never_answer: true,
        ..Faults::default()
    };
    let sim = start("never-answer", faults, None).await;
    // PING is still answered (the handshake is Callosum's, not a method).
    let connection = sim.connect(&client(None)).await;
    let started = Instant::now();
    let error = connection
        .ping("anyone?", Some(Duration::from_millis(300)))
        .await
        .expect_err("no answer");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(matches!(error, RpcError::Timeout { .. }), "{error:?}");
    drop(connection);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_dies_mid_call_fails_the_call_and_the_connection_comes_back() {
    let faults = Faults {
        die_mid_call: true,
        ..Faults::default()
    };
    let mut sim = start("die-mid-call", faults, None).await;
    let connection = sim.connect(&client(None)).await;
    assert_eq!(
        connection.ping("alive", CALL).await.expect("ping"),
        Value::from("alive")
    );
    // No timeout: the dropped connection, not a timer, ends the call.
    let outcome = tokio::time::timeout(
        Duration::from_secs(5),
        connection.call(
            "create_kernels",
            create_args(
                Uuid::new_v4(),
                &[Uuid::new_v4()],
                vec![kernel_config("1", "1")],
            ),
            vec![],
            None,
        ),
    )
    .await
    .expect("the call ends when the connection drops");
    let error = outcome.expect_err("the agent died");
    assert!(
        matches!(&error, RpcError::Disconnected { method, .. } if method == "create_kernels"),
        "{error:?}"
    );
    assert!(error.to_string().contains("may or may not"), "{error}");

    // While nobody serves, a call waits for the connection as long as the handshake timeout
    // (1 s here), then fails unsent.
    let error = connection
        .ping("anyone?", CALL)
        .await
        .expect_err("nobody serves");
    assert!(
        matches!(&error, RpcError::NotSent { method, .. } if method == "ping"),
        "{error:?}"
    );
    let error = client(None)
        .connect(&sim.target())
        .await
        .expect_err("nobody answers");
    assert!(
        matches!(error, RpcError::NoAnswer { reached: false, .. }),
        "{error:?}"
    );

    // The agent comes back on the same port: the same connection carries calls again.
    sim.restart(Faults::default()).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match connection.ping("back", CALL).await {
            Ok(pong) => {
                assert_eq!(pong, Value::from("back"));
                break;
            }
            Err(RpcError::NotSent { .. }) if Instant::now() < deadline => {}
            Err(error) => panic!("after the restart: {error}"),
        }
    }
    drop(connection);
    sim.stop().await;
}
