//! The official clients' image administration against our server: `admin image alias` and
//! `dealias` (seen in `admin image list`), `admin image rescan -r REGISTRY` of the halfstack's
//! registry (a background task followed through `/events/background-task` until the images are in
//! the database), and `forget_image` / `forget_image_by_id` through the clients' GraphQL call;
//! a plain user is refused what only admins may do, and may forget only their own customized
//! image. Of 24.3.11 (Python 3.12) and 23.9.10 (Python 3.11).

use std::process::Output;

use crate::support::{
    CLIENT_23_09, CLIENT_24_03, Client, PYTHON_IMAGE, Server, Settings, Stack, free_port, printed,
};
use bai_db_models::entities::images;
use bai_db_models::fixtures::{self, FixtureFile};
use bai_etcd_store::Scope;
use bai_registry_scanner::testing::{Pusher, Shape, TestImage, TestPlatform, kernel_labels};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

const USER_ACCESS_KEY: &str = "AKIANABBDUSEREXAMPLE";
const USER_SECRET_KEY: &str = "C8qnIo29EZvXkPK_MXcuAakYTy4NYrxwmCEyNPlf";
const USER_UUID: &str = "dfa9da54-4b28-432f-be29-c0d680c7a412";
const PYTHON: &str = "0e0b7ab4-3d0c-4bd8-8d8b-2b6a6b1d0a11";
const CUSTOMIZED: &str = "0e0b7ab4-3d0c-4bd8-8d8b-2b6a6b1d0a12";
/// The halfstack's registry, as `config/docker/registry/{quoted name}` names it.
const REGISTRY_KEY: &str = "config/docker/registry/127.0.0.1%3A8130";
const REGISTRY_NAME: &str = "127.0.0.1:8130";
const REGISTRY_URL: &str = "http://127.0.0.1:8130";
/// The repository the test pushes; both clients' tests push the same content.
const REPOSITORY: &str = "bai-it/image-mutations";

/// Prints the answer of one GraphQL request through the client's `Admin.query` as JSON, or
/// `{"error": ...}` when the client raised.
const QUERY: &str = r#"
import json, sys
from ai.backend.client.session import Session
with Session() as session:
    try:
        answer = session.Admin.query(sys.argv[1], json.loads(sys.argv[2]))
    except Exception as error:
        answer = {"error": str(error)}
print(json.dumps(answer))
"#;

/// The python image and a customized image of the install guide's user.
fn fixture() -> String {
    let image = |id: &str, name: &str, tag: &str, labels: Value| {
        json!({
            "id": id, "name": format!("cr.backend.ai/{name}:{tag}"), "image": name, "tag": tag,
            "registry": "cr.backend.ai", "architecture": "x86_64",
            "config_digest": format!("sha256:{:064x}", 7), "size_bytes": 123_456_789,
            "type": "COMPUTE", "labels": labels,
            "resources": {"cpu": {"min": "1", "max": null}},
        })
    };
    let images = json!([
        image(PYTHON, "stable/python", "3.9-ubuntu20.04", json!({})),
        image(
            CUSTOMIZED,
            "stable/python",
            "mine",
            json!({"ai.backend.customized-image.owner": format!("user:{USER_UUID}")}),
        ),
    ]);
    format!(r#"{{"images": {images}}}"#)
}

/// `output`'s text, asserting the exit code.
#[track_caller]
fn expect(output: &Output, code: i32) -> String {
    let text = printed(output);
    assert_eq!(output.status.code(), Some(code), "{text}");
    text
}

/// `backend.ai ARGS` as the install guide's plain user.
fn as_user(client: &Client, stack: &Stack, port: u16, program: &str, args: &[&str]) -> Output {
    client
        .command(stack, port, program, args)
        .env("BACKEND_ACCESS_KEY", USER_ACCESS_KEY)
        .env("BACKEND_SECRET_KEY", USER_SECRET_KEY)
        .output()
        .expect("the client runs")
}

/// What `backend.ai ARGS` printed as the install guide's plain user, asserting the exit code.
#[track_caller]
fn user_cli(client: &Client, stack: &Stack, port: u16, args: &[&str], code: i32) -> String {
    expect(&as_user(client, stack, port, "backend.ai", args), code)
}

/// One GraphQL request through the client (as the user when `user`), its answer parsed.
fn gql(
    client: &Client,
    stack: &Stack,
    port: u16,
    user: bool,
    query: &str,
    variables: Value,
) -> Value {
    let variables = variables.to_string();
    let args = ["-c", QUERY, query, &variables];
    let output = if user {
        as_user(client, stack, port, "python", &args)
    } else {
        client.run(stack, port, "python", &args)
    };
    let text = expect(&output, 0);
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|error| panic!("no JSON ({error}): {text}"))
}

/// The aliases `admin image list` shows of the python image.
fn python_aliases(client: &Client, stack: &Stack, port: u16) -> Value {
    let listed = client.cli_json(stack, port, &["admin", "image", "list"]);
    listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|item| item["name"] == "stable/python" && item["tag"] == "3.9-ubuntu20.04")
        .map(|item| item["aliases"].clone())
        .unwrap_or(Value::Null)
}

async fn push_test_images() {
    let pusher = Pusher::new(REGISTRY_URL);
    for tag in ["1.0", "2.0"] {
        let image = TestImage::new(
            REPOSITORY,
            tag,
            Shape::SingleArch,
            vec![TestPlatform::linux("amd64", kernel_labels())],
        );
        pusher
            .push(&image)
            .await
            .unwrap_or_else(|error| panic!("pushing into {REGISTRY_URL}: {error}"));
    }
}

async fn check(client: &Client, label: &str) {
    let stack = Stack::with_install_guide_keypairs(label).await;
    for (key, value) in [
        (REGISTRY_KEY.to_owned(), REGISTRY_URL),
        (format!("{REGISTRY_KEY}/type"), "docker"),
    ] {
        stack
            .store
            .put(&key, value, Scope::Global)
            .await
            .expect("configuring the registry");
    }
    let file = FixtureFile::parse("images.json", &fixture()).expect("fixture");
    fixtures::populate(&stack.db.connection, &file)
        .await
        .expect("loading the images");
    let port = free_port();
    let config = stack.config("manager.toml", &Settings::new(port));
    let mut server = Server::start(&stack, &config, "server");
    server.wait_ready(port).await;

    // Aliases.
    // `--arch` sends `architecture` as a variable the query does not declare.
    let printed = client.cli(
        &stack,
        port,
        &[
            "admin",
            "image",
            "alias",
            "py3",
            PYTHON_IMAGE,
            "--arch",
            "x86_64",
        ],
    );
    assert!(
        printed.contains(&format!("An alias has created: py3 -> {PYTHON_IMAGE}")),
        "{printed}"
    );
    assert_eq!(python_aliases(client, &stack, port), json!(["py3"]));
    let printed = client.cli(
        &stack,
        port,
        &["admin", "image", "alias", "py3", PYTHON_IMAGE],
    );
    assert!(
        printed.contains("Aliasing has failed: alias \"py3\" already exists"),
        "{printed}"
    );
    let refused = user_cli(
        client,
        &stack,
        port,
        &["admin", "image", "alias", "mine", PYTHON_IMAGE],
        0,
    );
    assert!(
        refused.contains("Aliasing has failed: no permission to execute alias_image"),
        "{refused}"
    );
    let refused = user_cli(
        client,
        &stack,
        port,
        &["admin", "image", "dealias", "py3"],
        0,
    );
    assert!(
        refused.contains("Dealiasing has failed: no permission to execute dealias_image"),
        "{refused}"
    );
    let printed = client.cli(&stack, port, &["admin", "image", "dealias", "py3"]);
    assert!(
        printed.contains("The alias has been removed: py3"),
        "{printed}"
    );
    assert_eq!(python_aliases(client, &stack, port), json!([]));
    let printed = client.cli(&stack, port, &["admin", "image", "dealias", "py3"]);
    assert!(
        printed.contains("Dealiasing has failed: No such alias"),
        "{printed}"
    );

    // Rescans: refused to a user and for an unknown registry; the halfstack's registry read in
    // a background task the client follows to its end.
    let refused = user_cli(
        client,
        &stack,
        port,
        &["admin", "image", "rescan", "-r", REGISTRY_NAME],
        1,
    );
    assert!(
        refused
            .contains("Failed to begin registry scanning: no permission to execute rescan_images"),
        "{refused}"
    );
    let refused = expect(
        &client.run(
            &stack,
            port,
            "backend.ai",
            &["admin", "image", "rescan", "-r", "nowhere.example.com"],
        ),
        1,
    );
    assert!(
        refused.contains("Failed to begin registry scanning:") && refused.contains("nowhere"),
        "{refused}"
    );
    push_test_images().await;
    let printed = client.cli(
        &stack,
        port,
        &["admin", "image", "rescan", "-r", REGISTRY_NAME],
    );
    assert!(
        printed.contains("Started updating the image metadata from the configured registries."),
        "{printed}"
    );
    assert!(printed.contains("Finished registry scanning."), "{printed}");
    let scanned: Vec<String> = images::Entity::find()
        .filter(images::Column::Registry.eq(REGISTRY_NAME))
        .all(&stack.db.connection)
        .await
        .expect("images")
        .into_iter()
        .map(|image| image.name)
        .collect();
    for tag in ["1.0", "2.0"] {
        let name = format!("{REGISTRY_NAME}/{REPOSITORY}:{tag}");
        assert!(scanned.contains(&name), "{name} not in {scanned:?}");
    }

    // Forgetting: a user only their own customized image.
    let forget = "mutation($reference: String!, $architecture: String!) { \
                  forget_image(reference: $reference, architecture: $architecture) { \
                  ok msg image { name tag } } }";
    let by_id = "mutation($image_id: String!) { \
                 forget_image_by_id(image_id: $image_id) { ok msg image { row_id tag } } }";
    let python = json!({"reference": PYTHON_IMAGE, "architecture": "x86_64"});
    assert_eq!(
        gql(client, &stack, port, true, forget, python.clone()),
        json!({"forget_image": {"ok": false, "msg": "Forbidden", "image": null}})
    );
    assert_eq!(
        gql(
            client,
            &stack,
            port,
            true,
            by_id,
            json!({"image_id": CUSTOMIZED})
        ),
        json!({"forget_image_by_id": {
            "ok": true, "msg": "", "image": {"row_id": CUSTOMIZED, "tag": "mine"},
        }})
    );
    assert_eq!(
        gql(client, &stack, port, false, forget, python),
        json!({"forget_image": {
            "ok": true, "msg": "", "image": {"name": "stable/python", "tag": "3.9-ubuntu20.04"},
        }})
    );
    let missing = gql(
        client,
        &stack,
        port,
        false,
        by_id,
        json!({"image_id": CUSTOMIZED}),
    );
    assert!(
        missing["error"]
            .as_str()
            .is_some_and(|error| error.contains("No such image.")),
        "{missing}"
    );
    let left = images::Entity::find()
        .filter(images::Column::Registry.eq("cr.backend.ai"))
        .all(&stack.db.connection)
        .await
        .expect("images");
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn image_mutations_of_24_3_11() {
    check(&CLIENT_24_03, "imgmut2403").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn image_mutations_of_23_9_10() {
    check(&CLIENT_23_09, "imgmut2309").await;
}
