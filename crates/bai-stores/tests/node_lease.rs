//! A node's registration bound to a lease: there while the node renews it, gone at once when it
//! stops, and gone within the lease's TTL when the node dies without a word (nobody renews).
//! Against the halfstack's etcd, in a fresh namespace.

use std::time::{Duration, Instant};

use bai_etcd_store::Scope;
use bai_etcd_store::testing::TestNamespace;
use bai_stores::{ManagerStatus, NODE_LEASE_TTL, node_key, register_node_with_lease};
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn a_leased_registration_lives_with_its_renewals_and_goes_with_its_node() {
    let namespace = TestNamespace::new("stores-node-lease");
    let etcd = namespace.store().await;

    let (status, lease) = register_node_with_lease(&etcd, "i-renewed").await.unwrap();
    assert_eq!(status, ManagerStatus::Running);
    assert_eq!(lease.key(), node_key("i-renewed"));
    let shutdown = CancellationToken::new();
    let keeping = tokio::spawn({
        let (etcd, shutdown) = (etcd.clone(), shutdown.clone());
        async move { lease.keep_alive(&etcd, shutdown).await }
    });

    // A node that stops renewing (killed): its key is gone within the TTL.
    let (_, _never_renewed) = register_node_with_lease(&etcd, "i-killed").await.unwrap();
    let killed = node_key("i-killed");
    assert_eq!(
        etcd.get(&killed, Scope::Global).await.unwrap().as_deref(),
        Some("up")
    );
    let started = Instant::now();
    while etcd.get(&killed, Scope::Global).await.unwrap().is_some() {
        assert!(
            started.elapsed() < NODE_LEASE_TTL + Duration::from_secs(5),
            "{killed} outlived its lease"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Meanwhile the renewed one stayed, across several TTLs' worth of renewals.
    let renewed = node_key("i-renewed");
    assert_eq!(
        etcd.get(&renewed, Scope::Global).await.unwrap().as_deref(),
        Some("up")
    );

    shutdown.cancel();
    keeping.await.unwrap();
    // Released by a node that stops: gone at once.
    let (_, stopping) = register_node_with_lease(&etcd, "i-stopping").await.unwrap();
    stopping.release(&etcd).await.unwrap();
    assert_eq!(
        etcd.get(&node_key("i-stopping"), Scope::Global)
            .await
            .unwrap(),
        None
    );
}
