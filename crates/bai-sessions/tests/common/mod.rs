//! What the session tests share: the install guide's rows they use, and pending sessions as
//! enqueueing writes them.

use sea_orm::prelude::Uuid;
use sea_orm::{ConnectionTrait, DatabaseConnection};

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
