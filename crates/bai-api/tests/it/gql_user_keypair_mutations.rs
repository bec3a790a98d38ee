//! The GraphQL user and keypair mutations on the real router: `create_user` (a user who signs in
//! and signs requests with its new keypair), `modify_user`, `delete_user`, `purge_user`,
//! `create_keypair`, `modify_keypair`, `delete_keypair`; refusals that write nothing (including a
//! refusal part-way through a transaction), the roles that may not mutate, and a frozen manager.

use crate::common::{Answer, Api, ask, data};
use axum::body::Body;
use bai_api::testing::{
    DOMAIN_ADMIN, ExampleUser, MONITOR, SUPERADMIN, TEST_API_VERSION, TEST_HOST, USER,
    signed_request,
};
use bai_db_models::fixtures::{self, FixtureFile};
use http::{Method, Request, StatusCode};
use serde_json::{Value, json};

const DEFAULT_GROUP: &str = "2de2b969-1d04-48a6-af16-0bc8adb3c831";
const MODEL_STORE: &str = "8e32dd28-d319-4e3b-8851-ea37837699a5";
const FOREIGN_GROUP: &str = "6f1a2a38-1cbb-4ac3-9d2e-3f3c8e1ad001";

const CREATE_USER: &str = "mutation($email: String!, $input: UserInput!) { create_user(email: $email, props: $input) { ok msg user { uuid email username full_name description role status status_info domain_name need_password_change sudo_session_enabled resource_policy allowed_client_ip main_access_key groups { id name } } } }";
const MODIFY_USER: &str = "mutation($email: String!, $input: ModifyUserInput!) { modify_user(email: $email, props: $input) { ok msg user { email username full_name role status status_info domain_name allowed_client_ip main_access_key groups { id name } } } }";
const DELETE_USER: &str = "mutation($email: String!) { delete_user(email: $email) { ok msg } }";
const PURGE_USER: &str = "mutation($email: String!, $input: PurgeUserInput!) { purge_user(email: $email, props: $input) { ok msg } }";
const CREATE_KEYPAIR: &str = "mutation($user_id: String!, $input: KeyPairInput!) { create_keypair(user_id: $user_id, props: $input) { ok msg keypair { access_key secret_key user_id is_active is_admin resource_policy rate_limit ssh_public_key } } }";
const MODIFY_KEYPAIR: &str = "mutation($access_key: String!, $input: ModifyKeyPairInput!) { modify_keypair(access_key: $access_key, props: $input) { ok msg } }";
const DELETE_KEYPAIR: &str =
    "mutation($access_key: String!) { delete_keypair(access_key: $access_key) { ok msg } }";
const READ_KEYPAIR: &str = "query($access_key: String) { keypair(access_key: $access_key) { access_key secret_key user_id is_active is_admin resource_policy rate_limit ssh_public_key } }";
const READ_USER: &str = "query($email: String) { user(email: $email) { email full_name role status status_info main_access_key allowed_client_ip groups { id name } } }";

/// The payload of the mutation `field`, sent by the superadmin.
async fn mutate(api: &Api, field: &str, query: &str, variables: Value) -> Value {
    data(api, &SUPERADMIN, query, variables).await[field].clone()
}

async fn stored_user(api: &Api, email: &str) -> Value {
    data(api, &SUPERADMIN, READ_USER, json!({"email": email})).await["user"].clone()
}

async fn stored_keypair(api: &Api, access_key: &str) -> Value {
    data(
        api,
        &SUPERADMIN,
        READ_KEYPAIR,
        json!({"access_key": access_key}),
    )
    .await["keypair"]
        .clone()
}

fn new_user(password: &str) -> Value {
    json!({
        "username": "",
        "password": password,
        "need_password_change": false,
        "full_name": "Kim Lablup",
        "role": "user",
        "group_ids": [DEFAULT_GROUP],
    })
}

/// Creates `email` (a user of the default project) and returns its payload.
async fn create(api: &Api, email: &str, password: &str) -> Value {
    let created = mutate(
        api,
        "create_user",
        CREATE_USER,
        json!({"email": email, "input": new_user(password)}),
    )
    .await;
    assert_eq!(created["ok"], true, "{created}");
    created
}

async fn sign_in(api: &Api, email: &str, password: &str) -> Answer {
    let body =
        json!({"type": "keypair", "domain": "default", "username": email, "password": password});
    api.send(
        Request::builder()
            .method(Method::POST)
            .uri("/auth/authorize")
            .header(http::header::HOST, TEST_HOST)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header("x-backendai-version", TEST_API_VERSION)
            .body(Body::from(body.to_string()))
            .expect("a well-formed request"),
    )
    .await
}

/// An [`ExampleUser`] signing with a keypair made at run time.
fn signer(email: &str, access_key: &str, secret_key: &str) -> ExampleUser {
    let leak = |text: &str| -> &'static str { Box::leak(text.to_owned().into_boxed_str()) };
    ExampleUser {
        email: leak(email),
        password: "",
        access_key: leak(access_key),
        secret_key: leak(secret_key),
    }
}

/// A signed `GET /auth/test`: 200 while the keypair may sign requests.
async fn signed_test(api: &Api, who: &ExampleUser) -> Answer {
    api.send(signed_request(Method::GET, "/auth/test?echo=hi", None, who))
        .await
}

/// A second domain with a project, to name a project outside the default domain.
async fn load_foreign_domain(api: &Api) {
    let text = json!({
        "domains": [{
            "name": "elsewhere", "description": "", "is_active": true,
            "total_resource_slots": {}, "allowed_vfolder_hosts": {},
            "allowed_docker_registries": []
        }],
        "groups": [{
            "id": FOREIGN_GROUP, "name": "faraway", "description": "", "is_active": true,
            "domain_name": "elsewhere", "resource_policy": "default",
            "total_resource_slots": {}, "allowed_vfolder_hosts": {}, "type": "general"
        }]
    })
    .to_string();
    let file = FixtureFile::parse("foreign.json", &text).expect("fixture parses");
    fixtures::populate(&api.cluster.database.connection, &file)
        .await
        .expect("fixture loads");
}

fn is_access_key(key: &str) -> bool {
    key.len() == 20
        && key.starts_with("AKIA")
        && key[4..]
            .bytes()
            .all(|byte| byte.is_ascii_uppercase() || (b'2'..=b'7').contains(&byte))
}

#[tokio::test]
async fn a_created_user_signs_in_and_signs_requests_with_its_new_keypair() {
    let api = Api::start("gql_mut_create_user").await;
    let created = create(&api, "kim@lablup.com", "Kim-pass-1").await;
    assert_eq!(created["msg"], "success");
    let user = &created["user"];
    let main_key = user["main_access_key"].as_str().expect("a main access key");
    assert!(is_access_key(main_key), "{main_key}");
    let uuid = user["uuid"].as_str().expect("a uuid").to_owned();
    assert_eq!(
        *user,
        json!({
            "uuid": uuid,
            "email": "kim@lablup.com",
            "username": "kim@lablup.com",
            "full_name": "Kim Lablup",
            "description": "",
            "role": "user",
            "status": "active",
            "status_info": "admin-requested",
            "domain_name": "default",
            "need_password_change": false,
            "sudo_session_enabled": false,
            "resource_policy": "default",
            "allowed_client_ip": null,
            "main_access_key": main_key,
            "groups": [
                {"id": DEFAULT_GROUP, "name": "default"},
                {"id": MODEL_STORE, "name": "model-store"},
            ],
        })
    );

    let keypair = stored_keypair(&api, main_key).await;
    let secret = keypair["secret_key"].as_str().expect("a secret key");
    assert_eq!(secret.len(), 40);
    assert!(
        keypair["ssh_public_key"]
            .as_str()
            .expect("an SSH public key")
            .starts_with("ssh-rsa AAAA")
    );
    assert_eq!(keypair["user_id"], "kim@lablup.com");
    assert_eq!(keypair["is_active"], true);
    assert_eq!(keypair["is_admin"], false);
    assert_eq!(keypair["resource_policy"], "default");
    assert_eq!(keypair["rate_limit"], 10000);

    let answer = sign_in(&api, "kim@lablup.com", "Kim-pass-1").await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.json["data"]["access_key"], main_key);
    assert_eq!(answer.json["data"]["secret_key"], secret);
    assert_eq!(answer.json["data"]["role"], "user");
    let kim = signer("kim@lablup.com", main_key, secret);
    assert_eq!(signed_test(&api, &kim).await.status, StatusCode::OK);
    let own = data(
        &api,
        &kim,
        "{ keypair { access_key user_id } }",
        Value::Null,
    )
    .await;
    assert_eq!(
        own["keypair"],
        json!({"access_key": main_key, "user_id": "kim@lablup.com"})
    );

    // An admin's main keypair is an admin keypair; an inactive user's main keypair is inactive.
    let mut props = new_user("Lee-pass-1");
    props["role"] = json!("admin");
    props["status"] = json!("inactive");
    props["username"] = json!("lee");
    props["allowed_client_ip"] = json!(["10.0.0.0/8", "192.168.*.*", "::1"]);
    props["group_ids"] = json!([]);
    let created = mutate(
        &api,
        "create_user",
        CREATE_USER,
        json!({"email": "lee@lablup.com", "input": props}),
    )
    .await;
    assert_eq!(created["ok"], true, "{created}");
    assert_eq!(created["user"]["username"], "lee");
    assert_eq!(created["user"]["status"], "inactive");
    assert_eq!(
        created["user"]["allowed_client_ip"],
        json!(["10.0.0.0/8", "192.168.0.0/16", "::1/128"])
    );
    assert_eq!(
        created["user"]["groups"],
        json!([{"id": MODEL_STORE, "name": "model-store"}])
    );
    let lee_key = created["user"]["main_access_key"].as_str().expect("a key");
    let keypair = stored_keypair(&api, lee_key).await;
    assert_eq!(keypair["is_admin"], true);
    assert_eq!(keypair["is_active"], false);
}

#[tokio::test]
async fn create_user_refusals_write_nothing() {
    let api = Api::start("gql_mut_create_refused").await;
    load_foreign_domain(&api).await;
    create(&api, "kim@lablup.com", "Kim-pass-1").await;

    let with = |field: &str, value: Value| {
        let mut props = new_user("Park-pass-1");
        props[field] = value;
        props
    };
    let cases = [
        (
            "kim@lablup.com",
            new_user("x"),
            "user \"kim@lablup.com\" already exists",
        ),
        (
            "park@lablup.com",
            with("username", json!("user")),
            "username \"user\" is taken",
        ),
        (
            "park@lablup.com",
            with("domain_name", json!("nowhere")),
            "no such domain \"nowhere\"",
        ),
        (
            "park@lablup.com",
            with("resource_policy", json!("gold")),
            "no such user resource policy \"gold\"",
        ),
        (
            "park@lablup.com",
            with("role", json!("boss")),
            "role: \"boss\" is not one of superadmin, admin, user, monitor",
        ),
        (
            "park@lablup.com",
            with("status", json!("gone")),
            "status: \"gone\" is not one of active, inactive, deleted, before-verification",
        ),
        (
            "park@lablup.com",
            with("group_ids", json!(["default"])),
            "group_ids: \"default\" is not a UUID",
        ),
        (
            "park@lablup.com",
            with("group_ids", json!(["00000000-0000-0000-0000-000000000001"])),
            "no such project 00000000-0000-0000-0000-000000000001",
        ),
        (
            "park@lablup.com",
            with("allowed_client_ip", json!(["10.0.0.1/8"])),
            "allowed_client_ip: \"10.0.0.1/8\" is not an IP address or network",
        ),
        // Refused after the user and its keypair were inserted: the transaction leaves nothing.
        (
            "park@lablup.com",
            with("group_ids", json!([DEFAULT_GROUP, FOREIGN_GROUP])),
            "project \"faraway\" (6f1a2a38-1cbb-4ac3-9d2e-3f3c8e1ad001) is not in domain \
             \"default\" of user \"park@lablup.com\"",
        ),
    ];
    for (email, props, msg) in cases {
        let refused = mutate(
            &api,
            "create_user",
            CREATE_USER,
            json!({"email": email, "input": props}),
        )
        .await;
        assert_eq!(
            refused,
            json!({"ok": false, "msg": msg, "user": null}),
            "{email}"
        );
    }
    assert_eq!(stored_user(&api, "park@lablup.com").await, Value::Null);
    let keypairs = data(
        &api,
        &SUPERADMIN,
        "{ keypairs(email: \"park@lablup.com\") { access_key } }",
        Value::Null,
    )
    .await;
    assert_eq!(keypairs["keypairs"], json!([]));
    let listed = data(
        &api,
        &SUPERADMIN,
        "{ user_list(limit: 100, offset: 0) { total_count } }",
        Value::Null,
    )
    .await;
    assert_eq!(
        listed["user_list"]["total_count"], 6,
        "five examples and kim"
    );
}

#[tokio::test]
async fn modify_user_changes_what_is_given_and_its_keypairs_follow_the_role() {
    let api = Api::start("gql_mut_modify_user").await;
    load_foreign_domain(&api).await;
    let created = create(&api, "kim@lablup.com", "Kim-pass-1").await;
    let main_key = created["user"]["main_access_key"]
        .as_str()
        .expect("a key")
        .to_owned();
    let modify = |input: Value| {
        let api = &api;
        async move {
            mutate(
                api,
                "modify_user",
                MODIFY_USER,
                json!({"email": "kim@lablup.com", "input": input}),
            )
            .await
        }
    };

    let modified = modify(json!({"full_name": "Kim Minji", "role": "admin"})).await;
    assert_eq!(modified["ok"], true, "{modified}");
    assert_eq!(modified["msg"], "success");
    assert_eq!(modified["user"]["full_name"], "Kim Minji");
    assert_eq!(modified["user"]["role"], "admin");
    assert_eq!(modified["user"]["username"], "kim@lablup.com", "unchanged");
    assert_eq!(stored_keypair(&api, &main_key).await["is_admin"], true);

    let modified = modify(json!({"role": "user", "group_ids": [MODEL_STORE]})).await;
    assert_eq!(modified["ok"], true, "{modified}");
    assert_eq!(
        modified["user"]["groups"],
        json!([{"id": MODEL_STORE, "name": "model-store"}])
    );
    assert_eq!(stored_keypair(&api, &main_key).await["is_admin"], false);

    let modified = modify(json!({"allowed_client_ip": ["10.1.0.0/16"], "full_name": null})).await;
    assert_eq!(
        modified["user"]["allowed_client_ip"],
        json!(["10.1.0.0/16"])
    );
    assert_eq!(modified["user"]["full_name"], Value::Null);
    let modified = modify(json!({"allowed_client_ip": null})).await;
    assert_eq!(modified["user"]["allowed_client_ip"], Value::Null);

    // The legacy is_active, and a status change noted as the admin's.
    let modified = modify(json!({"is_active": false})).await;
    assert_eq!(modified["user"]["status"], "inactive");
    assert_eq!(modified["user"]["status_info"], "admin-requested");
    let modified = modify(json!({"status": "active"})).await;
    assert_eq!(modified["user"]["status"], "active");

    let modified = modify(json!({"password": "Kim-pass-2"})).await;
    assert_eq!(modified["ok"], true, "{modified}");
    assert_eq!(
        sign_in(&api, "kim@lablup.com", "Kim-pass-1").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        sign_in(&api, "kim@lablup.com", "Kim-pass-2").await.status,
        StatusCode::OK
    );

    // Another keypair of the user becomes its main keypair and signs requests.
    let second = mutate(
        &api,
        "create_keypair",
        CREATE_KEYPAIR,
        json!({"user_id": "kim@lablup.com", "input": {"resource_policy": "default", "rate_limit": 100}}),
    )
    .await;
    assert_eq!(second["ok"], true, "{second}");
    let second_key = second["keypair"]["access_key"].as_str().expect("a key");
    let modified = modify(json!({"main_access_key": second_key})).await;
    assert_eq!(modified["user"]["main_access_key"], second_key);
    let kim = signer(
        "kim@lablup.com",
        second_key,
        second["keypair"]["secret_key"].as_str().expect("a secret"),
    );
    assert_eq!(signed_test(&api, &kim).await.status, StatusCode::OK);

    for (input, msg) in [
        (json!({}), "nothing to update"),
        (json!({"group_ids": []}), "nothing to update"),
        (
            json!({"main_access_key": USER.access_key}),
            "Cannot set another user's access key as the main access key.",
        ),
        (
            json!({"main_access_key": "AKIANOSUCHKEY"}),
            "Cannot set non-existing access key as the main access key.",
        ),
        (
            json!({"domain_name": "nowhere"}),
            "no such domain \"nowhere\"",
        ),
        (json!({"username": "user"}), "username \"user\" is taken"),
        (
            json!({"role": "boss"}),
            "role: \"boss\" is not one of superadmin, admin, user, monitor",
        ),
        // The name changes before the project is refused: the transaction undoes it.
        (
            json!({"full_name": "Changed", "group_ids": [FOREIGN_GROUP]}),
            "project \"faraway\" (6f1a2a38-1cbb-4ac3-9d2e-3f3c8e1ad001) is not in domain \
             \"default\" of user \"kim@lablup.com\"",
        ),
    ] {
        let refused = modify(input.clone()).await;
        assert_eq!(
            refused,
            json!({"ok": false, "msg": msg, "user": null}),
            "{input}"
        );
    }
    let stored = stored_user(&api, "kim@lablup.com").await;
    assert_eq!(stored["full_name"], Value::Null);
    assert_eq!(
        stored["groups"],
        json!([{"id": MODEL_STORE, "name": "model-store"}])
    );
    let refused = mutate(
        &api,
        "modify_user",
        MODIFY_USER,
        json!({"email": "nobody@lablup.com", "input": {"full_name": "x"}}),
    )
    .await;
    assert_eq!(refused["msg"], "no such user \"nobody@lablup.com\"");

    // Moving to another domain without naming projects leaves every project.
    let modified = modify(json!({"domain_name": "elsewhere"})).await;
    assert_eq!(modified["user"]["domain_name"], "elsewhere");
    assert_eq!(modified["user"]["groups"], json!([]));
    let modified = modify(json!({"group_ids": [FOREIGN_GROUP]})).await;
    assert_eq!(
        modified["user"]["groups"],
        json!([{"id": FOREIGN_GROUP, "name": "faraway"}])
    );
}

#[tokio::test]
async fn deleted_users_cannot_sign_and_purged_users_are_gone() {
    let api = Api::start("gql_mut_delete_user").await;
    let created = create(&api, "kim@lablup.com", "Kim-pass-1").await;
    let main_key = created["user"]["main_access_key"]
        .as_str()
        .expect("a key")
        .to_owned();
    let secret = stored_keypair(&api, &main_key).await["secret_key"]
        .as_str()
        .expect("a secret")
        .to_owned();
    let kim = signer("kim@lablup.com", &main_key, &secret);
    assert_eq!(signed_test(&api, &kim).await.status, StatusCode::OK);

    let deleted = mutate(
        &api,
        "delete_user",
        DELETE_USER,
        json!({"email": "kim@lablup.com"}),
    )
    .await;
    assert_eq!(deleted, json!({"ok": true, "msg": "success"}));
    let stored = stored_user(&api, "kim@lablup.com").await;
    assert_eq!(stored["status"], "deleted");
    assert_eq!(stored["status_info"], "admin-requested");
    assert_eq!(stored_keypair(&api, &main_key).await["is_active"], false);
    signed_test(&api, &kim)
        .await
        .assert_problem(401, "auth-failed", Some("Access key not found"));
    assert_eq!(
        sign_in(&api, "kim@lablup.com", "Kim-pass-1").await.status,
        StatusCode::UNAUTHORIZED
    );
    let refused = mutate(
        &api,
        "delete_user",
        DELETE_USER,
        json!({"email": "nobody@lablup.com"}),
    )
    .await;
    assert_eq!(
        refused,
        json!({"ok": false, "msg": "no such user \"nobody@lablup.com\""})
    );

    let purge = |email: &'static str| {
        let api = &api;
        async move {
            mutate(
                api,
                "purge_user",
                PURGE_USER,
                json!({"email": email, "input": {"purge_shared_vfolders": false}}),
            )
            .await
        }
    };
    assert_eq!(
        purge("kim@lablup.com").await,
        json!({"ok": true, "msg": "success"})
    );

    // Deleting a vfolder's data needs the storage proxy: a user who owns one is not purged.
    let text = json!({"vfolders": [{
        "id": "0c5c5f6e-8a8e-4d59-9d0e-2b1a3c4d5e6f", "host": "local:volume1",
        "quota_scope_id": "user:dfa9da544b28432fbe29c0d680c7a412", "name": "mydata",
        "usage_mode": "general", "permission": "rw", "ownership_type": "user",
        "user": "dfa9da54-4b28-432f-be29-c0d680c7a412", "cloneable": false, "status": "ready"
    }]})
    .to_string();
    let file = FixtureFile::parse("vfolder.json", &text).expect("fixture parses");
    fixtures::populate(&api.cluster.database.connection, &file)
        .await
        .expect("fixture loads");
    assert_eq!(
        purge(USER.email).await,
        json!({"ok": false, "msg": "user \"user@lablup.com\" owns 1 vfolder(s); purging \
                needs the storage proxy, which this manager does not use yet: delete them first"})
    );
    assert_eq!(stored_user(&api, USER.email).await["status"], "active");
    assert_eq!(
        stored_keypair(&api, USER.access_key).await["is_active"],
        true
    );
    assert_eq!(stored_user(&api, "kim@lablup.com").await, Value::Null);
    assert_eq!(stored_keypair(&api, &main_key).await, Value::Null);
    assert_eq!(
        purge("kim@lablup.com").await,
        json!({"ok": false, "msg": "no such user \"kim@lablup.com\""})
    );
}

#[tokio::test]
async fn keypairs_are_created_modified_deactivated_and_deleted() {
    let api = Api::start("gql_mut_keypairs").await;
    let created = mutate(
        &api,
        "create_keypair",
        CREATE_KEYPAIR,
        json!({"user_id": USER.email, "input": {"is_active": true, "is_admin": false, "resource_policy": "default", "rate_limit": 5000}}),
    )
    .await;
    assert_eq!(created["ok"], true, "{created}");
    assert_eq!(created["msg"], "success");
    let keypair = &created["keypair"];
    let access_key = keypair["access_key"].as_str().expect("a key").to_owned();
    assert!(is_access_key(&access_key), "{access_key}");
    assert_eq!(keypair["user_id"], USER.email);
    assert_eq!(keypair["is_active"], true);
    assert_eq!(keypair["is_admin"], false);
    assert_eq!(keypair["resource_policy"], "default");
    assert_eq!(keypair["rate_limit"], 5000);
    assert_eq!(keypair["secret_key"].as_str().map(str::len), Some(40));
    assert!(
        keypair["ssh_public_key"]
            .as_str()
            .expect("ssh")
            .starts_with("ssh-rsa ")
    );

    for (user_id, policy, msg) in [
        (
            "nobody@lablup.com",
            "default",
            "no such user \"nobody@lablup.com\"",
        ),
        (
            USER.email,
            "gold",
            "no such keypair resource policy \"gold\"",
        ),
    ] {
        let refused = mutate(
            &api,
            "create_keypair",
            CREATE_KEYPAIR,
            json!({"user_id": user_id, "input": {"resource_policy": policy, "rate_limit": 1}}),
        )
        .await;
        assert_eq!(refused, json!({"ok": false, "msg": msg, "keypair": null}));
    }

    let modify = |access_key: String, input: Value| {
        let api = &api;
        async move {
            mutate(
                api,
                "modify_keypair",
                MODIFY_KEYPAIR,
                json!({"access_key": access_key, "input": input}),
            )
            .await
        }
    };
    let modified = modify(
        access_key.clone(),
        json!({"is_admin": true, "rate_limit": 7, "resource_policy": "default"}),
    )
    .await;
    assert_eq!(modified, json!({"ok": true, "msg": "success"}));
    let stored = stored_keypair(&api, &access_key).await;
    assert_eq!(stored["is_admin"], true);
    assert_eq!(stored["rate_limit"], 7);
    for (input, msg) in [
        (
            json!({"resource_policy": "gold"}),
            "no such keypair resource policy \"gold\"",
        ),
        (
            json!({"is_active": false}),
            "no such keypair \"AKIANOSUCHKEY\"",
        ),
    ] {
        let key = if msg.contains("NOSUCHKEY") {
            "AKIANOSUCHKEY".to_owned()
        } else {
            access_key.clone()
        };
        assert_eq!(modify(key, input).await, json!({"ok": false, "msg": msg}));
    }

    // What the official client's `keypair deactivate` and `activate` send: the other fields null.
    let deactivate =
        json!({"is_active": false, "is_admin": null, "resource_policy": null, "rate_limit": null});
    let activate =
        json!({"is_active": true, "is_admin": null, "resource_policy": null, "rate_limit": null});
    assert_eq!(
        modify(USER.access_key.to_owned(), deactivate).await,
        json!({"ok": true, "msg": "success"})
    );
    signed_test(&api, &USER)
        .await
        .assert_problem(401, "auth-failed", Some("Access key not found"));
    assert_eq!(
        modify(USER.access_key.to_owned(), activate).await,
        json!({"ok": true, "msg": "success"})
    );
    assert_eq!(signed_test(&api, &USER).await.status, StatusCode::OK);
    let stored = stored_keypair(&api, USER.access_key).await;
    assert_eq!(stored["resource_policy"], "default");
    assert_eq!(stored["rate_limit"], 30000);
    assert_eq!(stored["is_admin"], false);

    let delete = |access_key: String| {
        let api = &api;
        async move {
            mutate(
                api,
                "delete_keypair",
                DELETE_KEYPAIR,
                json!({"access_key": access_key}),
            )
            .await
        }
    };
    assert_eq!(
        delete(USER.access_key.to_owned()).await,
        json!({"ok": false, "msg": "the keypair is used as main access key by any user"})
    );
    let counter = format!("keypair.concurrency_used.{access_key}");
    api.ctx
        .redis()
        .stat
        .raw()
        .set(&counter, "2")
        .await
        .expect("redis set");
    assert_eq!(
        delete(access_key.clone()).await,
        json!({"ok": true, "msg": "success"})
    );
    let left = api
        .ctx
        .redis()
        .stat
        .raw()
        .get(&counter)
        .await
        .expect("redis get");
    assert_eq!(
        left, None,
        "the deleted keypair's session count is forgotten"
    );
    assert_eq!(stored_keypair(&api, &access_key).await, Value::Null);
    assert_eq!(
        delete(access_key.clone()).await,
        json!({"ok": false, "msg": format!("no such keypair {access_key:?}")})
    );
}

#[tokio::test]
async fn only_superadmins_mutate_users_and_keypairs_and_not_while_frozen() {
    let api = Api::start("gql_mut_uk_privileges").await;
    let attempts = [
        (
            "create_user",
            CREATE_USER,
            json!({"email": "kim@lablup.com", "input": new_user("Kim-pass-1")}),
            json!({"user": null}),
        ),
        (
            "modify_user",
            MODIFY_USER,
            json!({"email": USER.email, "input": {"full_name": "Changed"}}),
            json!({"user": null}),
        ),
        (
            "delete_user",
            DELETE_USER,
            json!({"email": USER.email}),
            json!({}),
        ),
        (
            "purge_user",
            PURGE_USER,
            json!({"email": USER.email, "input": {}}),
            json!({}),
        ),
        (
            "create_keypair",
            CREATE_KEYPAIR,
            json!({"user_id": USER.email, "input": {"resource_policy": "default", "rate_limit": 1}}),
            json!({"keypair": null}),
        ),
        (
            "modify_keypair",
            MODIFY_KEYPAIR,
            json!({"access_key": USER.access_key, "input": {"is_active": false}}),
            json!({}),
        ),
        (
            "delete_keypair",
            DELETE_KEYPAIR,
            json!({"access_key": USER.access_key}),
            json!({}),
        ),
    ];
    for who in [&DOMAIN_ADMIN, &USER, &MONITOR] {
        for (field, query, variables, rest) in &attempts {
            let answer = data(&api, who, query, variables.clone()).await;
            let mut expected =
                json!({"ok": false, "msg": format!("no permission to execute {field}")});
            for (key, value) in rest.as_object().expect("an object") {
                expected[key] = value.clone();
            }
            assert_eq!(answer[*field], expected, "{field} by {}", who.email);
        }
    }
    let stored = stored_user(&api, USER.email).await;
    assert_eq!(stored["full_name"], "User Lablup");
    assert_eq!(stored["status"], "active");
    assert_eq!(
        stored_keypair(&api, USER.access_key).await["is_active"],
        true
    );
    assert_eq!(stored_user(&api, "kim@lablup.com").await, Value::Null);
    let keypairs = data(
        &api,
        &SUPERADMIN,
        &format!("{{ keypairs(email: {:?}) {{ access_key }} }}", USER.email),
        Value::Null,
    )
    .await;
    assert_eq!(
        keypairs["keypairs"],
        json!([{"access_key": USER.access_key}])
    );

    api.ctx
        .set_manager_status(bai_api::ManagerStatus::Frozen)
        .await
        .expect("freeze");
    for (field, query, variables, _) in &attempts {
        let answer = ask(&api, &SUPERADMIN, query, variables.clone()).await;
        assert_eq!(answer.json["data"][*field], Value::Null, "{}", answer.text);
        assert!(
            answer.json["errors"][0]["message"]
                .as_str()
                .expect("a message")
                .contains("frozen"),
            "{}",
            answer.text
        );
    }
    assert_eq!(stored_user(&api, "kim@lablup.com").await, Value::Null);
    assert_eq!(
        stored_keypair(&api, USER.access_key).await["is_active"],
        true
    );
}

/// An agent and a running session of `user2@lablup.com` with one kernel.
const USER2_SESSION: &str = r#"{
  "agents": [
    {"id": "i-ag1", "region": "local", "addr": "tcp://127.0.0.1:6001", "version": "24.03.11",
     "architecture": "x86_64", "available_slots": {"cpu": "8"}, "occupied_slots": {"cpu": "1"}}
  ],
  "sessions": [
    {"id": "5e55a0e1-0000-4000-8000-000000000002", "name": "theirs", "status": "RUNNING",
     "scaling_group_name": "default", "domain_name": "default",
     "group_id": "2de2b969-1d04-48a6-af16-0bc8adb3c831",
     "user_uuid": "009fb1a4-487c-4f6e-9b1b-228b94b1d040", "access_key": "AKIANATWOUSEREXAMPLE",
     "occupying_slots": {"cpu": "1"}, "requested_slots": {}}
  ],
  "kernels": [
    {"id": "ee000000-0000-4000-8000-000000000004",
     "session_id": "5e55a0e1-0000-4000-8000-000000000002", "status": "RUNNING", "agent": "i-ag1",
     "scaling_group": "default", "domain_name": "default",
     "group_id": "2de2b969-1d04-48a6-af16-0bc8adb3c831",
     "user_uuid": "009fb1a4-487c-4f6e-9b1b-228b94b1d040", "access_key": "AKIANATWOUSEREXAMPLE",
     "occupied_slots": {"cpu": "1"},
     "repl_in_port": 2000, "repl_out_port": 2001, "stdin_port": 2002, "stdout_port": 2003}
  ]
}"#;

const USER2_SESSION_ENDED: &str = r#"{
  "__mode": "update",
  "sessions": [{"id": "5e55a0e1-0000-4000-8000-000000000002", "status": "TERMINATED"}],
  "kernels": [{"id": "ee000000-0000-4000-8000-000000000004", "status": "TERMINATED"}]
}"#;

#[tokio::test]
async fn purge_user_waits_for_active_kernels_and_deletes_finished_sessions() {
    use bai_db_models::entities::{kernels, sessions};
    use sea_orm::{EntityTrait, PaginatorTrait};

    let api = Api::start("gql_mut_purge_sessions").await;
    let db = &api.cluster.database.connection;
    let load = |name: &'static str, text: &'static str| async move {
        let file = FixtureFile::parse(name, text).expect("fixture parses");
        fixtures::populate(db, &file).await.expect("fixture loads");
    };
    load("session.json", USER2_SESSION).await;
    let purge = || {
        mutate(
            &api,
            "purge_user",
            PURGE_USER,
            json!({"email": "user2@lablup.com", "input": {}}),
        )
    };
    assert_eq!(
        purge().await,
        json!({"ok": false, "msg": "user \"user2@lablup.com\" has 1 active kernel(s); terminate them first"})
    );
    assert_eq!(
        stored_user(&api, "user2@lablup.com").await["status"],
        "active"
    );

    load("ended.json", USER2_SESSION_ENDED).await;
    assert_eq!(purge().await, json!({"ok": true, "msg": "success"}));
    assert_eq!(stored_user(&api, "user2@lablup.com").await, Value::Null);
    assert_eq!(
        stored_keypair(&api, "AKIANATWOUSEREXAMPLE").await,
        Value::Null
    );
    assert_eq!(kernels::Entity::find().count(db).await.expect("count"), 0);
    assert_eq!(sessions::Entity::find().count(db).await.expect("count"), 0);
}
