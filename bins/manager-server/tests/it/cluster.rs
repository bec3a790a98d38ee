//! Several manager nodes (issue 17), CI-sized: `cargo xtask cluster` with 100 sessions once per
//! lock backend. Two nodes of this build (`num-proc = 2` each) share one database, etcd namespace
//! and Redis; node A is SIGKILLed halfway through the burst of creations and started again; every
//! session must reach RUNNING exactly once, nothing may be left behind after the deletes, and both
//! nodes' `/metrics` must agree with the database. The harness is the xtask's (one implementation,
//! see xtask/src/cluster.rs); this test runs it on the binaries of the build under test.

/// Sessions per backend: enough for node A to die with starts and requests in flight.
const SESSIONS: &str = "100";

#[test]
fn no_session_is_lost_or_doubled_when_a_node_is_killed() {
    crate::harness::run_xtask(
        &["manager-cli", "agent-sim"],
        &[
            "cluster",
            "--sessions",
            SESSIONS,
            "--lock",
            "all",
            "--kill-at",
            "0.5",
        ],
    );
}
