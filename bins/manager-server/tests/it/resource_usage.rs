//! The usage reports and statistics (`/resource/usage/*`, `/resource/stats/*`) through the official
//! clients 24.3.11 and 23.9.10 against a real `manager-server`, over `kernels` rows the test
//! inserts: the CLI's `admin resource usage-per-month|usage-per-period`, and the SDK's
//! `Resource.usage_per_period`, `user_monthly_stats` and `admin_monthly_stats`.

use chrono::{Duration, Utc};
use sea_orm::ConnectionTrait;
use sea_orm::prelude::Uuid;
use serde_json::Value;

use crate::support::{
    CLIENT_23_09, CLIENT_24_03, Client, Server, Settings, Stack, free_port, printed,
};

const DEFAULT_GROUP: &str = "2de2b969-1d04-48a6-af16-0bc8adb3c831";
const ADMIN_UUID: &str = "f38dea23-50fa-42a0-b5ae-338f5f4693f4";

/// Inserts a TERMINATED kernel of the superadmin in the default project, with its session.
async fn terminated_kernel(stack: &Stack, created_at: &str, terminated_at: &str) -> Uuid {
    let (session, kernel) = (Uuid::new_v4(), Uuid::new_v4());
    let db = &stack.db.connection;
    db.execute_unprepared(&format!(
        "INSERT INTO sessions (id, name, cluster_size, domain_name, group_id, user_uuid, \
         access_key, occupying_slots, requested_slots, use_host_network, status) VALUES \
         ('{session}', 'usage-sess', 1, 'default', '{DEFAULT_GROUP}', '{ADMIN_UUID}', \
         'AKIAIOSFODNN7EXAMPLE', '{{}}', '{{}}', false, 'TERMINATED')"
    ))
    .await
    .expect("session row");
    db.execute_unprepared(&format!(
        "INSERT INTO kernels (id, session_id, session_name, cluster_size, cluster_role, \
         cluster_idx, local_rank, cluster_hostname, domain_name, group_id, user_uuid, access_key, \
         image, occupied_slots, requested_slots, occupied_shares, repl_in_port, repl_out_port, \
         stdin_port, stdout_port, use_host_network, status, created_at, terminated_at, \
         last_stat) VALUES ('{kernel}', '{session}', 'usage-sess', 1, 'main', 0, 0, 'main1', \
         'default', '{DEFAULT_GROUP}', '{ADMIN_UUID}', 'AKIAIOSFODNN7EXAMPLE', \
         'cr.backend.ai/stable/python:3.9', '{{\"cpu\": \"2\", \"mem\": \"1073741824\"}}', \
         '{{}}', '{{}}', 0, 0, 0, 0, false, 'TERMINATED', '{created_at}', '{terminated_at}', \
         '{{\"cpu_used\": {{\"current\": \"1500.5\"}}, \"io_read\": {{\"current\": \"100\"}}}}')"
    ))
    .await
    .expect("kernel row");
    kernel
}

/// The SDK's calls, printed as JSON: the period report of the default project in March 2024, and
/// the bins with sessions of the caller's and everyone's monthly statistics.
const SDK_SCRIPT: &str = r#"
import json, sys
from ai.backend.client.session import Session
from ai.backend.client.exceptions import BackendAPIError
with Session() as session:
    try:
        period = session.Resource.usage_per_period(sys.argv[1], "20240301", "20240331")
    except BackendAPIError as error:
        period = {"status": error.status, "data": error.data}
    mine = session.Resource.user_monthly_stats()
    everyone = session.Resource.admin_monthly_stats()
print(json.dumps({
    "period": period,
    "bins": len(mine),
    "mine": [b for b in mine if b["num_sessions"]["value"]],
    "everyone": [b for b in everyone if b["num_sessions"]["value"]],
}))
"#;

/// `period_in_query`: whether the client sends the period's parameters in the query string
/// (24.03) or, like the monthly ones, in a JSON body on a GET that is not read (23.09).
async fn check_usage(client: &Client, label: &str, period_in_query: bool) {
    let stack = Stack::with_install_guide_keypairs(label).await;
    let march = terminated_kernel(&stack, "2024-03-10 10:00:00+00", "2024-03-10 12:00:00+00").await;
    let now = Utc::now();
    let format = |at: chrono::DateTime<Utc>| at.format("%Y-%m-%d %H:%M:%S+00").to_string();
    let recent = terminated_kernel(
        &stack,
        &format(now - Duration::hours(3)),
        &format(now - Duration::hours(2)),
    )
    .await;
    let port = free_port();
    let config = stack.config("manager.toml", &Settings::new(port));
    let mut server = Server::start(&stack, &config, "server");
    server.wait_ready(port).await;

    // The CLI's monthly command sends its parameters as a JSON body on a GET, which the reference
    // (and we) do not read: it is refused as missing `month`, the same against the reference.
    let output = client.run(
        &stack,
        port,
        "backend.ai",
        &[
            "admin",
            "resource",
            "usage-per-month",
            "202403",
            DEFAULT_GROUP,
        ],
    );
    let shown = printed(&output);
    assert!(
        shown.contains("Input validation error") && shown.contains("month"),
        "{shown}"
    );
    let period_args = [
        "admin",
        "resource",
        "usage-per-period",
        DEFAULT_GROUP,
        "20240301",
        "20240331",
    ];
    if !period_in_query {
        let shown = printed(&client.run(&stack, port, "backend.ai", &period_args));
        assert!(
            shown.contains("Input validation error") && shown.contains("start_date"),
            "{shown}"
        );
        let results = sdk_results(client, &stack, port);
        assert_eq!(results["period"]["status"], 400, "{results}");
        assert_eq!(
            results["period"]["data"]["data"],
            serde_json::json!({"start_date": "is required"}),
            "{results}"
        );
        check_statistics(&results);
        return;
    }
    // The CLI's period command reads the list the server answers as one project (`"g_id" in
    // item`), so it reports nothing whatever the period holds; it must not fail.
    let shown = client.cli(&stack, port, &period_args);
    assert!(
        shown.contains("No usage information during the period."),
        "{shown}"
    );

    let results = sdk_results(client, &stack, port);
    let period = results["period"].as_array().expect("a list of projects");
    assert_eq!(period.len(), 1, "{results}");
    let project = &period[0];
    assert_eq!(project["project_id"], DEFAULT_GROUP);
    assert_eq!(project["group_unit"], "project");
    assert_eq!(project["kernel_id"], march.to_string());
    assert_eq!(project["user_email"], "admin@lablup.com");
    assert_eq!(project["used_time"], "2:00:00");
    assert_eq!(project["total_usage"]["cpu_allocated"], 2.0);
    assert_eq!(project["total_usage"]["cpu_used"], 1500.5);
    assert_eq!(project["total_usage"]["mem_allocated"], 1073741824);
    assert_eq!(project["total_usage"]["io_read"], 100);
    let sessions = project["sessions"].as_object().expect("sessions by id");
    assert_eq!(sessions.len(), 1);
    let session = sessions.values().next().unwrap();
    assert_eq!(
        session["kernels"][march.to_string()]["group_unit"],
        "kernel"
    );

    // March's report does not hold the recent kernel.
    assert!(
        !results["period"].to_string().contains(&recent.to_string()),
        "{results}"
    );
    check_statistics(&results);
}

/// Runs [`SDK_SCRIPT`] as the superadmin; what it printed.
fn sdk_results(client: &Client, stack: &Stack, port: u16) -> Value {
    let output = client.run(stack, port, "python", &["-c", SDK_SCRIPT, DEFAULT_GROUP]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the SDK script ({}) failed: {}\nstdout: {stdout}\nstderr: {}",
        client.venv,
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).expect("the script prints JSON")
}

/// The kernel of two hours ago spans 4 or 5 bins of the 2880, in both statistics.
fn check_statistics(results: &Value) {
    assert_eq!(results["bins"], 2880);
    for key in ["mine", "everyone"] {
        let busy = results[key].as_array().unwrap();
        assert!((4..=5).contains(&busy.len()), "{key}: {results}");
        assert_eq!(
            busy[0]["cpu_allocated"],
            serde_json::json!({"value": 2, "unit_hint": "count"})
        );
        assert_eq!(busy[0]["mem_allocated"]["value"], 1073741824);
    }
}

#[tokio::test]
async fn usage_reports_through_the_24_03_client() {
    check_usage(&CLIENT_24_03, "usage_client_2403", true).await;
}

#[tokio::test]
async fn usage_reports_through_the_23_09_client() {
    check_usage(&CLIENT_23_09, "usage_client_2309", false).await;
}
