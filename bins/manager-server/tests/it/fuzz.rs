//! Hostile input (issue 18), CI-sized: `cargo xtask fuzz` with a few examples per operation and
//! the fixed default seed. One server of this build on a database and etcd namespace of its own is
//! fuzzed with schemathesis (every REST operation and method, as the superadmin and as a user;
//! random GraphQL queries and mutations); any 5xx, any error that is not a problem+json of the
//! reference's types, or a panic in the server's log fails the run. The harness is the xtask's
//! (one implementation, see xtask/src/fuzz.rs); this test runs it on the binaries of the build
//! under test. `cargo xtask fuzz` alone runs 50 examples per operation.

/// Examples per operation and phase: enough to reach every operation with valid and invalid data
/// in well under three minutes.
const EXAMPLES: &str = "5";

#[test]
fn fuzzed_requests_get_no_server_error() {
    crate::harness::run_xtask(&["manager-cli"], &["fuzz", "--examples", EXAMPLES]);
}
