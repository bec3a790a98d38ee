//! The official clients' `backend.ai dotfile create|list|get|update|delete` against our server,
//! for the keypair's (`/user-config`), the domain's (`-d`, `/domain-config`) and the project's
//! (`-g`, `/group-config`) dotfiles; and a session created afterwards, whose kernels are given
//! them in the order the reference's `prepare_dotfiles` puts them. A domain admin writes the
//! domain's dotfiles, which its users read but may not write.

use bai_api::testing::{DOMAIN_ADMIN, ExampleUser, USER};
use bai_db_models::entities::kernels;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

use crate::session_support::{create_session, session_row, stack_with_server};
use crate::support::{CLIENT_23_09, CLIENT_24_03, Client, Stack, created_session_id, printed};

/// `dotfile create PATH --perm PERM -f FILE {scope}` with `content` in FILE.
fn create(client: &Client, stack: &Stack, port: u16, path: &str, content: &str, scope: &[&str]) {
    let file = stack.path(&format!(
        "dotfile-{}-{}",
        client.venv,
        path.trim_start_matches('.')
    ));
    std::fs::write(&file, content).expect("writing the dotfile's content");
    let file = file.to_str().expect("a UTF-8 path");
    let mut args = vec!["dotfile", "create", path, "--perm", "644", "-f", file];
    args.extend_from_slice(scope);
    let printed = client.cli(stack, port, &args);
    assert!(
        printed.contains(&format!("Dotfile {path} created and ready")),
        "{}: {printed}",
        client.venv
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_clients_manage_dotfiles_and_a_new_session_gets_them() {
    let (stack, mut server, port) = stack_with_server("dotfiles_clients").await;
    let scopes: [&[&str]; 3] = [&[], &["-d", "default"], &["-g", "default", "-d", "default"]];

    for client in [&CLIENT_24_03, &CLIENT_23_09] {
        for scope in scopes {
            let path = format!(".{}rc", client.venv);
            create(client, &stack, port, &path, "first line\n", scope);
            let mut args = vec!["dotfile", "list"];
            args.extend_from_slice(scope);
            let listed = client.cli(&stack, port, &args);
            assert!(
                listed.contains(&path),
                "{} {scope:?}: {listed}",
                client.venv
            );
            assert!(
                listed.contains("first line"),
                "{} {scope:?}: {listed}",
                client.venv
            );

            let file = stack.path(&format!("update-{}", client.venv));
            std::fs::write(&file, "second line\n").expect("writing the new content");
            let mut args = vec![
                "dotfile",
                "update",
                &path,
                "--perm",
                "600",
                "-f",
                file.to_str().expect("a UTF-8 path"),
            ];
            args.extend_from_slice(scope);
            let printed = client.cli(&stack, port, &args);
            assert!(
                printed.contains(&format!("Dotfile {path} updated")),
                "{printed}"
            );

            let mut args = vec!["dotfile", "get", &path];
            args.extend_from_slice(scope);
            let got = client.cli(&stack, port, &args);
            assert!(
                got.contains("second line"),
                "{} {scope:?}: {got}",
                client.venv
            );

            let mut args = vec!["dotfile", "delete", "-f", &path];
            args.extend_from_slice(scope);
            let printed = client.cli(&stack, port, &args);
            assert!(
                printed.contains(&format!("Dotfile {path} deleted")),
                "{printed}"
            );
            let mut args = vec!["dotfile", "list"];
            args.extend_from_slice(scope);
            let listed = client.cli(&stack, port, &args);
            assert!(
                listed.contains("There is no dotfiles created yet."),
                "{} {scope:?}: {listed}",
                client.venv
            );
        }
    }

    // A reserved path is refused, and the client says why.
    let file = stack.path("reserved");
    std::fs::write(&file, "x").expect("writing");
    let refused = CLIENT_24_03.run(
        &stack,
        port,
        "backend.ai",
        &[
            "dotfile",
            "create",
            ".ssh",
            "-f",
            file.to_str().expect("UTF-8"),
        ],
    );
    assert!(!refused.status.success());
    let said = crate::support::printed(&refused);
    assert!(
        said.contains("dotfile path is reserved for internal operations."),
        "{said}"
    );

    // One of each scope, then a session: the keypair's first, then the project's and the
    // domain's, reversed.
    create(&CLIENT_24_03, &stack, port, ".bashrc", "echo mine\n", &[]);
    create(
        &CLIENT_24_03,
        &stack,
        port,
        ".npmrc",
        "project\n",
        scopes[2],
    );
    create(
        &CLIENT_24_03,
        &stack,
        port,
        ".condarc",
        "domain\n",
        scopes[1],
    );
    let printed = create_session(&CLIENT_24_03, &stack, port, "dotted", &["--enqueue-only"]);
    let session = session_row(&stack, &created_session_id(&printed)).await;
    let kernel = kernels::Entity::find()
        .filter(kernels::Column::SessionId.eq(session.id))
        .one(&stack.db.connection)
        .await
        .expect("kernels")
        .expect("the kernel");
    let internal_data = kernel.internal_data.expect("internal data");
    assert_eq!(
        internal_data["dotfiles"],
        json!([
            {"path": ".condarc", "perm": "644", "data": "domain\n"},
            {"path": ".npmrc", "perm": "644", "data": "project\n"},
            {"path": ".bashrc", "perm": "644", "data": "echo mine\n"},
        ])
    );
    assert!(server.is_running(), "{}", server.stderr());
}

/// `backend.ai ARGS` of `client` with `who`'s keypair.
fn run_as(
    client: &Client,
    stack: &Stack,
    port: u16,
    who: &ExampleUser,
    args: &[&str],
) -> std::process::Output {
    client
        .command(stack, port, "backend.ai", args)
        .env("BACKEND_ACCESS_KEY", who.access_key)
        .env("BACKEND_SECRET_KEY", who.secret_key)
        .output()
        .expect("backend.ai runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domain_admins_write_their_domains_dotfiles_and_users_only_read_them() {
    let (stack, _server, port) = stack_with_server("dotfiles_roles").await;
    let content = stack.path("content");
    std::fs::write(&content, "shared\n").expect("writing the dotfile's content");
    let content = content.to_str().expect("a UTF-8 path");

    for client in [&CLIENT_24_03, &CLIENT_23_09] {
        let path = format!(".{}-domainrc", client.venv);
        let output = run_as(
            client,
            &stack,
            port,
            &DOMAIN_ADMIN,
            &["dotfile", "create", &path, "-f", content, "-d", "default"],
        );
        let said = printed(&output);
        assert!(output.status.success(), "{}: {said}", client.venv);

        let output = run_as(
            client,
            &stack,
            port,
            &USER,
            &["dotfile", "list", "-d", "default"],
        );
        let listed = printed(&output);
        assert!(
            output.status.success() && listed.contains(&path),
            "{}: {listed}",
            client.venv
        );

        let output = run_as(
            client,
            &stack,
            port,
            &USER,
            &[
                "dotfile", "create", ".userrc", "-f", content, "-d", "default",
            ],
        );
        let said = printed(&output);
        assert!(!output.status.success(), "{}: {said}", client.venv);
        assert!(said.contains("401"), "{}: {said}", client.venv);

        let output = run_as(
            client,
            &stack,
            port,
            &USER,
            &["dotfile", "delete", "-f", &path, "-d", "default"],
        );
        let said = printed(&output);
        assert!(!output.status.success(), "{}: {said}", client.venv);
    }
}
