//! The runtime as a process: the tests start `examples/background_tasks.rs` (which `cargo test`
//! builds), talk to it over TCP and stop it with signals, as systemd and operators do. The
//! connection limits are tested on `serve` itself, with clients on plain sockets.

mod background_tasks;
mod connection_limits;
