//! Error logs end to end: `agent_error` events on the bus (as a 24.03 and a 23.09 agent spell
//! them) filed by `manager-server` as error logs, which `backend.ai server-logs list` of both
//! official clients prints.

use bai_events::{Event, EventProducer, MANAGER_GROUP};
use bai_redis::StreamDb;
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;

use crate::support::{CLIENT_23_09, CLIENT_24_03, Server, Settings, Stack, free_port};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_errors_show_up_in_the_official_clients_server_logs() {
    let stack = Stack::with_install_guide_keypairs("error_logs").await;
    let port = free_port();
    let config = stack.config("manager.toml", &Settings::new(port));
    let mut server = Server::start(&stack, &config, "server");
    server.wait_ready(port).await;
    let db = &stack.db.connection;
    let superadmin: String = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            "SELECT uuid::text AS uuid FROM users WHERE email = 'admin@lablup.com'",
        ))
        .await
        .expect("query")
        .expect("the superadmin")
        .try_get("", "uuid")
        .expect("uuid");

    let stream = StreamDb::connect(&stack.redis.config())
        .await
        .expect("Redis");
    // The manager's group may not be made yet when the server answers: made here, it gets the
    // events either way.
    stream.ensure_group(MANAGER_GROUP).await.expect("the group");
    let producer = EventProducer::new(stream);
    producer
        .produce(
            &Event::AgentError {
                message: "DockerError(500, 'no space left on device')".to_owned(),
                traceback: Some("Traceback (most recent call last):\n  ...".to_owned()),
                user: json!(superadmin),
                context_env: json!({"kernel_id": "k-1"}),
                severity: "ERROR".to_owned(),
            },
            "i-agent-2403",
        )
        .await
        .expect("produce");
    producer
        .produce(
            &Event::AgentError {
                message: "FileNotFoundError: /var/run/docker.sock".to_owned(),
                traceback: None,
                user: serde_json::Value::Null,
                context_env: json!({}),
                severity: "critical".to_owned(),
            },
            "i-agent-2309",
        )
        .await
        .expect("produce");
    let filed = server
        .wait_until(|| async {
            let row = db
                .query_one(Statement::from_string(
                    db.get_database_backend(),
                    "SELECT count(*) AS filed FROM error_logs",
                ))
                .await
                .expect("query")?;
            let filed: i64 = row.try_get("", "filed").expect("count");
            (filed == 2).then_some(filed)
        })
        .await;
    assert_eq!(filed, 2);

    for client in [&CLIENT_24_03, &CLIENT_23_09] {
        let printed = client.cli(&stack, port, &["server-logs", "list", "-l", "10"]);
        assert!(printed.contains("Total log count: 2"), "{printed}");
        assert!(
            printed.contains(&format!("ERROR i-agent-2403 {superadmin}")),
            "{printed}"
        );
        assert!(
            printed.contains("DockerError(500, 'no space left on device')"),
            "{printed}"
        );
        assert!(printed.contains("CRITICAL i-agent-2309 None"), "{printed}");
        assert!(
            printed.contains("FileNotFoundError: /var/run/docker.sock"),
            "{printed}"
        );
    }
    // `--mark-read` marks what it listed.
    CLIENT_24_03.cli(&stack, port, &["server-logs", "list", "--mark-read"]);
    let unread: i64 = db
        .query_one(Statement::from_string(
            db.get_database_backend(),
            "SELECT count(*) AS unread FROM error_logs WHERE NOT is_read",
        ))
        .await
        .expect("query")
        .expect("a row")
        .try_get("", "unread")
        .expect("count");
    assert_eq!(unread, 0);
    server.stop(nix::sys::signal::Signal::SIGTERM).await;
}
