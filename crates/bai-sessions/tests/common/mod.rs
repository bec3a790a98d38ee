//! What the session tests share: the install guide's rows they use, pending sessions as
//! enqueueing writes them, readers of the rows they check, and (`stack`) the stores and
//! simulated agents of the tests that start sessions.

// Each test binary compiles this module on its own and uses a different part of it.
#![allow(dead_code)]

pub mod stack;

use std::future::Future;
use std::time::{Duration, Instant};

use bai_db_models::entities::{ResourceSlot, agents, kernels, sessions};
use sea_orm::prelude::Uuid;
use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter};

/// The install guide's `default` project and `admin@lablup.com` with its keypair (policy
/// `default`: 5 concurrent sessions).
pub const GROUP: &str = "2de2b969-1d04-48a6-af16-0bc8adb3c831";
pub const USER: &str = "f38dea23-50fa-42a0-b5ae-338f5f4693f4";
pub const ACCESS_KEY: &str = "AKIAIOSFODNN7EXAMPLE";
pub const IMAGE: &str = "cr.backend.ai/stable/python:3.9-ubuntu20.04";
pub const GIB: u64 = 1 << 30;

/// A PENDING single-node session of `kernels` kernels asking `cpu` cores and `mem_gib` GiB
/// each, created `age` seconds ago, in resource group `default`, as enqueueing writes it.
pub async fn pending(
    db: &DatabaseConnection,
    name: &str,
    kernels: u32,
    cpu: u64,
    mem_gib: u64,
    age: u32,
) -> Uuid {
    let session = Uuid::new_v4();
    let mem = mem_gib * GIB;
    let total_cpu = cpu * u64::from(kernels);
    let total_mem = mem * u64::from(kernels);
    db.execute_unprepared(&format!(
        "INSERT INTO sessions (id, creation_id, name, session_type, cluster_mode, cluster_size, \
         scaling_group_name, domain_name, group_id, user_uuid, access_key, images, \
         occupying_slots, requested_slots, use_host_network, environ, created_at, status, \
         status_history) VALUES ('{session}', 'c-{name}', '{name}', 'INTERACTIVE', \
         'single-node', {kernels}, 'default', 'default', '{GROUP}', '{USER}', '{ACCESS_KEY}', \
         ARRAY['{IMAGE}'], '{{}}', '{{\"cpu\": \"{total_cpu}\", \"mem\": \"{total_mem}\"}}', \
         false, '{{}}', now() - interval '{age} seconds', 'PENDING', '{{}}')"
    ))
    .await
    .expect("session row");
    for index in 0..kernels {
        let role = if index == 0 { "main" } else { "sub" };
        db.execute_unprepared(&format!(
            "INSERT INTO kernels (id, session_id, session_creation_id, session_name, \
             session_type, cluster_mode, cluster_size, cluster_role, cluster_idx, local_rank, \
             cluster_hostname, scaling_group, domain_name, group_id, user_uuid, access_key, \
             image, architecture, registry, occupied_slots, requested_slots, occupied_shares, \
             repl_in_port, repl_out_port, stdin_port, stdout_port, use_host_network, status) \
             VALUES ('{kernel}', '{session}', 'c-{name}', '{name}', 'INTERACTIVE', \
             'single-node', {kernels}, '{role}', {idx}, {index}, '{role}{idx}', 'default', \
             'default', '{GROUP}', '{USER}', '{ACCESS_KEY}', '{IMAGE}', 'x86_64', 'cr.backend.ai', \
             '{slots}', '{slots}', '{{}}', 0, 0, 0, 0, false, 'PENDING')",
            kernel = Uuid::new_v4(),
            idx = index + 1,
            slots = format_args!("{{\"cpu\": \"{cpu}\", \"mem\": \"{mem}\"}}"),
        ))
        .await
        .expect("kernel row");
    }
    session
}

/// Polls `check` every 50 ms until it holds; fails the test if it does not `within`.
pub async fn wait_until<F, Fut>(what: &str, within: Duration, check: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {} s",
            within.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn session(db: &DatabaseConnection, id: Uuid) -> sessions::Model {
    sessions::Entity::find_by_id(id)
        .one(db)
        .await
        .expect("query")
        .expect("session")
}

pub async fn kernels_of(db: &DatabaseConnection, session: Uuid) -> Vec<kernels::Model> {
    kernels::Entity::find()
        .filter(kernels::Column::SessionId.eq(session))
        .all(db)
        .await
        .expect("query")
}

pub async fn agent_row(db: &DatabaseConnection, id: &str) -> Option<agents::Model> {
    agents::Entity::find_by_id(id.to_owned())
        .one(db)
        .await
        .expect("query")
}

/// The slots agent `id`'s row says are occupied.
pub async fn occupied(db: &DatabaseConnection, id: &str) -> ResourceSlot {
    agent_row(db, id).await.expect("agent").occupied_slots
}

/// Session `id` and its kernels TERMINATING, as destroying them writes first.
pub async fn set_terminating(db: &DatabaseConnection, id: Uuid) {
    db.execute_unprepared(&format!(
        "UPDATE kernels SET status = 'TERMINATING' WHERE session_id = '{id}'; \
         UPDATE sessions SET status = 'TERMINATING' WHERE id = '{id}'"
    ))
    .await
    .expect("terminating");
}
