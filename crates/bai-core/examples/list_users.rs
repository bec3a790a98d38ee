//! A small program over the manager's stores, without any HTTP: it reads the shared configuration
//! from etcd and lists the users and keypairs of the database that manager.toml names.
//!
//! ```sh
//! cargo run -p bai-core --example list_users -- manager.toml
//! ```

use std::path::PathBuf;

use anyhow::Context;
use bai_core::config::{self, Environment, LoadOptions};
use bai_core::db::queries::{keypair_listing, user_listing};
use bai_core::etcd::{EtcdStore, EtcdTarget, ScopePrefixes, SharedConfig};

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let Some(config_path) = std::env::args().nth(1) else {
        anyhow::bail!("usage: list_users MANAGER_TOML");
    };
    let options = LoadOptions {
        explicit_path: Some(PathBuf::from(&config_path)),
        ..LoadOptions::default()
    };
    let manager_config = config::load(&options, &Environment::capture())?.config;

    let etcd = EtcdStore::connect(
        EtcdTarget::from_config(&manager_config.etcd),
        ScopePrefixes::default(),
    )
    .await?;
    let shared = SharedConfig::load(&etcd)
        .await
        .context("reading the shared config")?;
    match &shared.redis.addr {
        Some(addr) => println!("redis: {addr}"),
        None => println!("redis: not configured"),
    }

    let db = bai_core::db::connect(&manager_config.db).await?;
    let users = user_listing::list(&db, &Default::default(), None, Some("+email"), None).await?;
    println!("users ({}):", users.len());
    for user in &users {
        println!("  {} {:?} {:?}", user.email, user.role, user.status);
    }
    let keypairs =
        keypair_listing::list(&db, &Default::default(), None, Some("+access_key"), None).await?;
    println!("keypairs ({}):", keypairs.len());
    for row in &keypairs {
        let owner = row.keypair.user_id.as_deref().unwrap_or("-");
        let active = row.keypair.is_active.unwrap_or(false);
        println!("  {} {owner} active={active}", row.keypair.access_key);
    }
    db.close().await?;
    Ok(())
}
