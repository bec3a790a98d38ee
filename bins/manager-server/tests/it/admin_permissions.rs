//! `backend.ai admin permission list` of both official clients: the eight vfolder host
//! permissions in the reference's order, for a superadmin and for a plain user alike.

use crate::support::{CLIENT_23_09, CLIENT_24_03, Server, Settings, Stack, free_port};

const USER_ACCESS_KEY: &str = "AKIANABBDUSEREXAMPLE";
const USER_SECRET_KEY: &str = "C8qnIo29EZvXkPK_MXcuAakYTy4NYrxwmCEyNPlf";

const PERMISSIONS: [&str; 8] = [
    "create-vfolder",
    "modify-vfolder",
    "delete-vfolder",
    "mount-in-session",
    "upload-file",
    "download-file",
    "invite-others",
    "set-user-specific-permission",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_lists_the_vfolder_host_permissions() {
    let stack = Stack::with_install_guide_keypairs("admin_permissions").await;
    let port = free_port();
    let config = stack.config("manager.toml", &Settings::new(port));
    let mut server = Server::start(&stack, &config, "server");
    server.wait_ready(port).await;

    for client in [&CLIENT_24_03, &CLIENT_23_09] {
        let printed = client.cli(&stack, port, &["admin", "permission", "list"]);
        for permission in PERMISSIONS {
            assert!(printed.contains(permission), "{}: {printed}", client.venv);
        }

        let output = client
            .command(&stack, port, "backend.ai", &["admin", "permission", "list"])
            .env("BACKEND_ACCESS_KEY", USER_ACCESS_KEY)
            .env("BACKEND_SECRET_KEY", USER_SECRET_KEY)
            .output()
            .expect("backend.ai runs");
        let printed = crate::support::printed(&output);
        assert!(output.status.success(), "{}: {printed}", client.venv);
        let listed: Vec<usize> = PERMISSIONS
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
