//! The GraphQL user and keypair queries on the real router with the install guide's users:
//! `user`, `user_from_uuid`, `users`, `user_list`, `keypairs`, `keypair_list` for each role, the
//! reference's refusals, and the filter/order mini-language with pages and counts.

use crate::common::{Api, ask, data};
use bai_api::testing::{DOMAIN_ADMIN, ExampleUser, MONITOR, SUPERADMIN, USER, signed_request};
use http::Method;
use serde_json::{Value, json};

const USER_UUID: &str = "dfa9da54-4b28-432f-be29-c0d680c7a412";
const ADMIN_UUID: &str = "f38dea23-50fa-42a0-b5ae-338f5f4693f4";
const DEFAULT_GROUP: &str = "2de2b969-1d04-48a6-af16-0bc8adb3c831";
const USER_FIELDS: &str = "uuid username role email full_name need_password_change status status_info created_at domain_name groups { id name } allowed_client_ip totp_activated sudo_session_enabled main_access_key resource_policy description is_active";
const KEYPAIR_FIELDS: &str = "user_id projects user_info { full_name } access_key secret_key is_active is_admin created_at last_used resource_policy rate_limit concurrency_used num_queries full_name user";

/// The message of an answer's only error.
async fn refusal(api: &Api, who: &ExampleUser, query: &str, variables: Value) -> String {
    let answer = ask(api, who, query, variables).await;
    let errors = answer.json["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{}", answer.text);
    errors[0]["message"].as_str().expect("message").to_owned()
}

fn emails(items: &Value, key: &str) -> Vec<String> {
    items
        .as_array()
        .expect("a list")
        .iter()
        .map(|item| item[key].as_str().expect("a string").to_owned())
        .collect()
}

#[tokio::test]
async fn user_and_user_from_uuid_by_role() {
    let api = Api::start("gql_user").await;
    let me = format!("{{ user {{ {USER_FIELDS} }} }}");

    let user = &data(&api, &USER, &me, Value::Null).await["user"];
    assert_eq!(user["uuid"], USER_UUID);
    assert_eq!(user["username"], "user");
    assert_eq!(user["email"], USER.email);
    assert_eq!(user["full_name"], "User Lablup");
    assert_eq!(user["role"], "user");
    assert_eq!(user["status"], "active");
    assert_eq!(user["is_active"], true);
    assert_eq!(user["need_password_change"], false);
    assert_eq!(user["domain_name"], "default");
    assert_eq!(user["resource_policy"], "default");
    assert_eq!(user["main_access_key"], USER.access_key);
    assert_eq!(user["sudo_session_enabled"], false);
    assert_eq!(user["allowed_client_ip"], Value::Null);
    assert_eq!(user["description"], "Lablup's User Account");
    assert!(user["created_at"].is_string(), "{user}");
    assert_eq!(
        user["groups"],
        json!([
            {"id": DEFAULT_GROUP, "name": "default"},
            {"id": "8e32dd28-d319-4e3b-8851-ea37837699a5", "name": "model-store"},
        ])
    );

    let by_email = "query($email: String, $domain: String) { user(email: $email, domain_name: $domain) { email role } }";
    // Superadmins and domain admins read anyone of their scope; users only themselves.
    for who in [&SUPERADMIN, &DOMAIN_ADMIN] {
        let found = data(&api, who, by_email, json!({"email": USER.email})).await;
        assert_eq!(found["user"]["email"], USER.email);
        assert_eq!(
            data(&api, who, by_email, json!({})).await["user"]["email"],
            who.email,
            "autofilled"
        );
    }
    assert_eq!(
        data(&api, &USER, by_email, json!({"email": USER.email})).await["user"]["role"],
        "user"
    );
    assert_eq!(
        refusal(&api, &USER, by_email, json!({"email": SUPERADMIN.email})).await,
        "Forbidden operation."
    );
    for who in [&DOMAIN_ADMIN, &USER] {
        assert_eq!(
            refusal(
                &api,
                who,
                by_email,
                json!({"email": who.email, "domain": "other"})
            )
            .await,
            "Forbidden operation."
        );
    }
    // A superadmin naming another domain finds nobody there.
    assert_eq!(
        data(
            &api,
            &SUPERADMIN,
            by_email,
            json!({"email": USER.email, "domain": "other"})
        )
        .await["user"],
        Value::Null
    );
    assert_eq!(
        refusal(&api, &MONITOR, &me, Value::Null).await,
        "Missing or invalid API parameters. (Unknown client role)"
    );

    // The 24.03 client's `detail_by_uuid` document.
    let by_uuid = "query($user_id: ID) { user_from_uuid(user_id: $user_id) { uuid email } }";
    let found = data(&api, &SUPERADMIN, by_uuid, json!({"user_id": USER_UUID})).await;
    assert_eq!(found["user_from_uuid"]["email"], USER.email);
    let found = data(&api, &USER, by_uuid, json!({"user_id": USER_UUID})).await;
    assert_eq!(found["user_from_uuid"]["uuid"], USER_UUID);
    let found = data(&api, &USER, "{ user_from_uuid { email } }", Value::Null).await;
    assert_eq!(found["user_from_uuid"]["email"], USER.email);
    assert_eq!(
        refusal(&api, &USER, by_uuid, json!({"user_id": ADMIN_UUID})).await,
        "Forbidden operation."
    );
    assert_eq!(
        refusal(&api, &SUPERADMIN, by_uuid, json!({"user_id": "nope"})).await,
        "Missing or invalid API parameters. (user_id \"nope\" is not a UUID)"
    );
}

#[tokio::test]
async fn users_and_user_list() {
    let api = Api::start("gql_users").await;
    let everyone = [
        "admin@lablup.com",
        "domain-admin@lablup.com",
        "monitor@lablup.com",
        "user2@lablup.com",
        "user@lablup.com",
    ];

    // The 24.03 client's `User.list` document.
    let users = "query($status: String, $group: UUID) { users(status: $status, group_id: $group) { email groups { name } } }";
    for who in [&SUPERADMIN, &DOMAIN_ADMIN] {
        let found = data(&api, who, users, json!({"status": null, "group": null})).await;
        let mut found = emails(&found["users"], "email");
        found.sort();
        assert_eq!(found, everyone);
        let found = data(
            &api,
            who,
            users,
            json!({"status": "inactive", "group": DEFAULT_GROUP}),
        )
        .await;
        assert_eq!(found["users"], json!([]));
    }
    let found = data(
        &api,
        &SUPERADMIN,
        "{ users(domain_name: \"other\", is_active: true) { email } }",
        Value::Null,
    )
    .await;
    assert_eq!(found["users"], json!([]));
    assert_eq!(
        refusal(&api, &USER, users, json!({})).await,
        "Insufficient privilege."
    );
    assert_eq!(
        refusal(
            &api,
            &DOMAIN_ADMIN,
            "{ users(domain_name: \"other\") { email } }",
            Value::Null
        )
        .await,
        "Insufficient privilege."
    );
    assert_eq!(
        refusal(&api, &MONITOR, users, json!({})).await,
        "Missing or invalid API parameters. (Unknown client role)"
    );
    assert_eq!(
        refusal(&api, &SUPERADMIN, users, json!({"status": "ACTIVE"})).await,
        "Missing or invalid API parameters. (\"ACTIVE\" is not a valid UserStatus)"
    );

    // The clients' paginated document (`fetch_paginated_result`).
    let list = format!(
        "query($limit:Int!, $offset:Int!, $status:String, $group_id:UUID, $filter:String, $order:String) {{ user_list(limit:$limit, offset:$offset, status:$status, group_id:$group_id, filter:$filter, order:$order) {{ items {{ {USER_FIELDS} }} total_count }} }}"
    );
    let page = |limit: i64, offset: i64, filter: Value, order: Value| json!({"limit": limit, "offset": offset, "status": null, "group_id": null, "filter": filter, "order": order});
    for who in [&SUPERADMIN, &DOMAIN_ADMIN] {
        let found = data(&api, who, &list, page(2, 0, Value::Null, json!("+email"))).await;
        assert_eq!(found["user_list"]["total_count"], 5);
        assert_eq!(
            emails(&found["user_list"]["items"], "email"),
            ["admin@lablup.com", "domain-admin@lablup.com"]
        );
        let found = data(&api, who, &list, page(2, 4, Value::Null, json!("email"))).await;
        assert_eq!(
            emails(&found["user_list"]["items"], "email"),
            ["user@lablup.com"]
        );
    }
    let found = data(
        &api,
        &SUPERADMIN,
        &list,
        page(
            20,
            0,
            json!(r#"email ilike "USER%" & status == "ACTIVE""#),
            json!("-email"),
        ),
    )
    .await;
    assert_eq!(found["user_list"]["total_count"], 2);
    assert_eq!(
        emails(&found["user_list"]["items"], "email"),
        ["user@lablup.com", "user2@lablup.com"]
    );
    let found = data(
        &api,
        &SUPERADMIN,
        &list,
        page(
            20,
            0,
            json!(r#"role in ["SUPERADMIN", "admin"] | full_name == "Monitor Lablup""#),
            json!("-role,email"),
        ),
    )
    .await;
    assert_eq!(
        emails(&found["user_list"]["items"], "email"),
        [
            "monitor@lablup.com",
            "domain-admin@lablup.com",
            "admin@lablup.com"
        ],
        "roles in declaration order, descending"
    );
    assert_eq!(
        refusal(
            &api,
            &SUPERADMIN,
            &list,
            page(20, 0, json!("email ="), Value::Null)
        )
        .await,
        "Query filter parsing error: expected an operator at position 6"
    );
    assert_eq!(
        refusal(
            &api,
            &SUPERADMIN,
            &list,
            page(20, 0, json!("password == \"x\""), Value::Null)
        )
        .await,
        "Unknown/unsupported field name: password"
    );
    assert_eq!(
        refusal(
            &api,
            &SUPERADMIN,
            &list,
            page(20, 0, Value::Null, json!("-password"))
        )
        .await,
        "Unknown/unsupported field name: password"
    );
    assert_eq!(
        refusal(
            &api,
            &SUPERADMIN,
            &list,
            page(-1, 0, Value::Null, Value::Null)
        )
        .await,
        "Missing or invalid API parameters. (limit and offset must not be negative)"
    );
    assert_eq!(
        refusal(&api, &USER, &list, page(20, 0, Value::Null, Value::Null)).await,
        "Insufficient privilege."
    );
    let found = data(
        &api,
        &DOMAIN_ADMIN,
        "{ user_list(limit: 10, offset: 0, is_active: false) { items { email } total_count } }",
        Value::Null,
    )
    .await;
    assert_eq!(found["user_list"], json!({"items": [], "total_count": 0}));
}

#[tokio::test]
async fn keypairs_and_keypair_list() {
    let api = Api::start("gql_keypairs").await;
    let all_keys = [
        "AKIAHUKCHDEZGEXAMPLE",
        "AKIAIOSFODNN7EXAMPLE",
        "AKIANABBDUSEREXAMPLE",
        "AKIANAMONITOREXAMPLE",
        "AKIANATWOUSEREXAMPLE",
    ];
    let keypairs = format!(
        "query($is_active: Boolean) {{ keypairs(is_active: $is_active) {{ {KEYPAIR_FIELDS} }} }}"
    );

    let found = data(&api, &SUPERADMIN, &keypairs, json!({"is_active": null})).await;
    let items = found["keypairs"].as_array().expect("a list");
    let mut keys = emails(&found["keypairs"], "access_key");
    keys.sort();
    assert_eq!(keys, all_keys);
    assert!(
        items.iter().all(|item| item["secret_key"].is_string()),
        "{found}"
    );
    let user = items
        .iter()
        .find(|item| item["access_key"] == USER.access_key)
        .expect("the user's keypair");
    assert_eq!(user["user_id"], USER.email);
    assert_eq!(user["user"], USER_UUID);
    assert_eq!(user["full_name"], "User Lablup");
    assert_eq!(user["user_info"], json!({"full_name": "User Lablup"}));
    assert_eq!(user["projects"], json!(["default", "model-store"]));
    assert_eq!(user["is_active"], true);
    assert_eq!(user["is_admin"], false);
    assert_eq!(user["resource_policy"], "default");
    assert_eq!(user["rate_limit"], 30000);
    assert!(user["concurrency_used"].is_i64(), "{user}");
    // Redis holds the counters of these keypairs.
    assert!(user["num_queries"].is_i64(), "{user}");

    // A domain admin sees the domain's keypairs, and only its own secret key. The call
    // statistics of its earlier requests are written first, as the server's writer does every
    // second.
    assert_eq!(
        api.send(signed_request(
            Method::GET,
            "/auth/test?echo=x",
            None,
            &DOMAIN_ADMIN
        ))
        .await
        .status,
        200
    );
    api.ctx
        .caches()
        .call_stats()
        .flush(&api.ctx.redis().stat)
        .await
        .expect("writing the call statistics");
    let found = data(&api, &DOMAIN_ADMIN, &keypairs, json!({})).await;
    let mut keys = emails(&found["keypairs"], "access_key");
    keys.sort();
    assert_eq!(keys, all_keys);
    for item in found["keypairs"].as_array().expect("a list") {
        let own = item["access_key"] == DOMAIN_ADMIN.access_key;
        assert_eq!(item["secret_key"].is_string(), own, "{item}");
    }
    // The caller's own statistics come from Redis: its earlier requests were counted.
    let own = found["keypairs"]
        .as_array()
        .expect("a list")
        .iter()
        .find(|item| item["access_key"] == DOMAIN_ADMIN.access_key)
        .expect("own keypair");
    assert!(own["num_queries"].as_i64().expect("a number") >= 1, "{own}");
    assert!(own["last_used"].is_string(), "{own}");

    // A user sees only its own, whatever it asks for.
    let found = data(&api, &USER, &keypairs, json!({})).await;
    assert_eq!(emails(&found["keypairs"], "access_key"), [USER.access_key]);
    assert_eq!(found["keypairs"][0]["secret_key"], USER.secret_key);
    let by_email = "query($email: String!) { keypairs(email: $email) { access_key } }";
    assert_eq!(
        refusal(&api, &USER, by_email, json!({"email": SUPERADMIN.email})).await,
        "Forbidden operation."
    );
    let found = data(&api, &SUPERADMIN, by_email, json!({"email": USER.email})).await;
    assert_eq!(emails(&found["keypairs"], "access_key"), [USER.access_key]);
    assert_eq!(
        refusal(
            &api,
            &DOMAIN_ADMIN,
            "{ keypairs(domain_name: \"other\") { access_key } }",
            Value::Null
        )
        .await,
        "Forbidden operation."
    );
    assert_eq!(
        refusal(&api, &MONITOR, &keypairs, json!({})).await,
        "Missing or invalid API parameters. (Unknown client role)"
    );

    // The clients' paginated document.
    let list = format!(
        "query($limit:Int!, $offset:Int!, $is_active:Boolean, $domain_name:String, $filter:String, $order:String) {{ keypair_list(limit:$limit, offset:$offset, is_active:$is_active, domain_name:$domain_name, filter:$filter, order:$order) {{ items {{ {KEYPAIR_FIELDS} }} total_count }} }}"
    );
    let page = |limit: i64, offset: i64, filter: Value, order: Value| json!({"limit": limit, "offset": offset, "is_active": null, "domain_name": null, "filter": filter, "order": order});
    let found = data(
        &api,
        &SUPERADMIN,
        &list,
        page(2, 1, Value::Null, json!("-access_key")),
    )
    .await;
    assert_eq!(found["keypair_list"]["total_count"], 5);
    assert_eq!(
        emails(&found["keypair_list"]["items"], "access_key"),
        ["AKIANAMONITOREXAMPLE", "AKIANABBDUSEREXAMPLE"]
    );
    let found = data(
        &api,
        &DOMAIN_ADMIN,
        &list,
        page(10, 0, json!("is_admin == true"), json!("email")),
    )
    .await;
    assert_eq!(found["keypair_list"]["total_count"], 2);
    assert_eq!(
        emails(&found["keypair_list"]["items"], "user_id"),
        ["admin@lablup.com", "domain-admin@lablup.com"]
    );
    let found = data(
        &api,
        &SUPERADMIN,
        &list,
        page(
            10,
            0,
            json!(format!(
                "user_id == \"{USER_UUID}\" | full_name ilike \"monitor%\""
            )),
            json!("+full_name"),
        ),
    )
    .await;
    assert_eq!(
        emails(&found["keypair_list"]["items"], "access_key"),
        ["AKIANAMONITOREXAMPLE", "AKIANABBDUSEREXAMPLE"]
    );
    let found = data(&api, &USER, &list, page(10, 0, Value::Null, Value::Null)).await;
    assert_eq!(found["keypair_list"]["total_count"], 1);
    assert_eq!(
        emails(&found["keypair_list"]["items"], "access_key"),
        [USER.access_key]
    );
    assert_eq!(
        refusal(
            &api,
            &SUPERADMIN,
            &list,
            page(10, 0, json!("rate_limit > \"x\""), Value::Null)
        )
        .await,
        "Invalid value for field rate_limit: expected an integer, got a string"
    );
    assert_eq!(
        refusal(
            &api,
            &SUPERADMIN,
            &list,
            page(10, 0, Value::Null, json!("projects"))
        )
        .await,
        "Unknown/unsupported field name: projects"
    );
}
