//! What the tests against the halfstack's Redis (127.0.0.1:8110) share: its configuration and
//! the hint printed when it is not up.

use bai_config::HostPort;
use bai_etcd_store::shared_config::{RedisConfig, RedisHelperConfig};

/// The halfstack's Redis, as `config/redis` names it.
pub fn halfstack() -> RedisConfig {
    RedisConfig {
        addr: Some(HostPort::new("127.0.0.1", 8110)),
        sentinel: None,
        service_name: None,
        password: Some("develove".to_owned()),
        helper: RedisHelperConfig {
            socket_timeout: 5.0,
            socket_connect_timeout: 2.0,
            reconnect_poll_timeout: 0.3,
        },
    }
}

pub const HINT: &str = "Redis at 127.0.0.1:8110; start it with: cargo xtask halfstack up";
