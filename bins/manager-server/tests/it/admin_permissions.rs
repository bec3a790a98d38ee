//! `backend.ai admin permission list` of both official clients: the eight vfolder host
//! permissions in the reference's order, for a superadmin and for a plain user alike.

use bai_api::testing::USER;

use crate::admin_resource_policies::ALL_PERMISSIONS;
use crate::support::{CLIENT_23_09, CLIENT_24_03, Server, Settings, Stack, free_port};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_lists_the_vfolder_host_permissions() {
    let stack = Stack::with_install_guide_keypairs("admin_permissions").await;
    let port = free_port();
    let config = stack.config("manager.toml", &Settings::new(port));
    let mut server = Server::start(&stack, &config, "server");
    server.wait_ready(port).await;

    for client in [&CLIENT_24_03, &CLIENT_23_09] {
        let printed = client.cli(&stack, port, &["admin", "permission", "list"]);
        for permission in ALL_PERMISSIONS {
            assert!(printed.contains(permission), "{}: {printed}", client.venv);
        }

        let output = client
            .command(&stack, port, "backend.ai", &["admin", "permission", "list"])
            .env("BACKEND_ACCESS_KEY", USER.access_key)
            .env("BACKEND_SECRET_KEY", USER.secret_key)
            .output()
            .expect("backend.ai runs");
        let printed = crate::support::printed(&output);
        assert!(output.status.success(), "{}: {printed}", client.venv);
        let listed: Vec<usize> = ALL_PERMISSIONS
            .iter()
            .map(|permission| printed.find(permission).expect(permission))
            .collect();
        assert!(
            listed.is_sorted(),
            "{}: not in order: {printed}",
            client.venv
        );
    }
}
