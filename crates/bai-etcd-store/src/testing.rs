//! Throwaway namespaces on the halfstack's etcd (127.0.0.1:8120), one per test, so tests never see
//! each other's keys. Every key of the namespace is deleted when the [`TestNamespace`] is dropped,
//! also when the test fails.
//!
//! [`logs::CapturedLogs`] captures the log lines a test emits, for the tests of this and other
//! crates that assert on what was logged.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bai_config::{EtcdConfig, HostPort};
use etcd_client::{Client, DeleteOptions};

use crate::{EtcdStore, EtcdTarget, ScopePrefixes};

pub mod logs;

/// The halfstack's etcd endpoint.
pub const HALFSTACK_ETCD: &str = "127.0.0.1:8120";
const HINT: &str = "start it with: cargo xtask halfstack up";

/// An etcd namespace that exists for one test.
#[derive(Debug)]
pub struct TestNamespace {
    pub name: String,
}

impl TestNamespace {
    /// `t-<label>-<pid>-<nanos>`.
    pub fn new(label: &str) -> TestNamespace {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.subsec_nanos());
        TestNamespace {
            name: format!("t-{label}-{}-{nanos}", std::process::id()),
        }
    }

    /// `[etcd]` of a manager.toml that points at this namespace.
    pub fn config(&self) -> EtcdConfig {
        EtcdConfig {
            namespace: self.name.clone(),
            addr: HostPort::new("127.0.0.1", 8120),
            addrs: Vec::new(),
            user: String::new(),
            password: String::new(),
        }
    }

    /// A store on this namespace, global scope. Panics with a hint when etcd is not running: a
    /// test that needs it must fail, never skip.
    pub async fn store(&self) -> EtcdStore {
        EtcdStore::connect(
            EtcdTarget::from_config(&self.config()),
            ScopePrefixes::default(),
        )
        .await
        .unwrap_or_else(|error| panic!("{error}; {HINT}"))
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let prefix = format!("/sorna/{}/", self.name);
        // Tests run inside a runtime, which cannot block on another one: clean up from a thread of
        // its own. Errors are ignored so that they never hide the test's own failure.
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            let deleting = async {
                let mut client = Client::connect([HALFSTACK_ETCD], None).await?;
                client
                    .delete(prefix, Some(DeleteOptions::new().with_prefix()))
                    .await
            };
            // The timer must be created inside the runtime.
            let _ = runtime
                .block_on(async { tokio::time::timeout(Duration::from_secs(5), deleting).await });
        });
        let _ = cleanup.join();
    }
}
