//! The official clients' per-session commands against our server, on a session of the real
//! Backend.AI 24.3.11 agent in dummy mode: `session rename`, `session logs`,
//! `session status-history` and `session restart` of the 24.3.11 and the 23.9.10 client.

use bai_db_models::entities::enums::{KernelStatus, SessionStatus};
use bai_db_models::entities::kernels;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::session_support::{
    create_session, ready_session_id, registered_real_agent, session_row, stack_with_server,
};
use crate::support::{CLIENT_23_09, CLIENT_24_03};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_clients_rename_read_and_restart_a_session_on_the_real_dummy_agent() {
    let (stack, mut server, port) = stack_with_server("session_ops_real").await;
    let agent = registered_real_agent(&stack, "i-real-ops").await;
    let session_id = ready_session_id(&create_session(
        &CLIENT_24_03,
        &stack,
        port,
        "opsreal1",
        &[],
    ));

    // rename: by the 24.3.11 client, then back by the 23.9.10 one; the kernel follows.
    for (client, from, to) in [
        (&CLIENT_24_03, "opsreal1", "opsreal2"),
        (&CLIENT_23_09, "opsreal2", "opsreal3"),
    ] {
        let printed = client.cli(&stack, port, &["session", "rename", from, to]);
        assert!(
            printed.contains(&format!("Session renamed to {to}.")),
            "{}: {printed}",
            client.venv
        );
        assert_eq!(
            session_row(&stack, &session_id).await.name.as_deref(),
            Some(to)
        );
    }
    let kernel = kernels::Entity::find()
        .filter(kernels::Column::SessionId.eq(session_row(&stack, &session_id).await.id))
        .one(&stack.db.connection)
        .await
        .expect("kernels")
        .expect("the kernel");
    assert_eq!(kernel.session_name.as_deref(), Some("opsreal3"));
    // A name that does not match the pattern is refused, and the client says so.
    let refused = CLIENT_24_03.run(
        &stack,
        port,
        "backend.ai",
        &["session", "rename", "opsreal3", "ab"],
    );
    assert!(!refused.status.success());
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&refused.stdout),
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(
        said.contains("Missing or invalid API parameters."),
        "{said}"
    );

    // logs: the dummy kernel's, from the real agent.
    for client in [&CLIENT_24_03, &CLIENT_23_09] {
        let printed = client.cli(&stack, port, &["session", "logs", "opsreal3"]);
        assert!(printed.contains("my logs"), "{}: {printed}", client.venv);
        assert!(
            printed.contains("End of logs."),
            "{}: {printed}",
            client.venv
        );
    }

    // status-history: the session's statuses by name, as both clients print them.
    for client in [&CLIENT_24_03, &CLIENT_23_09] {
        let printed = client.cli(&stack, port, &["session", "status-history", &session_id]);
        // The 24.3.11 client prints a dict, the 23.9.10 one an OrderedDict.
        assert!(
            printed.contains("status_history: "),
            "{}: {printed}",
            client.venv
        );
        assert!(
            printed.contains("'RUNNING': '") || printed.contains("('RUNNING', '"),
            "{}: {printed}",
            client.venv
        );
        assert!(
            printed.contains("Actual Resource Allocation Time"),
            "{}: {printed}",
            client.venv
        );
    }

    // restart: the dummy agent fails `restart_kernel` (it keeps no kernel configuration to
    // restart from); as in the reference that does not fail the restart, and the session is
    // RUNNING again.
    for client in [&CLIENT_24_03, &CLIENT_23_09] {
        let printed = client.cli(&stack, port, &["session", "restart", "opsreal3"]);
        assert!(printed.contains("Done."), "{}: {printed}", client.venv);
        assert!(!printed.contains('✘'), "{}: {printed}", client.venv);
        let session = session_row(&stack, &session_id).await;
        assert_eq!(session.status, SessionStatus::Running, "{}", client.venv);
        let history = session.status_history.expect("a history");
        assert!(history.get("RESTARTING").is_some(), "{history}");
    }
    let kernel = kernels::Entity::find_by_id(kernel.id)
        .one(&stack.db.connection)
        .await
        .expect("kernels")
        .expect("the kernel");
    assert_eq!(kernel.status, KernelStatus::Running);
    // The agent still serves the kernel after the failed restart.
    let printed = CLIENT_24_03.cli(&stack, port, &["session", "logs", "opsreal3"]);
    assert!(printed.contains("my logs"), "{printed}");

    drop(agent);
    server.stop(nix::sys::signal::Signal::SIGTERM).await;
}
