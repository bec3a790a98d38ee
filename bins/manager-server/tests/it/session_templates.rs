//! The official clients' `backend.ai session-template create|list|get|update|delete` against our
//! server, as the superadmin, a domain admin and a user (what each may do on behalf of whom, and
//! which templates each one's list shows, and that a user reaches no template of a project it is
//! not in), and `backend.ai session create-from-template`, whose session gets the template's
//! image, resources and environment and runs on agent-sim.

use bai_agent_sim::RpcOptions;
use bai_api::testing::{DOMAIN_ADMIN, ExampleUser, USER};
use bai_db_models::entities::enums::SessionStatus;
use bai_db_models::entities::sessions;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::agents::{Simulated, agent_toml};
use crate::session_support::{stack_with_server, wait_for_agent};
use crate::support::{
    ACCESS_KEY, CLIENT_23_09, CLIENT_24_03, Client, PYTHON_IMAGE, Stack, printed,
};

/// A payload of one task template named `name` for [`PYTHON_IMAGE`].
fn payload(name: &str, resources: Value) -> String {
    json!([{
        "template": {
            "api_version": "6",
            "kind": "taskTemplate",
            "metadata": {"name": name, "tag": "from-template"},
            "spec": {
                "session_type": "interactive",
                "kernel": {
                    "image": PYTHON_IMAGE,
                    "architecture": "x86_64",
                    "environ": {"GREETING": "hello"},
                },
                "resources": resources,
            },
        },
    }])
    .to_string()
}

/// `backend.ai ARGS` of `client`, with `who`'s keypair (`None`: the superadmin's).
fn run_as(
    client: &Client,
    stack: &Stack,
    port: u16,
    who: Option<&ExampleUser>,
    args: &[&str],
) -> std::process::Output {
    let mut command = client.command(stack, port, "backend.ai", args);
    if let Some(who) = who {
        command
            .env("BACKEND_ACCESS_KEY", who.access_key)
            .env("BACKEND_SECRET_KEY", who.secret_key);
    }
    command.output().expect("backend.ai runs")
}

/// `session-template create -f FILE ARGS` with `content` in FILE, asserting success: the new id.
fn create(
    client: &Client,
    stack: &Stack,
    port: u16,
    who: Option<&ExampleUser>,
    content: &str,
    args: &[&str],
) -> String {
    let file = stack.path(&format!("template-{}-{}", client.venv, fastrand_suffix()));
    std::fs::write(&file, content).expect("writing the template");
    let mut full = vec![
        "session-template",
        "create",
        "-f",
        file.to_str().expect("a UTF-8 path"),
    ];
    full.extend_from_slice(args);
    let output = run_as(client, stack, port, who, &full);
    let said = printed(&output);
    assert!(output.status.success(), "{}: {said}", client.venv);
    said.split_whitespace()
        .skip_while(|word| *word != "template")
        .nth(1)
        .unwrap_or_else(|| panic!("no template id in {said}"))
        .to_owned()
}

/// A file name suffix no earlier call of this test used.
fn fastrand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The line of a `session-template list` table that shows template `id`.
fn listed_line<'a>(listed: &'a str, id: &str) -> Option<&'a str> {
    listed.lines().find(|line| line.contains(id))
}

/// What `backend.ai ARGS` printed, asserting it succeeded (see [`run_as`]).
fn said_ok(
    client: &Client,
    stack: &Stack,
    port: u16,
    who: Option<&ExampleUser>,
    args: &[&str],
) -> String {
    let output = run_as(client, stack, port, who, args);
    let said = printed(&output);
    assert!(output.status.success(), "{} {args:?}: {said}", client.venv);
    said
}

/// The template `session-template get ID` prints.
fn got_template(
    client: &Client,
    stack: &Stack,
    port: u16,
    who: Option<&ExampleUser>,
    id: &str,
) -> Value {
    let said = said_ok(client, stack, port, who, &["session-template", "get", id]);
    serde_json::from_str(said.trim()).expect("the template as JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_clients_manage_session_templates() {
    let (stack, mut server, port) = stack_with_server("session_templates_clients").await;
    for client in [&CLIENT_24_03, &CLIENT_23_09] {
        let name = format!("tpl-{}", client.venv);
        let id = create(
            client,
            &stack,
            port,
            None,
            &payload(&name, json!({"cpu": "1", "mem": "1g"})),
            &[],
        );
        assert_eq!(id.len(), 32, "{id}");
        let list = ["session-template", "list"];
        let delete = ["session-template", "delete", "-f", id.as_str()];

        let listed = said_ok(client, &stack, port, None, &list);
        let line = listed_line(&listed, &id).unwrap_or_else(|| panic!("{id} in {listed}"));
        assert!(line.contains(&name) && line.contains("True"), "{line}");

        let got = got_template(client, &stack, port, None, &id);
        assert_eq!(got["name"], name.as_str());
        assert_eq!(got["template"]["spec"]["kernel"]["image"], PYTHON_IMAGE);
        assert_eq!(got["template"]["spec"]["mounts"], json!({}));

        let file = stack.path(&format!("update-{}", client.venv));
        std::fs::write(&file, payload("renamed", json!({"cpu": "2"}))).expect("writing");
        let file = file.to_str().expect("a UTF-8 path");
        let update = ["session-template", "update", &id, "-f", file];
        let said = said_ok(client, &stack, port, None, &update);
        assert!(
            said.contains(&format!("Task template {id} updated")),
            "{said}"
        );
        let got = got_template(client, &stack, port, None, &id);
        assert_eq!(got["name"], "renamed");
        assert_eq!(got["template"]["spec"]["resources"], json!({"cpu": "2"}));

        let said = said_ok(client, &stack, port, None, &delete);
        assert!(
            said.contains(&format!("Task template {id} deleted")),
            "{said}"
        );
        let listed = said_ok(client, &stack, port, None, &list);
        assert!(listed_line(&listed, &id).is_none());
        // Deleted once: the second time there is no such template.
        let said = printed(&run_as(client, &stack, port, None, &delete));
        assert!(said.contains("404"), "{}: {said}", client.venv);
    }

    // A template that is not one: the 400 names the field.
    let output = {
        let file = stack.path("bad-template");
        std::fs::write(
            &file,
            json!([{"template": {"api_version": "6", "kind": "taskTemplate",
                                 "metadata": {"name": "bad"}, "spec": {"kernel": {}}}}])
            .to_string(),
        )
        .expect("writing");
        run_as(
            &CLIENT_24_03,
            &stack,
            port,
            None,
            &[
                "session-template",
                "create",
                "-f",
                file.to_str().expect("UTF-8"),
            ],
        )
    };
    let said = printed(&output);
    assert!(!output.status.success(), "{said}");
    assert!(
        said.contains("400") && said.contains("template.spec.kernel.image"),
        "{said}"
    );

    // YAML works as well as JSON.
    let yaml = format!(
        "template:\n  api_version: '6'\n  kind: task_template\n  metadata:\n    name: yaml-tpl\n  \
         spec:\n    kernel:\n      image: {PYTHON_IMAGE}\n"
    );
    let id = create(&CLIENT_24_03, &stack, port, None, &yaml, &[]);
    let got = got_template(&CLIENT_24_03, &stack, port, None, &id);
    assert_eq!(got["name"], "yaml-tpl");
    assert_eq!(got["template"]["spec"]["session_type"], "interactive");
    assert!(server.is_running(), "{}", server.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_decide_whose_templates_one_writes_and_sees() {
    let (stack, _server, port) = stack_with_server("session_templates_roles").await;
    for client in [&CLIENT_24_03, &CLIENT_23_09] {
        let users = create(
            client,
            &stack,
            port,
            Some(&USER),
            &payload("users-own", json!({"cpu": "1"})),
            &[],
        );
        // A domain admin writes for a user of its domain; the template is the user's.
        let on_behalf = create(
            client,
            &stack,
            port,
            Some(&DOMAIN_ADMIN),
            &payload("for-user", json!({"cpu": "1"})),
            &["-o", USER.access_key],
        );
        let admins = create(
            client,
            &stack,
            port,
            Some(&DOMAIN_ADMIN),
            &payload("admins-own", json!({"cpu": "1"})),
            &[],
        );

        // A user may not act for anyone else, and a domain admin not for a superadmin.
        let file = stack.path("refused");
        std::fs::write(&file, payload("refused", json!({}))).expect("writing");
        let file = file.to_str().expect("UTF-8");
        for (who, owner) in [
            (&USER, DOMAIN_ADMIN.access_key),
            (&DOMAIN_ADMIN, ACCESS_KEY),
        ] {
            let output = run_as(
                client,
                &stack,
                port,
                Some(who),
                &["session-template", "create", "-f", file, "-o", owner],
            );
            let said = printed(&output);
            assert!(!output.status.success(), "{}: {said}", client.venv);
            assert!(said.contains("403"), "{}: {said}", client.venv);
        }

        // The user sees its own (owner) and the project's other templates (not owner).
        let list = ["session-template", "list"];
        let listed = said_ok(client, &stack, port, Some(&USER), &list);
        for id in [&users, &on_behalf] {
            let line = listed_line(&listed, id).unwrap_or_else(|| panic!("{id}: {listed}"));
            assert!(line.contains("True"), "{line}");
        }
        let line = listed_line(&listed, &admins).unwrap_or_else(|| panic!("{listed}"));
        assert!(line.contains("False"), "{line}");

        // The domain admin owns every template of its domain's projects.
        let listed = said_ok(client, &stack, port, Some(&DOMAIN_ADMIN), &list);
        for id in [&users, &on_behalf, &admins] {
            let line = listed_line(&listed, id).unwrap_or_else(|| panic!("{id}: {listed}"));
            assert!(line.contains("True"), "{line}");
        }

        // The superadmin's `--list-all` shows everyone's, its own flag for none of them.
        let list_all = ["session-template", "list", "--list-all"];
        let listed = said_ok(client, &stack, port, None, &list_all);
        for id in [&users, &on_behalf, &admins] {
            assert!(listed_line(&listed, id).is_some(), "{id}: {listed}");
        }
        for id in [users, on_behalf, admins] {
            said_ok(
                client,
                &stack,
                port,
                None,
                &["session-template", "delete", "-f", &id],
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_reaches_no_template_of_a_project_it_is_not_in() {
    let (stack, _server, port) = stack_with_server("session_templates_private").await;
    let private_project = "6c3b1a6e-3f4e-4c43-9d5f-5b0d2f0b7a01";
    stack
        .db
        .connection
        .execute_unprepared(&format!(
            "INSERT INTO groups (id, name, is_active, domain_name, total_resource_slots, \
             allowed_vfolder_hosts, dotfiles, resource_policy, type) VALUES \
             ('{private_project}', 'private', true, 'default', '{{}}', '{{}}', '\\x90', \
             'default', 'general')"
        ))
        .await
        .expect("a project without members");
    let mut entries: Value =
        serde_json::from_str(&payload("private", json!({"cpu": "1"}))).expect("JSON");
    entries[0]["group_id"] = json!(private_project);
    let update = stack.path("private-update");
    std::fs::write(&update, payload("renamed", json!({"cpu": "2"}))).expect("writing");
    let update = update.to_str().expect("UTF-8");
    for client in [&CLIENT_24_03, &CLIENT_23_09] {
        let id = create(client, &stack, port, None, &entries.to_string(), &[]);
        let get = ["session-template", "get", id.as_str()];
        let put = ["session-template", "update", &id, "-f", update];
        let delete = ["session-template", "delete", "-f", &id];

        // To the user it is as if there were no such template: `{}`, as the reference answers
        // a missing one, and 404s.
        let got = run_as(client, &stack, port, Some(&USER), &get);
        assert_eq!(printed(&got).trim(), "{}", "{}", client.venv);
        for args in [&put[..], &delete[..]] {
            let said = printed(&run_as(client, &stack, port, Some(&USER), args));
            assert!(said.contains("404"), "{}: {said}", client.venv);
        }

        // The owner reads, changes and deletes it.
        let got = got_template(client, &stack, port, None, &id);
        assert_eq!(got["name"], "private");
        let said = said_ok(client, &stack, port, None, &put);
        assert!(
            said.contains(&format!("Task template {id} updated")),
            "{said}"
        );
        let said = said_ok(client, &stack, port, None, &delete);
        assert!(
            said.contains(&format!("Task template {id} deleted")),
            "{said}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_created_from_a_template_runs_with_its_image_and_resources() {
    let (stack, mut server, port) = stack_with_server("session_templates_sim").await;
    let config = agent_toml(
        &stack,
        &stack.path("agent"),
        "i-sim-template",
        "default",
        1.0,
        1,
    );
    let agents = Simulated::start_serving(&config, None, Some(RpcOptions::default()));
    wait_for_agent(&stack, "i-sim-template").await;

    for (client, name) in [
        (&CLIENT_24_03, "fromtpl2403"),
        (&CLIENT_23_09, "fromtpl2309"),
    ] {
        let id = create(
            client,
            &stack,
            port,
            None,
            &payload("runnable", json!({"cpu": "1", "mem": "512m"})),
            &[],
        );
        let said = client.cli(
            &stack,
            port,
            &["session", "create-from-template", "-t", name, &id],
        );
        // `create-from-template` prints the name where `create` prints the id.
        assert!(
            said.contains(&format!("Session ID {name} is created and ready")),
            "{said}"
        );
        let session = session_named(&stack, name).await;
        assert_eq!(session.status, SessionStatus::Running);
        assert_eq!(session.images, Some(vec![PYTHON_IMAGE.to_owned()]));
        // The client sends `"tag": null` when `--tag` is not given, which overrides the
        // template's tag as in the reference.
        assert_eq!(session.tag, None);
        let requested = session.requested_slots.to_json();
        assert_eq!(requested["cpu"], "1", "{requested}");
        assert_eq!(requested["mem"], "536870912", "{requested}");
        let environ = session.environ.expect("the environment");
        assert!(environ.to_string().contains("GREETING"), "{environ}");
        client.cli(&stack, port, &["session", "rm", name]);
    }
    agents.stop().await;
    server.stop(nix::sys::signal::Signal::SIGTERM).await;
}

/// The row of the session called `name`.
async fn session_named(stack: &Stack, name: &str) -> sessions::Model {
    sessions::Entity::find()
        .filter(sessions::Column::Name.eq(name))
        .one(&stack.db.connection)
        .await
        .expect("sessions")
        .unwrap_or_else(|| panic!("no session {name}"))
}
