//! The runtime as a process: the tests start `examples/background_tasks.rs` (which `cargo test`
//! builds), talk to it over TCP and stop it with signals, as systemd and operators do.

mod background_tasks;
