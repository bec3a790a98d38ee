//! Store faults (issue 18), CI-sized: `cargo xtask faults` on the binaries of the build under
//! test. Private PostgreSQL, Redis and etcd (the halfstack's binaries, ports 8200/8210/8220, never
//! the shared halfstack) are stopped and started in turn, each down for a few seconds, under a
//! steady load of signed requests to a `manager-server` of this build (`num-proc = 2`) with one
//! agent-sim agent: no 500, every 503 naming the store, no request past the latency bound, full
//! service within 5 s of each store's return, no acknowledged write lost, and afterwards a session
//! RUNNING and the agent ALIVE. The harness is the xtask's (one implementation, see
//! xtask/src/faults.rs). A test binary of its own, so that it runs alone.

#[path = "common/harness.rs"]
mod harness;

/// Seconds each store stays down: the run takes about a minute after the build.
const OUTAGE: &str = "5";

#[test]
fn the_server_rides_out_each_store_stopping_and_starting() {
    harness::run_xtask(
        &["manager-cli", "agent-sim"],
        &["faults", "--outage", OUTAGE],
    );
}
