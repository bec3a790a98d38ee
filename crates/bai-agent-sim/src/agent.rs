//! One simulated agent: what the real agent does on the event bus and in etcd from start to stop.
//! It registers under `nodes/agents/{id}`, announces itself with `agent_started`, sends
//! `agent_heartbeat` every interval (the first at once) and `agent_terminated("shutdown")` when it
//! stops. Before announcing itself it binds its RPC server (`rpc`), which it closes after the
//! goodbye.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bai_etcd_store::{EtcdStore, Scope};
use bai_events::{AgentInfo, Event, EventProducer};
use tokio_util::sync::CancellationToken;

use crate::methods::Agent;
use crate::rpc::{self, RpcContext};
use crate::{RpcOptions, SimError};

/// One agent's identity and what its heartbeats say.
#[derive(Clone, Debug)]
pub struct SimAgent {
    pub info: AgentInfo,
    pub id: String,
    /// See [`crate::SimOptions::stamp_version`].
    pub stamp_version: bool,
    pub heartbeat_interval: Duration,
    /// How long it waits before it starts (agents of one process start spread over an interval).
    pub start_delay: Duration,
    /// Where its RPC server binds (`tcp://host:port`).
    pub rpc_bind_addr: String,
    /// How its RPC methods behave.
    pub rpc: RpcOptions,
    /// What runs the code of `execute`.
    pub runner: crate::CodeRunner,
}

impl SimAgent {
    /// Runs until `shutdown`, then says goodbye.
    pub(crate) async fn run(
        &self,
        etcd: &EtcdStore,
        producer: &EventProducer,
        rpc: &RpcContext,
        shutdown: &CancellationToken,
    ) -> Result<(), SimError> {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            () = tokio::time::sleep(self.start_delay) => {}
        }
        let methods = std::sync::Arc::new(Agent::new(self, producer.clone()));
        let server = rpc::run_server(
            rpc,
            std::sync::Arc::clone(&methods),
            &self.rpc_bind_addr,
            self.rpc.faults,
            shutdown,
        )
        .await?;
        let outcome = self.announce_and_beat(etcd, producer, shutdown).await;
        server.stop().await;
        methods.shutdown().await;
        outcome
    }

    async fn announce_and_beat(
        &self,
        etcd: &EtcdStore,
        producer: &EventProducer,
        shutdown: &CancellationToken,
    ) -> Result<(), SimError> {
        // The real agent writes its status at `nodes/agents/{id}/` (with the slash), its address below.
        let node_key = format!("nodes/agents/{}/", self.id);
        let registering = |source| SimError::Etcd {
            what: "registering the agent",
            source,
        };
        etcd.put(&node_key, "starting", Scope::Global)
            .await
            .map_err(registering)?;
        etcd.put(&format!("{node_key}ip"), &self.info.ip, Scope::Global)
            .await
            .map_err(registering)?;
        self.produce(
            producer,
            &Event::AgentStarted {
                reason: "self-started".to_owned(),
            },
        )
        .await?;
        etcd.put(&node_key, "running", Scope::Global)
            .await
            .map_err(registering)?;
        tracing::info!(
            "agent {} started (RPC at {}, listening on {})",
            self.id,
            self.info.addr,
            self.rpc_bind_addr
        );

        let mut heartbeat = Event::AgentHeartbeat(Box::new(self.info.clone()));
        let version = self.info.version.clone();
        // Like the reference's timer: every interval from the start, not after the previous beat.
        let mut ticks = tokio::time::interval(self.heartbeat_interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = ticks.tick() => {}
            }
            if self.stamp_version
                && let Event::AgentHeartbeat(info) = &mut heartbeat
            {
                let sent_ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis();
                info.version = format!("{version}+t{sent_ms}");
            }
            if let Err(error) = self.produce(producer, &heartbeat).await {
                // The real agent logs a failed heartbeat and tries again at the next tick.
                tracing::warn!("{error}");
            }
        }
        self.produce(
            producer,
            &Event::AgentTerminated {
                reason: "shutdown".to_owned(),
            },
        )
        .await?;
        tracing::info!("agent {} stopped", self.id);
        Ok(())
    }

    async fn produce(&self, producer: &EventProducer, event: &Event) -> Result<(), SimError> {
        producer
            .produce(event, &self.id)
            .await
            .map(drop)
            .map_err(|source| SimError::Produce {
                agent: self.id.clone(),
                event: event.name(),
                source,
            })
    }
}
