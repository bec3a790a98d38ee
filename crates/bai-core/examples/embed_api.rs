//! A tokio service of its own that serves the Backend.AI manager API next to its own routes.
//!
//! ```sh
//! cargo run -p bai-core --example embed_api -- manager.toml 127.0.0.1:9090
//! curl 127.0.0.1:9090/           # the manager API's version document
//! curl 127.0.0.1:9090/embedder   # this service's own route
//! ```
//!
//! It connects its own stores from the manager.toml it is given (etcd, PostgreSQL, and the Redis
//! etcd names), mounts the manager router at the root of its own axum app, and stops on Ctrl-C or
//! SIGTERM, closing the stores.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use bai_core::api::{self, ApiContext};
use bai_core::config::{self, Environment, LoadOptions};
use bai_core::stores::Stores;
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(config_path), Some(listen)) = (args.next(), args.next()) else {
        anyhow::bail!(
            "usage: embed_api MANAGER_TOML LISTEN_ADDR (e.g. manager.toml 127.0.0.1:9090)"
        );
    };
    let listen: SocketAddr = listen
        .parse()
        .with_context(|| format!("LISTEN_ADDR {listen:?} is not host:port"))?;
    let options = LoadOptions {
        explicit_path: Some(PathBuf::from(&config_path)),
        ..LoadOptions::default()
    };
    let manager_config = Arc::new(config::load(&options, &Environment::capture())?.config);

    let stores = Stores::connect(&manager_config)
        .await
        .context("connecting the manager's stores")?;
    let app = Router::new()
        .route(
            "/embedder",
            get(|| async { "served by the embedding service\n" }),
        )
        .merge(api::router(ApiContext::new(manager_config, stores.clone())));

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    println!(
        "serving the manager API and /embedder on {}",
        listener.local_addr()?
    );
    let mut terminate = signal(SignalKind::terminate())?;
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
    })
    .await?;
    stores.close().await;
    Ok(())
}
